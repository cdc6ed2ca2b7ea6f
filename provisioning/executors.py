"""Where the checklist's scripts run: on the Proxmox node over SSH, or simulated.

Proxmox has no API to run a command inside a container, so real tools SSH to the node and run
``pct exec <vmid> -- ...``. ``SshExecutor`` does that with paramiko: the script travels on stdin
(``bash -s``), never on the command line, so nothing in it is parsed twice. Invariants:

- The node's host key must be in the host's known_hosts file; an unknown or changed key is
  refused, never learned.
- Every call has a time limit, enforced twice: ``timeout`` on the node (and inside the container)
  kills the script, and the client gives up and closes the session shortly after in case the
  node itself hangs. Either way the result says ``timed_out``.
- Output is kept bounded while it streams (the tail is what a person needs to see a failure).
- Transport problems (cannot connect, host key, authentication) raise ``ExecutorError``; a script
  that ran and failed is an ``ExecResult`` with its exit code.

``SimulatedExecutor`` stands in on the local Proxmox (fakepve has no containers): it runs
nothing, logs what it would run with SIMULATED, takes a configurable time, answers like the
scripts do, and fails when told to.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

import paramiko
from django.conf import settings

from maxportal.kernel.errors import DomainError

from .choices import ExecutorChoices, RootChannelChoices
from .models import ProxmoxHost

logger = logging.getLogger(__name__)

OUTPUT_TAIL_LINES = 200
OUTPUT_TAIL_BYTES = 16 * 1024
TIMEOUT_EXIT_CODE = 124  # coreutils timeout's exit code; also reported when the client cuts a call
_KILLED_EXIT_CODES = {TIMEOUT_EXIT_CODE, 128 + 9}
_STEP_MARKER = re.compile(r"^# maxportal-step: (\S+)$", re.MULTILINE)
_CLI_MARKER = re.compile(r"^# maxportal-cli: (\S+) (\S+)$", re.MULTILINE)
_PCT_PARAM = re.compile(r"^[a-z][a-z0-9]*$")


class ExecutorError(DomainError):
    """The script could not be run at all (transport or configuration), as opposed to failing.

    ``transient`` says whether trying again later may help (connection refused, timeouts).
    """

    code = "executor_error"
    transient = False


class ExecutorConfigError(ExecutorError):
    code = "executor_config_error"


class ExecutorConnectionError(ExecutorError):
    code = "executor_connection_error"
    transient = True


class ExecutorHostKeyError(ExecutorError):
    code = "executor_host_key_error"


class ExecutorAuthError(ExecutorError):
    code = "executor_auth_error"


@dataclass(frozen=True)
class ExecResult:
    """What a script did: exit code, the tail of its output (stdout and stderr interleaved)."""

    exit_code: int
    output_tail: str
    duration_s: float
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


def tail_text(data: bytes | str, *, lines: int = OUTPUT_TAIL_LINES, max_bytes: int = OUTPUT_TAIL_BYTES) -> str:
    """The last ``lines`` lines of ``data``, at most ``max_bytes`` of it, decoded leniently."""
    raw = data.encode() if isinstance(data, str) else data
    raw = raw[-max_bytes:]
    text = raw.decode("utf-8", errors="replace")
    kept = text.splitlines(keepends=True)[-lines:]
    return "".join(kept)


class _TailBuffer:
    """Keeps only the end of a stream, so a chatty script cannot fill the worker's memory."""

    def __init__(self, limit: int = 4 * OUTPUT_TAIL_BYTES):
        self._limit = limit
        self._data = bytearray()

    def add(self, chunk: bytes) -> None:
        self._data += chunk
        if len(self._data) > 2 * self._limit:
            del self._data[: len(self._data) - self._limit]

    def tail(self) -> str:
        return tail_text(bytes(self._data))


def _setting(name: str, default):
    return getattr(settings, name, default)


def pct_command() -> list[str]:
    """The node's ``pct`` (MAXPORTAL_PCT_COMMAND, default "pct" on the node's PATH)."""
    return shlex.split(_setting("MAXPORTAL_PCT_COMMAND", "pct") or "pct")


def _seconds(value: float) -> str:
    return f"{max(float(value), 0.1):g}s"


def _quote(parts: list[str]) -> str:
    return " ".join(shlex.quote(part) for part in parts)


class Executor:
    """Runs the checklist's scripts for one Proxmox host.

    ``run_in_container`` runs ``pct exec <vmid> -- bash -s`` on the node with the script on stdin;
    ``run_on_node`` runs ``bash -s`` on the node itself. Subclasses implement ``_execute``.
    """

    def __init__(self, host: ProxmoxHost):
        self.host = host

    def in_container_command(self, *, vmid: int, timeout_s: float) -> list[str]:
        # timeout inside the container kills the script's whole process group there; the outer
        # one ends pct exec itself should the attach hang. Both before the client gives up.
        return [
            "timeout", "--kill-after=10s", _seconds(float(timeout_s) + 5),
            *pct_command(), "exec", str(int(vmid)), "--",
            "timeout", "--kill-after=5s", _seconds(timeout_s), "bash", "-s",
        ]

    def on_node_command(self, *, timeout_s: float) -> list[str]:
        return ["timeout", "--kill-after=5s", _seconds(timeout_s), "bash", "-s"]

    def run_in_container(self, *, vmid: int, script: str, timeout_s: float) -> ExecResult:
        command = self.in_container_command(vmid=vmid, timeout_s=timeout_s)
        return self._execute(command=command, script=script, timeout_s=float(timeout_s), vmid=int(vmid))

    def run_on_node(self, *, script: str, timeout_s: float) -> ExecResult:
        command = self.on_node_command(timeout_s=timeout_s)
        return self._execute(command=command, script=script, timeout_s=float(timeout_s), vmid=None)

    def _execute(self, *, command: list[str], script: str, timeout_s: float, vmid: int | None) -> ExecResult:
        raise NotImplementedError


class SshExecutor(Executor):
    """paramiko to ``host.ssh_host:ssh_port`` as ``ssh_user`` with ``ssh_key_file``.

    The node's host key must already be in ``ssh_known_hosts_file`` (RejectPolicy).
    """

    def __init__(self, host: ProxmoxHost):
        super().__init__(host)
        missing = [
            label
            for label, value in (
                ("ssh_host", host.ssh_host),
                ("ssh_user", host.ssh_user),
                ("ssh_key_file", host.ssh_key_file),
                ("ssh_known_hosts_file", host.ssh_known_hosts_file),
            )
            if not value
        ]
        if missing:
            raise ExecutorConfigError(
                f"Host {host.name} runs scripts over SSH but has no {', '.join(missing)}: set "
                f"{' and '.join(missing)} on the host (the known_hosts file pins the node's key), "
                f"or switch its executor to simulated.",
                host=host.name,
                missing=missing,
            )

    @property
    def _where(self) -> str:
        return f"{self.host.ssh_user}@{self.host.ssh_host}:{self.host.ssh_port}"

    def _connect(self) -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        try:
            client.load_host_keys(self.host.ssh_known_hosts_file)
        except OSError as exc:
            raise ExecutorConfigError(
                f"Cannot read known_hosts file {self.host.ssh_known_hosts_file} of host {self.host.name}: {exc}. "
                f"Create it with the node's host key (ssh-keyscan run by an operator who checked the key).",
                host=self.host.name,
            ) from None
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        if not os.access(self.host.ssh_key_file, os.R_OK):
            raise ExecutorConfigError(
                f"The SSH key file {self.host.ssh_key_file} of host {self.host.name} is missing or unreadable: "
                f"put the private key there (readable by the portal's user) or fix ssh_key_file.",
                host=self.host.name,
            )
        connect_timeout = float(_setting("MAXPORTAL_SSH_CONNECT_TIMEOUT", 10))
        try:
            client.connect(
                self.host.ssh_host,
                port=int(self.host.ssh_port),
                username=self.host.ssh_user,
                key_filename=self.host.ssh_key_file,
                look_for_keys=False,
                allow_agent=False,
                timeout=connect_timeout,
                banner_timeout=connect_timeout,
                auth_timeout=connect_timeout,
            )
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise ExecutorHostKeyError(
                f"The host key of {self._where} does not match {self.host.ssh_known_hosts_file} "
                f"(got {exc.key.get_name()} {exc.key.fingerprint}). Refusing to connect: if the node was "
                f"reinstalled, verify the new key and update the known_hosts file.",
                host=self.host.name,
            ) from None
        except paramiko.AuthenticationException as exc:
            client.close()
            raise ExecutorAuthError(
                f"{self._where} refused the key {self.host.ssh_key_file} ({exc}): add its public key to "
                f"{self.host.ssh_user}'s authorized_keys on the node.",
                host=self.host.name,
            ) from None
        except (OSError, EOFError) as exc:
            client.close()
            raise ExecutorConnectionError(
                f"Cannot reach {self._where}: {exc}. Check that the node is up and sshd listens there.",
                host=self.host.name,
            ) from None
        except paramiko.SSHException as exc:
            client.close()
            message = str(exc)
            if "known_hosts" in message:
                raise ExecutorHostKeyError(
                    f"The host key of {self._where} is not in {self.host.ssh_known_hosts_file}: refusing to "
                    f"connect to an unknown host. Add the node's verified key to that file.",
                    host=self.host.name,
                ) from None
            raise ExecutorConnectionError(f"SSH to {self._where} failed: {message}", host=self.host.name) from None
        return client

    def _execute(self, *, command: list[str], script: str, timeout_s: float, vmid: int | None) -> ExecResult:
        grace = float(_setting("MAXPORTAL_SSH_TIMEOUT_GRACE", 20))
        started = time.monotonic()
        deadline = started + timeout_s + grace
        remote = _quote(command)
        logger.info("SSH %s: %s (%d bytes on stdin)", self._where, remote, len(script))
        client = self._connect()
        output = _TailBuffer()
        exit_code: int | None = None
        cut = False
        try:
            transport = client.get_transport()
            assert transport is not None
            channel = transport.open_session(timeout=max(deadline - time.monotonic(), 1))
            channel.set_combine_stderr(True)
            channel.exec_command(remote)
            channel.settimeout(max(deadline - time.monotonic(), 1))
            channel.sendall(script.encode())
            channel.shutdown_write()
            channel.settimeout(0.2)
            while True:
                if time.monotonic() >= deadline:
                    cut = True
                    break
                try:
                    chunk = channel.recv(32768)
                except TimeoutError:
                    continue
                if not chunk:
                    break
                output.add(chunk)
            if not cut:
                # EOF comes with or just before the exit status; wait for it within the deadline.
                while not channel.exit_status_ready() and time.monotonic() < deadline:
                    time.sleep(0.05)
                if channel.exit_status_ready():
                    exit_code = channel.recv_exit_status()
                else:
                    cut = True
        except (OSError, paramiko.SSHException) as exc:
            if time.monotonic() >= deadline:
                cut = True
            else:
                raise ExecutorConnectionError(
                    f"SSH session to {self._where} broke while running a script: {exc}", host=self.host.name
                ) from None
        finally:
            # Closing the session on a cut call makes sshd end what still runs under it.
            client.close()
        duration = time.monotonic() - started
        if cut or exit_code is None:
            output.add(f"\nmaxportal: no answer within {timeout_s:g}s (+{grace:g}s grace): session closed\n".encode())
            return ExecResult(TIMEOUT_EXIT_CODE, output.tail(), duration, timed_out=True)
        if exit_code < 0:
            # sshd sent no exit status (the command died of a signal): a failure, never a success.
            output.add(b"\nmaxportal: the remote command ended without an exit status (killed by a signal?)\n")
            exit_code = 128 + 9 if duration >= timeout_s else 255
        timed_out = exit_code in _KILLED_EXIT_CODES and duration >= timeout_s
        if timed_out:
            output.add(f"\nmaxportal: script cut at its {timeout_s:g}s time limit\n".encode())
        return ExecResult(exit_code, output.tail(), duration, timed_out=timed_out)


# --- Simulated ------------------------------------------------------------------------------

# How long each step takes in the simulation, in seconds, before MAXPORTAL_SIMULATED_TIME_SCALE
# (1.0 for `make run`, 0 in tests). Real runs take minutes; these keep progress visible.
DEFAULT_SIMULATED_STEP_SECONDS = {
    "base_config": 12.0,
    "clis_installed": 8.0,
    "systemd_setup": 2.0,
    "signal_dir": 1.0,
    "repo_cloned": 5.0,
    "services_running": 3.0,
    "pct_set": 1.0,
}
SIMULATED_CLI_VERSIONS = {"claude": "2.0.14", "gemini": "0.9.0", "codex": "0.46.0", "copilot": "0.0.339"}


@dataclass(frozen=True)
class SimulatedRun:
    """One call the simulated executor answered (kept for the page and the tests)."""

    host: str
    vmid: int | None
    step: str
    command: str
    script: str
    result: ExecResult
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass
class _InjectedFailure:
    step: str
    vmid: int | None
    exit_code: int
    output: str
    hang: bool
    times: int


class SimulatedExecutor(Executor):
    """The SIMULATED executor of the local Proxmox: runs nothing, answers like the scripts do.

    Failures are injected with ``SimulatedExecutor.inject_failure(...)`` (process-wide, so a test
    worker thread sees it) or the MAXPORTAL_SIMULATED_FAILURES setting: a list of "step" or
    "<vmid>:step" entries that always fail. Step durations come from
    MAXPORTAL_SIMULATED_STEP_SECONDS times MAXPORTAL_SIMULATED_TIME_SCALE (tests set the scale to 0).
    """

    history: deque[SimulatedRun] = deque(maxlen=1000)
    _failures: list[_InjectedFailure] = []
    _lock = threading.Lock()

    def __init__(self, host: ProxmoxHost, *, time_scale: float | None = None):
        super().__init__(host)
        self.time_scale = (
            float(_setting("MAXPORTAL_SIMULATED_TIME_SCALE", 1.0)) if time_scale is None else float(time_scale)
        )

    @classmethod
    def inject_failure(
        cls, step: str, *, vmid: int | None = None, exit_code: int = 1, output: str = "", hang: bool = False,
        times: int = 1,
    ) -> None:
        """Make the next ``times`` runs of ``step`` (on ``vmid``, or any) fail, or hang to their timeout."""
        with cls._lock:
            cls._failures.append(_InjectedFailure(step, vmid, exit_code, output, hang, times))

    @classmethod
    def clear(cls) -> None:
        """Forget injected failures and recorded runs."""
        with cls._lock:
            cls._failures.clear()
            cls.history.clear()

    @classmethod
    def _take_failure(cls, step: str, vmid: int | None) -> _InjectedFailure | None:
        with cls._lock:
            for failure in cls._failures:
                if failure.step == step and failure.vmid in (None, vmid):
                    failure.times -= 1
                    if failure.times <= 0:
                        cls._failures.remove(failure)
                    return failure
        for entry in _setting("MAXPORTAL_SIMULATED_FAILURES", None) or []:
            where, _, name = str(entry).rpartition(":")
            if name == step and (not where or (vmid is not None and where == str(vmid))):
                return _InjectedFailure(step, vmid, 1, f"failure injected by MAXPORTAL_SIMULATED_FAILURES ({entry})",
                                        False, 1)
        return None

    def _duration(self, step: str) -> float:
        table = {**DEFAULT_SIMULATED_STEP_SECONDS, **(_setting("MAXPORTAL_SIMULATED_STEP_SECONDS", None) or {})}
        return max(float(table.get(step, 1.0)) * self.time_scale, 0.0)

    @staticmethod
    def step_of(script: str) -> str:
        match = _STEP_MARKER.search(script)
        if match:
            return match.group(1)
        if re.search(r"^\s*\S*pct set ", script, re.MULTILINE):
            return "pct_set"
        return "script"

    @staticmethod
    def _answer(step: str, script: str, vmid: int | None) -> list[str]:
        if step == "clis_installed":
            kinds = [kind for kind, _package in _CLI_MARKER.findall(script)] or list(SIMULATED_CLI_VERSIONS)
            return [f"MAXPORTAL_VERSION {kind} {SIMULATED_CLI_VERSIONS.get(kind, '1.0.0')}" for kind in kinds]
        if step == "services_running":
            kinds = re.findall(r"max-agent@([a-z0-9_-]+)\.service", script)
            return [f"MAXPORTAL_UNIT max-agent@{kind}.service active" for kind in dict.fromkeys(kinds)]
        if step == "base_config":
            return [
                "MAXPORTAL_VERSION node 20.19.5",
                "MAXPORTAL_VERSION npm 10.8.2",
                "MAXPORTAL_VERSION python3 3.11.2",
            ]
        return []

    def _execute(self, *, command: list[str], script: str, timeout_s: float, vmid: int | None) -> ExecResult:
        step = self.step_of(script)
        where = f"CT{vmid}" if vmid is not None else f"node {self.host.node}"
        shown = _quote(command)
        logger.info("SIMULATED %s on %s (host %s): would run %s with %d bytes on stdin",
                    step, where, self.host.name, shown, len(script))
        lines = [f"SIMULATED: {where} on {self.host.name}: {shown} <<< {step} script ({len(script)} bytes)"]
        failure = self._take_failure(step, vmid)
        started = time.monotonic()
        duration = self._duration(step)
        if failure and failure.hang:
            time.sleep(max(timeout_s, 0))
            lines.append(f"maxportal: script cut at its {timeout_s:g}s time limit (SIMULATED hang)")
            result = ExecResult(TIMEOUT_EXIT_CODE, "\n".join(lines) + "\n", time.monotonic() - started, True)
        elif duration > timeout_s:
            time.sleep(max(timeout_s, 0))
            lines.append(f"maxportal: script cut at its {timeout_s:g}s time limit (SIMULATED {duration:g}s step)")
            result = ExecResult(TIMEOUT_EXIT_CODE, "\n".join(lines) + "\n", time.monotonic() - started, True)
        else:
            time.sleep(duration)
            if failure:
                lines.append(failure.output or f"SIMULATED failure of {step} (injected)")
                exit_code = failure.exit_code or 1
            else:
                lines.extend(self._answer(step, script, vmid))
                lines.append(f"SIMULATED: {step} done")
                exit_code = 0
            result = ExecResult(exit_code, tail_text("\n".join(lines) + "\n"), time.monotonic() - started, False)
        with self._lock:
            self.history.append(SimulatedRun(self.host.name, vmid, step, shown, script, result))
        return result


def executor_for(host: ProxmoxHost) -> Executor:
    """The executor the host's ``executor`` field names."""
    if host.executor == ExecutorChoices.SIMULATED:
        return SimulatedExecutor(host)
    if host.executor == ExecutorChoices.SSH:
        return SshExecutor(host)
    raise ExecutorConfigError(
        f"Host {host.name} has executor '{host.executor}'; choose one of: "
        f"{', '.join(ExecutorChoices.values)}.",
        host=host.name,
    )


def pct_set_command(vmid: int, **params) -> list[str]:
    """``pct set <vmid> -<key> <value> ...``; True/False become 1/0."""
    if not params:
        raise ExecutorConfigError("pct set needs at least one parameter, e.g. mp0='/var/lib/vz/shared,mp=/mnt/shared'.")
    command = [*pct_command(), "set", str(int(vmid))]
    for key, value in params.items():
        if not _PCT_PARAM.match(key):
            raise ExecutorConfigError(f"'{key}' is not a pct option name (lower-case letters and digits, e.g. mp0).")
        if isinstance(value, bool):
            value = int(value)
        text = str(value)
        if any(ord(ch) < 32 for ch in text):
            raise ExecutorConfigError(f"The value of pct option {key} contains control characters.")
        command += [f"-{key}", text]
    return command


def pct_set_as_root(host: ProxmoxHost, vmid: int, **params) -> ExecResult:
    """The root channel over SSH: ``pct set`` as root on the node, for what tokens may not set.

    e.g. ``pct_set_as_root(host, 201, mp0="/var/lib/vz/shared,mp=/mnt/shared")`` or
    ``features="nesting=1,keyctl=1"``. The host's ssh_user must be root (or allowed to run pct).
    """
    if host.root_channel != RootChannelChoices.SSH:
        raise ExecutorConfigError(
            f"Host {host.name}'s root channel is '{host.root_channel}', not 'ssh': pct set as root over SSH "
            f"is not allowed for it. Set root_channel to ssh (with the SSH fields), or use the ticket channel.",
            host=host.name,
        )
    command = pct_set_command(vmid, **params)
    script = f"set -euo pipefail\n{_quote(command)}\n"
    timeout_s = float(_setting("MAXPORTAL_PCT_SET_TIMEOUT", 60))
    return executor_for(host).run_on_node(script=script, timeout_s=timeout_s)

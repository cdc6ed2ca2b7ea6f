"""Scripts run on the Proxmox node over SSH: ``pct exec <vmid> -- bash -s`` with paramiko.

Proxmox has no API to run a command inside a container, so real tools SSH to the node and run
``pct exec <vmid> -- ...``. The script travels on stdin (``bash -s``), never on the command line,
so nothing in it is parsed twice. Invariants:

- The node's host key must be in the host's known_hosts file; an unknown or changed key is
  refused, never learned.
- Every call has a time limit, enforced twice: ``timeout`` on the node (and inside the container)
  kills the script, and the client gives up and closes the session shortly after in case the
  node itself hangs. Either way the result says ``timed_out``.
- Output is kept bounded while it streams (the tail is what a person needs to see a failure).
- Transport problems (cannot connect, host key, authentication) raise ``ExecutorError``; a script
  that ran and failed is an ``ExecResult`` with its exit code.
"""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING

import paramiko

from .base import TIMEOUT_EXIT_CODE, ExecResult, Executor, Simulation, TailBuffer, quote, setting
from .errors import ExecutorAuthError, ExecutorConfigError, ExecutorConnectionError, ExecutorHostKeyError

if TYPE_CHECKING:
    from provisioning.models import ProxmoxHost

logger = logging.getLogger(__name__)

_KILLED_EXIT_CODES = {TIMEOUT_EXIT_CODE, 128 + 9}


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
        connect_timeout = float(setting("MAXPORTAL_SSH_CONNECT_TIMEOUT", 10))
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

    def _execute(self, *, command: list[str], script: str, timeout_s: float, vmid: int | None,
                 simulation: Simulation | None = None) -> ExecResult:
        grace = float(setting("MAXPORTAL_SSH_TIMEOUT_GRACE", 20))
        started = time.monotonic()
        deadline = started + timeout_s + grace
        remote = quote(command)
        logger.info("SSH %s: %s (%d bytes on stdin)", self._where, remote, len(script))
        client = self._connect()
        output = TailBuffer()
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

"""The Proxmox VE client: container records turned into API calls through proxmoxer.

What this module keeps true:

- **One retry policy** (``RetryPolicy``, used by ``ProxmoxClient._call`` only): connection errors,
  timeouts, HTTP 5xx and 595/596 are retried a bounded number of times with exponential backoff;
  4xx never are, nor are the 500s Proxmox uses for definite answers ("CT 201 already exists",
  "does not exist", "only root", "already running"), nor a failed TLS verification.
- **Errors say what happened**: every failure is a ``ProxmoxError`` subclass carrying Proxmox's own
  message and HTTP status, and for tasks the UPID, the exit status and the log tail.
- **Tasks are never waited for inside a call**: every call that starts a task returns its UPID;
  ``task_status`` is one non-blocking read, ``wait_task`` a bounded poll for short waits and the CLI.
  ``OK`` and ``WARNINGS: N`` are success, anything else is the task's error.
- **root@pam is explicit**: an API token is never root@pam (its identity is ``root@pam!name``), so
  Proxmox refuses it ``features`` other than nesting (``keyctl=1``) and bind mounts (``mp0`` with a
  host path). Those go through the host's root channel: a ticket login as root@pam (password from
  ``host.root_password_env``) or ``pct set`` as root over SSH (a runner the SSH executor provides).
  Without a channel, ``ProxmoxRootRequired`` names the checklist steps that need it and how to set it.

Decision on ``keyctl``: ``create_container`` creates with the token and only ``nesting=1`` (all a
token may set), so the create works on every host; the caller then applies ``root_features(container)``
with ``set_config`` once the create task ended OK (through the root channel, or
``ProxmoxRootRequired`` naming the "LXC created" step). Doing it in the create call itself would
tie the whole create to the root channel and, over SSH, lose the UPID to follow.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.utils.module_loading import import_string
from proxmoxer import ProxmoxAPI, ResourceException
from proxmoxer.core import AuthenticationError

if TYPE_CHECKING:
    from .models import Container, ProxmoxHost

logger = logging.getLogger(__name__)

__all__ = [
    "ROOT_ONLY_STEPS",
    "ProxmoxClient",
    "ProxmoxContainerExists",
    "ProxmoxError",
    "ProxmoxNotFound",
    "ProxmoxPermissionDenied",
    "ProxmoxRootRequired",
    "ProxmoxSnapshotUnavailable",
    "ProxmoxTaskFailed",
    "ProxmoxUnavailable",
    "RetryPolicy",
    "TaskStatus",
    "read_named_secret",
    "task_succeeded",
]

# The checklist steps that need root@pam on Proxmox, and what for (the plan's phases 2 and 6).
ROOT_ONLY_STEPS = {
    "LXC created": "features keyctl=1",
    "Signal dir": "the bind mount mp0 of the shared signal folder",
}
ROOT_CHANNEL_HELP = (
    "Set the host's root channel: 'ticket' (root@pam password in the environment variable named by "
    "root_password_env) or 'ssh' (pct set as root over SSH with the host's ssh_* settings)."
)

UPID_RE = re.compile(r"^UPID:(?P<node>[a-zA-Z0-9][a-zA-Z0-9.-]*):[0-9A-Fa-f]{8,}:[0-9A-Fa-f]{8,}:"
                     r"[0-9A-Fa-f]{8,}:(?P<type>[^:]*):(?P<id>[^:]*):(?P<user>[^:]+):$")
WARNINGS_RE = re.compile(r"^WARNINGS: \d+$")
EXISTS_RE = re.compile(r"\b(?P<kind>CT|VM) (?P<vmid>\d+) already exists on node '(?P<node>[^']*)'")
MOUNT_SLOT_RE = re.compile(r"^mp\d+$")
# 500s that are Proxmox's definite answer, not a passing fault: retrying cannot change them.
DEFINITE_500 = re.compile(
    r"already exists|does not exist|only root|only allowed for root|already running|not running"
    r"|unable to parse worker upid|no such task|unable to destroy|reserved name|protection mode"
    r"|no options specified|unable to (delete|modify) (required|read-only)|detected modified configuration"
    r"|checksum mismatch|storage '[^']*' does not",
    re.IGNORECASE,
)
# The container or task is not there (Proxmox answers 500, or 400 for a task, instead of 404).
NOT_FOUND_RE = re.compile(
    r"Configuration file '[^']*' does not exist|unable to parse worker upid|no such task", re.IGNORECASE
)
ROOT_MESSAGE_RE = re.compile(r"root@pam|only root", re.IGNORECASE)
# Proxmox returns 595/596 (AnyEvent::HTTP) when it cannot reach the node it proxies to.
UNAVAILABLE_STATUSES = {595, 596, 597, 598, 599}


# ----------------------------------------------------------------------------------- errors


class ProxmoxError(Exception):
    """A Proxmox call failed. ``message`` is what to show; Proxmox's own words are kept in it."""

    def __init__(self, message: str, *, status_code: int | None = None, upid: str | None = None,
                 log_tail: str = ""):
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.upid = upid
        self.log_tail = log_tail


class ProxmoxUnavailable(ProxmoxError):
    """Proxmox could not be reached or answered 5xx/595/596 on every attempt, or a wait timed out."""


class ProxmoxPermissionDenied(ProxmoxError):
    """Proxmox refused the credentials or the action (401/403, or a root-only 500)."""

    def __init__(self, message: str, *, needs_root: bool = False, **kwargs):
        super().__init__(message, **kwargs)
        self.needs_root = needs_root


class ProxmoxContainerExists(ProxmoxError):
    """The create failed because the vmid is taken (HTTP 500 "CT N already exists on node 'X'")."""

    def __init__(self, message: str, *, vmid: int, kind: str = "CT", node: str = "", **kwargs):
        super().__init__(message, **kwargs)
        self.vmid = vmid
        self.kind = kind
        self.node = node


class ProxmoxNotFound(ProxmoxError):
    """The container (or task) does not exist on the node."""


class ProxmoxTaskFailed(ProxmoxError):
    """A task ended with an exit status other than OK / WARNINGS: N."""

    def __init__(self, message: str, *, exitstatus: str | None = None, **kwargs):
        super().__init__(message, **kwargs)
        self.exitstatus = exitstatus


class ProxmoxRootRequired(ProxmoxError):
    """The change needs root@pam and the host has no root channel configured."""

    def __init__(self, message: str, *, steps: list[str] | None = None, params: list[str] | None = None, **kwargs):
        super().__init__(message, **kwargs)
        self.steps = steps or []
        self.params = params or []


class ProxmoxSnapshotUnavailable(ProxmoxError):
    """A snapshot was refused before asking Proxmox: the container has a bind mount."""


# ----------------------------------------------------------------------------- small types


@dataclass(frozen=True)
class TaskStatus:
    """One reading of a Proxmox task. ``ok`` is None while it runs."""

    upid: str
    running: bool
    ok: bool | None
    exitstatus: str | None
    log_tail: str = ""


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded attempts with exponential backoff: base, 2*base, 4*base ... capped at max_delay."""

    attempts: int = 4
    base_delay: float = 1.0
    max_delay: float = 10.0

    @classmethod
    def from_settings(cls) -> RetryPolicy:
        return cls(
            attempts=max(1, settings.MAXPORTAL_PVE_RETRY_ATTEMPTS),
            base_delay=settings.MAXPORTAL_PVE_RETRY_BASE_DELAY,
            max_delay=settings.MAXPORTAL_PVE_RETRY_MAX_DELAY,
        )

    def delay(self, failed_attempt: int) -> float:
        """Seconds to wait after the n-th failed attempt (1-based)."""
        return min(self.max_delay, self.base_delay * (2 ** (failed_attempt - 1)))


def task_succeeded(exitstatus: str | None) -> bool:
    """Proxmox's rule: OK and "WARNINGS: N" are success, anything else is the error text."""
    return exitstatus == "OK" or bool(exitstatus and WARNINGS_RE.match(exitstatus))


def read_named_secret(name: str) -> str | None:
    """The secret in the environment variable ``name``, else in the file ``name`` under
    MAXPORTAL_PVE_SECRETS_DIR (how the local Proxmox hands over its root password), else None."""
    if not name:
        return None
    value = os.environ.get(name)
    if value:
        return value
    path = Path(settings.MAXPORTAL_PVE_SECRETS_DIR) / name
    if path.is_file():
        return path.read_text().strip() or None
    return None


# runner(host, vmid, **params) -> ExecResult (exit_code, output_tail, timed_out): `pct set` as root
# on the node over SSH. The default is provisioning.executors.pct_set_as_root.
RootCommandRunner = Callable[..., object]


# ------------------------------------------------------------------------------- the client


class ProxmoxClient:
    """Calls on one Proxmox host's node, as its API token (and its root channel where needed)."""

    def __init__(self, host: ProxmoxHost, *, retry: RetryPolicy | None = None, timeout: float | None = None,
                 ssh_runner: RootCommandRunner | None = None, sleep: Callable[[float], None] = time.sleep):
        self.host = host
        self.node = host.node
        self.retry = retry or RetryPolicy.from_settings()
        self.timeout = settings.MAXPORTAL_PVE_TIMEOUT if timeout is None else timeout
        self._ssh_runner = ssh_runner
        self._sleep = sleep
        parts = urlsplit(host.api_url)
        if parts.scheme != "https" or not parts.hostname:
            raise ProxmoxError(
                f"Host {host.name}: api_url {host.api_url!r} is not an https URL; use e.g. https://127.0.0.1:8006."
            )
        self._hostname = parts.hostname
        self._port = parts.port or 8006
        self._verify = self._tls_verify(host)
        self._api = None
        self._root_api = None

    @classmethod
    def for_host(cls, host: ProxmoxHost, **kwargs) -> ProxmoxClient:
        """The client for a ProxmoxHost row: token secret from token_secret_env / token_secret_file,
        https with the MAXPORTAL_PVE_TIMEOUT timeout, TLS verified against host.ca_file when set."""
        return cls(host, **kwargs)

    # ---------------------------------------------------------------------- connection

    @staticmethod
    def _tls_verify(host: ProxmoxHost) -> bool | str:
        if host.ca_file:
            if not Path(host.ca_file).is_file():
                raise ProxmoxError(
                    f"Host {host.name}: the CA file {host.ca_file} does not exist; point ca_file at the PEM "
                    "certificate that signed the Proxmox API's certificate (or empty it to use the system CAs)."
                )
            return host.ca_file
        return bool(host.verify_tls)

    def _token_secret(self) -> str:
        host = self.host
        if host.token_secret_env and os.environ.get(host.token_secret_env):
            return os.environ[host.token_secret_env]
        if host.token_secret_file:
            try:
                secret = Path(host.token_secret_file).read_text().strip()
            except OSError as exc:
                raise ProxmoxPermissionDenied(
                    f"Host {host.name}: cannot read the API token secret file {host.token_secret_file} ({exc})."
                ) from None
            if secret:
                return secret
        where = " or ".join(
            x for x in (host.token_secret_env and f"the environment variable {host.token_secret_env}",
                        host.token_secret_file and f"the file {host.token_secret_file}") if x
        ) or "nowhere (set token_secret_env or token_secret_file)"
        raise ProxmoxPermissionDenied(f"Host {host.name}: no API token secret found in {where}.")

    def _connect(self, **auth) -> ProxmoxAPI:
        return ProxmoxAPI(self._hostname, port=self._port, backend="https", verify_ssl=self._verify,
                          timeout=self.timeout, **auth)

    @property
    def api(self) -> ProxmoxAPI:
        """proxmoxer as the host's API token (no request is made until a call)."""
        if self._api is None:
            host = self.host
            if not host.token_id or "!" not in host.token_id:
                raise ProxmoxPermissionDenied(
                    f"Host {host.name}: token_id {host.token_id!r} is not an API token id "
                    "(user@realm!tokenname, e.g. root@pam!maxportal)."
                )
            user, _, name = host.token_id.partition("!")
            self._api = self._connect(user=user, token_name=name, token_value=self._token_secret())
        return self._api

    def _root_ticket_api(self) -> ProxmoxAPI:
        if self._root_api is None:
            host = self.host
            password = read_named_secret(host.root_password_env)
            if not password:
                name = host.root_password_env
                where = (
                    f"the environment variable {name} or the file {Path(settings.MAXPORTAL_PVE_SECRETS_DIR) / name}"
                    if name else "nowhere: root_password_env is empty"
                )
                raise ProxmoxRootRequired(
                    f"Host {host.name}: root_channel is 'ticket' but no root@pam password was found ({where}). "
                    + ROOT_CHANNEL_HELP,
                    steps=list(ROOT_ONLY_STEPS),
                )

            # Called inside _call's retry loop: connection errors and 5xx of the login are retried there.
            try:
                self._root_api = self._connect(user="root@pam", password=password)
            except AuthenticationError as exc:
                code = re.search(r"code: (\d+)", str(exc))
                status = int(code.group(1)) if code else 401
                if status >= 500:
                    raise ProxmoxUnavailable(
                        f"Host {host.name}: the root@pam ticket login got HTTP {status}.", status_code=status
                    ) from None
                raise ProxmoxPermissionDenied(
                    f"Host {host.name}: the root@pam ticket login was refused ({exc}); check the password "
                    f"in {host.root_password_env}.", status_code=status, needs_root=True,
                ) from None
        return self._root_api

    # ------------------------------------------------------------------ the one retry loop

    def _retrying(self, what: str, fn: Callable[[], object]):
        """Run fn under the retry policy; every outside call goes through here."""
        attempts = self.retry.attempts
        last: ProxmoxError | None = None
        for attempt in range(1, attempts + 1):
            try:
                return fn()
            except ProxmoxUnavailable as exc:  # raised by fn itself (a root@pam login that got 5xx)
                error = exc
            except ResourceException as exc:
                error = self._classify(what, exc)
            except requests.exceptions.SSLError as exc:
                # A certificate that does not verify is a configuration error: retrying cannot fix it.
                raise ProxmoxUnavailable(
                    f"{what}: TLS verification of {self.host.api_url} failed against "
                    f"{self.host.ca_file or 'the system CAs'}: {exc}. Point the host's ca_file at the CA that "
                    "signed the Proxmox certificate."
                ) from None
            except requests.exceptions.Timeout:
                error = ProxmoxUnavailable(f"{what}: no answer from {self.host.api_url} within {self.timeout:g} s")
            except requests.exceptions.ConnectionError as exc:
                error = ProxmoxUnavailable(f"{what}: cannot connect to {self.host.api_url}: {_short(exc)}")
            if not isinstance(error, ProxmoxUnavailable):
                raise error
            last = error
            if attempt < attempts:
                delay = self.retry.delay(attempt)
                logger.warning("%s (attempt %d of %d); retrying in %.2f s", error.message, attempt, attempts, delay)
                self._sleep(delay)
        raise ProxmoxUnavailable(
            f"{last.message} (gave up after {attempts} attempt{'s' if attempts != 1 else ''})",
            status_code=last.status_code,
        )

    def _classify(self, what: str, exc: ResourceException) -> ProxmoxError:
        status = exc.status_code
        text = str(exc.content or exc.status_message or "").strip()
        errors = exc.errors
        if isinstance(errors, dict) and isinstance(errors.get("errors"), bytes):
            errors = None  # not JSON (a proxy's HTML page): the status line says enough
        if errors:
            text = f"{text} {errors}".strip()
        message = f"{what}: {text} (HTTP {status})"
        if status in UNAVAILABLE_STATUSES:
            return ProxmoxUnavailable(message, status_code=status)
        found = EXISTS_RE.search(text)
        if found:
            return ProxmoxContainerExists(message, status_code=status, vmid=int(found["vmid"]),
                                          kind=found["kind"], node=found["node"])
        if status == 403 or (status == 500 and re.search(r"only root can", text, re.IGNORECASE)):
            needs_root = bool(ROOT_MESSAGE_RE.search(text))
            hint = (
                f" An API token is never root@pam: this needs the host's root channel. {ROOT_CHANNEL_HELP}"
                if needs_root
                else f" Grant the token ({self.host.token_id}) the privilege named above."
            )
            return ProxmoxPermissionDenied(message + hint, status_code=status, needs_root=needs_root)
        if status == 401:
            return ProxmoxPermissionDenied(
                message + f" Check the API token {self.host.token_id} and its secret.", status_code=status
            )
        if status == 404 or (status in (400, 500) and NOT_FOUND_RE.search(text)):
            return ProxmoxNotFound(message, status_code=status)
        # 501 (not implemented) is as definite as a 4xx.
        if status >= 500 and status != 501 and not DEFINITE_500.search(text):
            return ProxmoxUnavailable(message, status_code=status)
        return ProxmoxError(message, status_code=status)

    def _call(self, method: str, path: str, *, root: bool = False, **params):
        """One API call (``path`` under /api2/json) with the retry policy; returns Proxmox's ``data``."""
        what = f"{method} {path}"

        def go():
            api = self._root_ticket_api() if root else self.api
            resource = api(path.strip("/"))
            return getattr(resource, method.lower())(**params)

        return self._retrying(what, go)

    def _lxc(self, vmid: int, suffix: str = "") -> str:
        return f"nodes/{self.node}/lxc/{int(vmid)}{suffix}"

    # ------------------------------------------------------------------------------ node

    def node_status(self) -> dict:
        """GET /nodes/{node}/status: memory {total, used, free}, cpuinfo {cores, cpus, model}, rootfs ..."""
        return self._call("GET", f"nodes/{self.node}/status")

    # ------------------------------------------------------------------------- containers

    @staticmethod
    def create_params(container: Container) -> dict:
        """The POST /nodes/{node}/lxc parameters of a container record, as a token may send them."""
        params = {
            "vmid": container.vmid,
            "ostemplate": container.ostemplate,
            "hostname": container.hostname,
            "cores": container.cores,
            "memory": container.memory_mb,
            "swap": container.swap_mb,
            "rootfs": f"{container.storage}:{container.rootfs_gb}",
            "unprivileged": 1 if container.unprivileged else 0,
            "start": 0,
        }
        if container.storage:
            params["storage"] = container.storage
        net0 = net0_of(container)
        if net0:
            params["net0"] = net0
        if container.feature_nesting:
            # The only feature flag a token may set; keyctl follows through the root channel.
            params["features"] = "nesting=1"
        return params

    @staticmethod
    def root_features(container: Container) -> dict:
        """The config a token cannot set at create: ``{"features": "nesting=1,keyctl=1"}`` or {}."""
        if not container.feature_keyctl:
            return {}
        flags = (["nesting=1"] if container.feature_nesting else []) + ["keyctl=1"]
        return {"features": ",".join(flags)}

    def create_container(self, container: Container) -> str:
        """Start the create task (POST /nodes/{node}/lxc, start=0) as the token; returns its UPID.

        Raises ProxmoxContainerExists when the vmid is taken: then ``find_container`` tells whether
        it is this record's container (adopt it) or another one.
        """
        missing = [name for name in ("ostemplate", "storage", "rootfs_gb") if not getattr(container, name)]
        if missing:
            raise ProxmoxError(
                f"CT{container.vmid} cannot be created: {', '.join(missing)} not set on the record; "
                "fill them in (the plan uses local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst on local-lvm)."
            )
        return self._call("POST", f"nodes/{self.node}/lxc", **self.create_params(container))

    def start(self, vmid: int) -> str:
        return self._call("POST", self._lxc(vmid, "/status/start"))

    def stop(self, vmid: int) -> str:
        return self._call("POST", self._lxc(vmid, "/status/stop"))

    def shutdown(self, vmid: int, timeout: int = 60, *, force_stop: bool = False) -> str:
        params = {"timeout": int(timeout)}
        if force_stop:
            params["forceStop"] = 1
        return self._call("POST", self._lxc(vmid, "/status/shutdown"), **params)

    def current_status(self, vmid: int) -> dict:
        """GET .../status/current: status ('running', 'stopped'), maxmem, cpus, lock ... (ProxmoxNotFound)."""
        return self._call("GET", self._lxc(vmid, "/status/current"))

    def get_config(self, vmid: int) -> dict:
        """GET .../config (pending values included, as Proxmox shows them); ProxmoxNotFound if missing."""
        return self._call("GET", self._lxc(vmid, "/config"))

    def list_containers(self) -> list[dict]:
        """GET /nodes/{node}/lxc: every container on the node with its status and resources."""
        return list(self._call("GET", f"nodes/{self.node}/lxc") or [])

    def find_container(self, vmid: int) -> dict | None:
        """What holds this vmid in the cluster, or None: {vmid, type ('lxc'|'qemu'), node, hostname,
        status, lock}. Answers "is the container I meant to create there?" after a create that timed
        out or met "already exists"."""
        resources = self._call("GET", "cluster/resources", type="vm") or []
        for item in resources:
            if int(item.get("vmid", -1)) == int(vmid):
                return {
                    "vmid": int(vmid),
                    "type": item.get("type"),
                    "node": item.get("node"),
                    "hostname": item.get("name"),
                    "status": item.get("status"),
                    "lock": item.get("lock"),
                }
        return None

    # ----------------------------------------------------------------------------- config

    def root_params(self, vmid: int, params: dict) -> list[str]:
        """The parameters a token cannot set (and root@pam can): feature flags other than nesting
        that change, mount points with a host path (bind or device), devN, hookscript, raw lxc keys."""
        needed = []
        for key, value in params.items():
            if key == "features":
                current = _flags(self.get_config(vmid).get("features", ""))
                wanted = _flags(value)
                changed = {k for k in set(current) | set(wanted) if current.get(k) != wanted.get(k)}
                if changed - {"nesting"}:
                    needed.append(key)
            elif (MOUNT_SLOT_RE.match(key) and str(value).split(",")[0].startswith("/")) or (
                re.fullmatch(r"dev\d+", key) or key == "hookscript" or key.startswith("lxc")
            ):
                needed.append(key)
        return needed

    def set_config(self, vmid: int, **params) -> None:
        """PUT .../config (synchronous). Parameters that need root@pam send the whole change through
        the host's root channel (ticket login or `pct set` over SSH); without one, ProxmoxRootRequired."""
        if not params:
            raise ProxmoxError(f"CT{vmid}: set_config needs at least one parameter.")
        needs_root = self.root_params(vmid, params)
        if not needs_root:
            self._call("PUT", self._lxc(vmid, "/config"), **params)
            return
        channel = self.host.root_channel
        if channel == "ticket":
            self._call("PUT", self._lxc(vmid, "/config"), root=True, **params)
        elif channel == "ssh":
            self._pct_set(vmid, params)
        else:
            steps = [s for s, why in ROOT_ONLY_STEPS.items()
                     if ("keyctl" in why and "features" in needs_root)
                     or ("mp0" in why and any(MOUNT_SLOT_RE.match(k) for k in needs_root))] or list(ROOT_ONLY_STEPS)
            raise ProxmoxRootRequired(
                f"CT{vmid}: setting {', '.join(f'{k}={params[k]}' for k in needs_root)} needs root@pam, which an API "
                f"token never is, and host {self.host.name} has no root channel. Steps that need it: "
                f"{'; '.join(f'{s} ({ROOT_ONLY_STEPS[s]})' for s in steps)}. {ROOT_CHANNEL_HELP}",
                steps=steps, params=needs_root, status_code=403,
            )

    def _pct_set(self, vmid: int, params: dict) -> None:
        """The SSH root channel: ``pct set`` as root on the node, run by the SSH executor's runner
        (``provisioning.executors.pct_set_as_root`` unless MAXPORTAL_PVE_SSH_ROOT_RUNNER names another)."""
        runner = self._ssh_runner
        if runner is None and settings.MAXPORTAL_PVE_SSH_ROOT_RUNNER:
            runner = import_string(settings.MAXPORTAL_PVE_SSH_ROOT_RUNNER)
        if runner is None:
            raise ProxmoxRootRequired(
                f"Host {self.host.name}: root_channel is 'ssh' but no SSH runner is configured "
                "(settings.MAXPORTAL_PVE_SSH_ROOT_RUNNER names the callable that runs pct set as root on the node).",
                steps=list(ROOT_ONLY_STEPS), params=list(params),
            )
        from .executors import ExecutorConnectionError, ExecutorError

        command = f"pct set {int(vmid)} " + " ".join(f"-{k} {shlex.quote(str(v))}" for k, v in params.items())
        try:
            result = runner(self.host, int(vmid), **params)
        except ExecutorConnectionError as exc:
            raise ProxmoxUnavailable(f"CT{vmid}: `{command}` over SSH to {self.host.name}: {exc.message}") from None
        except ExecutorError as exc:
            raise ProxmoxError(f"CT{vmid}: `{command}` over SSH to {self.host.name}: {exc.message}") from None
        output = getattr(result, "output_tail", "") or ""
        if getattr(result, "timed_out", False):
            raise ProxmoxUnavailable(
                f"CT{vmid}: `{command}` as root on {self.host.name} timed out.", log_tail=_tail(output, 30)
            )
        if result.exit_code != 0:
            raise ProxmoxError(
                f"CT{vmid}: `{command}` as root on {self.host.name} exited {result.exit_code}: "
                f"{_tail(output, 5) or '(no output)'}",
                log_tail=_tail(output, settings.MAXPORTAL_PVE_LOG_TAIL_LINES),
            )

    def bind_mount(self, vmid: int, host_path: str, mount_path: str, slot: str = "mp0") -> None:
        """Bind-mount a host folder into the container (the plan's ``mp0: /var/lib/vz/shared,mp=/mnt/shared``).
        Root only: goes through the root channel."""
        if not MOUNT_SLOT_RE.match(slot):
            raise ProxmoxError(f"CT{vmid}: mount slot {slot!r} is not mpN (e.g. mp0).")
        for label, path in (("host path", host_path), ("mount path", mount_path)):
            if not path.startswith("/") or "," in path or "=" in path:
                raise ProxmoxError(f"CT{vmid}: the {label} {path!r} must be absolute and contain no ',' or '='.")
        self.set_config(vmid, **{slot: f"{host_path},mp={mount_path}"})

    # -------------------------------------------------------------------------- snapshots

    def list_snapshots(self, vmid: int) -> list[dict]:
        """The snapshots, without Proxmox's "current" pseudo-entry."""
        data = self._call("GET", self._lxc(vmid, "/snapshot")) or []
        return [s for s in data if s.get("name") != "current"]

    def bind_mounts(self, vmid: int, config: dict | None = None) -> dict[str, str]:
        """{slot: host path} of the container's bind mounts (mpN whose volume is an absolute path)."""
        config = self.get_config(vmid) if config is None else config
        out = {}
        for key, value in config.items():
            if MOUNT_SLOT_RE.match(key):
                volume = str(value).split(",")[0]
                if volume.startswith("/"):
                    out[key] = volume
        return out

    def create_snapshot(self, vmid: int, name: str, description: str = "") -> str:
        """Start a snapshot task; refuses first, without asking Proxmox to try, when the container
        has a bind mount (Proxmox fails those with "snapshot feature is not available")."""
        mounts = self.bind_mounts(vmid)
        if mounts:
            listed = ", ".join(f"{k} ({v})" for k, v in sorted(mounts.items()))
            raise ProxmoxSnapshotUnavailable(
                f"CT{vmid} cannot be snapshotted: it has the bind mount {listed}, and Proxmox refuses snapshots "
                "of containers with bind mounts (\"snapshot feature is not available\"). Back it up with vzdump, "
                "or remove the mount point, snapshot, and add it again."
            )
        params = {"snapname": name}
        if description:
            params["description"] = description
        return self._call("POST", self._lxc(vmid, "/snapshot"), **params)

    def rollback_snapshot(self, vmid: int, name: str) -> str:
        return self._call("POST", self._lxc(vmid, f"/snapshot/{name}/rollback"))

    def delete_snapshot(self, vmid: int, name: str) -> str:
        return self._call("DELETE", self._lxc(vmid, f"/snapshot/{name}"))

    # ---------------------------------------------------------------------------- destroy

    def destroy(self, vmid: int, *, expected_hostname: str) -> str:
        """Destroy a stopped container whose hostname is the one expected; returns the task's UPID.

        Refuses a running container and a hostname mismatch (a vmid typed wrong must not destroy
        someone else's container)."""
        status = self.current_status(vmid)
        config = self.get_config(vmid)
        hostname = config.get("hostname")
        if hostname != expected_hostname:
            raise ProxmoxError(
                f"CT{vmid} on {self.node} is '{hostname}', not '{expected_hostname}': refusing to destroy it. "
                "Check the vmid."
            )
        if status.get("status") != "stopped":
            raise ProxmoxError(
                f"CT{vmid} ({hostname}) is {status.get('status')}: stop or shut it down before destroying it."
            )
        if config.get("lock"):
            raise ProxmoxError(f"CT{vmid} ({hostname}) is locked ({config['lock']}): wait for the task holding it.")
        return self._call("DELETE", self._lxc(vmid), purge=1)

    # ------------------------------------------------------------------------------ tasks

    @staticmethod
    def _task_node(upid: str) -> str:
        found = UPID_RE.match(upid or "")
        if not found:
            raise ProxmoxError(f"{upid!r} is not a Proxmox task id (UPID:node:pid:pstart:starttime:type:id:user:).")
        return found["node"]

    def task_log_tail(self, upid: str, lines: int | None = None) -> str:
        lines = settings.MAXPORTAL_PVE_LOG_TAIL_LINES if lines is None else lines
        node = self._task_node(upid)
        # The API pages from the start and proxmoxer drops the total: read a generous page, keep the end.
        entries = self._call("GET", f"nodes/{node}/tasks/{upid}/log", start=0, limit=5000) or []
        return "\n".join(str(e.get("t", "")) for e in entries[-lines:])

    def task_status(self, upid: str) -> TaskStatus:
        """One non-blocking reading of a task; the log tail is read once it stopped."""
        node = self._task_node(upid)
        data = self._call("GET", f"nodes/{node}/tasks/{upid}/status") or {}
        if data.get("status") != "stopped":
            return TaskStatus(upid=upid, running=True, ok=None, exitstatus=None, log_tail="")
        exitstatus = data.get("exitstatus")
        return TaskStatus(upid=upid, running=False, ok=task_succeeded(exitstatus), exitstatus=exitstatus,
                          log_tail=self.task_log_tail(upid))

    def wait_task(self, upid: str, *, timeout: float, poll_interval: float = 1.0) -> TaskStatus:
        """Poll until the task stops; ProxmoxTaskFailed if it failed, ProxmoxUnavailable on timeout.
        For short waits and the CLI: Celery steps poll with task_status instead of blocking."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.task_status(upid)
            if not status.running:
                if not status.ok:
                    raise task_failure(status)
                return status
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ProxmoxUnavailable(f"Task {upid} still running after {timeout:g} s.", upid=upid)
            self._sleep(min(poll_interval, remaining))


def task_failure(status: TaskStatus) -> ProxmoxTaskFailed:
    """The error of a task that ended badly: Proxmox's exit status and the end of its log."""
    found = UPID_RE.match(status.upid)
    what = f"{found['type']} of {found['id']}" if found and found["id"] else (found["type"] if found else "task")
    return ProxmoxTaskFailed(
        f"Proxmox task {what} failed: {status.exitstatus}", upid=status.upid, exitstatus=status.exitstatus,
        log_tail=status.log_tail,
    )


def net0_of(container: Container) -> str:
    """The net0 value: name=eth0,bridge=vmbr1,ip=10.0.100.201/24,gw=10.0.100.1,type=veth ('' without a bridge)."""
    if not container.bridge_id:
        return ""
    parts = ["name=eth0", f"bridge={container.bridge.name}"]
    if container.ip_address:
        prefix = container.prefix_length or container.bridge.network.prefixlen
        parts.append(f"ip={container.ip_address}/{prefix}")
        gateway = container.gateway or container.bridge.gateway
        if gateway:
            parts.append(f"gw={gateway}")
    else:
        parts.append("ip=dhcp")
    parts.append("type=veth")
    return ",".join(parts)


def _flags(text) -> dict[str, str]:
    out = {}
    for part in str(text or "").split(","):
        key, eq, value = part.partition("=")
        if eq and key:
            out[key.strip()] = {"true": "1", "false": "0", "yes": "1", "no": "0", "on": "1", "off": "0"}.get(
                value.strip().lower(), value.strip())
    return out


def _tail(text: str, lines: int) -> str:
    return "\n".join((text or "").rstrip().splitlines()[-lines:])


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) <= 300 else text[:300] + "..."

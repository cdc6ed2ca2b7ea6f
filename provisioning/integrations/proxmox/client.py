"""The Proxmox VE client: container records turned into API calls through proxmoxer.

What this module keeps true:

- **One retry policy** (``RetryPolicy``, used by ``ProxmoxClient._call`` only): connection errors,
  timeouts, HTTP 5xx and 595/596 are retried a bounded number of times with exponential backoff;
  4xx never are, nor are the 500s Proxmox uses for definite answers ("CT 201 already exists",
  "does not exist", "only root", "already running"), nor a failed TLS verification.
- **Errors say what happened**: every failure is a ``ProxmoxError`` subclass (``errors.py``)
  carrying Proxmox's own message and HTTP status, and for tasks the UPID, the exit status and the log tail.
- **Tasks are never waited for inside a call**: every call that starts a task returns its UPID;
  ``task_status`` is one non-blocking read, ``wait_task`` a bounded poll for short waits and the CLI.
  ``OK`` and ``WARNINGS: N`` are success, anything else is the task's error.
- **root@pam is explicit**: an API token is never root@pam (its identity is ``root@pam!name``), so
  Proxmox refuses it ``features`` other than nesting (``keyctl=1``) and bind mounts (``mp0`` with a
  host path). Those go through the host's root channel: a ticket login as root@pam (password from
  ``host.root_password_env``) or ``pct set`` as root over SSH (a runner the SSH executor provides).
  Without a channel, ``ProxmoxRootRequired`` names the parameters that need it and how to set one.

Decision on ``keyctl``: ``create_container`` creates with the token and only ``nesting=1`` (all a
token may set), so the create works on every host; the caller then applies ``root_features(container)``
with ``set_config`` once the create task ended OK (through the root channel, or
``ProxmoxRootRequired``). Doing it in the create call itself would
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

from ..executors.base import tail_text
from ..executors.errors import ExecutorConnectionError, ExecutorError
from . import params as pve_params
from .errors import (
    ROOT_CHANNEL_HELP,
    ProxmoxError,
    ProxmoxNotFound,
    ProxmoxPermissionDenied,
    ProxmoxRootRequired,
    ProxmoxSnapshotUnavailable,
    ProxmoxUnavailable,
    classify,
)
from .params import MOUNT_SLOT_RE
from .tasks import TaskStatus, task_failure, task_node, task_succeeded

if TYPE_CHECKING:
    from provisioning.models import Container, ProxmoxHost

logger = logging.getLogger(__name__)

__all__ = ["ProxmoxClient", "ProxmoxNotFound", "RetryPolicy", "read_named_secret"]


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
# on the node over SSH. The default is integrations.executors.factory.pct_set_as_root.
RootCommandRunner = Callable[..., object]


# runner(host, vmid, **params) -> ExecResult (exit_code, output_tail, timed_out): `pct set` as root
# on the node over SSH. The default is provisioning.integrations.executors.factory.pct_set_as_root.
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
                error = classify(what, exc, token_id=self.host.token_id)
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
        raise last.again(f"{last.message} (gave up after {attempts} attempt{'s' if attempts != 1 else ''})")

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

    # The record as parameters (params.py); on the client too, as callers build calls from it.
    create_params = staticmethod(pve_params.create_params)
    root_features = staticmethod(pve_params.root_features)

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
        """The parameters of ``params`` only root@pam may set on CT ``vmid`` (see params.root_only_params)."""
        return pve_params.root_only_params(params, lambda: self.get_config(vmid).get("features", ""))

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
            raise ProxmoxRootRequired(
                f"CT{vmid}: setting {', '.join(f'{k}={params[k]}' for k in needs_root)} needs root@pam, which an API "
                f"token never is, and host {self.host.name} has no root channel. {ROOT_CHANNEL_HELP}",
                params=needs_root, status_code=403,
            )

    def _pct_set(self, vmid: int, params: dict) -> None:
        """The SSH root channel: ``pct set`` as root on the node, run by the SSH executor's runner
        (``integrations.executors.factory.pct_set_as_root`` unless MAXPORTAL_PVE_SSH_ROOT_RUNNER names another)."""
        runner = self._ssh_runner
        if runner is None and settings.MAXPORTAL_PVE_SSH_ROOT_RUNNER:
            runner = import_string(settings.MAXPORTAL_PVE_SSH_ROOT_RUNNER)
        if runner is None:
            raise ProxmoxRootRequired(
                f"Host {self.host.name}: root_channel is 'ssh' but no SSH runner is configured "
                "(settings.MAXPORTAL_PVE_SSH_ROOT_RUNNER names the callable that runs pct set as root on the node).",
                params=list(params),
            )
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
                f"CT{vmid}: `{command}` as root on {self.host.name} timed out.", log_tail=_last_lines(output, 30)
            )
        if result.exit_code != 0:
            raise ProxmoxError(
                f"CT{vmid}: `{command}` as root on {self.host.name} exited {result.exit_code}: "
                f"{_last_lines(output, 5) or '(no output)'}",
                log_tail=_last_lines(output, settings.MAXPORTAL_PVE_LOG_TAIL_LINES),
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

    def task_log_tail(self, upid: str, lines: int | None = None) -> str:
        lines = settings.MAXPORTAL_PVE_LOG_TAIL_LINES if lines is None else lines
        node = task_node(upid)
        # The API pages from the start and proxmoxer drops the total: read a generous page, keep the end.
        entries = self._call("GET", f"nodes/{node}/tasks/{upid}/log", start=0, limit=5000) or []
        return "\n".join(str(e.get("t", "")) for e in entries[-lines:])

    def task_status(self, upid: str) -> TaskStatus:
        """One non-blocking reading of a task; the log tail is read once it stopped."""
        node = task_node(upid)
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



def _last_lines(text: str, lines: int) -> str:
    """The output's last lines, as a message quotes them (the executors' ``tail_text``, stripped)."""
    return tail_text((text or "").rstrip(), lines=lines).rstrip()


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) <= 300 else text[:300] + "..."

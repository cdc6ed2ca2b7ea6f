"""The embedded local Proxmox: fakepve dressed as the AX42, for `make run`, the tests and the benchmark.

fakepve (a dev-only dependency) serves the real Proxmox VE API shapes over HTTPS. This module adds
what the MAX plan needs on top of it:

- the node is called ``ax42`` and ``/nodes/ax42/status`` reports the AX42's capacity (fakepve
  answers placeholder zeros there);
- the plan's Debian template is in storage ``local``; containers go on ``local-lvm``;
- an API token ``root@pam!maxportal`` and a ``root@pam`` password; **permission mode is on**, so a
  token is refused what Proxmox refuses it (``keyctl=1``: 403, bind mounts: 403 on config and 500 on
  create) while a ``root@pam`` ticket may do both, exactly as on the real host;
- task durations long enough that progress shows in the browser (scaled by ``time_scale``).

Secrets never go to the database: the CA certificate, the token secret and the root password are
files under ``var/pve/`` (mode 0600 for the secrets), and ``configure_local_host`` points the
ProxmoxHost row at those files. It listens on loopback only.

Its state lives in memory; ``manage.py local_proxmox`` saves the containers to var/pve/state.json
every few seconds and at exit and loads them at start, so restarting ``make run`` keeps them
(``--fresh`` starts empty). ``seed_containers`` puts the pre-existing CT100 on the node.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import json
import logging
import os
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from ..choices import ExecutorChoices, RootChannelChoices

logger = logging.getLogger(__name__)

NODE = "ax42"
TOKEN_USER = "root@pam"  # noqa: S105 - a user id, not a secret
TOKEN_NAME = "maxportal"  # noqa: S105 - the token's name, not its secret
TOKEN_ID = f"{TOKEN_USER}!{TOKEN_NAME}"
DEBIAN_TEMPLATE = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"
# Where the secrets of the local Proxmox live; ROOT_PASSWORD_ENV is also the name of the file
# holding the root password (see integrations.proxmox.client.read_named_secret: the variable, else this file).
ROOT_PASSWORD_ENV = "MAXPORTAL_LOCAL_PVE_ROOT_PASSWORD"  # noqa: S105 - a variable name
CA_FILE_NAME = "ca.crt"
KEY_FILE_NAME = "server.key"
TOKEN_FILE_NAME = "token-secret"  # noqa: S105 - a file name
START_TIMEOUT = 30.0
GiB = 1024**3

# PVE seconds each task takes at time_scale 1. Long enough that a person watching the grid sees a
# container being created and started (real Proxmox: roughly 10-60 s for a create on NVMe).
DEFAULT_TASK_SECONDS = {
    "create": 5.0,
    "start": 2.0,
    "stop": 1.0,
    "shutdown": 2.0,
    "destroy": 2.0,
    "snapshot": 2.0,
    "delsnapshot": 1.0,
    "rollback": 2.0,
}


@dataclass(frozen=True)
class NodeCapacity:
    """What /nodes/{node}/status reports: the AX42 of the plan (64 GB RAM, 8 cores / 16 threads)."""

    cpu_model: str = "AMD Ryzen 7 PRO 8700GE w/ Radeon 780M Graphics"
    cores: int = 8
    threads: int = 16
    memory_bytes: int = 64 * GiB
    rootfs_bytes: int = 2 * 512 * 1000**3
    kernel: str = "6.8.12-4-pve"


def _fake_classes():
    """fakepve is a dev requirement: import it only when the local Proxmox is wanted."""
    try:
        import fakepve  # noqa: F401
    except ModuleNotFoundError as exc:  # pragma: no cover - depends on the installation
        raise RuntimeError(
            "The local Proxmox needs the dev requirements (fakepve): run "
            "`.venv/bin/pip install -r requirements-dev.txt`."
        ) from exc
    from fakepve.server import FakePve

    return FakePve


@functools.cache
def _make_local_pve_class():
    FakePve = _fake_classes()

    class LocalPve(FakePve):
        """fakepve with the AX42's capacity and per-container power task durations."""

        capacity: NodeCapacity = NodeCapacity()
        power_secs: dict = {}

        def _node_stats(self, online):
            if not online:
                return {}
            cap = self.capacity
            used = sum(self._maxmem(ct) for ct in self.cts if ct.status == "running")
            return {
                "cpu": 0.02,
                "maxcpu": cap.threads,
                "mem": used,
                "maxmem": cap.memory_bytes,
                "disk": 0,
                "maxdisk": cap.rootfs_bytes,
                "uptime": 3600,
            }

        def _routes_node_status(self):
            # A stateful route is registered before fakepve's catch-all, with the schema's checks.
            return [("GET", "/nodes/{node}/status", self._node_status)]

        async def _node_status(self, values, user):
            cap = self.capacity
            used = sum(self._maxmem(ct) for ct in self.cts if ct.status == "running")
            return {
                "cpu": 0.02,
                "wait": 0,
                "uptime": 3600,
                "idle": 0,
                "loadavg": ["0.10", "0.08", "0.05"],
                "kversion": f"Linux {cap.kernel} #1 SMP PREEMPT_DYNAMIC PMX",
                "pveversion": f"pve-manager/{self.version}/fakepve",
                "cpuinfo": {
                    "model": cap.cpu_model,
                    "cores": cap.cores,
                    "cpus": cap.threads,
                    "sockets": 1,
                    "mhz": "3600.000",
                    "hvm": "1",
                    "user_hz": 100,
                    "flags": "fpu vme",
                },
                "memory": {"total": cap.memory_bytes, "used": used, "free": cap.memory_bytes - used},
                "swap": {"total": 0, "used": 0, "free": 0},
                "rootfs": {"total": cap.rootfs_bytes, "used": 0, "avail": cap.rootfs_bytes, "free": cap.rootfs_bytes},
                "ksm": {"shared": 0},
            }

        def _set_power_secs(self, vmid):
            ct = self.ct(int(vmid))
            if ct is not None:
                ct.start_secs = self.power_secs.get("start", 0)
                ct.stop_secs = self.power_secs.get("stop", 0)
                ct.shutdown_secs = self.power_secs.get("shutdown", 0)

        async def _lxc_start(self, user, v):
            self._set_power_secs(v["vmid"])
            return await super()._lxc_start(user, v)

        async def _lxc_stop(self, user, v):
            self._set_power_secs(v["vmid"])
            return await super()._lxc_stop(user, v)

        async def _lxc_shutdown(self, user, v):
            self._set_power_secs(v["vmid"])
            return await super()._lxc_shutdown(user, v)

    return LocalPve


def _cert_still_good(certfile: Path, days: int = 7) -> bool:
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(certfile.read_bytes())
    except (OSError, ValueError):
        return False
    remaining = cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
    return remaining > datetime.timedelta(days=days)


def _write_secret(path: Path, value: str) -> None:
    """Write a secret readable by its owner only, whatever the umask."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        os.chmod(path, 0o600)
        out.write(value + "\n")


def _read_or_make_secret(path: Path) -> str:
    """Keep a secret across restarts, so running workers that read it keep working."""
    if path.exists():
        value = path.read_text().strip()
        if value:
            return value
    value = secrets.token_urlsafe(24)
    _write_secret(path, value)
    return value


@dataclass
class LocalProxmox:
    """A started local Proxmox: where it listens, its files and the fakepve object (for fault injection).

    ``pve`` is the fakepve server object: ``pve.fail(...)``, ``pve.set_node_offline("ax42")``,
    ``pve.slow_network(...)``, ``pve.flaky_network(...)``, ``pve.ct(vmid)``, ``pve.tasks`` ...
    """

    pve: object
    directory: Path
    ca_file: Path
    token_secret_file: Path
    root_password_file: Path
    token_secret: str = field(repr=False)
    root_password: str = field(repr=False)
    _loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    node = NODE
    token_id = TOKEN_ID
    root_password_env = ROOT_PASSWORD_ENV

    @property
    def host(self) -> str:
        return self.pve.host

    @property
    def port(self) -> int:
        return self.pve.port

    @property
    def url(self) -> str:
        """https://127.0.0.1:<port>, the ProxmoxHost.api_url form (no /api2/json)."""
        return self.pve.url

    @property
    def time_scale(self) -> float:
        return self.pve.time_scale

    def call(self, coro, timeout: float = START_TIMEOUT):
        """Run a coroutine of the fake (e.g. ``pve.hold_config_lock(201, 30)``) on its event loop."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def seed_containers(self, specs) -> None:
        """Put pre-existing containers on the node (CT100 on the AX42): dicts with vmid, hostname,
        cores, memory_mb and optionally status ('running' by default) and rootfs_gb."""

        async def add():
            for spec in specs:
                if self.pve.guest(int(spec["vmid"])) is not None:
                    continue
                size = spec.get("rootfs_gb") or 32
                config = {
                    "hostname": spec["hostname"],
                    "cores": int(spec["cores"]),
                    "memory": int(spec["memory_mb"]),
                    "swap": 0,
                    "rootfs": f"local-lvm:vm-{spec['vmid']}-disk-0,size={size}G",
                }
                self.pve.add_ct(
                    int(spec["vmid"]), node=NODE, status=spec.get("status", "running"), config=config
                )

        self.call(add())

    def snapshot_state(self) -> dict:
        """The containers as plain data (read on the fake's event loop, so it is consistent)."""

        async def read():
            return {
                "containers": [
                    {"vmid": ct.vmid, "node": ct.node, "status": ct.status, "config": dict(ct.config),
                     "pending": dict(ct.pending),
                     "snapshots": {name: dict(snap) for name, snap in ct.snapshots.items()}}
                    for ct in self.pve.cts
                    if not ct.lock  # a container mid-task (create, destroy) is not worth keeping
                ]
            }

        return self.call(read())

    def save_state(self, path: Path | str) -> None:
        """Write the containers to ``path`` (atomically), so a restart of the local Proxmox keeps them."""
        path = Path(path)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.snapshot_state(), indent=1, sort_keys=True))
        os.replace(tmp, path)

    def load_state(self, path: Path | str) -> int:
        """Put back the containers a previous run saved; returns how many. A missing file loads nothing."""
        path = Path(path)
        if not path.is_file():
            return 0
        try:
            data = json.loads(path.read_text())
        except ValueError as exc:
            raise ValueError(f"{path} is not a saved local Proxmox state ({exc}); remove it to start empty.") from None

        async def add():
            count = 0
            for item in data.get("containers", []):
                if self.pve.guest(int(item["vmid"])) is not None:
                    continue
                ct = self.pve.add_ct(int(item["vmid"]), node=item.get("node", NODE), status=item["status"],
                                     config=item["config"], defaults=False)
                ct.snapshots = dict(item.get("snapshots") or {})
                ct.pending = dict(item.get("pending") or {})
                count += 1
            return count

        return self.call(add())

    def stop(self) -> None:
        """Stop listening and end the event loop thread (idempotent)."""
        if self._loop is None:
            return
        from fakepve.server import settle

        try:
            self.call(settle())
            self.call(self.pve.stop())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._thread is not None:
                self._thread.join(START_TIMEOUT)
            if self._thread is None or not self._thread.is_alive():
                self._loop.close()
            self._loop = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def start_local_proxmox(
    *,
    directory: Path | str | None = None,
    port: int | None = None,
    time_scale: float | None = None,
    task_seconds: dict | None = None,
    capacity: NodeCapacity | None = None,
    host: str = "127.0.0.1",
) -> LocalProxmox:
    """Start the local Proxmox on loopback in a background thread and return its handle.

    ``port`` 0 lets the system pick a free one (tests); the default is MAXPORTAL_PVE_LOCAL_PORT
    (8006). ``time_scale`` is real seconds per PVE second: 0 finishes every task before the POST
    returns, 1 runs ``task_seconds`` in real time. Files go to ``directory`` (default
    MAXPORTAL_PVE_SECRETS_DIR, i.e. var/pve/). Call ``stop()`` when done.
    """
    _fake_classes()  # a clear message when the dev requirements are missing
    from fakepve.certs import make_cert

    if host not in ("127.0.0.1", "::1", "localhost"):
        raise ValueError(f"The local Proxmox listens on loopback only, not on {host!r}.")
    directory = Path(directory or settings.MAXPORTAL_PVE_SECRETS_DIR)
    directory.mkdir(parents=True, exist_ok=True)
    port = settings.MAXPORTAL_PVE_LOCAL_PORT if port is None else port
    time_scale = settings.MAXPORTAL_PVE_LOCAL_TIME_SCALE if time_scale is None else time_scale
    if time_scale < 0:
        raise ValueError(f"time_scale must be 0 or more (real seconds per Proxmox second), not {time_scale}.")

    ca_file = directory / CA_FILE_NAME
    key_file = directory / KEY_FILE_NAME
    if not (key_file.exists() and _cert_still_good(ca_file)):
        # fakepve's self-signed certificate is its own CA: clients verify against it.
        made_cert, made_key, _ = make_cert(str(directory), name="server", hosts=(host,))
        os.replace(made_cert, ca_file)
        os.replace(made_key, key_file)
    token_secret_file = directory / TOKEN_FILE_NAME
    root_password_file = directory / ROOT_PASSWORD_ENV
    token_secret = _read_or_make_secret(token_secret_file)
    root_password = _read_or_make_secret(root_password_file)

    LocalPve = _make_local_pve_class()
    pve = LocalPve(user=TOKEN_USER, password=root_password, host=host, port=port)
    pve.capacity = capacity or NodeCapacity()
    pve.time_scale = float(time_scale)
    seconds = dict(DEFAULT_TASK_SECONDS, **(task_seconds or {}))
    pve.power_secs = {k: seconds[k] for k in ("start", "stop", "shutdown")}
    for kind in ("create", "destroy", "snapshot", "delsnapshot", "rollback"):
        pve.ct_secs[kind] = seconds[kind]
    # The node is the AX42, not fakepve's pve1.
    pve.nodes = {NODE: {"online": True}}
    pve.store_file("local", DEBIAN_TEMPLATE.split("/", 1)[1], 126 * 1024**2, content="vztmpl")
    pve.apitokens[TOKEN_ID] = token_secret
    # Permission mode: any grant switches fakepve's root@pam-only rules on. The token of root@pam
    # keeps root's privileges (privsep off) but is not root@pam, as on the real host.
    pve.grant(TOKEN_USER, "/", "Sys.Audit")

    # One access line per poll drowns the log of make run; errors still show.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=_run_loop, args=(loop,), name="local-proxmox", daemon=True)
    thread.start()
    local = LocalProxmox(
        pve=pve,
        directory=directory,
        ca_file=ca_file,
        token_secret_file=token_secret_file,
        root_password_file=root_password_file,
        token_secret=token_secret,
        root_password=root_password,
        _loop=loop,
        _thread=thread,
    )
    try:
        local.call(pve.start(str(ca_file), str(key_file)))
    except BaseException:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(START_TIMEOUT)
        raise
    logger.info("local Proxmox (fakepve) listening on %s, node %s, time_scale %s", pve.url, NODE, time_scale)
    return local


def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    loop.run_forever()


def configure_local_host(host, local: LocalProxmox | None = None, *, port: int | None = None,
                         directory: Path | str | None = None):
    """Point a ProxmoxHost row (the ax42) at the local Proxmox and save it.

    API on loopback, TLS verified against the local CA file, the token secret read from its file,
    root@pam through a ticket login (password from the variable MAXPORTAL_LOCAL_PVE_ROOT_PASSWORD,
    else the file of that name in var/pve/), in-container scripts on the simulated executor.
    Without ``local``, the files and port are the defaults a running ``manage.py local_proxmox`` uses.
    """
    if local is not None:
        directory, port = local.directory, local.port
    directory = Path(directory or settings.MAXPORTAL_PVE_SECRETS_DIR)
    port = settings.MAXPORTAL_PVE_LOCAL_PORT if port is None else port
    host.api_url = f"https://127.0.0.1:{port}"
    host.node = NODE
    host.verify_tls = True
    host.ca_file = str(directory / CA_FILE_NAME)
    host.token_id = TOKEN_ID
    host.token_secret_env = ""
    host.token_secret_file = str(directory / TOKEN_FILE_NAME)
    host.root_channel = RootChannelChoices.TICKET
    host.root_password_env = ROOT_PASSWORD_ENV
    host.executor = ExecutorChoices.SIMULATED
    host.full_clean()
    host.save()
    return host

"""Fixtures for the provisioning tests: a real local Proxmox (fakepve over HTTPS on loopback).

- ``pve_server``: the started LocalProxmox (port 0, time_scale 0 unless marked
  ``@pytest.mark.pve(time_scale=0.05, task_seconds={"create": 2})``); stopped after the test.
- ``pve``: its fakepve object, for fault injection and state: ``pve.fail(...)``,
  ``pve.set_node_offline("ax42")``, ``pve.flaky_network(hang_rate=1, hang_secs=2)``, ``pve.ct(201)``,
  ``pve.tasks``, ``pve.requests``.
- ``pve_host``: the ax42 ProxmoxHost row pointed at it (token, CA file, root@pam ticket channel,
  simulated executor) with a fast retry policy in the settings.
- ``pve_client``: ``ProxmoxClient.for_host(pve_host)``.
- ``pve_container``: CT201 "lilly" on pve_host as the plan describes it (saved, not created on Proxmox).

Shared by the checklist tests:

- ``plan``: the MAX plan loaded with every managed container's checklist rows.
- ``ct201``: CT201 (with its host) of the plan.
- ``operator``: the staff user as an Actor (via "test").
- ``local_ct201``: CT201 of the plan on the local Proxmox, simulated steps taking no time.
- ``broker``: the broker boundary replaced: what the engine sends is recorded, not delivered.
- ``driver``: an ``EngineDriver`` delivering the engine's messages in the test's thread.
"""

import pytest

from maxportal.kernel.actors import Actor
from provisioning import plan_data as max_plan
from provisioning.devtools.local_pve import configure_local_host, start_local_proxmox
from provisioning.integrations.executors.simulated import SimulatedExecutor
from provisioning.integrations.proxmox.client import ProxmoxClient
from provisioning.models import Container, NetworkBridge, ProxmoxHost
from provisioning.services import checklist_ensure_all

from .engine import Broker, EngineDriver


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "pve(time_scale=0, task_seconds=None): options of the pve_server fixture (the local Proxmox)",
    )


@pytest.fixture
def pve_server(request, tmp_path):
    """A started local Proxmox (node ax42, the Debian template, token + root password, permission mode)."""
    marker = request.node.get_closest_marker("pve")
    options = {"time_scale": 0.0, "task_seconds": None}
    if marker:
        options.update(marker.kwargs)
    local = start_local_proxmox(directory=tmp_path / "pve", port=0, **options)
    try:
        yield local
    finally:
        local.stop()


@pytest.fixture
def pve(pve_server):
    """The fakepve object behind pve_server (fault injection, state)."""
    return pve_server.pve


@pytest.fixture
def pve_host(db, pve_server, settings):
    """The ax42 host row, configured for the local Proxmox; retries are fast (10 ms backoff)."""
    settings.MAXPORTAL_PVE_SECRETS_DIR = pve_server.directory
    settings.MAXPORTAL_PVE_RETRY_ATTEMPTS = 3
    settings.MAXPORTAL_PVE_RETRY_BASE_DELAY = 0.01
    settings.MAXPORTAL_PVE_RETRY_MAX_DELAY = 0.05
    settings.MAXPORTAL_PVE_TIMEOUT = 5.0
    host = ProxmoxHost.objects.filter(name=max_plan.HOST["name"]).first()
    if host is None:
        host = ProxmoxHost(**max_plan.HOST, api_url=pve_server.url)
    return configure_local_host(host, pve_server)


@pytest.fixture
def pve_bridge(pve_host):
    bridge, _ = NetworkBridge.objects.get_or_create(
        host=pve_host, name=max_plan.BRIDGE["name"],
        defaults={"subnet": max_plan.BRIDGE["subnet"], "gateway": max_plan.BRIDGE["gateway"]},
    )
    return bridge


@pytest.fixture
def pve_container(pve_host, pve_bridge):
    """CT201 lilly as the plan has it (2 cores, 4 GB, 40 GB on local-lvm, vmbr1 10.0.100.201/24)."""
    container = Container.objects.filter(host=pve_host, vmid=201).first()
    if container is None:
        container = Container(host=pve_host, vmid=201, hostname="lilly", bridge=pve_bridge,
                              ip_address="10.0.100.201", **max_plan.MAX_CONTAINER_DEFAULTS)
        container.full_clean()
        container.save()
    return container


@pytest.fixture
def pve_client(pve_host):
    return ProxmoxClient.for_host(pve_host)


# --- The checklist ---------------------------------------------------------------------------------


@pytest.fixture
def plan(max_plan):
    """The MAX plan with every managed container's checklist rows."""
    checklist_ensure_all()
    return max_plan


@pytest.fixture
def ct201(plan):
    return Container.objects.select_related("host").get(vmid=201)


@pytest.fixture
def operator(staff_user):
    return Actor.for_user(staff_user, "test")


@pytest.fixture
def fast_simulation(settings):
    """Simulated scripts take no time, a Proxmox task is polled again at once; no injected failures."""
    settings.MAXPORTAL_SIMULATED_TIME_SCALE = 0
    settings.MAXPORTAL_STEP_POLL_SECONDS = 0
    SimulatedExecutor.clear()
    yield
    SimulatedExecutor.clear()


@pytest.fixture
def local_ct201(max_plan, pve_host, fast_simulation):
    """CT201 of the plan (checklist rows made) on the local Proxmox."""
    checklist_ensure_all()
    return Container.objects.select_related("host").get(vmid=201)


@pytest.fixture
def broker(monkeypatch):
    return Broker(monkeypatch)


@pytest.fixture
def driver(monkeypatch):
    return EngineDriver(monkeypatch)

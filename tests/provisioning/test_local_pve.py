"""The local Proxmox: fakepve as the AX42, with the plan's template, a token, root@pam and real rules."""

import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from provisioning import plan_data as max_plan
from provisioning.devtools.local_pve import (
    DEBIAN_TEMPLATE,
    ROOT_PASSWORD_ENV,
    TOKEN_ID,
    configure_local_host,
    start_local_proxmox,
)
from provisioning.integrations.proxmox.client import ProxmoxClient
from provisioning.integrations.proxmox.errors import ProxmoxPermissionDenied
from provisioning.models import ProxmoxHost

BASE_DIR = Path(__file__).resolve().parents[2]


def test_the_node_is_the_ax42_with_its_capacity(pve_client):
    status = pve_client.node_status()

    assert status["memory"]["total"] == 64 * 1024**3, "64 GB of RAM"
    assert (status["cpuinfo"]["cores"], status["cpuinfo"]["cpus"]) == (8, 16), "8 cores, 16 threads"
    assert "Ryzen 7 PRO 8700GE" in status["cpuinfo"]["model"]
    nodes = pve_client._call("GET", "nodes")
    assert [(n["node"], n["maxcpu"], n["maxmem"]) for n in nodes] == [("ax42", 16, 64 * 1024**3)]


def test_node_memory_in_use_follows_running_containers(pve_server, pve_client):
    pve_server.seed_containers([{"vmid": 100, "hostname": "mach42v2", "cores": 6, "memory_mb": 24576}])

    assert pve_client.node_status()["memory"]["used"] == 24 * 1024**3


def test_the_debian_template_is_in_storage_local(pve_client):
    content = pve_client._call("GET", "nodes/ax42/storage/local/content", content="vztmpl")

    assert DEBIAN_TEMPLATE in [item["volid"] for item in content]


def test_permission_mode_is_on_the_token_is_refused_root_only_changes(pve, pve_client, pve_container):
    # Given a container created by the token (nesting only)
    pve_client.wait_task(pve_client.create_container(pve_container), timeout=10)

    # Then keyctl and a bind mount are refused to the token, as on the real host
    for params in ({"features": "nesting=1,keyctl=1"}, {"mp0": "/var/lib/vz/shared,mp=/mnt/shared"}):
        with pytest.raises(ProxmoxPermissionDenied) as caught:
            pve_client._call("PUT", "nodes/ax42/lxc/201/config", **params)
        assert caught.value.status_code == 403 and caught.value.needs_root, params


def test_a_create_with_a_bind_mount_is_refused_to_the_token(pve_client, pve_container):
    params = ProxmoxClient.create_params(pve_container)
    params.update(vmid=202, hostname="mike", mp0="/var/lib/vz/shared,mp=/mnt/shared")
    params.pop("net0")

    with pytest.raises(ProxmoxPermissionDenied) as caught:
        pve_client._call("POST", "nodes/ax42/lxc", **params)
    # fakepve answers 403 where Proxmox answers 500 "Only root can pass arbitrary filesystem paths";
    # errors.classify reads either as "needs root".
    assert caught.value.needs_root and caught.value.status_code == 403


def test_root_at_pam_by_ticket_may_set_keyctl(pve_server, pve_host, pve_client, pve_container):
    pve_client.wait_task(pve_client.create_container(pve_container), timeout=10)

    pve_client._call("PUT", "nodes/ax42/lxc/201/config", root=True, features="nesting=1,keyctl=1")

    assert pve_server.pve.ct(201).config["features"] == "keyctl=1,nesting=1"


def test_configure_local_host_points_the_row_at_files_not_secrets(db, pve_server):
    host = ProxmoxHost(**max_plan.HOST, api_url="https://127.0.0.1:8006")

    configure_local_host(host, pve_server)

    host.refresh_from_db()
    assert host.api_url == pve_server.url and pve_server.url.startswith("https://127.0.0.1:")
    assert (host.node, host.token_id, host.verify_tls) == ("ax42", TOKEN_ID, True)
    assert host.ca_file == str(pve_server.ca_file) and Path(host.ca_file).is_file()
    assert host.token_secret_file == str(pve_server.token_secret_file)
    assert (host.root_channel, host.root_password_env, host.executor) == ("ticket", ROOT_PASSWORD_ENV, "simulated")
    stored = " ".join(str(getattr(host, f.attname)) for f in ProxmoxHost._meta.concrete_fields)
    assert pve_server.token_secret not in stored and pve_server.root_password not in stored, "no secret in the DB"
    for secret in (pve_server.token_secret_file, pve_server.root_password_file):
        assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600, f"{secret} is readable by its owner only"


def test_secrets_and_certificate_survive_a_restart(tmp_path):
    first = start_local_proxmox(directory=tmp_path, port=0, time_scale=0)
    try:
        token, password, cert = first.token_secret, first.root_password, first.ca_file.read_bytes()
    finally:
        first.stop()

    second = start_local_proxmox(directory=tmp_path, port=0, time_scale=0)
    try:
        assert (second.token_secret, second.root_password) == (token, password)
        assert second.ca_file.read_bytes() == cert, "running clients keep trusting the same CA"
    finally:
        second.stop()


@pytest.mark.pve(time_scale=0.1, task_seconds={"create": 3, "start": 2})
def test_tasks_take_their_scaled_time_so_progress_is_visible(pve_client, pve_container):
    started = time.monotonic()
    upid = pve_client.create_container(pve_container)

    assert pve_client.task_status(upid).running, "the create is still running right after the POST"
    pve_client.wait_task(upid, timeout=10, poll_interval=0.05)
    created_after = time.monotonic() - started
    start = pve_client.start(201)
    assert pve_client.task_status(start).running, "the start takes time too"
    pve_client.wait_task(start, timeout=10, poll_interval=0.05)

    assert 0.3 <= created_after < 2.0, f"create took {created_after:.2f} s, expected about 0.3 s"


def test_saved_containers_come_back_after_a_restart(pve_server, pve_client, pve_container, tmp_path):
    # Given a container with a bind mount, keyctl and a snapshot, saved to a file
    pve_client.wait_task(pve_client.create_container(pve_container), timeout=10)
    pve_client.wait_task(pve_client.create_snapshot(201, "fresh"), timeout=10)
    pve_client.set_config(201, features="nesting=1,keyctl=1")
    pve_client.bind_mount(201, "/var/lib/vz/shared", "/mnt/shared")
    pve_client.wait_task(pve_client.start(201), timeout=10)
    before = pve_client.get_config(201)
    state = tmp_path / "state.json"
    pve_server.save_state(state)

    # When another local Proxmox loads it
    other = start_local_proxmox(directory=pve_server.directory, port=0, time_scale=0)
    try:
        assert other.load_state(state) == 1
        assert other.load_state(state) == 0, "loading twice adds nothing"
        ct = other.pve.ct(201)
        # Then the container is there as it was
        assert ct.status == "running" and ct.config["mp0"] == before["mp0"]
        assert ct.config["features"] == "keyctl=1,nesting=1" and set(ct.snapshots) == {"fresh"}
    finally:
        other.stop()


def test_a_corrupt_state_file_is_named(pve_server, tmp_path):
    state = tmp_path / "state.json"
    state.write_text("{not json")

    with pytest.raises(ValueError, match="is not a saved local Proxmox state"):
        pve_server.load_state(state)


def test_the_local_proxmox_listens_on_loopback_only(tmp_path):
    with pytest.raises(ValueError, match="loopback only"):
        start_local_proxmox(directory=tmp_path, port=0, host="0.0.0.0")  # noqa: S104 - the refused case


def test_seeded_containers_are_running_and_not_seeded_twice(pve_server, pve_client):
    spec = {"vmid": 100, "hostname": "mach42v2", "cores": 6, "memory_mb": 24576}

    pve_server.seed_containers([spec])
    pve_server.seed_containers([spec])

    listed = pve_client.list_containers()
    assert [(c["vmid"], c["name"], c["status"]) for c in listed] == [(100, "mach42v2", "running")]


@pytest.mark.slow
def test_the_management_command_serves_until_terminated(tmp_path, settings):
    # Given the plan's host in a database of its own (the command runs in another process)
    database = tmp_path / "db.sqlite3"
    env = dict(os.environ, DATABASE_URL=f"sqlite:///{database}", PYTHONUNBUFFERED="1")
    for command in (["migrate", "-v0"], ["load_max_plan"]):
        subprocess.run([sys.executable, "manage.py", *command], cwd=BASE_DIR, env=env, check=True, timeout=120,
                       capture_output=True)
    # When the command runs (port 0: the system picks one)
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "local_proxmox", "--port", "0", "--time-scale", "0",
         "--dir", str(tmp_path / "pve"), "--configure-host"],
        cwd=BASE_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        lines = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "local Proxmox listening on" in line:
                break
        output = "".join(lines)
        assert "listening on https://127.0.0.1:" in output, output
        assert "pre-existing containers: CT100" in output, output
        # Then the ax42 row points at it, and a client built from the row reaches it (token, TLS, root ticket)
        with sqlite3.connect(database) as db:
            db.row_factory = sqlite3.Row
            row = dict(db.execute("SELECT * FROM provisioning_proxmoxhost WHERE name = 'ax42'").fetchone())
        host = ProxmoxHost(**{f.attname: row[f.column] for f in ProxmoxHost._meta.concrete_fields})
        assert host.api_url in output and host.root_channel == "ticket" and host.executor == "simulated"
        settings.MAXPORTAL_PVE_SECRETS_DIR = tmp_path / "pve"
        client = ProxmoxClient.for_host(host)
        assert [(c["vmid"], c["status"]) for c in client.list_containers()] == [(100, "running")]
        client.set_config(100, features="nesting=1,keyctl=1")  # root@pam through the ticket channel
        assert "keyctl=1" in client.get_config(100)["features"]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rest, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise
    assert proc.returncode == 0 and "local Proxmox stopped" in rest
    saved = json.loads((tmp_path / "pve" / "state.json").read_text())
    # CT100 runs, so the new features wait in its pending config for the next start, as in Proxmox.
    assert [(c["vmid"], c["pending"]["features"]) for c in saved["containers"]] == [(100, "keyctl=1,nesting=1")], (
        "the state is saved at exit for the next start"
    )

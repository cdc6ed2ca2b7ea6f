"""The Proxmox client against a real HTTPS Proxmox API on loopback (fakepve, permission mode on).

proxmoxer is not mocked: every test goes over HTTP(S) to the local Proxmox of conftest.py.
"""

import socket

import pytest
from fakepve.certs import make_cert

from provisioning.checklist import STEPS
from provisioning.integrations.executors.base import ExecResult
from provisioning.integrations.executors.errors import ExecutorConnectionError
from provisioning.integrations.executors.simulated import SimulatedExecutor
from provisioning.integrations.proxmox.client import ProxmoxClient, RetryPolicy
from provisioning.integrations.proxmox.errors import (
    ProxmoxContainerExists,
    ProxmoxError,
    ProxmoxNotFound,
    ProxmoxPermissionDenied,
    ProxmoxRootRequired,
    ProxmoxSnapshotUnavailable,
    ProxmoxTaskFailed,
    ProxmoxUnavailable,
)
from provisioning.integrations.proxmox.params import net0_of
from provisioning.integrations.proxmox.tasks import TaskStatus, task_succeeded

WAIT = 10.0


def requests_to(pve, method, suffix):
    """The requests fakepve saw for this method and path ending."""
    return [r for r in pve.requests if r[0] == method and r[1].split("?")[0].endswith(suffix)]


def created(client, container):
    """Given: the container created on Proxmox (task followed to its end)."""
    client.wait_task(client.create_container(container), timeout=WAIT, poll_interval=0.01)
    return container


def fast_client(host, **kwargs):
    """A client that records its backoff sleeps instead of sleeping."""
    sleeps = []
    client = ProxmoxClient(host, retry=RetryPolicy(attempts=3, base_delay=0.5, max_delay=4), sleep=sleeps.append,
                           **kwargs)
    return client, sleeps


# ------------------------------------------------------------------------------ creating


def test_create_sends_the_plans_pct_create_parameters(pve, pve_client, pve_container):
    upid = pve_client.create_container(pve_container)

    status = pve_client.wait_task(upid, timeout=WAIT, poll_interval=0.01)
    assert status.ok and status.exitstatus == "OK", "the create task should end OK"
    config = pve_client.get_config(201)
    assert config["hostname"] == "lilly"
    assert (config["cores"], int(config["memory"]), config["swap"]) == (2, 4096, 0)
    assert config["rootfs"].startswith("local-lvm:") and "size=40G" in config["rootfs"], "40 GB on local-lvm"
    assert config["unprivileged"] == 1
    assert config["features"] == "nesting=1", "a token may only set nesting; keyctl follows via root"
    net0 = config["net0"]
    for part in ("name=eth0", "bridge=vmbr1", "ip=10.0.100.201/24", "gw=10.0.100.1", "type=veth"):
        assert part in net0, f"net0 should carry {part}: {net0}"
    assert pve_client.current_status(201)["status"] == "stopped", "created with start=0"
    body = requests_to(pve, "POST", "/nodes/ax42/lxc")[-1][2].decode()
    assert "ostemplate=local%3Avztmpl%2Fdebian-12-standard_12.7-1_amd64.tar.zst" in body
    assert "start=0" in body


def test_create_returns_the_upid_at_once_without_waiting(pve_client, pve_container):
    upid = pve_client.create_container(pve_container)

    assert upid.startswith("UPID:ax42:") and ":vzcreate:201:root@pam!maxportal:" in upid


def test_net0_of_a_container_without_address_uses_dhcp(pve_container):
    pve_container.ip_address = None

    assert net0_of(pve_container) == "name=eth0,bridge=vmbr1,ip=dhcp,type=veth"


def test_create_refuses_a_record_without_template_before_calling_proxmox(pve, pve_client, pve_container):
    pve_container.ostemplate = ""

    with pytest.raises(ProxmoxError, match="ostemplate not set"):
        pve_client.create_container(pve_container)
    assert requests_to(pve, "POST", "/nodes/ax42/lxc") == [], "nothing should reach Proxmox"


def test_create_on_a_taken_vmid_raises_exists_and_find_container_tells_whose(pve_client, pve_container):
    created(pve_client, pve_container)

    with pytest.raises(ProxmoxContainerExists) as caught:
        pve_client.create_container(pve_container)

    assert caught.value.vmid == 201 and caught.value.status_code == 500
    assert "CT 201 already exists on node 'ax42'" in caught.value.message
    found = pve_client.find_container(201)
    assert found == {"vmid": 201, "type": "lxc", "node": "ax42", "hostname": "lilly", "status": "stopped",
                     "lock": None}, "find_container should tell the adopter whose container holds the vmid"


def test_find_container_reports_a_vm_holding_the_vmid_and_none_for_a_free_one(pve, pve_client):
    pve.add_vm(205, "web-test", node="ax42")

    assert pve_client.find_container(205)["type"] == "qemu"
    assert pve_client.find_container(206) is None


def test_create_is_not_retried_when_proxmox_says_exists(pve, pve_container, pve_client):
    created(pve_client, pve_container)
    before = len(requests_to(pve, "POST", "/nodes/ax42/lxc"))

    with pytest.raises(ProxmoxContainerExists):
        pve_client.create_container(pve_container)

    assert len(requests_to(pve, "POST", "/nodes/ax42/lxc")) == before + 1, "a definite 500 is not retried"


# ------------------------------------------------------------------------- power, status


def test_start_shutdown_stop_and_current_status(pve_client, pve_container):
    created(pve_client, pve_container)

    pve_client.wait_task(pve_client.start(201), timeout=WAIT, poll_interval=0.01)
    assert pve_client.current_status(201)["status"] == "running"
    pve_client.wait_task(pve_client.shutdown(201, timeout=30), timeout=WAIT, poll_interval=0.01)
    assert pve_client.current_status(201)["status"] == "stopped"
    pve_client.wait_task(pve_client.start(201), timeout=WAIT, poll_interval=0.01)
    pve_client.wait_task(pve_client.stop(201), timeout=WAIT, poll_interval=0.01)
    assert pve_client.current_status(201)["status"] == "stopped"


def test_status_and_config_of_a_missing_container_raise_not_found(pve_client):
    with pytest.raises(ProxmoxNotFound, match="does not exist"):
        pve_client.current_status(299)
    with pytest.raises(ProxmoxNotFound):
        pve_client.get_config(299)


def test_list_containers_shows_what_is_on_the_node(pve_server, pve_client, pve_container):
    pve_server.seed_containers([{"vmid": 100, "hostname": "mach42v2", "cores": 6, "memory_mb": 24576}])
    created(pve_client, pve_container)

    listed = {c["vmid"]: c for c in pve_client.list_containers()}

    assert set(listed) == {100, 201}
    assert listed[100]["status"] == "running" and listed[201]["status"] == "stopped"
    assert listed[100]["maxmem"] == 24576 * 1024 * 1024


# ------------------------------------------------------------------------------- tasks


def test_a_failed_task_raises_with_proxmoxs_message_and_log_tail(pve, pve_client, pve_container):
    created(pve_client, pve_container)
    pve.fail("POST", "/nodes/ax42/lxc/201/status/start", error="quotas_not_supported_unprivileged_containers")

    upid = pve_client.start(201)
    with pytest.raises(ProxmoxTaskFailed) as caught:
        pve_client.wait_task(upid, timeout=WAIT, poll_interval=0.01)

    error = caught.value
    assert error.upid == upid
    assert error.exitstatus == "Quotas are not supported by unprivileged containers."
    assert "Quotas are not supported by unprivileged containers." in error.message
    assert error.log_tail.endswith("TASK ERROR: Quotas are not supported by unprivileged containers.")


def test_a_create_whose_template_is_missing_fails_as_a_task(pve, pve_client, pve_container):
    pve.storages["local"]["volumes"].clear()
    pve.store_file("local", "alpine-3.20-default_20240908_amd64.tar.xz", 3 * 1024**2, content="vztmpl")

    status = pve_client.task_status(pve_client.create_container(pve_container))

    assert status.running is False and status.ok is False
    assert "unable to create CT 201" in status.exitstatus and "does not exist" in status.exitstatus
    assert "TASK ERROR" in status.log_tail


def test_task_status_is_a_single_read_of_a_task_still_running(pve_server, pve_client, pve_container):
    pve_server.pve.time_scale = 0.05  # the create takes 5 Proxmox seconds: 0.25 s here

    upid = pve_client.create_container(pve_container)
    first = pve_client.task_status(upid)

    assert first == TaskStatus(upid=upid, running=True, ok=None, exitstatus=None, log_tail="")
    final = pve_client.wait_task(upid, timeout=WAIT, poll_interval=0.05)
    assert final.ok is True and final.log_tail.endswith("TASK OK")


def test_wait_task_gives_up_after_its_timeout(pve_server, pve_client, pve_container):
    pve_server.pve.time_scale = 1.0  # a 5 s create

    upid = pve_client.create_container(pve_container)
    with pytest.raises(ProxmoxUnavailable, match=r"still running after 0.2 s") as caught:
        pve_client.wait_task(upid, timeout=0.2, poll_interval=0.05)
    assert caught.value.upid == upid


def test_warnings_count_as_success(pve, pve_client, pve_container):
    upid = pve_client.create_container(pve_container)
    pve.tasks[upid]["exitstatus"] = "WARNINGS: 2"

    status = pve_client.wait_task(upid, timeout=WAIT)

    assert status.ok is True and status.exitstatus == "WARNINGS: 2"


@pytest.mark.parametrize(("exitstatus", "ok"), [
    ("OK", True), ("WARNINGS: 1", True), ("WARNINGS: 12", True), ("WARNINGS", False),
    ("unexpected status", False), ("", False), (None, False),
])
def test_task_succeeded_follows_proxmoxs_rule(exitstatus, ok):
    assert task_succeeded(exitstatus) is ok


def test_an_unknown_task_is_not_found_and_a_malformed_upid_is_refused(pve, pve_client):
    with pytest.raises(ProxmoxNotFound):
        pve_client.task_status("UPID:ax42:00001234:00005678:6B015000:vzcreate:201:root@pam!maxportal:")
    seen = len(pve.requests)
    with pytest.raises(ProxmoxError, match="is not a Proxmox task id"):
        pve_client.task_status("not-a-upid")
    assert len(pve.requests) == seen, "a malformed UPID is refused before any request"


# -------------------------------------------------------------------- root@pam and tokens


def test_the_token_is_refused_keyctl_with_403(pve_client, pve_container):
    created(pve_client, pve_container)

    with pytest.raises(ProxmoxPermissionDenied) as caught:
        pve_client._call("PUT", "nodes/ax42/lxc/201/config", features="nesting=1,keyctl=1")

    assert caught.value.status_code == 403 and caught.value.needs_root
    assert "only allowed for root@pam" in caught.value.message
    assert "root channel" in caught.value.message, "the message says a root@pam channel is needed"


def test_without_root_channel_keyctl_raises_root_required_naming_the_parameter(pve, pve_host, pve_container):
    pve_host.root_channel = "none"
    client = ProxmoxClient.for_host(pve_host)
    created(client, pve_container)
    puts = len(requests_to(pve, "PUT", "/config"))

    with pytest.raises(ProxmoxRootRequired) as caught:
        client.set_config(201, **ProxmoxClient.root_features(pve_container))

    assert caught.value.params == ["features"]
    assert [s.slug for s in STEPS.needing_root(caught.value.params)] == ["lxc_created"], "the registry names the step"
    assert "features=nesting=1,keyctl=1 needs root@pam" in caught.value.message
    assert "'ticket'" in caught.value.message and "'ssh'" in caught.value.message, "says how to configure it"
    assert len(requests_to(pve, "PUT", "/config")) == puts, "nothing is sent when root is needed and missing"


def test_without_root_channel_a_bind_mount_names_mp0_which_signal_dir_sets(pve_host, pve_container):
    pve_host.root_channel = "none"
    client = ProxmoxClient.for_host(pve_host)
    created(client, pve_container)

    with pytest.raises(ProxmoxRootRequired) as caught:
        client.bind_mount(201, "/var/lib/vz/shared", "/mnt/shared")

    assert caught.value.params == ["mp0"]
    assert [s.slug for s in STEPS.needing_root(caught.value.params)] == ["signal_dir"]


def test_the_ticket_channel_sets_keyctl_and_the_bind_mount_as_root(pve, pve_client, pve_container):
    created(pve_client, pve_container)

    pve_client.set_config(201, **ProxmoxClient.root_features(pve_container))
    pve_client.bind_mount(201, "/var/lib/vz/shared", "/mnt/shared")

    config = pve_client.get_config(201)
    assert config["features"] == "keyctl=1,nesting=1"
    assert config["mp0"] == "/var/lib/vz/shared,mp=/mnt/shared"
    assert any(t["user"] == "root@pam" for t in pve.tickets.values()), "root@pam logged in with a ticket"


def test_plain_config_changes_go_as_the_token(pve, pve_client, pve_container):
    created(pve_client, pve_container)

    pve_client.set_config(201, memory=6144, description="Clara needs more")

    assert int(pve_client.get_config(201)["memory"]) == 6144
    assert pve.tickets == {}, "no root login for what the token may do"


def test_setting_keyctl_again_when_it_is_already_set_needs_no_root(pve, pve_host, pve_client, pve_container):
    created(pve_client, pve_container)
    pve_client.set_config(201, features="nesting=1,keyctl=1")
    pve_host.root_channel = "none"
    client = ProxmoxClient.for_host(pve_host)

    client.set_config(201, features="nesting=1,keyctl=1", cores=3)

    assert client.get_config(201)["cores"] == 3, "an unchanged flag is not a root-only change"


def test_a_wrong_root_password_is_a_clear_401(pve_server, pve_host, pve_container, monkeypatch):
    monkeypatch.setenv(pve_host.root_password_env, "wrong-password")
    client = ProxmoxClient.for_host(pve_host)
    created(client, pve_container)

    with pytest.raises(ProxmoxPermissionDenied, match="root@pam ticket login was refused") as caught:
        client.set_config(201, features="nesting=1,keyctl=1")
    assert caught.value.status_code == 401


def test_a_root_login_that_meets_595_is_retried(pve, pve_client, pve_container):
    created(pve_client, pve_container)
    pve.fail("POST", "/access/ticket", 595, "No route to host", times=1)

    pve_client.set_config(201, features="nesting=1,keyctl=1")

    assert len(requests_to(pve, "POST", "/access/ticket")) == 2
    assert "keyctl=1" in pve_client.get_config(201)["features"]


def test_a_refused_root_login_is_not_retried(pve, pve_host, pve_container, monkeypatch):
    monkeypatch.setenv(pve_host.root_password_env, "wrong-password")
    client = ProxmoxClient.for_host(pve_host)
    created(client, pve_container)

    with pytest.raises(ProxmoxPermissionDenied):
        client.set_config(201, features="nesting=1,keyctl=1")
    assert len(requests_to(pve, "POST", "/access/ticket")) == 1


def test_a_missing_root_password_is_root_required(pve_host, pve_container, settings, tmp_path):
    settings.MAXPORTAL_PVE_SECRETS_DIR = tmp_path  # no password file there, no variable set
    client = ProxmoxClient.for_host(pve_host)
    created(client, pve_container)

    with pytest.raises(ProxmoxRootRequired, match="no root@pam password was found"):
        client.set_config(201, features="nesting=1,keyctl=1")


def test_the_ssh_channel_runs_pct_set_as_root(pve_host, pve_client, pve_container):
    created(pve_client, pve_container)
    pve_host.root_channel = "ssh"
    calls = []

    def runner(host, vmid, **params):
        calls.append((host.name, vmid, params))
        return ExecResult(exit_code=0, output_tail="", duration_s=0.1)

    ProxmoxClient.for_host(pve_host, ssh_runner=runner).bind_mount(201, "/var/lib/vz/shared", "/mnt/shared")

    assert calls == [("ax42", 201, {"mp0": "/var/lib/vz/shared,mp=/mnt/shared"})]


def test_the_ssh_channel_defaults_to_the_executors_pct_set_as_root(pve_host, pve_client, pve_container, settings):
    # Given the SSH root channel on a host whose scripts run on the simulated executor
    created(pve_client, pve_container)
    pve_host.root_channel = "ssh"
    settings.MAXPORTAL_SIMULATED_TIME_SCALE = 0
    SimulatedExecutor.clear()

    ProxmoxClient.for_host(pve_host).set_config(201, features="nesting=1,keyctl=1")

    runs = [r for r in SimulatedExecutor.history if r.step == "pct_set"]
    assert len(runs) == 1 and "pct set 201 -features nesting=1,keyctl=1" in runs[0].script


def test_a_failing_pct_set_over_ssh_raises_with_its_output(pve_host, pve_client, pve_container):
    created(pve_client, pve_container)
    pve_host.root_channel = "ssh"

    def runner(host, vmid, **params):
        return ExecResult(exit_code=255, output_tail="unable to parse value of 'features'\n", duration_s=0.1)

    client = ProxmoxClient.for_host(pve_host, ssh_runner=runner)
    with pytest.raises(ProxmoxError, match="exited 255: unable to parse value") as caught:
        client.set_config(201, features="nesting=1,keyctl=1")
    assert "unable to parse value of 'features'" in caught.value.log_tail


def test_an_unreachable_ssh_node_is_unavailable(pve_host, pve_client, pve_container):
    created(pve_client, pve_container)
    pve_host.root_channel = "ssh"

    def runner(host, vmid, **params):
        raise ExecutorConnectionError("cannot connect to root@127.0.0.1:22: Connection refused")

    with pytest.raises(ProxmoxUnavailable, match="Connection refused"):
        ProxmoxClient.for_host(pve_host, ssh_runner=runner).set_config(201, features="nesting=1,keyctl=1")


def test_the_ssh_channel_without_a_runner_says_what_to_configure(pve_host, pve_client, pve_container, settings):
    created(pve_client, pve_container)
    pve_host.root_channel = "ssh"
    settings.MAXPORTAL_PVE_SSH_ROOT_RUNNER = ""

    with pytest.raises(ProxmoxRootRequired, match="MAXPORTAL_PVE_SSH_ROOT_RUNNER"):
        ProxmoxClient.for_host(pve_host).set_config(201, features="nesting=1,keyctl=1")


def test_a_wrong_token_secret_is_a_401_not_retried(pve, pve_host, tmp_path):
    secret = tmp_path / "wrong-secret"
    secret.write_text("not-the-secret\n")
    pve_host.token_secret_file = str(secret)
    client, sleeps = fast_client(pve_host)

    with pytest.raises(ProxmoxPermissionDenied, match="Check the API token") as caught:
        client.list_containers()

    assert caught.value.status_code == 401 and sleeps == []


def test_the_token_secret_comes_from_the_environment_first(pve_server, pve_host, monkeypatch, tmp_path):
    pve_host.token_secret_env = "TEST_PVE_TOKEN_SECRET"
    pve_host.token_secret_file = str(tmp_path / "absent")
    monkeypatch.setenv("TEST_PVE_TOKEN_SECRET", pve_server.token_secret)

    assert ProxmoxClient.for_host(pve_host).list_containers() == []


def test_no_token_secret_anywhere_says_where_it_looked(pve_host, tmp_path):
    pve_host.token_secret_file = str(tmp_path / "absent")

    with pytest.raises(ProxmoxPermissionDenied, match="cannot read the API token secret file"):
        ProxmoxClient.for_host(pve_host).list_containers()


# --------------------------------------------------------------------------- snapshots


def test_snapshot_create_list_rollback_delete(pve_client, pve_container):
    created(pve_client, pve_container)

    pve_client.wait_task(pve_client.create_snapshot(201, "before-cli", "before the CLIs"), timeout=WAIT)
    assert [s["name"] for s in pve_client.list_snapshots(201)] == ["before-cli"]
    pve_client.set_config(201, memory=8192)
    pve_client.wait_task(pve_client.rollback_snapshot(201, "before-cli"), timeout=WAIT)
    assert int(pve_client.get_config(201)["memory"]) == 4096, "the rollback restored the snapshot's config"
    pve_client.wait_task(pve_client.delete_snapshot(201, "before-cli"), timeout=WAIT)
    assert pve_client.list_snapshots(201) == []


def test_a_snapshot_is_refused_before_trying_when_a_bind_mount_exists(pve, pve_client, pve_container):
    created(pve_client, pve_container)
    pve_client.bind_mount(201, "/var/lib/vz/shared", "/mnt/shared")

    with pytest.raises(ProxmoxSnapshotUnavailable, match="bind mount mp0 \\(/var/lib/vz/shared\\)"):
        pve_client.create_snapshot(201, "s1")

    assert requests_to(pve, "POST", "/lxc/201/snapshot") == [], "Proxmox was not asked to snapshot"
    assert pve.ct(201).snapshots == {}


# ----------------------------------------------------------------------------- destroy


def test_destroy_refuses_a_running_container(pve, pve_client, pve_container):
    created(pve_client, pve_container)
    pve_client.wait_task(pve_client.start(201), timeout=WAIT)

    with pytest.raises(ProxmoxError, match="is running: stop or shut it down"):
        pve_client.destroy(201, expected_hostname="lilly")
    assert requests_to(pve, "DELETE", "/lxc/201") == []


def test_destroy_refuses_a_hostname_mismatch(pve, pve_client, pve_container):
    created(pve_client, pve_container)

    with pytest.raises(ProxmoxError, match="is 'lilly', not 'mike': refusing"):
        pve_client.destroy(201, expected_hostname="mike")
    assert pve.ct(201) is not None and requests_to(pve, "DELETE", "/lxc/201") == []


def test_destroy_removes_a_stopped_container_with_the_expected_hostname(pve_client, pve_container):
    created(pve_client, pve_container)

    pve_client.wait_task(pve_client.destroy(201, expected_hostname="lilly"), timeout=WAIT)

    assert pve_client.find_container(201) is None


def test_destroy_of_a_missing_container_is_not_found(pve_client):
    with pytest.raises(ProxmoxNotFound):
        pve_client.destroy(250, expected_hostname="anyone")


# ------------------------------------------------------------------------------ retries


def test_a_node_that_stays_unreachable_595_gives_up_after_the_bounded_attempts(pve, pve_host):
    client, sleeps = fast_client(pve_host)
    pve.set_node_offline("ax42")

    with pytest.raises(ProxmoxUnavailable, match=r"No route to host .*gave up after 3 attempts") as caught:
        client.list_containers()

    assert caught.value.status_code == 595
    assert len(requests_to(pve, "GET", "/nodes/ax42/lxc")) == 3
    assert sleeps == [0.5, 1.0], "exponential backoff between the attempts"


@pytest.mark.parametrize(("status", "message"), [
    (595, "No route to host"), (596, "Errors during TLS negotiation"), (502, "Bad Gateway"),
    (503, "Service Unavailable"), (500, "cluster not ready - no quorum?"),
])
def test_passing_5xx_and_595_596_are_retried_until_they_pass(pve, pve_host, status, message):
    client, sleeps = fast_client(pve_host)
    pve.fail("GET", "/nodes/ax42/lxc", status, message, times=2)

    assert client.list_containers() == []

    assert len(requests_to(pve, "GET", "/nodes/ax42/lxc")) == 3 and len(sleeps) == 2


def test_a_config_lock_held_by_another_task_is_waited_out(pve_server, pve, pve_host, pve_container):
    # Given another task holding CT201's config lock (released by hand: at time_scale 0 nothing waits)
    client, sleeps = fast_client(pve_host)
    created(client, pve_container)
    pve_server.call(pve.hold_config_lock(201, None))

    async def release():
        pve.release_config_lock(201)

    def release_on_second_backoff(delay):
        sleeps.append(delay)
        if len(sleeps) == 2:
            pve_server.call(release())

    client._sleep = release_on_second_backoff
    # When the portal changes the config, it is retried until the lock is free
    client.set_config(201, memory=6144)

    assert len(sleeps) == 2 and int(client.get_config(201)["memory"]) == 6144


def test_a_config_lock_that_stays_held_ends_unavailable(pve_server, pve, pve_host, pve_container):
    client, sleeps = fast_client(pve_host)
    created(client, pve_container)
    pve_server.call(pve.hold_config_lock(201, None))

    with pytest.raises(ProxmoxUnavailable, match=r"can't lock file '/run/lock/lxc/pve-config-201\.lock'"):
        client.set_config(201, memory=6144)
    assert len(sleeps) == 2


def test_a_proxys_html_502_is_retried(pve, pve_host):
    client, sleeps = fast_client(pve_host)
    pve.fail("GET", "/nodes/ax42/lxc", 502, "<html><body>502 Bad Gateway</body></html>", html=True, times=1)

    assert client.list_containers() == []
    assert len(sleeps) == 1


def test_a_missing_snapshot_is_proxmoxs_answer_not_a_missing_container(pve_client, pve_container):
    created(pve_client, pve_container)

    status = pve_client.task_status(pve_client.rollback_snapshot(201, "never-taken"))

    assert status.ok is False and status.exitstatus == "snapshot 'never-taken' does not exist"


@pytest.mark.parametrize(("status", "message"), [
    (400, "Parameter verification failed."), (403, "Permission check failed (/vms/201, VM.Audit)"),
    (404, "Not Found"), (501, "Method not implemented"),
])
def test_4xx_and_501_are_never_retried(pve, pve_host, status, message):
    client, sleeps = fast_client(pve_host)
    pve.fail("GET", "/nodes/ax42/lxc", status, message)

    with pytest.raises(ProxmoxError) as caught:
        client.list_containers()

    assert caught.value.status_code == status and not isinstance(caught.value, ProxmoxUnavailable)
    assert len(requests_to(pve, "GET", "/nodes/ax42/lxc")) == 1
    assert sleeps == [], "Proxmox's answer, not a fault to wait out"


def test_connection_refused_is_retried_then_unavailable(pve_host):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    pve_host.api_url = f"https://127.0.0.1:{port}"  # nothing listens there
    client, sleeps = fast_client(pve_host)

    with pytest.raises(ProxmoxUnavailable, match=r"cannot connect to .*gave up after 3 attempts"):
        client.list_containers()
    assert len(sleeps) == 2


def test_a_request_without_answer_times_out_and_is_retried(pve, pve_host):
    client, sleeps = fast_client(pve_host, timeout=0.2)
    pve.flaky_network(hang_rate=1.0, hang_secs=0.6)

    with pytest.raises(ProxmoxUnavailable, match=r"no answer .* within 0.2 s .*gave up after 3 attempts"):
        client.list_containers()
    assert len(sleeps) == 2
    pve.flaky_network(hang_rate=0.0)


def test_a_timed_out_request_that_recovers_succeeds(pve, pve_host):
    client, sleeps = fast_client(pve_host, timeout=0.2)
    pve.flaky_network(hang_rate=1.0, hang_secs=0.6)

    def recover(delay):
        sleeps.append(delay)
        pve.flaky_network(hang_rate=0.0)

    client._sleep = recover
    assert client.list_containers() == []
    assert len(sleeps) == 1


def test_a_create_that_timed_out_but_landed_meets_exists_on_retry_and_is_found(pve, pve_host, pve_container):
    # Given a create whose answer is lost (the request hangs past the client's timeout) while the
    # container gets created on the node anyway (fakepve drops a hung request, so the landing is
    # played by a second client during the backoff)
    client, sleeps = fast_client(pve_host, timeout=0.2)
    pve.flaky_network(hang_rate=1.0, hang_secs=0.5)

    def create_lands_meanwhile(delay):
        sleeps.append(delay)
        pve.flaky_network(hang_rate=0.0)
        ProxmoxClient.for_host(pve_host).create_container(pve_container)

    client._sleep = create_lands_meanwhile
    # When the client retries the create, Proxmox says the vmid exists
    with pytest.raises(ProxmoxContainerExists) as caught:
        client.create_container(pve_container)
    # Then find_container shows it is this record's container, to adopt
    assert caught.value.vmid == 201 and len(sleeps) == 1
    assert client.find_container(201)["hostname"] == "lilly"


def test_the_backoff_is_exponential_and_capped():
    policy = RetryPolicy(attempts=6, base_delay=1.0, max_delay=5.0)

    assert [policy.delay(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_the_default_timeout_is_well_above_proxmoxers_5_seconds(pve_host, settings):
    settings.MAXPORTAL_PVE_TIMEOUT = 30.0

    client = ProxmoxClient.for_host(pve_host)

    assert client.timeout == 30.0
    assert client.api._backend.auth.timeout == 30.0, "proxmoxer got the timeout"


# ----------------------------------------------------------------------------------- TLS


def test_tls_is_verified_against_the_hosts_ca_file(pve_host, pve_client):
    assert pve_client.api._backend.auth.verify_ssl == pve_host.ca_file
    assert pve_client.node_status()["memory"]["total"] == 64 * 1024**3


def test_a_wrong_ca_fails_tls_without_retrying(pve_host, tmp_path):
    other_ca, _, _ = make_cert(str(tmp_path), name="other", hosts=("127.0.0.1",))
    pve_host.ca_file = other_ca
    client, sleeps = fast_client(pve_host)

    with pytest.raises(ProxmoxUnavailable, match=r"TLS verification .* failed against .*other.crt"):
        client.list_containers()
    assert sleeps == [], "a certificate that does not verify is not retried"


def test_without_ca_file_the_system_cas_do_not_trust_a_self_signed_proxmox(pve_host):
    pve_host.ca_file = ""
    client, _ = fast_client(pve_host)

    with pytest.raises(ProxmoxUnavailable, match=r"TLS verification .* the system CAs"):
        client.list_containers()


def test_a_missing_ca_file_is_named(pve_host, tmp_path):
    pve_host.ca_file = str(tmp_path / "nowhere.crt")

    with pytest.raises(ProxmoxError, match=r"the CA file .*nowhere.crt does not exist"):
        ProxmoxClient.for_host(pve_host)


def test_an_api_url_that_is_not_https_is_refused(pve_host):
    pve_host.api_url = "http://127.0.0.1:8006"

    with pytest.raises(ProxmoxError, match="is not an https URL"):
        ProxmoxClient.for_host(pve_host)

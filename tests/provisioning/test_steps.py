"""Each automated step against the local Proxmox (fakepve over HTTPS) and the simulated executor.

The engine's messages are delivered by ``EngineDriver`` in the test's thread; the same code runs on
a real Celery worker in test_tasks.py.
"""

import pytest

from eidolons.models import CliAgent, Signal
from provisioning.checklist import STEPS
from provisioning.engine import queue
from provisioning.engine.reaper import chains_resume
from provisioning.integrations.executors.simulated import SimulatedExecutor
from provisioning.integrations.proxmox.client import ProxmoxClient
from provisioning.models import ChecklistEvent, Container, StepRun
from provisioning.services import container_provision, step_run_start, step_tick

from .engine import row, states


def _done_before(container, *steps):
    for step in steps:
        row(container, step).__class__.objects.filter(container=container, step=step).update(state="done")


def _creates(pve):
    return [r for r in pve.requests if r[0] == "POST" and r[1].rstrip("/").endswith("/nodes/ax42/lxc")]


# --- LXC Created ------------------------------------------------------------------------------


def test_lxc_created_creates_sets_keyctl_as_root_starts_and_verifies(local_ct201, operator, driver, pve, pve_client):
    run = step_run_start(container=local_ct201, step="lxc_created", actor=operator)
    driver.run()
    cell = row(local_ct201, "lxc_created")
    assert cell.state == "done", cell.note
    assert cell.upid.startswith("UPID:ax42:") and "vzstart" in cell.upid
    config = pve_client.get_config(201)
    assert config["hostname"] == "lilly" and "keyctl=1" in config["features"]
    assert pve_client.current_status(201)["status"] == "running"
    local_ct201.refresh_from_db()
    assert local_ct201.status == "running"
    run.refresh_from_db()
    assert run.state == "succeeded" and run.finished_at
    trail = list(ChecklistEvent.objects.filter(container=local_ct201, step="lxc_created").order_by("id")
                 .values_list("from_state", "to_state"))
    assert trail == [("pending", "running"), ("running", "done")]


def test_a_redelivered_create_message_never_creates_a_second_container(local_ct201, operator, driver, pve):
    run = step_run_start(container=local_ct201, step="lxc_created", actor=operator)
    first = driver.deliver(run.pk, 0)
    assert first.turn == 1, "the create was sent; the step now polls its UPID"
    # When the broker delivers the first message again (acks_late re-delivery, or a double send)
    again = driver.deliver(run.pk, 0)
    # Then it creates nothing: it only watches turn 1 (it comes back once turn 1's message would be
    # overdue, and is then dropped as stale), and the attempt carries on
    assert again.turn == 0 and again.countdown > 10
    assert len(_creates(pve)) == 1
    driver.run()
    assert row(local_ct201, "lxc_created").state == "done"
    assert len(_creates(pve)) == 1


def test_a_create_that_succeeded_unseen_is_adopted_on_retry(local_ct201, operator, driver, pve, pve_client):
    # Given a create whose answer was lost: the container exists with the record's hostname
    pve_client.wait_task(pve_client.create_container(local_ct201), timeout=10)
    # When the step runs
    step_run_start(container=local_ct201, step="lxc_created", actor=operator)
    driver.run()
    # Then it adopts the container instead of creating another
    cell = row(local_ct201, "lxc_created")
    assert cell.state == "done" and "adopted" in cell.output_tail
    assert len(_creates(pve)) == 1


def test_a_vmid_taken_by_another_container_fails_naming_it(local_ct201, operator, driver, pve, pve_client):
    other = Container(host=local_ct201.host, vmid=299, hostname="web-test", cores=1, memory_mb=512, rootfs_gb=8,
                      ostemplate=local_ct201.ostemplate, storage="local-lvm", feature_keyctl=False, managed=False)
    other.vmid = 201  # the same vmid, another hostname: only on Proxmox, never saved
    pve_client.wait_task(pve_client.create_container(other), timeout=10)
    step_run_start(container=local_ct201, step="lxc_created", actor=operator)
    driver.run()
    cell = row(local_ct201, "lxc_created")
    assert cell.state == "failed"
    assert "vmid 201 is taken" in cell.note and "'web-test'" in cell.note and "'lilly'" in cell.note
    assert len(_creates(pve)) == 1, "only the other container's create"


def test_proxmox_500_already_exists_adopts_when_the_hostname_matches(
    local_ct201, operator, driver, pve, pve_client, monkeypatch
):
    # Given the container appears between the look and the create (a concurrent create by hand)
    real_find = ProxmoxClient.find_container
    calls = []

    def racing_find(self, vmid):
        calls.append(vmid)
        if len(calls) == 1:
            self.wait_task(self.create_container(local_ct201), timeout=10)
            return None
        return real_find(self, vmid)

    monkeypatch.setattr(ProxmoxClient, "find_container", racing_find)
    step_run_start(container=local_ct201, step="lxc_created", actor=operator)
    driver.run()
    cell = row(local_ct201, "lxc_created")
    assert cell.state == "done" and "adopted" in cell.output_tail
    assert len(_creates(pve)) == 2, "the step's create met 500 'already exists' and adopted"


def test_a_failed_proxmox_task_fails_the_step_with_proxmoxs_message_and_log(local_ct201, operator, driver, pve):
    pve.fail("POST", "/nodes/ax42/lxc/201/status/start", error="quotas_not_supported_unprivileged_containers")
    step_run_start(container=local_ct201, step="lxc_created", actor=operator)
    driver.run()
    cell = row(local_ct201, "lxc_created")
    assert cell.state == "failed"
    assert "Quotas are not supported by unprivileged containers." in cell.note
    assert "TASK ERROR" in cell.output_tail
    assert "vzstart" in cell.upid


def test_a_403_from_proxmox_fails_the_step_with_its_words(local_ct201, operator, driver, pve):
    pve.fail("POST", "/nodes/ax42/lxc", 403, "Permission check failed (/vms/201, VM.Allocate)")
    step_run_start(container=local_ct201, step="lxc_created", actor=operator)
    driver.run()
    cell = row(local_ct201, "lxc_created")
    assert cell.state == "failed"
    assert "403" in cell.note and "VM.Allocate" in cell.note


def test_without_a_root_channel_keyctl_blocks_the_create_and_says_why(local_ct201, operator, driver, pve):
    local_ct201.host.root_channel = "none"
    local_ct201.host.save()
    step_run_start(container=local_ct201, step="lxc_created", actor=operator)
    driver.run()
    cell = row(local_ct201, "lxc_created")
    assert cell.state == "blocked"
    assert "needs root@pam for features keyctl=1" in cell.note and "root channel" in cell.note
    assert _creates(pve) == [], "refused before asking Proxmox"


def test_the_capacity_guard_blocks_the_create_with_the_figures(local_ct201, operator, driver, pve):
    local_ct201.host.memory_mb = 32 * 1024
    local_ct201.host.save()
    step_run_start(container=local_ct201, step="lxc_created", actor=operator)
    driver.run()
    cell = row(local_ct201, "lxc_created")
    assert cell.state == "blocked" and "52 GB committed" in cell.note and "of 32 GB" in cell.note
    assert _creates(pve) == []


def test_an_unreachable_node_595_is_retried_then_fails_and_the_retry_succeeds(
    local_ct201, operator, driver, pve, settings
):
    settings.MAXPORTAL_STEP_UNAVAILABLE_RETRIES = 2
    pve.set_node_offline("ax42")
    step_run_start(container=local_ct201, step="lxc_created", actor=operator)
    delivered = driver.run()
    cell = row(local_ct201, "lxc_created")
    assert cell.state == "failed" and "did not answer (tried 3 times)" in cell.note
    assert delivered == 3
    # When the node is back, running the step again takes it to done
    pve.set_node_offline("ax42", offline=False)
    step_run_start(container=local_ct201, step="lxc_created", actor=operator)
    driver.run()
    assert row(local_ct201, "lxc_created").state == "done"
    assert row(local_ct201, "lxc_created").attempts == 2


def test_a_proxmox_http_500_is_reported_as_its_refusal_not_as_no_answer(local_ct201, operator, driver, pve, settings):
    # Given the node's storage is offline: Proxmox answers every create with HTTP 500 and says why
    settings.MAXPORTAL_STEP_UNAVAILABLE_RETRIES = 1
    pve.fail("POST", "/nodes/ax42/lxc", 500, "storage 'local-lvm' is not online")
    step_run_start(container=local_ct201, step="lxc_created", actor=operator)
    driver.run()
    cell = row(local_ct201, "lxc_created")
    assert cell.state == "failed"
    assert cell.note.startswith(
        "Proxmox refused POST nodes/ax42/lxc (HTTP 500): storage 'local-lvm' is not online (tried 2 times)."
    ), cell.note
    assert "did not answer" not in cell.note and "reachable" not in cell.note
    assert len(_creates(pve)) == 2 * settings.MAXPORTAL_PVE_RETRY_ATTEMPTS, "retried, as a fault that may pass"


def test_a_proxmox_that_does_not_answer_in_time_is_a_timeout_on_the_step(local_ct201, operator, driver, pve, settings):
    settings.MAXPORTAL_PVE_TIMEOUT = 0.3
    settings.MAXPORTAL_STEP_UNAVAILABLE_RETRIES = 0
    pve.flaky_network(hang_rate=1.0, hang_secs=2)
    step_run_start(container=local_ct201, step="lxc_created", actor=operator)
    driver.run()
    cell = row(local_ct201, "lxc_created")
    assert cell.state == "failed" and "did not answer" in cell.note
    assert "no answer" in cell.note and "within 0.3 s" in cell.note


# --- In-container steps, signal dir, test signal ------------------------------------------------


def _created(local_ct201, operator, driver):
    step_run_start(container=local_ct201, step="lxc_created", actor=operator)
    driver.run()
    assert row(local_ct201, "lxc_created").state == "done"


@pytest.mark.parametrize("step", ["base_config", "clis_installed", "systemd_setup", "repo_cloned",
                                  "services_running"])
def test_each_in_container_step_runs_its_script_and_is_done(local_ct201, operator, driver, step):
    _created(local_ct201, operator, driver)
    _done_before(local_ct201, *STEPS[step].prerequisites)
    step_run_start(container=local_ct201, step=step, actor=operator)
    driver.run()
    cell = row(local_ct201, step)
    assert cell.state == "done", cell.note
    assert "SIMULATED" in cell.output_tail
    ran = [r for r in SimulatedExecutor.history if r.step == step]
    assert len(ran) == 1 and ran[0].vmid == 201
    assert ran[0].script.strip(), "the rendered script was what ran"


def test_clis_installed_records_the_versions_the_four_clis_reported(local_ct201, operator, driver):
    _created(local_ct201, operator, driver)
    _done_before(local_ct201, "base_config")
    step_run_start(container=local_ct201, step="clis_installed", actor=operator)
    driver.run()
    agents = dict(CliAgent.objects.filter(eidolon__container=local_ct201).values_list("kind", "reported_version"))
    assert agents == {"claude": "2.0.14", "gemini": "0.9.0", "codex": "0.46.0", "copilot": "0.0.339"}


def test_a_failing_script_fails_the_step_with_its_exit_code_and_output(local_ct201, operator, driver):
    _created(local_ct201, operator, driver)
    _done_before(local_ct201, "base_config")
    SimulatedExecutor.inject_failure("clis_installed", vmid=201, exit_code=243, output="npm ERR! code EACCES")
    step_run_start(container=local_ct201, step="clis_installed", actor=operator)
    driver.run()
    cell = row(local_ct201, "clis_installed")
    assert cell.state == "failed" and "exited with 243 in CT201" in cell.note
    assert "npm ERR! code EACCES" in cell.output_tail


def test_a_script_that_hangs_fails_on_its_timeout(local_ct201, operator, driver, settings):
    settings.MAXPORTAL_SCRIPT_TIMEOUTS = {"systemd_setup": 0}
    _created(local_ct201, operator, driver)
    _done_before(local_ct201, "base_config", "clis_installed")
    SimulatedExecutor.inject_failure("systemd_setup", vmid=201, hang=True)
    step_run_start(container=local_ct201, step="systemd_setup", actor=operator)
    driver.run()
    cell = row(local_ct201, "systemd_setup")
    assert cell.state == "failed" and "timed out after 0 s in CT201" in cell.note


def test_signal_dir_creates_the_inboxes_and_bind_mounts_them_as_root(local_ct201, operator, driver, pve_client):
    _created(local_ct201, operator, driver)
    _done_before(local_ct201, "base_config")
    step_run_start(container=local_ct201, step="signal_dir", actor=operator)
    driver.run()
    cell = row(local_ct201, "signal_dir")
    assert cell.state == "done", cell.note
    assert pve_client.get_config(201)["mp0"] == "/var/lib/vz/shared,mp=/mnt/shared"
    assert next(r.vmid for r in SimulatedExecutor.history if r.step == "signal_dir") is None, "inboxes: on the node"


def test_signal_dir_without_a_root_channel_is_blocked_naming_the_mount(local_ct201, operator, driver, pve_client):
    _created(local_ct201, operator, driver)
    _done_before(local_ct201, "base_config")
    local_ct201.host.root_channel = "none"
    local_ct201.host.save()
    step_run_start(container=local_ct201, step="signal_dir", actor=operator)
    driver.run()
    cell = row(local_ct201, "signal_dir")
    assert cell.state == "blocked" and "mp0 bind mount" in cell.note
    assert "mp0" not in pve_client.get_config(201)


def test_test_signal_sends_a_test_signal_and_is_done_when_acknowledged(local_ct201, operator, driver):
    _done_before(local_ct201, "services_running")
    step_run_start(container=local_ct201, step="test_signal", actor=operator)
    driver.run()
    cell = row(local_ct201, "test_signal")
    assert cell.state == "done", cell.note
    signal = Signal.objects.get(recipient__container=local_ct201, signal_type="TEST")
    assert signal.acknowledged_at is not None and signal.sender == "portal"
    assert f"#{signal.pk}" in cell.output_tail and "acknowledged" in cell.output_tail.lower()


def test_a_double_delivered_in_container_step_runs_its_script_once(local_ct201, operator, driver):
    _created(local_ct201, operator, driver)
    run = step_run_start(container=local_ct201, step="base_config", actor=operator)
    driver.queue.clear()
    driver.deliver(run.pk, 0)
    driver.deliver(run.pk, 0)
    assert len([r for r in SimulatedExecutor.history if r.step == "base_config"]) == 1
    assert row(local_ct201, "base_config").state == "done"


# --- The whole container -------------------------------------------------------------------------


def test_provision_takes_a_container_to_test_signal_done_after_the_manual_ticks(
    local_ct201, operator, driver, pve_client
):
    step_tick(container=local_ct201, step="m365_account", actor=operator)
    step_tick(container=local_ct201, step="auth_complete", actor=operator)
    container_provision(container=local_ct201, actor=operator)
    driver.run()
    assert set(states(local_ct201).values()) == {"done"}, states(local_ct201)
    assert StepRun.objects.filter(step__container=local_ct201, state="succeeded").count() == len(STEPS.automated)
    assert pve_client.current_status(201)["status"] == "running"


def test_a_provision_chain_whose_follow_on_was_lost_is_resumed_by_the_periodic_job(
    local_ct201, operator, driver, monkeypatch
):
    from datetime import timedelta

    from django.utils import timezone

    step_tick(container=local_ct201, step="m365_account", actor=operator)
    container_provision(container=local_ct201, actor=operator)
    # The follow-on message after LXC Created is lost (the broker drops it)
    driver.drop(queue.CONTAINER_FOLLOW_ON)
    driver.run()
    assert states(local_ct201)["lxc_created"] == "done" and states(local_ct201)["base_config"] == "pending"
    assert chains_resume() == 0, "too early: the follow-on may still be on its way"
    assert chains_resume(now=timezone.now() + timedelta(minutes=2)) == 1
    assert states(local_ct201)["base_config"] == "running"


def test_a_turn_whose_worker_died_is_taken_over_by_the_redelivered_message_after_its_lease(
    local_ct201, operator, driver
):
    from datetime import timedelta

    from django.utils import timezone

    run = step_run_start(container=local_ct201, step="lxc_created", actor=operator)
    driver.queue.clear()
    # Given a worker claimed turn 0 and was killed (SIGKILL) before finishing it: its lease is held
    held = timezone.now() + timedelta(seconds=120)
    StepRun.objects.filter(pk=run.pk).update(turn=1, lease_until=held, due_at=None)
    # When the broker re-delivers the message (acks_late + reject_on_worker_lost), it waits for the lease
    early = driver.deliver(run.pk, 0)
    assert early.turn == 0 and 100 < early.countdown <= 121
    assert row(local_ct201, "lxc_created").state == "running"
    # Once the lease ran out, the re-delivered message sends the turn again, which takes it over
    StepRun.objects.filter(pk=run.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    driver.queue.clear()
    driver.queue.append((run.pk, 0))
    driver.run()
    assert row(local_ct201, "lxc_created").state == "done"

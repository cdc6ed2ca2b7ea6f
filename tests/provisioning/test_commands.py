"""manage.py provision and manage.py checklist."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from provisioning.integrations.executors.simulated import SimulatedExecutor
from provisioning.management.commands import provision as provision_command
from provisioning.models import ChecklistEvent, ChecklistStep, Container, StepRun

from .engine import states


def _call(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def _state(vmid, step):
    return ChecklistStep.objects.get(container__vmid=vmid, step=step).state


# --- checklist ---------------------------------------------------------------------------------


def test_checklist_ticks_a_manual_step_as_the_named_user(plan, staff_user):
    out = _call("checklist", "201", "m365_account", "--tick", "--by", "operator", "--note", "licensed")
    assert "CT201 M365 Account: done (by operator" in out
    event = ChecklistEvent.objects.get(container__vmid=201)
    assert event.actor == staff_user and event.to_state == "done"


def test_checklist_untick_needs_a_reason(plan, staff_user):
    _call("checklist", "201", "auth_complete", "--tick", "--by", "operator")
    with pytest.raises(CommandError, match="needs a reason"):
        _call("checklist", "201", "auth_complete", "--untick", "--by", "operator")
    assert _state(201, "auth_complete") == "done"
    _call("checklist", "201", "auth_complete", "--untick", "--by", "operator", "--reason", "token expired")
    assert _state(201, "auth_complete") == "pending"
    assert ChecklistEvent.objects.filter(reason="token expired", to_state="pending").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["201", "m365_account", "--tick"], "--by"),
    (["201", "m365_account", "--tick", "--by", "nobody"], "no active user 'nobody'"),
    (["201", "lxc_created", "--tick", "--by", "operator"], "automated"),
    (["201", "bogus", "--tick", "--by", "operator"], "no step 'bogus'"),
    (["100", "m365_account", "--tick", "--by", "operator"], "not managed"),
    (["999", "m365_account", "--tick", "--by", "operator"], "no container 999"),
    (["201", "m365_account", "--by", "operator"], "--tick, --untick or --skip"),
])
def test_checklist_refuses_bad_input_with_a_clear_message(plan, staff_user, args, message):
    with pytest.raises(CommandError, match=message):
        _call("checklist", *args)
    assert not ChecklistEvent.objects.exists()


def test_checklist_without_a_step_shows_the_container(plan, staff_user):
    _call("checklist", "201", "m365_account", "--tick", "--by", "operator")
    out = _call("checklist", "201")
    assert "M365 Account" in out and "CT201" in out and "pending -> done by operator" in out


# --- provision ---------------------------------------------------------------------------------


def test_provision_queues_the_ready_automated_steps(plan):
    out = _call("provision", "201", "202")
    assert "CT201 lilly: queued LXC Created" in out and "CT202 mike: queued LXC Created" in out
    assert StepRun.objects.filter(state="running").count() == 2
    # Again: nothing more is ready
    assert "nothing ready" in _call("provision", "201")


def test_provision_all_queues_every_managed_container(plan):
    _call("provision", "--all")
    assert set(StepRun.objects.values_list("step__container__vmid", flat=True)) == set(range(201, 208))


def test_provision_needs_containers_or_all(plan):
    with pytest.raises(CommandError, match="--all"):
        _call("provision")


@pytest.fixture
def local(local_ct201, driver, monkeypatch):
    """The plan on the local Proxmox, with the engine's messages delivered in the test's thread."""
    # While --wait waits, the "workers" (the driver) deliver what was queued.
    monkeypatch.setattr(provision_command.Command, "sleep", staticmethod(lambda seconds: driver.run()))
    return driver


def test_provision_wait_takes_ticked_containers_to_test_signal_done_and_prints_the_grid(local, staff_user):
    for vmid in (201, 202):
        _call("checklist", str(vmid), "m365_account", "--tick", "--by", "operator")
        _call("checklist", str(vmid), "auth_complete", "--tick", "--by", "operator")
    out = _call("provision", "201", "202", "--wait", "--interval", "0")
    assert "Test Signal" in out and "All steps done." in out
    for vmid in (201, 202):
        assert set(states(Container.objects.get(vmid=vmid)).values()) == {"done"}


def test_provision_wait_exits_non_zero_naming_the_failed_step(local, staff_user):
    _call("checklist", "201", "m365_account", "--tick", "--by", "operator")
    _call("checklist", "201", "auth_complete", "--tick", "--by", "operator")
    SimulatedExecutor.inject_failure("repo_cloned", vmid=201, exit_code=128, output="fatal: repository not found")
    with pytest.raises(CommandError, match=r"CT201 Repo Cloned: failed \(The Repo Cloned script exited with 128"):
        _call("provision", "201", "--wait", "--interval", "0")
    assert _state(201, "services_running") == "pending"


def test_provision_wait_without_the_manual_ticks_stops_and_says_what_waits(local, staff_user):
    out = _call("provision", "201", "--wait", "--interval", "0")
    assert "Waiting for a person" in out and "CT201 Auth Complete" in out
    assert _state(201, "repo_cloned") == "done" and _state(201, "services_running") == "pending"


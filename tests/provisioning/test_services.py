"""The checklist engine's services: the state machine, manual ticks, starting attempts, the reaper."""

from datetime import timedelta

import pytest
from django.utils import timezone

from maxportal.kernel.errors import NotAllowed, ReasonRequired
from provisioning.checklist import STEPS
from provisioning.choices import StepChoices, StepStateChoices
from provisioning.engine import queue
from provisioning.engine.reaper import step_runs_reap
from provisioning.engine.transitions import CELL_TRANSITIONS
from provisioning.models import ChecklistEvent, ChecklistStep, StepRun
from provisioning.selectors import capacity_refusal
from provisioning.services import container_provision, step_run_start, step_skip, step_tick, step_untick


def _state(container, step):
    return ChecklistStep.objects.get(container=container, step=step).state


def _set(container, step, state):
    ChecklistStep.objects.filter(container=container, step=step).update(state=state)


def test_the_state_machine_is_data_that_covers_every_state_and_step():
    assert set(CELL_TRANSITIONS) == set(StepStateChoices.values)
    order = STEPS.order
    assert order[0] == "m365_account" and order[-1] == "test_signal" and len(order) == 10
    for spec in STEPS:
        assert all(order.index(n) < order.index(spec.slug) for n in spec.prerequisites), spec.slug


def test_the_step_registry_and_the_database_choices_name_the_same_steps():
    assert [(s.slug, s.label) for s in STEPS] == list(StepChoices.choices)


def test_only_managed_containers_get_a_checklist(plan):
    assert not ChecklistStep.objects.filter(container__vmid=100).exists()
    assert ChecklistStep.objects.count() == 70


def test_ticking_a_manual_step_marks_it_done_and_audits_who(ct201, operator, staff_user):
    # When the operator ticks M365 Account of CT201
    row = step_tick(container=ct201, step="m365_account", actor=operator, note="licence assigned")
    # Then it is done, says who and when, and the audit trail has the move
    row.refresh_from_db()
    assert (row.state, row.actor, row.note) == ("done", staff_user, "licence assigned")
    assert row.changed_at is not None
    event = ChecklistEvent.objects.get(container=ct201, step="m365_account")
    assert (event.from_state, event.to_state, event.actor) == ("pending", "done", staff_user)


def test_an_automated_step_cannot_be_ticked_by_hand(ct201, operator):
    with pytest.raises(NotAllowed, match="automated"):
        step_tick(container=ct201, step="lxc_created", actor=operator)
    assert _state(ct201, "lxc_created") == "pending"


def test_unticking_needs_a_reason_and_is_audited(ct201, operator):
    step_tick(container=ct201, step="auth_complete", actor=operator)
    # When it is unticked without a reason, it is refused and stays done
    with pytest.raises(ReasonRequired) as refused:
        step_untick(container=ct201, step="auth_complete", actor=operator, reason="  ")
    assert (refused.value.code, refused.value.details["field"]) == ("reason_required", "reason")
    assert _state(ct201, "auth_complete") == "done"
    # With a reason it goes back to pending, and the reason is in the trail
    step_untick(container=ct201, step="auth_complete", actor=operator, reason="codex token expired")
    assert _state(ct201, "auth_complete") == "pending"
    last = ChecklistEvent.objects.filter(container=ct201).first()
    assert (last.from_state, last.to_state, last.reason) == ("done", "pending", "codex token expired")


def test_ticking_twice_is_refused_with_the_current_state(ct201, operator):
    step_tick(container=ct201, step="m365_account", actor=operator)
    with pytest.raises(NotAllowed, match="is done"):
        step_tick(container=ct201, step="m365_account", actor=operator)
    assert ChecklistEvent.objects.filter(container=ct201).count() == 1


def test_untick_is_refused_while_a_dependent_runs(ct201, operator):
    step_tick(container=ct201, step="auth_complete", actor=operator)
    _set(ct201, "services_running", "running")
    with pytest.raises(NotAllowed, match="running on top of"):
        step_untick(container=ct201, step="auth_complete", actor=operator, reason="redo")


def test_skipping_needs_a_reason_and_satisfies_dependents(ct201, operator):
    with pytest.raises(ReasonRequired):
        step_skip(container=ct201, step="m365_account", actor=operator, reason="")
    step_skip(container=ct201, step="m365_account", actor=operator, reason="shared mailbox")
    assert _state(ct201, "m365_account") == "skipped"


def test_a_step_cannot_start_before_its_prerequisites(ct201, operator):
    with pytest.raises(NotAllowed, match="needs LXC Created done first"):
        step_run_start(container=ct201, step="base_config", actor=operator)
    assert not StepRun.objects.exists()


def test_starting_a_step_writes_one_running_attempt_and_enqueues_after_commit(
    ct201, operator, django_capture_on_commit_callbacks, broker
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        run = step_run_start(container=ct201, step="lxc_created", actor=operator)
        # Nothing is sent while the transaction is open
        assert broker.sent == []
    for callback in callbacks:
        callback()
    assert broker.sent == [(queue.STEP_ADVANCE, (run.pk, 0), None)]
    row = ChecklistStep.objects.get(container=ct201, step="lxc_created")
    assert (row.state, row.attempts, run.number, run.state) == ("running", 1, 1, "running")
    # A double click is refused: one running attempt per step
    with pytest.raises(NotAllowed) as refused:
        step_run_start(container=ct201, step="lxc_created", actor=operator)
    assert refused.value.details["state"] == "running"
    assert StepRun.objects.filter(step=row).count() == 1


def test_provision_queues_only_the_ready_automated_steps(ct201, operator, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        runs = container_provision(container=ct201, actor=operator)
    assert [r.step.step for r in runs] == ["lxc_created"]
    assert runs[0].follow_on is True
    # Provisioning again while it runs queues nothing new
    with django_capture_on_commit_callbacks(execute=False):
        assert container_provision(container=ct201, actor=operator) == []


def test_the_reaper_fails_attempts_past_their_time_limit(ct201, operator, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        run = step_run_start(container=ct201, step="lxc_created", actor=operator)
    # Given the worker died: nothing advanced the attempt; before the deadline the reaper leaves it
    assert step_runs_reap() == 0
    # When the deadline has passed
    assert step_runs_reap(now=run.deadline + timedelta(seconds=1)) == 1
    run.refresh_from_db()
    row = ChecklistStep.objects.get(container=ct201, step="lxc_created")
    assert run.state == "reclaimed" and row.state == "failed"
    assert "time limit" in row.note
    # And it can be run again, as attempt 2
    with django_capture_on_commit_callbacks(execute=False):
        again = step_run_start(container=ct201, step="lxc_created", actor=operator)
    assert again.number == 2
    # A second reap does nothing more
    assert step_runs_reap(now=timezone.now()) == 0


def test_capacity_guard_names_the_figures(ct201):
    # Given the host's memory is smaller than what its containers commit
    host = ct201.host
    host.memory_mb = 32 * 1024
    host.save()
    ct201.refresh_from_db()
    message = capacity_refusal(ct201)
    assert "CT201" in message and "52 GB committed" in message and "of 32 GB" in message
    # CPU: 20 cores on the AX42's 16 threads is overcommitted 1.25x, allowed (limit 2x)
    host.memory_mb = 64 * 1024
    host.save()
    ct201.refresh_from_db()
    assert capacity_refusal(ct201) is None
    # On 8 threads it is 2.5x, above the limit: refused with the figures
    host.cpu_cores = host.cpu_threads = 8
    host.save()
    ct201.refresh_from_db()
    assert "20 cores committed on 8 threads, above the limit of 2x" in capacity_refusal(ct201)

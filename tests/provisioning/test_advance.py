"""The turn protocol of the engine (provisioning/engine/advance.py): claims, leases, lost messages.

Messages are delivered by the test driver in the test's thread; the same windows are killed for
real in test_worker_kill.py.
"""

import time
from datetime import timedelta

import pytest
from django.db.models import F
from django.utils import timezone

from provisioning.checklist import STEPS, StepSpec
from provisioning.engine import queue
from provisioning.engine.outcome import Outcome
from provisioning.engine.reaper import turns_relay
from provisioning.models import Container, StepRun
from provisioning.services import step_run_start

from .engine import row


def _creates(pve):
    return [r for r in pve.requests if r[0] == "POST" and r[1].rstrip("/").endswith("/nodes/ax42/lxc")]


def _first_turn_committed_and_its_next_message_lost(driver, run):
    """Deliver turn 0 and lose the message it sends for turn 1 (a worker killed between the two)."""
    result = driver.deliver(run.pk, 0)
    assert result.turn == 1, "turn 0 waits for the create task: turn 1 is next"
    driver.queue.clear()
    return StepRun.objects.get(pk=run.pk)


@pytest.mark.pve(time_scale=0.02)
def test_a_redelivered_message_resends_the_turn_whose_message_was_lost(local_ct201, operator, driver, pve):
    run = step_run_start(container=local_ct201, step="lxc_created", actor=operator)
    waiting = _first_turn_committed_and_its_next_message_lost(driver, run)
    assert (waiting.turn, waiting.lease_until, waiting.phase) == (1, None, "wait_create")
    # When the old message comes back (acks_late: it was never acknowledged) before turn 1 is overdue,
    # it does nothing but come back when it would be
    bound = (waiting.due_at - timezone.now()).total_seconds() + 1
    early = driver.deliver(run.pk, 0)
    assert early.turn == 0 and 0 < early.countdown <= bound
    driver.queue.clear()
    # Once turn 1 is overdue, it sends turn 1 again, and the step goes on to done with one create
    StepRun.objects.filter(pk=run.pk).update(due_at=timezone.now() - timedelta(seconds=1))
    assert driver.deliver(run.pk, 0).turn == 1
    driver.run()
    assert row(local_ct201, "lxc_created").state == "done"
    assert len(_creates(pve)) == 1


@pytest.mark.pve(time_scale=0.02)
def test_the_reaper_relays_an_overdue_turn_once(local_ct201, operator, driver, pve):
    run = step_run_start(container=local_ct201, step="lxc_created", actor=operator)
    _first_turn_committed_and_its_next_message_lost(driver, run)
    # Not overdue yet: the reaper leaves it
    assert turns_relay() == 0
    later = timezone.now() + timedelta(minutes=2)
    assert turns_relay(now=later) == 1
    # Two sweeps at once (beat can fire twice): the second finds it sent
    assert turns_relay(now=later) == 0
    driver.commit()
    assert driver.of(queue.STEP_ADVANCE)[-1] == (run.pk, 1)
    driver.run()
    assert row(local_ct201, "lxc_created").state == "done" and len(_creates(pve)) == 1


def test_the_reaper_relays_a_turn_whose_holder_died(ct201, operator, driver):
    run = step_run_start(container=ct201, step="lxc_created", actor=operator)
    # Given a worker claimed turn 0 and died: its lease ran out and nobody renews it
    gone = timezone.now() - timedelta(seconds=1)
    StepRun.objects.filter(pk=run.pk).update(turn=1, lease_until=gone, due_at=None)
    assert turns_relay() == 1
    driver.commit()
    assert driver.of(queue.STEP_ADVANCE)[-1] == (run.pk, 1), "turn 1 is sent, to take the turn over"


@pytest.fixture
def toy_handler():
    """An extra step whose handler is given by the test (registered through the registry's API)."""
    box = {}
    spec = STEPS.register(StepSpec("toy_step", "Toy Step", handler=lambda run, spec: box["handler"](run)))
    yield box
    STEPS.unregister(spec.slug)


def test_a_holder_that_was_taken_over_cannot_write_its_outcome(toy_handler, ct201, operator, driver):
    def stalled_then_taken_over(run):
        # While this worker stalled, its lease ran out and another message took the turn over
        StepRun.objects.filter(pk=run.pk).update(turn=F("turn") + 1)
        return Outcome.failed("the stalled worker's verdict")

    toy_handler["handler"] = stalled_then_taken_over
    run = step_run_start(container=ct201, step="toy_step", actor=operator)
    driver.run()
    run.refresh_from_db()
    assert (run.state, run.error) == ("running", ""), "the new holder owns the attempt"
    assert row(ct201, "toy_step").state == "running"


@pytest.mark.django_db(transaction=True)
def test_the_lease_is_renewed_while_a_long_turn_runs(toy_handler, plan, operator, driver, settings):
    settings.MAXPORTAL_STEP_LEASE_SECONDS = 0.6
    seen = []

    def long_turn(run):
        for _ in range(6):
            seen.append((timezone.now(), StepRun.objects.get(pk=run.pk).lease_until))
            time.sleep(0.25)
        return Outcome.done("long turn done")

    toy_handler["handler"] = long_turn
    ct201 = Container.objects.get(vmid=201)
    run = step_run_start(container=ct201, step="toy_step", actor=operator)
    driver.run()
    run.refresh_from_db()
    assert run.state == "succeeded", run.error
    # The turn ran 1.5 s on a 0.6 s lease: renewed every 0.2 s, it never ran out
    assert all(lease > now for now, lease in seen), "the lease never ran out"
    assert (seen[-1][1] - seen[0][1]).total_seconds() >= 1.0, "it was renewed"

"""Racing clicks on PostgreSQL with real connections (threads): one running attempt per step."""

import threading

import pytest
from django.db import connection, connections

from maxportal.kernel.actors import ENGINE
from maxportal.kernel.errors import NotAllowed
from provisioning.models import ChecklistEvent, ChecklistStep, StepRun
from provisioning.services import step_run_start, step_tick

# No broker (the ``broker`` fixture records what would be sent): the race is the point.
pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("broker")]

THREADS = 8


@pytest.fixture(autouse=True)
def _postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("concurrent transactions are tested on PostgreSQL (SQLite serialises writers)")


def _race(call):
    barrier = threading.Barrier(THREADS)
    outcomes = []
    lock = threading.Lock()

    def run():
        try:
            barrier.wait(timeout=10)
            try:
                result = call()
            except NotAllowed as exc:
                result = exc
            with lock:
                outcomes.append(result)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return outcomes


def test_eight_racing_runs_of_a_step_start_one_attempt(ct201):
    outcomes = _race(lambda: step_run_start(container=ct201, step="lxc_created", actor=ENGINE))
    started = [o for o in outcomes if isinstance(o, StepRun)]
    assert len(outcomes) == THREADS and len(started) == 1
    assert StepRun.objects.filter(step__container=ct201).count() == 1
    assert ChecklistStep.objects.get(container=ct201, step="lxc_created").attempts == 1
    assert ChecklistEvent.objects.filter(container=ct201, to_state="running").count() == 1


def test_eight_racing_ticks_record_one_change(ct201):
    outcomes = _race(lambda: step_tick(container=ct201, step="m365_account", actor=ENGINE))
    assert len([o for o in outcomes if isinstance(o, ChecklistStep)]) == 1
    assert ChecklistEvent.objects.filter(container=ct201, step="m365_account").count() == 1

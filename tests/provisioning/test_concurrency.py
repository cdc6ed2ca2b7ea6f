"""Racing clicks on PostgreSQL with real connections (threads): one running attempt per step."""

import threading

import pytest
from django.db import connection, connections

from maxportal.kernel.errors import NotAllowed
from provisioning.models import ChecklistEvent, ChecklistStep, Container, StepRun
from provisioning.services import ENGINE, checklist_ensure_all, step_run_start, step_tick

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

THREADS = 8


@pytest.fixture(autouse=True)
def _postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("concurrent transactions are tested on PostgreSQL (SQLite serialises writers)")


@pytest.fixture
def ct201(max_plan, monkeypatch):
    from provisioning import services

    monkeypatch.setattr(services, "_enqueue_advance", lambda *a, **k: None)  # no broker: the race is the point
    checklist_ensure_all()
    return Container.objects.select_related("host").get(vmid=201)


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

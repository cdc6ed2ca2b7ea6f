"""The checklist's invariants that the database itself keeps."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from provisioning.models import ChecklistEvent, ChecklistStep, Drift, StepRun
from provisioning.services import checklist_ensure


def _run(step, number, state="running"):
    now = timezone.now()
    return StepRun.objects.create(step=step, number=number, state=state, started_at=now,
                                  deadline=now + timedelta(minutes=5))


def test_a_container_has_the_ten_steps_of_the_plan_once(ct201):
    # Given the checklist of CT201, when it is ensured again
    checklist_ensure(container=ct201)
    # Then it still has exactly the plan's ten rows, and a duplicate row is refused by the database
    assert ChecklistStep.objects.filter(container=ct201).count() == 10
    with pytest.raises(IntegrityError), transaction.atomic():
        ChecklistStep.objects.create(container=ct201, step="base_config")


def test_the_database_allows_one_running_attempt_per_step(ct201):
    step = ChecklistStep.objects.get(container=ct201, step="lxc_created")
    _run(step, 1)
    # When a second running attempt is written for the same step, the partial unique index refuses it
    with pytest.raises(IntegrityError), transaction.atomic():
        _run(step, 2)
    # But finished attempts do not count
    _run(step, 3, state="failed")
    other = ChecklistStep.objects.get(container=ct201, step="base_config")
    _run(other, 1)
    assert StepRun.objects.filter(state="running").count() == 2


def test_audit_events_are_append_only(ct201):
    event = ChecklistEvent.objects.create(
        container=ct201, step="m365_account", from_state="pending", to_state="done", actor_label="operator"
    )
    event.reason = "rewritten"
    with pytest.raises(ValidationError, match="append-only"):
        event.save()
    with pytest.raises(ValidationError, match="append-only"):
        event.delete()
    assert ChecklistEvent.objects.get(pk=event.pk).reason == ""


def test_one_open_drift_finding_per_kind(ct201):
    now = timezone.now()
    Drift.objects.create(host=ct201.host, vmid=201, container=ct201, kind="memory", detected_at=now, last_seen_at=now)
    with pytest.raises(IntegrityError), transaction.atomic():
        Drift.objects.create(host=ct201.host, vmid=201, kind="memory", detected_at=now, last_seen_at=now)
    Drift.objects.filter(vmid=201).update(resolved_at=now)
    Drift.objects.create(host=ct201.host, vmid=201, kind="memory", detected_at=now, last_seen_at=now)
    assert Drift.objects.filter(vmid=201).count() == 2

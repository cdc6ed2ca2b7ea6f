"""Test helper: a lead with a given history written straight into the ledger, at chosen times.

The rows have exactly the shape ``leads.services`` writes (move, from/to stage and status, actor,
summary); only their times are chosen, so that the analytics can be checked against known spans.
"""

from datetime import timedelta

from django.utils import timezone

from eidolons.models import Eidolon
from leads.models import Lead, StageTransition

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)


def ledger_lead(company: str, steps, *, source: str = "website", amount=None, currency: str = "") -> Lead:
    """``steps``: (move, to_stage, to_status, age as a timedelta before now, summary) in time order."""
    now = timezone.now()
    owners = {e.stage: e for e in Eidolon.objects.exclude(stage__isnull=True)}
    lead = Lead.objects.create(company=company, source=source, amount=amount, currency=currency,
                               stage=steps[0][1], status=steps[0][2], stage_entered_at=now - steps[0][3])
    stage, status, entered = "", "", now
    for move, to_stage, to_status, age, summary in steps:
        at = now - age
        row = StageTransition.objects.create(
            lead=lead, move=move, from_stage=stage, to_stage=to_stage, from_status=status, to_status=to_status,
            actor_eidolon=owners[stage or to_stage], summary=summary,
        )
        StageTransition.objects.filter(pk=row.pk).update(created_at=at)
        if to_stage != stage:
            entered = at
        stage, status = to_stage, to_status
    Lead.objects.filter(pk=lead.pk).update(stage=stage, status=status, stage_entered_at=entered,
                                           created_at=now - steps[0][3])
    lead.refresh_from_db()
    return lead


def full_path(days_ago: int):
    """Ingest ``days_ago`` days back, then one handoff a day to DeliveryPM, then complete."""
    stages = ["LeadGen", "FirstResponder", "Scoping", "Orchestra", "Closer", "Onboarding", "DeliveryPM"]
    steps = [("ingest", "LeadGen", "in_progress", days_ago * DAY, "new")]
    for i, stage in enumerate(stages[1:], start=1):
        steps.append(("handoff", stage, "in_progress", (days_ago - i) * DAY, "next"))
    steps.append(("complete", "DeliveryPM", "completed", (days_ago - len(stages)) * DAY, "delivered"))
    return steps

"""Reads of the pipeline board and the lead page: open leads per stage with their rot, and a lead's timeline.

Rotting. A lead is *overdue* when it has been in its stage longer than that stage's threshold
(``StageSetting.stale_after_hours``). It is *stale* when it is overdue AND nothing is scheduled to
act on it (a SapWave waking its owner, an agent action on the lead) within one threshold from now:
an overdue lead whose owner is woken soon is being looked after; one with nothing coming is rotting.

What is scheduled comes from ``scheduled_actions``, the one seam to the SapWaves: they are not on
main yet (another branch builds them), so today it reports nothing scheduled and every overdue
lead is stale; the card says "nothing scheduled (SapWaves not connected yet)". When SapWaves land,
that function reads each Eidolon's next slot and nothing else here changes.

Cost: the board is three queries whatever the number of leads (stage settings, the per-stage counts,
at most ``CARDS_PER_STAGE`` cards per stage through one window query); the lead page five.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, F, Q, QuerySet, Window
from django.db.models.functions import RowNumber

from eidolons.choices import PIPELINE_ORDER
from eidolons.models import Eidolon, Signal

from .choices import LEAD_OPEN_STATUSES
from .models import Lead, LeadNote, StageSetting
from .selectors import lead_artifacts, lead_history, lead_owner_name

CARDS_PER_STAGE = 25  # a column shows the oldest 25 (rendering cards is what costs: bench/pages.py)
SAPWAVES_CONNECTED = False


@dataclass(frozen=True)
class Scheduled:
    """Something due to act on a lead or its owner: when, and what (for the card's text)."""

    due: datetime
    label: str


def scheduled_actions(*, owners: dict[str, Eidolon], now: datetime) -> dict[int, Scheduled]:
    """Eidolon id -> the next thing scheduled to wake it. The seam to the SapWaves (see the module).

    Nothing is scheduled until SapWaves are on main: returns {} (and ``SAPWAVES_CONNECTED`` says so).
    """
    return {}


def stale_thresholds() -> dict[str, timedelta]:
    """Stage -> how long a lead may stay in it before it is overdue (one query)."""
    hours = dict(StageSetting.objects.values_list("stage", "stale_after_hours"))
    return {stage.value: timedelta(hours=hours.get(stage.value, 72)) for stage in PIPELINE_ORDER}


@dataclass(frozen=True)
class Rot:
    overdue: bool
    stale: bool
    over_by: timedelta | None
    scheduled: Scheduled | None
    threshold: timedelta


def rot_of(lead: Lead, *, thresholds, scheduled, owners, now) -> Rot:
    threshold = thresholds[lead.stage]
    in_stage = now - lead.stage_entered_at
    owner = owners.get(lead.stage)
    next_up = scheduled.get(owner.pk) if owner else None
    overdue = in_stage > threshold
    rescued = next_up is not None and next_up.due <= now + threshold
    return Rot(overdue=overdue, stale=overdue and not rescued, over_by=in_stage - threshold if overdue else None,
               scheduled=next_up, threshold=threshold)


def _stale_q(thresholds, scheduled, owners, now) -> Q:
    """The leads that are stale, as one condition (a threshold per stage)."""
    q = Q(pk__in=[])
    for stage, threshold in thresholds.items():
        owner = owners.get(stage)
        next_up = scheduled.get(owner.pk) if owner else None
        if next_up is not None and next_up.due <= now + threshold:
            continue  # everything in this stage is looked after soon
        q |= Q(stage=stage, stage_entered_at__lt=now - threshold)
    return q


def board_leads(*, stage=None, status=None, owner_stage=None, source=None, q="", stale_only=False,
                thresholds, scheduled, owners, now) -> QuerySet[Lead]:
    """Open leads matching the board's filters (``owner_stage``: the stage the chosen Eidolon owns)."""
    qs = Lead.objects.filter(status__in=LEAD_OPEN_STATUSES)
    if stage:
        qs = qs.filter(stage=stage)
    if status:
        qs = qs.filter(status=status)
    if owner_stage is not None:
        qs = qs.filter(stage=owner_stage)
    if source:
        qs = qs.filter(source=source)
    if q:
        q = q.strip()
        qs = qs.filter(Q(company__icontains=q) | Q(contact_name__icontains=q) | Q(email__icontains=q))
    if stale_only:
        qs = qs.filter(_stale_q(thresholds, scheduled, owners, now))
    return qs


def board_columns(**filters) -> list[dict]:
    """One column per stage in pipeline order: its count and its first cards (oldest in stage first)."""
    thresholds, scheduled, owners, now = (filters[k] for k in ("thresholds", "scheduled", "owners", "now"))
    qs = board_leads(**filters)
    counts = dict(qs.values_list("stage").annotate(n=Count("id")).order_by())
    ranked = (
        qs.annotate(rank=Window(RowNumber(), partition_by=[F("stage")], order_by=[F("stage_entered_at").asc(),
                                                                                  F("id").asc()]))
        .filter(rank__lte=CARDS_PER_STAGE)
        .order_by("stage_entered_at", "id")
    )
    cards: dict[str, list] = {stage.value: [] for stage in PIPELINE_ORDER}
    for lead in ranked:
        lead.rot = rot_of(lead, thresholds=thresholds, scheduled=scheduled, owners=owners, now=now)
        lead.owner = owners.get(lead.stage)
        cards[lead.stage].append(lead)
    return [
        {"stage": stage, "owner": owners.get(stage.value), "count": counts.get(stage.value, 0),
         "cards": cards[stage.value], "threshold": thresholds[stage.value],
         "more": max(0, counts.get(stage.value, 0) - len(cards[stage.value]))}
        for stage in PIPELINE_ORDER
    ]


def lead_for_page(lead_id) -> Lead | None:
    return Lead.objects.annotate(owner_name=lead_owner_name()).filter(pk=lead_id).first()


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    kind: str  # transition, signal, artifact, note
    title: str
    actor: str
    text: str = ""
    obj: object = None


def _signal_entries(signal: Signal) -> list[TimelineEntry]:
    entries = [TimelineEntry(signal.created_at, "signal", f"{signal.get_signal_type_display()} sent to "
                             f"{signal.recipient.name}", signal.sender, (signal.payload or {}).get("summary", ""),
                             signal)]
    if signal.delivered_at:
        entries.append(TimelineEntry(signal.delivered_at, "signal", f"{signal.signal_type} delivered to "
                                     f"{signal.recipient.name} ({signal.delivery_count}x)",
                                     signal.agent.kind if signal.agent_id else signal.recipient.name, obj=signal))
    if signal.acknowledged_at:
        entries.append(TimelineEntry(signal.acknowledged_at, "signal", f"{signal.signal_type} acknowledged",
                                     signal.recipient.name, obj=signal))
    return entries


def lead_timeline(*, lead: Lead) -> list[TimelineEntry]:
    """Transitions, signals (sent, delivered, acknowledged), artifacts and notes, newest first.

    SapWaves that touched the lead join here when they land (see ``scheduled_actions``).
    """
    entries = [
        TimelineEntry(t.created_at, "transition", f"{t.get_move_display()}: {t.from_stage or 'new'} "
                      f"{t.from_status or ''} to {t.to_stage} {t.to_status}".replace("  ", " "),
                      t.actor_label, t.summary, t)
        for t in lead_history(lead=lead)
    ]
    for signal in Signal.objects.filter(lead=lead).select_related("recipient", "agent"):
        entries.extend(_signal_entries(signal))
    for artifact in lead_artifacts(lead=lead):
        by = artifact.uploaded_by_user or artifact.uploaded_by_agent or artifact.uploaded_by_eidolon
        entries.append(TimelineEntry(artifact.created_at, "artifact", f"Artifact {artifact.name} ({artifact.stage})",
                                     str(by), f"{artifact.size} bytes", artifact))
    for note in LeadNote.objects.filter(lead=lead).select_related("author"):
        entries.append(TimelineEntry(note.created_at, "note", "Note", f"user {note.author}", note.text, note))
    entries.sort(key=lambda e: e.at, reverse=True)
    return entries

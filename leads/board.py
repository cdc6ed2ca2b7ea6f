"""Reads of the pipeline board and the lead page: open leads per stage with their rot, and a lead's timeline.

Rotting. A lead is *stale* once it has been in its stage longer than that stage's threshold
(``StageSetting.stale_after_hours``): the moment the threshold ran out, nothing had moved it, whatever
comes next. The card says what comes next: "stale 3 d, next wave for Clara (...) in 12 min" or
"stale 3 d, nothing scheduled". Before its threshold runs out a lead is *at risk* when no SapWave
wakes its owner before then (nothing is due that could move it in time): "stale in 5 h, nothing
scheduled before then". (The issue's rule "past the threshold and nothing due before the threshold
runs out" read with its own example, where a wave 12 minutes away does not make a stale card fresh.)

What is scheduled comes from ``scheduled_actions``, the one seam to the SapWaves: each enabled
wave's next fire (``eidolons.sapwaves.selectors.next_fire_times``: none for a paused, expired or
past wave) for each stage owner it wakes, unless that Eidolon's SapWaves are paused. A lead has no
due time of its own yet (``next_action`` is a sentence), so agent actions count through the waves
that wake its owner.

Cost: the board is six queries whatever the number of leads (stage settings, the waves, their
Eidolon sets, the pauses, the per-stage counts, at most ``CARDS_PER_STAGE`` cards per stage through
one window query).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, F, Q, QuerySet, Window
from django.db.models.functions import RowNumber

from eidolons.choices import PIPELINE_ORDER
from eidolons.models import Eidolon, EidolonSapWavePause, SapWave, Signal
from eidolons.sapwaves.choices import SapWaveTargetChoices
from eidolons.sapwaves.selectors import next_fire_times

from .choices import LEAD_OPEN_STATUSES
from .models import Lead, LeadNote, StageSetting
from .selectors import lead_artifacts, lead_history, lead_owner_name

CARDS_PER_STAGE = 25  # a column shows the oldest 25 (rendering cards is what costs: bench/pages.py)


@dataclass(frozen=True)
class Scheduled:
    """Something due to act on a lead or its owner: when, and what (for the card's text)."""

    due: datetime
    label: str


def _woken(wave: SapWave, owner_ids: set[int]) -> set[int]:
    """The stage owners (ids) a wave wakes."""
    kind = wave.target_kind
    if kind == SapWaveTargetChoices.AGENT:
        woken = {wave.target_agent.eidolon_id}
    elif kind == SapWaveTargetChoices.EIDOLON:
        woken = {wave.target_eidolon_id}
    elif kind == SapWaveTargetChoices.SET:
        woken = {e.pk for e in wave.target_set.all()}
    else:
        woken = owner_ids
    return woken & owner_ids


def scheduled_actions(*, owners: dict[str, Eidolon], now: datetime) -> dict[int, Scheduled]:
    """Eidolon id -> the next SapWave that wakes it (the seam; see the module). Three queries."""
    by_id = {e.pk: e for e in owners.values()}
    paused = set(EidolonSapWavePause.objects.values_list("eidolon_id", flat=True))
    waves = SapWave.objects.filter(enabled=True).select_related("target_agent").prefetch_related("target_set")
    best: dict[int, Scheduled] = {}
    for wave in waves:
        fires = next_fire_times(wave, now=now, count=1)
        if not fires:
            continue
        due = fires[0].utc
        for eidolon_id in _woken(wave, set(by_id)) - paused:
            if eidolon_id not in best or due < best[eidolon_id].due:
                best[eidolon_id] = Scheduled(due, f"next wave for {by_id[eidolon_id].name} ({wave.name})")
    return best


def stale_thresholds() -> dict[str, timedelta]:
    """Stage -> how long a lead may stay in it before it is overdue (one query)."""
    hours = dict(StageSetting.objects.values_list("stage", "stale_after_hours"))
    return {stage.value: timedelta(hours=hours.get(stage.value, 72)) for stage in PIPELINE_ORDER}


@dataclass(frozen=True)
class Rot:
    stale: bool
    at_risk: bool
    over_by: timedelta | None
    left: timedelta | None
    scheduled: Scheduled | None
    threshold: timedelta


def rot_of(lead: Lead, *, thresholds, scheduled, owners, now) -> Rot:
    threshold = thresholds[lead.stage]
    runs_out = lead.stage_entered_at + threshold
    owner = owners.get(lead.stage)
    next_up = scheduled.get(owner.pk) if owner else None
    stale = now > runs_out
    at_risk = not stale and (next_up is None or next_up.due > runs_out)
    return Rot(stale=stale, at_risk=at_risk, over_by=now - runs_out if stale else None,
               left=None if stale else runs_out - now, scheduled=next_up, threshold=threshold)


def _stale_q(thresholds, now) -> Q:
    """The leads that are stale, as one condition (a threshold per stage)."""
    q = Q(pk__in=[])
    for stage, threshold in thresholds.items():
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
        qs = qs.filter(_stale_q(thresholds, now))
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
    """Transitions, signals (sent, delivered, acknowledged), artifacts and notes, newest first."""
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

"""Reads of SapWaves, shared by the admin and the staff page: each wave with its next five fire
times (UTC and its own zone), its last run and that run's outcome, the queue over the cap, pauses.

A target's outcome is read, not stored twice: delivered and acknowledged come from its signal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db.models import Count, IntegerField, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from ..models import EidolonSapWavePause, SapWave, SapWaveRun, SapWaveTarget, StaleAgentEpisode
from . import slots
from .choices import SapWaveSkipChoices, SapWaveTargetStateChoices, SapWaveWaitChoices
from .services import wave_spec

S = SapWaveTargetStateChoices

# The outcome columns of a run, in the order a target goes through them (label, filter on targets).
OUTCOMES = (
    ("waiting", Q(state=S.WAITING)),
    ("sent", Q(state=S.SENT, signal__delivered_at__isnull=True)),
    ("delivered", Q(state=S.SENT, signal__delivered_at__isnull=False, signal__acknowledged_at__isnull=True)),
    ("acknowledged", Q(state=S.SENT, signal__acknowledged_at__isnull=False)),
    ("answered", Q(state=S.ANSWERED)),
    ("timed out", Q(state=S.TIMED_OUT)),
    ("skipped", Q(state=S.SKIPPED)),
)


def target_outcome(target: SapWaveTarget) -> str:
    """One target's outcome in words: 'acknowledged', 'skipped: over the cap', 'waiting for the cap' ..."""
    if target.state == S.SENT:
        signal = target.signal
        if signal is not None and signal.acknowledged_at:
            return "acknowledged"
        return "delivered" if signal is not None and signal.delivered_at else "sent"
    if target.state == S.SKIPPED:
        return f"skipped: {SapWaveSkipChoices(target.skip_reason).label}"
    if target.state == S.WAITING:
        return f"waiting for {SapWaveWaitChoices(target.wait_reason).label}"
    return target.get_state_display().lower()


def waves_with_last_run() -> QuerySet[SapWave]:
    """Every wave annotated with its last run (id, slot, state, skip reason) and that run's outcome
    counts (``n_<outcome>``): one query for any number of waves."""
    last = SapWaveRun.objects.filter(wave=OuterRef("pk")).order_by("-slot", "-id")
    counts = {
        f"n_{label.replace(' ', '_')}": Coalesce(
            Subquery(SapWaveTarget.objects.filter(condition, run_id=OuterRef("last_run_id")).order_by()
                     .values("run").annotate(n=Count("id")).values("n")[:1], output_field=IntegerField()),
            0,
        )
        for label, condition in OUTCOMES
    }
    return (
        SapWave.objects.select_related("target_eidolon", "target_agent__eidolon", "owner")
        .prefetch_related("target_set")
        .annotate(last_run_id=Subquery(last.values("id")[:1]), last_slot=Subquery(last.values("slot")[:1]),
                  last_state=Subquery(last.values("state")[:1]),
                  last_skip_reason=Subquery(last.values("skip_reason")[:1]))
        .annotate(**counts)
        .order_by("name")
    )


def last_run_outcome(wave: SapWave) -> str:
    """The annotated last run in words: 'skipped: paused', '3 answered · 1 timed out', or 'never ran'."""
    if wave.last_run_id is None:
        return "never ran"
    if wave.last_state == "skipped":
        return f"skipped: {SapWaveSkipChoices(wave.last_skip_reason).label}"
    parts = [f"{n} {label}" for label, _ in OUTCOMES if (n := getattr(wave, f"n_{label.replace(' ', '_')}", 0))]
    return " · ".join(parts) or "fired"


def target_label(wave: SapWave) -> str:
    kind = wave.target_kind
    if kind == "agent":
        return str(wave.target_agent)
    if kind == "eidolon":
        return str(wave.target_eidolon)
    if kind == "set":
        return ", ".join(sorted(e.name for e in wave.target_set.all()))
    return "all MAX Eidolons"


def schedule_label(wave: SapWave) -> str:
    if wave.schedule_kind == "crontab":
        fields = (wave.cron_minute, wave.cron_hour, wave.cron_day_of_month, wave.cron_month_of_year,
                  wave.cron_day_of_week)
        return f"cron {' '.join(f or '*' for f in fields)} ({wave.timezone})"
    if wave.schedule_kind == "interval":
        return f"every {wave.interval_minutes} min from {wave.interval_anchor:%Y-%m-%d %H:%M} UTC"
    return f"once at {wave.clocked_at:%Y-%m-%d %H:%M} UTC"


@dataclass
class FireTime:
    utc: datetime
    local: datetime


def next_fire_times(wave: SapWave, *, now: datetime | None = None, count: int = 5) -> list[FireTime]:
    """The next ``count`` slots (none for a paused, expired or past wave), in UTC and the wave's zone."""
    now = now or timezone.now()
    if not wave.enabled or (wave.expires_at and wave.expires_at <= now):
        return []
    tz = slots.zone(wave.timezone or "UTC")
    after = max(now, wave.schedule_from)
    found = [s for s in slots.next_slots(wave_spec(wave), after, count) if not wave.expires_at or s <= wave.expires_at]
    return [FireTime(utc=s, local=s.astimezone(tz)) for s in found]


def wave_is_past(wave: SapWave, *, now: datetime | None = None) -> bool:
    """A one-off whose time has gone (fired or not): shown as past, never fires again."""
    now = now or timezone.now()
    return wave.schedule_kind == "clocked" and wave.clocked_at <= max(now, wave.schedule_from)


@dataclass
class WaveRow:
    wave: SapWave
    target: str
    schedule: str
    next_fires: list[FireTime]
    last_outcome: str
    past: bool


@dataclass
class Board:
    rows: list[WaveRow]
    queue: list[SapWaveTarget]
    holding: int
    cap: int
    eidolon_pauses: list[EidolonSapWavePause]
    stale: list[StaleAgentEpisode] = field(default_factory=list)


def sapwaves_board(*, now: datetime | None = None) -> Board:
    """What the SapWaves page shows: the waves, the queue over the cap, pauses, open stale episodes."""
    now = now or timezone.now()
    rows = [
        WaveRow(wave=w, target=target_label(w), schedule=schedule_label(w), next_fires=next_fire_times(w, now=now),
                last_outcome=last_run_outcome(w), past=wave_is_past(w, now=now))
        for w in waves_with_last_run()
    ]
    queue = list(SapWaveTarget.objects.filter(state=S.WAITING, wait_reason=SapWaveWaitChoices.CAP)
                 .select_related("run__wave", "eidolon").order_by("run__slot", "run_id", "id")[:200])
    holding = SapWaveTarget.objects.filter(state=S.SENT).values("eidolon").distinct().count()
    pauses = list(EidolonSapWavePause.objects.select_related("eidolon").order_by("eidolon__name"))
    stale = list(StaleAgentEpisode.objects.filter(ended_at__isnull=True)
                 .select_related("agent__eidolon", "signal")[:50])
    return Board(rows=rows, queue=queue, holding=holding, cap=settings.MAXPORTAL_SAPWAVE_CAP, eidolon_pauses=pauses,
                 stale=stale)


def wave_recent_runs(wave: SapWave, limit: int = 20) -> list[SapWaveRun]:
    return list(SapWaveRun.objects.filter(wave=wave).prefetch_related("targets__eidolon", "targets__signal")[:limit])


def run_outcome(run: SapWaveRun) -> str:
    """A run's outcome in words from its (prefetched) targets."""
    if run.state == "skipped":
        return f"skipped: {SapWaveSkipChoices(run.skip_reason).label}"
    counts: dict[str, int] = {}
    for target in run.targets.all():
        outcome = target_outcome(target)
        counts[outcome] = counts.get(outcome, 0) + 1
    return " · ".join(f"{n} {label}" for label, n in counts.items()) or "fired"

"""Firing SapWave slots exactly once, sending under the concurrency cap, answers, time-outs, the sweep.

Invariants:
- a slot fires at most once: the run row is unique on (wave, slot) and the targets and signals are
  written in the run's transaction (a duplicate insert rolls back to a savepoint and does nothing);
- at most MAXPORTAL_SAPWAVE_CAP Eidolons hold an unanswered wave: every send happens inside one
  critical section (a PostgreSQL advisory lock; SQLite's BEGIN IMMEDIATE serialises writers anyway),
  and a new place is given in the order of the slots waiting for one;
- target moves follow ``choices.TARGET_MOVES``, as conditional updates from the allowed states.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from celery import current_app
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Max, OuterRef, Q, Subquery
from django.utils import timezone

from ..choices import SignalTypeChoices
from ..models import Eidolon, EidolonSapWavePause, SapWave, SapWaveRun, SapWaveTarget, Signal
from ..services import signal_send
from . import slots
from .choices import (
    TARGET_MOVES,
    SapWaveCapChoices,
    SapWaveCatchupChoices,
    SapWaveOverlapChoices,
    SapWaveRunStateChoices,
    SapWaveScheduleChoices,
    SapWaveSkipChoices,
    SapWaveTargetChoices,
    SapWaveTargetStateChoices,
    SapWaveTriggerChoices,
    SapWaveWaitChoices,
)

FIRE_TASK = "eidolons.sapwave_fire"
DISPATCH_TASK = "eidolons.sapwaves_dispatch"
# Beat may wake a hair before a slot; a firing counts slots up to this far ahead of its clock.
EARLY_TOLERANCE = timedelta(seconds=5)
CAP_LOCK_KEY = 0x5A9_3A7E  # pg_advisory_xact_lock key of the cap's critical section


S = SapWaveTargetStateChoices


def wave_spec(wave: SapWave) -> slots.Spec:
    """The wave's schedule as ``slots`` evaluates it."""
    if wave.schedule_kind == SapWaveScheduleChoices.CRONTAB:
        return slots.Crontab(wave.cron_minute or "*", wave.cron_hour or "*", wave.cron_day_of_month or "*",
                             wave.cron_month_of_year or "*", wave.cron_day_of_week or "*", wave.timezone or "UTC")
    if wave.schedule_kind == SapWaveScheduleChoices.INTERVAL:
        return slots.Interval(wave.interval_minutes or 0, wave.interval_anchor)
    return slots.Clocked(wave.clocked_at)


def _enqueue(name: str, args=(), countdown: float | None = None) -> None:
    """Send a task by name once the surrounding transaction commits (never from inside it)."""
    transaction.on_commit(lambda: current_app.send_task(name, args=args, countdown=countdown))


def _cap_section() -> None:
    """Enter the cap's critical section for the rest of the current transaction."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CAP_LOCK_KEY])


# --- Firing ----------------------------------------------------------------------------------------


def wave_targets(wave: SapWave) -> list[tuple[Eidolon, object | None]]:
    """(Eidolon, agent or None) the wave wakes, in a stable order."""
    kind = wave.target_kind
    if kind == SapWaveTargetChoices.AGENT:
        return [(wave.target_agent.eidolon, wave.target_agent)]
    if kind == SapWaveTargetChoices.EIDOLON:
        return [(wave.target_eidolon, None)]
    qs = wave.target_set.all() if kind == SapWaveTargetChoices.SET else Eidolon.objects.filter(stage__isnull=False)
    return [(e, None) for e in qs.order_by("name")]


def _jitter(wave: SapWave, slot: datetime, eidolon_id: int) -> timedelta:
    """This Eidolon's delay after the slot: fixed per (wave, slot, Eidolon), so a re-run computes the same."""
    if not wave.jitter_seconds:
        return timedelta(0)
    digest = hashlib.sha256(f"{wave.pk}:{slot.isoformat()}:{eidolon_id}".encode()).digest()
    return timedelta(seconds=int.from_bytes(digest[:4], "big") % (wave.jitter_seconds + 1))


def _last_scheduled_slot(wave: SapWave) -> datetime | None:
    return (SapWaveRun.objects.filter(wave=wave).exclude(trigger=SapWaveTriggerChoices.MANUAL)
            .aggregate(m=Max("slot"))["m"])


def due_slots(wave: SapWave, at: datetime, last_slot: datetime | None = None) -> list[datetime]:
    """Slots of ``wave`` due by ``at`` and not yet accounted for (fired or skipped)."""
    lookback = at - timedelta(hours=settings.MAXPORTAL_SAPWAVE_LOOKBACK_HOURS)
    start = max(x for x in (wave.schedule_from, lookback, last_slot) if x is not None)
    return slots.slots_between(wave_spec(wave), start, at + EARLY_TOLERANCE)


def _catchup_plan(wave: SapWave, due: list[datetime], at: datetime) -> list[tuple[datetime, str, str]]:
    """(slot, trigger, skip reason or "") for each due slot, per the wave's catch-up policy.

    On time (fired at most MAXPORTAL_SAPWAVE_ON_TIME_SECONDS after its slot): fires. Missed:
    skip -> skipped; once -> the latest missed fires when nothing is on time, the rest skipped;
    all -> those within the catch-up window fire, older ones skipped.
    """
    grace = timedelta(seconds=settings.MAXPORTAL_SAPWAVE_ON_TIME_SECONDS)
    on_time = [s for s in due if at - s <= grace]
    missed = [s for s in due if at - s > grace]
    plan = dict.fromkeys(on_time, (SapWaveTriggerChoices.SCHEDULE, ""))
    policy = wave.catchup_policy
    for s in missed:
        plan[s] = (SapWaveTriggerChoices.CATCHUP, SapWaveSkipChoices.MISSED)
    if missed and policy == SapWaveCatchupChoices.ONCE and not on_time:
        plan[missed[-1]] = (SapWaveTriggerChoices.CATCHUP, "")
    elif policy == SapWaveCatchupChoices.ALL:
        window = timedelta(minutes=wave.catchup_window_minutes)
        for s in missed:
            if at - s <= window:
                plan[s] = (SapWaveTriggerChoices.CATCHUP, "")
    if wave.expires_at is not None:
        for s in plan:
            if s > wave.expires_at:
                plan[s] = (plan[s][0], SapWaveSkipChoices.EXPIRED)
    return [(s, *plan[s]) for s in sorted(plan)]


def sapwave_fire_due(*, wave_id: int, at: datetime | None = None, triggered_by: str = "beat") -> list[SapWaveRun]:
    """Fire (or skip, per policy) every slot of the wave due by ``at``; returns the runs it created.

    What beat's message and the sweep call. However often it is called for the same instant, each
    slot gets one run.
    """
    at = at or timezone.now()
    wave = SapWave.objects.select_related("target_agent__eidolon", "target_eidolon").filter(pk=wave_id).first()
    if wave is None:
        return []
    due = due_slots(wave, at, _last_scheduled_slot(wave))
    if not due:
        return []
    plan = _catchup_plan(wave, due, at)
    skipped = [(s, t, r) for s, t, r in plan if r == SapWaveSkipChoices.MISSED]
    # Missed slots are recorded in one statement (an outage can leave many).
    SapWaveRun.objects.bulk_create(
        [SapWaveRun(wave=wave, slot=s, trigger=t, state=SapWaveRunStateChoices.SKIPPED, skip_reason=r,
                    triggered_by=triggered_by) for s, t, r in skipped],
        ignore_conflicts=True,
    )
    runs = []
    for slot, trigger, reason in plan:
        if reason == SapWaveSkipChoices.MISSED:
            continue
        run, created = sapwave_fire_slot(wave=wave, slot=slot, trigger=trigger, triggered_by=triggered_by,
                                         skip_reason=reason)
        if created:
            runs.append(run)
    return runs


def sapwave_fire_slot(
    *, wave: SapWave, slot: datetime, trigger: str, triggered_by: str, skip_reason: str = ""
) -> tuple[SapWaveRun, bool]:
    """Record the run for (wave, slot) and wake its targets, in one transaction; (run, created).

    When the slot already has a run (another beat, a re-delivered message, a second click) nothing
    is written and the existing run is returned with created False.
    """
    now = timezone.now()
    if not skip_reason:
        if not wave.enabled and trigger != SapWaveTriggerChoices.MANUAL:
            skip_reason = SapWaveSkipChoices.PAUSED
        elif wave.expires_at is not None and slot > wave.expires_at:
            skip_reason = SapWaveSkipChoices.EXPIRED
    targets = [] if skip_reason else wave_targets(wave)
    if not skip_reason and not targets:
        skip_reason = SapWaveSkipChoices.NO_TARGETS
    with transaction.atomic():
        try:
            with transaction.atomic():
                run = SapWaveRun.objects.create(
                    wave=wave, slot=slot, trigger=trigger, triggered_by=triggered_by[:150],
                    state=SapWaveRunStateChoices.SKIPPED if skip_reason else SapWaveRunStateChoices.FIRED,
                    skip_reason=skip_reason,
                )
        except IntegrityError:
            return SapWaveRun.objects.get(wave=wave, slot=slot), False
        if targets:
            _targets_create(wave, run, targets, now)
            # The cap's critical section is entered only now: concurrent firings write their runs and
            # targets in parallel and queue only for the sends (held until this transaction commits).
            sapwaves_dispatch(now=now, run_id=run.pk)
    return run, True


def _targets_create(wave: SapWave, run: SapWaveRun, targets, now: datetime) -> None:
    ids = [e.pk for e, _ in targets]
    paused = set(EidolonSapWavePause.objects.filter(eidolon_id__in=ids).values_list("eidolon_id", flat=True))
    open_rows = SapWaveTarget.objects.filter(wave=wave, eidolon_id__in=ids, state__in=(S.WAITING, S.SENT))
    open_ids = {e for e, _ in open_rows.values_list("eidolon_id", "state")}
    buffered = set(open_rows.filter(state=S.WAITING, wait_reason=SapWaveWaitChoices.OVERLAP)
                   .values_list("eidolon_id", flat=True))
    manual = run.trigger == SapWaveTriggerChoices.MANUAL
    rows, later = [], set()
    for eidolon, agent in targets:
        row = SapWaveTarget(run=run, wave=wave, eidolon=eidolon, agent=agent, state=S.WAITING,
                            wait_reason=SapWaveWaitChoices.JITTER,
                            not_before=run.slot if manual else run.slot + _jitter(wave, run.slot, eidolon.pk))
        if eidolon.pk in paused:
            row.state, row.skip_reason, row.wait_reason = S.SKIPPED, SapWaveSkipChoices.EIDOLON_PAUSED, ""
        elif eidolon.pk in open_ids:
            if wave.overlap_policy == SapWaveOverlapChoices.SKIP:
                row.state, row.skip_reason, row.wait_reason = S.SKIPPED, SapWaveSkipChoices.OVERLAP, ""
            elif eidolon.pk in buffered:
                row.state, row.skip_reason, row.wait_reason = S.SKIPPED, SapWaveSkipChoices.OVERLAP_BUFFER_FULL, ""
            else:
                row.wait_reason = SapWaveWaitChoices.OVERLAP
        if row.state == S.SKIPPED:
            row.closed_at = now
        elif row.not_before > now:
            later.add(row.not_before)
        rows.append(row)
    SapWaveTarget.objects.bulk_create(rows)
    for when in sorted(later):
        _enqueue(DISPATCH_TASK, countdown=(when - now).total_seconds())


def _move(qs, to: str, **values) -> int:
    """Move the targets in ``qs`` to ``to`` from whichever states allow it (TARGET_MOVES)."""
    sources = [state for state, targets in TARGET_MOVES.items() if to in targets]
    return qs.filter(state__in=sources).update(state=to, **values)


def sapwaves_dispatch(*, now: datetime | None = None, locked: bool = False, run_id: int | None = None) -> int:
    """Send the waiting targets that are due, oldest slot first, while places under the cap last.

    A waiting target of an Eidolon that already holds an unanswered wave takes no new place.
    Over the cap, a wave's cap policy keeps the target waiting (in order) or skips it. ``run_id``
    limits it to one run's targets (a firing sends its own; the sweep and the tasks send the rest).
    """
    now = now or timezone.now()
    with transaction.atomic():
        if not locked:
            _cap_section()
        waiting = SapWaveTarget.objects.filter(state=S.WAITING, not_before__lte=now)
        if run_id is not None:
            waiting = waiting.filter(run_id=run_id)
        waiting = list(waiting.select_related("wave", "run", "eidolon", "agent")
                       .order_by("run__slot", "run_id", "id")[:1000])
        if not waiting:
            return 0
        cap = settings.MAXPORTAL_SAPWAVE_CAP
        if run_id is not None and SapWaveTarget.objects.filter(
                state=S.WAITING, wait_reason=SapWaveWaitChoices.CAP).exclude(run_id=run_id).exists():
            cap = 0  # older targets queue for the cap: this run's new places wait behind them, in order
        sent_rows = SapWaveTarget.objects.filter(state=S.SENT)
        held = sent_rows.values("eidolon_id").distinct().count()
        eidolon_ids = {t.eidolon_id for t in waiting}
        candidates = sent_rows.filter(eidolon_id__in=eidolon_ids)
        holding = set(candidates.values_list("eidolon_id", flat=True))
        open_pairs = set(candidates.filter(wave_id__in={t.wave_id for t in waiting}).values_list("wave_id",
                                                                                               "eidolon_id"))
        paused = set(EidolonSapWavePause.objects.filter(eidolon_id__in=eidolon_ids).values_list("eidolon_id",
                                                                                               flat=True))
        sent = 0
        for target in waiting:
            wave, pair = target.wave, (target.wave_id, target.eidolon_id)
            skip = ""
            if target.eidolon_id in paused:
                skip = SapWaveSkipChoices.EIDOLON_PAUSED
            elif not wave.enabled and target.run.trigger != SapWaveTriggerChoices.MANUAL:
                skip = SapWaveSkipChoices.PAUSED
            elif wave.expires_at is not None and now >= wave.expires_at:
                skip = SapWaveSkipChoices.EXPIRED
            if skip:
                _move(SapWaveTarget.objects.filter(pk=target.pk), S.SKIPPED, skip_reason=skip, wait_reason="",
                      closed_at=now)
                continue
            if pair in open_pairs:  # an earlier one of this wave and Eidolon is unanswered or waiting: keep order
                continue
            if target.eidolon_id not in holding and held >= cap:
                if wave.cap_policy == SapWaveCapChoices.SKIP:
                    _move(SapWaveTarget.objects.filter(pk=target.pk), S.SKIPPED,
                          skip_reason=SapWaveSkipChoices.OVER_CAP, wait_reason="", closed_at=now)
                else:
                    if target.wait_reason != SapWaveWaitChoices.CAP:
                        SapWaveTarget.objects.filter(pk=target.pk).update(wait_reason=SapWaveWaitChoices.CAP)
                    open_pairs.add(pair)
                continue
            _send(target, now)
            if target.eidolon_id not in holding:
                holding.add(target.eidolon_id)
                held += 1
            open_pairs.add(pair)
            sent += 1
    return sent


def _send(target: SapWaveTarget, now: datetime) -> None:
    wave, run = target.wave, target.run
    payload = {
        "wave": wave.name, "wave_id": wave.pk, "run_id": run.pk, "slot": run.slot.astimezone(UTC).isoformat(),
        "kind": wave.kind, "prompt": wave.prompt, "trigger": run.trigger,
        "answer": "Answer with a TASK_RESPONSE signal (or move a lead); unanswered after "
                  f"{wave.answer_timeout_minutes} min it is recorded as timed out.",
    }
    signal = signal_send(signal_type=SignalTypeChoices.SAPWAVE, sender=f"SapWave {wave.name}"[:100],
                         recipient=target.eidolon, agent=target.agent, payload=payload)
    _move(SapWaveTarget.objects.filter(pk=target.pk), S.SENT, sent_at=now, signal=signal, wait_reason="")


# --- Answers, time-outs, the sweep ----------------------------------------------------------------


def sapwave_runs_mark_answered(*, eidolon_id: int, at: datetime, by: str = "lead move") -> int:
    """The Eidolon did something after its waves (a lead move): its unanswered targets are answered.

    Called by leads inside the move's transaction; the freed places are used after the commit.
    """
    count = _move(SapWaveTarget.objects.filter(eidolon_id=eidolon_id, sent_at__lte=at), S.ANSWERED,
                  answered_at=at, answered_by=by[:100], closed_at=at)
    if count:
        _enqueue(DISPATCH_TASK)
    return count


def _answers_find(now: datetime) -> int:
    """Targets answered by a TASK_RESPONSE the Eidolon sent after the wave woke it."""
    first_response = (Signal.objects.filter(signal_type=SignalTypeChoices.TASK_RESPONSE,
                                            sender=OuterRef("eidolon__name"), created_at__gte=OuterRef("sent_at"))
                      .order_by("created_at", "id"))
    rows = (SapWaveTarget.objects.filter(state=S.SENT)
            .annotate(response_id=Subquery(first_response.values("id")[:1]),
                      response_at=Subquery(first_response.values("created_at")[:1]))
            .filter(response_id__isnull=False).values_list("pk", "response_id", "response_at"))
    answered = 0
    for pk, response_id, response_at in rows:
        answered += _move(SapWaveTarget.objects.filter(pk=pk), S.ANSWERED, answered_at=response_at,
                          answered_by=f"TASK_RESPONSE #{response_id}", closed_at=now)
    return answered


def _timeouts(now: datetime) -> tuple[int, int]:
    timed_out = skipped = 0
    # A buffered (overlap) target waits for its predecessor, whose own time-out bounds the wait.
    rows = SapWaveTarget.objects.filter(state__in=(S.SENT, S.WAITING)).exclude(
        state=S.WAITING, wait_reason=SapWaveWaitChoices.OVERLAP).values_list(
        "pk", "state", "sent_at", "not_before", "wave__answer_timeout_minutes")
    for pk, state, sent_at, not_before, minutes in rows:
        limit = timedelta(minutes=minutes)
        if state == S.SENT and now - sent_at > limit:
            timed_out += _move(SapWaveTarget.objects.filter(pk=pk), S.TIMED_OUT, closed_at=now)
        elif state == S.WAITING and now - not_before > limit:
            skipped += _move(SapWaveTarget.objects.filter(pk=pk), S.SKIPPED,
                             skip_reason=SapWaveSkipChoices.WAITED_TOO_LONG, closed_at=now)
    return timed_out, skipped


@dataclass
class SweepReport:
    runs: list[int] = field(default_factory=list)
    answered: int = 0
    timed_out: int = 0
    waited_too_long: int = 0
    sent: int = 0


def sapwaves_sweep(*, now: datetime | None = None) -> SweepReport:
    """The periodic safety net: fire slots beat left unfired (after a grace), record answers and
    time-outs, and send waiting targets. Idempotent: a second sweep at the same instant does nothing."""
    now = now or timezone.now()
    report = SweepReport()
    grace = timedelta(seconds=settings.MAXPORTAL_SAPWAVE_SWEEP_GRACE_SECONDS)
    waves = (SapWave.objects.filter(enabled=True).filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now - grace))
             .annotate(last_slot=Max("runs__slot", filter=~Q(runs__trigger=SapWaveTriggerChoices.MANUAL))))
    for wave in waves:
        if due_slots(wave, now - grace, wave.last_slot):
            report.runs += [r.pk for r in sapwave_fire_due(wave_id=wave.pk, at=now, triggered_by="sweep")]
    report.answered = _answers_find(now)
    report.timed_out, report.waited_too_long = _timeouts(now)
    report.sent = sapwaves_dispatch(now=now)
    return report



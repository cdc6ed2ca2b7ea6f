"""One turn of an attempt at an automated step: claim the turn, run the handler, apply its outcome.

The message protocol (``StepRun.turn`` counts the turns claimed so far; a message carries the
number it expects to find):

- **claim**: a message carrying ``turn`` claims when the attempt is at that turn and nobody holds
  it (or its holder's lease ran out: a takeover). One conditional UPDATE sets ``turn + 1`` and a
  short lease, renewed by ``LeaseKeeper`` while the handler runs. The claimed number fences the
  holder: its renewals and its outcome name it, so once another message took over, they are dropped.
- **wait**: the turn is released (no lease) with ``due_at``, the time by which the message for the
  next turn, sent right after, must have claimed it.
- **one behind**: a message for the turn before (the holder's own message re-delivered after its
  worker died, or a duplicate) never runs anything. If the attempt's holder is alive, or its next
  message is not yet overdue, it comes back when that changes; once the holder's lease ran out or the
  next message is overdue (it was lost: the worker died between committing the turn and sending
  its message), it sends the message for the current turn again. ``reaper.turns_relay`` does the same
  from beat, for messages no one re-delivers. A guarded update of ``due_at`` lets one of them send.
- anything else is stale and dropped: a re-delivered or duplicated message never repeats work.

Other invariants: the attempt and its cell end together, in one transaction, along
``transitions.RUN_ENDINGS``; no row lock is held while the handler calls Proxmox or the node.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import Q
from django.utils import timezone

from maxportal.kernel.actors import ENGINE, Actor
from maxportal.kernel.text import tail

from .. import checklist
from ..choices import StepRunStateChoices, StepStateChoices
from ..models import ChecklistStep, StepRun
from . import queue, transitions
from .failures import run_handler
from .lease import LeaseKeeper
from .outcome import Outcome


@dataclass
class AdvanceResult:
    """What the task does next: nothing, or send the message for ``turn`` after ``countdown``."""

    turn: int | None = None
    countdown: float = 0.0


def _countdown(until, now) -> float:
    return min(max((until - now).total_seconds(), 0) + 1, settings.MAXPORTAL_MAX_COUNTDOWN_SECONDS)


def step_run_advance(*, run_id: int, turn: int) -> AdvanceResult:
    """Do one turn of an attempt, if this message may; else say what to send instead (see above)."""
    run = (
        StepRun.objects.filter(pk=run_id)
        .select_related("step")
        .only("state", "turn", "lease_until", "due_at", "phase", "deadline", "step__step")
        .first()
    )
    if run is None or run.state != StepRunStateChoices.RUNNING:
        return AdvanceResult()
    now = timezone.now()
    lease = settings.MAXPORTAL_STEP_LEASE_SECONDS
    if run.turn == turn:
        claimed = (
            StepRun.objects.filter(pk=run_id, state=StepRunStateChoices.RUNNING, phase=run.phase, turn=turn)
            .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
            .update(turn=turn + 1, lease_until=now + timedelta(seconds=lease), due_at=None)
        )
        if claimed:
            return _run_turn(run_id, turn + 1, lease, now)
        if run.lease_until and run.lease_until > now:
            # Held by a live worker (this message was sent to take a turn over, and it was renewed
            # or taken meanwhile): look again when that lease would run out.
            return AdvanceResult(turn=turn, countdown=_countdown(run.lease_until, now))
        return AdvanceResult()  # changed between the two reads: stale
    if run.turn == turn + 1:
        return _one_behind(run, now)
    return AdvanceResult()  # stale: that turn was done already


def _one_behind(run: StepRun, now) -> AdvanceResult:
    """A message for the turn before the current one: watch the current turn, resend it if lost."""
    held = run.lease_until is not None
    look_again_at = run.lease_until if held else run.due_at
    if look_again_at and look_again_at > now:
        # The holder is alive, or the next message is still on its way: come back then.
        return AdvanceResult(turn=run.turn - 1, countdown=_countdown(look_again_at, now))
    return AdvanceResult(turn=run.turn) if resend_claim(run, now) else AdvanceResult()


def resend_claim(run: StepRun, now) -> bool:
    """Take the right to send the current turn's message again (its holder died or its message is
    overdue); of several who ask at once (a re-delivered message, the reaper), one gets it."""
    return bool(
        StepRun.objects.filter(pk=run.pk, state=StepRunStateChoices.RUNNING, turn=run.turn)
        .filter(lost_turn(now))
        .update(due_at=message_due(now))
    )


def lost_turn(now) -> Q:
    """The attempts whose current turn no one will take unless its message is sent again: its
    holder's lease ran out (and no takeover was sent within the grace), or it is unheld and its
    message is overdue."""
    held_lost = Q(lease_until__lt=now) & (Q(due_at__isnull=True) | Q(due_at__lt=now))
    unheld_overdue = Q(lease_until__isnull=True, due_at__lt=now)
    return held_lost | unheld_overdue


def message_due(now, countdown: float = 0.0):
    """When a message sent now (to be run after ``countdown``) is overdue if its turn is still unclaimed."""
    return now + timedelta(seconds=countdown + settings.MAXPORTAL_STEP_MESSAGE_GRACE_SECONDS)


def _run_turn(run_id: int, claimed: int, lease: float, now) -> AdvanceResult:
    try:
        run = StepRun.objects.select_related("step__container__host").get(pk=run_id)
        spec = checklist.STEPS[run.step.step]
        if now > run.deadline:
            outcome = Outcome.failed(
                f"The attempt ran past its time limit of {spec.time_limit_s} s. Run the step again."
            )
        else:
            with LeaseKeeper(run_id, claimed, lease):
                outcome = run_handler(run)
        return _apply_outcome(run, claimed, outcome)
    except DatabaseError:
        # The database failed under us (a lost connection, a lock): give the turn back so the
        # task's retry can take it at once. Every handler is safe to run again from its phase.
        with contextlib.suppress(DatabaseError):
            StepRun.objects.filter(pk=run_id, turn=claimed, state=StepRunStateChoices.RUNNING).update(
                turn=claimed - 1, lease_until=None, due_at=message_due(timezone.now())
            )
        raise


def _apply_outcome(run: StepRun, claimed: int, outcome: Outcome) -> AdvanceResult:
    """Save what the turn did, if this worker still holds it (``turn = claimed``)."""
    if outcome.output:
        run.output_tail = tail(outcome.output)
    mine = StepRun.objects.filter(pk=run.pk, state=StepRunStateChoices.RUNNING, turn=claimed)
    if outcome.kind == "wait":
        released = mine.update(
            phase=run.phase, upid=run.upid, data=run.data, output_tail=run.output_tail,
            exit_code=run.exit_code, lease_until=None, due_at=message_due(timezone.now(), outcome.countdown),
        )
        if not released:
            return AdvanceResult()  # taken over or reaped meanwhile: the new holder goes on
        # Keep the cell's UPID and log fresh while the task runs: the page shows them live.
        ChecklistStep.objects.filter(pk=run.step_id, state=StepStateChoices.RUNNING).update(
            upid=run.upid, output_tail=run.output_tail
        )
        return AdvanceResult(turn=claimed, countdown=outcome.countdown)

    run_state, step_state = transitions.RUN_ENDINGS[outcome.kind]
    row = run.step
    actor = Actor.for_system(f"celery worker (run by {run.started_by_label})"
                             if run.started_by_label else ENGINE.label, user=run.started_by)
    with transaction.atomic():
        finished = mine.update(
            state=run_state, finished_at=timezone.now(), phase=run.phase, upid=run.upid, data=run.data,
            output_tail=run.output_tail, exit_code=run.exit_code, error=outcome.message, lease_until=None,
            due_at=None,
        )
        if not finished:
            return AdvanceResult()  # the reaper took it back, or another worker took the turn over
        row.refresh_from_db()
        transitions.move(
            row, step_state, actor=actor, run=run, reason=outcome.message,
            output_tail=run.output_tail, upid=run.upid, note=outcome.message,
        )
        if outcome.kind == "done" and run.follow_on:
            # A task of its own, after commit, in a fresh read: two steps finishing together both see
            # each other done, and the conditional start lets only one of them queue the shared next
            # step. As a task it is retried if the database hiccups, instead of being lost.
            queue.follow_on_on_commit(row.container_id, run.started_by_id, run.started_by_label)
    return AdvanceResult()

"""One turn of an attempt at an automated step: claim the turn, run the handler, apply its outcome.

Invariants this module keeps (the database backs each one):
- a task message advances an attempt only for its own turn (``StepRun.turn``): the claim is one
  conditional UPDATE, so a re-delivered or duplicated message is dropped instead of creating a
  second container, and a turn whose worker died is taken over once its lease ran out;
- a claimed turn's lease is as long as the turn can take (the step's script time limit, times the
  script runs of the turn, plus a margin), never past the attempt's deadline;
- the attempt and its cell end together, in one transaction, along ``transitions.RUN_ENDINGS``;
- no row lock is held while the handler calls Proxmox or the node.
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
from ..scripts import timeout_for
from ..steps.spec import StepSpec
from . import queue, transitions
from .failures import run_handler
from .outcome import Outcome

# Phases that only look at something (a Proxmox task, an acknowledgement): short leases, so a turn
# whose worker died is taken over quickly by the re-delivered message.
POLL_LEASE_SECONDS = 120


@dataclass
class AdvanceResult:
    """What the task does next: nothing, or send itself again for ``turn`` after ``countdown``."""

    turn: int | None = None
    countdown: float = 0.0


def lease_seconds(run: StepRun, spec: StepSpec) -> int:
    """How long a claimed turn is protected: as long as the turn can take, not a second more.

    A turn that runs a script cannot outlive the script's own time limit (the executor cuts it), so
    its lease is that limit (times the scripts the turn runs) plus a margin; after it, a re-delivered
    message may take the turn over.
    """
    remaining = max(60, int((run.deadline - timezone.now()).total_seconds()))
    if run.phase.startswith("wait_") or run.phase == "await_ack" or spec.script is None:
        return min(POLL_LEASE_SECONDS, remaining)
    turn_s = spec.runs_per_lease * timeout_for(spec.slug, spec.script)
    return min(turn_s + settings.MAXPORTAL_STEP_LEASE_MARGIN_SECONDS, remaining)


def step_run_advance(*, run_id: int, turn: int) -> AdvanceResult:
    """Do one turn of an attempt. Only the message for the current turn gets through."""
    run = (
        StepRun.objects.filter(pk=run_id)
        .select_related("step")
        .only("state", "turn", "lease_until", "phase", "deadline", "step__step")
        .first()
    )
    if run is None or run.state != StepRunStateChoices.RUNNING:
        return AdvanceResult()
    spec = checklist.STEPS[run.step.step]
    now = timezone.now()
    lease_until = now + timedelta(seconds=lease_seconds(run, spec))
    claimed = (
        StepRun.objects.filter(pk=run_id, state=StepRunStateChoices.RUNNING, phase=run.phase)
        .filter(Q(turn=turn) | Q(turn=turn + 1, lease_until__lt=now))
        .update(turn=turn + 1, lease_until=lease_until)
    )
    if not claimed:
        if run.turn == turn + 1 and run.lease_until and run.lease_until > now:
            # Someone holds this turn; if its worker dies, take over after its lease.
            wait = min((run.lease_until - now).total_seconds() + 1, settings.MAXPORTAL_MAX_COUNTDOWN_SECONDS)
            return AdvanceResult(turn=turn, countdown=wait)
        return AdvanceResult()  # a stale or duplicated message: this turn was done already

    try:
        run = StepRun.objects.select_related("step__container__host").get(pk=run_id)
        if now > run.deadline:
            outcome = Outcome.failed(
                f"The attempt ran past its time limit of {spec.time_limit_s} s. Run the step again."
            )
        else:
            outcome = run_handler(run)
        return _apply_outcome(run, outcome)
    except DatabaseError:
        # The database failed under us (a lost connection, a lock): give the turn back so the
        # task's retry can take it at once. Every handler is safe to run again from its phase.
        with contextlib.suppress(DatabaseError):
            StepRun.objects.filter(pk=run_id, turn=turn + 1, state=StepRunStateChoices.RUNNING).update(
                turn=turn, lease_until=None
            )
        raise


def _apply_outcome(run: StepRun, outcome: Outcome) -> AdvanceResult:
    if outcome.output:
        run.output_tail = tail(outcome.output)
    if outcome.kind == "wait":
        StepRun.objects.filter(pk=run.pk, state=StepRunStateChoices.RUNNING).update(
            phase=run.phase, upid=run.upid, data=run.data, output_tail=run.output_tail,
            exit_code=run.exit_code, lease_until=None,
        )
        # Keep the cell's UPID and log fresh while the task runs: the page shows them live.
        ChecklistStep.objects.filter(pk=run.step_id, state=StepStateChoices.RUNNING).update(
            upid=run.upid, output_tail=run.output_tail
        )
        return AdvanceResult(turn=run.turn, countdown=outcome.countdown)

    run_state, step_state = transitions.RUN_ENDINGS[outcome.kind]
    row = run.step
    actor = Actor.for_system(f"celery worker (run by {run.started_by_label})"
                             if run.started_by_label else ENGINE.label, user=run.started_by)
    with transaction.atomic():
        finished = StepRun.objects.filter(pk=run.pk, state=StepRunStateChoices.RUNNING).update(
            state=run_state, finished_at=timezone.now(), phase=run.phase, upid=run.upid, data=run.data,
            output_tail=run.output_tail, exit_code=run.exit_code, error=outcome.message, lease_until=None,
        )
        if not finished:
            return AdvanceResult()  # the reaper took it back meanwhile
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

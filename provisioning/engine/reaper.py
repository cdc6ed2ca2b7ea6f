"""The periodic sweep: resend lost turns, take back attempts past their time limit, restart
stalled "provision all" chains.

A killed worker or a lost message must not hold a step: a turn whose holder's lease ran out, or
whose message is overdue, gets its message again (``turns_relay``, the outbox relay of the turn
protocol in ``advance``), so the step resumes within a lease and a sweep; an attempt past its
deadline is marked reclaimed and its cell failed (it can be run again); a chain whose follow-on
message was lost is started again from what is ready.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from maxportal.kernel.actors import REAPER

from .. import services
from ..checklist import STEPS
from ..choices import StepRunStateChoices, StepStateChoices
from ..models import ChecklistStep, Container, StepRun
from . import queue
from .advance import lost_turn, resend_claim
from .transitions import move


def turns_relay(*, now=None) -> int:
    """Send again the message of every turn no one will otherwise take (see ``advance.lost_turn``);
    returns how many were sent. Safe to run twice at once: one of them gets each turn."""
    now = now or timezone.now()
    sent = 0
    lost = StepRun.objects.filter(state=StepRunStateChoices.RUNNING, deadline__gte=now).filter(lost_turn(now))
    for run in lost.only("pk", "turn", "lease_until", "due_at"):
        with transaction.atomic():
            if resend_claim(run, now):
                queue.advance_on_commit(run.pk, run.turn)
                sent += 1
    return sent


def step_runs_reap(*, now=None) -> int:
    """Take back attempts that ran past their time limit (a killed worker, a lost message)."""
    now = now or timezone.now()
    reaped = 0
    for run in StepRun.objects.filter(state=StepRunStateChoices.RUNNING, deadline__lt=now).select_related(
        "step__container"
    ):
        message = (
            f"Attempt {run.number} ran past its time limit of {STEPS[run.step.step].time_limit_s} s (phase "
            f"{run.phase}) and was taken back; its worker may have been killed. Run the step again."
        )
        with transaction.atomic():
            taken = StepRun.objects.filter(pk=run.pk, state=StepRunStateChoices.RUNNING).update(
                state=StepRunStateChoices.RECLAIMED, finished_at=now, error=message, lease_until=None
            )
            if not taken:
                continue
            row = ChecklistStep.objects.select_related("container").get(pk=run.step_id)
            if row.state == StepStateChoices.RUNNING:
                move(row, StepStateChoices.FAILED, actor=REAPER, reason=message, run=run, note=message)
            reaped += 1
    return reaped


def chains_resume(*, now=None, older_than: float = 60.0) -> int:
    """Restart "provision all" chains whose follow-on was lost (a broker or worker hiccup): the
    container's last attempt was part of a chain, succeeded more than ``older_than`` seconds ago,
    nothing of it runs, and an automated step is ready. Returns how many steps were queued."""
    now = now or timezone.now()

    cutoff = now - timedelta(seconds=older_than)
    # Each container's last attempt (one query, however many attempts were ever made); a chain is
    # stalled when that last attempt was a follow-on that succeeded before the cutoff. An attempt
    # someone started by hand since is the last one, and is not a follow-on: not a chain any more.
    last_attempt = StepRun.objects.filter(step__container_id=OuterRef("pk")).order_by("-started_at", "-id")
    last_attempt_ids = Container.objects.annotate(last_id=Subquery(last_attempt.values("pk")[:1])).values("last_id")
    stalled = StepRun.objects.filter(
        pk__in=last_attempt_ids, follow_on=True, state=StepRunStateChoices.SUCCEEDED, finished_at__lte=cutoff
    ).select_related("step")
    queued = 0
    for run in stalled:
        container_id = run.step.container_id
        states = dict(ChecklistStep.objects.filter(container_id=container_id).values_list("step", "state"))
        if not any(STEPS.ready(states, s) for s in STEPS.automated):
            continue
        queued += len(services.container_follow_on(container_id=container_id, user_id=run.started_by_id,
                                                   label=run.started_by_label))
    return queued

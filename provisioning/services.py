"""Writes of the provisioning checklist: its rows, the manual steps, starting automated steps.

Every interface (page, admin, commands, tasks) changes the checklist through these functions, and
they move cells only through ``engine.transitions.move``. Invariants kept here (the database
backs each one):
- one running attempt per step (``steprun_one_running_per_step``, a partial unique index);
- a step starts only from a startable state with its prerequisites met (the registry says which);
- the first message of an attempt is sent only after the transaction that wrote it commits.

Turn by turn, the attempts are advanced by ``engine.advance``; drift is in ``drift.py``,
snapshots in ``snapshots.py``.
"""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from maxportal.kernel.actors import ENGINE, Actor
from maxportal.kernel.errors import NotAllowed

from .checklist import SATISFIED_STATES, STEPS, label
from .choices import StepStateChoices
from .engine import queue
from .engine.advance import message_due
from .engine.transitions import STARTABLE_STATES, move
from .models import ChecklistEvent, ChecklistStep, Container, ProxmoxHost, StepRun

# --- The checklist rows ---------------------------------------------------------------------------


def checklist_ensure(*, container: Container) -> list[ChecklistStep]:
    """Give a managed container its checklist rows (idempotent: existing rows are left alone)."""
    if not container.managed:
        raise NotAllowed(
            f"{container} is not managed by the portal (pre-existing): it has no provisioning checklist."
        )
    existing = set(ChecklistStep.objects.filter(container=container).values_list("step", flat=True))
    missing = [ChecklistStep(container=container, step=s) for s in STEPS.order if s not in existing]
    if missing:
        ChecklistStep.objects.bulk_create(missing, ignore_conflicts=True)
    return list(ChecklistStep.objects.filter(container=container))


def checklist_ensure_all() -> int:
    """Rows for every managed container; returns how many containers have a checklist."""
    containers = list(Container.objects.filter(managed=True))
    for container in containers:
        checklist_ensure(container=container)
    return len(containers)


def _step_row(container: Container, step: str) -> ChecklistStep:
    STEPS[step]  # NotFound naming the steps when there is no such step
    row = ChecklistStep.objects.filter(container=container, step=step).first()
    if row is None:
        checklist_ensure(container=container)
        row = ChecklistStep.objects.get(container=container, step=step)
    return row


def _unmet_prerequisites(container: Container, step: str) -> list[str]:
    needed = STEPS[step].prerequisites
    if not needed:
        return []
    satisfied = set(
        ChecklistStep.objects.filter(
            container=container, step__in=needed, state__in=SATISFIED_STATES
        ).values_list("step", flat=True)
    )
    return [s for s in needed if s not in satisfied]


# --- Manual steps ----------------------------------------------------------------------------------


@transaction.atomic
def step_tick(*, container: Container, step: str, actor: Actor, note: str = "") -> ChecklistStep:
    """A person says a manual step is done (M365 account created, CLI logins completed)."""
    if not STEPS[step].manual:
        raise NotAllowed(
            f"{label(step)} is automated: run it (it is ticked when it succeeds and is verified), do not tick it."
        )
    row = _step_row(container, step)
    unmet = _unmet_prerequisites(container, step)
    if unmet:
        raise NotAllowed(f"{label(step)} needs {', '.join(label(s) for s in unmet)} first.")
    fields = {"note": note.strip()} if note.strip() else {}
    return move(row, StepStateChoices.DONE, actor=actor, reason=note, **fields)


@transaction.atomic
def step_untick(*, container: Container, step: str, actor: Actor, reason: str) -> ChecklistStep:
    """Take a done (or skipped) step back to pending; needs a reason, and no dependent may be running."""
    row = _step_row(container, step)
    running = list(
        ChecklistStep.objects.filter(container=container, step__in=STEPS.dependents(step),
                                     state=StepStateChoices.RUNNING)
        .values_list("step", flat=True)
    )
    if running:
        raise NotAllowed(
            f"{', '.join(label(s) for s in running)} of CT{container.vmid} is running on top of {label(step)}: "
            "wait for it to finish before unticking."
        )
    return move(row, StepStateChoices.PENDING, actor=actor, reason=reason)


@transaction.atomic
def step_skip(*, container: Container, step: str, actor: Actor, reason: str) -> ChecklistStep:
    """Mark a step as not needed for this container (it then counts as met for the steps after it)."""
    row = _step_row(container, step)
    return move(row, StepStateChoices.SKIPPED, actor=actor, reason=reason)


@transaction.atomic
def step_note_set(*, container: Container, step: str, actor: Actor, note: str) -> ChecklistStep:
    """Change a step's free note (no state change; audited as a same-state event)."""
    row = _step_row(container, step)
    ChecklistStep.objects.filter(pk=row.pk).update(note=note.strip())
    ChecklistEvent.objects.create(
        container_id=row.container_id, step=row.step, from_state=row.state, to_state=row.state,
        actor=actor.user, actor_label=actor.label, reason=f"note: {note.strip()}",
    )
    row.note = note.strip()
    return row


# --- Automated steps: starting an attempt ---------------------------------------------------------


def step_run_start(
    *, container: Container, step: str, actor: Actor, follow_on: bool = False
) -> StepRun:
    """Start an attempt at an automated step; the worker picks it up after this commits."""
    spec = STEPS[step]
    if spec.manual:
        raise NotAllowed(f"{spec.label} is done by a person: tick it when it is done.")
    with transaction.atomic():
        row = _step_row(container, step)
        if row.state not in STARTABLE_STATES:
            raise NotAllowed(
                f"{spec.label} of CT{container.vmid} is {row.state}: only a pending, blocked or failed step "
                "can be run." + (" It is running already." if row.state == StepStateChoices.RUNNING else ""),
                state=row.state,
            )
        unmet = _unmet_prerequisites(container, step)
        if unmet:
            raise NotAllowed(
                f"{spec.label} of CT{container.vmid} needs {', '.join(label(s) for s in unmet)} done first."
            )
        now = timezone.now()
        number = row.attempts + 1
        move(row, StepStateChoices.RUNNING, actor=actor, attempts=F("attempts") + 1, note="", upid="")
        row.attempts = number
        try:
            with transaction.atomic():
                run = StepRun.objects.create(
                    step=row,
                    number=number,
                    started_at=now,
                    deadline=now + timedelta(seconds=spec.time_limit_s),
                    due_at=message_due(now),
                    started_by=actor.user,
                    started_by_label=actor.label,
                    follow_on=follow_on,
                )
        except IntegrityError:
            raise NotAllowed(f"{spec.label} of CT{container.vmid} is running already.") from None
        queue.advance_on_commit(run.pk, 0)
    return run


def _ready_automated_steps(container: Container) -> list[str]:
    states = dict(ChecklistStep.objects.filter(container=container).values_list("step", "state"))
    return [s for s in STEPS.automated if STEPS.ready(states, s)]


def container_provision(*, container: Container, actor: Actor) -> list[StepRun]:
    """Queue every automated step of the container that is ready; each queues the next when done."""
    checklist_ensure(container=container)
    runs = []
    for step in _ready_automated_steps(container):
        try:
            runs.append(step_run_start(container=container, step=step, actor=actor, follow_on=True))
        except NotAllowed:
            # Another click or a finishing step queued it first: that is what we wanted.
            continue
    return runs


def host_provision(*, host: ProxmoxHost, actor: Actor) -> list[StepRun]:
    """Provision all managed containers of a host at once (their steps overlap on the workers)."""
    runs = []
    for container in Container.objects.filter(host=host, managed=True).select_related("host"):
        runs.extend(container_provision(container=container, actor=actor))
    return runs


def container_follow_on(*, container_id: int, user_id: int | None, label: str) -> list[StepRun]:
    """Queue what became ready after a step of a "provision all" finished (see tasks.container_follow_on)."""
    container = Container.objects.select_related("host").filter(pk=container_id).first()
    if container is None:
        return []  # deleted meanwhile: nothing to continue
    user = get_user_model().objects.filter(pk=user_id).first() if user_id else None
    return container_provision(container=container, actor=Actor.for_system(label or ENGINE.label, user=user))

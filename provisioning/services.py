"""Writes of the provisioning app: the checklist engine.

Invariants this module keeps (the database backs each one):
- a step's state moves only along ``choices.STEP_TRANSITIONS``, by one conditional UPDATE that
  names the state it moves from, and every move appends a ``ChecklistEvent`` in the same transaction;
- one running attempt per step (``steprun_one_running_per_step``, a partial unique index);
- a task message advances an attempt only for its own turn (``StepRun.turn``), so a re-delivered
  or duplicated message is dropped instead of creating a second container;
- no row lock is held across a call to Proxmox or to the node, and tasks are enqueued only after
  the transaction that wrote the attempt commits.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F, OuterRef, Q, Subquery
from django.utils import timezone

from maxportal.kernel.actors import ENGINE, REAPER, Actor
from maxportal.kernel.errors import DomainError, NotAllowed, NotFound, ReasonRequired

from .choices import (
    AUTOMATED_STEPS,
    MANUAL_STEPS,
    STEP_MOVES_NEEDING_REASON,
    STEP_ORDER,
    STEP_PREREQUISITES,
    STEP_SATISFIED_STATES,
    STEP_STARTABLE_STATES,
    STEP_TIME_LIMITS,
    STEP_TRANSITIONS,
    STEPS_NEEDING_ROOT,
    ContainerStatusChoices,
    DriftKindChoices,
    RootChannelChoices,
    StepChoices,
    StepRunStateChoices,
    StepStateChoices,
)
from .models import ChecklistEvent, ChecklistStep, Container, Drift, ProxmoxHost, StepRun
from .selectors import _ready, host_capacity

logger = logging.getLogger(__name__)

TAIL_CHARS = 4000


def _tail(text: str | None, limit: int = TAIL_CHARS) -> str:
    text = text or ""
    return text[-limit:]


# --- The checklist rows ---------------------------------------------------------------------------


def checklist_ensure(*, container: Container) -> list[ChecklistStep]:
    """Give a managed container its ten steps (idempotent: existing rows are left alone)."""
    if not container.managed:
        raise NotAllowed(
            f"{container} is not managed by the portal (pre-existing): it has no provisioning checklist."
        )
    existing = set(ChecklistStep.objects.filter(container=container).values_list("step", flat=True))
    missing = [ChecklistStep(container=container, step=s) for s in STEP_ORDER if s not in existing]
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
    if step not in STEP_ORDER:
        raise NotFound(f"There is no step '{step}'. The steps are: {', '.join(STEP_ORDER)}.")
    row = ChecklistStep.objects.filter(container=container, step=step).first()
    if row is None:
        checklist_ensure(container=container)
        row = ChecklistStep.objects.get(container=container, step=step)
    return row


def _label(step: str) -> str:
    return StepChoices(step).label


def _move(
    row: ChecklistStep,
    to_state: str,
    *,
    actor: Actor,
    reason: str = "",
    run: StepRun | None = None,
    **fields,
) -> ChecklistStep:
    """Move one cell along the state machine; must run inside a transaction.

    The UPDATE names the state it moves from, so of two racing moves only one lands; the loser
    gets a 409 that says what the cell is now.
    """
    from_state = row.state
    allowed = STEP_TRANSITIONS[from_state]
    if to_state not in allowed:
        raise NotAllowed(
            f"{_label(row.step)} of CT{row.container.vmid} is {from_state}: it cannot become {to_state} "
            f"(allowed from {from_state}: {', '.join(sorted(allowed))}).",
            state=from_state,
            allowed=sorted(allowed),
        )
    reason = (reason or "").strip()
    if (from_state, to_state) in STEP_MOVES_NEEDING_REASON and not reason:
        raise ReasonRequired(
            f"Moving {_label(row.step)} of CT{row.container.vmid} from {from_state} to {to_state} needs a "
            f"reason: say why (e.g. --reason 'mailbox was deleted')."
        )
    now = timezone.now()
    values = {"state": to_state, "changed_at": now, "actor": actor.user, "actor_label": actor.label, **fields}
    updated = ChecklistStep.objects.filter(pk=row.pk, state=from_state).update(**values)
    if not updated:
        current = ChecklistStep.objects.get(pk=row.pk).state
        raise NotAllowed(
            f"{_label(row.step)} of CT{row.container.vmid} changed meanwhile (it is {current} now): reload and retry.",
            state=current,
        )
    ChecklistEvent.objects.create(
        container_id=row.container_id,
        step=row.step,
        from_state=from_state,
        to_state=to_state,
        actor=actor.user,
        actor_label=actor.label,
        reason=reason,
        run=run,
    )
    for key, value in values.items():
        setattr(row, key, value)
    return row


def _unmet_prerequisites(container: Container, step: str) -> list[str]:
    needed = STEP_PREREQUISITES[step]
    if not needed:
        return []
    satisfied = set(
        ChecklistStep.objects.filter(
            container=container, step__in=needed, state__in=STEP_SATISFIED_STATES
        ).values_list("step", flat=True)
    )
    return [s for s in needed if s not in satisfied]


def _dependents(step: str) -> list[str]:
    return [s for s, needs in STEP_PREREQUISITES.items() if step in needs]


# --- Manual steps ----------------------------------------------------------------------------------


@transaction.atomic
def step_tick(*, container: Container, step: str, actor: Actor, note: str = "") -> ChecklistStep:
    """A person says a manual step is done (M365 account created, CLI logins completed)."""
    if step not in MANUAL_STEPS:
        raise NotAllowed(
            f"{_label(step)} is automated: run it (it is ticked when it succeeds and is verified), do not tick it."
        )
    row = _step_row(container, step)
    unmet = _unmet_prerequisites(container, step)
    if unmet:
        raise NotAllowed(f"{_label(step)} needs {', '.join(_label(s) for s in unmet)} first.")
    fields = {"note": note.strip()} if note.strip() else {}
    return _move(row, StepStateChoices.DONE, actor=actor, reason=note, **fields)


@transaction.atomic
def step_untick(*, container: Container, step: str, actor: Actor, reason: str) -> ChecklistStep:
    """Take a done (or skipped) step back to pending; needs a reason, and no dependent may be running."""
    row = _step_row(container, step)
    running = list(
        ChecklistStep.objects.filter(container=container, step__in=_dependents(step), state=StepStateChoices.RUNNING)
        .values_list("step", flat=True)
    )
    if running:
        raise NotAllowed(
            f"{', '.join(_label(s) for s in running)} of CT{container.vmid} is running on top of {_label(step)}: "
            "wait for it to finish before unticking."
        )
    return _move(row, StepStateChoices.PENDING, actor=actor, reason=reason)


@transaction.atomic
def step_skip(*, container: Container, step: str, actor: Actor, reason: str) -> ChecklistStep:
    """Mark a step as not needed for this container (it then counts as met for the steps after it)."""
    row = _step_row(container, step)
    return _move(row, StepStateChoices.SKIPPED, actor=actor, reason=reason)


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


def _enqueue_advance(run_id: int, turn: int, countdown: float | None = None) -> None:
    """Send the task for this turn once the surrounding transaction (if any) has committed."""
    from . import tasks  # tasks imports this module

    def send():
        tasks.step_advance.apply_async(args=(run_id, turn), countdown=countdown)

    transaction.on_commit(send)


def _root_refusal(container: Container, step: str) -> str | None:
    """Why a step cannot run without a root@pam channel, or None."""
    if step not in STEPS_NEEDING_ROOT or container.host.root_channel != RootChannelChoices.NONE:
        return None
    if step == StepChoices.LXC_CREATED and not container.feature_keyctl:
        return None
    return (
        f"{_label(step)} needs root@pam for {STEPS_NEEDING_ROOT[step]}, and host {container.host.name} has no "
        f"root channel: an API token is never root@pam. Set the host's root channel to a ticket login or "
        f"SSH (admin, Proxmox hosts), then run the step again."
    )


def step_run_start(
    *, container: Container, step: str, actor: Actor, follow_on: bool = False
) -> StepRun:
    """Start an attempt at an automated step; the worker picks it up after this commits."""
    if step in MANUAL_STEPS:
        raise NotAllowed(f"{_label(step)} is done by a person: tick it when it is done.")
    with transaction.atomic():
        row = _step_row(container, step)
        if row.state not in STEP_STARTABLE_STATES:
            raise NotAllowed(
                f"{_label(step)} of CT{container.vmid} is {row.state}: only a pending, blocked or failed step "
                "can be run." + (" It is running already." if row.state == StepStateChoices.RUNNING else ""),
                state=row.state,
            )
        unmet = _unmet_prerequisites(container, step)
        if unmet:
            raise NotAllowed(
                f"{_label(step)} of CT{container.vmid} needs {', '.join(_label(s) for s in unmet)} done first."
            )
        now = timezone.now()
        number = row.attempts + 1
        _move(row, StepStateChoices.RUNNING, actor=actor, attempts=F("attempts") + 1, note="", upid="")
        row.attempts = number
        try:
            with transaction.atomic():
                run = StepRun.objects.create(
                    step=row,
                    number=number,
                    started_at=now,
                    deadline=now + timedelta(seconds=STEP_TIME_LIMITS[step]),
                    started_by=actor.user,
                    started_by_label=actor.label,
                    follow_on=follow_on,
                )
        except IntegrityError:
            raise NotAllowed(f"{_label(step)} of CT{container.vmid} is running already.") from None
        _enqueue_advance(run.pk, 0)
    return run


def _ready_automated_steps(container: Container) -> list[str]:
    states = dict(ChecklistStep.objects.filter(container=container).values_list("step", "state"))
    return [s for s in AUTOMATED_STEPS if _ready(states, s)]


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


# --- Automated steps: advancing an attempt turn by turn ------------------------------------------


@dataclass
class Outcome:
    """What one turn of a step handler decided."""

    kind: str  # "wait", "done", "failed", "blocked"
    message: str = ""
    output: str = ""
    countdown: float = 0.0

    @classmethod
    def wait(cls, countdown: float | None = None) -> Outcome:
        return cls("wait", countdown=settings.MAXPORTAL_STEP_POLL_SECONDS if countdown is None else countdown)

    @classmethod
    def done(cls, output: str = "") -> Outcome:
        return cls("done", output=output)

    @classmethod
    def failed(cls, message: str, output: str = "") -> Outcome:
        return cls("failed", message=message, output=output)

    @classmethod
    def blocked(cls, message: str) -> Outcome:
        return cls("blocked", message=message)


# Phases that only look at something (a Proxmox task, an acknowledgement): short leases, so a turn
# whose worker died is taken over quickly by the re-delivered message.
POLL_LEASE_SECONDS = 120


def _lease_seconds(run: StepRun, step: str) -> int:
    """How long a claimed turn is protected: as long as the turn can take, not a second more.

    A turn that runs a script cannot outlive the script's own time limit (the executor cuts it), so
    its lease is that limit plus a margin; after it, a re-delivered message may take the turn over.
    """
    remaining = max(60, int((run.deadline - timezone.now()).total_seconds()))
    if run.phase.startswith("wait_") or run.phase == "await_ack":
        return min(POLL_LEASE_SECONDS, remaining)
    from .scripts import STEP_SCRIPTS, _timeout_for

    spec = STEP_SCRIPTS.get(step)
    if spec is not None:
        # signal dir also runs the in-container mount check after its node script
        runs = 2 if step == StepChoices.SIGNAL_DIR else 1
        return min(runs * _timeout_for(step, spec.timeout_s) + settings.MAXPORTAL_STEP_LEASE_MARGIN_SECONDS, remaining)
    return min(POLL_LEASE_SECONDS, remaining)


@dataclass
class AdvanceResult:
    """What the task does next: nothing, or send itself again for ``turn`` after ``countdown``."""

    turn: int | None = None
    countdown: float = 0.0


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
    now = timezone.now()
    lease_until = now + timedelta(seconds=_lease_seconds(run, run.step.step))
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
                f"The attempt ran past its time limit of {STEP_TIME_LIMITS[run.step.step]} s. Run the step again."
            )
        else:
            outcome = _run_handler(run)
        return _apply_outcome(run, outcome)
    except DatabaseError:
        # The database failed under us (a lost connection, a lock): give the turn back so the
        # task's retry can take it at once. Every handler is safe to run again from its phase.
        with contextlib.suppress(DatabaseError):
            StepRun.objects.filter(pk=run_id, turn=turn + 1, state=StepRunStateChoices.RUNNING).update(
                turn=turn, lease_until=None
            )
        raise


def _run_handler(run: StepRun) -> Outcome:
    from celery.exceptions import SoftTimeLimitExceeded

    from . import steps as step_handlers
    from .proxmox import (
        ProxmoxError,
        ProxmoxPermissionDenied,
        ProxmoxRootRequired,
        ProxmoxTaskFailed,
        ProxmoxUnavailable,
    )

    handler = step_handlers.HANDLERS[run.step.step]
    try:
        outcome = handler(run)
        run.data.pop("unavailable", None)
        return outcome
    except ProxmoxRootRequired as exc:
        return Outcome.blocked(
            f"{exc.message} {_label(run.step.step)} needs a root@pam channel on host {run.step.container.host.name}: "
            "set it to a ticket login or SSH, then run the step again."
        )
    except ProxmoxUnavailable as exc:
        # The client already retried with backoff; give Proxmox a few more chances before failing.
        count = run.data.get("unavailable", 0) + 1
        run.data["unavailable"] = count
        if count <= settings.MAXPORTAL_STEP_UNAVAILABLE_RETRIES:
            return Outcome.wait(min(settings.MAXPORTAL_STEP_POLL_SECONDS * 2**count,
                                    settings.MAXPORTAL_MAX_COUNTDOWN_SECONDS))
        return Outcome.failed(
            f"Proxmox on {run.step.container.host.name} did not answer (tried {count} time{'s' if count > 1 else ''}): "
            f"{exc.message}. "
            "Check that the host is reachable, then run the step again.",
            output=getattr(exc, "log_tail", "") or "",
        )
    except ProxmoxPermissionDenied as exc:
        return Outcome.failed(
            f"Proxmox refused the call (HTTP {exc.status_code or 403}): {exc.message}. Give the API token the "
            "privilege it names, or use the host's root@pam channel.",
        )
    except ProxmoxTaskFailed as exc:
        return Outcome.failed(f"Proxmox task failed: {exc.message}", output=getattr(exc, "log_tail", "") or "")
    except ProxmoxError as exc:
        status = f" (HTTP {exc.status_code})" if getattr(exc, "status_code", None) else ""
        return Outcome.failed(f"Proxmox said{status}: {exc.message}", output=getattr(exc, "log_tail", "") or "")
    except SoftTimeLimitExceeded:
        return Outcome.failed("The worker's time limit for one turn ran out; run the step again.")
    except DomainError as exc:
        return Outcome.failed(exc.message)
    except Exception as exc:
        logger.exception("step %s run %s crashed", run.step.step, run.pk)
        return Outcome.failed(f"The step crashed: {type(exc).__name__}: {exc}")


def _apply_outcome(run: StepRun, outcome: Outcome) -> AdvanceResult:
    if outcome.output:
        run.output_tail = _tail(outcome.output)
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

    run_state, step_state = {
        "done": (StepRunStateChoices.SUCCEEDED, StepStateChoices.DONE),
        "failed": (StepRunStateChoices.FAILED, StepStateChoices.FAILED),
        "blocked": (StepRunStateChoices.BLOCKED, StepStateChoices.BLOCKED),
    }[outcome.kind]
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
        _move(
            row, step_state, actor=actor, run=run, reason=outcome.message,
            output_tail=run.output_tail, upid=run.upid, note=outcome.message,
        )
    if outcome.kind == "done" and run.follow_on:
        # A task of its own, after commit, in a fresh read: two steps finishing together both see
        # each other done, and the conditional start lets only one of them queue the shared next
        # step. As a task it is retried if the database hiccups, instead of being lost.
        from . import tasks

        container_id, user_id = row.container_id, getattr(run.started_by, "pk", None)
        transaction.on_commit(
            lambda: tasks.container_follow_on.apply_async(args=(container_id, user_id, run.started_by_label))
        )
    return AdvanceResult()


def container_follow_on(*, container_id: int, user_id: int | None, label: str) -> list[StepRun]:
    """Queue what became ready after a step of a "provision all" finished (see tasks.container_follow_on)."""
    from django.contrib.auth import get_user_model

    container = Container.objects.select_related("host").filter(pk=container_id).first()
    if container is None:
        return []  # deleted meanwhile: nothing to continue
    user = get_user_model().objects.filter(pk=user_id).first() if user_id else None
    return container_provision(container=container, actor=Actor.for_system(label or ENGINE.label, user=user))


# --- The reaper -------------------------------------------------------------------------------------


def step_runs_reap(*, now=None) -> int:
    """Take back attempts that ran past their time limit (a killed worker, a lost message)."""
    now = now or timezone.now()
    reaped = 0
    for run in StepRun.objects.filter(state=StepRunStateChoices.RUNNING, deadline__lt=now).select_related(
        "step__container"
    ):
        message = (
            f"Attempt {run.number} ran past its time limit of {STEP_TIME_LIMITS[run.step.step]} s (phase "
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
                _move(row, StepStateChoices.FAILED, actor=REAPER, reason=message, run=run, note=message)
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
        if not any(_ready(states, s) for s in AUTOMATED_STEPS):
            continue
        queued += len(container_follow_on(container_id=container_id, user_id=run.started_by_id,
                                          label=run.started_by_label))
    return queued


# --- Drift -----------------------------------------------------------------------------------------


@dataclass
class DriftReport:
    host: str
    checked: int = 0
    found: list[str] = field(default_factory=list)
    resolved: int = 0
    error: str = ""


def _parse_memory(config: dict, listing: dict) -> int | None:
    if config.get("memory") not in (None, ""):
        return int(config["memory"])
    if listing.get("maxmem"):
        return int(listing["maxmem"]) // (1024 * 1024)
    return None


def drift_check(*, host: ProxmoxHost) -> DriftReport:
    """Read every container of the host from Proxmox, update the records, and flag what differs.

    Idempotent: a finding is one open row per (host, vmid, kind); checking again refreshes it, and a
    finding that went away is resolved. Proxmox is read first, the database written after, so no
    lock is held while Proxmox answers.
    """
    from .proxmox import ProxmoxClient, ProxmoxError

    report = DriftReport(host=host.name)
    client = ProxmoxClient.for_host(host)
    try:
        listing = {int(item["vmid"]): item for item in client.list_containers()}
        configs = {}
        records = list(Container.objects.filter(host=host))
        for container in records:
            if container.vmid in listing:
                configs[container.vmid] = client.get_config(container.vmid)
    except ProxmoxError as exc:
        report.error = f"Proxmox on {host.name} could not be read: {exc.message}"
        return report

    now = timezone.now()
    findings: list[tuple[int, Container | None, str, str, str]] = []
    status_updates: dict[int, str] = {}
    known = {c.vmid for c in records}
    created_states = dict(
        ChecklistStep.objects.filter(container__host=host, step=StepChoices.LXC_CREATED).values_list(
            "container__vmid", "state"
        )
    )
    # A container whose services were verified running should be running.
    in_service = set(
        ChecklistStep.objects.filter(
            container__host=host, step=StepChoices.SERVICES_RUNNING, state=StepStateChoices.DONE
        ).values_list("container__vmid", flat=True)
    )
    for container in records:
        item = listing.get(container.vmid)
        report.checked += 1
        if item is None:
            expected_to_exist = (not container.managed) or created_states.get(container.vmid) == StepStateChoices.DONE
            if expected_to_exist:
                findings.append((container.vmid, container, DriftKindChoices.MISSING, "exists", "absent"))
                status_updates[container.pk] = ContainerStatusChoices.MISSING
            continue
        config = configs.get(container.vmid, {})
        status = item.get("status")
        if status in (ContainerStatusChoices.RUNNING, ContainerStatusChoices.STOPPED):
            status_updates[container.pk] = status
        if container.vmid in in_service and status != ContainerStatusChoices.RUNNING:
            findings.append((container.vmid, container, DriftKindChoices.STATUS, "running", str(status)))
        memory = _parse_memory(config, item)
        if memory is not None and memory != container.memory_mb:
            findings.append((container.vmid, container, DriftKindChoices.MEMORY,
                             f"{container.memory_mb} MiB", f"{memory} MiB"))
        cores = config.get("cores") or item.get("cpus")
        if cores not in (None, "") and int(cores) != container.cores:
            findings.append((container.vmid, container, DriftKindChoices.CORES, str(container.cores), str(cores)))
        hostname = config.get("hostname") or item.get("name")
        if hostname and hostname != container.hostname:
            findings.append((container.vmid, container, DriftKindChoices.HOSTNAME, container.hostname, hostname))
    for vmid, item in listing.items():
        if vmid not in known:
            findings.append((vmid, None, DriftKindChoices.UNKNOWN, "", str(item.get("name") or "")))

    with transaction.atomic():
        for pk, status in status_updates.items():
            Container.objects.filter(pk=pk).update(status=status, last_synced_at=now)
        Container.objects.filter(host=host).exclude(pk__in=status_updates).update(last_synced_at=now)
        seen = set()
        for vmid, container, kind, expected, actual in findings:
            seen.add((vmid, kind))
            report.found.append(
                f"CT{vmid}: {DriftKindChoices(kind).label}" + (f" (record {expected}, Proxmox {actual})"
                                                                 if expected or actual else "")
            )
            updated = Drift.objects.filter(host=host, vmid=vmid, kind=kind, resolved_at__isnull=True).update(
                expected=expected, actual=actual, last_seen_at=now, container=container
            )
            if not updated:
                try:
                    with transaction.atomic():
                        Drift.objects.create(
                            host=host, vmid=vmid, container=container, kind=kind, expected=expected,
                            actual=actual, detected_at=now, last_seen_at=now,
                        )
                except IntegrityError:
                    # A concurrent check (beat can fire twice) opened it first: the same finding.
                    pass
        for drift in Drift.objects.filter(host=host, resolved_at__isnull=True):
            if (drift.vmid, drift.kind) not in seen:
                drift.resolved_at = now
                drift.save(update_fields=["resolved_at"])
                report.resolved += 1
    return report


# --- Snapshots -------------------------------------------------------------------------------------


def container_snapshot(*, container: Container, actor: Actor, name: str = "") -> str:
    """Start a Proxmox snapshot of the container; returns the task's UPID.

    Proxmox cannot snapshot a container with a bind mount (the plan's mp0 signal folder): the
    client refuses before trying, and the refusal says what to do instead.
    """
    from .proxmox import ProxmoxClient, ProxmoxError

    name = name or f"portal-{timezone.now():%Y%m%d-%H%M%S}"
    try:
        return ProxmoxClient.for_host(container.host).create_snapshot(
            container.vmid, name, description=f"taken from maxportal by {actor.label}"
        )
    except ProxmoxError as exc:
        raise NotAllowed(exc.message) from None


# --- Capacity --------------------------------------------------------------------------------------


def capacity_refusal(container: Container) -> str | None:
    """Why creating this container would overcommit its host, with the figures, or None."""
    cap = host_capacity(host=container.host)
    problems = []
    if not cap.memory_fits:
        problems.append(
            f"memory: {cap.memory_allocated_mb / 1024:g} GB committed (with CT{container.vmid}'s "
            f"{container.memory_mb / 1024:g} GB) of {cap.memory_mb / 1024:g} GB"
        )
    if not cap.cpu_fits:
        problems.append(
            f"CPU: {cap.cores_allocated} cores committed on {cap.threads} threads, above the limit of "
            f"{cap.cpu_overcommit_limit:g}x ({int(cap.threads * cap.cpu_overcommit_limit)} cores)"
        )
    if not problems:
        return None
    return (
        f"Creating CT{container.vmid} would overcommit host {container.host.name}: {'; '.join(problems)}. "
        "Lower the container's resources or free some on the host, then run the step again."
    )

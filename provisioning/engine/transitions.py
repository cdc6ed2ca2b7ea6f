"""The checklist's state machines as data, and the one function that moves a cell along them.

Invariants kept here (the database backs each one):
- a cell's state moves only along ``CELL_TRANSITIONS``, by one conditional UPDATE that names the
  state it moves from (of two racing moves only one lands), and every move appends a
  ``ChecklistEvent`` in the same transaction;
- the moves back from a settled state (``MOVES_NEEDING_REASON``) need a written reason;
- an attempt (``StepRun``) ends in the state ``RUN_ENDINGS`` gives its outcome, and its cell with it.
"""

from __future__ import annotations

from django.utils import timezone

from maxportal.kernel.actors import Actor
from maxportal.kernel.errors import NotAllowed, ReasonRequired

from .. import checklist
from ..choices import StepRunStateChoices, StepStateChoices
from ..models import ChecklistEvent, ChecklistStep, StepRun

# The allowed moves of a cell. Blocked means the engine refused to run it for a reason outside the
# checklist (capacity, no root@pam channel): fix that, then run it again.
CELL_TRANSITIONS: dict[str, frozenset[str]] = {
    StepStateChoices.PENDING: frozenset({"running", "done", "blocked", "skipped"}),
    StepStateChoices.BLOCKED: frozenset({"running", "done", "pending", "skipped"}),
    StepStateChoices.RUNNING: frozenset({"done", "failed", "blocked"}),
    StepStateChoices.FAILED: frozenset({"running", "done", "pending", "skipped"}),
    StepStateChoices.DONE: frozenset({"pending"}),
    StepStateChoices.SKIPPED: frozenset({"pending"}),
}
# Moves back from a settled state lose a fact someone relied on: they need a written reason.
MOVES_NEEDING_REASON: frozenset[tuple[str, str]] = frozenset(
    {("done", "pending"), ("skipped", "pending"), ("pending", "skipped"), ("failed", "skipped"),
     ("blocked", "skipped")}
)
# A step may start (run or tick) from these.
STARTABLE_STATES: frozenset[str] = frozenset({"pending", "blocked", "failed"})

# How an attempt ends, by the kind of its last outcome: (the attempt's state, its cell's state).
RUN_ENDINGS: dict[str, tuple[str, str]] = {
    "done": (StepRunStateChoices.SUCCEEDED, StepStateChoices.DONE),
    "failed": (StepRunStateChoices.FAILED, StepStateChoices.FAILED),
    "blocked": (StepRunStateChoices.BLOCKED, StepStateChoices.BLOCKED),
}


def move(
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
    label = checklist.label(row.step)
    from_state = row.state
    allowed = CELL_TRANSITIONS[from_state]
    if to_state not in allowed:
        raise NotAllowed(
            f"{label} of CT{row.container.vmid} is {from_state}: it cannot become {to_state} "
            f"(allowed from {from_state}: {', '.join(sorted(allowed))}).",
            state=from_state,
            allowed=sorted(allowed),
        )
    reason = (reason or "").strip()
    if (from_state, to_state) in MOVES_NEEDING_REASON and not reason:
        raise ReasonRequired(
            f"Moving {label} of CT{row.container.vmid} from {from_state} to {to_state} needs a "
            f"reason: say why (e.g. --reason 'mailbox was deleted')."
        )
    now = timezone.now()
    values = {"state": to_state, "changed_at": now, "actor": actor.user, "actor_label": actor.label, **fields}
    updated = ChecklistStep.objects.filter(pk=row.pk, state=from_state).update(**values)
    if not updated:
        current = ChecklistStep.objects.get(pk=row.pk).state
        raise NotAllowed(
            f"{label} of CT{row.container.vmid} changed meanwhile (it is {current} now): reload and retry.",
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

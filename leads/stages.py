"""The stage machine: which move a lead may make, from where, by whom. Data, in one place.

Every write that changes a lead's stage or status goes through ``leads.services.lead_move``, which
asks this module. Actors:
- OWNER: the agents of the Eidolon that owns the lead's current stage;
- STAFF: a human staff user (the admin, the pages, or the API with a session).

The owner of the next stage receives a PIPELINE_TRANSITION signal when a lead is handed to it;
escalations go to the escalation Eidolon's inbox (MAXPORTAL_ESCALATION_EIDOLON); a lead a human
sends back to work is announced to its stage owner with a TASK_ASSIGNMENT.

``MOVES`` is the one table the interfaces read: the service wrappers (``leads.services.lead_<move>``),
the admin's actions and the API's move endpoints (``leads/api.py``) are generated from it. Each
``Move`` says what an interface needs: its name, label and URL slug, what the actor writes (a
required reason, an optional summary, data), who may make it, and whether the admin offers it.
"""

from dataclasses import dataclass
from enum import Enum

from django.core.exceptions import ValidationError

from eidolons.choices import PIPELINE_ORDER, PipelineStage, SignalTypeChoices, next_stage
from maxportal.kernel.errors import NotAllowed, ReasonRequired

from .choices import LEAD_OPEN_STATUSES, LeadMoveChoices, LeadStatusChoices

IN_PROGRESS = LeadStatusChoices.IN_PROGRESS
AWAITING_HUMAN = LeadStatusChoices.AWAITING_HUMAN
ESCALATED = LeadStatusChoices.ESCALATED
COMPLETED = LeadStatusChoices.COMPLETED
FAILED = LeadStatusChoices.FAILED

LAST_STAGE = PIPELINE_ORDER[-1]


class Who(Enum):
    OWNER = "the agents of the Eidolon owning the lead's stage"
    STAFF = "a staff user"


class StageRule(Enum):
    ANY = "any stage"
    NOT_LAST = "any stage but the last (DeliveryPM)"
    LAST = "the last stage (DeliveryPM) only"


class SignalTo(Enum):
    NONE = "none"
    NEW_OWNER = "the Eidolon owning the stage the lead moves to"
    OWNER = "the Eidolon owning the lead's stage"
    ESCALATION = "the escalation Eidolon"


@dataclass(frozen=True)
class Move:
    """One move of the machine: where from, where to, who may make it, what it signals, what it takes."""

    name: LeadMoveChoices
    from_statuses: tuple[str, ...]
    to_status: str
    who: frozenset[Who]
    stages: StageRule = StageRule.ANY
    needs_reason: bool = False  # the actor must say why (ReasonRequired otherwise)
    takes_summary: bool = False  # the actor may say what was done (it goes into the signal)
    takes_data: bool = False  # the actor may merge data into the lead and set its next action (handoff)
    signal_type: str | None = None
    signal_to: SignalTo = SignalTo.NONE
    advances: bool = False  # to the next stage
    chooses_stage: bool = False  # the actor names the target stage (reassign)
    in_admin: bool = False  # offered as a bulk action on the admin's lead list

    @property
    def label(self) -> str:
        return self.name.label

    @property
    def slug(self) -> str:
        """The move's name in a URL (``await-human``)."""
        return self.name.value.replace("_", "-")

    @property
    def for_agents(self) -> bool:
        """Whether the owning Eidolon's agents make it (else only staff do)."""
        return Who.OWNER in self.who


OWNER_OR_STAFF = frozenset({Who.OWNER, Who.STAFF})
STAFF_ONLY = frozenset({Who.STAFF})

MOVES: dict[str, Move] = {
    m.name: m
    for m in (
        Move(LeadMoveChoices.HANDOFF, (IN_PROGRESS,), IN_PROGRESS, OWNER_OR_STAFF, StageRule.NOT_LAST,
             takes_summary=True, takes_data=True,
             signal_type=SignalTypeChoices.PIPELINE_TRANSITION, signal_to=SignalTo.NEW_OWNER, advances=True),
        Move(LeadMoveChoices.ESCALATE, (IN_PROGRESS, AWAITING_HUMAN), ESCALATED, OWNER_OR_STAFF,
             needs_reason=True, signal_type=SignalTypeChoices.ESCALATION, signal_to=SignalTo.ESCALATION,
             in_admin=True),
        Move(LeadMoveChoices.AWAIT_HUMAN, (IN_PROGRESS,), AWAITING_HUMAN, OWNER_OR_STAFF, needs_reason=True),
        Move(LeadMoveChoices.RESOLVE, (ESCALATED, AWAITING_HUMAN), IN_PROGRESS, STAFF_ONLY,
             signal_type=SignalTypeChoices.TASK_ASSIGNMENT, signal_to=SignalTo.OWNER, in_admin=True),
        Move(LeadMoveChoices.FAIL, (IN_PROGRESS, AWAITING_HUMAN, ESCALATED), FAILED, OWNER_OR_STAFF,
             needs_reason=True, in_admin=True),
        Move(LeadMoveChoices.COMPLETE, (IN_PROGRESS,), COMPLETED, OWNER_OR_STAFF, StageRule.LAST,
             takes_summary=True),
        Move(LeadMoveChoices.REOPEN, (COMPLETED, FAILED), IN_PROGRESS, STAFF_ONLY, needs_reason=True,
             signal_type=SignalTypeChoices.TASK_ASSIGNMENT, signal_to=SignalTo.OWNER, in_admin=True),
        Move(LeadMoveChoices.REASSIGN, LEAD_OPEN_STATUSES, IN_PROGRESS, STAFF_ONLY, needs_reason=True,
             signal_type=SignalTypeChoices.PIPELINE_TRANSITION, signal_to=SignalTo.NEW_OWNER, chooses_stage=True,
             in_admin=True),
    )
}

# The first transition of every lead (not a move anyone can ask for).
INGEST = Move(LeadMoveChoices.INGEST, (), IN_PROGRESS, OWNER_OR_STAFF,
              signal_type=SignalTypeChoices.PIPELINE_TRANSITION, signal_to=SignalTo.NEW_OWNER)


def owns_stage(actor, stage: str) -> bool:
    """Whether ``actor`` speaks for the Eidolon owning ``stage``."""
    return actor.eidolon is not None and actor.eidolon.stage == stage


def _actor_roles(actor, stage: str) -> set[Who]:
    roles = set()
    if actor.is_staff:
        roles.add(Who.STAFF)
    if owns_stage(actor, stage):
        roles.add(Who.OWNER)
    return roles


def _stage_ok(rule: StageRule, stage: str) -> bool:
    if rule is StageRule.NOT_LAST:
        return stage != LAST_STAGE
    if rule is StageRule.LAST:
        return stage == LAST_STAGE
    return True


def allowed_moves(*, stage: str, status: str, actor) -> list[str]:
    """The moves ``actor`` may make on a lead in ``stage``/``status``, in the order of MOVES."""
    roles = _actor_roles(actor, stage)
    return [
        name for name, m in MOVES.items()
        if status in m.from_statuses and _stage_ok(m.stages, stage) and roles & m.who
    ]


def target(move: Move, *, stage: str, to_stage: str | None = None) -> tuple[str, str]:
    """The (stage, status) a move leads to."""
    if move.advances:
        return next_stage(stage), move.to_status
    if move.chooses_stage:
        return to_stage, move.to_status
    return stage, move.to_status


def check(*, move_name: str, stage: str, status: str, actor, reason: str = "", to_stage: str | None = None) -> Move:
    """The move, if ``actor`` may make it now; else NotAllowed naming the state and the allowed moves."""
    move = MOVES.get(move_name)
    allowed = allowed_moves(stage=stage, status=status, actor=actor)
    if move is None or move_name not in allowed:
        if move is None:
            why = f"there is no move {move_name!r}"
        elif status not in move.from_statuses:
            why = f"{move_name} needs status {' or '.join(move.from_statuses)}"
        elif not _stage_ok(move.stages, stage):
            why = f"{move_name} is for {move.stages.value}"
        else:
            why = f"{move_name} is for {' or '.join(sorted(w.value for w in move.who))}; {actor.label} is not"
        raise NotAllowed(
            f"Cannot {move_name}: the lead is in {stage} with status {status}, and {why}. "
            f"Allowed now for {actor.label}: {', '.join(allowed) or 'nothing'}.",
            stage=stage, status=status, allowed_moves=allowed, move=move_name,
        )
    if move.needs_reason and not reason.strip():
        raise ReasonRequired(f"{move_name} needs a reason: say why, in a sentence.", move=move_name)
    if move.chooses_stage:
        if to_stage not in PipelineStage.values:
            stages = ", ".join(PipelineStage.values)
            raise ValidationError({"to_stage": f"Name the stage to move to: one of {stages}."})
        if to_stage == stage:
            raise ValidationError({"to_stage": f"The lead is already in {stage}; name another stage."})
    return move

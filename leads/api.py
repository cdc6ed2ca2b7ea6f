"""The leads API: ingest, list, status, the stage machine's moves, artifacts. Thin: services do the work.

The move endpoints are generated from the stage machine's table (``leads.stages.MOVES``): one
``POST /leads/{id}/<move>`` per move the stage owner's agents make, and ``/moves/{move}`` for
every move by name. The agents' endpoints that involve leads (``POST /signals`` naming a lead,
``GET /agents/health`` with open leads per Eidolon) are added to the agents' router here, because
``eidolons`` must not import ``leads``: leads builds on eidolons.
"""

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated
from uuid import UUID

from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import FileResponse, HttpRequest
from ninja import Field, File, Form, Router, Schema, Status
from ninja.files import UploadedFile
from ninja.pagination import LimitOffsetPagination, paginate

from eidolons import api as agents_api
from eidolons.auth import token_or_staff
from eidolons.choices import CliAgentKindChoices, PipelineStage
from maxportal.kernel.errors import NotFound
from maxportal.kernel.idempotency import idempotent
from maxportal.kernel.schemas import ERRORS, PAGE_LIMIT_MAX, BodyIn, ConflictOut, ErrorOut, Id, Text

from . import services, stages
from .choices import LeadSourceChoices, LeadStatusChoices
from .models import Lead, StageArtifact, StageTransition
from .selectors import (
    lead_artifacts,
    lead_history,
    lead_list,
    leads_visible_to,
    open_leads_by_stage,
    stage_owners,
)

router = Router(tags=["leads"], auth=token_or_staff)


# What the service's EmailField accepts: an address, or nothing.
EMAIL_SCHEMA = {"anyOf": [{"maxLength": 0}, {"format": "email"}]}


class LeadIn(BodyIn):
    company: Text = Field(..., min_length=1, max_length=200)
    email: Text = Field("", max_length=254, description="An email address, or empty (422 when not an address).",
                        json_schema_extra=EMAIL_SCHEMA)
    contact_name: Text = Field("", max_length=200)
    phone: Text = Field("", max_length=50)
    source: LeadSourceChoices = LeadSourceChoices.OTHER
    data: dict = Field(default_factory=dict, description="Stage-specific data (JSON object).")
    next_action: Text = Field("", max_length=500)
    summary: Text = Field("", max_length=2000, description="Goes into the LeadGen Eidolon's signal.")
    amount: Decimal | None = Field(None, ge=0, max_digits=14, decimal_places=2,
                                   description="What the deal is worth, if known; give currency with it.")
    currency: Text = Field("", max_length=3, description="ISO 4217 code of the amount (EUR, USD).")


class LeadOut(Schema):
    id: UUID
    company: str
    contact_name: str
    email: str
    phone: str
    source: str
    stage: str
    status: str
    owner: str | None = Field(None, description="The Eidolon owning the current stage.")
    next_action: str
    data: dict
    created_at: datetime
    updated_at: datetime
    stage_entered_at: datetime
    data_path: str = Field(..., description="Storage folder of the current stage's artifacts.")

    @staticmethod
    def build(lead: Lead, owners: dict | None = None) -> "LeadOut":
        owners = stage_owners() if owners is None else owners
        owner = owners.get(lead.stage)
        return LeadOut(
            id=lead.pk, company=lead.company, contact_name=lead.contact_name, email=lead.email, phone=lead.phone,
            source=lead.source, stage=lead.stage, status=lead.status, owner=owner.name if owner else None,
            next_action=lead.next_action, data=lead.data, created_at=lead.created_at, updated_at=lead.updated_at,
            stage_entered_at=lead.stage_entered_at, data_path=lead.stage_folder(),
        )


class IngestOut(LeadOut):
    duplicate_of: UUID | None = None


class TransitionOut(Schema):
    id: int
    move: str
    from_stage: str
    to_stage: str
    from_status: str
    to_status: str
    actor: str
    summary: str
    signal_id: int | None
    created_at: datetime

    @staticmethod
    def build(t: StageTransition) -> "TransitionOut":
        return TransitionOut(
            id=t.pk, move=t.move, from_stage=t.from_stage, to_stage=t.to_stage, from_status=t.from_status,
            to_status=t.to_status, actor=t.actor_label, summary=t.summary, signal_id=t.signal_id,
            created_at=t.created_at,
        )


class ArtifactOut(Schema):
    id: int
    stage: str
    kind: str
    name: str
    path: str
    size: int
    checksum: str
    content_type: str
    text: str
    uploaded_by: str
    created_at: datetime

    @staticmethod
    def build(a: StageArtifact) -> "ArtifactOut":
        by = (a.uploaded_by_user and f"user {a.uploaded_by_user}") or str(a.uploaded_by_agent or a.uploaded_by_eidolon)
        return ArtifactOut(
            id=a.pk, stage=a.stage, kind=a.kind, name=a.name, path=a.file.name, size=a.size, checksum=a.checksum,
            content_type=a.content_type, text=a.text, uploaded_by=by, created_at=a.created_at,
        )


class LeadDetailOut(LeadOut):
    allowed_moves: list[str] = Field(..., description="Moves the caller may make now.")
    history: list[TransitionOut]
    artifacts: list[ArtifactOut]


class MoveOut(Schema):
    lead: LeadOut
    transition: TransitionOut


@router.post("/leads", response={200: IngestOut, 201: IngestOut, 409: ErrorOut, **ERRORS},
             summary="Ingest a lead (200 with duplicate_of when an open lead has the same email or domain)")
@idempotent
def lead_ingest(request: HttpRequest, payload: LeadIn):
    lead, duplicate = services.lead_ingest(actor=request.auth, **payload.dict())
    out = IngestOut(**LeadOut.build(lead).dict(), duplicate_of=duplicate.pk if duplicate else None)
    return Status(200 if duplicate else 201, out)


class Page(LimitOffsetPagination):
    """limit/offset paging with the API's one rule: a limit over PAGE_LIMIT_MAX is refused (422), not cut."""

    class Input(Schema):
        limit: int = Field(100, ge=1, le=PAGE_LIMIT_MAX)
        offset: int = Field(0, ge=0, le=10**9)


@router.get("/leads", response=list[LeadOut], summary="Leads the caller may see, filtered and paginated")
@paginate(Page, max_limit=PAGE_LIMIT_MAX)
def leads_list(
    request: HttpRequest,
    stage: PipelineStage | None = None,
    status: LeadStatusChoices | None = None,
    source: LeadSourceChoices | None = None,
    owner: Annotated[Text, Field(max_length=50, description="An Eidolon's slug: the leads in its stage.")]
    | None = None,
):
    owners = stage_owners()
    qs = lead_list(actor=request.auth, stage=stage, status=status, source=source, owner=owner)
    return _LazyOut(qs, owners)


class _LazyOut:
    """A queryset view that builds LeadOut only for the page the paginator slices."""

    def __init__(self, qs, owners):
        self.qs, self.owners = qs, owners

    def count(self):
        return self.qs.count()

    def __len__(self):
        return self.count()

    def __getitem__(self, item):
        return [LeadOut.build(lead, self.owners) for lead in self.qs[item]]


def _visible_lead(actor, lead_id: UUID) -> Lead:
    """The lead, scoped in the query to what ``actor`` may see; 404 otherwise (never 403: no leak)."""
    lead = leads_visible_to(actor).filter(pk=lead_id).first()
    if lead is None:
        raise NotFound(f"Lead {lead_id} does not exist or is not one {actor.label} can see.")
    return lead


@router.get("/leads/{lead_id}", response={200: LeadDetailOut, **ERRORS},
            summary="A lead's status: stage, status, next action, history, artifacts, allowed moves")
def lead_detail(request: HttpRequest, lead_id: UUID):
    lead = _visible_lead(request.auth, lead_id)
    return LeadDetailOut(
        **LeadOut.build(lead).dict(),
        allowed_moves=stages.allowed_moves(stage=lead.stage, status=lead.status, actor=request.auth),
        history=[TransitionOut.build(t) for t in lead_history(lead=lead)],
        artifacts=[ArtifactOut.build(a) for a in lead_artifacts(lead=lead)],
    )


class HandoffIn(BodyIn):
    summary: Text = Field("", max_length=2000, description="What was done; goes into the next Eidolon's signal.")
    data: dict = Field(default_factory=dict, description="Merged into the lead's data.")
    next_action: Text | None = Field(None, max_length=500)
    agent: CliAgentKindChoices | None = Field(None, description="Which of the Eidolon's agents is acting.")


class ReasonIn(BodyIn):
    reason: Text = Field(..., min_length=1, max_length=2000, description="Why (required, not blank).")
    agent: CliAgentKindChoices | None = None


class SummaryIn(BodyIn):
    summary: Text = Field("", max_length=2000)
    agent: CliAgentKindChoices | None = None


# Every move anyone can ask for, by name (ingest is the portal's own first transition: not offered).
MoveName = StrEnum("MoveName", {name.upper(): name for name in stages.MOVES})
NEEDS_REASON = [name for name, m in stages.MOVES.items() if m.needs_reason]


class StaffMoveIn(BodyIn):
    reason: Text = Field("", max_length=2000, description=(
        f"Required (not blank) for {', '.join(NEEDS_REASON)}: a move without it answers 422 reason_required."
    ))
    to_stage: PipelineStage | None = Field(None, description="For reassign (required there): the stage to move to.")


MOVE_RESPONSES = {200: MoveOut, 409: ConflictOut, **ERRORS}


def _describe(move: stages.Move) -> str:
    """A move's row of the stage machine, in words (the docs read the table, they do not restate it)."""
    where = "the next stage" if move.advances else ("the stage named" if move.chooses_stage else "the same stage")
    signal = f"; signals {move.signal_type} to {move.signal_to.value}" if move.signal_type else ""
    reason = "; needs a reason" if move.needs_reason else ""
    return (f"From {' or '.join(move.from_statuses)} ({move.stages.value}) to {move.to_status} in {where}; "
            f"for {' or '.join(sorted(w.value for w in move.who))}{reason}{signal}.")


def _input_schema(move: stages.Move) -> type[Schema]:
    """What the actor writes, from the move's row: data and next action, a reason, or a summary."""
    if move.takes_data:
        return HandoffIn
    return ReasonIn if move.needs_reason else SummaryIn


def _moved(lead, transition):
    # A handoff's signal went to the new stage's owner: no need to look the owners up again.
    signal = transition.signal
    owners = {lead.stage: signal.recipient} if signal and signal.recipient.stage == lead.stage else None
    return Status(200, MoveOut(lead=LeadOut.build(lead, owners), transition=TransitionOut.build(transition)))


def _move_endpoint(move: stages.Move) -> None:
    """``POST /leads/{lead_id}/<move>`` for a move the stage owner's agents make, from its row."""
    schema = _input_schema(move)

    def view(request: HttpRequest, lead_id: UUID, payload: schema):
        fields = payload.dict()
        return _moved(*services.lead_move(lead_id=lead_id, move=move.name, actor=request.auth,
                                          agent_kind=fields.pop("agent"), **fields))

    view.__name__ = view.__qualname__ = f"lead_{move.name}"  # operation id leads_api_lead_<move>
    router.post(f"/leads/{{lead_id}}/{move.slug}", response=MOVE_RESPONSES, summary=move.label,
                description=_describe(move))(idempotent(view))


for _move in stages.MOVES.values():
    if _move.for_agents:  # staff-only moves are made through /moves/{move}
        _move_endpoint(_move)

MOVES_DOC = "\n".join(
    ["| move | endpoint | what it does |", "|---|---|---|"]
    + [f"| {name} | `POST /leads/{{id}}/{m.slug if m.for_agents else 'moves/' + name}` | "
       f"{_describe(m)} |" for name, m in stages.MOVES.items()]
)


@router.post("/leads/{lead_id}/moves/{move}", response=MOVE_RESPONSES,
             summary="Any move by name: the staff moves (resolve, reopen, reassign) and the others",
             description="Staff make every move here; an Eidolon's agents may make their own moves here too.")
@idempotent
def lead_staff_move(request: HttpRequest, lead_id: UUID, move: MoveName, payload: StaffMoveIn):
    return _moved(*services.lead_move(lead_id=lead_id, move=move.value, actor=request.auth, reason=payload.reason,
                                      to_stage=payload.to_stage))


# The service's pattern; checked here by pydantic, whose "$" (like the schema's) is the end of the text.
ArtifactName = Annotated[str, Field(pattern=services.ARTIFACT_NAME.pattern, description=(
    "The file name in the stage's folder: letters, digits, '.', '_', '-' and spaces, starting with a letter or "
    "digit, at most 200 characters. Default: the uploaded file's name."
))]


@router.post("/leads/{lead_id}/artifacts", response={201: ArtifactOut, 409: ConflictOut, **ERRORS},
             summary="Add a file (multipart 'file') or a text ('text') to the lead's current stage",
             description="Send exactly one of 'file' and 'text' (both, or neither, answers 422 with field 'file'). "
                         "An Eidolon adds artifacts only to leads in its own stage.")
@idempotent
def artifact_add(
    request: HttpRequest,
    lead_id: UUID,
    name: Form[ArtifactName | None] = None,
    text: Form[Text | None] = None,
    agent: Form[CliAgentKindChoices | None] = None,
    file: File[UploadedFile | None] = None,
):
    content = None
    if file is not None:
        if file.size > settings.MAXPORTAL_ARTIFACT_MAX_BYTES:
            raise ValidationError(
                {"file": f"The file is {file.size} bytes; the limit is {settings.MAXPORTAL_ARTIFACT_MAX_BYTES}."}
            )
        content = file.read()
    artifact = services.artifact_add(
        lead_id=lead_id, actor=request.auth, name=name or (file.name if file else ""), content=content, text=text,
        content_type=(file.content_type or "") if file else "text/plain", agent_kind=agent,
    )
    return Status(201, ArtifactOut.build(artifact))


@router.get("/leads/{lead_id}/artifacts", response={200: list[ArtifactOut], **ERRORS},
            summary="The lead's artifacts, all stages")
def artifacts_list(request: HttpRequest, lead_id: UUID):
    lead = _visible_lead(request.auth, lead_id)
    return [ArtifactOut.build(a) for a in lead_artifacts(lead=lead)]


@router.get("/leads/{lead_id}/artifacts/{artifact_id}/content", response={200: None, **ERRORS},
            summary="Download an artifact's content")
def artifact_content(request: HttpRequest, lead_id: UUID, artifact_id: Id):
    # Scoped in the query: the artifact must belong to a lead the caller can see.
    artifact = StageArtifact.objects.filter(
        pk=artifact_id, lead_id=lead_id, lead__in=leads_visible_to(request.auth)
    ).first()
    if artifact is None or not artifact.file:
        raise NotFound(f"Artifact {artifact_id} of lead {lead_id} does not exist or is not one you can see.")
    return FileResponse(artifact.file.open("rb"), as_attachment=True, filename=artifact.name,
                        content_type=artifact.content_type or "application/octet-stream")


# --- the agents' endpoints that involve leads (on the agents' router; see the module docstring) --


# The operation ids they had when they lived in eidolons/api.py: generated clients keep working.
@agents_api.router.post("/signals", response={201: agents_api.SignalOut, **ERRORS},
                        operation_id="eidolons_api_signal_create",
                        summary="Send a signal: assign a task to another Eidolon, answer one, or acknowledge")
@idempotent
def signal_create(request: HttpRequest, payload: agents_api.SignalIn):
    lead = None
    if payload.lead_id:
        lead = leads_visible_to(request.auth).filter(pk=payload.lead_id).first()
        if lead is None:
            raise NotFound(f"Lead {payload.lead_id} does not exist or is not one {request.auth.label} can see.",
                           field="lead_id")
    return Status(201, agents_api.signal_send_checked(request.auth, payload, lead=lead))


class EidolonHealthOut(agents_api.EidolonHealthOut):
    open_leads: int = Field(..., description="Leads in its stage that are not completed or failed.")


@agents_api.router.get("/agents/health", response={200: list[EidolonHealthOut], **ERRORS},
                       operation_id="eidolons_api_agents_health",
                       summary="Each Eidolon and agent: last heartbeat, stale or not, inbox depth, open leads")
def agents_health(request: HttpRequest):
    open_leads = open_leads_by_stage()
    return [EidolonHealthOut(**row.dict(), open_leads=open_leads.get(row.stage, 0))
            for row in agents_api.eidolons_health()]

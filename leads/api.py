"""The leads API: ingest, list, status, the stage machine's moves, artifacts. Thin: services do the work."""

from datetime import datetime
from decimal import Decimal
from uuid import UUID

from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import FileResponse, HttpRequest
from ninja import Field, File, Form, Router, Schema, Status
from ninja.files import UploadedFile
from ninja.pagination import LimitOffsetPagination, paginate

from eidolons.auth import token_or_staff
from eidolons.choices import CliAgentKindChoices, PipelineStage
from maxportal.kernel.errors import NotFound
from maxportal.kernel.idempotency import idempotent
from maxportal.kernel.schemas import ERRORS, ConflictOut, ErrorOut

from . import services, stages
from .choices import LeadMoveChoices, LeadSourceChoices, LeadStatusChoices
from .models import Lead, StageArtifact, StageTransition
from .selectors import lead_artifacts, lead_history, lead_list, leads_visible_to, stage_owners

router = Router(tags=["leads"], auth=token_or_staff)


class LeadIn(Schema):
    company: str = Field(..., min_length=1, max_length=200)
    email: str = Field("", max_length=254)
    contact_name: str = Field("", max_length=200)
    phone: str = Field("", max_length=50)
    source: LeadSourceChoices = LeadSourceChoices.OTHER
    data: dict = Field(default_factory=dict, description="Stage-specific data (JSON object).")
    next_action: str = Field("", max_length=500)
    summary: str = Field("", max_length=2000, description="Goes into the LeadGen Eidolon's signal.")
    amount: Decimal | None = Field(None, ge=0, max_digits=14, decimal_places=2,
                                   description="What the deal is worth, if known; give currency with it.")
    currency: str = Field("", max_length=3, description="ISO 4217 code of the amount (EUR, USD).")


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


class HandoffIn(Schema):
    summary: str = Field("", max_length=2000, description="What was done; goes into the next Eidolon's signal.")
    data: dict = Field(default_factory=dict, description="Merged into the lead's data.")
    next_action: str | None = Field(None, max_length=500)
    agent: CliAgentKindChoices | None = Field(None, description="Which of the Eidolon's agents is acting.")


class ReasonIn(Schema):
    reason: str = Field(..., min_length=1, max_length=2000)
    agent: CliAgentKindChoices | None = None


class SummaryIn(Schema):
    summary: str = Field("", max_length=2000)
    agent: CliAgentKindChoices | None = None


class StaffMoveIn(Schema):
    reason: str = Field("", max_length=2000)
    to_stage: PipelineStage | None = Field(None, description="For reassign: the stage to move the lead to.")


MOVE_RESPONSES = {200: MoveOut, 409: ConflictOut, **ERRORS}


@router.post("/leads", response={200: IngestOut, 201: IngestOut, 409: ErrorOut, **ERRORS},
             summary="Ingest a lead (200 with duplicate_of when an open lead has the same email or domain)")
@idempotent
def lead_ingest(request: HttpRequest, payload: LeadIn):
    lead, duplicate = services.lead_ingest(actor=request.auth, **payload.dict())
    out = IngestOut(**LeadOut.build(lead).dict(), duplicate_of=duplicate.pk if duplicate else None)
    return Status(200 if duplicate else 201, out)


@router.get("/leads", response=list[LeadOut], summary="Leads the caller may see, filtered and paginated")
@paginate(LimitOffsetPagination, max_limit=200)
def leads_list(
    request: HttpRequest,
    stage: PipelineStage | None = None,
    status: LeadStatusChoices | None = None,
    source: LeadSourceChoices | None = None,
    owner: str | None = None,
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


def _moved(lead, transition):
    # A handoff's signal went to the new stage's owner: no need to look the owners up again.
    signal = transition.signal
    owners = {lead.stage: signal.recipient} if signal and signal.recipient.stage == lead.stage else None
    return Status(200, MoveOut(lead=LeadOut.build(lead, owners), transition=TransitionOut.build(transition)))


@router.post("/leads/{lead_id}/handoff", response=MOVE_RESPONSES, summary="Hand the lead to the next stage")
@idempotent
def lead_handoff(request: HttpRequest, lead_id: UUID, payload: HandoffIn):
    return _moved(*services.lead_handoff(
        lead_id=lead_id, actor=request.auth, summary=payload.summary, data=payload.data,
        next_action=payload.next_action, agent_kind=payload.agent,
    ))


@router.post("/leads/{lead_id}/escalate", response=MOVE_RESPONSES, summary="Escalate the lead to a human")
@idempotent
def lead_escalate(request: HttpRequest, lead_id: UUID, payload: ReasonIn):
    return _moved(*services.lead_escalate(lead_id=lead_id, actor=request.auth, reason=payload.reason,
                                          agent_kind=payload.agent))


@router.post("/leads/{lead_id}/await-human", response=MOVE_RESPONSES, summary="Wait for a human's answer")
@idempotent
def lead_await_human(request: HttpRequest, lead_id: UUID, payload: ReasonIn):
    return _moved(*services.lead_move(lead_id=lead_id, move=LeadMoveChoices.AWAIT_HUMAN, actor=request.auth,
                                      reason=payload.reason, agent_kind=payload.agent))


@router.post("/leads/{lead_id}/fail", response=MOVE_RESPONSES, summary="Fail the lead, with a reason")
@idempotent
def lead_fail(request: HttpRequest, lead_id: UUID, payload: ReasonIn):
    return _moved(*services.lead_fail(lead_id=lead_id, actor=request.auth, reason=payload.reason,
                                      agent_kind=payload.agent))


@router.post("/leads/{lead_id}/complete", response=MOVE_RESPONSES, summary="Complete the lead (DeliveryPM only)")
@idempotent
def lead_complete(request: HttpRequest, lead_id: UUID, payload: SummaryIn):
    return _moved(*services.lead_complete(lead_id=lead_id, actor=request.auth, summary=payload.summary,
                                          agent_kind=payload.agent))


@router.post("/leads/{lead_id}/moves/{move}", response=MOVE_RESPONSES,
             summary="Staff moves: resolve, reopen, reassign (and any other move by name)")
@idempotent
def lead_staff_move(request: HttpRequest, lead_id: UUID, move: LeadMoveChoices, payload: StaffMoveIn):
    return _moved(*services.lead_move(lead_id=lead_id, move=move, actor=request.auth, reason=payload.reason,
                                      to_stage=payload.to_stage))


@router.post("/leads/{lead_id}/artifacts", response={201: ArtifactOut, 409: ConflictOut, **ERRORS},
             summary="Add a file (multipart 'file') or a text ('text') to the lead's current stage")
@idempotent
def artifact_add(
    request: HttpRequest,
    lead_id: UUID,
    name: Form[str | None] = None,
    text: Form[str | None] = None,
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
def artifact_content(request: HttpRequest, lead_id: UUID, artifact_id: int):
    # Scoped in the query: the artifact must belong to a lead the caller can see.
    artifact = StageArtifact.objects.filter(
        pk=artifact_id, lead_id=lead_id, lead__in=leads_visible_to(request.auth)
    ).first()
    if artifact is None or not artifact.file:
        raise NotFound(f"Artifact {artifact_id} of lead {lead_id} does not exist or is not one you can see.")
    return FileResponse(artifact.file.open("rb"), as_attachment=True, filename=artifact.name,
                        content_type=artifact.content_type or "application/octet-stream")

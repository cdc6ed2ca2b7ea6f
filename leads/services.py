"""Writes of the leads app: ingesting leads, the stage machine's moves, stage artifacts.

``lead_move`` makes any move; ``lead_handoff``, ``lead_escalate``, ... (``MOVE_SERVICES``) are
generated from ``leads.stages.MOVES``, one per move.

Invariants:
- every change of a lead's stage or status is a ``lead_move`` (or the ingest), checked by
  ``leads.stages`` and recorded as a ``StageTransition``;
- a move that signals another Eidolon writes the lead, the transition and the signal in ONE
  transaction: there is never a transition without its signal or a signal without its transition;
- two actors moving the same lead at once: the row is locked (PostgreSQL) and the update is
  conditional on the stage and status read, so exactly one move happens and the other gets 409;
- agents' queries are scoped by what they own (``leads_visible_to``) in the query itself.
"""

import hashlib
import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.utils import timezone

from eidolons.models import CliAgent, Eidolon
from eidolons.sapwaves.services import sapwave_runs_mark_answered
from eidolons.selectors import agent_of_kind, stage_owner
from eidolons.services import json_size_check, signal_send
from maxportal.kernel.errors import Forbidden, NotAllowed, NotFound

from . import stages
from .choices import LEAD_CLOSED_STATUSES, LeadMoveChoices, LeadSourceChoices, StageArtifactKindChoices
from .models import Lead, LeadNote, StageArtifact, StageTransition
from .selectors import lead_open_duplicate, leads_visible_to

FREE_MAIL_DOMAINS = frozenset(
    {
        "gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "live.com", "msn.com", "yahoo.com",
        "icloud.com", "me.com", "aol.com", "proton.me", "protonmail.com", "gmx.de", "gmx.net", "gmx.at",
        "web.de", "t-online.de", "mail.com", "yandex.com", "zoho.com",
    }
)

ARTIFACT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,199}$")


def email_normalize(email: str) -> tuple[str, str]:
    """(normalised email, company domain); the domain is empty for free-mail providers."""
    email = (email or "").strip().lower()
    domain = email.rpartition("@")[2] if "@" in email else ""
    return email, "" if domain in FREE_MAIL_DOMAINS else domain


def _no_nul(**fields) -> None:
    for name, value in fields.items():
        if isinstance(value, str) and "\x00" in value:
            raise ValidationError({name: f"{name} contains a NUL character; remove it."})


def _actor_agent(actor, agent_kind: str | None) -> CliAgent | None:
    """The agent that spoke: the token's own, or the one the request names (of the same Eidolon)."""
    if actor.agent is not None:
        if agent_kind and agent_kind != actor.agent.kind:
            raise ValidationError({"agent": f"This token belongs to the {actor.agent.kind} agent, not {agent_kind}."})
        return actor.agent
    if agent_kind and actor.eidolon is not None:
        return agent_of_kind(actor.eidolon, agent_kind)
    return None


def _transition(*, lead, move, from_stage, from_status, actor, agent, summary, signal) -> StageTransition:
    transition = StageTransition(
        lead=lead, move=move, from_stage=from_stage, to_stage=lead.stage, from_status=from_status,
        to_status=lead.status, actor_eidolon=actor.eidolon if actor.user is None else None, actor_agent=agent,
        actor_user=actor.user, summary=summary, signal=signal,
    )
    # Related objects are loaded instances; foreign keys, the one-signal-per-transition unique key and
    # the has-an-actor check are database constraints: skip the per-field existence queries.
    transition.full_clean(exclude=["lead", "actor_eidolon", "actor_agent", "actor_user", "signal"],
                          validate_unique=False, validate_constraints=False)
    transition.save()
    return transition


def _signal_for(move, *, lead, actor, previous_stage, summary) -> tuple[Eidolon | None, dict]:
    """Who gets the move's signal, and its payload in the seed's fields."""
    target = stages.SignalTo
    if move.signal_to is target.NONE:
        return None, {}
    if move.signal_to is target.ESCALATION:
        recipient = Eidolon.objects.filter(slug=settings.MAXPORTAL_ESCALATION_EIDOLON).first()
        if recipient is None:
            return None, {}
    else:
        recipient = stage_owner(lead.stage)
    payload = {
        "from": actor.sender,
        "to": recipient.name,
        "lead_id": str(lead.pk),
        "previous_stage": previous_stage or None,
        "next_stage": lead.stage,
        "status": lead.status,
        "move": move.name.value,
        "summary": summary,
        "data_path": lead.stage_folder(previous_stage or lead.stage),
        "company": lead.company,
    }
    return recipient, payload


def _value_check(lead: Lead) -> None:
    """A lead's value is an amount with its currency, or neither (the database checks it too)."""
    lead.currency = (lead.currency or "").strip().upper()
    if (lead.amount is None) != (lead.currency == ""):
        raise ValidationError({"currency": "Give an amount and its currency together (12000 and EUR), or neither."})


@transaction.atomic
def lead_ingest(
    *, actor, company: str, email: str = "", contact_name: str = "", phone: str = "",
    source: str = LeadSourceChoices.OTHER, data: dict | None = None, next_action: str = "", summary: str = "",
    amount=None, currency: str = "",
) -> tuple[Lead, Lead | None]:
    """A new lead enters the pipeline at LeadGen; returns (lead, None), or (existing, existing) for a duplicate.

    A duplicate is an open lead with the same normalised email or company domain. Only the LeadGen
    Eidolon (LILLy) and staff ingest leads.
    """
    if not (actor.is_staff or stages.owns_stage(actor, stages.PIPELINE_ORDER[0])):
        raise Forbidden(f"{actor.label} may not ingest leads: only the LeadGen Eidolon and staff do.")
    data = data or {}
    _no_nul(company=company, email=email, contact_name=contact_name, phone=phone, next_action=next_action,
            summary=summary)
    json_size_check(data, field_name="data")
    email_norm, domain = email_normalize(email)
    existing = lead_open_duplicate(email_normalized=email_norm, company_domain=domain)
    if existing is not None:
        return existing, existing
    now = timezone.now()
    lead = Lead(
        company=company.strip(), contact_name=contact_name.strip(), email=email.strip(), email_normalized=email_norm,
        company_domain=domain, phone=phone.strip(), source=source, data=data, next_action=next_action,
        stage=stages.PIPELINE_ORDER[0], status=stages.IN_PROGRESS, stage_entered_at=now,
        amount=amount, currency=currency,
    )
    _value_check(lead)
    lead.full_clean(validate_constraints=False)
    try:
        with transaction.atomic():
            lead.save(force_insert=True)
    except IntegrityError:
        # Another request ingested the same lead a moment ago: answer with that one.
        existing = lead_open_duplicate(email_normalized=email_norm, company_domain=domain)
        if existing is None:
            raise
        return existing, existing
    recipient, payload = _signal_for(stages.INGEST, lead=lead, actor=actor, previous_stage="",
                                     summary=summary or f"New lead: {lead.company}")
    signal = signal_send(signal_type=stages.INGEST.signal_type, sender=actor.sender, recipient=recipient,
                         payload=payload, lead=lead)
    _transition(lead=lead, move=LeadMoveChoices.INGEST, from_stage="", from_status="", actor=actor,
                agent=_actor_agent(actor, None), summary=payload["summary"], signal=signal)
    return lead, None


def lead_move(
    *, lead_id, move: str, actor, summary: str = "", reason: str = "", to_stage: str | None = None,
    data: dict | None = None, next_action: str | None = None, agent_kind: str | None = None,
) -> tuple[Lead, StageTransition]:
    """Make one move of the stage machine on a lead the actor can see. 409 when not allowed now."""
    _no_nul(summary=summary, reason=reason, next_action=next_action)
    if data is not None:
        if not isinstance(data, dict):
            raise ValidationError({"data": "data must be a JSON object (it is merged into the lead's data)."})
        json_size_check(data, field_name="data")
    text = "; ".join(t for t in (summary.strip(), reason.strip()) if t)
    with transaction.atomic():
        agent = _actor_agent(actor, agent_kind)
        # Lock the row (PostgreSQL): a concurrent move waits here and then sees the new state.
        lead = leads_visible_to(actor).select_for_update(of=("self",)).filter(pk=lead_id).first()
        if lead is None:
            raise NotFound(f"Lead {lead_id} does not exist or is not one {actor.label} can see.", lead_id=str(lead_id))
        spec = stages.check(move_name=move, stage=lead.stage, status=lead.status, actor=actor, reason=reason,
                            to_stage=to_stage)
        from_stage, from_status = lead.stage, lead.status
        new_stage, new_status = stages.target(spec, stage=from_stage, to_stage=to_stage)
        now = timezone.now()
        changes = {"stage": new_stage, "status": new_status, "updated_at": now}
        if new_stage != from_stage:
            changes["stage_entered_at"] = now
        if data:
            changes["data"] = {**lead.data, **data}
        if next_action is not None:
            changes["next_action"] = next_action
        for name, value in changes.items():
            setattr(lead, name, value)
        lead.full_clean(validate_unique=False, validate_constraints=False)
        # Conditional on what we read: on a database without row locks (SQLite) a concurrent move
        # makes this match nothing instead of overwriting it. Only a closed lead coming back to life
        # can collide with another open lead (the partial unique keys): only then a savepoint.
        guarded = Lead.objects.filter(pk=lead.pk, stage=from_stage, status=from_status)
        try:
            if from_status in LEAD_CLOSED_STATUSES:
                with transaction.atomic():
                    updated = guarded.update(**changes)
            else:
                updated = guarded.update(**changes)
        except IntegrityError as exc:
            raise NotAllowed(
                f"Cannot {move}: another open lead has the same email or company domain; "
                "fail or complete that one first.", stage=from_stage, status=from_status,
                allowed_moves=stages.allowed_moves(stage=from_stage, status=from_status, actor=actor),
            ) from exc
        if updated != 1:
            current = Lead.objects.filter(pk=lead.pk).values("stage", "status").first()
            raise NotAllowed(
                f"Cannot {move}: the lead changed meanwhile and is now in {current['stage']} with status "
                f"{current['status']}.", stage=current["stage"], status=current["status"],
                allowed_moves=stages.allowed_moves(actor=actor, **current),
            )
        signal = None
        recipient, payload = _signal_for(spec, lead=lead, actor=actor, previous_stage=from_stage, summary=text)
        if recipient is not None:
            signal = signal_send(signal_type=spec.signal_type, sender=actor.sender, recipient=recipient,
                                 payload=payload, lead=lead)
        transition = _transition(lead=lead, move=spec.name, from_stage=from_stage, from_status=from_status,
                                 actor=actor, agent=agent, summary=text, signal=signal)
        if actor.eidolon is not None and actor.user is None:
            # A move by an Eidolon answers the SapWaves that woke it (issue 9).
            sapwave_runs_mark_answered(eidolon_id=actor.eidolon.pk, at=now, by=f"lead move {spec.name.value}")
    return lead, transition


def _move_service(move: stages.Move):
    """``lead_<move>(*, lead_id, actor, ...)``: ``lead_move`` with the move filled in."""

    def service(*, lead_id, actor, **fields) -> tuple[Lead, StageTransition]:
        return lead_move(lead_id=lead_id, move=move.name, actor=actor, **fields)

    service.__name__ = service.__qualname__ = f"lead_{move.name.value}"
    takes = [name for name, on in (("reason", move.needs_reason), ("summary", move.takes_summary),
                                   ("data, next_action", move.takes_data)) if on]
    service.__doc__ = f"{move.label} (``lead_move`` with move={move.name.value!r}; takes {', '.join(takes) or '-'})."
    return service


# One service per move of the stage machine's table, by name (lead_handoff, lead_escalate, lead_fail,
# lead_complete, ...): generated, so a move added to leads.stages.MOVES has its service at once.
MOVE_SERVICES = {name: _move_service(move) for name, move in stages.MOVES.items()}
globals().update({service.__name__: service for service in MOVE_SERVICES.values()})


@transaction.atomic
def artifact_add(
    *, lead_id, actor, name: str, content: bytes | None = None, text: str | None = None,
    content_type: str = "", agent_kind: str | None = None,
) -> StageArtifact:
    """Store a file or a text for the lead's current stage, in the stage's folder.

    An Eidolon adds artifacts only to leads in the stage it owns; staff to any lead. The file is
    written to storage first and removed again if the row cannot be saved: nothing half-written.
    """
    if (content is None) == (text is None):
        raise ValidationError({"file": "Send either a file or a text, not both and not neither."})
    _no_nul(name=name, text=text)
    if not ARTIFACT_NAME.match(name or ""):
        raise ValidationError({"name": f"{name!r} is not a usable file name: letters, digits, '.', '_', '-' "
                                       "and spaces, starting with a letter or digit, at most 200 characters."})
    body = content if content is not None else text.encode("utf-8")
    limit = settings.MAXPORTAL_ARTIFACT_MAX_BYTES
    if len(body) > limit:
        raise ValidationError({"file": f"The artifact is {len(body)} bytes; the limit is {limit}."})
    agent = _actor_agent(actor, agent_kind)
    lead = leads_visible_to(actor).filter(pk=lead_id).first()
    if lead is None:
        raise NotFound(f"Lead {lead_id} does not exist or is not one {actor.label} can see.", lead_id=str(lead_id))
    if not (actor.is_staff or stages.owns_stage(actor, lead.stage)):
        raise Forbidden(
            f"{actor.label} may add artifacts only to leads in its own stage; this lead is in {lead.stage}.",
            stage=lead.stage, status=lead.status,
        )
    if StageArtifact.objects.filter(lead=lead, stage=lead.stage, name=name).exists():
        raise NotAllowed(f"The {lead.stage} folder of this lead already has {name!r}: choose another name.",
                         stage=lead.stage, status=lead.status, allowed_moves=[])
    artifact = StageArtifact(
        lead=lead, stage=lead.stage, name=name,
        kind=StageArtifactKindChoices.FILE if content is not None else StageArtifactKindChoices.TEXT,
        text=text or "", content_type=content_type[:100], size=len(body), checksum=hashlib.sha256(body).hexdigest(),
        uploaded_by_eidolon=actor.eidolon if actor.user is None else None, uploaded_by_agent=agent,
        uploaded_by_user=actor.user,
    )
    path = f"{lead.stage_folder()}{name}"
    if default_storage.exists(path):
        # Left behind by an earlier failed write (the row check above passed): replace it.
        default_storage.delete(path)
    artifact.file.name = default_storage.save(path, ContentFile(body))
    try:
        artifact.full_clean()
        with transaction.atomic():
            artifact.save()
    except Exception:
        default_storage.delete(artifact.file.name)
        raise
    # If an outer transaction rolls back after this, the file stays behind without a row; the
    # next write of the same name replaces it (see above), and nothing lists a file without a row.
    return artifact


LEAD_DETAIL_FIELDS = ("company", "contact_name", "phone", "source", "next_action", "data", "amount", "currency")


@transaction.atomic
def lead_update_details(*, lead_id, actor, **fields) -> Lead:
    """Change a lead's details (not its stage or status: those are moves). Staff only."""
    if not actor.is_staff:
        raise Forbidden(f"{actor.label} may not edit lead details.")
    unknown = set(fields) - set(LEAD_DETAIL_FIELDS)
    if unknown:
        message = "This field changes only through the stage machine or not at all."
        raise ValidationError(dict.fromkeys(unknown, message))
    lead = Lead.objects.select_for_update().get(pk=lead_id)
    _no_nul(**{k: v for k, v in fields.items() if isinstance(v, str)})
    if "data" in fields:
        json_size_check(fields["data"], field_name="data")
    for name, value in fields.items():
        setattr(lead, name, value)
    _value_check(lead)
    lead.full_clean(validate_constraints=False)
    lead.save(update_fields=[*fields, "updated_at"])
    return lead


@transaction.atomic
def lead_note_add(*, lead_id, actor, text: str) -> LeadNote:
    """A person's note on a lead (the lead page's timeline shows it). Staff only."""
    if not actor.is_staff or actor.user is None:
        raise Forbidden(f"{actor.label} may not add notes: only staff users do.")
    _no_nul(text=text)
    text = (text or "").strip()
    if not text:
        raise ValidationError({"text": "Write the note first: it cannot be empty."})
    lead = Lead.objects.filter(pk=lead_id).first()
    if lead is None:
        raise NotFound(f"Lead {lead_id} does not exist.", lead_id=str(lead_id))
    note = LeadNote(lead=lead, author=actor.user, text=text)
    note.full_clean(exclude=["lead", "author"])
    note.save()
    return note

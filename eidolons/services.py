"""Writes of the eidolons app: a plan's Eidolons (with mailboxes and agents), signals, API tokens and
heartbeats.

The MAX plan's loader lives in ``provisioning.plan`` (it creates hosts and containers too) and
creates the Eidolons through ``eidolon_ensure`` here.
"""

import contextlib
import hashlib
import hmac
import json
import logging
import os
import secrets
import tempfile
from datetime import timedelta
from pathlib import Path

import yaml
from celery import current_app
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.utils import timezone

from maxportal.kernel.errors import NotFound
from maxportal.kernel.plans import PlanLoadReport, record_ensure

from . import inbox
from .choices import CLI_AGENT_NPM_PACKAGES, CliAgentKindChoices, CliAgentStatusChoices
from .models import ApiToken, CliAgent, Eidolon, M365Account, Signal
from .selectors import agent_of_kind, inbox_deliverable

logger = logging.getLogger(__name__)

SIGNAL_MIRROR_TASK = "eidolons.signal_mirror_write"


# --- The plan's Eidolons ---------------------------------------------------------------------


def _agent_values(kind: CliAgentKindChoices, *, core: bool) -> tuple[dict, dict]:
    """What the plan names for an agent of ``kind``, and the status it starts in (changed by provisioning
    and heartbeats afterwards, so never compared with the plan)."""
    if core:
        # The core Orchestra's agents run in the sessions that exist today (claude_session, ...).
        values = {"tmux_session": f"{kind.value}_session", "systemd_unit": ""}
        status = CliAgentStatusChoices.INSTALLED
    else:
        values = {"tmux_session": f"max-{kind.value}", "systemd_unit": f"max-agent@{kind.value}.service"}
        status = CliAgentStatusChoices.NOT_INSTALLED
    return {"npm_package": CLI_AGENT_NPM_PACKAGES[kind], **values}, {"status": status}


def eidolon_ensure(
    report: PlanLoadReport, *, slug: str, name: str, role: str, stage: str | None = None, container=None,
    mailbox_address: str = "", mailbox_display_name: str = "", personality_notes: str = "",
) -> Eidolon:
    """An Eidolon of a plan with its mailbox (when it has one) and its four CLI agents, created when
    missing and left as they are (differences reported) when not. ``container`` is the record the
    caller (the plan loader in provisioning) ensured; a core Eidolon (no stage) runs the core agents."""
    values = {"name": name, "role": role, "stage": stage, "container": container}
    if mailbox_address:
        values["mailbox"] = record_ensure(
            report, M365Account, {"address": mailbox_address}, {"display_name": mailbox_display_name}
        )
    if personality_notes:
        values["personality_notes"] = personality_notes
    eidolon = record_ensure(report, Eidolon, {"slug": slug}, values)
    for kind in CliAgentKindChoices:
        planned, initial = _agent_values(kind, core=stage is None)
        record_ensure(report, CliAgent, {"eidolon": eidolon, "kind": kind}, planned, initial=initial)
    return eidolon


# --- Signals ----------------------------------------------------------------------------------


def json_size_check(value, *, field_name: str) -> None:
    """Refuse JSON over MAXPORTAL_API_MAX_JSON_BYTES or with NUL characters (PostgreSQL refuses those)."""
    encoded = json.dumps(value, ensure_ascii=False)
    limit = settings.MAXPORTAL_API_MAX_JSON_BYTES
    if len(encoded.encode()) > limit:
        raise ValidationError(
            {field_name: f"{field_name} is {len(encoded.encode())} bytes as JSON; the limit is {limit}: "
                         "store large content as an artifact and refer to it."}
        )
    if "\\u0000" in encoded or "\x00" in encoded:
        raise ValidationError({field_name: f"{field_name} contains a NUL character (\\u0000); remove it."})


def signal_send(
    *,
    signal_type: str,
    sender: str,
    recipient: Eidolon,
    payload: dict,
    lead=None,
    agent: CliAgent | None = None,
) -> Signal:
    """Put a signal in ``recipient``'s inbox; waiting polls wake when the caller's transaction commits.

    ``agent`` narrows it to one of the recipient's agents. With MAXPORTAL_SIGNAL_MIRROR_ROOT set, the
    signal is also written as a YAML file into ``<root>/<eidolon>_inbox/`` after the commit.
    """
    if agent is not None and agent.eidolon_id != recipient.pk:
        raise ValidationError({"agent": f"{agent} is not one of {recipient}'s agents."})
    if not isinstance(payload, dict):
        raise ValidationError({"payload": "payload must be a JSON object."})
    json_size_check(payload, field_name="payload")
    signal = Signal(
        signal_type=signal_type, sender=sender, recipient=recipient, agent=agent, lead=lead, payload=payload
    )
    # The related objects are loaded instances (their existence checked by the caller's query and by
    # the foreign keys) and the type is backed by a check constraint: validating those again would
    # cost a query each on the handoff path.
    signal.full_clean(exclude=["recipient", "agent", "lead"], validate_unique=False, validate_constraints=False)
    # Validated before the transaction: inside a caller's transaction (a handoff) no savepoint is
    # needed, and a refusal above leaves the caller's transaction usable.
    with transaction.atomic(savepoint=False):
        signal.save()
        inbox.announce_in_transaction(recipient.pk, agent.pk if agent is not None else None)
        if settings.MAXPORTAL_SIGNAL_MIRROR_ROOT:
            # Written by a Celery task after the commit (retried while the folder is unwritable):
            # the request (a handoff) does not wait on a network filesystem.
            signal_id = signal.pk
            transaction.on_commit(lambda: current_app.send_task(SIGNAL_MIRROR_TASK, args=(signal_id,)))
    return signal


def signal_acknowledge(*, signal_id: int, eidolon: Eidolon) -> Signal:
    """Mark one of ``eidolon``'s signals acknowledged (again: no change). Others' signals: NotFound."""
    now = timezone.now()
    # The recipient is part of the query itself: an Eidolon cannot touch another's inbox.
    Signal.objects.filter(pk=signal_id, recipient=eidolon, acknowledged_at__isnull=True).update(acknowledged_at=now)
    signal = Signal.objects.filter(pk=signal_id, recipient=eidolon).first()
    if signal is None:
        raise NotFound(f"Signal {signal_id} is not in {eidolon}'s inbox.", signal_id=signal_id)
    return signal


def signal_claim(*, eidolon: Eidolon, agent: CliAgent | None = None, limit: int = 50) -> list[Signal]:
    """Deliver the inbox's deliverable signals to one poll and mark them delivered.

    Deliverable: not acknowledged, and never delivered or delivered longer ago than the visibility
    timeout. A poll naming an agent never gets a sibling agent's signals. Two agents polling the same
    inbox at once get different signals (rows locked with SKIP LOCKED on PostgreSQL).
    """
    now = timezone.now()
    with transaction.atomic():
        rows = list(
            inbox_deliverable(eidolon=eidolon, agent=agent, now=now)
            .select_related("agent")
            .select_for_update(skip_locked=True, of=("self",))
            .order_by("created_at", "id")[:limit]
        )
        if not rows:
            return []
        Signal.objects.filter(pk__in=[s.pk for s in rows]).update(
            delivered_at=now, delivery_count=models.F("delivery_count") + 1
        )
    for s in rows:
        s.delivered_at = now
        s.delivery_count += 1
    return rows


def signal_document(signal: Signal) -> dict:
    """The signal as the seed's YAML shows it: type and the payload's fields at the top level."""
    return {
        "type": signal.signal_type,
        **signal.payload,
        "signal_id": signal.pk,
        "sender": signal.sender,
        "recipient": signal.recipient.slug,
        "agent": signal.agent.kind if signal.agent_id else None,
        "lead_id": str(signal.lead_id) if signal.lead_id else signal.payload.get("lead_id"),
        "created_at": signal.created_at.isoformat(),
    }


def signal_mirror_path(signal: Signal) -> Path:
    root = Path(settings.MAXPORTAL_SIGNAL_MIRROR_ROOT)
    stamp = signal.created_at.strftime("%Y%m%dT%H%M%S%fZ")
    return root / f"{signal.recipient.slug}_inbox" / f"{stamp}-{signal.pk:08d}-{signal.signal_type}.yaml"


def signal_mirror_write(*, signal_id: int, raise_errors: bool = False) -> Path | None:
    """Write the signal's YAML file atomically: a temporary file in the same folder, then rename.

    A daemon watching the folder never sees a half-written file. Runs after the commit (the task
    ``eidolons.signal_mirror_write``, which retries: ``raise_errors``); a failure is logged and the
    database (the source of truth) keeps the signal.
    """
    if not settings.MAXPORTAL_SIGNAL_MIRROR_ROOT:
        return None
    signal = Signal.objects.select_related("recipient", "agent").get(pk=signal_id)
    target = signal_mirror_path(signal)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".yaml", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                yaml.safe_dump(signal_document(signal), fh, sort_keys=False, allow_unicode=True)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError:
        logger.exception("signal %s: could not mirror to %s", signal_id, target)
        if raise_errors:
            raise
        return None
    return target


# --- API tokens --------------------------------------------------------------------------------

TOKEN_PREFIX = "mxp"  # noqa: S105 (the visible scheme marker, not a secret)


def _token_digest(raw: str) -> str:
    return hmac.new(settings.SECRET_KEY.encode(), raw.encode(), hashlib.sha256).hexdigest()


@transaction.atomic
def api_token_issue(
    *, eidolon: Eidolon, name: str = "", agent: CliAgent | None = None, created_by=None
) -> tuple[ApiToken, str]:
    """Create a token for ``eidolon``; returns the record and the token, which is never shown again."""
    if agent is not None and agent.eidolon_id != eidolon.pk:
        raise ValidationError({"agent": f"{agent} is not one of {eidolon}'s agents."})
    prefix = secrets.token_hex(4)
    raw = f"{TOKEN_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    token = ApiToken(
        eidolon=eidolon, agent=agent, name=name, prefix=prefix, digest=_token_digest(raw), created_by=created_by
    )
    token.full_clean()
    token.save()
    return token, raw


def api_token_revoke(*, token: ApiToken) -> ApiToken:
    """Revoke a token: it stops working at once. Revoking again changes nothing."""
    ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    token.refresh_from_db()
    return token


def api_token_authenticate(raw: str) -> ApiToken | None:
    """The active token ``raw`` is, or None. Constant-time comparison of the keyed hash."""
    parts = raw.split("_", 2)
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX or not parts[1] or len(raw) > 200:
        return None
    token = (
        ApiToken.objects.select_related("eidolon", "agent")
        .filter(prefix=parts[1], revoked_at__isnull=True)
        .first()
    )
    if token is None or not hmac.compare_digest(token.digest, _token_digest(raw)):
        return None
    now = timezone.now()
    # Record use at most once a minute: a write per request would cost more than the request.
    if token.last_used_at is None or now - token.last_used_at > timedelta(seconds=60):
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token


# --- Heartbeats --------------------------------------------------------------------------------


def agent_heartbeat(
    *, eidolon: Eidolon, kind: str, version: str = "", state: str = CliAgentStatusChoices.RUNNING
) -> CliAgent:
    """Record that one of ``eidolon``'s CLI agents is alive: when, which version, in what state."""
    if kind not in CliAgentKindChoices.values:
        kinds = ", ".join(CliAgentKindChoices.values)
        raise ValidationError({"kind": f"{kind!r} is not an agent kind; use one of {kinds}."})
    if state not in CliAgentStatusChoices.values:
        states = ", ".join(CliAgentStatusChoices.values)
        raise ValidationError({"state": f"{state!r} is not an agent state; use one of {states}."})
    agent = agent_of_kind(eidolon, kind, field="kind")
    agent.last_heartbeat_at = timezone.now()
    agent.reported_version = version[:50]
    agent.status = state
    agent.full_clean()
    agent.save(update_fields=["last_heartbeat_at", "reported_version", "status"])
    return agent

"""The agents' side of the API: the inbox (long-poll, ack), sending signals, heartbeats, health.

``GET /signals?wait=N`` is an async view: while it waits it holds no database connection and no
thread, only an event that the commit of a signal for its Eidolon sets (eidolons/inbox.py).

``eidolons`` does not know leads: ``POST /signals`` (which may name a lead) and ``GET
/agents/health`` (which counts open leads) are put on this router by ``leads/api.py`` from the
pieces here (``signal_send_checked``, ``eidolons_health``).
"""

import asyncio
import contextlib
from datetime import datetime
from uuid import UUID

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest
from ninja import Field, Query, Router, Schema, Status

from maxportal.kernel.db import db_sync_to_async, release_connection
from maxportal.kernel.errors import Forbidden, NotFound
from maxportal.kernel.idempotency import idempotent
from maxportal.kernel.schemas import ERRORS, PAGE_LIMIT_MAX, BodyIn, Id, Text

from . import inbox, selectors, services
from .auth import async_token_or_staff, token_or_staff
from .choices import SIGNAL_TYPES_AGENTS_SEND, CliAgentKindChoices, CliAgentStatusChoices, SignalTypeChoices
from .models import CliAgent, Eidolon, Signal

router = Router(tags=["agents"], auth=token_or_staff)


class SignalOut(Schema):
    id: int
    type: str
    sender: str
    recipient: str
    agent: str | None
    lead_id: UUID | None
    payload: dict
    created_at: datetime
    delivered_at: datetime | None
    acknowledged_at: datetime | None
    delivery_count: int

    @staticmethod
    def build(s: Signal, recipient_slug: str | None = None) -> "SignalOut":
        return SignalOut(
            id=s.pk, type=s.signal_type, sender=s.sender, recipient=recipient_slug or s.recipient.slug,
            agent=s.agent.kind if s.agent_id else None, lead_id=s.lead_id, payload=s.payload,
            created_at=s.created_at, delivered_at=s.delivered_at, acknowledged_at=s.acknowledged_at,
            delivery_count=s.delivery_count,
        )


class SignalIn(BodyIn):
    type: SignalTypeChoices = Field(..., description="TASK_ASSIGNMENT, TASK_RESPONSE or ACK for agents.")
    to: Text = Field(..., min_length=1, max_length=50, description="The recipient Eidolon's slug, e.g. 'clara'.")
    agent: CliAgentKindChoices | None = Field(None, description="Only for this one of the recipient's agents.")
    lead_id: UUID | None = None
    payload: dict = Field(default_factory=dict)


class HeartbeatIn(BodyIn):
    kind: CliAgentKindChoices
    version: Text = Field("", max_length=50)
    state: CliAgentStatusChoices = CliAgentStatusChoices.RUNNING


class HeartbeatOut(Schema):
    eidolon: str
    kind: str
    state: str
    version: str
    last_heartbeat_at: datetime
    inbox_depth: int


class AgentHealthOut(Schema):
    kind: str
    status: str
    version: str
    last_heartbeat_at: datetime | None
    stale: bool


class EidolonHealthOut(Schema):
    name: str
    slug: str
    stage: str | None
    inbox_depth: int = Field(..., description="Signals not yet acknowledged.")
    stale: bool = Field(..., description="True when none of its agents sent a heartbeat recently.")
    agents: list[AgentHealthOut]


class InboxQuery(Schema):
    wait: float = Field(0, ge=0, description="Seconds (up to 30) to wait for a signal when none is pending.")
    limit: int = Field(50, ge=1, le=PAGE_LIMIT_MAX)
    eidolon: Text | None = Field(None, max_length=50, description="Staff: whose inbox.")
    agent: CliAgentKindChoices | None = Field(None, description="Read as this agent (gets signals addressed to it).")


# --- inbox -------------------------------------------------------------------------------------


def _resolve_inbox(actor, eidolon_slug: str | None, agent_kind: str | None) -> tuple[Eidolon, CliAgent | None]:
    """Whose inbox the caller reads: its own; staff name one with ?eidolon=."""
    if actor.is_staff:
        eidolon = Eidolon.objects.filter(slug=eidolon_slug or "").first()
        if eidolon is None:
            raise NotFound(f"Name the inbox to read with ?eidolon=<slug>; {eidolon_slug!r} is not an Eidolon.")
    else:
        if eidolon_slug and eidolon_slug != actor.eidolon.slug:
            raise Forbidden(f"{actor.label} reads only its own inbox ({actor.eidolon.slug}).")
        eidolon = actor.eidolon
    agent = actor.agent
    if agent is None and agent_kind:
        agent = CliAgent.objects.filter(eidolon=eidolon, kind=agent_kind).first()
        if agent is None:
            raise NotFound(f"{eidolon.name} has no {agent_kind} agent.")
    return eidolon, agent


def _claim(eidolon, agent, limit) -> list[SignalOut]:
    return [SignalOut.build(s, eidolon.slug) for s in services.signal_claim(eidolon=eidolon, agent=agent, limit=limit)]


@router.get("/signals", auth=async_token_or_staff, response={200: list[SignalOut], **ERRORS},
            summary="Read the inbox; with wait=N (up to 30 s), wait for a signal")
async def signals_inbox(request: HttpRequest, q: Query[InboxQuery]):
    actor = request.auth
    wait, limit, eidolon, agent = q.wait, q.limit, q.eidolon, q.agent
    recipient, agent_obj = await db_sync_to_async(_resolve_inbox)(actor, eidolon, agent)
    wait = min(wait, settings.MAXPORTAL_SIGNAL_MAX_WAIT)
    claim = db_sync_to_async(_claim)
    if wait <= 0:
        return await claim(recipient, agent_obj, limit)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    released = False
    async with inbox.waiting_for(recipient.pk, agent_obj.pk if agent_obj else None) as waiter:
        while True:
            waiter.reset()
            signals = await claim(recipient, agent_obj, limit)
            remaining = deadline - loop.time()
            if signals or remaining <= 0:
                if len(signals) == limit:
                    inbox.wake_local(recipient.pk, exclude=waiter)  # a full page: there may be more
                return signals
            if not released:
                # Whatever ran on the request's own thread (a session lookup, or everything when the
                # pool is off) gives its connection back: a waiting poll holds none.
                await sync_to_async(release_connection)()
                released = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    waiter.event.wait(), timeout=min(remaining, settings.MAXPORTAL_SIGNAL_POLL_INTERVAL)
                )


@router.post("/signals/{signal_id}/ack", response={200: SignalOut, **ERRORS}, summary="Acknowledge a signal")
@idempotent
def signal_ack(request: HttpRequest, signal_id: Id):
    actor = request.auth
    if actor.is_staff:
        target = Signal.objects.filter(pk=signal_id).select_related("recipient").first()
        if target is None:
            raise NotFound(f"Signal {signal_id} does not exist.")
        owner = target.recipient
    else:
        owner = actor.eidolon
    signal = services.signal_acknowledge(signal_id=signal_id, eidolon=owner)
    return Status(200, SignalOut.build(signal, owner.slug))


def signal_send_checked(actor, payload: SignalIn, *, lead=None) -> SignalOut:
    """Send ``payload`` as ``actor`` (``lead``: already checked as one the actor can see)."""
    if not actor.is_staff and payload.type not in SIGNAL_TYPES_AGENTS_SEND:
        allowed = ", ".join(SIGNAL_TYPES_AGENTS_SEND)
        raise Forbidden(f"Agents send {allowed}; {payload.type} signals are written by the portal.")
    recipient = Eidolon.objects.filter(slug=payload.to).first()
    if recipient is None:
        raise NotFound(f"There is no Eidolon {payload.to!r}; use its slug, e.g. 'clara'.", field="to")
    agent = None
    if payload.agent:
        agent = CliAgent.objects.filter(eidolon=recipient, kind=payload.agent).first()
        if agent is None:
            raise NotFound(f"{recipient.name} has no {payload.agent} agent.", field="agent")
    signal = services.signal_send(
        signal_type=payload.type, sender=actor.sender, recipient=recipient, payload=payload.payload, lead=lead,
        agent=agent,
    )
    return SignalOut.build(signal, recipient.slug)


# --- agents ------------------------------------------------------------------------------------


@router.post("/agents/heartbeat", response={200: HeartbeatOut, **ERRORS},
             summary="An agent says it is alive: kind, version, state")
@idempotent
def agent_heartbeat(request: HttpRequest, payload: HeartbeatIn):
    actor = request.auth
    if actor.eidolon is None:
        raise Forbidden("Heartbeats come from an Eidolon's agent token, not from a staff session.")
    if actor.agent is not None and actor.agent.kind != payload.kind:
        raise Forbidden(f"This token belongs to the {actor.agent.kind} agent, not {payload.kind}.")
    agent = services.agent_heartbeat(eidolon=actor.eidolon, kind=payload.kind, version=payload.version,
                                     state=payload.state)
    return Status(200, HeartbeatOut(
        eidolon=actor.eidolon.slug, kind=agent.kind, state=agent.status, version=agent.reported_version,
        last_heartbeat_at=agent.last_heartbeat_at, inbox_depth=selectors.inbox_pending(eidolon=actor.eidolon).count(),
    ))


def eidolons_health() -> list[EidolonHealthOut]:
    """Each Eidolon and its agents: heartbeats, staleness, inbox depth (the leads app adds open leads)."""
    return [
        EidolonHealthOut(
            name=e.name, slug=e.slug, stage=e.stage, inbox_depth=e.inbox_depth,
            stale=all(a.stale for a in agents), agents=[AgentHealthOut(**a.__dict__) for a in agents],
        )
        for e, agents in selectors.agents_health()
    ]

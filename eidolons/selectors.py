"""Reads of the eidolons app."""

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, IntegerField, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from maxportal.kernel.errors import NotFound

from .choices import CliAgentKindChoices
from .models import CliAgent, Eidolon, Signal


def agent_of_kind(eidolon: Eidolon, kind: str, *, field: str = "agent") -> CliAgent:
    """``eidolon``'s CLI agent of ``kind``: the one lookup of it for the API, services, commands and
    provisioning. NotFound (``field`` names the input that asked) when the Eidolon has none."""
    agent = CliAgent.objects.filter(eidolon=eidolon, kind=kind).first()
    if agent is None:
        kinds = ", ".join(CliAgentKindChoices.values)
        raise NotFound(
            f"{eidolon.name} has no {kind!r} agent (the kinds are {kinds}); add it in the admin first.",
            eidolon=eidolon.slug, kind=str(kind), field=field,
        )
    return agent


def eidolon_overview() -> QuerySet[Eidolon]:
    """All Eidolons with their container, host and mailbox in one query, agents prefetched."""
    return (
        Eidolon.objects.select_related("container__host", "mailbox")
        .prefetch_related("agents")
        .order_by("container__vmid", "name")
    )


def inbox_pending(*, eidolon: Eidolon) -> QuerySet[Signal]:
    """The signals in ``eidolon``'s inbox not yet acknowledged, oldest first (delivered or not)."""
    return (
        Signal.objects.filter(recipient=eidolon, acknowledged_at__isnull=True)
        .select_related("recipient", "agent")
        .order_by("created_at", "id")
    )


def inbox_deliverable(*, eidolon: Eidolon, agent: CliAgent | None = None, now=None) -> QuerySet[Signal]:
    """What a poll of ``eidolon``'s inbox may receive now.

    Not acknowledged; never delivered, or delivered longer ago than the visibility timeout (so a
    signal whose agent crashed before acknowledging it comes back). A poll that names an agent gets
    the Eidolon-wide signals and those addressed to that agent, not its siblings'; a poll for the
    whole Eidolon (a dispatcher such as cor-daemon) gets them all.
    """
    now = now or timezone.now()
    horizon = now - timedelta(seconds=settings.MAXPORTAL_SIGNAL_VISIBILITY_TIMEOUT)
    qs = Signal.objects.filter(recipient=eidolon, acknowledged_at__isnull=True).filter(
        Q(delivered_at__isnull=True) | Q(delivered_at__lt=horizon)
    )
    if agent is not None:
        return qs.filter(Q(agent__isnull=True) | Q(agent=agent))
    return qs


@dataclass
class AgentHealth:
    kind: str
    status: str
    version: str
    last_heartbeat_at: object
    stale: bool


def agents_health(*, now=None) -> list[tuple[Eidolon, list[AgentHealth]]]:
    """Every Eidolon with its inbox depth (annotated: one query) and its agents' health.

    Its open leads are the leads app's to count (``leads.selectors.open_leads_by_stage``): the API
    composes the two.
    """
    now = now or timezone.now()
    stale_before = now - timedelta(seconds=settings.MAXPORTAL_HEARTBEAT_STALE_SECONDS)
    depth = (
        Signal.objects.filter(recipient=OuterRef("pk"), acknowledged_at__isnull=True)
        .order_by().values("recipient").annotate(n=Count("id")).values("n")
    )
    eidolons = (
        Eidolon.objects.annotate(inbox_depth=Coalesce(Subquery(depth, output_field=IntegerField()), 0))
        .prefetch_related("agents")
        .order_by("container__vmid", "name")
    )
    return [
        (
            e,
            [
                AgentHealth(
                    kind=a.kind, status=a.status, version=a.reported_version, last_heartbeat_at=a.last_heartbeat_at,
                    stale=a.last_heartbeat_at is None or a.last_heartbeat_at < stale_before,
                )
                for a in e.agents.all()
            ],
        )
        for e in eidolons
    ]

"""Reads of the eidolons app: the overview, inboxes, agents' health, and the one home of two lookups
every app needs: which Eidolon owns a pipeline stage (``stage_owner``, ``stage_owners``,
``stage_owner_name``, ``stages_owned_by``) and an Eidolon's agent of a kind (``agent_of_kind``).
"""

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, IntegerField, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from maxportal.kernel.errors import NotAllowed, NotFound

from .choices import PIPELINE_ORDER, CliAgentKindChoices
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


class NoStageOwner(NotAllowed):
    """A stage has no Eidolon to take the lead: a conflict with the pipeline's set-up."""

    code = "no_stage_owner"


def stage_owner(stage: str) -> Eidolon:
    """The Eidolon owning ``stage`` (one at most: a unique column); NoStageOwner when none does."""
    owner = Eidolon.objects.filter(stage=stage).first()
    if owner is None:
        raise NoStageOwner(f"No Eidolon owns the stage {stage}: assign one in the admin first.", stage=stage)
    return owner


def stage_owners() -> dict[str, Eidolon]:
    """Stage -> the Eidolon owning it, in pipeline order (stages nobody owns are left out)."""
    owners = {e.stage: e for e in Eidolon.objects.filter(stage__in=PIPELINE_ORDER)}
    return {stage.value: owners[stage] for stage in PIPELINE_ORDER if stage in owners}


def stage_owner_name(stage_field: str = "stage") -> Subquery:
    """The name of the Eidolon owning the stage in the outer row's ``stage_field``, for ``annotate()``."""
    return Subquery(Eidolon.objects.filter(stage=OuterRef(stage_field)).values("name")[:1])


def stages_owned_by(slug: str) -> QuerySet:
    """The stage the Eidolon ``slug`` owns, as a subquery for ``stage__in`` (empty for a core Eidolon)."""
    return Eidolon.objects.filter(slug=slug, stage__isnull=False).values("stage")


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


def agents_of(*, eidolon: Eidolon) -> QuerySet[CliAgent]:
    """``eidolon``'s CLI agents in kind order: the one lookup of them for scripts and checklist steps."""
    return CliAgent.objects.filter(eidolon=eidolon).order_by("kind")

"""Reads of the leads app, shared by the API, the admin and the pages: what a caller may see, lists
and filters, a lead's history and artifacts, duplicates, open leads per stage, the funnel.

``leads_visible_to`` is object-level authorization in the query itself: an Eidolon sees the
leads in the stage it owns and those it has worked on or been signalled about; staff see all.
"""

from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Subquery

from eidolons.choices import PIPELINE_ORDER
from eidolons.models import Signal
from eidolons.selectors import stage_owner_name, stage_owners, stages_owned_by

from .choices import LEAD_OPEN_STATUSES, LeadStatusChoices
from .models import Lead, StageArtifact, StageTransition


def leads_visible_to(actor) -> QuerySet[Lead]:
    if actor.is_staff:
        return Lead.objects.all()
    eidolon = actor.eidolon
    if eidolon is None:
        return Lead.objects.none()
    seen = Q(Exists(StageTransition.objects.filter(lead=OuterRef("pk"), actor_eidolon=eidolon))) | Q(
        Exists(Signal.objects.filter(lead=OuterRef("pk"), recipient=eidolon))
    )
    if eidolon.stage:
        return Lead.objects.filter(Q(stage=eidolon.stage) | seen)
    return Lead.objects.filter(seen)


def lead_list(
    *, actor, stage: str | None = None, status: str | None = None, source: str | None = None,
    owner: str | None = None,
) -> QuerySet[Lead]:
    """Leads the actor may see, filtered; ``owner`` is an Eidolon's slug (the stage it owns)."""
    qs = leads_visible_to(actor)
    if stage:
        qs = qs.filter(stage=stage)
    if status:
        qs = qs.filter(status=status)
    if source:
        qs = qs.filter(source=source)
    if owner:
        qs = leads_owned_by(qs, slug=owner)
    return qs.order_by("-created_at")


def leads_owned_by(qs: QuerySet[Lead], *, slug: str) -> QuerySet[Lead]:
    """The leads of ``qs`` in the stage the Eidolon ``slug`` owns (none for a core Eidolon)."""
    return qs.filter(stage__in=stages_owned_by(slug))


def lead_owner_name() -> Subquery:
    """The name of the Eidolon owning a lead's stage, for ``annotate(owner_name=...)`` on list pages."""
    return stage_owner_name("stage")


def lead_history(*, lead: Lead) -> QuerySet[StageTransition]:
    # An agent's label names its Eidolon: fetch both, or each agent-made row costs a query.
    return lead.transitions.select_related("actor_eidolon", "actor_agent__eidolon", "actor_user", "signal").order_by(
        "created_at", "id"
    )


def lead_artifacts(*, lead: Lead) -> QuerySet[StageArtifact]:
    return lead.artifacts.select_related("uploaded_by_eidolon", "uploaded_by_agent__eidolon", "uploaded_by_user")


def lead_open_duplicate(*, email_normalized: str, company_domain: str) -> Lead | None:
    """The open lead with the same normalised email or company domain, if any."""
    match = Q()
    if email_normalized:
        match |= Q(email_normalized=email_normalized)
    if company_domain:
        match |= Q(company_domain=company_domain)
    if not match:
        return None
    return Lead.objects.filter(match, status__in=LEAD_OPEN_STATUSES).order_by("created_at").first()


def open_leads_by_stage() -> dict[str, int]:
    """Stage -> how many of its leads are open (not completed or failed): the owning Eidolon's workload."""
    rows = Lead.objects.filter(status__in=LEAD_OPEN_STATUSES).values("stage").annotate(n=Count("id")).order_by()
    return {r["stage"]: r["n"] for r in rows}


def funnel_counts() -> dict[tuple[str, str], int]:
    """(stage, status) -> number of leads: the sales funnel in one query."""
    rows = Lead.objects.values("stage", "status").annotate(n=Count("id")).order_by()
    return {(r["stage"], r["status"]): r["n"] for r in rows}


def recent_transitions(*, limit: int = 20) -> QuerySet[StageTransition]:
    return StageTransition.objects.select_related(
        "lead", "actor_eidolon", "actor_agent__eidolon", "actor_user"
    ).order_by(
        "-created_at", "-id"
    )[:limit]


def funnel_table() -> list[dict]:
    """One row per stage in pipeline order: its owner, a count per status, and the open total."""
    counts = funnel_counts()
    owners = stage_owners()
    rows = []
    for stage in PIPELINE_ORDER:
        per_status = [counts.get((stage.value, s.value), 0) for s in LeadStatusChoices]
        rows.append({
            "stage": stage, "owner": owners.get(stage.value), "counts": per_status,
            "open": sum(counts.get((stage.value, s), 0) for s in LEAD_OPEN_STATUSES), "total": sum(per_status),
        })
    return rows

"""Reads of the eidolons app."""

from datetime import timedelta

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone

from .models import CliAgent, Eidolon, Signal


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
    signal whose agent crashed before acknowledging it comes back). Signals addressed to one agent
    are left for that agent.
    """
    now = now or timezone.now()
    horizon = now - timedelta(seconds=settings.MAXPORTAL_SIGNAL_VISIBILITY_TIMEOUT)
    qs = Signal.objects.filter(recipient=eidolon, acknowledged_at__isnull=True).filter(
        Q(delivered_at__isnull=True) | Q(delivered_at__lt=horizon)
    )
    if agent is not None:
        return qs.filter(Q(agent__isnull=True) | Q(agent=agent))
    return qs

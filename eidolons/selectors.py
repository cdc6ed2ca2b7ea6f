"""Reads of the eidolons app."""

from django.db.models import QuerySet

from .models import Eidolon


def eidolon_overview() -> QuerySet[Eidolon]:
    """All Eidolons with their container, host and mailbox in one query, agents prefetched."""
    return (
        Eidolon.objects.select_related("container__host", "mailbox")
        .prefetch_related("agents")
        .order_by("container__vmid", "name")
    )

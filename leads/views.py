"""The sales team's pages: the funnel (leads per stage and status, recent transitions)."""

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import render
from django.views.decorators.http import require_GET

from .choices import LeadStatusChoices
from .selectors import funnel_table, recent_transitions


@require_GET
@login_required
def funnel(request):
    """Leads per stage and status, and the latest moves; refreshes itself (htmx) every 15 s."""
    if not request.user.is_staff:
        raise PermissionDenied("The funnel is for the sales team (staff users).")
    rows = funnel_table()
    context = {
        "rows": rows,
        "statuses": LeadStatusChoices,
        "totals": [sum(r["counts"][i] for r in rows) for i in range(len(LeadStatusChoices))],
        "transitions": recent_transitions(limit=20),
    }
    template = "leads/_funnel.html" if request.htmx else "leads/funnel.html"
    return render(request, template, context)

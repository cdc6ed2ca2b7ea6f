"""The sales team's pages: the funnel analytics (with CSV exports), the board, the lead page.

Thin views: reads come from ``leads.analytics`` / ``leads.board`` / ``leads.selectors``, every
change goes through ``leads.services`` (the stage machine), so a move refused here is refused with
the same message as in the API (409, shown in place). The pages are for staff users; anyone else
gets the styled 403 after logging in. Filters live in the query string, so every filtered page can
be shared by its URL; HTMX requests get the fragment they swap.
"""

import csv
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from eidolons.models import Eidolon

from . import analytics, charts
from .forms import FunnelFilterForm

SALES_ONLY = "The sales pages (funnel, board, lead pages) are for staff users."


def sales_required(view):
    """Signed in (else the login page) and staff (else the styled 403 naming what grants access)."""

    @wraps(view)
    @login_required
    def wrapper(request, *args, **kwargs):
        if not request.user.is_staff:
            raise PermissionDenied(SALES_ONLY)
        return view(request, *args, **kwargs)

    return wrapper


def _owners() -> list[Eidolon]:
    return list(Eidolon.objects.exclude(stage__isnull=True).exclude(stage="").order_by("id"))


def _funnel_filters(request) -> tuple[FunnelFilterForm, dict]:
    form = FunnelFilterForm(request.GET, owners=_owners())
    if not form.is_valid():
        return form, {}
    data = form.cleaned_data
    return form, {"start": data["start"], "end": data["end"], "source": data["source"] or None,
                  "owner": data["owner"] or None}


def _pct(value) -> str:
    return "no data" if value is None else f"{value * 100:.0f}%"


def _funnel_charts(report) -> dict:
    return {
        "funnel": charts.hbars([(s["stage"], s["entered"], str(s["entered"])) for s in report.stages],
                               label="Leads entering each stage"),
        "weekly": charts.vbars([(w["week"].strftime("%m-%d"), w["advanced_rate"], _pct(w["advanced_rate"]))
                                for w in report.weekly[-16:]],
                               label="Share of each week's new leads that advanced past LeadGen"),
        "distribution": charts.heatmap([d["stage"] for d in report.distribution],
                                       [label for label, _ in analytics.BUCKETS],
                                       [d["counts"] for d in report.distribution],
                                       label="Time in stage: ended spells per duration bucket"),
    }


@require_GET
@sales_required
def funnel(request):
    """The funnel analytics for a date range and optional source and owner filters."""
    form, filters = _funnel_filters(request)
    context = {"form": form, "definitions": analytics.DEFINITIONS, "buckets": [b for b, _ in analytics.BUCKETS],
               "query": request.GET.urlencode(), "csv_tables": list(analytics.CSV_TABLES)}
    if filters:
        report = analytics.funnel_report(**filters)
        context.update(report=report, charts=_funnel_charts(report))
    template = "leads/_analytics.html" if request.htmx and not request.htmx.boosted else "leads/analytics.html"
    return render(request, template, context, status=200 if filters else 400)


@require_GET
@sales_required
def funnel_csv(request, table: str):
    """One of the funnel's tables as CSV, for the same range and filters as the page."""
    if table not in analytics.CSV_TABLES:
        raise Http404(f"No funnel table {table!r}: one of {', '.join(analytics.CSV_TABLES)}.")
    form, filters = _funnel_filters(request)
    if not filters:
        return HttpResponse("; ".join(form.errors.get("__all__", ["Invalid filters."])), status=400,
                            content_type="text/plain")
    header, rows_of = analytics.CSV_TABLES[table]
    report = analytics.funnel_report(**filters)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    name = f"funnel-{table}-{filters['start']}-{filters['end']}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    writer = csv.writer(response)
    writer.writerow(header)
    writer.writerows(rows_of(report))
    return response

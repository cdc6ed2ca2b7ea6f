"""The sales team's pages: the funnel analytics (with CSV exports), the board, the lead page.

Thin views: reads come from ``leads.analytics`` / ``leads.board`` / ``leads.selectors``, every
change goes through ``leads.services`` (the stage machine), so a move refused here is refused with
the same message as in the API (409, shown in place). The pages are for staff users; anyone else
gets the styled 403 after logging in. Filters live in the query string, so every filtered page can
be shared by its URL; HTMX requests get the fragment they swap.
"""

import csv
from functools import wraps
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from eidolons.choices import PipelineStage
from eidolons.models import Eidolon
from maxportal.kernel.actors import Actor
from maxportal.kernel.errors import DomainError, NotAllowed, NotFound, ReasonRequired

from . import analytics, board, charts, services, stages
from .choices import LeadMoveChoices
from .forms import BoardFilterForm, FunnelFilterForm

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


def _funnel_query(request) -> QueryDict:
    """The query string with the default range filled in, so the form and the CSV links show it."""
    query = request.GET.copy()
    for name, value in FunnelFilterForm.default_range().items():
        if not query.get(name):
            query[name] = value.isoformat()
    return query


def _funnel_filters(request) -> tuple[FunnelFilterForm, dict]:
    form = FunnelFilterForm(_funnel_query(request), owners=_owners())
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
               "query": _funnel_query(request).urlencode(), "csv_tables": list(analytics.CSV_TABLES)}
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


# --- The board -------------------------------------------------------------------------------

BOARD_FILTERS = ("q", "stage", "status", "owner", "source", "stale")
# Button texts (the moves' full labels are in LeadMoveChoices; a card has room for a verb).
MOVE_BUTTONS = {"handoff": "Hand off", "escalate": "Escalate", "await_human": "Await human", "resolve": "Resolve",
                "fail": "Fail", "complete": "Complete", "reopen": "Reopen", "reassign": "Reassign"}


def _buttons(moves: list[str]) -> list[tuple[str, str]]:
    return [(m, MOVE_BUTTONS.get(m, m)) for m in moves]


def _board_context(request, query: QueryDict) -> dict:
    owners_list = _owners()
    owners = {e.stage: e for e in owners_list}
    form = BoardFilterForm(query, owners=owners_list)
    data = form.cleaned_data if form.is_valid() else {}
    now = timezone.now()
    context = {"thresholds": board.stale_thresholds(), "owners": owners, "now": now}
    context["scheduled"] = board.scheduled_actions(owners=owners, now=now)
    owner_stage = None
    if data.get("owner"):  # a core Eidolon owns no stage: "-" matches no lead
        owner_stage = next((e.stage for e in owners_list if e.slug == data["owner"]), "-")
    columns = board.board_columns(
        stage=data.get("stage") or None, status=data.get("status") or None, owner_stage=owner_stage,
        source=data.get("source") or None, q=data.get("q") or "", stale_only=bool(data.get("stale")), **context,
    )
    if form.errors:  # a filter that means nothing: say so rather than show everything
        columns = [{**c, "cards": [], "count": 0, "more": 0} for c in columns]
    actor = Actor.for_user(request.user, "page")
    for column in columns:
        for lead in column["cards"]:
            # A card offers the moves that need no reason; the lead page has them all, with a reason field.
            lead.moves = _buttons([m for m in stages.allowed_moves(stage=lead.stage, status=lead.status, actor=actor)
                                   if not stages.MOVES[m].needs_reason])
    kept = {k: v for k, v in query.items() if k in BOARD_FILTERS and v}
    return {"form": form, "columns": columns, "query": urlencode(kept), "stages": PipelineStage.choices,
            "total": sum(c["count"] for c in columns)}


@require_GET
@sales_required
def board_page(request):
    """A column per stage, a card per open lead; filters and search as HTMX swaps with a shareable URL."""
    context = _board_context(request, request.GET)
    status = 400 if context["form"].errors else 200
    if request.htmx and not request.htmx.boosted:
        return render(request, "leads/_board.html", context, status=status)
    return render(request, "leads/board.html", context, status=status)


# --- Moves and notes (the stage machine, as everywhere else) -------------------------------------

def _refusal(exc) -> tuple[int, str]:
    """(HTTP status, message) of a refused change: the API's statuses, the service's own words."""
    if isinstance(exc, ValidationError):
        return 422, " ".join(exc.messages)
    if isinstance(exc, ReasonRequired):
        return 422, exc.message
    if isinstance(exc, NotAllowed):
        return 409, exc.message
    if isinstance(exc, NotFound):
        return 404, exc.message
    return 400, exc.message


@require_POST
@sales_required
def lead_move(request, lead_id):
    """One move through ``leads.services.lead_move``; from the board (HTMX) or the lead page."""
    move = request.POST.get("move", "")
    actor = Actor.for_user(request.user, "page")
    try:
        lead, _ = services.lead_move(lead_id=lead_id, move=move, actor=actor, reason=request.POST.get("reason", ""),
                                     to_stage=request.POST.get("to_stage") or None)
    except (DomainError, ValidationError) as exc:
        status, message = _refusal(exc)
        if request.POST.get("from") == "board":
            context = _board_context(request, QueryDict(request.POST.get("query", "")))
            return render(request, "leads/_board.html", {**context, "error": message, "error_lead": str(lead_id)},
                          status=status)
        return _lead_page(request, lead_id, error=message, status=status)
    notice = f"{lead.company}: {LeadMoveChoices(move).label.lower()} done; now {lead.stage}, {lead.status}."
    if request.POST.get("from") == "board":
        context = _board_context(request, QueryDict(request.POST.get("query", "")))
        return render(request, "leads/_board.html", {**context, "notice": notice})
    messages.success(request, notice)
    return redirect("leads:lead", lead_id=lead_id)


@require_POST
@sales_required
def lead_note(request, lead_id):
    try:
        services.lead_note_add(lead_id=lead_id, actor=Actor.for_user(request.user, "page"),
                               text=request.POST.get("text", ""))
    except (DomainError, ValidationError) as exc:
        status, message = _refusal(exc)
        return _lead_page(request, lead_id, error=message, status=status)
    messages.success(request, "Note added.")
    return redirect(reverse("leads:lead", kwargs={"lead_id": lead_id}) + "#timeline")


# --- The lead page ---------------------------------------------------------------------------

def _lead_page(request, lead_id, *, error: str = "", status: int = 200):
    lead = board.lead_for_page(lead_id)
    if lead is None:
        raise Http404(f"There is no lead {lead_id}.")
    now = timezone.now()
    owners = {e.stage: e for e in _owners()}
    thresholds = board.stale_thresholds()
    scheduled = board.scheduled_actions(owners=owners, now=now)
    actor = Actor.for_user(request.user, "page")
    moves = _buttons(stages.allowed_moves(stage=lead.stage, status=lead.status, actor=actor))
    context = {
        "lead": lead, "timeline": board.lead_timeline(lead=lead), "moves": moves, "error": error,
        "rot": board.rot_of(lead, thresholds=thresholds, scheduled=scheduled, owners=owners, now=now)
        if lead.is_open else None,
        "can_reassign": any(m == "reassign" for m, _ in moves),
        "stages": [s for s in PipelineStage.choices if s[0] != lead.stage],
    }
    return render(request, "leads/lead.html", context, status=status)


@require_GET
@sales_required
def lead_page(request, lead_id):
    """A lead outside the admin: header, the moves a person may make now, and its timeline."""
    return _lead_page(request, lead_id)

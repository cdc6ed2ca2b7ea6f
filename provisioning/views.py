"""The provisioning page: the plan's checklist grid, live while steps run, and its actions.

Every view is thin: reads come from the grid and the selectors, writes go through
``provisioning.services``; which steps exist, which are manual and what each previews come from the
step registry. Changes need a staff user (403 otherwise) and a POST with the CSRF token. An HTMX
request that is not boosted gets the fragment it swaps (a boosted one is a full page, as NetBox's
``htmx_partial``); a poll answered while nothing runs gets django-htmx's ``HttpResponseStopPolling`` (286).
"""

from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling

from maxportal.kernel.actors import Actor
from maxportal.kernel.errors import DomainError

from . import drift, services
from .checklist import STEPS
from .engine.transitions import STARTABLE_STATES
from .grid import checklist_grid, provisioning_in_progress
from .models import ChecklistEvent, ChecklistStep, Container, ProxmoxHost, StepRun


def htmx_partial(request) -> bool:
    """An HTMX request that swaps a fragment; a boosted one (hx-boost) wants the whole page."""
    return bool(request.htmx) and not request.htmx.boosted


def _stop_polling(response):
    """The same content as HTTP 286: HTMX stops polling."""
    return HttpResponseStopPolling(response.content, content_type=response.get("Content-Type"))


def staff_required(view):
    """Changes are for staff only: anyone else gets 403 (after logging in)."""

    @wraps(view)
    @login_required
    def wrapper(request, *args, **kwargs):
        if not request.user.is_staff:
            raise PermissionDenied("Only staff may change the provisioning checklist.")
        return view(request, *args, **kwargs)

    return wrapper


def _actor(request) -> Actor:
    return Actor.for_user(request.user, "page")


def _grid_context() -> dict:
    grid = checklist_grid()
    busy = grid.busy or (grid.containers and provisioning_in_progress(containers=grid.containers))
    hosts = ProxmoxHost.objects.filter(containers__managed=True).distinct().order_by("name")
    # What a host without a root@pam channel cannot do, from the registry (shown before anything runs).
    root_steps = [spec for spec in STEPS if spec.root_params]
    return {"grid": grid, "busy": busy, "hosts": hosts, "root_steps": root_steps}


def _grid_response(request, *, error: str = "", notice: str = "", poll: bool = False):
    context = {**_grid_context(), "error": error, "notice": notice}
    response = render(request, "provisioning/_grid.html", context)
    if poll and not context["busy"]:
        return _stop_polling(response)
    return response


@require_GET
@login_required
def grid(request):
    """The plan's grid (``?fragment=1`` or an HTMX poll: the grid alone)."""
    if htmx_partial(request):
        return _grid_response(request, poll=request.GET.get("poll") == "1")
    return render(request, "provisioning/grid.html", _grid_context())


def _after_change(request, *, error: str = "", notice: str = "", container: Container | None = None, step=None):
    """HTMX: swap in the fresh grid (and the cell panel when a cell was changed); else redirect back."""
    if htmx_partial(request):
        if step is not None and request.POST.get("from") == "panel":
            return _cell_response(request, container, step, error=error, notice=notice)
        return _grid_response(request, error=error, notice=notice)
    if error:
        messages.error(request, error)
    elif notice:
        messages.success(request, notice)
    return redirect(request.POST.get("next") or reverse("provisioning:grid"))


def _container(pk) -> Container:
    return get_object_or_404(Container.objects.select_related("host"), pk=pk, managed=True)


def _step_name(step: str) -> str:
    if step not in STEPS:
        raise Http404(f"No step {step!r}.")
    return step


@require_POST
@staff_required
def step_action(request, pk: int, step: str, action: str):
    """Tick, untick, skip, run (or retry) one step of one container."""
    container = _container(pk)
    step = _step_name(step)
    actor = _actor(request)
    label = f"{STEPS[step].label} of CT{container.vmid}"
    try:
        if action == "tick":
            services.step_tick(container=container, step=step, actor=actor, note=request.POST.get("note", ""))
            notice = f"{label} ticked."
        elif action == "untick":
            services.step_untick(container=container, step=step, actor=actor, reason=request.POST.get("reason", ""))
            notice = f"{label} unticked."
        elif action == "skip":
            services.step_skip(container=container, step=step, actor=actor, reason=request.POST.get("reason", ""))
            notice = f"{label} skipped."
        elif action == "run":
            services.step_run_start(container=container, step=step, actor=actor)
            notice = f"{label} queued."
        else:
            raise Http404(f"No action {action!r}.")
    except DomainError as exc:
        return _after_change(request, error=exc.message, container=container, step=step)
    return _after_change(request, notice=notice, container=container, step=step)


@require_POST
@staff_required
def container_provision(request, pk: int):
    container = _container(pk)
    runs = services.container_provision(container=container, actor=_actor(request))
    if runs:
        notice = f"CT{container.vmid}: queued {', '.join(STEPS[r.step.step].label for r in runs)}."
    else:
        notice = f"CT{container.vmid}: no automated step is ready (see the grid for what it waits for)."
    return _after_change(request, notice=notice)


@require_POST
@staff_required
def host_provision(request, pk: int):
    host = get_object_or_404(ProxmoxHost, pk=pk)
    runs = services.host_provision(host=host, actor=_actor(request))
    return _after_change(request, notice=f"{host.name}: queued {len(runs)} step(s) on {host.name}'s containers.")


@require_POST
@staff_required
def host_drift_check(request, pk: int):
    host = get_object_or_404(ProxmoxHost, pk=pk)
    report = drift.drift_check(host=host)
    if report.error:
        return _after_change(request, error=report.error)
    found = "; ".join(report.found) if report.found else "no drift"
    return _after_change(request, notice=f"{host.name}: checked {report.checked} container(s): {found}.")


def _cell_response(request, container: Container, step: str, *, error: str = "", notice: str = ""):
    cell = get_object_or_404(ChecklistStep.objects.select_related("actor", "container__host"),
                             container=container, step=step)
    spec = STEPS[step]
    # What the step will do, as the operator may review it before it runs (manual steps: nothing).
    script_title, script = spec.preview(container, spec) if spec.preview else ("", "")
    context = {
        "container": container,
        "cell": cell,
        "manual": spec.manual,
        "startable": cell.state in STARTABLE_STATES,
        "runs": StepRun.objects.filter(step=cell).order_by("-number")[:10],
        "events": ChecklistEvent.objects.filter(container=container, step=step).select_related("actor")[:50],
        "script_title": script_title,
        "script": script,
        "error": error,
        "notice": notice,
    }
    response = render(request, "provisioning/_cell.html", context)
    response.cell_running = cell.state == "running"
    return response


@require_GET
@login_required
def cell_detail(request, pk: int, step: str):
    """One cell: its log, its script and its history (a panel on the grid, or a page of its own)."""
    container = _container(pk)
    step = _step_name(step)
    response = _cell_response(request, container, step)
    if htmx_partial(request):
        if request.GET.get("poll") == "1" and not response.cell_running:
            return _stop_polling(response)
        return response
    return render(request, "provisioning/cell.html", {"panel": response.content.decode(), "container": container,
                                                      "step": STEPS[step].label})


@require_GET
@login_required
def container_detail(request, pk: int):
    """A container's checklist, its audit trail and its drift."""
    container = _container(pk)
    grid = checklist_grid(vmids=[container.vmid], host=container.host)
    events = ChecklistEvent.objects.filter(container=container).select_related("actor")[:200]
    drifts = container.drifts.order_by("-last_seen_at")[:50]
    return render(request, "provisioning/container.html", {
        "container": container, "grid": grid, "events": events, "drifts": drifts,
        "busy": grid.busy,
    })

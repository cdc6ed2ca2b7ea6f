"""The staff page /sapwaves/: every wave with its next fire times, last run and outcome, the queue
over the cap, the Eidolons' pauses, the portal's own jobs; run now, pause and resume (POST + CSRF).

The buttons call the same services as the admin; a refusal (no reason given, expired wave) is shown
as a message saying what to do, and nothing is changed.
"""

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from maxportal.kernel.actors import Actor
from maxportal.kernel.errors import DomainError

from ..models import Eidolon, SapWave
from . import jobs, selectors, services


@require_GET
@staff_member_required
def board(request):
    context = {"board": selectors.sapwaves_board(), "jobs": jobs.portal_jobs(),
               "eidolons": Eidolon.objects.order_by("name")}
    template = "sapwaves/_board.html" if request.htmx and not request.htmx.boosted else "sapwaves/board.html"
    return render(request, template, context)


def _do(request, call, done: str):
    try:
        result = call(Actor.for_user(request.user, "page"))
    except (DomainError, ValidationError) as exc:
        messages.error(request, getattr(exc, "message", None) or "; ".join(exc.messages))
        return redirect("sapwaves:board")
    messages.success(request, result if isinstance(result, str) else done)
    return redirect("sapwaves:board")


@require_POST
@staff_member_required
def wave_action(request, pk: int, action: str):
    wave = get_object_or_404(SapWave, pk=pk)
    reason = request.POST.get("reason", "")
    if action == "run":
        def run(actor):
            run, created = services.sapwave_run_now(wave=wave, actor=actor)
            if not created:
                return f"{wave.name} already ran for the {run.slot:%H:%M} UTC slot (run #{run.pk}): nothing sent twice."
            return f"{wave.name} fired (run #{run.pk}, slot {run.slot:%H:%M} UTC)."
        return _do(request, run, "")
    if action == "pause":
        return _do(request, lambda a: services.sapwave_pause(wave=wave, actor=a, reason=reason), f"Paused {wave.name}.")
    if action == "resume":
        return _do(request, lambda a: services.sapwave_resume(wave=wave, actor=a), f"Resumed {wave.name}.")
    messages.error(request, f"Unknown action {action!r}: use run, pause or resume.")
    return redirect("sapwaves:board")


@require_POST
@staff_member_required
def eidolon_action(request, pk: int, action: str):
    eidolon = get_object_or_404(Eidolon, pk=pk)
    if action == "pause":
        return _do(request, lambda a: services.eidolon_sapwaves_pause(eidolon=eidolon, actor=a,
                                                                      reason=request.POST.get("reason", "")),
                   f"No SapWave wakes {eidolon} until it is resumed.")
    return _do(request, lambda a: services.eidolon_sapwaves_resume(eidolon=eidolon, actor=a),
               f"SapWaves wake {eidolon} again.")


@require_POST
@staff_member_required
def bulk_action(request, action: str):
    waves = SapWave.objects.all()
    reason = request.POST.get("reason", "")
    if action == "pause":
        return _do(request, lambda a: f"Paused {services.sapwaves_pause_bulk(waves=waves, actor=a, reason=reason)} "
                                      "wave(s).", "")
    return _do(request, lambda a: f"Resumed {services.sapwaves_resume_bulk(waves=waves, actor=a)} wave(s).", "")

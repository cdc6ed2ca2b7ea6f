"""Site-wide pages: the home page and /healthz."""

from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from eidolons.selectors import eidolon_overview
from provisioning.models import ProxmoxHost
from provisioning.selectors import host_capacity

from .kernel.health import check_broker, check_database


@require_GET
@never_cache
def healthz(request):
    """200 when the database and the broker answer; 503 naming what is down."""
    problems = {name: error for name, error in (("database", check_database()), ("broker", check_broker())) if error}
    body = {
        "status": "ok" if not problems else "down",
        "database": problems.get("database", "ok"),
        "broker": problems.get("broker", "ok"),
    }
    if problems:
        body["down"] = sorted(problems)
    return JsonResponse(body, status=503 if problems else 200)


@login_required  # it shows every container's address, mailbox and the host's capacity
def home(request):
    capacities = [host_capacity(host=host) for host in ProxmoxHost.objects.all()]
    return render(request, "home.html", {"eidolons": eidolon_overview(), "capacities": capacities})

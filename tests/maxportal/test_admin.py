"""Every admin changelist, add and change page renders for a staff user within a query budget.

The registry is walked, so a model registered later is covered without touching this file.
"""

import pytest
from django.contrib import admin
from django.urls import reverse

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

# Session, user, the list, its count, the full count, filters and select_related lookups:
# a changelist that grows a query per row (N+1) blows through this with the plan's 36 agents.
CHANGELIST_QUERY_BUDGET = 15
CHANGE_PAGE_QUERY_BUDGET = 25

REGISTERED = sorted(
    (model._meta.app_label, model._meta.model_name) for model in admin.site._registry
    if model._meta.app_label in {"eidolons", "leads", "provisioning"}
)


@pytest.mark.parametrize(("app_label", "model_name"), REGISTERED)
def test_changelist_renders_within_budget(staff_client, max_plan, django_assert_max_num_queries, app_label,
                                          model_name):
    url = reverse(f"admin:{app_label}_{model_name}_changelist")
    with django_assert_max_num_queries(CHANGELIST_QUERY_BUDGET):
        response = staff_client.get(url)
    assert response.status_code == 200


@pytest.fixture
def pipeline_rows(max_plan, staff_user):
    """One of everything the pipeline writes, so every change page has a row to open."""
    from django.utils import timezone

    from eidolons.models import Eidolon
    from eidolons.services import api_token_issue
    from leads.services import lead_handoff, lead_ingest
    from maxportal.kernel.actors import Actor
    from provisioning import services as provisioning_services
    from provisioning.models import Container, Drift

    ct201 = Container.objects.get(vmid=201)
    provisioning_services.checklist_ensure_all()
    provisioning_services.step_tick(
        container=ct201, step="m365_account", actor=Actor.for_user(staff_user)
    )
    now = timezone.now()
    Drift.objects.create(host=ct201.host, vmid=999, kind="unknown", actual="stray", detected_at=now, last_seen_at=now)

    staff = Actor.for_user(staff_user)
    lead, _ = lead_ingest(actor=staff, company="Acme GmbH", email="ceo@acme.example", source="website")
    lead_handoff(lead_id=lead.pk, actor=staff, summary="qualified")
    api_token_issue(eidolon=Eidolon.objects.get(slug="mike"), name="admin-test")


@pytest.mark.parametrize(("app_label", "model_name"), REGISTERED)
def test_change_page_renders_within_budget(staff_client, pipeline_rows, django_assert_max_num_queries, app_label,
                                           model_name):
    model = next(m for m in admin.site._registry if (m._meta.app_label, m._meta.model_name) == (app_label, model_name))
    instance = model._default_manager.order_by("pk").first()
    if instance is None:
        pytest.skip(f"the loaded plan has no {model_name} rows to open")
    url = reverse(f"admin:{app_label}_{model_name}_change", args=[instance.pk])
    with django_assert_max_num_queries(CHANGE_PAGE_QUERY_BUDGET):
        response = staff_client.get(url)
    assert response.status_code == 200


@pytest.mark.parametrize(("app_label", "model_name"), REGISTERED)
def test_add_page_renders(staff_client, app_label, model_name):
    model = next(m for m in admin.site._registry if (m._meta.app_label, m._meta.model_name) == (app_label, model_name))
    if not admin.site._registry[model].has_add_permission(_request_for(staff_client)):
        pytest.skip("adding is not offered for this model")
    response = staff_client.get(reverse(f"admin:{app_label}_{model_name}_add"))
    assert response.status_code == 200


def _request_for(client):
    from django.contrib.auth import get_user_model
    from django.test import RequestFactory

    request = RequestFactory().get("/")
    request.user = get_user_model().objects.get(username="operator")
    return request


def test_host_change_page_shows_capacity(staff_client, max_plan):
    from provisioning.models import ProxmoxHost

    host = ProxmoxHost.objects.get()
    response = staff_client.get(reverse("admin:provisioning_proxmoxhost_change", args=[host.pk]))
    html = response.content.decode()
    assert "20 cores allocated on 16 threads" in html
    assert "52 of 64 GB" in html
    assert "280 of 1024 GB + unknown for CT100" in html
    assert "The plan fits on this host." in html


def test_host_changelist_shows_allocation_columns(staff_client, max_plan):
    html = staff_client.get(reverse("admin:provisioning_proxmoxhost_changelist")).content.decode()
    assert "20 / 16" in html and "52 / 64" in html and "280 + 1 unknown / 1024" in html


def test_eidolon_change_page_shows_its_four_agents_and_mailbox(staff_client, max_plan):
    from eidolons.models import Eidolon

    lilly = Eidolon.objects.get(slug="lilly")
    html = staff_client.get(reverse("admin:eidolons_eidolon_change", args=[lilly.pk])).content.decode()
    assert "lilly@meetmike.pro — Business Basic · Requested · Teams on · Outlook on" in html
    for package in ("@anthropic-ai/claude-code", "@google/gemini-cli", "@openai/codex", "@github/copilot"):
        assert package in html


def test_admin_index_counts_match_the_plan(staff_client, max_plan):
    """The done-when of the foundation: 9 Eidolons, 36 CLI agents, 8 containers, 7 mailboxes."""
    for name, count in (("eidolon", 9), ("cliagent", 36), ("container", 8), ("m365account", 7)):
        app = "provisioning" if name == "container" else "eidolons"
        response = staff_client.get(reverse(f"admin:{app}_{name}_changelist"))
        assert response.context["cl"].result_count == count, name


def test_non_staff_cannot_open_the_admin(client, db):
    client.force_login(UserFactory(username="sales"))
    response = client.get(reverse("admin:eidolons_eidolon_changelist"))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]

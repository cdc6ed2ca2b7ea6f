"""The leads admin: inlines, filters, and actions that go through the stage machine."""

import pytest
from django.urls import reverse

from eidolons.models import Signal
from leads.models import Lead, StageTransition
from tests.factories import LeadFactory


def _lead(stage="Scoping", status="in_progress", company="Acme", email="anna@acme.example"):
    return LeadFactory(company=company, email=email, stage=stage, status=status)


def _action(client, action, leads, **extra):
    return client.post(reverse("admin:leads_lead_changelist"),
                       {"action": action, "_selected_action": [str(x.pk) for x in leads], **extra}, follow=True)


def test_changelist_shows_owner_and_stays_within_a_query_budget(staff_client, max_plan, django_assert_max_num_queries):
    for i in range(40):
        _lead(company=f"C{i}", email=f"x@c{i}.example")
    with django_assert_max_num_queries(12):
        response = staff_client.get(reverse("admin:leads_lead_changelist"))
    assert response.status_code == 200 and b"Clara" in response.content


@pytest.mark.parametrize("params", [{"stage__exact": "Scoping"}, {"status__exact": "escalated"}, {"owner": "clara"},
                                    {"source__exact": "website"}])
def test_filters_by_stage_status_owner_and_source(staff_client, max_plan, params):
    match = _lead(status="escalated", company="Match")  # Scoping is Clara's stage
    Lead.objects.filter(pk=match.pk).update(source="website")
    _lead(stage="Closer", company="Other", email="o@other.example")
    response = staff_client.get(reverse("admin:leads_lead_changelist"), params)
    assert response.status_code == 200
    assert [lead.company for lead in response.context["cl"].result_list] == ["Match"], params


def test_owner_filter_selects_the_leads_of_that_eidolons_stage(staff_client, max_plan):
    _lead(company="InScoping")
    _lead(stage="Closer", company="InClosing", email="b@b.example")
    response = staff_client.get(reverse("admin:leads_lead_changelist"), {"owner": "finn"})
    assert b"InClosing" in response.content and b"InScoping" not in response.content


def test_change_page_shows_history_signals_and_artifacts_inline(staff_client, agents, lead_id, settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)
    agents["lilly"].upload(f"/leads/{lead_id}/artifacts", {"name": "notes.md", "text": "hi"})
    agents["lilly"].post(f"/leads/{lead_id}/handoff", {"summary": "qualified"})

    response = staff_client.get(reverse("admin:leads_lead_change", args=[lead_id]))

    body = response.content.decode()
    assert response.status_code == 200
    assert "History (append-only)" in body and "qualified" in body
    assert "PIPELINE_TRANSITION" in body and "notes.md" in body


def test_escalate_action_goes_through_the_stage_machine_with_the_reason(staff_client, staff_user, max_plan):
    lead = _lead()

    _action(staff_client, "escalate", [lead], reason="client asks for a discount")

    lead.refresh_from_db()
    assert lead.status == "escalated"
    transition = StageTransition.objects.get(lead=lead)
    assert transition.actor_user == staff_user and transition.summary == "client asks for a discount"
    assert transition.signal.signal_type == "ESCALATION"


def test_an_action_the_machine_refuses_changes_nothing_and_says_why(staff_client, max_plan):
    lead = _lead()

    response = _action(staff_client, "resolve", [lead])

    assert "Cannot resolve" in response.content.decode()
    lead.refresh_from_db()
    assert lead.status == "in_progress" and not StageTransition.objects.exists()


def test_an_action_without_the_needed_reason_is_refused(staff_client, max_plan):
    lead = _lead()
    response = _action(staff_client, "fail", [lead], reason="")
    assert "needs a reason" in response.content.decode()
    lead.refresh_from_db()
    assert lead.status == "in_progress"


def test_resolve_and_reassign_actions(staff_client, max_plan):
    lead = _lead(status="escalated")
    _action(staff_client, "reassign", [lead], reason="Clara is out", to_stage="Orchestra")
    lead.refresh_from_db()
    assert (lead.stage, lead.status) == ("Orchestra", "in_progress")
    assert Signal.objects.get(lead=lead).recipient.slug == "aria"

    _action(staff_client, "escalate", [lead], reason="stuck")
    _action(staff_client, "resolve", [lead])
    lead.refresh_from_db()
    assert lead.status == "in_progress"


def test_stage_and_status_are_not_editable_in_the_form(staff_client, max_plan):
    lead = _lead()
    url = reverse("admin:leads_lead_change", args=[lead.pk])
    staff_client.post(url, {"company": "Acme Renamed", "contact_name": "", "phone": "", "source": "email",
                            "next_action": "", "data": "{}", "stage": "DeliveryPM", "status": "completed",
                            "transitions-TOTAL_FORMS": 0, "transitions-INITIAL_FORMS": 0,
                            "signals-TOTAL_FORMS": 0, "signals-INITIAL_FORMS": 0,
                            "artifacts-TOTAL_FORMS": 0, "artifacts-INITIAL_FORMS": 0})
    lead.refresh_from_db()
    assert lead.company == "Acme Renamed" and (lead.stage, lead.status) == ("Scoping", "in_progress")


def test_adding_a_lead_in_the_admin_ingests_it(staff_client, max_plan):
    staff_client.post(reverse("admin:leads_lead_add"), {
        "company": "New Co", "contact_name": "Nina", "email": "nina@newco.example", "phone": "", "source": "manual",
        "next_action": "", "data": "{}",
        "transitions-TOTAL_FORMS": 0, "transitions-INITIAL_FORMS": 0, "signals-TOTAL_FORMS": 0,
        "signals-INITIAL_FORMS": 0, "artifacts-TOTAL_FORMS": 0, "artifacts-INITIAL_FORMS": 0,
    })
    lead = Lead.objects.get(company="New Co")
    assert lead.email_normalized == "nina@newco.example" and lead.company_domain == "newco.example"
    assert StageTransition.objects.get(lead=lead).move == "ingest"
    assert Signal.objects.get(lead=lead).recipient.slug == "lilly"

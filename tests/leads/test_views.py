"""The sales funnel page."""

from django.urls import reverse

from tests.factories import LeadFactory, UserFactory


def test_funnel_counts_leads_per_stage_and_status_and_lists_recent_moves(staff_client, agents, lead_id,
                                                                         django_assert_max_num_queries):
    agents["lilly"].post(f"/leads/{lead_id}/handoff", {"summary": "qualified by LILLy"})
    LeadFactory(company="Gone", email="", stage="Closer", status="failed")

    with django_assert_max_num_queries(8):
        response = staff_client.get(reverse("leads:funnel"))

    body = response.content.decode()
    assert response.status_code == 200
    rows = {r["stage"].value: r for r in response.context["rows"]}
    assert rows["FirstResponder"]["counts"][0] == 1 and rows["FirstResponder"]["open"] == 1
    assert rows["Closer"]["counts"][4] == 1 and rows["Closer"]["open"] == 0
    assert "qualified by LILLy" in body and 'href="/leads/funnel/"' in body


def test_the_htmx_refresh_renders_only_the_fragment(staff_client, max_plan):
    response = staff_client.get(reverse("leads:funnel"), headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert b"<html" not in response.content and b"Recent transitions" in response.content


def test_funnel_is_for_staff(client, max_plan):
    assert client.get(reverse("leads:funnel")).status_code == 302, "anonymous: to the login page"
    client.force_login(UserFactory(username="visitor"))
    assert client.get(reverse("leads:funnel")).status_code == 403

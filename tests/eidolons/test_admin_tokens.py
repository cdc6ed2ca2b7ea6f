"""The admin for API tokens and signals: a token is shown once, revocation works at once."""

from django.urls import reverse

from eidolons.models import ApiToken, Eidolon
from eidolons.services import api_token_authenticate, api_token_issue


def test_issuing_a_token_in_the_admin_shows_it_once_and_stores_only_its_hash(staff_client, max_plan):
    mike = Eidolon.objects.get(slug="mike")

    response = staff_client.post(reverse("admin:eidolons_apitoken_add"), {"eidolon": mike.pk, "agent": "",
                                                                          "name": "CT202 daemon"})

    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    body = response.content.decode()
    raw = body.split('id="issued-token"')[1].split(">")[1].split("<")[0]
    token = api_token_authenticate(raw)
    assert token is not None and token.eidolon == mike and token.name == "CT202 daemon"
    assert raw not in str(ApiToken.objects.filter(pk=token.pk).values()[0])
    detail = staff_client.get(reverse("admin:eidolons_apitoken_change", args=[token.pk])).content.decode()
    assert raw not in detail, "never shown again"


def test_revoke_action_stops_the_token(staff_client, max_plan):
    token, raw = api_token_issue(eidolon=Eidolon.objects.get(slug="mike"))
    staff_client.post(reverse("admin:eidolons_apitoken_changelist"),
                      {"action": "revoke", "_selected_action": [token.pk]})
    assert api_token_authenticate(raw) is None


def test_signal_changelist_loads_within_a_query_budget(staff_client, max_plan, django_assert_max_num_queries):
    from eidolons.services import signal_send

    for slug in ("mike", "clara", "aria"):
        for _ in range(10):
            signal_send(signal_type="TEST", sender="portal", recipient=Eidolon.objects.get(slug=slug), payload={})
    with django_assert_max_num_queries(10):
        response = staff_client.get(reverse("admin:eidolons_signal_changelist"))
    assert response.status_code == 200

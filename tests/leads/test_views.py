"""The sales pages through the Django client: status, permissions, query budgets, HTMX fragments, CSV."""

import csv
import io

import pytest
from django.urls import reverse

from .ledger import DAY, full_path, ledger_lead

pytestmark = pytest.mark.django_db
FUNNEL = "/leads/funnel/"


@pytest.fixture
def visitor_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("visitor", password="x-pass-12345"))
    return client


def _leads(n: int, *, offset: int = 0):
    for i in range(n):
        ledger_lead(f"Co {offset + i}", full_path(20 + i % 5))
        ledger_lead(f"Lost {offset + i}", [("ingest", "LeadGen", "in_progress", 4 * DAY, "new"),
                                           ("fail", "LeadGen", "failed", 3 * DAY, "no fit")], source="email")


def test_funnel_shows_the_figures_charts_and_definitions(staff_client, max_plan):
    _leads(2)
    response = staff_client.get(FUNNEL)
    html = response.content.decode()
    assert response.status_code == 200
    assert response.context["report"].lead_to_won == {"entered": 4, "won": 2, "rate": 0.5}
    assert html.count('<svg class="chart"') == 3
    assert "the share that entered B after A, within the range" in html
    assert 'href="/leads/funnel/stages.csv?' in html


@pytest.mark.parametrize("path", [FUNNEL, "/leads/funnel/stages.csv"])
def test_anonymous_visitors_are_sent_to_log_in(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("path", [FUNNEL, "/leads/funnel/stages.csv"])
def test_non_staff_users_get_the_403(visitor_client, path):
    assert visitor_client.get(path).status_code == 403


def test_funnel_query_count_does_not_grow_with_the_data(staff_client, max_plan, django_assert_max_num_queries):
    _leads(2)
    with django_assert_max_num_queries(8):
        assert staff_client.get(FUNNEL).status_code == 200
    _leads(10, offset=2)
    with django_assert_max_num_queries(8):
        response = staff_client.get(FUNNEL + "?source=website")
    assert response.status_code == 200 and response.context["report"].lead_to_won["won"] == 12


def test_the_htmx_filter_request_gets_only_the_fragment(staff_client, max_plan):
    response = staff_client.get(FUNNEL + "?source=email", headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert b"<html" not in response.content and b"Drop-off per stage" in response.content


def test_a_reversed_range_is_refused_saying_what_to_do(staff_client, max_plan):
    response = staff_client.get(FUNNEL + "?start=2026-05-01&end=2026-04-01")
    assert response.status_code == 400
    assert "start date is after the end date" in response.content.decode()


def test_csv_export_has_the_tables_numbers(staff_client, max_plan, django_assert_max_num_queries):
    _leads(3)
    with django_assert_max_num_queries(8):
        response = staff_client.get("/leads/funnel/stages.csv?source=website")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    by_stage = {r["stage"]: r for r in rows}
    assert by_stage["LeadGen"]["entered"] == "3" and by_stage["LeadGen"]["conversion_pct"] == "100.0"
    assert by_stage["DeliveryPM"]["conversion_pct"] == ""


def test_an_unknown_csv_table_is_a_404(staff_client, max_plan):
    assert staff_client.get("/leads/funnel/nothing.csv").status_code == 404

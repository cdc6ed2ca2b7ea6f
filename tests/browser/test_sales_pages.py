"""The sales pages in Chromium: login, the funnel's figures and CSV, board filters and moves, the
refused move's message, resolving an escalation, and the 390 px layout."""

import csv
import io
from decimal import Decimal

import pytest

from leads import services
from leads.models import Lead
from maxportal.kernel.actors import Actor
from tests.leads.ledger import DAY, HOUR, full_path, ledger_lead

from .conftest import log_in

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


@pytest.fixture
def pipeline(max_plan, sales_user):
    leads = {
        "fresh": ledger_lead("Fresh GmbH", [("ingest", "LeadGen", "in_progress", 2 * HOUR, "new")],
                             amount=Decimal(8000), currency="EUR"),
        "hot": ledger_lead("Hot Ltd", [("ingest", "LeadGen", "in_progress", 3 * DAY, "new"),
                                       ("handoff", "FirstResponder", "in_progress", 2 * DAY, "ok"),
                                       ("escalate", "FirstResponder", "escalated", DAY, "wants a discount")]),
        "won": ledger_lead("Won SA", full_path(20)),
        "lost": ledger_lead("Lost BV", [("ingest", "LeadGen", "in_progress", 5 * DAY, "new"),
                                        ("fail", "LeadGen", "failed", 4 * DAY, "no budget")]),
    }
    return leads


def test_an_anonymous_visitor_is_sent_to_log_in(browse, pipeline):
    page = browse()
    page.goto("/leads/board/")
    assert "/accounts/login/" in page.url
    assert page.locator("nav[aria-label=Main]").inner_text().split() == ["API", "docs", "Log", "in"]


def test_the_funnel_shows_the_seeded_figures_a_chart_and_a_csv(browse, pipeline):
    page = browse()
    log_in(page, "/leads/funnel/")
    assert page.get_by_test_id("entered-leadgen").inner_text() == "4"
    assert page.get_by_test_id("won").inner_text() == "1" and page.get_by_test_id("lost").inner_text() == "1"
    assert page.get_by_test_id("leadgen-to-won").inner_text() == "25.0%"
    chart = page.get_by_test_id("chart-funnel").locator("svg")
    assert chart.is_visible() and chart.locator("rect.bar").count() == 7
    href = page.get_by_test_id("csv-stages").get_attribute("href")
    answer = page.request.get(href)
    assert answer.status == 200 and answer.headers["content-type"].startswith("text/csv")
    rows = {r["stage"]: r for r in csv.DictReader(io.StringIO(answer.text()))}
    assert rows["LeadGen"]["entered"] == "4" and rows["FirstResponder"]["entered"] == "2"


def test_the_funnel_filter_updates_the_page_and_the_url(browse, pipeline):
    page = browse()
    log_in(page, "/leads/funnel/")
    page.select_option("#id_source", "email")
    page.wait_for_function("location.search.includes('source=email')")
    page.wait_for_function("document.querySelector('[data-testid=entered-leadgen]').innerText === '0'")


def test_filter_the_board_and_move_a_lead(browse, pipeline):
    page = browse()
    log_in(page, "/leads/board/")
    assert page.get_by_test_id("card").count() == 2
    page.fill("#id_q", "fresh")
    page.wait_for_function("location.search.includes('q=fresh')")
    page.wait_for_function("document.querySelectorAll('[data-testid=card]').length === 1")
    card = page.locator("[data-testid=card]", has_text="Fresh GmbH")
    card.get_by_role("button", name="Hand off").click()
    page.get_by_test_id("move-notice").wait_for()
    assert "Fresh GmbH: hand off to the next stage done" in page.get_by_test_id("move-notice").inner_text()
    assert page.locator("[data-stage=FirstResponder] [data-testid=card]", has_text="Fresh GmbH").count() == 1
    assert Lead.objects.get(pk=pipeline["fresh"].pk).stage == "FirstResponder"
    page.goto(page.url)  # the shared URL gives the same board
    assert page.locator("[data-testid=card]").count() == 1


def test_a_refused_move_shows_the_409_message(browse, pipeline, sales_user):
    page = browse()
    log_in(page, "/leads/board/")
    card = page.locator("[data-testid=card]", has_text="Fresh GmbH")
    card.get_by_role("button", name="Hand off").wait_for()
    # Meanwhile someone escalates the lead: the open page still offers the handoff.
    services.lead_move(lead_id=pipeline["fresh"].pk, move="escalate", actor=Actor.for_user(sales_user),
                       reason="the client called")
    card.get_by_role("button", name="Hand off").click()
    error = page.get_by_test_id("move-error")
    error.wait_for()
    assert "Cannot handoff: the lead is in LeadGen with status escalated" in error.inner_text()
    assert Lead.objects.get(pk=pipeline["fresh"].pk).stage == "LeadGen"


def test_resolving_an_escalation_takes_the_lead_out_of_the_escalated_list(browse, pipeline):
    page = browse()
    log_in(page, "/leads/board/?status=escalated")
    page.locator("[data-testid=card] a.title", has_text="Hot Ltd").click()
    page.wait_for_url(f"**/leads/{pipeline['hot'].pk}/")
    assert "wants a discount" in page.get_by_test_id("timeline").inner_text()
    page.get_by_test_id("moves").get_by_role("button", name="Resolve").click()
    page.wait_for_url(f"**/leads/{pipeline['hot'].pk}/")
    assert page.get_by_test_id("lead-status").inner_text() == "In progress"
    page.goto("/leads/board/?status=escalated")
    assert page.locator("[data-testid=card]").count() == 0


def test_at_390_px_the_navigation_collapses_and_nothing_scrolls_sideways(browse, pipeline):
    page = browse(width=390, height=844)
    log_in(page, "/leads/funnel/")
    board_link = page.locator("nav[aria-label=Main] a", has_text="Board")
    assert not board_link.is_visible(), "the links hide behind Menu"
    page.get_by_test_id("nav-toggle").click()
    assert board_link.is_visible()
    for path in ("/leads/funnel/", "/leads/board/", f"/leads/{pipeline['hot'].pk}/", "/"):
        page.goto(path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{path} is {width} px wide at a 390 px viewport"
    page.goto("/leads/funnel/")
    wrap = page.locator(".table-wrap").first
    assert wrap.evaluate("el => getComputedStyle(el).overflowX") == "auto", "wide tables scroll in their box"

"""Funnel analytics from the ledger: each figure checked against a hand-built history."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from leads.analytics import CSV_TABLES, funnel_report, percentile
from leads.models import StageSetting

from .ledger import DAY, HOUR, full_path, ledger_lead

pytestmark = pytest.mark.django_db


@pytest.fixture
def history(max_plan):
    """Five leads (see each comment); the range is the last 90 days."""
    # A: qualified and scoped, in Scoping now, worth 5000 EUR.
    ledger_lead("A", [("ingest", "LeadGen", "in_progress", 10 * DAY, "new"),
                      ("handoff", "FirstResponder", "in_progress", 9 * DAY, "qualified"),
                      ("handoff", "Scoping", "in_progress", 7 * DAY, "call done")],
                amount=Decimal(5000), currency="EUR")
    # B: failed at LeadGen after two days.
    ledger_lead("B", [("ingest", "LeadGen", "in_progress", 10 * DAY, "new"),
                      ("fail", "LeadGen", "failed", 8 * DAY, "no budget")], source="email")
    # C: handed on after an hour, escalated by Mike a day later and not resolved.
    ledger_lead("C", [("ingest", "LeadGen", "in_progress", 6 * DAY, "new"),
                      ("handoff", "FirstResponder", "in_progress", 6 * DAY - HOUR, "ok"),
                      ("escalate", "FirstResponder", "escalated", 5 * DAY - HOUR, "asks for a discount")])
    # D: ingested long before the range, reached FirstResponder inside it, still there.
    ledger_lead("D", [("ingest", "LeadGen", "in_progress", 200 * DAY, "old"),
                      ("handoff", "FirstResponder", "in_progress", 5 * DAY, "woke up")])
    # E: the whole way, one stage a day, completed 23 days ago.
    ledger_lead("E", full_path(30), amount=Decimal(10000), currency="EUR")


def _report(**filters):
    today = timezone.now().date()
    return funnel_report(start=today - timedelta(days=89), end=today, **filters)


def _stage(report, name):
    return next(s for s in report.stages if s["stage"] == name)


def test_entries_and_conversions_come_from_the_ledger(history):
    report = _report()
    lead_gen, first, scoping = (_stage(report, s) for s in ("LeadGen", "FirstResponder", "Scoping"))
    assert lead_gen["entered"] == 4, "D entered LeadGen before the range"
    assert (lead_gen["reached_next"], lead_gen["conversion"]) == (3, 0.75)
    assert first["entered"] == 4 and (first["reached_next"], first["conversion"]) == (2, 0.5)
    assert scoping["entered"] == 2
    assert report.lead_to_won == {"entered": 4, "won": 1, "rate": 0.25}


def test_drop_off_is_split_by_what_happened_with_the_reasons(history):
    report = _report()
    assert _stage(report, "LeadGen")["dropoff"] == {"failed": 1, "escalated": 0, "open": 0, "elsewhere": 0}
    assert _stage(report, "LeadGen")["reasons"] == [("no budget", 1)]
    assert _stage(report, "FirstResponder")["dropoff"] == {"failed": 0, "escalated": 1, "open": 1, "elsewhere": 0}


def test_time_in_stage_median_and_p90_over_ended_spells(history):
    lead_gen = _stage(_report(), "LeadGen")
    # A 1 d, B 2 d (failing ends it), C 1 h, E 1 d.
    assert lead_gen["spells"] == 4 and lead_gen["still_in"] == 0
    assert lead_gen["median"] == pytest.approx(86400, abs=1)
    assert lead_gen["p90"] == pytest.approx(86400 + 0.7 * 86400, abs=1)
    assert _stage(_report(), "FirstResponder")["still_in"] == 2, "C (escalated) and D are still there"


def test_time_in_status_counts_the_escalation_still_running(history):
    escalated = next(s for s in _report().status_times if s["status"] == "escalated")
    assert (escalated["spells"], escalated["still_in"]) == (0, 1)


def test_won_lost_and_per_eidolon_throughput_and_escalation_rate(history):
    report = _report()
    assert report.outcomes["won"] == 1 and report.outcomes["lost"] == 1 and report.outcomes["win_rate"] == 0.5
    per = {e["eidolon"]: e for e in report.eidolons}
    # LILLy handed on A, C, E and D (D entered LeadGen before the range but left it inside).
    assert (per["LILLy"]["entered"], per["LILLy"]["moved_on"], per["LILLy"]["escalated"]) == (4, 4, 0)
    assert (per["Mike"]["moved_on"], per["Mike"]["escalated"], per["Mike"]["escalation_rate"]) == (2, 1, 0.25)


def test_weighted_pipeline_counts_open_leads_by_the_stage_probability(history):
    StageSetting.objects.filter(stage="Scoping").update(win_probability=20)
    report = _report()
    assert report.pipeline_totals == [{"currency": "EUR", "leads": 1, "value": Decimal(5000),
                                       "weighted": Decimal("1000.00")}], "E is completed: not in the pipeline"


def test_source_filter_keeps_only_that_source(history):
    report = _report(source="email")
    assert _stage(report, "LeadGen")["entered"] == 1 and report.outcomes["lost"] == 1


def test_owner_filter_keeps_the_leads_now_in_that_eidolons_stage(history):
    report = _report(owner="mike")
    assert _stage(report, "FirstResponder")["entered"] == 2, "C and D are with Mike now"


def test_a_range_before_the_moves_sees_nothing(history):
    today = timezone.now().date()
    report = funnel_report(start=today - timedelta(days=400), end=today - timedelta(days=300))
    assert all(s["entered"] == 0 for s in report.stages) and report.lead_to_won["rate"] is None


def test_weekly_cohorts_cover_every_week_of_the_range(history):
    weekly = _report().weekly
    assert 13 <= len(weekly) <= 14
    assert sum(w["entered"] for w in weekly) == 4 and sum(w["won"] for w in weekly) == 1


def test_every_csv_table_has_a_row_shape_matching_its_header(history):
    report = _report()
    for name, (header, rows_of) in CSV_TABLES.items():
        rows = rows_of(report)
        assert rows, name
        assert {len(r) for r in rows} == {len(header)}, name


def test_percentile_interpolates_between_ranks():
    assert percentile([], 0.5) is None
    assert percentile([1, 2, 3, 4], 0.5) == 2.5
    assert percentile([10], 0.9) == 10

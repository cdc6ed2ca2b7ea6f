"""Funnel analytics computed from the transition ledger (``StageTransition``), never from counters.

Every figure is derived from the moves recorded in the ledger, so it cannot drift from what
happened. Definitions (the funnel page prints them, ``DEFINITIONS``):

- a lead *enters* a stage when a transition puts it there from another stage (or the ingest);
- *conversion* from stage A to B: of the leads that entered A within the range, the share that
  entered B after A, within the range; LeadGen -> completed likewise with a completion;
- *drop-off* at A: leads that entered A in the range and did not reach the next stage, by outcome
  (failed in A, escalated and not resolved, still in A, moved elsewhere by a reassignment);
- *time in stage*: from entering a stage to leaving it or being closed (completed/failed), for
  entries within the range that have ended; entries still running are counted as "still in";
- *time in status*: the same for the in-progress, awaiting-human and escalated spells;
- *won* / *lost*: leads completed / failed within the range; *win rate* won / (won + lost);
- per Eidolon (the owner of a stage): leads that entered its stage, leads it moved on (handoff or
  complete), escalations from its stage, escalation rate = escalated leads / entered leads;
- *weighted pipeline*: the open leads now (not the range), amount x the stage's win probability
  (``StageSetting``), per currency.

Cost: four queries whatever the data (the owners, the stage settings, the ledger rows of the
leads that moved in the range, the open pipeline's sums); the ledger rows are walked once in Python.
"""

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from functools import cached_property

from django.db.models import Count, Sum

from eidolons.choices import PIPELINE_ORDER, next_stage
from eidolons.models import Eidolon

from .choices import LEAD_CLOSED_STATUSES, LEAD_OPEN_STATUSES, LeadMoveChoices, LeadStatusChoices
from .models import Lead, StageSetting, StageTransition

DEFINITIONS = {
    "entered": "A lead enters a stage when a move puts it there from another stage (or it is ingested).",
    "conversion": "Conversion A to B: of the leads that entered A within the range, the share that entered B "
                  "after A, within the range. LeadGen to completed: the share of leads that entered LeadGen "
                  "in the range and were completed in the range.",
    "dropoff": "Drop-off at A: leads that entered A in the range and did not reach the next stage, by what "
               "happened instead (failed there, escalated and not resolved, still there, reassigned elsewhere).",
    "time": "Time in stage runs from entering a stage to leaving it or being closed, for entries within the "
            "range that have ended (running ones are counted as still in). Time in status likewise.",
    "won": "Won: leads completed within the range; lost: leads failed within the range; win rate: won / "
           "(won + lost).",
    "eidolons": "Per Eidolon (the owner of a stage): leads that entered its stage in the range, leads it moved on "
                "(handoff or complete), escalations from its stage and the share of entered leads escalated.",
    "pipeline": "Weighted pipeline: the open leads now (not limited to the range), amount times the stage's win "
                "probability (set per stage in the admin), per currency.",
}

# Time-in-stage histogram buckets: (label, upper bound in seconds; None = no bound).
BUCKETS = (
    ("< 1 h", 3600), ("1-6 h", 6 * 3600), ("6-24 h", 86400), ("1-3 d", 3 * 86400), ("3-7 d", 7 * 86400),
    ("7-14 d", 14 * 86400), ("14-30 d", 30 * 86400), ("> 30 d", None),
)
TIMED_STATUSES = (LeadStatusChoices.IN_PROGRESS, LeadStatusChoices.AWAITING_HUMAN, LeadStatusChoices.ESCALATED)
STAGES = [s.value for s in PIPELINE_ORDER]


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0..1) by linear interpolation between the closest ranks; None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def rate(part: int, whole: int) -> float | None:
    return None if not whole else part / whole


@dataclass(frozen=True)
class Range:
    """[start, end] in whole UTC days, both inclusive (the form's dates)."""

    start: date
    end: date

    @cached_property
    def since(self) -> datetime:
        return datetime.combine(self.start, time.min, tzinfo=UTC)

    @cached_property
    def until(self) -> datetime:
        return datetime.combine(self.end + timedelta(days=1), time.min, tzinfo=UTC)

    def __contains__(self, moment: datetime) -> bool:
        # Called for every ledger row: the bounds are computed once (cached above).
        return self.since <= moment < self.until

    @property
    def weeks(self) -> float:
        return max(1.0, ((self.end - self.start).days + 1) / 7)


@dataclass
class Report:
    range: Range
    stages: list[dict] = field(default_factory=list)
    lead_to_won: dict = field(default_factory=dict)
    outcomes: dict = field(default_factory=dict)
    status_times: list[dict] = field(default_factory=list)
    eidolons: list[dict] = field(default_factory=list)
    weekly: list[dict] = field(default_factory=list)
    distribution: list[dict] = field(default_factory=list)
    pipeline: list[dict] = field(default_factory=list)
    pipeline_totals: list[dict] = field(default_factory=list)


class _LeadWalk:
    """One lead's ledger rows, walked once: its entries, stage spells and status spells."""

    def __init__(self, rows, rng: Range):
        self.entries: dict[str, datetime] = {}  # stage -> first entry within the range
        self.completed_at = self.failed_at = None
        self.stage_spells: list[tuple[str, datetime, datetime | None]] = []
        self.status_spells: list[tuple[str, datetime, datetime | None]] = []
        self.failed_in: dict[str, list[str]] = defaultdict(list)  # stage -> fail reasons in range
        self.escalated_in: set[str] = set()
        self.moved_on_from: set[str] = set()
        stage_since = status_since = None
        stage = status = None
        for move, from_stage, to_stage, to_status, summary, at in rows:
            entered = move == LeadMoveChoices.INGEST or from_stage != to_stage
            if stage is not None and (entered or (to_status in LEAD_CLOSED_STATUSES and status not in
                                                  LEAD_CLOSED_STATUSES)):
                if stage_since is not None:
                    self.stage_spells.append((stage, stage_since, at))
                stage_since = None
            if status is not None and to_status != status and status_since is not None:
                self.status_spells.append((status, status_since, at))
                status_since = None
            if entered and to_status not in LEAD_CLOSED_STATUSES:
                stage_since = at if at in rng else None
                if at in rng and to_stage not in self.entries:
                    self.entries[to_stage] = at
            if to_status != status:
                status_since = at if (at in rng and to_status in TIMED_STATUSES) else None
            if at in rng:
                if move == LeadMoveChoices.FAIL:
                    self.failed_at = at
                    self.failed_in[from_stage].append(summary)
                elif move == LeadMoveChoices.COMPLETE:
                    self.completed_at = at
                if move == LeadMoveChoices.ESCALATE:
                    self.escalated_in.add(from_stage)
                if move in (LeadMoveChoices.HANDOFF, LeadMoveChoices.COMPLETE):
                    self.moved_on_from.add(from_stage)
            stage, status = to_stage, to_status
        if stage_since is not None:
            self.stage_spells.append((stage, stage_since, None))
        if status_since is not None:
            self.status_spells.append((status, status_since, None))
        self.last_stage, self.last_status = stage, status


def _ledger_rows(rng: Range, *, source: str | None, owner_stage: str | None):
    """The ledger rows (from the range's start on) of the leads that moved within the range: ONE query."""
    moved = StageTransition.objects.filter(created_at__gte=rng.since, created_at__lt=rng.until)
    if source:
        moved = moved.filter(lead__source=source)
    if owner_stage:
        moved = moved.filter(lead__stage=owner_stage)
    return (
        StageTransition.objects.filter(lead_id__in=moved.values("lead_id"), created_at__gte=rng.since)
        .order_by("lead_id", "created_at", "id")
        .values_list("lead_id", "move", "from_stage", "to_stage", "to_status", "summary", "created_at")
    )


def _walks(rng: Range, *, source, owner_stage) -> list[_LeadWalk]:
    walks, current, rows = [], None, []
    for lead_id, *row in _ledger_rows(rng, source=source, owner_stage=owner_stage):
        if lead_id != current and rows:
            walks.append(_LeadWalk(rows, rng))
            rows = []
        current = lead_id
        rows.append(row)
    if rows:
        walks.append(_LeadWalk(rows, rng))
    return walks


def _bucket(seconds: float) -> int:
    for index, (_, bound) in enumerate(BUCKETS):
        if bound is None or seconds < bound:
            return index
    return len(BUCKETS) - 1


def _dropoff_kind(walk: _LeadWalk, stage: str) -> str:
    """What happened instead of reaching the next stage (each dropped lead counts once)."""
    if stage in walk.failed_in:
        return "failed"
    if walk.last_stage == stage and walk.last_status == LeadStatusChoices.ESCALATED:
        return "escalated"
    if walk.last_stage == stage and walk.last_status in LEAD_OPEN_STATUSES:
        return "open"
    return "elsewhere"


def _stage_rows(walks, owners) -> tuple[list[dict], list[dict]]:
    rows, distribution = [], []
    for stage in STAGES:
        nxt = next_stage(stage)
        entered = [w for w in walks if stage in w.entries]
        reached = [w for w in entered if nxt and nxt.value in w.entries and w.entries[nxt.value] >= w.entries[stage]]
        ended = [(end - begin).total_seconds() for w in entered for s, begin, end in w.stage_spells
                 if s == stage and end is not None]
        still_in = sum(1 for w in entered for s, _, end in w.stage_spells if s == stage and end is None)
        reached_set = set(reached)
        dropped = [w for w in entered if w not in reached_set] if nxt else []
        reasons = Counter(text.strip()[:120] or "(no reason given)"
                          for w in walks for text in w.failed_in.get(stage, ()))
        dropoff = Counter(_dropoff_kind(w, stage) for w in dropped)
        dropoff = {kind: dropoff.get(kind, 0) for kind in ("failed", "escalated", "open", "elsewhere")}
        histogram = [0] * len(BUCKETS)
        for seconds in ended:
            histogram[_bucket(seconds)] += 1
        owner = owners.get(stage)
        rows.append({
            "stage": stage, "owner": owner.name if owner else "", "entered": len(entered),
            "next": nxt.value if nxt else "", "reached_next": len(reached) if nxt else None,
            "conversion": rate(len(reached), len(entered)) if nxt else None,
            "dropped": len(dropped), "dropoff": dropoff, "reasons": reasons.most_common(5),
            "median": percentile(ended, .5), "p90": percentile(ended, .9), "spells": len(ended), "still_in": still_in,
        })
        distribution.append({"stage": stage, "counts": histogram, "total": len(ended)})
    return rows, distribution


def _weekly(walks, rng: Range) -> list[dict]:
    """Cohorts by the ISO week (Monday) a lead entered LeadGen: how many advanced, how many were won."""
    first, second = STAGES[0], STAGES[1]
    weeks: dict[date, dict] = {}
    monday = rng.start - timedelta(days=rng.start.weekday())
    while monday <= rng.end:
        weeks[monday] = {"week": monday, "entered": 0, "advanced": 0, "won": 0}
        monday += timedelta(days=7)
    for w in walks:
        at = w.entries.get(first)
        if at is None:
            continue
        day = at.date()
        row = weeks[day - timedelta(days=day.weekday())]
        row["entered"] += 1
        row["advanced"] += second in w.entries
        row["won"] += w.completed_at is not None
    for row in weeks.values():
        row["advanced_rate"] = rate(row["advanced"], row["entered"])
        row["won_rate"] = rate(row["won"], row["entered"])
    return list(weeks.values())


def _pipeline(*, source, owner_stage) -> tuple[list[dict], list[dict]]:
    probability = dict(StageSetting.objects.values_list("stage", "win_probability"))
    open_leads = Lead.objects.filter(status__in=LEAD_OPEN_STATUSES)
    if source:
        open_leads = open_leads.filter(source=source)
    if owner_stage:
        open_leads = open_leads.filter(stage=owner_stage)
    sums = open_leads.values("stage", "currency").annotate(n=Count("id"), value=Sum("amount")).order_by()
    rows, totals = [], defaultdict(lambda: {"value": Decimal(0), "weighted": Decimal(0), "leads": 0})
    for row in sums:
        if not row["currency"]:
            continue
        pct = probability.get(row["stage"], 0)
        weighted = (row["value"] or Decimal(0)) * pct / 100
        rows.append({"stage": row["stage"], "currency": row["currency"], "leads": row["n"], "value": row["value"],
                     "probability": pct, "weighted": weighted.quantize(Decimal("0.01"))})
        total = totals[row["currency"]]
        total["value"] += row["value"] or 0
        total["weighted"] += weighted
        total["leads"] += row["n"]
    rows.sort(key=lambda r: (STAGES.index(r["stage"]), r["currency"]))
    total_rows = [{"currency": c, "leads": t["leads"], "value": t["value"], "weighted": t["weighted"].quantize(
        Decimal("0.01"))} for c, t in sorted(totals.items())]
    return rows, total_rows


def funnel_report(*, start: date, end: date, source: str | None = None, owner: str | None = None) -> Report:
    """The funnel for leads that moved between ``start`` and ``end`` (UTC days, inclusive)."""
    rng = Range(start, end)
    eidolons = list(Eidolon.objects.exclude(stage__isnull=True).exclude(stage=""))
    owners = {e.stage: e for e in eidolons}
    owner_stage = next((e.stage for e in eidolons if e.slug == owner), None) if owner else None
    if owner and owner_stage is None:
        owner_stage = "-"  # an Eidolon owning no stage: no lead is ever in its hands
    walks = _walks(rng, source=source, owner_stage=owner_stage)
    report = Report(range=rng)
    report.stages, report.distribution = _stage_rows(walks, owners)
    entered_first = report.stages[0]["entered"]
    won = sum(1 for w in walks if w.completed_at)
    lost = sum(1 for w in walks if w.failed_at)
    cohort_won = sum(1 for w in walks if STAGES[0] in w.entries and w.completed_at)
    report.lead_to_won = {"entered": entered_first, "won": cohort_won, "rate": rate(cohort_won, entered_first)}
    report.outcomes = {"won": won, "lost": lost, "win_rate": rate(won, won + lost),
                       "open_escalated": sum(1 for w in walks if w.last_status == LeadStatusChoices.ESCALATED)}
    for status in TIMED_STATUSES:
        ended = [(end - begin).total_seconds() for w in walks for s, begin, end in w.status_spells
                 if s == status and end is not None]
        running = sum(1 for w in walks for s, _, end in w.status_spells if s == status and end is None)
        report.status_times.append({"status": status.value, "label": status.label, "spells": len(ended),
                                    "median": percentile(ended, .5), "p90": percentile(ended, .9), "still_in": running})
    for row in report.stages:
        owner_row = owners.get(row["stage"])
        if owner_row is None:
            continue
        moved_on = sum(1 for w in walks if row["stage"] in w.moved_on_from)
        escalated = sum(1 for w in walks if row["stage"] in w.escalated_in)
        report.eidolons.append({
            "eidolon": owner_row.name, "slug": owner_row.slug, "stage": row["stage"], "entered": row["entered"],
            "moved_on": moved_on, "per_week": round(moved_on / rng.weeks, 1), "escalated": escalated,
            "escalation_rate": rate(escalated, row["entered"]),
        })
    report.weekly = _weekly(walks, rng)
    report.pipeline, report.pipeline_totals = _pipeline(source=source, owner_stage=owner_stage)
    return report


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.1f}"


def _secs(value: float | None) -> str:
    return "" if value is None else f"{value:.0f}"


# The CSV exports: name -> (header, function(report) -> rows). The page's tables show the same figures.
CSV_TABLES = {
    "stages": (
        ["stage", "owner", "entered", "next_stage", "reached_next", "conversion_pct", "dropped", "dropped_failed",
         "dropped_escalated", "dropped_still_in_stage", "dropped_elsewhere", "median_seconds", "p90_seconds",
         "ended_spells", "still_in"],
        lambda r: [[s["stage"], s["owner"], s["entered"], s["next"], "" if s["reached_next"] is None else
                    s["reached_next"], _pct(s["conversion"]), s["dropped"], s["dropoff"]["failed"],
                    s["dropoff"]["escalated"], s["dropoff"]["open"], s["dropoff"]["elsewhere"], _secs(s["median"]),
                    _secs(s["p90"]), s["spells"], s["still_in"]] for s in r.stages],
    ),
    "weekly": (
        ["week_starting", "entered_leadgen", "advanced", "advanced_pct", "won", "won_pct"],
        lambda r: [[w["week"].isoformat(), w["entered"], w["advanced"], _pct(w["advanced_rate"]), w["won"],
                    _pct(w["won_rate"])] for w in r.weekly],
    ),
    "time-in-stage": (
        ["stage", *[label for label, _ in BUCKETS], "ended_spells"],
        lambda r: [[d["stage"], *d["counts"], d["total"]] for d in r.distribution],
    ),
    "time-in-status": (
        ["status", "ended_spells", "median_seconds", "p90_seconds", "still_in"],
        lambda r: [[s["status"], s["spells"], _secs(s["median"]), _secs(s["p90"]), s["still_in"]]
                   for s in r.status_times],
    ),
    "eidolons": (
        ["eidolon", "stage", "entered", "moved_on", "moved_on_per_week", "escalated", "escalation_rate_pct"],
        lambda r: [[e["eidolon"], e["stage"], e["entered"], e["moved_on"], e["per_week"], e["escalated"],
                    _pct(e["escalation_rate"])] for e in r.eidolons],
    ),
    "pipeline": (
        ["stage", "currency", "open_leads", "value", "win_probability_pct", "weighted_value"],
        lambda r: [[p["stage"], p["currency"], p["leads"], p["value"], p["probability"], p["weighted"]]
                   for p in r.pipeline],
    ),
}

"""Demo leads for a fresh ``make run``: a pipeline with four months of history to look at.

Until the simulated agents (SapWaves) move real leads, the sales pages would be empty on a new
machine. ``demo_leads_seed`` writes leads and their ledger rows with times spread over the past
months, so the funnel, the board and the lead pages have something to show. It is demo data and
says so everywhere it appears: every company name starts with "Demo", ``data["demo"]`` is true,
every transition's summary starts with "[demo]", and the actor is the user ``demo-seed`` (not an
Eidolon: no Eidolon made these moves). No signal is written, so no Eidolon's inbox gets demo work.
It runs only on an empty pipeline (a second run does nothing).
"""

import random
from datetime import timedelta
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from eidolons.choices import PIPELINE_ORDER

from .choices import LeadMoveChoices, LeadSourceChoices, LeadStatusChoices
from .models import Lead, StageTransition

DEMO_USER = "demo-seed"
COMPANIES = ("Alpen", "Borealis", "Cobalt", "Delta", "Ember", "Fjord", "Granit", "Helix", "Iris", "Juniper",
             "Kestrel", "Lumen", "Meridian", "Nimbus", "Orbit", "Pioneer", "Quarz", "Rhein", "Solace", "Tundra")
SUFFIXES = ("GmbH", "AG", "Ltd", "SA", "BV", "KG", "Oy", "AB")
FAIL_REASONS = ("no budget this year", "chose another vendor", "no answer after three follow-ups",
                "scope too small", "timeline does not fit")
ESCALATE_REASONS = ("asks for a discount beyond the guardrail", "legal questions about the contract",
                    "wants a call with a human")


def _step_hours(rng: random.Random, stage_index: int) -> float:
    base = (6, 30, 70, 90, 110, 80, 200)[stage_index]
    return rng.uniform(0.3, 1.8) * base


@transaction.atomic
def demo_leads_seed(*, count: int = 160, days: int = 120, seed: int = 42) -> int:
    """Create ``count`` demo leads with histories over the past ``days`` days; 0 if any lead exists."""
    if Lead.objects.exists():
        return 0
    rng = random.Random(seed)  # noqa: S311 - demo data, reproducible on purpose
    now = timezone.now()
    user, _ = get_user_model().objects.get_or_create(username=DEMO_USER, defaults={"is_active": False})
    stages = [s.value for s in PIPELINE_ORDER]
    sources = [s.value for s in LeadSourceChoices]
    leads, histories = [], []
    for i in range(count):
        born = now - timedelta(days=rng.uniform(0, days))
        at, stage_index, status = born, 0, LeadStatusChoices.IN_PROGRESS
        rows = [(LeadMoveChoices.INGEST, "", stages[0], "", status, born, "[demo] new lead")]
        while True:
            at = at + timedelta(hours=_step_hours(rng, stage_index))
            if at >= now:
                break
            roll = rng.random()
            stage = stages[stage_index]
            if roll < 0.12:
                rows.append((LeadMoveChoices.FAIL, stage, stage, status, LeadStatusChoices.FAILED, at,
                             f"[demo] {rng.choice(FAIL_REASONS)}"))
                status = LeadStatusChoices.FAILED
                break
            if roll < 0.17 and status == LeadStatusChoices.IN_PROGRESS:
                rows.append((LeadMoveChoices.ESCALATE, stage, stage, status, LeadStatusChoices.ESCALATED, at,
                             f"[demo] {rng.choice(ESCALATE_REASONS)}"))
                status = LeadStatusChoices.ESCALATED
                if rng.random() < 0.5:
                    break  # left escalated: the board shows it
                at = at + timedelta(hours=rng.uniform(1, 30))
                if at >= now:
                    break
                rows.append((LeadMoveChoices.RESOLVE, stage, stage, status, LeadStatusChoices.IN_PROGRESS, at,
                             "[demo] resolved by a person"))
                status = LeadStatusChoices.IN_PROGRESS
                continue
            if stage_index == len(stages) - 1:
                rows.append((LeadMoveChoices.COMPLETE, stage, stage, status, LeadStatusChoices.COMPLETED, at,
                             "[demo] delivered"))
                status = LeadStatusChoices.COMPLETED
                break
            stage_index += 1
            rows.append((LeadMoveChoices.HANDOFF, stage, stages[stage_index], status, status, at,
                         f"[demo] handed to {stages[stage_index]}"))
        name = f"Demo {rng.choice(COMPANIES)} {rng.choice(SUFFIXES)} {i + 1}"
        amount = Decimal(rng.randrange(20, 400) * 250) if rng.random() < 0.8 else None
        entered = max(r[5] for r in rows if r[1] != r[2])
        leads.append(Lead(
            company=name, contact_name=f"Contact {i + 1}", email=f"contact{i + 1}@demo-{i + 1}.example",
            email_normalized=f"contact{i + 1}@demo-{i + 1}.example", company_domain=f"demo-{i + 1}.example",
            source=rng.choice(sources), stage=rows[-1][2], status=status, data={"demo": True},
            stage_entered_at=entered, amount=amount, currency="EUR" if amount is not None else "",
            next_action="[demo] nothing: this lead is demo data",
        ))
        histories.append((born, rows))
    Lead.objects.bulk_create(leads)
    transitions, born_at = [], []
    for lead, (born, rows) in zip(leads, histories, strict=True):
        born_at.append(born)
        for move, from_stage, to_stage, from_status, to_status, at, summary in rows:
            transitions.append((at, StageTransition(
                lead=lead, move=move, from_stage=from_stage, to_stage=to_stage, from_status=from_status,
                to_status=to_status, actor_user=user, summary=summary,
            )))
    StageTransition.objects.bulk_create([t for _, t in transitions], batch_size=500)
    # auto_now_add stamped everything "now": put the chosen times back.
    for at, row in transitions:
        row.created_at = at
    StageTransition.objects.bulk_update([t for _, t in transitions], ["created_at"], batch_size=500)
    for lead, born in zip(leads, born_at, strict=True):
        lead.created_at = born
    Lead.objects.bulk_update(leads, ["created_at"], batch_size=500)
    return len(leads)

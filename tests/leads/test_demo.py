"""Demo leads: a pipeline with history, marked as demo, no signals, only into an empty pipeline."""

import pytest
from django.core.management import call_command

from eidolons.models import Signal
from leads.models import Lead, StageTransition

pytestmark = pytest.mark.django_db


def test_demo_leads_have_histories_marked_as_demo_and_send_no_signal(max_plan, capsys):
    call_command("seed_demo_leads", "--count", "40")
    assert "Created 40 demo leads" in capsys.readouterr().out
    assert Lead.objects.count() == 40 and not Lead.objects.exclude(company__startswith="Demo ").exists()
    assert not StageTransition.objects.exclude(summary__startswith="[demo]").exists()
    assert {t.actor_user.username for t in StageTransition.objects.select_related("actor_user")} == {"demo-seed"}
    assert Signal.objects.count() == 0, "no Eidolon's inbox gets demo work"
    assert Lead.objects.filter(status="in_progress").exclude(stage="LeadGen").exists(), "the pipeline has moved"
    oldest = StageTransition.objects.order_by("created_at").first().created_at
    newest = StageTransition.objects.order_by("-created_at").first().created_at
    assert (newest - oldest).days > 30, "the history spans months"


def test_a_second_run_creates_nothing(max_plan, capsys):
    call_command("seed_demo_leads", "--count", "5")
    call_command("seed_demo_leads", "--count", "5")
    assert Lead.objects.count() == 5
    assert "no demo leads created" in capsys.readouterr().out

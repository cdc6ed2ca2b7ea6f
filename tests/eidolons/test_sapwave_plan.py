"""The master plan's SapWave Schedule, loaded idempotently."""

from datetime import UTC, datetime

import pytest
from django.utils import timezone

from eidolons.models import SapWave
from eidolons.sapwaves import selectors, services

pytestmark = pytest.mark.django_db


def test_the_plan_schedule_loads_once_and_a_second_load_creates_nothing(max_plan):
    # The MAX plan's loader (the max_plan fixture) loaded the schedule after the Eidolons
    assert len([line for line in max_plan.created if line.startswith("SapWave ")]) == 8
    second = services.sapwaves_plan_load()
    assert second.created == [] and second.unchanged == 8
    waves = {w.plan_key: w for w in SapWave.objects.all()}
    hourly = waves["recurring-team-lead-check"]
    assert (hourly.cron_minute, hourly.cron_hour, str(hourly.target_agent)) == ("0", "*", "Mach42v2/claude")
    twelve = waves["recurring-autonomous-work-check"]
    assert (twelve.target_kind, twelve.periodic_task.crontab.minute) == ("all_max", "0,12,24,36,48")
    assert "every 12 minutes" in twelve.description.lower()
    assert (waves["morning-sync-prep"].cron_hour, waves["christian-sync"].cron_hour) == ("7", "8")
    assert str(waves["tonight-2030-delegate-scripts"].target_agent) == "Mach42v2/codex"


def test_the_tonight_one_offs_are_past_never_fire_and_are_shown_as_past(max_plan):
    tonight = SapWave.objects.filter(plan_key__startswith="tonight-")
    assert sorted(w.clocked_at for w in tonight) == [datetime(2025, 12, 4, h, m, tzinfo=UTC)
                                                      for h, m in ((20, 30), (21, 0), (22, 0), (23, 0))]
    for wave in tonight:
        assert wave.periodic_task.enabled is False
        assert selectors.wave_is_past(wave) and selectors.next_fire_times(wave) == []
        assert services.sapwave_fire_due(wave_id=wave.pk, at=timezone.now()) == []


def test_a_wave_the_operator_changed_is_left_as_it_is_and_reported(max_plan, staff_user):
    SapWave.objects.filter(plan_key="christian-sync").update(cron_hour="9")
    report = services.sapwaves_plan_load()
    assert report.created == []
    assert report.differences == ["SapWave Christian sync (08:00): cron_hour is '9', the plan says '8' (left as is)"]


def test_load_max_plan_loads_the_schedule_too(db, capsys):
    from django.core.management import call_command

    call_command("load_max_plan")
    assert "created SapWave Hourly team lead check" in capsys.readouterr().out
    assert SapWave.objects.count() == 8

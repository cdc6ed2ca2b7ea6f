"""SapWave services: the beat entry kept in step, one run per slot, catch-up, overlap, the cap, pauses."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from eidolons.models import CliAgent, Eidolon, SapWave, SapWaveRun, SapWaveTarget, Signal
from eidolons.sapwaves import services
from eidolons.services import signal_send
from maxportal.kernel.actors import Actor
from maxportal.kernel.errors import ReasonRequired

pytestmark = pytest.mark.django_db

HOUR = timedelta(hours=1)


@pytest.fixture
def operator(staff_user):
    return Actor.for_user(staff_user, "test")


def _wave(operator, *, name="check", since=None, target_set=None, **fields) -> SapWave:
    values = {"kind": "progress_check", "prompt": "How is it going?", "target_kind": "all_max",
              "schedule_kind": "crontab", "cron_minute": "0"}
    values.update(fields)
    wave = services.sapwave_save(wave=SapWave(name=name, **values), actor=operator, target_set=target_set)
    if since is not None:  # the wave as if it had been created at ``since``
        SapWave.objects.filter(pk=wave.pk).update(schedule_from=since)
        wave.refresh_from_db()
    return wave


def _at(hour, minute=0, second=0):
    return datetime(2026, 12, 1, hour, minute, second, tzinfo=UTC)


def _answer(eidolon):
    return signal_send(signal_type="TASK_RESPONSE", sender=eidolon.name, recipient=Eidolon.objects.get(slug="mach42v2"),
                       payload={"summary": "done"})


# --- the beat entry --------------------------------------------------------------------------------


def test_saving_a_wave_writes_its_beat_entry_and_an_edit_changes_it(max_plan, operator):
    wave = _wave(operator, cron_minute="30", cron_hour="2", timezone="Europe/Berlin")
    task = PeriodicTask.objects.get(pk=wave.periodic_task_id)
    assert (task.task, task.enabled, task.crontab.minute, task.crontab.hour, str(task.crontab.timezone)) == (
        "eidolons.sapwave_fire", True, "30", "2", "Europe/Berlin")
    assert task.kwargs == f'{{"wave_id": {wave.pk}}}'
    wave.cron_minute = "45"
    services.sapwave_save(wave=wave, actor=operator)
    task.refresh_from_db()
    assert task.crontab.minute == "45"
    assert wave.history.count() == 2 and wave.history.first().history_user == operator.user


def test_an_interval_wave_gives_beat_the_equivalent_utc_crontab(max_plan, operator):
    wave = _wave(operator, schedule_kind="interval", interval_minutes=12,
                 interval_anchor=datetime(2025, 12, 4, 20, 12, tzinfo=UTC))
    task = PeriodicTask.objects.get(pk=wave.periodic_task_id)
    assert (task.crontab.minute, task.crontab.hour, str(task.crontab.timezone)) == ("0,12,24,36,48", "*", "UTC")


def test_a_past_one_off_is_stored_but_never_enabled(max_plan, operator):
    wave = _wave(operator, schedule_kind="clocked", clocked_at=datetime(2025, 12, 4, 20, 30, tzinfo=UTC))
    task = PeriodicTask.objects.get(pk=wave.periodic_task_id)
    assert (task.one_off, task.enabled, task.clocked.clocked_time) == (True, False, wave.clocked_at)
    assert services.sapwave_fire_due(wave_id=wave.pk, at=timezone.now()) == []


def test_a_bad_crontab_is_refused_naming_the_field_and_nothing_is_saved(max_plan, operator):
    tasks_before = PeriodicTask.objects.count()
    with pytest.raises(ValidationError) as caught:
        _wave(operator, cron_minute="75")
    assert list(caught.value.message_dict) == ["cron_minute"]
    assert not SapWave.objects.filter(name="check").exists() and PeriodicTask.objects.count() == tasks_before


def test_pausing_needs_a_reason_and_disables_the_beat_entry(max_plan, operator):
    wave = _wave(operator)
    with pytest.raises(ReasonRequired):
        services.sapwave_pause(wave=wave, actor=operator, reason=" ")
    services.sapwave_pause(wave=wave, actor=operator, reason="maintenance window")
    wave.refresh_from_db()
    assert (wave.enabled, wave.paused_by, wave.paused_reason) == (False, "operator (test)", "maintenance window")
    assert PeriodicTask.objects.get(pk=wave.periodic_task_id).enabled is False
    services.sapwave_resume(wave=wave, actor=operator)
    assert PeriodicTask.objects.get(pk=wave.periodic_task_id).enabled is True


# --- one run per slot ------------------------------------------------------------------------------


def test_a_slot_fires_once_with_one_signal_per_target_however_often_beat_fires(max_plan, operator, sent_tasks):
    wave = _wave(operator, since=_at(9, 30))
    first = services.sapwave_fire_due(wave_id=wave.pk, at=_at(10, 0, 1))
    again = services.sapwave_fire_due(wave_id=wave.pk, at=_at(10, 0, 3))  # a second beat
    assert [r.slot for r in first] == [_at(10)] and again == []
    signals = Signal.objects.filter(signal_type="SAPWAVE")
    assert signals.count() == 4, "the cap (4) lets four of the seven MAX Eidolons be woken"
    assert SapWaveTarget.objects.filter(state="waiting", wait_reason="cap").count() == 3
    assert signals.first().payload["prompt"] == "How is it going?"


def test_beat_waking_a_moment_early_still_fires_the_slot(max_plan, operator, sent_tasks):
    wave = _wave(operator, target_kind="eidolon", target_eidolon=Eidolon.objects.get(slug="lilly"), since=_at(9, 30))
    runs = services.sapwave_fire_due(wave_id=wave.pk, at=_at(9, 59, 58))
    assert [r.slot for r in runs] == [_at(10)]


def test_a_double_run_now_makes_one_run(max_plan, operator, sent_tasks):
    wave = _wave(operator, target_kind="eidolon", target_eidolon=Eidolon.objects.get(slug="lilly"))
    run, created = services.sapwave_run_now(wave=wave, actor=operator)
    again, created_again = services.sapwave_run_now(wave=wave, actor=operator)
    assert (created, created_again, again.pk) == (True, False, run.pk)
    assert Signal.objects.filter(signal_type="SAPWAVE").count() == 1


# --- catch-up ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("policy", "fired", "skipped"), [
    ("skip", [], [7, 8, 9, 10]),
    ("once", [10], [7, 8, 9]),
    ("all", [9, 10], [7, 8]),  # window 90 min at 10:45: 9:00 and 10:00
])
def test_slots_missed_while_beat_was_down_follow_the_catch_up_policy(max_plan, operator, sent_tasks, policy, fired,
                                                                      skipped):
    wave = _wave(operator, target_kind="eidolon", target_eidolon=Eidolon.objects.get(slug="lilly"),
                 catchup_policy=policy, catchup_window_minutes=110, since=_at(6, 30))
    services.sapwave_fire_due(wave_id=wave.pk, at=_at(10, 45))  # beat is back at 10:45
    runs = SapWaveRun.objects.filter(wave=wave)
    assert sorted(r.slot.hour for r in runs if r.state == "fired") == fired
    assert sorted(r.slot.hour for r in runs if r.state == "skipped") == skipped
    assert {r.skip_reason for r in runs if r.state == "skipped"} <= {"missed"}
    assert services.sapwave_fire_due(wave_id=wave.pk, at=_at(10, 46)) == [], "nothing twice"


def test_an_on_time_slot_after_an_outage_fires_and_the_missed_ones_are_recorded(max_plan, operator, sent_tasks):
    wave = _wave(operator, target_kind="eidolon", target_eidolon=Eidolon.objects.get(slug="lilly"), since=_at(8, 30))
    services.sapwave_fire_due(wave_id=wave.pk, at=_at(11, 0, 2))
    got = {r.slot.hour: (r.state, r.skip_reason) for r in SapWaveRun.objects.filter(wave=wave)}
    assert got == {9: ("skipped", "missed"), 10: ("skipped", "missed"), 11: ("fired", "")}


def test_an_expired_wave_records_its_slot_as_skipped_expired(max_plan, operator, sent_tasks):
    wave = _wave(operator, target_kind="eidolon", target_eidolon=Eidolon.objects.get(slug="lilly"), since=_at(9, 30),
                 expires_at=_at(9, 50))
    SapWave.objects.filter(pk=wave.pk).update(schedule_from=_at(9, 30))
    [run] = services.sapwave_fire_due(wave_id=wave.pk, at=_at(10, 0, 1))
    assert (run.state, run.skip_reason) == ("skipped", "expired")


# --- overlap, pauses, the cap ---------------------------------------------------------------------


def test_overlap_skip_and_buffer_one(max_plan, operator, sent_tasks):
    lilly = Eidolon.objects.get(slug="lilly")
    skip = _wave(operator, name="skip", target_kind="eidolon", target_eidolon=lilly, since=_at(8, 30))
    buffer = _wave(operator, name="buffer", target_kind="eidolon", target_eidolon=lilly, overlap_policy="buffer_one",
                   since=_at(8, 30))
    for hour in (9, 10, 11):
        for wave in (skip, buffer):
            services.sapwave_fire_due(wave_id=wave.pk, at=_at(hour, 0, 1))
    states = lambda wave: [(t.state, t.skip_reason or t.wait_reason)  # noqa: E731
                           for t in SapWaveTarget.objects.filter(wave=wave).order_by("run__slot")]
    assert states(skip) == [("sent", ""), ("skipped", "overlap"), ("skipped", "overlap")]
    assert states(buffer) == [("sent", ""), ("waiting", "overlap"), ("skipped", "overlap_buffer_full")]
    # LILLy answers: the buffered one goes out
    _answer(lilly)
    services.sapwaves_sweep(now=_at(11, 0, 30))
    assert states(buffer)[:2] == [("answered", ""), ("sent", "")]


def test_a_paused_eidolon_is_skipped_and_says_so(max_plan, operator, sent_tasks):
    mike = Eidolon.objects.get(slug="mike")
    services.eidolon_sapwaves_pause(eidolon=mike, actor=operator, reason="rebuilding CT202")
    wave = _wave(operator, target_kind="set", since=_at(9, 30),
                 target_set=Eidolon.objects.filter(slug__in=["mike", "clara"]))
    services.sapwave_fire_due(wave_id=wave.pk, at=_at(10, 0, 1))
    got = {t.eidolon.slug: (t.state, t.skip_reason) for t in SapWaveTarget.objects.filter(wave=wave)}
    assert got == {"mike": ("skipped", "eidolon_paused"), "clara": ("sent", "")}


def test_nine_targets_under_a_cap_of_four_never_more_than_four_unanswered(max_plan, operator, sent_tasks):
    wave = _wave(operator, target_kind="set", since=_at(9, 30), target_set=Eidolon.objects.all())
    assert Eidolon.objects.count() == 9
    services.sapwave_fire_due(wave_id=wave.pk, at=_at(10, 0, 1))
    holding_max, answered = 0, set()
    for step in range(12):
        holding = SapWaveTarget.objects.filter(state="sent")
        holding_max = max(holding_max, holding.count())
        first = holding.order_by("sent_at", "id").first()
        if first is None:
            break
        _answer(first.eidolon)
        answered.add(first.eidolon.slug)
        services.sapwaves_sweep(now=_at(10, 1, step))
    assert holding_max == 4
    assert len(answered) == 9, "the queue drained in order as places freed"
    assert Signal.objects.filter(signal_type="SAPWAVE").count() == 9


def test_a_wave_whose_cap_policy_is_skip_skips_targets_over_the_cap(max_plan, operator, sent_tasks):
    wave = _wave(operator, cap_policy="skip", since=_at(9, 30))
    services.sapwave_fire_due(wave_id=wave.pk, at=_at(10, 0, 1))
    assert SapWaveTarget.objects.filter(state="skipped", skip_reason="over_cap").count() == 3


def test_an_unanswered_target_times_out_and_frees_its_place(max_plan, operator, sent_tasks):
    wave = _wave(operator, target_kind="eidolon", target_eidolon=Eidolon.objects.get(slug="lilly"), since=_at(9, 30),
                 answer_timeout_minutes=10)
    services.sapwave_fire_due(wave_id=wave.pk, at=_at(10, 0, 1))
    SapWaveTarget.objects.update(sent_at=_at(10))
    services.sapwaves_sweep(now=_at(10, 11))
    assert SapWaveTarget.objects.get().state == "timed_out"


def test_a_lead_move_by_the_eidolon_answers_its_waves(max_plan, operator, sent_tasks,
                                                      django_capture_on_commit_callbacks):
    lilly = Eidolon.objects.get(slug="lilly")
    wave = _wave(operator, target_kind="eidolon", target_eidolon=lilly, since=_at(9, 30))
    services.sapwave_fire_due(wave_id=wave.pk, at=_at(10, 0, 1))
    SapWaveTarget.objects.update(sent_at=_at(10))
    with django_capture_on_commit_callbacks(execute=True):
        assert services.sapwave_runs_mark_answered(eidolon_id=lilly.pk, at=_at(10, 5)) == 1
    target = SapWaveTarget.objects.get()
    assert (target.state, target.answered_by) == ("answered", "lead move")
    assert ("eidolons.sapwaves_dispatch", (), None) in sent_tasks


def test_the_sweep_fires_a_slot_beat_never_sent(max_plan, operator, sent_tasks):
    agent = CliAgent.objects.get(eidolon__slug="mach42v2", kind="claude")
    _wave(operator, target_kind="agent", target_agent=agent, since=_at(9, 30))
    assert services.sapwaves_sweep(now=_at(10, 0, 10)).runs == [], "beat gets its grace first"
    report = services.sapwaves_sweep(now=_at(10, 1))
    assert len(report.runs) == 1
    signal = Signal.objects.get(signal_type="SAPWAVE")
    assert (signal.recipient.slug, signal.agent.kind) == ("mach42v2", "claude")


def test_a_handoff_by_the_woken_eidolon_answers_its_wave(max_plan, operator, sent_tasks):
    from eidolons.services import api_token_issue
    from leads.services import lead_handoff, lead_ingest

    lilly = Eidolon.objects.get(slug="lilly")
    lead, _ = lead_ingest(actor=operator, company="Acme", email="cto@acme.example")
    wave = _wave(operator, target_kind="eidolon", target_eidolon=lilly, since=_at(9, 30))
    services.sapwave_fire_due(wave_id=wave.pk, at=_at(10, 0, 1))
    token, _ = api_token_issue(eidolon=lilly)
    lead_handoff(lead_id=lead.pk, actor=Actor.for_token(token), summary="qualified")
    target = SapWaveTarget.objects.get(wave=wave)
    assert (target.state, target.answered_by) == ("answered", "lead move handoff")


def test_a_later_wave_does_not_jump_the_queue_over_the_cap(max_plan, operator, sent_tasks):
    first = _wave(operator, name="all", since=_at(9, 30))  # seven MAX Eidolons: four sent, three queued
    services.sapwave_fire_due(wave_id=first.pk, at=_at(10, 0, 1))
    holder = SapWaveTarget.objects.filter(wave=first, state="sent").first().eidolon
    services.sapwave_runs_mark_answered(eidolon_id=holder.pk, at=timezone.now())  # a place frees
    later = _wave(operator, name="later", target_kind="eidolon", target_eidolon=Eidolon.objects.get(slug="maestro"),
                  since=_at(9, 30))
    services.sapwave_fire_due(wave_id=later.pk, at=_at(10, 0, 2))
    assert SapWaveTarget.objects.get(wave=later).wait_reason == "cap", "behind the three queued before it"
    services.sapwaves_dispatch()
    assert SapWaveTarget.objects.filter(wave=first, state="sent").count() == 4
    assert SapWaveTarget.objects.get(wave=later).state == "waiting"

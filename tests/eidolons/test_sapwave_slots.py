"""The slot computation: DST-safe crontabs, anchored intervals, one-offs, the interval's crontab."""

from datetime import UTC, datetime, timedelta

import pytest

from eidolons.sapwaves import slots

BERLIN = "Europe/Berlin"


def _utc(*args):
    return datetime(*args, tzinfo=UTC)


def test_a_berlin_crontab_fires_once_on_the_spring_forward_day_even_for_the_missing_hour():
    # 2026-03-29 02:00 CET -> 03:00 CEST: 02:30 does not exist locally
    wave = slots.Crontab(minute="30", hour="2", timezone=BERLIN)
    day = slots.slots_between(wave, _utc(2026, 3, 28, 12), _utc(2026, 3, 29, 12))
    assert day == [_utc(2026, 3, 29, 1, 30)], "once, shifted by the gap (03:30 CEST)"


def test_a_berlin_crontab_fires_once_on_the_fall_back_day_although_the_hour_repeats():
    # 2026-10-25 03:00 CEST -> 02:00 CET: 02:30 happens twice locally (00:30 and 01:30 UTC)
    wave = slots.Crontab(minute="30", hour="2", timezone=BERLIN)
    day = slots.slots_between(wave, _utc(2026, 10, 24, 12), _utc(2026, 10, 25, 12))
    assert day == [_utc(2026, 10, 25, 0, 30)], "its first occurrence only"


def test_an_hourly_berlin_crontab_has_one_slot_per_local_hour_on_both_dst_days():
    hourly = slots.Crontab(minute="0", timezone=BERLIN)
    spring = slots.slots_between(hourly, _utc(2026, 3, 28, 23), _utc(2026, 3, 29, 22))  # local day 00:00-24:00
    fall = slots.slots_between(hourly, _utc(2026, 10, 24, 22), _utc(2026, 10, 25, 23))
    assert len(spring) == 23 and len(set(spring)) == 23, "02:00 does not exist and merges with 03:00"
    assert len(fall) == 24, "the repeated 02:00 fires once: 24 local hours, 24 slots"
    assert _utc(2026, 10, 25, 1, 0) not in fall, "the second 02:00 (CET) does not fire again"


def test_next_slots_of_a_crontab_in_the_wave_zone():
    wave = slots.Crontab(minute="0", hour="8", timezone=BERLIN)
    nxt = slots.next_slots(wave, _utc(2026, 3, 27, 12), count=3)
    assert nxt == [_utc(2026, 3, 28, 7), _utc(2026, 3, 29, 6), _utc(2026, 3, 30, 6)], "08:00 local, CET then CEST"


def test_an_interval_is_aligned_to_its_anchor_and_beat_gets_the_same_slots_as_a_crontab():
    every12 = slots.Interval(12, _utc(2025, 12, 4, 20, 12))
    got = slots.slots_between(every12, _utc(2026, 1, 1, 0, 0), _utc(2026, 1, 1, 1, 0))
    assert got == [_utc(2026, 1, 1, 0, m) for m in (12, 24, 36, 48)] + [_utc(2026, 1, 1, 1, 0)]
    cron = slots.interval_as_crontab(every12)
    assert slots.slots_between(cron, _utc(2026, 1, 1), _utc(2026, 1, 2)) == slots.slots_between(
        every12, _utc(2026, 1, 1), _utc(2026, 1, 2))
    every6h = slots.Interval(360, _utc(2026, 1, 1, 1, 30))
    assert slots.slots_between(slots.interval_as_crontab(every6h), _utc(2026, 1, 1), _utc(2026, 1, 2)) == [
        _utc(2026, 1, 1, h, 30) for h in (1, 7, 13, 19)]


def test_a_clocked_one_off_has_exactly_its_instant():
    once = slots.Clocked(_utc(2025, 12, 4, 20, 30))
    assert slots.slots_between(once, _utc(2025, 12, 4), _utc(2025, 12, 5)) == [_utc(2025, 12, 4, 20, 30)]
    assert slots.next_slots(once, _utc(2026, 1, 1)) == []


@pytest.mark.parametrize(("spec", "field"), [
    (slots.Crontab(minute="61"), "minute"),
    (slots.Crontab(day_of_week="funday"), "day_of_week"),
    (slots.Crontab(timezone="Mars/Olympus"), "timezone"),
    (slots.Interval(7, _utc(2026, 1, 1)), "interval_minutes"),
    (slots.Interval(12, _utc(2026, 1, 1, 0, 0, 30)), "interval_anchor"),
])
def test_a_schedule_that_cannot_be_evaluated_names_its_field(spec, field):
    with pytest.raises(slots.SlotSpecError) as caught:
        slots.validate(spec)
    assert caught.value.field == field


def test_latest_slot_looks_back_only_as_far_as_asked():
    hourly = slots.Crontab(minute="0")
    assert slots.latest_slot(hourly, _utc(2026, 1, 1, 10, 30), timedelta(hours=1)) == _utc(2026, 1, 1, 10)
    assert slots.latest_slot(hourly, _utc(2026, 1, 1, 10, 30), timedelta(minutes=10)) is None

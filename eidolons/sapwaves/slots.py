"""When a SapWave is due: its slots, computed here and nowhere else (pure functions, no database).

A slot is the UTC instant a wave is scheduled for; a run is unique per (wave, slot). Beat is only
the trigger: whatever instant it fires at, the firing looks up the slots due by then with these
functions, so a beat that fires twice, early or late never makes a second run for a slot.

- crontab: five fields read by Celery's own parser (so beat and this module agree on what matches);
  day of month and day of week must BOTH match (Celery's rule, not Vixie cron's "either").
  Evaluated in the wave's time zone, DST-safe: every local wall-clock slot fires exactly once.
  A local time that occurs twice (autumn, fall-back) fires at its first occurrence only; one that
  does not exist (spring-forward gap) fires as if the clock had not moved yet (02:30 -> 03:30 local),
  merged with a slot that falls at the same instant.
- interval: every N minutes of real time, aligned to an anchor instant (slots are anchor + k*N).
  N divides an hour or is a whole number of hours dividing a day, so that beat can be given the
  same slots as a UTC crontab (``interval_as_crontab``).
- clocked: one slot, the given instant.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from celery.schedules import ParseException, crontab_parser

CRON_FIELDS = (("minute", 60, 0), ("hour", 24, 0), ("day_of_month", 31, 1), ("month_of_year", 12, 1),
               ("day_of_week", 7, 0))
# Intervals beat can fire exactly (as a crontab): divisors of an hour, and whole hours dividing a day.
INTERVAL_MINUTES_ALLOWED = tuple(m for m in range(1, 61) if 60 % m == 0) + tuple(
    h * 60 for h in range(2, 25) if 24 % h == 0
)
# How far a search for the next slots goes before it gives up (a crontab like "0 0 30 2 *" never matches).
SEARCH_DAYS = 5 * 366


class SlotSpecError(ValueError):
    """A schedule that cannot be evaluated; the message names the field and what to write."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Crontab:
    minute: str = "*"
    hour: str = "*"
    day_of_month: str = "*"
    month_of_year: str = "*"
    day_of_week: str = "*"
    timezone: str = "UTC"

    def expand(self) -> dict[str, frozenset[int]]:
        out = {}
        for name, size, first in CRON_FIELDS:
            text = (getattr(self, name) or "").strip()
            try:
                values = crontab_parser(size, first).parse(text)
            except (ParseException, ValueError, KeyError) as exc:
                raise SlotSpecError(name, f"{name} {text!r} is not a crontab field ({exc}); "
                                          "write e.g. '*', '0', '*/15', '1-5' or 'mon-fri'.") from None
            out[name] = frozenset(0 if v == 7 else v for v in values) if name == "day_of_week" else frozenset(values)
        return out


@dataclass(frozen=True)
class Interval:
    minutes: int
    anchor: datetime


@dataclass(frozen=True)
class Clocked:
    at: datetime


Spec = Crontab | Interval | Clocked


def zone(name: str) -> ZoneInfo:
    if name not in _zones():
        raise SlotSpecError("timezone", f"{name!r} is not an IANA time zone; write e.g. 'UTC' or 'Europe/Berlin'.")
    try:
        return ZoneInfo(name)
    except ZoneInfoNotFoundError:  # pragma: no cover (listed but missing from the system's tzdata)
        raise SlotSpecError("timezone", f"{name!r} is not installed on this machine.") from None


_ZONES: frozenset[str] | None = None


def _zones() -> frozenset[str]:
    global _ZONES
    if _ZONES is None:
        _ZONES = frozenset(available_timezones()) | {"UTC"}
    return _ZONES


def validate(spec: Spec) -> None:
    """Raise SlotSpecError naming the field when ``spec`` cannot be evaluated."""
    if isinstance(spec, Crontab):
        spec.expand()
        zone(spec.timezone)
    elif isinstance(spec, Interval):
        if spec.minutes not in INTERVAL_MINUTES_ALLOWED:
            allowed = ", ".join(str(m) for m in INTERVAL_MINUTES_ALLOWED)
            raise SlotSpecError("interval_minutes", f"Every {spec.minutes} minutes cannot be fired exactly by beat; "
                                                    f"use one of {allowed} minutes, or a crontab.")
        if spec.anchor is None or spec.anchor.tzinfo is None:
            raise SlotSpecError("interval_anchor", "An interval needs an anchor instant (with its time zone).")
        if spec.anchor.second or spec.anchor.microsecond:
            raise SlotSpecError("interval_anchor", "The anchor must be on a whole minute (beat fires on minutes).")
    elif spec.at is None or spec.at.tzinfo is None:
        raise SlotSpecError("clocked_at", "A one-off needs its date and time (with its time zone).")


def _local_days(start: date, end: date) -> Iterator[date]:
    day = start
    while day <= end:
        yield day
        day += timedelta(days=1)


def _cron_day_slots(fields: dict, tz: ZoneInfo, day: date) -> list[datetime]:
    # Celery numbers weekdays from Sunday = 0; Python from Monday = 0.
    if day.month not in fields["month_of_year"] or day.day not in fields["day_of_month"]:
        return []
    if (day.weekday() + 1) % 7 not in fields["day_of_week"]:
        return []
    out = []
    for hour in sorted(fields["hour"]):
        for minute in sorted(fields["minute"]):
            # fold=0: an ambiguous time is its first occurrence; a missing one is read with the
            # offset in force before the gap (zoneinfo's rule), i.e. shifted forward by the gap.
            local = datetime(day.year, day.month, day.day, hour, minute, tzinfo=tz)
            out.append(local.astimezone(UTC))
    return out


def slots_between(spec: Spec, after: datetime, until: datetime) -> list[datetime]:
    """The slots s with after < s <= until, in order (UTC), each once."""
    if until <= after:
        return []
    if isinstance(spec, Clocked):
        at = spec.at.astimezone(UTC)
        return [at] if after < at <= until else []
    if isinstance(spec, Interval):
        step = timedelta(minutes=spec.minutes)
        k = math.floor((after - spec.anchor) / step) + 1
        out = []
        slot = spec.anchor + k * step
        while slot <= until:
            out.append(slot.astimezone(UTC))
            slot += step
        return out
    fields, tz = spec.expand(), zone(spec.timezone)
    found = set()
    # One local day either side: a UTC range maps onto local days shifted by the offset.
    first, last = after.astimezone(tz).date() - timedelta(days=1), until.astimezone(tz).date() + timedelta(days=1)
    for day in _local_days(first, last):
        found.update(s for s in _cron_day_slots(fields, tz, day) if after < s <= until)
    return sorted(found)


def next_slots(spec: Spec, after: datetime, count: int = 5) -> list[datetime]:
    """The next ``count`` slots strictly after ``after`` (fewer when the schedule ends or never matches)."""
    if isinstance(spec, Clocked):
        return slots_between(spec, after, datetime.max.replace(tzinfo=UTC))[:count]
    if isinstance(spec, Interval):
        return slots_between(spec, after, after + timedelta(minutes=spec.minutes * count))[:count]
    fields, tz = spec.expand(), zone(spec.timezone)
    out: list[datetime] = []
    day = after.astimezone(tz).date() - timedelta(days=1)
    for _ in range(SEARCH_DAYS):
        for s in _cron_day_slots(fields, tz, day):
            if s > after and s not in out:
                out.append(s)
        if len(out) >= count:
            break
        day += timedelta(days=1)
    return sorted(out)[:count]


def latest_slot(spec: Spec, at: datetime, lookback: timedelta) -> datetime | None:
    """The last slot at or before ``at`` within ``lookback``, or None."""
    found = slots_between(spec, at - lookback, at)
    return found[-1] if found else None


def interval_as_crontab(spec: Interval) -> Crontab:
    """The UTC crontab with exactly the interval's slots (what beat is given for an interval wave)."""
    validate(spec)
    anchor = spec.anchor.astimezone(UTC)
    if spec.minutes <= 60:
        phase = anchor.minute % spec.minutes
        return Crontab(minute=",".join(str(m) for m in range(phase, 60, spec.minutes)), timezone="UTC")
    hours = spec.minutes // 60
    phase = anchor.hour % hours
    return Crontab(minute=str(anchor.minute), hour=",".join(str(h) for h in range(phase, 24, hours)), timezone="UTC")

"""Choices of SapWaves: kinds, targets, schedules, policies and the outcome of each target.

The target states and their allowed moves are written here once (``TARGET_MOVES``); the services
refuse any other move, and the admin and page read the labels from here.
"""

from django.db import models


class SapWaveKindChoices(models.TextChoices):
    """What a wave asks for (the master plan's SapWave Schedule)."""

    PROGRESS_CHECK = "progress_check", "Progress check"
    SYNC = "sync", "Sync"
    AUTONOMOUS_WORK_CHECK = "autonomous_work_check", "Autonomous work check"
    TEAM_LEAD_CHECK = "team_lead_check", "Team lead check"
    ONE_OFF_TASK = "one_off_task", "One-off task"


class SapWaveTargetChoices(models.TextChoices):
    EIDOLON = "eidolon", "One Eidolon"
    AGENT = "agent", "One agent of an Eidolon"
    SET = "set", "A set of Eidolons"
    ALL_MAX = "all_max", "All MAX Eidolons"


class SapWaveScheduleChoices(models.TextChoices):
    CRONTAB = "crontab", "Crontab (in the wave's time zone)"
    INTERVAL = "interval", "Every N minutes from an anchor"
    CLOCKED = "clocked", "Once, at a date and time"


class SapWaveCatchupChoices(models.TextChoices):
    """What happens to slots missed while beat or the workers were down."""

    SKIP = "skip", "Skip missed slots"
    ONCE = "once", "Fire once for all missed slots"
    ALL = "all", "Fire every missed slot within the window"


class SapWaveOverlapChoices(models.TextChoices):
    """What happens when an Eidolon has not answered this wave's previous run yet."""

    SKIP = "skip", "Skip the Eidolon"
    BUFFER_ONE = "buffer_one", "Buffer one (sent when the previous is answered or timed out)"


class SapWaveCapChoices(models.TextChoices):
    """What happens to a target over the concurrency cap."""

    WAIT = "wait", "Wait in the queue"
    SKIP = "skip", "Skip it"


class SapWaveTriggerChoices(models.TextChoices):
    SCHEDULE = "schedule", "Schedule (beat)"
    CATCHUP = "catchup", "Catch-up after downtime"
    MANUAL = "manual", "Run now"


class SapWaveRunStateChoices(models.TextChoices):
    FIRED = "fired", "Fired"
    SKIPPED = "skipped", "Skipped"


class SapWaveTargetStateChoices(models.TextChoices):
    """One Eidolon's part of a run. Delivered and acknowledged are read from its signal."""

    WAITING = "waiting", "Waiting"
    SENT = "sent", "Sent"
    ANSWERED = "answered", "Answered"
    TIMED_OUT = "timed_out", "Timed out"
    SKIPPED = "skipped", "Skipped"


class SapWaveWaitChoices(models.TextChoices):
    JITTER = "jitter", "its jitter delay"
    CAP = "cap", "the concurrency cap"
    OVERLAP = "overlap", "its previous run to be answered"


class SapWaveSkipChoices(models.TextChoices):
    """Why a run or a target was skipped: the outcome says which."""

    PAUSED = "paused", "paused"
    EIDOLON_PAUSED = "eidolon_paused", "Eidolon paused"
    OVERLAP = "overlap", "overlap: previous run not answered"
    OVERLAP_BUFFER_FULL = "overlap_buffer_full", "overlap: one already buffered"
    OVER_CAP = "over_cap", "over the cap"
    WAITED_TOO_LONG = "waited_too_long", "waited too long"
    EXPIRED = "expired", "expired"
    MISSED = "missed", "missed (catch-up policy)"
    NO_TARGETS = "no_targets", "no target Eidolons"


S = SapWaveTargetStateChoices
TARGET_MOVES = {
    S.WAITING: {S.SENT, S.SKIPPED},
    S.SENT: {S.ANSWERED, S.TIMED_OUT},
    S.ANSWERED: set(),
    S.TIMED_OUT: set(),
    S.SKIPPED: set(),
}
# States in which a target holds a place under the cap (an unanswered wave).
TARGET_HOLDING = (S.SENT,)
# States in which a target is still open for the overlap policy.
TARGET_OPEN = (S.WAITING, S.SENT)

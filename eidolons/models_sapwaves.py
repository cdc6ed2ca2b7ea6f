"""SapWaves (the schedules that wake the Eidolons), their runs, pauses, and stale-agent episodes.

Imported at the end of ``eidolons/models.py`` so the models belong to the eidolons app.
Invariants kept by the database:
- one run per (wave, slot): two beats, a restart, a re-delivered message or a double "run now"
  cannot fire a slot twice;
- one target row per (run, Eidolon), and at most one buffered (overlap) target per wave and Eidolon;
- a wave's schedule has the fields its kind needs; a paused wave says when it was paused;
- one escalation per stale episode of an agent (unique on the heartbeat it went silent after).
"""

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django_celery_beat.models import PeriodicTask
from simple_history.models import HistoricalRecords

from .sapwaves.choices import (
    SapWaveCapChoices,
    SapWaveCatchupChoices,
    SapWaveKindChoices,
    SapWaveOverlapChoices,
    SapWaveRunStateChoices,
    SapWaveScheduleChoices,
    SapWaveSkipChoices,
    SapWaveTargetChoices,
    SapWaveTargetStateChoices,
    SapWaveTriggerChoices,
    SapWaveWaitChoices,
)

JITTER_MAX_SECONDS = 1800  # stays far below the broker's visibility timeout (countdowns)


class SapWave(models.Model):
    """A SapWave: a named wake-up for Eidolons, on a schedule (master plan, "SapWave Schedule").

    Saved only through ``eidolons.sapwaves.services.sapwave_save``, which keeps the wave's
    PeriodicTask (django-celery-beat) in step, so beat's DatabaseScheduler picks an edit up
    without a restart. The slots themselves are computed by ``eidolons.sapwaves.slots``.
    """

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True, help_text="What the wave is for, and how the plan's line was read.")
    kind = models.CharField(max_length=30, choices=SapWaveKindChoices.choices)
    prompt = models.TextField(help_text="The instructions the woken agents receive in the SAPWAVE signal.")

    target_kind = models.CharField(max_length=10, choices=SapWaveTargetChoices.choices)
    target_eidolon = models.ForeignKey(
        "eidolons.Eidolon", on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        help_text="For 'one Eidolon' and 'one agent' (the agent's Eidolon).",
    )
    target_agent = models.ForeignKey(
        "eidolons.CliAgent", on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        help_text="For 'one agent': the signal is addressed to this agent only.",
    )
    target_set = models.ManyToManyField(
        "eidolons.Eidolon", blank=True, related_name="+", help_text="For 'a set of Eidolons'."
    )

    schedule_kind = models.CharField(max_length=10, choices=SapWaveScheduleChoices.choices)
    cron_minute = models.CharField(max_length=120, default="*", blank=True)
    cron_hour = models.CharField(max_length=100, default="*", blank=True)
    cron_day_of_month = models.CharField(max_length=100, default="*", blank=True)
    cron_month_of_year = models.CharField(max_length=60, default="*", blank=True)
    cron_day_of_week = models.CharField(max_length=60, default="*", blank=True)
    timezone = models.CharField(
        max_length=64, default="UTC", help_text="IANA zone the crontab is read in (DST-safe), e.g. Europe/Berlin."
    )
    interval_minutes = models.PositiveIntegerField(null=True, blank=True, help_text="Every N minutes of real time.")
    interval_anchor = models.DateTimeField(null=True, blank=True, help_text="Interval slots are anchor + k x N.")
    clocked_at = models.DateTimeField(null=True, blank=True, help_text="The one-off's date and time.")

    catchup_policy = models.CharField(
        max_length=10, choices=SapWaveCatchupChoices.choices, default=SapWaveCatchupChoices.ONCE
    )
    catchup_window_minutes = models.PositiveIntegerField(
        default=60, validators=[MinValueValidator(1)], help_text="For 'fire every missed slot': how far back."
    )
    overlap_policy = models.CharField(
        max_length=12, choices=SapWaveOverlapChoices.choices, default=SapWaveOverlapChoices.SKIP
    )
    cap_policy = models.CharField(max_length=6, choices=SapWaveCapChoices.choices, default=SapWaveCapChoices.WAIT)
    jitter_seconds = models.PositiveIntegerField(
        default=0, validators=[MaxValueValidator(JITTER_MAX_SECONDS)],
        help_text="Each Eidolon is woken up to this many seconds after the slot (staggers the agents).",
    )
    answer_timeout_minutes = models.PositiveIntegerField(
        default=30, validators=[MinValueValidator(1)],
        help_text="A woken Eidolon that has not answered by then is recorded as timed out (and frees its place).",
    )
    expires_at = models.DateTimeField(null=True, blank=True, help_text="No slot after this fires.")

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                              related_name="+")
    enabled = models.BooleanField(default=True, help_text="Off: paused (the pause says who and why).")
    paused_at = models.DateTimeField(null=True, blank=True)
    paused_by = models.CharField(max_length=150, blank=True)
    paused_reason = models.TextField(blank=True)
    schedule_from = models.DateTimeField(
        help_text="Slots at or before this never fire (set on creation, on a schedule change and on resume)."
    )
    plan_key = models.CharField(
        max_length=60, unique=True, null=True, blank=True, editable=False,
        help_text="The master plan's line this wave was loaded from (the loader finds it again by this).",
    )
    periodic_task = models.OneToOneField(
        PeriodicTask, on_delete=models.SET_NULL, null=True, blank=True, editable=False, related_name="sapwave"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords(m2m_fields=[target_set], excluded_fields=["updated_at", "periodic_task"])

    class Meta:
        ordering = ["name"]
        verbose_name = "SapWave"
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(schedule_kind="interval")
                | models.Q(interval_minutes__gt=0, interval_anchor__isnull=False),
                name="sapwave_interval_complete",
            ),
            models.CheckConstraint(
                condition=~models.Q(schedule_kind="clocked") | models.Q(clocked_at__isnull=False),
                name="sapwave_clocked_complete",
            ),
            models.CheckConstraint(
                condition=~models.Q(target_kind__in=["eidolon", "agent"]) | models.Q(target_eidolon__isnull=False),
                name="sapwave_target_eidolon_set",
            ),
            models.CheckConstraint(
                condition=~models.Q(target_kind="agent") | models.Q(target_agent__isnull=False),
                name="sapwave_target_agent_set",
            ),
            models.CheckConstraint(
                condition=models.Q(enabled=True) | models.Q(paused_at__isnull=False), name="sapwave_pause_has_time"
            ),
            models.CheckConstraint(
                condition=models.Q(jitter_seconds__lte=JITTER_MAX_SECONDS), name="sapwave_jitter_bounded"
            ),
        ]

    def __str__(self):
        return self.name


class SapWaveRun(models.Model):
    """One slot of a wave: fired (with a target row per Eidolon) or skipped, saying why."""

    wave = models.ForeignKey(SapWave, on_delete=models.CASCADE, related_name="runs")
    slot = models.DateTimeField(help_text="The scheduled instant this run is for (UTC).")
    trigger = models.CharField(max_length=10, choices=SapWaveTriggerChoices.choices)
    state = models.CharField(max_length=10, choices=SapWaveRunStateChoices.choices)
    skip_reason = models.CharField(max_length=20, choices=SapWaveSkipChoices.choices, blank=True)
    triggered_by = models.CharField(max_length=150, help_text="beat, the sweep, or the person who pressed run now.")
    created_at = models.DateTimeField(
        auto_now_add=True, help_text="When the run was recorded (lateness = this - slot)."
    )

    class Meta:
        ordering = ["-slot", "-id"]
        verbose_name = "SapWave run"
        constraints = [
            models.UniqueConstraint(fields=["wave", "slot"], name="sapwaverun_one_per_slot"),
            models.CheckConstraint(
                condition=models.Q(state="fired", skip_reason="")
                | (models.Q(state="skipped") & ~models.Q(skip_reason="")),
                name="sapwaverun_skip_has_reason",
            ),
        ]

    def __str__(self):
        return f"{self.wave_id}@{self.slot:%Y-%m-%d %H:%M}"


class SapWaveTarget(models.Model):
    """One Eidolon's part of a run: waiting, sent (then delivered and acknowledged, read from its
    signal), answered, timed out, or skipped saying why. Moves are in ``sapwaves.choices.TARGET_MOVES``."""

    run = models.ForeignKey(SapWaveRun, on_delete=models.CASCADE, related_name="targets")
    wave = models.ForeignKey(SapWave, on_delete=models.CASCADE, related_name="+", help_text="The run's wave.")
    eidolon = models.ForeignKey("eidolons.Eidolon", on_delete=models.CASCADE, related_name="sapwave_targets")
    agent = models.ForeignKey("eidolons.CliAgent", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    state = models.CharField(max_length=10, choices=SapWaveTargetStateChoices.choices)
    wait_reason = models.CharField(max_length=10, choices=SapWaveWaitChoices.choices, blank=True)
    skip_reason = models.CharField(max_length=20, choices=SapWaveSkipChoices.choices, blank=True)
    not_before = models.DateTimeField(help_text="Slot plus this Eidolon's jitter: not sent earlier.")
    signal = models.OneToOneField(
        "eidolons.Signal", on_delete=models.SET_NULL, null=True, blank=True, related_name="sapwave_target"
    )
    sent_at = models.DateTimeField(null=True, blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    answered_by = models.CharField(
        max_length=100, blank=True, help_text="The TASK_RESPONSE or lead move that answered."
    )
    closed_at = models.DateTimeField(null=True, blank=True, help_text="When it was answered, timed out or skipped.")

    class Meta:
        ordering = ["run", "eidolon__name"]
        verbose_name = "SapWave target"
        indexes = [
            models.Index(fields=["state", "not_before"], name="sapwavetarget_state_due"),
            models.Index(fields=["eidolon", "state"], name="sapwavetarget_eidolon_state"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["run", "eidolon"], name="sapwavetarget_one_per_eidolon"),
            models.UniqueConstraint(
                fields=["wave", "eidolon"], condition=models.Q(state="waiting", wait_reason="overlap"),
                name="sapwavetarget_one_buffered",
            ),
            models.CheckConstraint(
                condition=~models.Q(state__in=["sent", "answered", "timed_out"]) | models.Q(sent_at__isnull=False),
                name="sapwavetarget_sent_has_time",
            ),
            models.CheckConstraint(
                condition=~models.Q(state="skipped") | ~models.Q(skip_reason=""), name="sapwavetarget_skip_has_reason"
            ),
        ]

    def __str__(self):
        return f"{self.run} -> {self.eidolon_id}: {self.state}"


class EidolonSapWavePause(models.Model):
    """An Eidolon that no SapWave wakes until resumed (who paused it, when and why)."""

    eidolon = models.OneToOneField("eidolons.Eidolon", on_delete=models.CASCADE, related_name="sapwave_pause")
    paused_at = models.DateTimeField()
    paused_by = models.CharField(max_length=150)
    reason = models.TextField()

    class Meta:
        verbose_name = "Eidolon SapWave pause"

    def __str__(self):
        return f"{self.eidolon_id} paused"


class StaleAgentEpisode(models.Model):
    """A CLI agent that stopped sending heartbeats: one per silence, with the ESCALATION it raised.

    An episode is keyed by the last heartbeat before the silence, so the sweep raises it once, not
    once per sweep; a new heartbeat ends it, and a later silence is a new episode.
    """

    agent = models.ForeignKey("eidolons.CliAgent", on_delete=models.CASCADE, related_name="stale_episodes")
    last_heartbeat_at = models.DateTimeField(help_text="The heartbeat the agent went silent after.")
    detected_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True, help_text="When a heartbeat came again.")
    signal = models.OneToOneField(
        "eidolons.Signal", on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        help_text="The ESCALATION sent to the escalation Eidolon.",
    )

    class Meta:
        ordering = ["-detected_at"]
        verbose_name = "stale agent episode"
        constraints = [
            models.UniqueConstraint(fields=["agent", "last_heartbeat_at"], name="staleagent_one_per_episode"),
        ]

    def __str__(self):
        return f"{self.agent_id} silent since {self.last_heartbeat_at:%Y-%m-%d %H:%M}"

"""The portal's own periodic jobs beside the SapWaves: the stale-agent escalation, and the list
of beat entries with their next run (read-only) for the SapWaves page.

Stale agents: an agent that sent heartbeats and then went silent for longer than
MAXPORTAL_HEARTBEAT_STALE_SECONDS raises ONE ESCALATION to MAXPORTAL_ESCALATION_EIDOLON per
silence (an episode is unique on the heartbeat it went silent after); a new heartbeat ends the
episode. Agents that never sent one (not installed yet) are not stale, only absent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from ..choices import SignalTypeChoices
from ..models import CliAgent, Eidolon, StaleAgentEpisode
from ..services import signal_send
from .services import PERIODIC_TASK_PREFIX

STALE_SENDER = "portal (stale agents)"


def stale_agents_escalate(*, now: datetime | None = None) -> list[StaleAgentEpisode]:
    """End the episodes of agents that spoke again; open one (with its ESCALATION) per new silence."""
    now = now or timezone.now()
    StaleAgentEpisode.objects.filter(ended_at__isnull=True, agent__last_heartbeat_at__gt=F("last_heartbeat_at")).update(
        ended_at=now
    )
    threshold = now - timedelta(seconds=settings.MAXPORTAL_HEARTBEAT_STALE_SECONDS)
    recipient = Eidolon.objects.filter(slug=settings.MAXPORTAL_ESCALATION_EIDOLON).first()
    silent = (CliAgent.objects.filter(last_heartbeat_at__lt=threshold)
              .exclude(stale_episodes__last_heartbeat_at=F("last_heartbeat_at")).select_related("eidolon"))
    opened = []
    for agent in silent:
        with transaction.atomic():
            try:
                with transaction.atomic():
                    episode = StaleAgentEpisode.objects.create(agent=agent, last_heartbeat_at=agent.last_heartbeat_at,
                                                               detected_at=now)
            except IntegrityError:
                continue  # another sweep opened it a moment ago
            if recipient is not None:
                silence = int((now - agent.last_heartbeat_at).total_seconds())
                episode.signal = signal_send(
                    signal_type=SignalTypeChoices.ESCALATION, sender=STALE_SENDER, recipient=recipient,
                    payload={"summary": f"{agent} sent no heartbeat for {silence} s (last at "
                                        f"{agent.last_heartbeat_at:%Y-%m-%d %H:%M:%S} UTC).",
                             "eidolon": agent.eidolon.slug, "agent": agent.kind,
                             "last_heartbeat_at": agent.last_heartbeat_at.isoformat(), "episode_id": episode.pk},
                )
                episode.save(update_fields=["signal"])
            opened.append(episode)
    return opened


@dataclass
class PortalJob:
    name: str
    task: str
    schedule: str
    enabled: bool
    last_run_at: datetime | None
    next_run_at: datetime | None


def portal_jobs(*, now: datetime | None = None) -> list[PortalJob]:
    """The beat entries that are not SapWaves (drift, reaper, purge, sweeps), with their next run."""
    now = now or timezone.now()
    jobs = []
    for task in (PeriodicTask.objects.exclude(name__startswith=PERIODIC_TASK_PREFIX)
                 .select_related("interval", "crontab", "clocked", "solar").order_by("name")):
        next_run = None
        try:
            schedule = task.schedule
            last = task.last_run_at or task.date_changed or now
            next_run = now + schedule.remaining_estimate(last) if task.enabled else None
            if next_run is not None and next_run < now:
                next_run = now
        except Exception:  # noqa: S110 (a schedule beat itself cannot read: shown without a next run)
            pass
        jobs.append(PortalJob(name=task.name, task=task.task, schedule=str(task.interval or task.crontab or task.clocked
                                                                               or task.solar), enabled=task.enabled,
                              last_run_at=task.last_run_at, next_run_at=next_run))
    return jobs

"""The portal's own jobs: stale agents raise one ESCALATION per silence; the beat entries are listed."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from eidolons.models import CliAgent, Signal, StaleAgentEpisode
from eidolons.sapwaves import jobs

pytestmark = pytest.mark.django_db


def test_a_silent_agent_raises_one_escalation_per_silence(max_plan):
    now = timezone.now()
    agent = CliAgent.objects.get(eidolon__slug="clara", kind="codex")
    CliAgent.objects.filter(pk=agent.pk).update(last_heartbeat_at=now - timedelta(minutes=10))
    assert len(jobs.stale_agents_escalate(now=now)) == 1
    assert jobs.stale_agents_escalate(now=now + timedelta(minutes=1)) == [], "not once per sweep"
    escalation = Signal.objects.get(signal_type="ESCALATION")
    assert (escalation.recipient.slug, escalation.payload["agent"], escalation.payload["eidolon"]) == (
        "mach42v2", "codex", "clara")
    # It speaks again: the episode ends; a later silence is a new episode with its own escalation
    CliAgent.objects.filter(pk=agent.pk).update(last_heartbeat_at=now + timedelta(minutes=2))
    jobs.stale_agents_escalate(now=now + timedelta(minutes=3))
    assert StaleAgentEpisode.objects.get().ended_at is not None
    assert len(jobs.stale_agents_escalate(now=now + timedelta(minutes=30))) == 1
    assert Signal.objects.filter(signal_type="ESCALATION").count() == 2


def test_agents_that_never_sent_a_heartbeat_are_not_stale(max_plan):
    assert jobs.stale_agents_escalate() == []
    assert not Signal.objects.filter(signal_type="ESCALATION").exists()


def test_the_portal_jobs_are_listed_with_their_next_run_and_the_waves_are_not(max_plan):
    every = IntervalSchedule.objects.create(every=60, period="seconds")
    PeriodicTask.objects.create(name="provisioning-reap-steps", task="provisioning.steps_reap", interval=every,
                                last_run_at=timezone.now())
    PeriodicTask.objects.create(name="sapwave:999", task="eidolons.sapwave_fire", interval=every)
    [job] = jobs.portal_jobs()
    assert job.name == "provisioning-reap-steps"
    assert timedelta(seconds=50) < job.next_run_at - timezone.now() <= timedelta(seconds=60)

"""Celery tasks of the eidolons app: SapWaves, the stale-agent sweep, the signals' YAML mirror.
Thin: ids in, services do the work.

Every task here is idempotent (a slot has one run; the sweeps act on state), so acks_late with
reject_on_worker_lost (the settings) may run one twice without harm.
"""

import logging

from celery import shared_task
from celery.signals import before_task_publish
from django.db import DatabaseError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from . import services as eidolon_services
from .sapwaves import jobs, services

logger = logging.getLogger(__name__)

SENT_AT_HEADER = "sapwave_sent_at"


@before_task_publish.connect
def _stamp_sapwave_fire(sender=None, headers=None, **_kwargs):
    """Beat's message for a wave carries the instant beat sent it: the worker fires the slots due
    then, not those due when it got round to the message (a busy worker does not shift slots)."""
    if sender == services.FIRE_TASK and headers is not None:
        headers.setdefault(SENT_AT_HEADER, timezone.now().isoformat())


_RETRY = {"autoretry_for": (DatabaseError,), "retry_backoff": 1, "retry_backoff_max": 30, "retry_jitter": True,
          "max_retries": 8}


@shared_task(bind=True, name=services.FIRE_TASK, ignore_result=True, **_RETRY)
def sapwave_fire(self, wave_id: int, slot: str | None = None, triggered_by: str = "beat") -> list[int]:
    """Beat's entry for a wave (no slot: the slots due when beat sent it), or one explicit slot."""
    if slot is not None:
        wave = services.SapWave.objects.filter(pk=wave_id).first()
        if wave is None:
            return []
        run, created = services.sapwave_fire_slot(wave=wave, slot=parse_datetime(slot), trigger="manual",
                                                  triggered_by=triggered_by)
        return [run.pk] if created else []
    stamp = getattr(self.request, SENT_AT_HEADER, None) or (self.request.headers or {}).get(SENT_AT_HEADER)
    if not stamp:
        logger.info("sapwave_fire for wave %s carries no sent-at stamp: using the worker's clock", wave_id)
    at = parse_datetime(stamp) if stamp else None
    return [r.pk for r in services.sapwave_fire_due(wave_id=wave_id, at=at, triggered_by=triggered_by)]


@shared_task(name=services.DISPATCH_TASK, ignore_result=True, **_RETRY)
def sapwaves_dispatch() -> int:
    """Send waiting targets whose time has come, under the cap (after a jitter delay or an answer)."""
    return services.sapwaves_dispatch()


@shared_task(name="eidolons.sapwaves_sweep", ignore_result=True, **_RETRY)
def sapwaves_sweep() -> dict:
    """Periodic (beat): slots beat missed, answers, time-outs, the queue."""
    return services.sapwaves_sweep().__dict__


@shared_task(name="eidolons.agents_stale_check", ignore_result=True, **_RETRY)
def agents_stale_check() -> int:
    """Periodic (beat): one ESCALATION per agent that went silent (per silence, not per sweep)."""
    return len(jobs.stale_agents_escalate())


@shared_task(name=eidolon_services.SIGNAL_MIRROR_TASK, ignore_result=True, autoretry_for=(OSError, DatabaseError),
             retry_backoff=1, retry_backoff_max=60, retry_jitter=True, max_retries=8)
def signal_mirror_write(signal_id: int) -> str | None:
    """Sent on commit of a signal: its YAML file in the inbox folder; retried while the folder fails
    (the delays stay far below the broker's visibility timeout)."""
    path = eidolon_services.signal_mirror_write(signal_id=signal_id, raise_errors=True)
    return str(path) if path else None

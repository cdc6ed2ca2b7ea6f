"""Celery tasks of the provisioning app: thin, they take ids and call the engine and the services.

Settings make every task acks_late with reject_on_worker_lost: a worker killed mid-step gives its
message back, and ``engine.advance.step_run_advance`` lets only the message for the current turn
through, so a re-delivery never repeats a create. Countdowns stay below the broker's visibility
timeout. The engine queues these by name (``engine.queue``); nothing imports this module but Celery.
"""

from celery import shared_task
from django.db import DatabaseError

from . import drift, services
from .engine import queue, reaper
from .engine.advance import step_run_advance
from .models import ProxmoxHost

# Only the database is retried: Proxmox and script failures are outcomes of the step, not retries.
RETRY_ON_DATABASE_ERRORS = {
    "ignore_result": True,
    "autoretry_for": (DatabaseError,),
    "retry_backoff": 1,
    "retry_backoff_max": 30,
    "retry_jitter": True,
    "max_retries": 8,
}


@shared_task(
    name=queue.STEP_ADVANCE,
    **RETRY_ON_DATABASE_ERRORS,
)
def step_advance(run_id: int, turn: int) -> None:
    """One turn of an automated step; re-sends itself while a Proxmox task or an ack is awaited."""
    result = step_run_advance(run_id=run_id, turn=turn)
    if result.turn is not None:
        queue.send(queue.STEP_ADVANCE, (run_id, result.turn), countdown=result.countdown)


@shared_task(
    name=queue.CONTAINER_FOLLOW_ON,
    **RETRY_ON_DATABASE_ERRORS,
)
def container_follow_on(container_id: int, user_id: int | None, label: str) -> None:
    """After a step of a "provision all" is done: start the steps that became ready."""
    services.container_follow_on(container_id=container_id, user_id=user_id, label=label)


@shared_task(name="provisioning.steps_reap", ignore_result=True)
def steps_reap() -> int:
    """Periodic: send again the turns whose worker died or whose message was lost, fail the attempts
    that ran past their time limit (so they can be run again), and restart "provision all" chains
    whose follow-on message was lost."""
    reaper.turns_relay()
    reaped = reaper.step_runs_reap()
    reaper.chains_resume()
    return reaped


@shared_task(name="provisioning.drift_check", ignore_result=True)
def drift_check(host_id: int | None = None) -> list[str]:
    """Periodic: read the containers from Proxmox into the records and flag what differs."""
    hosts = ProxmoxHost.objects.filter(pk=host_id) if host_id else ProxmoxHost.objects.all()
    reports = [drift.drift_check(host=host) for host in hosts]
    return [f"{r.host}: {len(r.found)} finding(s){'; ' + r.error if r.error else ''}" for r in reports]

"""Celery tasks of the provisioning app: thin, they take ids and call the services.

Settings make every task acks_late with reject_on_worker_lost: a worker killed mid-step gives its
message back, and ``services.step_run_advance`` lets only the message for the current turn through,
so a re-delivery never repeats a create. Countdowns stay below the broker's visibility timeout.
"""

from celery import shared_task
from django.db import DatabaseError

from . import services
from .models import ProxmoxHost


@shared_task(
    name="provisioning.step_advance",
    ignore_result=True,
    # Only the database is retried here: Proxmox and script failures are outcomes of the step.
    autoretry_for=(DatabaseError,),
    retry_backoff=1,
    retry_backoff_max=30,
    retry_jitter=True,
    max_retries=8,
)
def step_advance(run_id: int, turn: int) -> None:
    """One turn of an automated step; re-sends itself while a Proxmox task or an ack is awaited."""
    result = services.step_run_advance(run_id=run_id, turn=turn)
    if result.turn is not None:
        step_advance.apply_async(args=(run_id, result.turn), countdown=result.countdown)


@shared_task(
    name="provisioning.container_follow_on",
    ignore_result=True,
    autoretry_for=(DatabaseError,),
    retry_backoff=1,
    retry_backoff_max=30,
    retry_jitter=True,
    max_retries=8,
)
def container_follow_on(container_id: int, user_id: int | None, label: str) -> None:
    """After a step of a "provision all" is done: start the steps that became ready."""
    services.container_follow_on(container_id=container_id, user_id=user_id, label=label)


@shared_task(name="provisioning.steps_reap", ignore_result=True)
def steps_reap() -> int:
    """Periodic: fail the attempts that ran past their time limit, so they can be run again, and
    restart "provision all" chains whose follow-on message was lost."""
    reaped = services.step_runs_reap()
    services.chains_resume()
    return reaped


@shared_task(name="provisioning.drift_check", ignore_result=True)
def drift_check(host_id: int | None = None) -> list[str]:
    """Periodic: read the containers from Proxmox into the records and flag what differs."""
    hosts = ProxmoxHost.objects.filter(pk=host_id) if host_id else ProxmoxHost.objects.all()
    reports = [services.drift_check(host=host) for host in hosts]
    return [f"{r.host}: {len(r.found)} finding(s){'; ' + r.error if r.error else ''}" for r in reports]

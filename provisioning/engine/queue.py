"""The checklist's Celery messages, sent by task name once the transaction that wrote them commits.

The engine and the services never import ``provisioning.tasks``: the tasks call the engine, and the
engine names the tasks it wants run (so the arrows run one way). Outside a transaction the message
leaves at once (``transaction.on_commit`` runs the callback immediately).
"""

from __future__ import annotations

from celery import current_app
from django.db import transaction

STEP_ADVANCE = "provisioning.step_advance"
CONTAINER_FOLLOW_ON = "provisioning.container_follow_on"


def send(task: str, args: tuple, countdown: float | None = None) -> None:
    """Publish one message now (the broker boundary; the tests' driver replaces ``send_task``)."""
    current_app.send_task(task, args=args, countdown=countdown)


def advance_on_commit(run_id: int, turn: int, countdown: float | None = None) -> None:
    """Queue turn ``turn`` of attempt ``run_id`` once the surrounding transaction commits."""
    transaction.on_commit(lambda: send(STEP_ADVANCE, (run_id, turn), countdown))


def follow_on_on_commit(container_id: int, user_id: int | None, label: str) -> None:
    """Queue "start what became ready" for a container once the surrounding transaction commits."""
    transaction.on_commit(lambda: send(CONTAINER_FOLLOW_ON, (container_id, user_id, label)))

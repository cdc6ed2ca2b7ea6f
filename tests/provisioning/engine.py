"""A test driver for the checklist engine: it plays the broker, turn by turn, in the test's thread.

It replaces the broker boundary, Celery's ``send_task`` on the current app (``engine.queue``
sends every message through it): the messages a step sends land in a queue, and the driver
delivers them one by one (and can deliver one twice, as a broker re-delivery would). A follow-on
message runs at once. The test's own transaction never commits, so the driver runs what the code
queued for after commit (``transaction.on_commit``) before it delivers, as a commit would.
The real worker is exercised in test_tasks.py and test_worker_kill.py.
"""

from collections import deque

from celery import current_app
from django.db import connection

from provisioning import services
from provisioning.engine import queue
from provisioning.engine.advance import AdvanceResult, step_run_advance
from provisioning.models import ChecklistStep


class Broker:
    """Records what the engine sends, by task name, and sends nothing anywhere."""

    def __init__(self, monkeypatch):
        self.sent: list[tuple[str, tuple, float | None]] = []
        self.dropped: set[str] = set()
        monkeypatch.setattr(current_app._get_current_object(), "send_task", self._send_task)

    def _send_task(self, name, args=None, kwargs=None, countdown=None, **options):
        self.sent.append((name, tuple(args or ()), countdown))
        if name not in self.dropped:
            self.received(name, tuple(args or ()), countdown)

    def drop(self, name: str) -> None:
        """Lose every later message of task ``name`` (a broker or worker hiccup)."""
        self.dropped.add(name)

    def received(self, name, args, countdown):
        pass

    def of(self, name: str) -> list[tuple]:
        return [args for task, args, _ in self.sent if task == name]


class EngineDriver(Broker):
    def __init__(self, monkeypatch):
        super().__init__(monkeypatch)
        self.queue: deque[tuple[int, int]] = deque()
        self.delivered: list[tuple[int, int]] = []
        self.follow_ons = 0
        self._committed = len(connection.run_on_commit)

    def commit(self) -> None:
        """Run the after-commit callbacks registered since the last look (they may register more)."""
        while len(connection.run_on_commit) > self._committed:
            _sids, callback, _robust = connection.run_on_commit[self._committed]
            self._committed += 1
            callback()

    def received(self, name, args, countdown):
        if name == queue.STEP_ADVANCE:
            self.queue.append(args)
        elif name == queue.CONTAINER_FOLLOW_ON:
            self.follow_ons += 1
            container_id, user_id, label = args
            services.container_follow_on(container_id=container_id, user_id=user_id, label=label)

    def deliver(self, run_id: int, turn: int) -> AdvanceResult:
        self.commit()
        self.delivered.append((run_id, turn))
        result = step_run_advance(run_id=run_id, turn=turn)
        self.commit()
        if result.turn is not None:
            self.queue.append((run_id, result.turn))
        return result

    def run(self, max_messages: int = 400) -> int:
        """Deliver until nothing is queued; returns how many messages were delivered."""
        count = 0
        self.commit()
        while self.queue:
            count += 1
            assert count <= max_messages, f"the engine did not settle within {max_messages} messages"
            self.deliver(*self.queue.popleft())
        return count


def states(container) -> dict[str, str]:
    return dict(ChecklistStep.objects.filter(container=container).values_list("step", "state"))


def row(container, step) -> ChecklistStep:
    return ChecklistStep.objects.get(container=container, step=step)

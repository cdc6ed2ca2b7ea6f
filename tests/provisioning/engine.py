"""A test driver for the checklist engine: it plays the broker, turn by turn, in the test's thread.

``services._enqueue_advance`` is replaced so the messages a step would send land in a queue; the
driver delivers them one by one (and can deliver one twice, as a broker re-delivery would).
The real worker is exercised in test_tasks.py with celery.contrib.testing.worker.
"""

from collections import deque

from provisioning import services, tasks
from provisioning.models import ChecklistStep


class EngineDriver:
    def __init__(self, monkeypatch, capture_on_commit):
        self.queue: deque[tuple[int, int]] = deque()
        self.delivered: list[tuple[int, int]] = []
        self._capture = capture_on_commit
        monkeypatch.setattr(services, "_enqueue_advance", self._enqueue)
        monkeypatch.setattr(tasks.container_follow_on, "apply_async", self._follow_on)
        self.follow_ons = 0

    def _enqueue(self, run_id: int, turn: int, countdown=None):
        self.queue.append((run_id, turn))

    def _follow_on(self, args, **options):
        self.follow_ons += 1
        container_id, user_id, label = args
        services.container_follow_on(container_id=container_id, user_id=user_id, label=label)

    def deliver(self, run_id: int, turn: int) -> services.AdvanceResult:
        self.delivered.append((run_id, turn))
        with self._capture(execute=True):
            result = services.step_run_advance(run_id=run_id, turn=turn)
        if result.turn is not None:
            self.queue.append((run_id, result.turn))
        return result

    def run(self, max_messages: int = 400) -> int:
        """Deliver until nothing is queued; returns how many messages were delivered."""
        count = 0
        while self.queue:
            count += 1
            assert count <= max_messages, f"the engine did not settle within {max_messages} messages"
            self.deliver(*self.queue.popleft())
        return count


def states(container) -> dict[str, str]:
    return dict(ChecklistStep.objects.filter(container=container).values_list("step", "state"))


def row(container, step) -> ChecklistStep:
    return ChecklistStep.objects.get(container=container, step=step)

"""A worker process killed with SIGKILL in the middle of a step loses nothing.

A real ``celery worker`` (prefork, one child) in its own process, on PostgreSQL (the test database
is shared with it) and a filesystem broker in a temporary folder. The child is killed while it runs
the base config script; acks_late with reject_on_worker_lost gives the message back, the new child
finds the turn's lease held, waits it out, takes the turn over and finishes the same attempt.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from celery import Celery, current_app
from django.db import connection

from maxportal.kernel.actors import ENGINE
from provisioning.models import ChecklistStep, Container, StepRun
from provisioning.services import checklist_ensure_all, step_run_start

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("the worker process needs a database it can share with the test (PostgreSQL)")


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "--ppid", str(pid), "-o", "pid="], capture_output=True, text=True, check=False)
    return [int(p) for p in out.stdout.split()]


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def test_a_step_whose_worker_child_is_killed_is_finished_by_the_same_attempt(max_plan, tmp_path, monkeypatch):
    queue_dir = tmp_path / "queue"
    queue_dir.mkdir()
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.provisioning.kill_settings",
        "KILLTEST_QUEUE_DIR": str(queue_dir),
        "DATABASE_URL": f"postgres://{db['USER']}{':' + db['PASSWORD'] if db.get('PASSWORD') else ''}"
                        f"@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        "DJANGO_LOG_LEVEL": "WARNING",
    }
    sender = Celery("killtest-sender", set_as_current=False)
    sender.conf.update(broker_url="filesystem://", broker_transport_options={
        "data_folder_in": str(queue_dir), "data_folder_out": str(queue_dir)})
    # The broker boundary: what this process sends goes to the worker's broker.
    monkeypatch.setattr(current_app._get_current_object(), "send_task", sender.send_task)

    checklist_ensure_all()
    ct201 = Container.objects.select_related("host").get(vmid=201)
    ct201.host.executor = "simulated"
    ct201.host.save()
    ChecklistStep.objects.filter(container=ct201, step="lxc_created").update(state="done")

    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "maxportal", "worker", "-P", "prefork", "-c", "1",
         "-l", "warning", "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        child = _wait_for(lambda: _children(worker.pid), 30, "the worker's child process")[0]
        run = step_run_start(container=ct201, step="base_config", actor=ENGINE)
        # The child claims the turn and runs the 12 s script ...
        _wait_for(lambda: StepRun.objects.get(pk=run.pk).turn == 1, 30, "the worker to claim the turn")
        time.sleep(1)
        # ... when it is killed
        os.kill(child, signal.SIGKILL)
        _wait_for(lambda: StepRun.objects.get(pk=run.pk).state != "running", 90, "the step to finish")
        run.refresh_from_db()
        cell = ChecklistStep.objects.get(container=ct201, step="base_config")
        assert (run.state, cell.state, cell.attempts) == ("succeeded", "done", 1), cell.note
        assert StepRun.objects.filter(step=cell).count() == 1, "the same attempt finished the step"
        assert _children(worker.pid) and child not in _children(worker.pid), "a new child took over"
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(timeout=10)

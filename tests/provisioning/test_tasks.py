"""The steps on a real Celery worker (celery.contrib.testing.worker), against the local Proxmox.

The broker is Redis when CELERY_BROKER_URL names one (CI and this machine: redis://127.0.0.1:6379/N),
else kombu's in-memory transport, so the suite runs with nothing else started. Each test consumes
its own queue, so a shared Redis database never hands it someone else's messages.
"""

import os
import time
import uuid

import pytest
from celery import Celery
from celery.contrib.testing.worker import start_worker
from django.db import OperationalError, connections

from provisioning import tasks
from provisioning.grid import provisioning_in_progress
from provisioning.services import container_provision, step_run_start, step_tick

from .engine import row, states

pytestmark = pytest.mark.slow


def _broker_url() -> str:
    url = os.environ.get("CELERY_BROKER_URL", "")
    return url if url.startswith("redis://") else "memory://"


@pytest.fixture
def worker(settings):
    """A real worker with a threads pool (steps of different containers overlap), on its own queue.

    Its app is a fresh one configured like maxportal's (acks_late, reject_on_worker_lost ...), with
    the test's broker; while the worker runs it is the current app, so the engine's
    ``send_task`` (engine.queue) goes to it.
    """
    app = Celery("maxportal-test", set_as_current=False)
    app.config_from_object("django.conf:settings", namespace="CELERY")
    app.conf.update(
        broker_url=_broker_url(),
        broker_transport_options={} if _broker_url().startswith("redis") else {"polling_interval": 0.05},
        task_default_queue=f"test-provisioning-{uuid.uuid4().hex[:8]}",
    )
    assert app.conf.task_acks_late and app.conf.task_reject_on_worker_lost
    # SQLite's shared in-memory test database locks whole tables (no busy wait): one worker thread
    # there; PostgreSQL gets four, so steps of the container overlap as in production.
    concurrency = 4 if connections["default"].vendor == "postgresql" else 1
    try:
        with start_worker(app, pool="threads", concurrency=concurrency, perform_ping_check=False, loglevel="WARNING",
                          shutdown_timeout=30) as running:
            yield running
    finally:
        app.close()
        # The worker's threads opened their own database connections: close them so the test
        # database can be flushed and dropped.
        connections.close_all()


@pytest.fixture
def ct201(transactional_db, local_ct201, settings):
    """CT201 on the local Proxmox; the worker polls a Proxmox task every 50 ms."""
    settings.MAXPORTAL_STEP_POLL_SECONDS = 0.05
    return local_ct201


def _wait_until_settled(container, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if not provisioning_in_progress(containers=[container]):
                return states(container)
        except OperationalError:
            pass  # SQLite's shared in-memory test database locks whole tables while the worker writes
        time.sleep(0.2)
    pytest.fail(f"steps still running after {timeout} s: {states(container)}")


@pytest.mark.pve(time_scale=0.02)
def test_a_worker_takes_one_container_through_every_step_to_test_signal_done(
    ct201, operator, worker, pve_client
):
    # Given the manual steps are ticked
    step_tick(container=ct201, step="m365_account", actor=operator)
    step_tick(container=ct201, step="auth_complete", actor=operator)
    # When provisioning is queued (the messages go to the worker after commit)
    container_provision(container=ct201, actor=operator)
    # Then the worker runs every automated step, each queuing the next, to test signal done
    final = _wait_until_settled(ct201)
    assert set(final.values()) == {"done"}, final
    assert pve_client.current_status(201)["status"] == "running"
    assert "mp0" in pve_client.get_config(201)


@pytest.mark.pve(time_scale=0.02)
def test_a_message_delivered_twice_to_the_worker_creates_one_container(ct201, operator, worker, pve):
    run = step_run_start(container=ct201, step="lxc_created", actor=operator)
    # The same message again, as a broker re-delivery after a lost ack would send it
    tasks.step_advance.apply_async(args=(run.pk, 0))
    _wait_until_settled(ct201)
    assert row(ct201, "lxc_created").state == "done"
    creates = [r for r in pve.requests if r[0] == "POST" and r[1].rstrip("/").endswith("/nodes/ax42/lxc")]
    assert len(creates) == 1

"""Settings of the worker processes that test_worker_kill.py kills: the real settings, on the test's
PostgreSQL database and Redis broker, consuming the test's own queue, with short leases, a fast
reaper (beat embedded in the worker) and simulated scripts that take a few seconds.

With KILLTEST_KILL_AT_PUBLISH set, the worker kills itself (SIGKILL, once: a marker file says it
happened) at the broker boundary, when it is about to publish turn 1 of an attempt: after the
transaction that committed turn 0 and before the message for turn 1 leaves. That is the window of
issue 8 item 1. KILLTEST_KILL_GROUP=1 kills the worker's whole process group (a threads worker and
its embedded beat, as a crashed service), else only the process itself (a prefork pool child).
Every task start is logged to KILLTEST_TASK_LOG as "<pid> <task> <args>", so the test knows which
process runs a turn.
"""

import os
import signal
from pathlib import Path

from celery.app.base import Celery
from celery.signals import task_prerun

from maxportal.settings import *  # noqa: F403

CELERY_BROKER_URL = os.environ["CELERY_BROKER_URL"]
CELERY_TASK_DEFAULT_QUEUE = os.environ["KILLTEST_QUEUE"]
CELERY_BEAT_SCHEDULER = "celery.beat:PersistentScheduler"
# Short by default so the test is quick; KILLTEST_LEASE_SECONDS=30 KILLTEST_GRACE_SECONDS=30
# KILLTEST_REAP_SECONDS=15 measure the production defaults.
CELERY_BEAT_SCHEDULE = {"provisioning-reap-steps": {
    "task": "provisioning.steps_reap", "schedule": float(os.environ.get("KILLTEST_REAP_SECONDS", 1.0))}}
MAXPORTAL_STEP_LEASE_SECONDS = float(os.environ.get("KILLTEST_LEASE_SECONDS", 3.0))
MAXPORTAL_STEP_MESSAGE_GRACE_SECONDS = float(os.environ.get("KILLTEST_GRACE_SECONDS", 3.0))
MAXPORTAL_STEP_POLL_SECONDS = 0.2
MAXPORTAL_SIMULATED_TIME_SCALE = 1.0
MAXPORTAL_SIMULATED_STEP_SECONDS = {
    "base_config": 6.0, "clis_installed": 0.2, "systemd_setup": 0.2, "signal_dir": 0.2, "repo_cloned": 0.2,
    "services_running": 0.2, "pct_set": 0.1,
}
MAXPORTAL_PVE_RETRY_BASE_DELAY = 0.05
MAXPORTAL_PVE_RETRY_MAX_DELAY = 0.2

_KILL_MARKER = os.environ.get("KILLTEST_KILL_AT_PUBLISH", "")

if _KILL_MARKER:
    _send_task = Celery.send_task

    def _send_task_or_die(self, name, args=None, *more, **options):
        if name == "provisioning.step_advance" and args and args[1] == 1 and not Path(_KILL_MARKER).exists():
            Path(_KILL_MARKER).write_text(f"killed before publishing {args}\n")
            if os.environ.get("KILLTEST_KILL_GROUP") == "1":
                os.killpg(os.getpgid(0), signal.SIGKILL)
            os.kill(os.getpid(), signal.SIGKILL)
        return _send_task(self, name, args, *more, **options)

    Celery.send_task = _send_task_or_die


@task_prerun.connect
def _log_task_start(task=None, args=None, **kwargs):
    with open(os.environ["KILLTEST_TASK_LOG"], "a") as log:
        log.write(f"{os.getpid()} {task.name} {list(args or [])}\n")

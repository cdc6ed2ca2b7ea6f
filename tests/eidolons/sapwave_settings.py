"""Settings of the worker and beat processes the SapWave process tests start: the real settings,
with the test's Redis broker and its own queue, beat looking at its schedule every second, and only
the beat entries the test asks for (the test database holds them)."""

import os

from maxportal.settings import *  # noqa: F403

CELERY_BROKER_URL = os.environ["SAPWAVE_TEST_BROKER"]
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_TASK_DEFAULT_QUEUE = os.environ["SAPWAVE_TEST_QUEUE"]
CELERY_BEAT_MAX_LOOP_INTERVAL = 1
CELERY_BEAT_SCHEDULE = (
    {"sapwaves-sweep": {"task": "eidolons.sapwaves_sweep", "schedule": 1.0}}
    if os.environ.get("SAPWAVE_TEST_SWEEP") else {}
)

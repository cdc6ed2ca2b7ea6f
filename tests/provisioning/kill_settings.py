"""Settings of the worker process that test_worker_kill.py kills: the real settings, with a
simulated base config that takes 12 s, short script time limits and leases, and a filesystem
broker in the test's own folder."""

import os

from maxportal.settings import *  # noqa: F403

MAXPORTAL_SIMULATED_TIME_SCALE = 1.0
MAXPORTAL_SCRIPT_TIMEOUTS = {"base_config": 15}
MAXPORTAL_STEP_LEASE_MARGIN_SECONDS = 2
CELERY_BROKER_URL = "filesystem://"
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "data_folder_in": os.environ["KILLTEST_QUEUE_DIR"],
    "data_folder_out": os.environ["KILLTEST_QUEUE_DIR"],
    "polling_interval": 0.1,
}

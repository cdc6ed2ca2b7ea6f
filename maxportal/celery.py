"""The Celery application of maxportal (workers, beat and the web process share it)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "maxportal.settings")

app = Celery("maxportal")
# Every CELERY_* Django setting configures Celery; see maxportal/settings.py for the reasons.
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

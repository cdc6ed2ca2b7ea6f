"""Health of the parts maxportal needs: the database and the Celery broker."""

from django.conf import settings
from django.db import connection
from kombu import Connection


def check_database() -> str | None:
    """None when the database answers, else what went wrong."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any driver error means "down"; the text says why
        return f"{type(exc).__name__}: {exc}".strip()
    return None


def check_broker() -> str | None:
    """None when the broker accepts a connection within the configured timeout."""
    timeout = settings.MAXPORTAL_HEALTH_BROKER_TIMEOUT
    # The same URL and transport options the worker uses (settings are Celery's configuration).
    broker = Connection(
        settings.CELERY_BROKER_URL,
        transport_options=getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {}),
        connect_timeout=timeout,
    )
    try:
        with broker as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout, interval_start=0, interval_step=0)
    except Exception as exc:  # kombu raises many kinds; all mean "down"
        return f"{type(exc).__name__}: {exc}".strip()
    return None

"""Celery tasks of the eidolons app: thin, they call the services."""

from celery import shared_task

from . import services


@shared_task(name="eidolons.idempotency_purge", ignore_result=True)
def idempotency_purge() -> int:
    """Hourly (beat): forget Idempotency-Key answers past their TTL. Idempotent: a second run deletes nothing."""
    return services.idempotency_records_purge()

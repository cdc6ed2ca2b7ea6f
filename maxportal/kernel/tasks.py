"""Celery tasks of the kernel: housekeeping every app relies on."""

from celery import shared_task

from .idempotency import idempotency_records_purge


@shared_task(name="kernel.idempotency_purge", ignore_result=True)
def idempotency_purge() -> int:
    """Hourly (beat): forget Idempotency-Key answers past their TTL. Idempotent: a second run deletes nothing."""
    return idempotency_records_purge()

"""The kernel's one table: stored first answers to writes sent with an Idempotency-Key."""

from django.db import models


class IdempotencyRecord(models.Model):
    """The first answer to a write sent with an Idempotency-Key, replayed for retries.

    Written in the same transaction as the work, unique per caller: ``owner`` is ``token:<id>`` for
    an Eidolon's token or ``user:<id>`` for a staff session (a string, so the kernel needs no app's
    model). Records are purged after a day (``idempotency_records_purge``).
    """

    owner = models.CharField(max_length=40, help_text="token:<id> or user:<id>: whose key this is.")
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of method, path and body.")
    status_code = models.PositiveSmallIntegerField()
    response = models.TextField(help_text="The JSON body exactly as first sent (replayed byte for byte).")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["owner", "key"], name="idempotency_key_per_owner"),
        ]

    def __str__(self):
        return f"{self.method} {self.path} key={self.key}"

"""The kernel: what every maxportal app stands on, importing none of them.

It owns the domain errors (codes, no HTTP), the one ``Actor``, the API's error schema, idempotency
and its record, the per-token rate limit, database helpers for async views and long scripts, the
health checks and a read-only admin inline. Domain apps import it; it imports no app. The HTTP
status of each error is decided once, in the API root (``maxportal/api.py``).
"""

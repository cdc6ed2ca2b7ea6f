"""Database connections around work that waits: async views and long scripts."""

import functools

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections, connection


def release_connection() -> None:
    """Give this thread's connection (or pool slot) back before a long wait; the next query opens
    one again. Inside a transaction (tests) it stays."""
    if not connection.in_atomic_block:
        connection.close()


def db_sync_to_async(func):
    """Run ``func`` (database work) from an async view without pinning a connection to the request.

    With MAXPORTAL_INBOX_THREAD_POOL (the default) it runs in asgiref's shared thread pool, whose few
    threads keep their persistent connections: a thousand waiting polls use a handful of backends.
    Off, it runs on the request's own thread (what Django does by default, and what tests inside one
    uncommitted transaction need); the view then closes that thread's connection before it waits.
    """
    if not settings.MAXPORTAL_INBOX_THREAD_POOL:
        return sync_to_async(func, thread_sensitive=True)

    @functools.wraps(func)
    def in_pool(*args, **kwargs):
        # Pool threads see no request_started/finished: honour CONN_MAX_AGE (or hand a pooled
        # connection back, CONN_MAX_AGE=0) around each call, as Django does around a request.
        close_old_connections()
        try:
            return func(*args, **kwargs)
        finally:
            close_old_connections()

    return sync_to_async(in_pool, thread_sensitive=False)

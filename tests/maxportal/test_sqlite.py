"""SQLite, the embedded default, for concurrent readers and one writer (issue 8 item 11)."""

import threading

import pytest
from django.contrib.auth.models import Group
from django.db import connection, connections, transaction

pytestmark = pytest.mark.django_db(transaction=True)


def _sqlite_only():
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's journal and locking")


def test_the_database_runs_in_wal_mode_with_a_busy_timeout_and_immediate_writes():
    _sqlite_only()
    with connection.cursor() as cursor:
        journal = cursor.execute("PRAGMA journal_mode").fetchone()[0]
        busy_ms = cursor.execute("PRAGMA busy_timeout").fetchone()[0]
    assert (journal, busy_ms >= 5000, connection.transaction_mode) == ("wal", True, "IMMEDIATE")


def test_a_reader_on_another_connection_is_not_blocked_by_an_open_write():
    """The shared-cache in-memory test database failed this with "database table is locked"."""
    _sqlite_only()
    Group.objects.create(name="before")
    result = {}

    def read():
        try:
            result["names"] = list(Group.objects.values_list("name", flat=True))
        except Exception as exc:  # reported by the assertion below
            result["error"] = repr(exc)
        finally:
            connections.close_all()

    with transaction.atomic():
        Group.objects.create(name="during")  # holds the write lock until the block ends
        reader = threading.Thread(target=read)
        reader.start()
        reader.join(timeout=10)
    assert result == {"names": ["before"]}

"""Waking an Eidolon's waiting inbox polls the moment a signal for it commits.

How a signal reaches a waiting ``GET /api/v1/signals?wait=N``:
- ``announce_in_transaction()`` runs inside the transaction that writes the signal. On PostgreSQL it
  queues ``pg_notify('maxportal_signals', '<eidolon id>')``, which PostgreSQL delivers only when
  that transaction commits (and never if it rolls back). In every database it also registers an
  on-commit hook that wakes polls waiting in this same process.
- Each event loop of the process keeps ONE listening connection (psycopg 3, async, autocommit,
  ``LISTEN maxportal_signals``) and wakes the polls waiting on that Eidolon. A waiting poll holds
  no database connection and no thread: only an ``asyncio.Event``.
- A waiting poll also looks at the database every ``MAXPORTAL_SIGNAL_POLL_INTERVAL`` seconds: the
  safety net if a notification is lost (listener reconnecting, another database), and the way
  SQLite (which has no LISTEN) sees signals written by other processes.
"""

import asyncio
import contextlib
import logging
import threading
import weakref
from collections import defaultdict

from django.db import connection, connections, transaction

logger = logging.getLogger(__name__)

CHANNEL = "maxportal_signals"

_lock = threading.Lock()
# eidolon id -> the (event loop, event) pairs of the polls waiting on it in this process.
_waiters: dict[int, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = defaultdict(set)
_listeners: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Listener]" = weakref.WeakKeyDictionary()


def announce_in_transaction(recipient_id: int) -> None:
    """Wake the recipient's waiting polls when (and only if) the current transaction commits."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, str(recipient_id)])
    transaction.on_commit(lambda: wake_local(recipient_id))


def wake_local(recipient_id: int) -> None:
    """Set the events of the polls waiting on ``recipient_id`` in this process (thread-safe)."""
    with _lock:
        entries = list(_waiters.get(recipient_id, ()))
    for loop, event in entries:
        with contextlib.suppress(RuntimeError):  # that poll's loop has closed meanwhile
            loop.call_soon_threadsafe(event.set)


@contextlib.asynccontextmanager
async def waiting_for(recipient_id: int):
    """Register a waiter for ``recipient_id`` for the duration of the block; yields its event.

    Register before looking at the database: a signal committed between the look and the wait
    then still sets the event, so no wake-up is lost.
    """
    loop = asyncio.get_running_loop()
    entry = (loop, asyncio.Event())
    with _lock:
        _waiters[recipient_id].add(entry)
    try:
        await ensure_listener()
        yield entry[1]
    finally:
        with _lock:
            _waiters[recipient_id].discard(entry)
            if not _waiters[recipient_id]:
                del _waiters[recipient_id]


async def ensure_listener() -> None:
    """Start this event loop's LISTEN connection on PostgreSQL (once); no-op on other databases."""
    if connections["default"].vendor != "postgresql":
        return
    loop = asyncio.get_running_loop()
    listener = _listeners.get(loop)
    if listener is None:
        listener = _listeners[loop] = _Listener()
    await listener.ensure_started()


def listener_connected() -> bool:
    """Whether the running loop's listener is connected (for tests and health)."""
    try:
        listener = _listeners.get(asyncio.get_running_loop())
    except RuntimeError:
        return False
    return bool(listener and listener.connected.is_set())


class _Listener:
    """One LISTEN connection per event loop, dispatching notifications to local waiters."""

    RETRY_SECONDS = 2.0

    def __init__(self):
        self.connected = asyncio.Event()
        self.task: asyncio.Task | None = None
        self._last_failure = 0.0

    async def ensure_started(self) -> None:
        loop = asyncio.get_running_loop()
        if self.task is None or self.task.done():
            if self.task is not None and loop.time() - self._last_failure < self.RETRY_SECONDS:
                return  # failed a moment ago: polls fall back to polling until the retry
            self.connected.clear()
            self.task = loop.create_task(self._run(), name="maxportal-signal-listener")
        if not self.connected.is_set():
            # Wait briefly so the LISTEN is in place before the caller looks at the database;
            # if PostgreSQL is slow, the poll interval still covers it.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.connected.wait()), timeout=2.0)

    async def _run(self) -> None:
        import psycopg

        params = _conninfo()
        try:
            aconn = await psycopg.AsyncConnection.connect(**params, autocommit=True)
        except Exception:
            self._last_failure = asyncio.get_running_loop().time()
            logger.exception("signal listener: cannot connect to PostgreSQL; inbox polls fall back to polling")
            return
        try:
            await aconn.execute(f"LISTEN {CHANNEL}")
            self.connected.set()
            async for notify in aconn.notifies():
                with contextlib.suppress(ValueError):
                    wake_local(int(notify.payload))
        except asyncio.CancelledError:
            raise
        except Exception:
            self._last_failure = asyncio.get_running_loop().time()
            logger.exception("signal listener: connection lost; will reconnect on the next poll")
        finally:
            self.connected.clear()
            with contextlib.suppress(Exception):
                await aconn.close()


def _conninfo() -> dict:
    """Connection parameters of the default database (the test database's name under tests)."""
    s = connections["default"].settings_dict
    params = {"dbname": s["NAME"], "user": s.get("USER") or None, "password": s.get("PASSWORD") or None,
              "host": s.get("HOST") or None, "port": s.get("PORT") or None, "application_name": "maxportal-listener"}
    return {k: v for k, v in params.items() if v is not None}

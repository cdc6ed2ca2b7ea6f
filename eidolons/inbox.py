"""Waking an Eidolon's waiting inbox polls the moment a signal for it commits: one poll per signal.

How a signal reaches a waiting ``GET /api/v1/signals?wait=N``:
- ``announce_in_transaction()`` runs inside the transaction that writes the signal. On PostgreSQL it
  queues ``pg_notify('maxportal_signals', '<eidolon id>:<agent id>')``, which PostgreSQL delivers
  only when that transaction commits (never if it rolls back), to every web process. Elsewhere
  (SQLite) an on-commit hook wakes polls waiting in this same process.
- Each event loop of the process keeps ONE listening connection (psycopg 3, async, autocommit,
  ``LISTEN maxportal_signals``). A waiting poll holds no database connection and no thread: only
  an entry in ``_waiters``.
- A notification wakes ONE poll of that Eidolon that may take the signal (the one waiting longest;
  a poll for one agent does not take a sibling's signal), not all of them: with a hundred polls
  parked on an inbox, waking all would cost a hundred database claims for one signal. A poll that
  was woken but leaves without taking what woke it (it returned other signals, its client went
  away) passes the wake-up on; one that returns a full page passes one on too (there may be more).
- A waiting poll also looks at the database every ``MAXPORTAL_SIGNAL_POLL_INTERVAL`` seconds and
  when its wait is over: the safety net for a lost notification (listener reconnecting) and a
  signal becoming deliverable again after its visibility timeout, and the way SQLite (no LISTEN)
  sees signals written by other processes.
"""

import asyncio
import contextlib
import logging
import threading
import weakref
from collections import defaultdict
from dataclasses import dataclass, field

from django.db import connection, connections, transaction

logger = logging.getLogger(__name__)

CHANNEL = "maxportal_signals"


@dataclass(eq=False)
class Waiter:
    """One waiting poll: woken through its event, from any thread."""

    loop: asyncio.AbstractEventLoop
    agent_id: int | None
    event: asyncio.Event = field(default_factory=asyncio.Event)
    woken: bool = False  # set (under _lock) when a wake-up was handed to this poll

    def may_take(self, agent_id: int | None) -> bool:
        return agent_id is None or self.agent_id is None or self.agent_id == agent_id

    def reset(self) -> None:
        with _lock:
            self.woken = False
            self.event.clear()


_lock = threading.Lock()
# eidolon id -> its waiting polls in this process, longest waiting first.
_waiters: dict[int, list[Waiter]] = defaultdict(list)
_listeners: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Listener]" = weakref.WeakKeyDictionary()


def announce_in_transaction(recipient_id: int, agent_id: int | None = None) -> None:
    """Wake one of the recipient's waiting polls when (and only if) the current transaction commits."""
    if connection.vendor == "postgresql":
        # Delivered to this process too, through its listener: no local shortcut, or one signal
        # would wake two polls here.
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, f"{recipient_id}:{agent_id or ''}"])
    else:
        transaction.on_commit(lambda: wake_local(recipient_id, agent_id))


def wake_local(recipient_id: int, agent_id: int | None = None, *, exclude: Waiter | None = None) -> bool:
    """Hand a wake-up to the longest-waiting poll of ``recipient_id`` here that may take the signal."""
    with _lock:
        for waiter in _waiters.get(recipient_id, ()):
            if waiter is not exclude and not waiter.woken and waiter.may_take(agent_id):
                waiter.woken = True
                break
        else:
            return False
    try:
        waiter.loop.call_soon_threadsafe(waiter.event.set)
    except RuntimeError:  # that poll's loop has closed meanwhile: try the next one
        return wake_local(recipient_id, agent_id, exclude=waiter)
    return True


def _parse(payload: str) -> tuple[int, int | None]:
    eidolon, _, agent = payload.partition(":")
    return int(eidolon), int(agent) if agent else None


@contextlib.asynccontextmanager
async def waiting_for(recipient_id: int, agent_id: int | None = None):
    """Register a waiting poll for the duration of the block; yields its ``Waiter``.

    Register before looking at the database: a signal committed between the look and the wait
    then still wakes this poll, so no wake-up is lost.
    """
    waiter = Waiter(loop=asyncio.get_running_loop(), agent_id=agent_id)
    with _lock:
        _waiters[recipient_id].append(waiter)
    try:
        await ensure_listener()
        yield waiter
    finally:
        with _lock:
            _waiters[recipient_id].remove(waiter)
            if not _waiters[recipient_id]:
                del _waiters[recipient_id]
            unused = waiter.woken
        if unused:
            # Woken, but leaving without having looked for what woke it: someone else must.
            wake_local(recipient_id, None, exclude=waiter)


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
    """One LISTEN connection per event loop, dispatching notifications to local waiters.

    It reconnects by itself (every RETRY_SECONDS) when the connection drops; notifications sent
    meanwhile are lost, so after a reconnect every poll waiting here looks at the database once.
    """

    RETRY_SECONDS = 1.0

    def __init__(self):
        self.connected = asyncio.Event()
        self.task: asyncio.Task | None = None
        self.connects = 0

    async def ensure_started(self) -> None:
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run(), name="maxportal-signal-listener")
        if not self.connected.is_set():
            # Wait briefly so the LISTEN is in place before the caller looks at the database;
            # if PostgreSQL is slow, the poll's own looks still cover it.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.connected.wait()), timeout=2.0)

    async def _run(self) -> None:
        import psycopg

        while True:
            try:
                aconn = await psycopg.AsyncConnection.connect(**_conninfo(), autocommit=True)
            except Exception:
                logger.exception("signal listener: cannot connect to PostgreSQL; retrying in %s s",
                                 self.RETRY_SECONDS)
                await asyncio.sleep(self.RETRY_SECONDS)
                continue
            try:
                await aconn.execute(f"LISTEN {CHANNEL}")
                self.connects += 1
                self.connected.set()
                if self.connects > 1:
                    _wake_all(asyncio.get_running_loop())
                async for notify in aconn.notifies():
                    with contextlib.suppress(ValueError):
                        wake_local(*_parse(notify.payload))
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("signal listener: connection lost; reconnecting in %s s", self.RETRY_SECONDS,
                               exc_info=True)
            finally:
                self.connected.clear()
                with contextlib.suppress(Exception):
                    await aconn.close()
            await asyncio.sleep(self.RETRY_SECONDS)


def _wake_all(loop: asyncio.AbstractEventLoop) -> None:
    """Every poll waiting on ``loop`` looks at the database once (after notifications may have been lost)."""
    with _lock:
        waiters = [w for ws in _waiters.values() for w in ws if w.loop is loop and not w.woken]
        for w in waiters:
            w.woken = True
    for w in waiters:
        w.event.set()


def _conninfo() -> dict:
    """Connection parameters of the default database (the test database's name under tests)."""
    s = connections["default"].settings_dict
    params = {"dbname": s["NAME"], "user": s.get("USER") or None, "password": s.get("PASSWORD") or None,
              "host": s.get("HOST") or None, "port": s.get("PORT") or None, "application_name": "maxportal-listener"}
    return {k: v for k, v in params.items() if v is not None}

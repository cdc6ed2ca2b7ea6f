"""The inbox long-poll under a real ASGI server (uvicorn on a free loopback port).

On PostgreSQL a waiting poll wakes on LISTEN/NOTIFY: the tests switch off the in-process wake-up
so that only the notification can wake it, and measure the wake-up latency from the commit of a
handoff to the poll's answer. A waiting poll holds no database connection. On SQLite the poll falls
back to looking every MAXPORTAL_SIGNAL_POLL_INTERVAL.
"""

import gc
import json
import socket
import statistics
import threading
import time
import urllib.request

import pytest
import uvicorn
from django.core.cache import cache
from django.db import OperationalError, connection, transaction
from django.db.backends.signals import connection_created

from eidolons import inbox
from eidolons.models import Eidolon, Signal
from eidolons.services import api_token_issue, signal_send
from leads.services import lead_handoff, lead_ingest
from maxportal.kernel.actors import Actor

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def server(settings):
    """uvicorn serving maxportal.asgi in a thread of this process; stopped by the fixture."""
    settings.MAXPORTAL_INBOX_THREAD_POOL = True
    cache.clear()  # rate-limit counters of token ids earlier tests used
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(512)
    config = uvicorn.Config("maxportal.asgi:application", lifespan="off", log_level="warning",
                            backlog=512, timeout_keep_alive=1)
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert srv.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    srv.should_exit = True
    thread.join(timeout=10)
    sock.close()
    assert not thread.is_alive(), "uvicorn did not stop"
    # The server's pool threads are gone with its loop; collect their connections so that the
    # test database can be dropped.
    gc.collect()
    if connection.vendor == "postgresql":
        deadline = time.monotonic() + 3
        while _backends() > 1 and time.monotonic() < deadline:
            gc.collect()
            time.sleep(0.05)


@pytest.fixture
def claims():
    """The times at which any thread claimed from an inbox (the SELECT ... FOR UPDATE SKIP LOCKED
    of ``signal_claim``), counted at the database boundary: a wrapper on every connection the server
    opens (its pool threads hand their connection back after each call, so each claim opens one)."""
    times, wrapped = [], []

    def count(execute, sql, params, many, context):
        if "eidolons_signal" in sql and "SKIP LOCKED" in sql:
            times.append(time.perf_counter())
        return execute(sql, params, many, context)

    def on_connect(sender, connection, **kwargs):
        if count not in connection.execute_wrappers:
            connection.execute_wrappers.append(count)
            wrapped.append(connection)

    connection_created.connect(on_connect, weak=False)
    yield times
    connection_created.disconnect(on_connect)
    for conn in wrapped:
        if count in conn.execute_wrappers:
            conn.execute_wrappers.remove(count)


def _get(url, token, timeout=40):
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (loopback test server)
        return response.status, json.loads(response.read())


class Poll(threading.Thread):
    def __init__(self, url, token):
        super().__init__(daemon=True)
        self.url, self.token, self.result, self.returned_at = url, token, None, None

    def run(self):
        try:
            self.result = _get(self.url, self.token)
        except Exception as exc:  # reported by the test's assertion, with the reason
            self.result = (getattr(exc, "code", None), repr(exc))
        finally:
            self.returned_at = time.perf_counter()


def _wait_parked(eidolon_id, count=1, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with inbox._lock:
            if len(inbox._waiters.get(eidolon_id, ())) >= count:
                return
        time.sleep(0.005)
    raise AssertionError(f"{count} polls did not start waiting within {timeout} s")


def _retry_while_locked(write, timeout=5.0):
    """The SQLite test database is in memory with a shared cache: a writer meeting the poll's claim
    on the same table gets "database table is locked" at once (no busy timeout applies there, unlike
    the file database make run uses). Try again for a few seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with transaction.atomic():
                return write()
        except OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _backends() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
        return cursor.fetchone()[0]


def _pg_only():
    if connection.vendor != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's; SQLite is covered by the polling fallback test")


@pytest.mark.postgres
def test_a_handoff_wakes_the_next_eidolons_waiting_poll_through_notify_within_milliseconds(
    server, tokens
):
    _pg_only()
    lilly = Actor.for_token(api_token_issue(eidolon=Eidolon.objects.get(slug="lilly"))[0])
    mike = Eidolon.objects.get(slug="mike")
    url = f"{server}/api/v1/signals?wait=10"
    latencies = []
    for i in range(15):
        lead, _ = lead_ingest(actor=lilly, company=f"Acme {i}", email=f"a@acme{i}.example")
        poll = Poll(url, tokens["mike"])
        poll.start()
        _wait_parked(mike.pk)
        time.sleep(0.02)  # let the poll reach its wait (the first look at the inbox found nothing)

        with transaction.atomic():
            lead_handoff(lead_id=lead.pk, actor=lilly, summary="qualified")
        committed_at = time.perf_counter()

        poll.join(timeout=15)
        status, body = poll.result
        assert status == 200 and [s["lead_id"] for s in body] == [str(lead.pk)], "the poll got the handoff"
        latencies.append((poll.returned_at - committed_at) * 1000)

    p50, worst = statistics.median(latencies), max(latencies)
    print(f"\nlong-poll wake-up after commit (NOTIFY only), 15 handoffs: p50 {p50:.1f} ms, max {worst:.1f} ms")
    assert p50 < 50, f"wake-up p50 {p50:.1f} ms (poll interval is 5 s: NOTIFY did the waking)"
    assert worst < 1000


@pytest.mark.postgres
def test_many_waiting_polls_hold_no_database_connections(server, tokens, settings):
    _pg_only()
    polls_count = 100
    before = _backends()
    url = f"{server}/api/v1/signals?wait=4"
    polls = [Poll(url, tokens["mike"]) for _ in range(polls_count)]
    for p in polls:
        p.start()
    mike = Eidolon.objects.get(slug="mike")
    _wait_parked(mike.pk, count=polls_count, timeout=20)
    time.sleep(0.2)
    during = _backends()

    # One signal wakes them; one poll gets it, the others go back to waiting until their time is up.
    with transaction.atomic():
        signal_send(signal_type="TEST", sender="portal", recipient=mike, payload={})
    started = time.perf_counter()
    for p in polls:
        p.join(timeout=20)
    got = [p for p in polls if p.result and p.result[1]]

    print(f"\n{polls_count} parked polls: {during - before} more database backends than before "
          f"({before} -> {during}); all returned {time.perf_counter() - started:.1f} s after the signal")
    assert during - before <= 10, f"{polls_count} waiting polls opened {during - before} connections"
    assert len(got) == 1, "the signal was delivered to exactly one poll"


def test_without_notify_a_waiting_poll_finds_the_signal_at_the_next_look(server, tokens, settings):
    """A signal nobody announced (written by another process on SQLite, a notification lost while the
    listener reconnects on PostgreSQL): the poll still answers, within the poll interval."""
    settings.MAXPORTAL_SIGNAL_POLL_INTERVAL = 0.3
    mike = Eidolon.objects.get(slug="mike")
    poll = Poll(f"{server}/api/v1/signals?wait=10", tokens["mike"])
    poll.start()
    _wait_parked(mike.pk)
    # The row alone, without signal_send's announcement: only the poll's periodic look can find it.
    signal = _retry_while_locked(
        lambda: Signal.objects.create(signal_type="TEST", sender="portal", recipient=mike, payload={"n": 1})
    )
    sent_at = time.perf_counter()

    poll.join(timeout=15)

    assert poll.result[0] == 200, poll.result
    assert [s["id"] for s in poll.result[1]] == [signal.pk]
    assert poll.returned_at - sent_at < 2.0


def test_a_poll_with_nothing_to_deliver_answers_empty_when_its_wait_is_over(server, tokens):
    started = time.perf_counter()
    status, body = _get(f"{server}/api/v1/signals?wait=0.5", tokens["clara"])
    elapsed = time.perf_counter() - started
    assert (status, body) == (200, [])
    assert 0.45 <= elapsed < 3, f"returned after {elapsed:.2f} s"


def test_the_wait_is_capped_at_the_maximum(server, tokens, settings):
    settings.MAXPORTAL_SIGNAL_MAX_WAIT = 1
    started = time.perf_counter()
    _get(f"{server}/api/v1/signals?wait=600", tokens["clara"])
    assert time.perf_counter() - started < 4


@pytest.mark.postgres
def test_a_signal_wakes_one_of_the_polls_parked_on_the_inbox_not_all(server, tokens, claims):
    _pg_only()
    mike = Eidolon.objects.get(slug="mike")
    polls = [Poll(f"{server}/api/v1/signals?wait=3", tokens["mike"]) for _ in range(20)]
    for p in polls:
        p.start()
    _wait_parked(mike.pk, count=20)
    time.sleep(0.3)
    sent_at = time.perf_counter()
    with transaction.atomic():
        signal_send(signal_type="TEST", sender="portal", recipient=mike, payload={})
    time.sleep(1.0)
    woken_claims = len([t for t in claims if t > sent_at])
    for p in polls:
        p.join(timeout=10)

    assert len([p for p in polls if p.result and p.result[1]]) == 1
    assert woken_claims == 1, f"one signal made {woken_claims} polls look at the database"


@pytest.mark.postgres
def test_a_signal_for_one_agent_wakes_that_agents_poll_even_if_another_waited_longer(server, tokens):
    _pg_only()
    mike = Eidolon.objects.get(slug="mike")
    claude = Poll(f"{server}/api/v1/signals?wait=4&agent=claude", tokens["mike"])
    claude.start()
    _wait_parked(mike.pk, count=1)
    codex = Poll(f"{server}/api/v1/signals?wait=4&agent=codex", tokens["mike"])
    codex.start()
    _wait_parked(mike.pk, count=2)
    time.sleep(0.1)
    with transaction.atomic():
        signal_send(signal_type="TEST", sender="portal", recipient=mike, payload={},
                    agent=mike.agents.get(kind="codex"))
    sent_at = time.perf_counter()
    codex.join(timeout=10)
    claude.join(timeout=10)

    assert len(codex.result[1]) == 1 and codex.returned_at - sent_at < 1.0, "the codex poll got it at once"
    assert claude.result[1] == [], "the claude poll never takes codex's signal"


def test_a_signal_committed_in_this_process_wakes_the_poll_at_once_on_any_database(server, tokens, settings):
    """SQLite: the on-commit hook; PostgreSQL: the NOTIFY. Not the (here 30 s) periodic look."""
    settings.MAXPORTAL_SIGNAL_POLL_INTERVAL = 30
    mike = Eidolon.objects.get(slug="mike")
    poll = Poll(f"{server}/api/v1/signals?wait=10", tokens["mike"])
    poll.start()
    _wait_parked(mike.pk)
    time.sleep(0.05)
    signal = signal_send(signal_type="TEST", sender="portal", recipient=mike, payload={})
    sent_at = time.perf_counter()
    poll.join(timeout=15)
    assert [s["id"] for s in poll.result[1]] == [signal.pk]
    assert poll.returned_at - sent_at < 1.0


@pytest.mark.postgres
def test_after_the_listener_lost_its_connection_it_reconnects_and_waiting_polls_catch_up(server, tokens):
    _pg_only()
    mike = Eidolon.objects.get(slug="mike")
    poll = Poll(f"{server}/api/v1/signals?wait=15", tokens["mike"])
    poll.start()
    _wait_parked(mike.pk)
    time.sleep(0.1)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                       "WHERE application_name = 'maxportal-listener' AND datname = current_database()")
        assert cursor.fetchone() is not None, "the listener was connected"
    # The notification of this signal goes nowhere: nobody listens for a moment.
    signal = signal_send(signal_type="TEST", sender="portal", recipient=mike, payload={})
    sent_at = time.perf_counter()

    poll.join(timeout=20)

    assert [s["id"] for s in poll.result[1]] == [signal.pk]
    assert poll.returned_at - sent_at < 5, "delivered after the reconnect, not at the end of the 15 s wait"

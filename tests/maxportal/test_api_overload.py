"""Under overload the API sheds load with 503 + Retry-After, never a 500 nor a half-made move
(issue 8 item 3). PostgreSQL with psycopg's pool: every connection of the pool is taken, so a
request waits DATABASE_POOL_TIMEOUT (shortened here) and gets psycopg_pool.PoolTimeout."""

import threading

import pytest
from django.db import connection, connections
from psycopg_pool import PoolTimeout

from leads.models import Lead, StageTransition

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def exhausted_pool():
    """Hold every connection of the pool (the test's own included) with a 0.3 s wait for more."""
    if connection.vendor != "postgresql" or connection.pool is None:
        pytest.skip("psycopg's connection pool is PostgreSQL's")
    pool = connection.pool
    timeout, pool.timeout = pool.timeout, 0.3
    held = []
    try:
        while True:
            held.append(pool.getconn(timeout=0.3))
    except PoolTimeout:
        pass
    pool.pop_stats()  # count only the test's own requests
    yield pool
    for conn in held:
        pool.putconn(conn)
    pool.timeout = timeout


def _in_another_thread(call):
    """A request on a thread of its own: it needs a connection of its own from the pool."""
    result = {}

    def run():
        try:
            result["response"] = call()
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=30)
    return result["response"]


def test_a_handoff_while_the_pool_is_exhausted_answers_503_unavailable_with_retry_after(agents, lead_id, request):
    before = StageTransition.objects.filter(lead_id=lead_id).count()
    client = agents["lilly"]
    pool = request.getfixturevalue("exhausted_pool")  # after the lead exists

    response = _in_another_thread(lambda: client.post(f"/leads/{lead_id}/handoff", {"summary": "go"}, key="k1"))

    assert pool.get_stats().get("requests_errors") == 1, "the request timed out waiting for the pool"
    assert response.status_code == 503
    assert response.json()["error"] == "unavailable"
    assert int(response["Retry-After"]) >= 1
    # Nothing half made (the test's own connection reads it).
    assert Lead.objects.get(pk=lead_id).stage == "LeadGen"
    assert StageTransition.objects.filter(lead_id=lead_id).count() == before

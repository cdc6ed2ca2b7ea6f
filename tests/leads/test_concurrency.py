"""Concurrent handoffs and retries on PostgreSQL with real connections (threads): exactly one wins."""

import threading

import pytest
from django.db import connection, connections

from eidolons.models import Eidolon
from eidolons.services import api_token_issue
from leads.models import Lead, StageTransition
from tests.agents_api import AgentClient

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
]

THREADS = 8


@pytest.fixture(autouse=True)
def _postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("row locks and concurrent transactions are tested on PostgreSQL (SQLite serialises writers)")


def _race(calls):
    """Run the callables at once (a barrier releases them together); return their results."""
    barrier = threading.Barrier(len(calls))
    results = [None] * len(calls)

    def run(i, call):
        try:
            barrier.wait(timeout=10)
            results[i] = call()
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads), "a racing request hung"
    return results


@pytest.fixture
def mike_lead(max_plan):
    lilly = AgentClient(api_token_issue(eidolon=Eidolon.objects.get(slug="lilly"))[1])
    lead_id = lilly.post("/leads", {"company": "Acme", "email": "anna@acme.example"}).json()["id"]
    assert lilly.post(f"/leads/{lead_id}/handoff", {}).status_code == 200
    mike = Eidolon.objects.get(slug="mike")
    # Mike's agents, each with its own token (bound to the agent), all trying at once
    tokens = [api_token_issue(eidolon=mike)[1] for _ in range(THREADS)]
    return lead_id, tokens


def test_concurrent_handoffs_of_one_lead_make_exactly_one_transition_the_others_get_409(mike_lead):
    lead_id, tokens = mike_lead

    responses = _race([lambda t=t: AgentClient(t).post(f"/leads/{lead_id}/handoff", {"summary": "mine"})
                       for t in tokens])

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [409] * (THREADS - 1), statuses
    loser = next(r for r in responses if r.status_code == 409).json()
    assert (loser["stage"], loser["status"]) == ("Scoping", "in_progress"), "the 409 names the state the winner left"
    assert StageTransition.objects.filter(lead_id=lead_id, move="handoff", from_stage="FirstResponder").count() == 1
    assert Lead.objects.get(pk=lead_id).stage == "Scoping"
    assert Eidolon.objects.get(slug="clara").signals.filter(lead_id=lead_id).count() == 1


def test_concurrent_retries_with_one_idempotency_key_do_the_work_once_and_all_get_the_first_answer(mike_lead):
    lead_id, tokens = mike_lead
    client_token = tokens[0]

    responses = _race([lambda: AgentClient(client_token).post(f"/leads/{lead_id}/handoff", {"summary": "once"},
                                                              key="retry-1") for _ in range(THREADS)])

    assert {r.status_code for r in responses} == {200}, [r.status_code for r in responses]
    assert len({r.content for r in responses}) == 1, "every retry got the same answer"
    assert StageTransition.objects.filter(lead_id=lead_id, move="handoff", from_stage="FirstResponder").count() == 1


def test_concurrent_ingests_of_one_lead_create_it_once(max_plan_loaded_lilly):
    responses = _race([lambda: max_plan_loaded_lilly.post("/leads", {"company": "Acme", "email": "anna@acme.example"})
                       for _ in range(THREADS)])

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * (THREADS - 1) + [201], statuses
    assert Lead.objects.count() == 1
    assert {r.json()["id"] for r in responses} == {str(Lead.objects.get().pk)}


@pytest.fixture
def max_plan_loaded_lilly(max_plan):
    return AgentClient(api_token_issue(eidolon=Eidolon.objects.get(slug="lilly"))[1])

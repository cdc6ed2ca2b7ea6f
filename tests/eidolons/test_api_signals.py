"""The agents' API: reading and acknowledging the inbox, sending signals, heartbeats, health, rate limits."""

from datetime import timedelta

import pytest
from django.utils import timezone

from eidolons.models import CliAgent, Eidolon, Signal
from eidolons.services import signal_send
from tests.agents_api import AgentClient


def _signal(slug, **kw):
    return signal_send(signal_type=kw.pop("signal_type", "TEST"), sender="portal",
                       recipient=Eidolon.objects.get(slug=slug), payload=kw.pop("payload", {"n": 1}), **kw)


def test_the_inbox_returns_own_pending_signals_and_marks_them_delivered(agents):
    mine = _signal("mike")
    _signal("clara")

    body = agents["mike"].get("/signals").json()

    assert [s["id"] for s in body] == [mine.pk], "only Mike's own signal"
    assert body[0]["delivery_count"] == 1 and body[0]["delivered_at"]
    assert agents["mike"].get("/signals").json() == [], "not delivered twice within the visibility timeout"


def test_an_unacknowledged_signal_is_delivered_again_after_the_visibility_timeout(agents, settings):
    settings.MAXPORTAL_SIGNAL_VISIBILITY_TIMEOUT = 30
    signal = _signal("mike")
    agents["mike"].get("/signals")
    Signal.objects.filter(pk=signal.pk).update(delivered_at=timezone.now() - timedelta(seconds=31))

    again = agents["mike"].get("/signals").json()

    assert [s["id"] for s in again] == [signal.pk] and again[0]["delivery_count"] == 2
    agents["mike"].post(f"/signals/{signal.pk}/ack")
    Signal.objects.filter(pk=signal.pk).update(delivered_at=timezone.now() - timedelta(seconds=31))
    assert agents["mike"].get("/signals").json() == [], "acknowledged: never again"


def test_an_eidolon_cannot_read_another_inbox(agents):
    _signal("clara")
    response = agents["mike"].get("/signals", {"eidolon": "clara"})
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"
    assert Signal.objects.get().delivered_at is None


def test_staff_read_a_named_inbox(staff_api, max_plan):
    signal = _signal("clara")
    unnamed = staff_api.get("/signals")
    assert unnamed.status_code == 404, "staff must name the inbox"
    assert unnamed.json()["error"] == "not_found"
    assert [s["id"] for s in staff_api.get("/signals", {"eidolon": "clara"}).json()] == [signal.pk]


def test_ack_of_another_eidolons_signal_is_404_and_changes_nothing(agents):
    signal = _signal("clara")
    response = agents["mike"].post(f"/signals/{signal.pk}/ack")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
    signal.refresh_from_db()
    assert signal.acknowledged_at is None
    assert agents["clara"].post(f"/signals/{signal.pk}/ack").json()["acknowledged_at"]


def test_a_signal_for_one_agent_reaches_only_that_agent(agents, max_plan):
    mike = Eidolon.objects.get(slug="mike")
    signal = _signal("mike", agent=mike.agents.get(kind="codex"))
    assert agents["mike"].get("/signals", {"agent": "claude"}).json() == []
    assert [s["id"] for s in agents["mike"].get("/signals", {"agent": "codex"}).json()] == [signal.pk]


def test_an_eidolon_assigns_a_task_and_the_other_answers(agents, lead_id_for_lilly):
    sent = agents["lilly"].post("/signals", {"type": "TASK_ASSIGNMENT", "to": "maestro", "agent": "gemini",
                                             "lead_id": lead_id_for_lilly, "payload": {"task": "research Acme"}})
    assert sent.status_code == 201, sent.content
    assert sent.json()["sender"] == "LILLy" and sent.json()["agent"] == "gemini"

    task = agents["maestro"].get("/signals", {"agent": "gemini"}).json()[0]
    answer = agents["maestro"].post("/signals", {"type": "TASK_RESPONSE", "to": "lilly",
                                                 "payload": {"re": task["id"], "result": "done"}})
    assert answer.status_code == 201
    assert [s["type"] for s in agents["lilly"].get("/signals").json()] == ["PIPELINE_TRANSITION", "TASK_RESPONSE"]


@pytest.fixture
def lead_id_for_lilly(agents):
    return agents["lilly"].post("/leads", {"company": "Acme", "email": "anna@acme.example"}).json()["id"]


def test_agents_may_not_send_portal_signal_types(agents):
    response = agents["lilly"].post("/signals", {"type": "PIPELINE_TRANSITION", "to": "mike"})
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden" and not Signal.objects.exists()


def test_a_signal_about_a_lead_the_sender_cannot_see_is_refused(agents, lead_id_for_lilly):
    response = agents["clara"].post("/signals", {"type": "TASK_ASSIGNMENT", "to": "mike",
                                                 "lead_id": lead_id_for_lilly})
    assert response.status_code == 404
    assert (response.json()["error"], response.json()["field"]) == ("not_found", "lead_id")


@pytest.mark.parametrize(("body", "field"), [
    ({"type": "TASK_ASSIGNMENT", "to": "mike", "agent": "siri"}, "agent"),
    ({"type": "GOSSIP", "to": "mike"}, "type"),
    ({"type": "TASK_ASSIGNMENT", "to": "mike", "payload": "text"}, "payload"),
])
def test_malformed_signals_are_refused_naming_the_field(agents, body, field):
    response = agents["lilly"].post("/signals", body)
    assert response.status_code == 422
    assert field in response.content.decode()
    assert not Signal.objects.exists()


def test_a_signal_to_an_eidolon_that_does_not_exist_is_not_found(agents):
    response = agents["lilly"].post("/signals", {"type": "TASK_ASSIGNMENT", "to": "nobody"})
    assert response.status_code == 404
    assert (response.json()["error"], response.json()["field"]) == ("not_found", "to")
    assert not Signal.objects.exists()


def test_a_signal_to_an_agent_the_recipient_does_not_have_is_not_found(agents):
    CliAgent.objects.filter(eidolon__slug="mike", kind="gemini").delete()
    response = agents["lilly"].post("/signals", {"type": "TASK_ASSIGNMENT", "to": "mike", "agent": "gemini"})
    assert response.status_code == 404
    assert (response.json()["error"], response.json()["field"]) == ("not_found", "agent")
    assert not Signal.objects.exists()


def test_heartbeat_records_version_and_state_of_the_named_agent(agents):
    response = agents["mike"].post("/agents/heartbeat", {"kind": "codex", "version": "0.9.1", "state": "idle"})

    assert response.status_code == 200, response.content
    agent = CliAgent.objects.get(eidolon__slug="mike", kind="codex")
    assert (agent.reported_version, agent.status) == ("0.9.1", "idle") and agent.last_heartbeat_at


def test_heartbeat_refuses_unknown_kind_or_state(agents):
    assert agents["mike"].post("/agents/heartbeat", {"kind": "siri"}).status_code == 422
    assert agents["mike"].post("/agents/heartbeat", {"kind": "codex", "state": "dancing"}).status_code == 422


def test_a_token_bound_to_an_agent_speaks_only_for_it(max_plan):
    from eidolons.services import api_token_issue

    mike = Eidolon.objects.get(slug="mike")
    client = AgentClient(api_token_issue(eidolon=mike, agent=mike.agents.get(kind="claude"))[1])
    refused = client.post("/agents/heartbeat", {"kind": "gemini"})
    assert refused.status_code == 403
    assert refused.json()["error"] == "forbidden"
    assert client.post("/agents/heartbeat", {"kind": "claude"}).status_code == 200


def test_health_reports_heartbeats_staleness_inbox_depth_and_open_leads(agents, staff_api, settings,
                                                                        django_assert_max_num_queries):
    settings.MAXPORTAL_HEARTBEAT_STALE_SECONDS = 60
    agents["lilly"].post("/leads", {"company": "Acme", "email": "anna@acme.example"})
    agents["mike"].post("/agents/heartbeat", {"kind": "claude", "version": "2.0"})
    CliAgent.objects.filter(eidolon__slug="clara", kind="claude").update(
        last_heartbeat_at=timezone.now() - timedelta(seconds=61))
    _signal("mike")
    _signal("mike")

    with django_assert_max_num_queries(6):
        body = {e["slug"]: e for e in staff_api.get("/agents/health").json()}

    assert len(body) == 9
    assert (body["lilly"]["open_leads"], body["lilly"]["inbox_depth"]) == (1, 1)
    assert body["mike"]["inbox_depth"] == 2 and body["mike"]["stale"] is False
    mike_claude = next(a for a in body["mike"]["agents"] if a["kind"] == "claude")
    assert mike_claude["stale"] is False and mike_claude["version"] == "2.0"
    assert body["clara"]["stale"] is True, "a heartbeat older than the limit is stale"


def test_over_the_rate_limit_the_api_answers_429_with_retry_after(agents, settings):
    settings.MAXPORTAL_API_RATE_LIMIT = 3
    settings.MAXPORTAL_API_RATE_WINDOW = 60
    statuses = [agents["mike"].get("/agents/health").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    response = agents["mike"].get("/signals")
    assert response.status_code == 429 and 1 <= int(response["Retry-After"]) <= 60
    assert agents["clara"].get("/agents/health").status_code == 200, "the limit is per token"


def test_a_revoked_token_stops_working_at_once(max_plan):
    from eidolons.services import api_token_issue, api_token_revoke

    token, raw = api_token_issue(eidolon=Eidolon.objects.get(slug="mike"))
    client = AgentClient(raw)
    assert client.get("/agents/health").status_code == 200
    api_token_revoke(token=token)
    assert client.get("/agents/health").status_code == 401
    assert client.get("/signals").status_code == 401


def test_the_rate_limit_counts_in_redis_when_a_cache_url_is_set(agents, settings, test_redis):
    """Several web workers share the counters through Redis; the test leaves the database as it was."""
    someone_elses = f"{test_redis.prefix.replace('test', 'other')}:key"
    test_redis.client.set(someone_elses, "theirs", ex=60)
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": test_redis.url, "KEY_PREFIX": test_redis.prefix}}
    settings.MAXPORTAL_API_RATE_LIMIT = 2
    agents["mike"].get("/agents/health")
    agents["mike"].get("/agents/health")
    response = agents["mike"].get("/agents/health")
    counters = test_redis.client.keys(f"{test_redis.prefix}:*ratelimit*")
    survived = test_redis.client.get(someone_elses)
    test_redis.client.delete(someone_elses)
    assert response.status_code == 429
    assert counters, "the counter lives in Redis"
    assert survived == b"theirs", "another key in the same database is left alone"


def test_reading_a_full_inbox_costs_the_same_few_queries(agents, max_plan, django_assert_max_num_queries):
    mike = Eidolon.objects.get(slug="mike")
    for kind in ("claude", "codex", "gemini"):
        for _ in range(5):
            _signal("mike", agent=mike.agents.get(kind=kind))
    for _ in range(10):
        _signal("mike")
    with django_assert_max_num_queries(6):
        body = agents["mike"].get("/signals", {"limit": 200}).json()
    assert len(body) == 25

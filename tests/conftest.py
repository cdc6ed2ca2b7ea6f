"""Fixtures shared by every app's tests, in sections by what they give.

Each app's tests use these instead of defining their own copies; a fixture only one app needs stays
in that app's conftest (the checklist's ``plan``, ``ct201`` and ``operator`` in tests/provisioning/).
Test data beyond the plan comes from ``tests/factories.py`` (factory-boy).
"""

import os
import uuid
from types import SimpleNamespace

import pytest
import redis
from django.core.cache import cache

from eidolons.models import Eidolon
from provisioning.plan import max_plan_load
from tests.agents_api import AgentClient, clients_for, issue_tokens
from tests.factories import StaffUserFactory


@pytest.fixture(autouse=True)
def _plain_static_storage(settings):
    """Templates resolve {% static %} without a collectstatic manifest in tests."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture(autouse=True)
def _inbox_on_the_request_thread(request, settings, _cache_in_memory):
    """Tests inside one uncommitted transaction read the inbox on the test's own connection; the
    transactional (real server) tests keep the production thread pool."""
    if "transactional_db" not in request.fixturenames and "live_server" not in request.fixturenames:
        settings.MAXPORTAL_INBOX_THREAD_POOL = False
    cache.clear()  # rate-limit counters of token ids an earlier test used


# --- The MAX plan ---------------------------------------------------------------------------------


@pytest.fixture
def max_plan(db):
    """The MAX plan loaded: the AX42, CT100 and CT201-207, nine Eidolons, 36 agents, 7 mailboxes.
    (Also in ``transaction=True`` tests: the marker decides how ``db`` isolates.)"""
    return max_plan_load()


@pytest.fixture
def mike(max_plan):
    """Mike, the FirstResponder Eidolon (CT202)."""
    return Eidolon.objects.get(slug="mike")


# --- People: a staff user and their browser session -------------------------------------


@pytest.fixture
def staff_user(db):
    """'operator', a staff superuser (password operator-pass-123)."""
    return StaffUserFactory(username="operator", password="operator-pass-123")


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client


# --- The agents' API: a client per Eidolon, and staff's session -----------------------------------


@pytest.fixture
def tokens(max_plan):
    """One API token per Eidolon of the plan: slug -> the raw token."""
    return issue_tokens()


@pytest.fixture
def agents(tokens):
    """An API client per Eidolon (slug -> AgentClient), each with its own bearer token."""
    return clients_for(tokens)


@pytest.fixture
def staff_api(staff_client):
    """The API as a logged-in staff user (session cookie)."""
    return AgentClient(client=staff_client)


@pytest.fixture
def lead_id(agents):
    """A lead ingested by LILLy, at LeadGen, in progress."""
    body = {"company": "Acme GmbH", "email": "Anna@Acme.example", "source": "website"}
    response = agents["lilly"].post("/leads", body)
    assert response.status_code == 201, response.content
    return response.json()["id"]


# --- SapWaves (issue 9) ---------------------------------------------------------------------------


@pytest.fixture
def sent_tasks(monkeypatch):
    """The broker boundary: tasks the services send by name (after commit) are collected here."""
    from maxportal.celery import app

    sent = []
    def send_task(name, args=(), countdown=None, **options):
        sent.append((name, args, countdown))

    monkeypatch.setattr(app, "send_task", send_task)
    return sent


@pytest.fixture
def celery_inline(monkeypatch):
    """The broker boundary, executed in-process: a task sent by name after commit runs at once
    (for tests of what a task writes; what a worker does is tested with real workers)."""
    from maxportal.celery import app

    app.autodiscover_tasks(force=True)  # every app's tasks module, as a worker loads them

    def send_task(name, args=(), kwargs=None, **options):
        return app.tasks[name].apply(args=args, kwargs=kwargs)

    monkeypatch.setattr(app, "send_task", send_task)


# --- Redis for tests (issue 8 item 12) ---------------------------------------------------------
# Tests touch only the Redis database MAXPORTAL_TEST_REDIS_URL names (.ci/run sets it; without it
# they skip), only under a key prefix of their own, and delete exactly those keys afterwards: a
# shared Redis may hold other people's databases and keys.


@pytest.fixture(autouse=True)
def _cache_in_memory(settings):
    """The cache (rate-limit counters) is in-process in tests, so that cache.clear() can never
    flush a Redis database named by MAXPORTAL_CACHE_URL; Redis tests use ``test_redis``."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}


@pytest.fixture
def test_redis():
    """(url, prefix, client) of the test Redis database; the prefix's keys are deleted afterwards."""
    url = os.environ.get("MAXPORTAL_TEST_REDIS_URL", "")
    if not url:
        pytest.skip("set MAXPORTAL_TEST_REDIS_URL to a Redis database the tests may use")
    client = redis.Redis.from_url(url, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.exceptions.ConnectionError:
        pytest.skip(f"no Redis at {url}")
    prefix = f"maxportal-test-{uuid.uuid4().hex[:12]}"
    yield SimpleNamespace(url=url, prefix=prefix, client=client)
    for key in client.scan_iter(match=f"{prefix}*"):
        client.delete(key)
    client.close()

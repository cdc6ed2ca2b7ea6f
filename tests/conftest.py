"""Fixtures shared by every app's tests."""

import os
import uuid
from types import SimpleNamespace

import pytest
import redis

from provisioning.plan import max_plan_load


@pytest.fixture(autouse=True)
def _plain_static_storage(settings):
    """Templates resolve {% static %} without a collectstatic manifest in tests."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture
def max_plan(db):
    """The MAX plan loaded: the AX42, CT100 and CT201-207, nine Eidolons, 36 agents, 7 mailboxes."""
    return max_plan_load()


@pytest.fixture
def staff_user(django_user_model):
    return django_user_model.objects.create_user(
        username="operator", password="operator-pass-123", is_staff=True, is_superuser=True
    )


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client


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

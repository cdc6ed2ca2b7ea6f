"""Who is calling the API: an Eidolon's agent with a bearer token, or a staff user with a session.

Both give an ``Actor``; services take the actor and scope their queries by it (an Eidolon sees its
stage's leads and its own inbox; staff see everything, through the same stage machine).
Every authenticated request counts against a per-token (per-user) rate limit; over it: 429 with
Retry-After. The counters live in the Django cache (Redis when MAXPORTAL_CACHE_URL is set, so that
all web workers share them).
"""

import functools
import math
import time
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django.db import close_old_connections
from ninja.security import HttpBearer, SessionAuth

from .exceptions import DomainError


class RateLimited(DomainError):
    status = 429
    code = "rate_limited"


@dataclass(frozen=True)
class Actor:
    """The caller: an Eidolon (optionally one of its agents) via a token, or a staff user."""

    eidolon: object | None = None
    agent: object | None = None
    user: object | None = None
    token: object | None = None

    @property
    def is_staff(self) -> bool:
        return bool(self.user is not None and self.user.is_active and self.user.is_staff)

    @property
    def label(self) -> str:
        if self.user is not None:
            return f"staff user {self.user.get_username()}"
        if self.agent is not None:
            return f"{self.eidolon.name}/{self.agent.kind}"
        return str(self.eidolon.name)

    @property
    def sender(self) -> str:
        """How signals name this actor as their sender."""
        return self.user.get_username() if self.user is not None else self.eidolon.name

    @classmethod
    def for_token(cls, token) -> "Actor":
        return cls(eidolon=token.eidolon, agent=token.agent, token=token)

    @classmethod
    def for_user(cls, user) -> "Actor":
        return cls(user=user)


_counter_cache: dict = {"config": None, "backend": None}


def _counters():
    """The cache backend for the counters, made once per process (per CACHES setting).

    ``django.core.cache.cache`` is per request context under ASGI: every request would open a new
    Redis connection (measured by bench/api_load.py). One backend, whose client pools connections
    and is thread-safe, serves all requests.
    """
    config = settings.CACHES.get("default")
    if _counter_cache["config"] != config:
        _counter_cache["backend"] = caches.create_connection("default")
        _counter_cache["config"] = dict(config)
    return _counter_cache["backend"]


def _count(key: str, ttl: int) -> int:
    """Add one to the counter ``key`` and return it; the counter expires ``ttl`` s after its last hit."""
    backend = _counters()
    if isinstance(backend, RedisCache):
        # One round trip (INCR and EXPIRE pipelined) instead of RedisCache.incr's EXISTS + INCR.
        # Django stores integers unpickled, so INCR works on what add/get see.
        full_key = backend.make_and_validate_key(key)
        pipe = backend._cache.get_client(full_key, write=True).pipeline(transaction=False)
        pipe.incr(full_key)
        pipe.expire(full_key, ttl)
        return int(pipe.execute()[0])
    backend.add(key, 0, timeout=ttl)
    try:
        return backend.incr(key)
    except ValueError:  # evicted between add and incr: start again
        backend.set(key, 1, timeout=ttl)
        return 1


def rate_limit(key: str) -> None:
    """Count one request for ``key`` in the current fixed window; RateLimited when over the limit."""
    window = settings.MAXPORTAL_API_RATE_WINDOW
    limit = settings.MAXPORTAL_API_RATE_LIMIT
    now = time.time()
    slot = int(now // window)
    count = _count(f"maxportal:ratelimit:{key}:{slot}", window + 5)
    if count > limit:
        retry_after = max(1, math.ceil((slot + 1) * window - now))
        raise RateLimited(
            f"Too many requests: {limit} per {window} s allowed for this token; retry in {retry_after} s.",
            retry_after=retry_after,
        )


def _token_actor(raw: str) -> Actor | None:
    from eidolons.services import api_token_authenticate

    token = api_token_authenticate(raw)
    if token is None:
        return None
    rate_limit(f"token:{token.pk}")
    return Actor.for_token(token)


class TokenAuth(HttpBearer):
    """``Authorization: Bearer <token>`` issued to an Eidolon (admin or ``manage.py issue_token``)."""

    def authenticate(self, request, token):
        return _token_actor(token)


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


class AsyncTokenAuth(HttpBearer):
    """The same, for async views (see db_sync_to_async)."""

    async def authenticate(self, request, token):
        return await db_sync_to_async(_token_actor)(token)


class StaffSessionAuth(SessionAuth):
    """A logged-in staff user's session cookie (with the CSRF check django-ninja applies to cookies)."""

    def authenticate(self, request, key):
        user = request.user
        if user.is_authenticated and user.is_active and user.is_staff:
            rate_limit(f"user:{user.pk}")
            return Actor.for_user(user)
        return None


token_or_staff = [TokenAuth(), StaffSessionAuth()]
async_token_or_staff = [AsyncTokenAuth(), StaffSessionAuth()]

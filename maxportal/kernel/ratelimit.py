"""The per-token (per-user) request budget of the API: a fixed window counted in the Django cache
(Redis when MAXPORTAL_CACHE_URL is set, so that every web process shares the count)."""

import math
import time

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache

from .errors import RateLimited

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

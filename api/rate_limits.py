"""Rate limits that hold across every service process: counted in Redis when
``LASTMILE_REDIS_URL`` is set, else in this process's memory (a single process, or tests).

A limit is a moving window (:class:`limits.MovingWindowRateLimiter`): at most ``per_minute``
hits per key within any 60 seconds, whichever process takes them. A refused hit is told how
many seconds remain until the oldest hit in the window leaves it (the ``Retry-After``).

Redis configured but unreachable (or failing) at request time: **fail open**. The process
logs a warning (at most once a minute), counts the error in the ``lastmile_redis_errors``
counter and, for :data:`REDIS_RETRY_S`, counts in its own memory instead: customers are not
refused because Redis is down, and each process still holds its own share of the limit.
A Redis call waits at most :data:`REDIS_TIMEOUT_S`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import redis
from limits import RateLimitItemPerMinute
from limits.errors import StorageError
from limits.storage import MemoryStorage, RedisStorage
from limits.strategies import MovingWindowRateLimiter
from prometheus_client import Counter
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

#: After a Redis error, this process counts in its own memory for this long, then tries again.
REDIS_RETRY_S = 5.0
#: The longest a Redis connect or call may take before it counts as failed.
REDIS_TIMEOUT_S = 0.5
#: A warning about Redis at most this often (the counter counts every failure).
WARN_EVERY_S = 60.0
#: What a failed Redis call raises (limits wraps the client's errors in StorageError).
REDIS_ERRORS: tuple[type[Exception], ...] = (StorageError, RedisError, OSError)


class RedisOutage:
    """When to leave Redis alone after it failed, and the warning and counter that say so.

    ``errors``: the ``lastmile_redis_errors`` counter's child for this use (or None)."""

    def __init__(
        self,
        use: str,
        errors: Counter | None = None,
        *,
        retry_s: float = REDIS_RETRY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.use = use
        self.errors = errors
        self.retry_s = retry_s
        self.clock = clock
        self._down_until = float("-inf")
        self._warned_at = float("-inf")
        self._lock = threading.Lock()

    def usable(self) -> bool:
        """False for ``retry_s`` after a failure: the caller counts in memory meanwhile."""
        return self.clock() >= self._down_until

    def failed(self, exc: Exception) -> None:
        if self.errors is not None:
            self.errors.inc()
        now = self.clock()
        with self._lock:
            self._down_until = now + self.retry_s
            warn = now - self._warned_at >= WARN_EVERY_S
            if warn:
                self._warned_at = now
        if warn:
            log.warning(
                "Redis failed for %s (%s: %s): failing open, counting in this process's "
                "memory for %.0f s at a time until it answers again",
                self.use,
                type(exc).__name__,
                exc,
                self.retry_s,
            )


def redis_pool(url: str) -> redis.ConnectionPool:
    """Connections to ``url`` with short timeouts (a request never waits long for Redis);
    nothing connects until first used."""
    return redis.ConnectionPool.from_url(
        url, socket_connect_timeout=REDIS_TIMEOUT_S, socket_timeout=REDIS_TIMEOUT_S
    )


class RateLimit:
    """At most ``per_minute`` hits per key within any minute, across processes sharing
    ``redis_url`` (in this process's memory without it). Thread-safe.

    Keys are ``{name}:{who}`` (e.g. ``tracking:203.0.113.5``), stored in Redis under
    ``{key_prefix}:limits``. ``errors`` counts Redis failures (see the module's docstring)."""

    def __init__(
        self,
        name: str,
        per_minute: int,
        redis_url: str | None = None,
        *,
        key_prefix: str = "lastmile",
        errors: Counter | None = None,
    ) -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be at least 1")
        self.name = name
        self.item = RateLimitItemPerMinute(per_minute)
        self._memory = MovingWindowRateLimiter(MemoryStorage())
        self._redis: MovingWindowRateLimiter | None = None
        self._pool: redis.ConnectionPool | None = None
        if redis_url:
            # Connects on first use, not here: the service starts with Redis down.
            self._pool = redis_pool(redis_url)
            storage = RedisStorage(
                redis_url,
                connection_pool=self._pool,
                key_prefix=f"{key_prefix}:limits",
                wrap_exceptions=True,
            )
            self._redis = MovingWindowRateLimiter(storage)
        self.outage = RedisOutage(f"the {name} rate limit", errors)

    @property
    def shared(self) -> bool:
        """Whether the limit is counted in Redis (when it answers)."""
        return self._redis is not None

    def take(self, who: str) -> float:
        """0 when allowed (one hit counted), else the seconds until a hit is allowed again."""
        key = f"{self.name}:{who}"
        if self._redis is not None and self.outage.usable():
            try:
                return self._take(self._redis, key)
            except REDIS_ERRORS as exc:
                self.outage.failed(exc)
        return self._take(self._memory, key)

    def _take(self, limiter: MovingWindowRateLimiter, key: str) -> float:
        if limiter.hit(self.item, key):
            return 0.0
        reset_at, _ = limiter.get_window_stats(self.item, key)
        # The window may have moved on between the two calls: still a refusal, so above 0.
        return max(reset_at - time.time(), 0.001)

    def close(self) -> None:
        """Close the Redis connections (if any)."""
        if self._pool is not None:
            self._pool.disconnect()

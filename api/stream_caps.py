"""Caps on open live streams (server-sent events), held across every service process: at
most ``per_ip`` streams of one kind (``tracking`` page, ``dashboard``) open at once from one
client address, and at most ``per_organisation`` open at once for one organisation (its
dashboards and its customers' tracking pages together). A stream over a cap is refused with
429 and ``Retry-After: RETRY_AFTER_S`` before it starts.

With ``LASTMILE_REDIS_URL`` each cap is a Redis sorted set (``{prefix}:streams:...``) of
connection ids scored by their last heartbeat (wall-clock seconds): a slot is taken by one
Lua script (drop stale ids, check both caps, add to both), refreshed on every poll of its
stream and removed when the stream ends. An id whose heartbeat is older than
``stale_after_s`` no longer counts, so a process that died holding streams frees them by
itself. Without Redis the same is kept in this process's memory.

Redis unreachable at request time: **fail open**, as the rate limits do
(:mod:`api.rate_limits`): the stream is capped in this process's memory, a warning is logged
and ``lastmile_redis_errors`` counts it; a Redis slot whose heartbeat or release fails
expires by itself.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import redis
from prometheus_client import Counter

from api.rate_limits import REDIS_ERRORS, RedisOutage, redis_pool

#: A stream that has not polled for this long is taken to be gone (its process died).
STALE_AFTER_S = 30.0
#: What a refused stream is told to wait (a slot frees when some stream ends).
RETRY_AFTER_S = 10

#: KEYS: the cap sets; ARGV: now, stale before, id, key TTL (s), then each key's cap.
#: Returns 0 when the slot is taken, else the (1-based) index of the cap that is full.
_ACQUIRE = """
for i, key in ipairs(KEYS) do
    redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. ARGV[2])
    if redis.call('ZCARD', key) >= tonumber(ARGV[4 + i]) then
        return i
    end
end
for _, key in ipairs(KEYS) do
    redis.call('ZADD', key, ARGV[1], ARGV[3])
    redis.call('EXPIRE', key, ARGV[4])
end
return 0
"""


@dataclass
class Slot:
    """One open stream's place under its caps: call :meth:`heartbeat` on every poll and
    :meth:`release` when the stream ends (both are safe to repeat)."""

    caps: StreamCaps
    id: str
    keys: tuple[str, ...]
    #: False: taken in this process's memory (no Redis, or Redis was failing).
    in_redis: bool
    released: bool = field(default=False)

    def heartbeat(self) -> None:
        if not self.released:
            self.caps._heartbeat(self)

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.caps._release(self)


class StreamCaps:
    """The caps on open streams; thread-safe. ``clock``: wall-clock seconds (shared by the
    processes, so a heartbeat written by one is judged by another)."""

    def __init__(
        self,
        per_ip: int,
        per_organisation: int,
        redis_url: str | None = None,
        *,
        key_prefix: str = "lastmile",
        stale_after_s: float = STALE_AFTER_S,
        errors: Counter | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if per_ip < 1 or per_organisation < 1:
            raise ValueError("stream caps must be at least 1")
        self.per_ip = per_ip
        self.per_organisation = per_organisation
        self.prefix = f"{key_prefix}:streams"
        self.stale_after_s = stale_after_s
        self.clock = clock
        self.outage = RedisOutage("the stream caps", errors)
        self._memory: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()
        self._pool: redis.ConnectionPool | None = None
        self._redis: redis.Redis | None = None
        if redis_url:
            self._pool = redis_pool(redis_url)
            self._redis = redis.Redis(connection_pool=self._pool)
            self._acquire_script = self._redis.register_script(_ACQUIRE)

    @property
    def shared(self) -> bool:
        """Whether the caps are counted in Redis (when it answers)."""
        return self._redis is not None

    def keys(self, kind: str, ip: str, organisation: str) -> tuple[str, str]:
        """The two sets a stream of ``kind`` from ``ip`` for ``organisation`` counts in."""
        return (f"{self.prefix}:{kind}:ip:{ip}", f"{self.prefix}:org:{organisation}")

    def acquire(self, kind: str, ip: str, organisation: str) -> Slot | None:
        """A slot for a new stream, or None when a cap is full (answer 429)."""
        keys = self.keys(kind, ip, organisation)
        caps = (self.per_ip, self.per_organisation)
        slot_id = uuid.uuid4().hex
        if self._redis is not None and self.outage.usable():
            now = self.clock()
            try:
                full = self._acquire_script(
                    keys=list(keys),
                    args=[now, now - self.stale_after_s, slot_id, self._ttl_s(), *caps],
                )
            except REDIS_ERRORS as exc:
                self.outage.failed(exc)
            else:
                return Slot(self, slot_id, keys, in_redis=True) if int(full) == 0 else None
        with self._lock:
            now = self.clock()
            for key, cap in zip(keys, caps, strict=True):
                held = self._memory.get(key, {})
                for stale in [i for i, seen in held.items() if seen < now - self.stale_after_s]:
                    del held[stale]
                if len(held) >= cap:
                    return None
            for key in keys:
                self._memory.setdefault(key, {})[slot_id] = now
            if len(self._memory) > 10_000:  # forget sets left with stale ids only
                self._forget_stale(now)
        return Slot(self, slot_id, keys, in_redis=False)

    def _forget_stale(self, now: float) -> None:
        for key in list(self._memory):
            held = self._memory[key]
            fresh = {i: seen for i, seen in held.items() if seen >= now - self.stale_after_s}
            if fresh:
                self._memory[key] = fresh
            else:
                del self._memory[key]

    def open_streams(self, kind: str, ip: str, organisation: str) -> tuple[int, int]:
        """(streams from ``ip`` of ``kind``, streams of ``organisation``) that count now."""
        keys = self.keys(kind, ip, organisation)
        since = self.clock() - self.stale_after_s
        if self._redis is not None:
            pipe = self._redis.pipeline(transaction=False)
            for key in keys:
                pipe.zcount(key, since, "+inf")
            ip_count, org_count = pipe.execute()
            return int(ip_count), int(org_count)
        with self._lock:
            counts = [
                sum(1 for seen in self._memory.get(key, {}).values() if seen >= since)
                for key in keys
            ]
        return counts[0], counts[1]

    def close(self) -> None:
        """Close the Redis connections (if any)."""
        if self._pool is not None:
            self._pool.disconnect()

    def _ttl_s(self) -> int:
        """A set nobody refreshes goes away after this (every process holding it died)."""
        return math.ceil(self.stale_after_s) * 2

    def _heartbeat(self, slot: Slot) -> None:
        now = self.clock()
        if slot.in_redis and self._redis is not None:
            try:
                pipe = self._redis.pipeline(transaction=True)
                for key in slot.keys:
                    pipe.zadd(key, {slot.id: now})
                    pipe.expire(key, self._ttl_s())
                pipe.execute()
            except REDIS_ERRORS as exc:
                self.outage.failed(exc)  # the entry expires; the stream goes on uncounted
            return
        with self._lock:
            for key in slot.keys:
                self._memory.setdefault(key, {})[slot.id] = now

    def _release(self, slot: Slot) -> None:
        if slot.in_redis and self._redis is not None:
            try:
                pipe = self._redis.pipeline(transaction=True)
                for key in slot.keys:
                    pipe.zrem(key, slot.id)
                pipe.execute()
            except REDIS_ERRORS as exc:
                self.outage.failed(exc)  # the entry expires after stale_after_s
            return
        with self._lock:
            for key in slot.keys:
                held = self._memory.get(key)
                if held is not None:
                    held.pop(slot.id, None)
                    if not held:
                        del self._memory[key]

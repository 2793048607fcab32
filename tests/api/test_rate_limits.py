"""The tracking page's rate limit across processes (api.rate_limits): two limiters sharing
one real Redis, as two service processes do, never let more through than the limit; without
Redis each process counts in its own memory; a Redis that is down fails open (warning,
counter); and through two app instances the 61st request in a minute gets 429 whichever
instance answers it.

The cross-process tests need Redis at 127.0.0.1:6379 (skipped saying so when it is not
there; a failure when LASTMILE_REQUIRE_SERVERS=1). Each uses its own key prefix, deleted
afterwards."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter

from api.rate_limits import RateLimit
from api.routes.tracking import RATE_PER_MINUTE
from tests.api.redis_server import DOWN_URL, PrivateRedis, private_redis
from tests.api.service import running


@pytest.fixture
def shared() -> Iterator[PrivateRedis]:
    with private_redis() as server:
        yield server


def _hammer(limiters: list[RateLimit], who: str, each: int) -> list[float]:
    """Every limiter takes ``each`` hits for ``who`` at once, each on two threads."""
    results: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(2 * len(limiters))

    def run(limiter: RateLimit) -> None:
        start.wait()
        for _ in range(each // 2):
            wait = limiter.take(who)
            with lock:
                results.append(wait)

    threads = [threading.Thread(target=run, args=(lim,)) for lim in limiters for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.mark.redis
def test_two_processes_sharing_redis_never_allow_more_than_the_limit(
    shared: PrivateRedis,
) -> None:
    """Two limiters (two processes' worth) hit at once: exactly the limit gets through."""
    one, two = (RateLimit("tracking", 20, shared.url, key_prefix=shared.prefix) for _ in range(2))
    try:
        assert one.shared
        assert two.shared
        waits = _hammer([one, two], "203.0.113.5", each=30)
        assert len(waits) == 60
        assert sum(1 for w in waits if w == 0) == 20
        assert all(0 < w <= 60 for w in waits if w != 0)
        # Still spent in either process; another address has its own limit.
        assert one.take("203.0.113.5") > 0
        assert two.take("203.0.113.5") > 0
        assert one.take("198.51.100.7") == 0
        assert all(key.startswith(f"{shared.prefix}:limits:") for key in shared.stored_keys())
        assert any("tracking:203.0.113.5" in key for key in shared.stored_keys())
    finally:
        one.close()
        two.close()


@pytest.mark.redis
def test_refused_hit_says_when_the_window_frees(shared: PrivateRedis) -> None:
    """The wait is until the oldest hit leaves the minute: the Retry-After."""
    limiter = RateLimit("tracking", 3, shared.url, key_prefix=shared.prefix)
    try:
        assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
        time.sleep(1.0)
        wait = limiter.take("a")
        assert 57.0 < wait <= 59.1
    finally:
        limiter.close()


def test_memory_fallback_without_redis() -> None:
    """No Redis configured: the limit holds in this process (and only in it)."""
    one, two = RateLimit("tracking", 5), RateLimit("tracking", 5)
    assert not one.shared
    waits = _hammer([one], "203.0.113.5", each=10)
    assert sum(1 for w in waits if w == 0) == 5
    assert all(0 < w <= 60 for w in waits if w != 0)
    assert one.take("198.51.100.7") == 0
    assert two.take("203.0.113.5") == 0  # another process counts on its own


def test_redis_down_fails_open(caplog: pytest.LogCaptureFixture) -> None:
    """Redis configured but not answering: requests are not refused for it; the process
    counts in its own memory, warns once and counts every failure."""
    registry = CollectorRegistry()
    errors = Counter("lastmile_redis_errors", "", ["use"], registry=registry)
    limiter = RateLimit("tracking", 5, DOWN_URL, errors=errors.labels("rate_limit"))
    try:
        with caplog.at_level(logging.WARNING, logger="api.rate_limits"):
            started = time.monotonic()
            waits = [limiter.take("203.0.113.5") for _ in range(8)]
            took = time.monotonic() - started
        assert waits[:5] == [0.0] * 5
        assert all(w > 0 for w in waits[5:])  # the memory limit still holds
        assert took < 2.0  # Redis is left alone for a while after it failed
        failed = registry.get_sample_value("lastmile_redis_errors_total", {"use": "rate_limit"})
        assert failed == 1.0
        warnings = [r for r in caplog.records if "failing open" in r.getMessage()]
        assert len(warnings) == 1
    finally:
        limiter.close()


@pytest.mark.integration
@pytest.mark.redis
def test_429_on_the_tracking_page_across_two_app_instances(
    shared: PrivateRedis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two service instances on one database and one Redis: the client's 60 requests a
    minute are spent across both, then either answers 429 with Retry-After."""
    monkeypatch.setenv("LASTMILE_SENDER_ENABLED", "false")
    url = f"sqlite:///{tmp_path / 'lastmile.db'}"
    redis_settings = {"redis_url": shared.url, "redis_key_prefix": shared.prefix}
    with (
        running(url, tmp_path / "a", **redis_settings) as a,
        running(url, tmp_path / "b", admin=a.admin, **redis_settings) as b,
    ):
        half = RATE_PER_MINUTE // 2
        statuses = [a.client.get("/t/nope").status_code for _ in range(half)]
        statuses += [b.client.get("/t/nope").status_code for _ in range(half)]
        assert statuses == [404] * RATE_PER_MINUTE
        for service in (a, b):
            r = service.client.get("/t/nope")
            assert r.status_code == 429
            assert 1 <= int(r.headers["Retry-After"]) <= 60
            assert "429" in r.text
        # The same limit for the live stream and the instructions form.
        assert b.client.get("/t/nope/events").status_code == 429
        assert a.client.post("/t/nope/instructions", data={}).status_code == 429

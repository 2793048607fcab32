"""The real Redis that cross-process tests share (127.0.0.1:6379): each test gets its own key
prefix, whose keys are deleted afterwards; skipped saying so when Redis is not there (a
failure when LASTMILE_REQUIRE_SERVERS=1, as in CI)."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
import redis

from tests.conftest import require_servers

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
REDIS_URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/0"
#: Nothing listens here: a Redis that is configured but down.
DOWN_URL = "redis://127.0.0.1:1/0"


@dataclass(frozen=True)
class PrivateRedis:
    url: str
    #: Every key the test's limiters write starts with this.
    prefix: str

    def stored_keys(self) -> list[str]:
        """Every key under the prefix now."""
        client = redis.Redis.from_url(self.url)
        try:
            return sorted(k.decode() for k in client.scan_iter(f"{self.prefix}:*"))
        finally:
            client.close()


@contextmanager
def private_redis() -> Iterator[PrivateRedis]:
    """The local Redis under a fresh key prefix (or skip / fail saying it is not there)."""
    try:
        socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=1).close()
    except OSError as exc:
        message = f"Redis not reachable at {REDIS_HOST}:{REDIS_PORT}: {exc}"
        if require_servers():
            pytest.fail(message)
        pytest.skip(message)
    server = PrivateRedis(REDIS_URL, f"lastmile-test-{uuid.uuid4().hex[:12]}")
    try:
        yield server
    finally:
        client = redis.Redis.from_url(server.url)
        try:
            for key in client.scan_iter(f"{server.prefix}:*"):
                client.delete(key)
        finally:
            client.close()

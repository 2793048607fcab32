"""Caps on open live streams (api.stream_caps): per client address and kind, and per
organisation, held across processes through one real Redis (two StreamCaps instances, as
two service processes have) or in one process's memory; a released slot is free again; a
slot whose heartbeat stopped (its process died) stops counting; a Redis that is down fails
open. Through the app: a stream over the cap gets 429 with Retry-After before it starts, on
the tracking page across two instances and on the dashboard.

Redis at 127.0.0.1:6379 for the ``redis`` cases (skipped saying so when it is not there; a
failure when LASTMILE_REQUIRE_SERVERS=1); each uses its own key prefix, deleted afterwards."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any, cast

import anyio
import httpx
import pytest
from fastapi import Request
from prometheus_client import CollectorRegistry, Counter

from api.sse import change_stream
from api.stream_caps import RETRY_AFTER_S, Slot, StreamCaps
from tests.api.live_state import read_order
from tests.api.redis_server import DOWN_URL, private_redis
from tests.api.service import Service, running


class FakeClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


#: Builds a pair of StreamCaps as two processes would have them (one instance, shared,
#: without Redis: memory is per process).
Pair = Callable[..., tuple[StreamCaps, StreamCaps]]


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def pair(request: pytest.FixtureRequest) -> Iterator[Pair]:
    made: list[StreamCaps] = []

    def build(url: str | None, prefix: str) -> Pair:
        def make(**options: Any) -> tuple[StreamCaps, StreamCaps]:
            kind = dict(options)
            per_ip, per_org = kind.pop("per_ip", 10), kind.pop("per_org", 1000)
            one = StreamCaps(per_ip, per_org, url, key_prefix=prefix, **kind)
            two = StreamCaps(per_ip, per_org, url, key_prefix=prefix, **kind) if url else one
            made.extend((one, two))
            return one, two

        return make

    try:
        if request.param == "redis":
            with private_redis() as server:
                yield build(server.url, server.prefix)
        else:
            yield build(None, "unused")
    finally:
        for caps in made:
            caps.close()


def _race(attempts: Sequence[Callable[[], Slot | None]]) -> list[Slot]:
    """Run every attempt at once on its own thread; the slots taken."""
    taken: list[Slot] = []
    lock = threading.Lock()
    start = threading.Barrier(len(attempts))

    def run(attempt: Callable[[], Slot | None]) -> None:
        start.wait()
        slot = attempt()
        if slot is not None:
            with lock:
                taken.append(slot)

    threads = [threading.Thread(target=run, args=(a,)) for a in attempts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return taken


def test_cap_per_address_holds_across_processes(pair: Pair) -> None:
    """Ten streams from one address at once over two processes: three get a slot."""
    one, two = pair(per_ip=3, per_org=100)
    attempts = [
        partial(caps.acquire, "tracking", "203.0.113.5", "org-1") for caps in (one, two) * 5
    ]
    taken = _race(attempts)
    assert len(taken) == 3
    assert one.open_streams("tracking", "203.0.113.5", "org-1") == (3, 3)
    assert two.acquire("tracking", "203.0.113.5", "org-1") is None
    # Another address, and the same address's dashboard, have caps of their own.
    assert two.acquire("tracking", "198.51.100.7", "org-1") is not None
    assert one.acquire("dashboard", "203.0.113.5", "org-1") is not None


def test_cap_per_organisation_holds_across_processes(pair: Pair) -> None:
    """An organisation's streams from many addresses, of both kinds, stop at its cap."""
    one, two = pair(per_ip=10, per_org=4)
    attempts = [
        partial(caps.acquire, "tracking", f"203.0.113.{i}", "org-1")
        for i, caps in enumerate((one, two) * 4)
    ]
    assert len(_race(attempts)) == 4
    assert one.acquire("dashboard", "198.51.100.7", "org-1") is None
    assert two.acquire("tracking", "198.51.100.7", "org-2") is not None  # another tenant


def test_released_slot_is_free_again(pair: Pair) -> None:
    one, two = pair(per_ip=1, per_org=100)
    slot = one.acquire("tracking", "203.0.113.5", "org-1")
    assert slot is not None
    assert two.acquire("tracking", "203.0.113.5", "org-1") is None
    slot.release()
    slot.release()  # harmless twice
    again = two.acquire("tracking", "203.0.113.5", "org-1")
    assert again is not None
    assert one.acquire("tracking", "203.0.113.5", "org-1") is None
    again.release()
    assert one.open_streams("tracking", "203.0.113.5", "org-1") == (0, 0)


def test_slot_whose_heartbeat_stopped_expires(pair: Pair) -> None:
    """A stream that stops polling (its process died) stops counting after stale_after_s;
    one that keeps polling keeps its slot."""
    clock = FakeClock()
    one, two = pair(per_ip=1, per_org=100, stale_after_s=30.0, clock=clock)
    slot = one.acquire("tracking", "203.0.113.5", "org-1")
    assert slot is not None
    clock.now += 20
    slot.heartbeat()
    clock.now += 25  # 45 s after it opened, 25 s after its last heartbeat
    assert two.acquire("tracking", "203.0.113.5", "org-1") is None
    clock.now += 6  # 31 s without a heartbeat: its process is taken to be gone
    assert two.open_streams("tracking", "203.0.113.5", "org-1") == (0, 0)
    taken = two.acquire("tracking", "203.0.113.5", "org-1")
    assert taken is not None
    assert one.acquire("tracking", "203.0.113.5", "org-1") is None


def test_redis_down_fails_open() -> None:
    """Redis configured but not answering: streams are capped in this process's memory,
    and each failure is counted."""
    registry = CollectorRegistry()
    errors = Counter("lastmile_redis_errors", "", ["use"], registry=registry)
    caps = StreamCaps(1, 100, DOWN_URL, errors=errors.labels("stream_cap"))
    try:
        slot = caps.acquire("tracking", "203.0.113.5", "org-1")
        assert slot is not None
        assert not slot.in_redis
        assert caps.acquire("tracking", "203.0.113.5", "org-1") is None
        slot.heartbeat()
        slot.release()
        assert caps.acquire("tracking", "203.0.113.5", "org-1") is not None
        failed = registry.get_sample_value("lastmile_redis_errors_total", {"use": "stream_cap"})
        assert failed == 1.0  # then Redis is left alone for a while
    finally:
        caps.close()


class _Held:
    def __init__(self) -> None:
        self.heartbeats = 0
        self.released = 0

    def heartbeat(self) -> None:
        self.heartbeats += 1

    def release(self) -> None:
        self.released += 1


class _Connected:
    async def is_disconnected(self) -> bool:
        return False


def test_stream_gives_its_slot_back_when_cancelled_mid_poll() -> None:
    """The client leaving cancels the stream while it sleeps: the slot is still released."""
    held = _Held()
    request = cast(Request, _Connected())
    response = change_stream(request, {"n": 1}, lambda: {"n": 1}, poll_s=0.02, hold=held)

    async def main() -> None:
        async def consume() -> None:
            async for _ in response.body_iterator:
                pass

        async with anyio.create_task_group() as group:
            group.start_soon(consume)
            await anyio.sleep(0.2)
            group.cancel_scope.cancel()

    anyio.run(main)
    assert held.heartbeats >= 1
    assert held.released == 1


# --- through the app --------------------------------------------------------------------


def _hold(client: httpx.Client, path: str, statuses: list[int], **kwargs: Any) -> threading.Thread:
    """Open the stream at ``path`` on a thread and read it to its end."""

    def run() -> None:
        with client.stream("GET", path, timeout=20, **kwargs) as r:
            statuses.append(r.status_code)
            for _ in r.iter_lines():
                pass

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _until(check: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "not reached in time"
        time.sleep(0.02)


def _caps(s: Service) -> StreamCaps:
    caps: StreamCaps = s.client.app.state.stream_caps  # type: ignore[attr-defined]
    return caps


@pytest.mark.integration
@pytest.mark.redis
def test_tracking_stream_over_the_cap_gets_429_across_two_instances(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One stream per address, two instances sharing Redis: while a stream is open on one,
    the other refuses a second with 429 before streaming; once it ends, the slot is free."""
    monkeypatch.setenv("LASTMILE_SENDER_ENABLED", "false")
    url = f"sqlite:///{tmp_path / 'lastmile.db'}"
    with private_redis() as server:
        shared: dict[str, Any] = {
            "redis_url": server.url,
            "redis_key_prefix": server.prefix,
            "stream_cap_per_ip": 1,
        }
        with (
            running(url, tmp_path / "a", **shared) as a,
            running(url, tmp_path / "b", admin=a.admin, **shared) as b,
        ):
            order = {"id": "T-1", "location": {"lat": 60.17, "lon": 24.94}}
            r = a.client.post("/v1/orders", json=order, headers=a.headers())
            assert r.status_code == 201, r.text
            token = r.json()["tracking_token"]
            organisation = read_order(url, "T-1", lambda _s, o: o.organisation_id)
            for s in (a, b):
                s.client.app.state.tracking_poll_s = 0.05  # type: ignore[attr-defined]
                s.client.app.state.tracking_stream_max_s = 1.5  # type: ignore[attr-defined]

            def open_on_a() -> int:
                return _caps(a).open_streams("tracking", "testclient", organisation)[0]

            statuses: list[int] = []
            thread = _hold(a.client, f"/t/{token}/events", statuses)
            _until(lambda: open_on_a() == 1)
            refused = b.client.get(f"/t/{token}/events")
            assert refused.status_code == 429
            assert refused.headers["Retry-After"] == str(RETRY_AFTER_S)
            assert "text/html" in refused.headers["content-type"]
            thread.join()
            assert statuses == [200]
            assert open_on_a() == 0  # released when the stream ended
            assert b.client.get(f"/t/{token}/events").status_code == 200
            # Both streams gave their slots back (a set left empty is gone).
            assert [k for k in server.stored_keys() if ":streams:" in k] == []


@pytest.mark.integration
def test_dashboard_stream_over_the_cap_gets_429(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without Redis (one process): a second dashboard stream from the same address while
    one is open gets the API's error shape with 429 and Retry-After."""
    monkeypatch.setenv("LASTMILE_SENDER_ENABLED", "false")
    url = f"sqlite:///{tmp_path / 'lastmile.db'}"
    with running(url, tmp_path, stream_cap_per_ip=1) as s:
        assert not _caps(s).shared
        s.client.app.state.dashboard_poll_s = 0.05  # type: ignore[attr-defined]
        s.client.app.state.dashboard_stream_max_s = 1.5  # type: ignore[attr-defined]
        statuses: list[int] = []
        thread = _hold(s.client, "/dashboard/events", statuses, headers=s.headers())
        _until(lambda: _caps(s).open_streams("dashboard", "testclient", "-")[0] == 1)
        refused = s.client.get("/dashboard/events", headers=s.headers())
        assert refused.status_code == 429
        assert refused.headers["Retry-After"] == str(RETRY_AFTER_S)
        assert refused.json()["error"]["code"] == "too_many_streams"
        thread.join()
        assert statuses == [200]
        assert _caps(s).open_streams("dashboard", "testclient", "-")[0] == 0
        assert s.client.get("/dashboard/events", headers=s.headers()).status_code == 200

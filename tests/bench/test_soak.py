"""The soak's own checks: its fixes stay acceptable however long it runs (issue 21, item 8: fix
times ran ahead of the clock after ~813 s at 2,000/s over 200 vans and longitudes wrapped
every 3,000 fixes, so the last third measured the ingester refusing them), and it counts
applied and refused fixes apart."""

from __future__ import annotations

import itertools
import json
import threading
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.ingest import (
    LAT0,
    LON0,
    SHUTTLE_LEG_M,
    SHUTTLE_SPEED_MPS,
    ClockFixes,
    _setup,
    _Shared,
    clock_fix,
    timed_ingester,
)
from bench.soak import _refused
from domain.geo import LatLon, haversine_m
from domain.position import Position
from store.db import make_engine
from telematics.decoders import decode_fleet_json
from telematics.hygiene import HygieneParams, Verdict, screen
from telematics.mqtt import BrokerAddress

#: The soak's documented run: ``python -m bench.soak --seconds 1200 --rate 2000`` (200 vans).
SECONDS, RATE, VANS = 1200, 2000, 200
#: The publisher's first paced message (any wall time will do).
START = datetime(2026, 12, 5, 9, 0, tzinfo=UTC).timestamp()


class _SendClock:
    """The publisher's clock, set to when message ``k`` of the paced phase is sent."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def test_soak_fixes_are_never_ahead_of_the_clock_nor_jump_in_a_20_minute_run() -> None:
    """Every 20th van's fixes over the whole run, made as the publisher makes them (fix k at
    send time k / rate): none ahead of its send time, each a plausible drive from the vehicle's
    previous one, and the ingester's hygiene applies every one of them."""
    ids = [f"van-{k}" for k in range(VANS)]
    clock = _SendClock()
    fixes = ClockFixes(ids, clock)
    params = HygieneParams()
    checked = 0
    for v in range(0, VANS, 20):
        last: Position | None = None
        for k in range(v, SECONDS * RATE, VANS):
            clock.now = START + k / RATE
            sent = datetime.fromtimestamp(clock.now, UTC)
            topic, payload = fixes.next(k)
            assert topic == f"fleet/{ids[v]}/position"
            fix = decode_fleet_json(topic, payload)
            assert fix.fix_time <= sent, f"fix {k} of {ids[v]} is ahead of the clock"
            assert sent - fix.fix_time < timedelta(milliseconds=1)
            # On the route's first stretch (east of its start, on its line).
            assert fix.lat == LAT0
            assert fix.lon >= LON0
            assert haversine_m(LatLon(LAT0, LON0), LatLon(fix.lat, fix.lon)) <= SHUTTLE_LEG_M
            if last is not None:
                metres = haversine_m(LatLon(last.lat, last.lon), LatLon(fix.lat, fix.lon))
                elapsed = (fix.fix_time - last.fix_time).total_seconds()
                assert elapsed > 0
                assert metres / elapsed <= SHUTTLE_SPEED_MPS * 1.001, f"fix {k}: a jump"
            verdict = screen(fix, last, sent, params)
            assert verdict.verdict is Verdict.APPLY, (k, ids[v], verdict.reason)
            last = fix
            checked += 1
    assert checked == SECONDS * RATE // 20


def test_a_van_drives_back_and_forth_over_its_whole_leg() -> None:
    """Over a minute each van covers its leg both ways (it moves: the route's first stop is
    passed through, never left behind) and never leaves it."""
    at = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
    for vehicle in ("van-0", "van-1", "bench-abc-7"):
        xs, headings = [], set()
        for s in range(600):
            _, payload = clock_fix(vehicle, s, at + timedelta(seconds=s / 10))
            data = json.loads(payload)
            xs.append(haversine_m(LatLon(LAT0, LON0), LatLon(data["lat"], data["lon"])))
            headings.add(data["heading_deg"])
        assert min(xs) < 5
        assert SHUTTLE_LEG_M - 5 < max(xs) <= SHUTTLE_LEG_M
        assert headings == {90.0, 270.0}


def test_clock_fix_is_a_pure_function_of_vehicle_sequence_and_time() -> None:
    at = datetime(2026, 12, 5, 9, 0, 0, 123456, tzinfo=UTC)
    topic, payload = clock_fix("van-3", 17, at)
    assert (topic, payload) == clock_fix("van-3", 17, at)
    data = json.loads(payload)
    assert topic == "fleet/van-3/position"
    assert data["seq"] == 17
    assert data["sent"] == at.timestamp()
    assert decode_fleet_json(topic, payload).fix_time == at


def test_fix_times_rise_per_vehicle_even_when_the_clock_stands_or_steps_back() -> None:
    ids = ["a", "b"]
    clock = _SendClock()
    fixes = ClockFixes(ids, clock)
    times: dict[str, list[datetime]] = {"a": [], "b": []}
    for k, now in enumerate([START, START, START, START, START - 5, START - 5, START + 1]):
        clock.now = now
        topic, payload = fixes.next(k)
        times[topic.split("/")[1]].append(decode_fleet_json(topic, payload).fix_time)
    for series in times.values():
        assert all(a < b for a, b in itertools.pairwise(series))
    assert fixes.seq == {"a": 4, "b": 3}
    assert json.loads(fixes.next(7)[1])["seq"] == 4  # b's fourth


@dataclass
class _Message:
    topic: str
    payload: bytes
    mid: int = 1
    qos: int = 1


def test_the_soak_counts_its_fixes_applied_and_refused_apart(tmp_path: Path) -> None:
    """Through the real ingester (no broker: the batch is handed over as paho would): this
    run's fixes counted by outcome, a fix from the future refused, another publisher's
    message handled but not counted."""
    url = f"sqlite:///{tmp_path / 'soak.db'}"
    ids = _setup(url, 2)
    engine = make_engine(url)
    shared, lock, outcomes = _Shared(), threading.Lock(), Counter[str]()
    latencies: list[float] = []
    ingester = timed_ingester(
        engine,
        BrokerAddress.parse("mqtt://127.0.0.1:1883"),
        shared,
        lock,
        latencies,
        "soak-test",
        vehicles=set(ids),
        outcomes=outcomes,
    )
    now = datetime.now(UTC)
    future = now + timedelta(hours=1)
    batch = [
        _Message(*clock_fix(ids[0], 1, now - timedelta(seconds=2))),
        _Message(*clock_fix(ids[1], 1, now - timedelta(seconds=2))),
        _Message(*clock_fix(ids[0], 2, now - timedelta(seconds=1))),
        _Message(*clock_fix(ids[0], 3, now - timedelta(seconds=3))),  # late: history only
        _Message(*clock_fix(ids[1], 2, future)),  # the old soak's fixes after ~813 s
        _Message(*clock_fix("someone-else", 1, now)),  # another publisher on the broker
    ]
    try:
        ingester._process(batch)  # type: ignore[arg-type]
    finally:
        ingester.client.loop_stop()
        engine.dispose()
    assert shared.processed.value == 5
    assert outcomes == Counter({"applied": 3, "history": 1, "from_the_future": 1})
    assert _refused(outcomes) == 1
    assert len(latencies) == 5
    assert ingester.ingester.counts["unknown_vehicle"] == 1  # handled, not counted as ours

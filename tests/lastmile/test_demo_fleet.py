"""The demo's simulated vans (pure stepping, no network) and its clock."""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from lastmile.demo.clock import SimClock
from lastmile.demo.device_messages import DriverEvent, event_json, fleet_json, owntracks_json
from lastmile.demo.fleet import Disruptions, Jam, Van, route_from_message
from telematics.decoders import decode_fleet_json, decode_owntracks

LAT0, LON0 = 60.17, 24.90
M_PER_DEG_LAT = 111_195.0
M_PER_DEG_LON = M_PER_DEG_LAT * math.cos(math.radians(LAT0))
T0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


def at(x_m: float) -> tuple[float, float]:
    return LAT0, LON0 + x_m / M_PER_DEG_LON


def message(
    plan_id: str = "p1", stops: tuple[str, ...] = ("a", "b"), window_b: bool = False
) -> str:
    """A 2 km street, stops at 500 m and 1,500 m, 100 s drive each leg at 5 m/s, 120 s of
    service; b's window opens at 08:20 when asked."""
    place = {"a": 500.0, "b": 1500.0, "c": 1000.0}
    out = []
    t = T0
    for k, oid in enumerate(stops):
        drive_m = place[oid] - (place[stops[k - 1]] if k else 0.0)
        arrival = t + timedelta(seconds=drive_m / 5.0)
        windows = []
        if oid == "b" and window_b:
            windows = [{"start": (T0 + timedelta(minutes=20)).isoformat(),
                        "end": (T0 + timedelta(minutes=60)).isoformat()}]  # fmt: skip
        out.append(
            {
                "order_id": oid,
                "lat": at(place[oid])[0] + 0.00005,
                "lon": at(place[oid])[1],
                "arrival": arrival.isoformat(),
                "service_start": arrival.isoformat(),
                "departure": (arrival + timedelta(seconds=120)).isoformat(),
                "drive_s": drive_m / 5.0,
                "windows": windows,
            }
        )
        t = arrival + timedelta(seconds=120)
    line = [[at(x)[1], at(x)[0]] for x in range(0, 2001, 100)]
    return json.dumps(
        {
            "plan_id": plan_id,
            "vehicle_id": "van-1",
            "start": T0.isoformat(),
            "end": (t + timedelta(minutes=5)).isoformat(),
            "stops": out,
            "geometry": {"type": "LineString", "coordinates": line},
        }
    )


def run(van: Van, disruptions: Disruptions, until_s: float, dt_s: float = 5.0) -> list[DriverEvent]:
    events: list[DriverEvent] = []
    now = T0
    while now < T0 + timedelta(seconds=until_s):
        now += timedelta(seconds=dt_s)
        _, new = van.step(now, dt_s, disruptions)
        events += new
    return events


def van(msg: str | None = None) -> Van:
    route = route_from_message(msg or message())
    v = Van(route, np.random.default_rng(1))
    v.pace = 1.0
    return v


def test_the_route_message_gives_the_stops_in_place() -> None:
    route = route_from_message(message())
    assert route.order_ids == ("a", "b")
    assert [round(s.along_m) for s in route.stops] == [500, 1500]
    assert route.stops[0].drive_s == pytest.approx(100)


def test_a_van_serves_its_stops_in_order_and_returns() -> None:
    v = van()
    events = run(v, Disruptions(), until_s=3600)
    assert [(e.order_id, e.kind) for e in events] == [("a", "delivered"), ("b", "delivered")]
    assert v.phase == "done"
    # Roughly the plan: a's service ends after ~100 s of driving and ~120 s at the door.
    assert events[0].at - T0 < timedelta(minutes=8)


def test_an_early_van_waits_for_the_window() -> None:
    """b opens at 08:20: service there starts then, not when the van pulls up."""
    events = run(van(message(window_b=True)), Disruptions(), until_s=3600)
    b = next(e for e in events if e.order_id == "b")
    assert b.at >= T0 + timedelta(minutes=20)


def test_the_disruptions_slow_stop_jam_and_failure() -> None:
    plain = run(van(), Disruptions(), until_s=3600)
    slow = run(van(), Disruptions(slow_stops=("a",)), until_s=7200)
    jam = Jam("van-1", "b", timedelta(minutes=20))
    jammed = run(van(), Disruptions(jam=jam), until_s=7200)
    failed = run(van(), Disruptions(failed_stops=("b",)), until_s=3600)
    # a takes 30 minutes longer than planned, and b is that much later.
    assert timedelta(minutes=29) < slow[0].at - plain[0].at < timedelta(minutes=31)
    assert timedelta(minutes=29) < slow[1].at - plain[1].at < timedelta(minutes=31)
    # The jam holds the van about its 20 minutes on the way to b, and only there.
    assert timedelta(minutes=18) < jammed[1].at - plain[1].at < timedelta(minutes=21)
    assert jammed[0].at == plain[0].at
    assert [(e.order_id, e.kind, e.reason) for e in failed][1] == ("b", "failed", "nobody at home")


def test_the_jam_is_a_queue_on_the_way_to_its_stop_clear_of_both_doors() -> None:
    """The van joins the queue at its tail even with coarse steps, crawls it while the jam
    lasts, and is neither at a's door nor within a fence of b while it is held."""
    v = van()
    jam = Jam("van-1", "b", timedelta(minutes=20))
    now, held = T0, []
    while now < T0 + timedelta(hours=1):
        now += timedelta(seconds=60)
        speed, _ = v.step(now, 60.0, Disruptions(jam=jam))
        if v.phase == "driving" and 0 < speed < 1.0:
            held.append(v.along_m)
    # a at 500 m, b at 1,500 m: the queue from 600 m (100 past a) for 400 m.
    assert len(held) >= 18
    assert min(held) >= 600
    assert max(held) <= 1000.5
    assert v.jam_until is not None
    # Another van, or a van not on its way to b, runs free.
    other = run(van(), Disruptions(jam=Jam("van-2", "b", timedelta(minutes=20))), 3600)
    assert other == run(van(), Disruptions(), 3600)


def test_a_new_route_on_the_road_keeps_what_was_served() -> None:
    """After a, a re-plan inserts c before b: the van goes on to c, then b."""
    v = van()
    events = run(v, Disruptions(), until_s=400)
    assert [e.order_id for e in events] == ["a"]
    v.take(route_from_message(message("p2", ("a", "c", "b"))))
    assert v.index == 1
    now = T0 + timedelta(seconds=400)
    later: list[DriverEvent] = []
    for _ in range(600):
        now += timedelta(seconds=5)
        later += v.step(now, 5.0, Disruptions())[1]
    assert [e.order_id for e in later] == ["c", "b"]


def test_what_the_devices_send_decodes() -> None:
    """Fixes in our JSON and OwnTracks, and driver events, are what the service reads."""
    v = van()
    fix = v.fix(T0, 5.0, noise_m=0.0)
    topic, payload = fleet_json(fix)
    position = decode_fleet_json(topic, payload)
    assert position.vehicle_id == "van-1"
    assert position.fix_time == T0
    topic, payload = owntracks_json(fix, "driver", "van-1")
    assert decode_owntracks(topic, payload, {("driver", "van-1"): "van-1"}).lat == fix.lat
    topic, payload = event_json(DriverEvent("van-1", "a", "failed", T0, "nobody at home"))
    assert topic == "fleet/van-1/events"
    assert json.loads(payload)["reason"] == "nobody at home"


def test_the_sim_clock_stands_then_runs_at_its_speed() -> None:
    clock = SimClock(T0, speed=600.0)
    assert clock() == T0
    time.sleep(0.01)
    assert clock() == T0
    clock.run()
    time.sleep(0.05)
    moved = (clock() - T0).total_seconds()
    assert 25 < moved < 600  # 0.05 s of wall time at 600x, with room for a slow machine
    with pytest.raises(ValueError, match="time zone"):
        SimClock(datetime(2026, 1, 1), 30)

"""Arrival at a stop (issue 21, item 3): standing still at the stop along the route, not being
inside a 50 m circle around the address point for 30 s. A red light 40 m before the door is no
arrival, a van parked on the road in front of a house set back 70 m is one, a stand learned
from past deliveries is one, and a driver's word is never contradicted by the fixes."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from domain.position import Position
from domain.route_track import RouteTrack, route_track
from domain.vehicle_progress import Progress, progress_from_dict, progress_to_dict
from telematics.progress import (
    Arrived,
    Departed,
    Event,
    Passed,
    ProgressParams,
    apply_fix,
    start,
)
from telematics.stopping_points import address_key, learned_stands

LAT0, LON0 = 60.17, 24.90
M_PER_DEG_LAT = 111_195.0
M_PER_DEG_LON = M_PER_DEG_LAT * math.cos(math.radians(LAT0))
T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
P = ProgressParams()

#: (seconds from T0, x m east, y m north, reported speed or None)
Fix = tuple[float, float, float, float | None]


def at(x_m: float, y_m: float = 0.0) -> tuple[float, float]:
    """(lat, lon) of a point x metres east and y metres north of the route's start."""
    return LAT0 + y_m / M_PER_DEG_LAT, LON0 + x_m / M_PER_DEG_LON


def street(
    stops: Sequence[tuple[str, float, float]],
    stands: dict[str, tuple[float, float]] | None = None,
) -> RouteTrack:
    """A straight 2 km street east from the start; stops given as (id, x m, y m)."""
    line = [[at(x)[1], at(x)[0]] for x in range(0, 2001, 100)]
    return route_track(
        "van-1", "plan-1", line, [(s, *at(x, y)) for s, x, y in stops], stands=stands
    )


def run(
    track: RouteTrack, fixes: Sequence[Fix], state: Progress | None = None
) -> tuple[Progress, list[Event]]:
    state = state or start(track)
    events: list[Event] = []
    for s, x, y, speed in fixes:
        lat, lon = at(x, y)
        fix = Position("van-1", T0 + timedelta(seconds=s), lat, lon, speed_mps=speed)
        state, new = apply_fix(track, state, fix, P)
        events += new
    return state, events


def motion(
    legs: Sequence[tuple[float, float]], every_s: float = 5.0, *, speeds: bool = True
) -> list[Fix]:
    """Fixes every ``every_s`` along the street for legs of (seconds, x m reached at its end),
    from x = 200 at T0; a leg that does not move is standing. Each fix reports the speed it
    goes on at (a fix where a standing leg begins: 0)."""
    ends = np.cumsum([0.0, *(d for d, _ in legs)])
    xs = [200.0, *(x for _, x in legs)]
    out: list[Fix] = []
    for t in np.arange(0.0, ends[-1] + 1e-9, every_s):
        k = min(int(np.searchsorted(ends, t, side="right")) - 1, len(legs) - 1)
        v = (xs[k + 1] - xs[k]) / legs[k][0]
        x = xs[k] + v * (t - ends[k])
        out.append((float(t), float(x), 0.0, abs(v) if speeds else None))
    return out


def kinds(events: Sequence[Event]) -> list[tuple[str, str]]:
    return [(type(e).__name__, getattr(e, "order_id", "")) for e in events]


# (a) The red light before the door ------------------------------------------------------------
#: Drive 25 s to 40 m before the door at x = 500 (a red light), wait 40 s, drive on to the
#: door (5 s), stand there 3 minutes, drive on.
RED_LIGHT = [(25.0, 460.0), (40.0, 460.0), (5.0, 500.0), (180.0, 500.0), (20.0, 800.0)]
DOOR_S = 25.0 + 40.0 + 5.0


@pytest.mark.parametrize("speeds", [True, False], ids=["speed reported", "no speed"])
def test_a_red_light_before_the_door_is_not_the_arrival(speeds: bool) -> None:
    """40 s stopped at a red light 40 m before the door (inside the old 50 m circle): no
    arrival there; the van then stands 3 minutes at the door: exactly one arrival, from when
    it got to the door, and one departure when it drives on."""
    track = street([("s1", 500, 10)])
    fixes = motion(RED_LIGHT, speeds=speeds)
    _, events = run(track, fixes)
    assert kinds(events) == [("Arrived", "s1"), ("Departed", "s1")]
    arrived = events[0]
    assert isinstance(arrived, Arrived)
    first_at_door = min(s for s, x, _, _ in fixes if x == 500)
    assert first_at_door == DOOR_S
    assert arrived.at == T0 + timedelta(seconds=first_at_door)
    assert not arrived.inferred


@pytest.mark.parametrize("seed", range(20))
def test_the_red_light_with_gps_noise(seed: int) -> None:
    """The same drive with 8 m of GPS noise per axis (a phone in a van): still one arrival, at
    the door (within one fix of getting there), never at the red light."""
    rng = np.random.default_rng(seed)
    track = street([("s1", 500, 10)])
    fixes = [(s, x + rng.normal(0, 8), y + rng.normal(0, 8), v) for s, x, y, v in motion(RED_LIGHT)]
    _, events = run(track, fixes)
    arrivals = [e for e in events if isinstance(e, Arrived)]
    assert len(arrivals) == 1
    assert abs((arrivals[0].at - T0).total_seconds() - DOOR_S) <= 5


def test_a_queue_crawling_to_the_door_is_not_standing() -> None:
    """In a queue at 1.5 m/s (below the stopped speed, each fix close to the last) for a
    minute up to the door: not standing since it joined the queue 90 m before the door (the
    speeds add up to more than GPS noise); arrived at most one standstill's worth of crawl
    (30 m) before it stopped at the door."""
    track = street([("s1", 500, 10)])
    fixes = motion([(25.0, 410.0), (60.0, 500.0), (120.0, 500.0)])
    _, events = run(track, fixes)
    assert kinds(events) == [("Arrived", "s1")]
    assert T0 + timedelta(seconds=85 - 30 / 1.5) <= events[0].at <= T0 + timedelta(seconds=85)


def test_parked_short_of_the_door_for_long_is_still_a_visit() -> None:
    """The only kerb free is 40 m before the door: standing there 3 minutes is a visit, caught
    once it has lasted longer than a traffic light (2 minutes), dated from when it stopped."""
    track = street([("s1", 500, 10)])
    _, events = run(track, motion([(25.0, 460.0), (180.0, 460.0), (20.0, 800.0)]))
    assert kinds(events) == [("Arrived", "s1"), ("Departed", "s1")]
    assert events[0].at == T0 + timedelta(seconds=25)


def test_overshooting_the_door_is_a_visit() -> None:
    """Stopped 40 m beyond the door (past it along the route): arrived after the usual dwell."""
    track = street([("s1", 500, 10)])
    _, events = run(track, motion([(35.0, 540.0), (40.0, 540.0)]))
    assert kinds(events) == [("Arrived", "s1")]
    assert events[0].at == T0 + timedelta(seconds=35)


# (b) A house set back from the road ----------------------------------------------------------
def test_a_house_set_back_from_the_road_is_arrived_at_from_the_road() -> None:
    """The address point is 70 m from the road (outside the old circle around it): the van
    parked 5 minutes at the road point nearest it has arrived there, and is not "passed" when
    it drives on."""
    track = street([("s1", 500, 70)])
    fixes = motion([(30.0, 500.0), (300.0, 500.0), (60.0, 1400.0)])
    state, events = run(track, fixes)
    assert kinds(events) == [("Arrived", "s1"), ("Departed", "s1")]
    assert events[0].at == T0 + timedelta(seconds=30)
    assert not state.stops[0].passed
    assert not any(isinstance(e, Passed) for e in events)


def test_the_driver_walking_to_the_set_back_door_keeps_the_visit() -> None:
    """A phone tracker goes with the driver: parked at the road, then walking (1.4 m/s) up to
    the house 70 m back and back: one arrival, no departure while the van is there."""
    track = street([("s1", 500, 70)])
    fixes = motion([(30.0, 500.0), (40.0, 500.0)])
    walk: list[Fix] = [(70.0 + 5 * k, 500.0, 7.0 * k, 1.4) for k in range(1, 11)]
    walk += [(120.0 + 5 * k, 500.0, 70.0 - 7.0 * k, 1.4) for k in range(1, 11)]
    _, events = run(track, fixes + walk)
    assert kinds(events) == [("Arrived", "s1")]


# (c) A stand learned from past deliveries --------------------------------------------------
HOME = at(500, 10)
#: Where past deliveries to the address were confirmed: 120 m down the road from it.
HISTORY = [at(620 + dx, dy) for dx, dy in ((0, 2), (4, -3), (-5, 1), (2, 0))]


def learned_track() -> RouteTrack:
    key = address_key(*HOME)
    stands = learned_stands([(key, lat, lon) for lat, lon in HISTORY], {key: HOME})
    assert key in stands
    return street([("s1", 500, 10)], stands={"s1": stands[key]})


def test_a_learned_stand_is_arrived_at() -> None:
    """History says vans stop 120 m down the road from the address: a van standing there 3
    minutes has arrived (and leaves when it drives on)."""
    track = learned_track()
    _, events = run(track, motion([(40.0, 620.0), (180.0, 620.0), (20.0, 1000.0)]))
    assert kinds(events) == [("Arrived", "s1"), ("Departed", "s1")]
    assert events[0].at == T0 + timedelta(seconds=40)


def test_without_the_history_the_same_stop_is_no_arrival() -> None:
    """The same drive without the history: 120 m from the address, no arrival; driving on, the
    stop is passed."""
    track = street([("s1", 500, 10)])
    state, events = run(track, motion([(40.0, 620.0), (180.0, 620.0), (40.0, 1400.0)]))
    assert not any(isinstance(e, Arrived) for e in events)
    assert state.stops[0].passed


def test_the_address_itself_still_counts_with_a_learned_stand() -> None:
    """A learned stand adds a place to the fence; it does not take the road point away."""
    track = learned_track()
    _, events = run(track, motion([(30.0, 500.0), (60.0, 500.0)]))
    assert kinds(events) == [("Arrived", "s1")]


# Driver events win ---------------------------------------------------------------------------
def closed_by_driver(state: Progress, order_id: str, when: datetime) -> Progress:
    """What ``record_driver_event`` does to the stored state: the stop left, the dwell reset."""
    data = progress_to_dict(state)
    stops = data["stops"]
    assert isinstance(stops, list)
    data["stops"] = [
        {**s, "departed_at": s["departed_at"] or when.isoformat()}
        if s["order_id"] == order_id
        else s
        for s in stops
    ]
    data["inside_since"] = None
    return progress_from_dict(data)


def test_a_stop_the_driver_closed_is_not_arrived_at_or_passed_by_the_fixes() -> None:
    """The driver reported s2 (a neighbour) delivered before s1: the van then standing at s2
    is no arrival there (it would tell the customer "arrived" after "delivered"), and s1 is
    not passed for it."""
    track = street([("s1", 500, 10), ("s2", 620, 10), ("s3", 1500, 0)])
    state, _ = run(track, motion([(30.0, 500.0)]))
    state = closed_by_driver(state, "s2", T0 + timedelta(seconds=31))
    _, events = run(track, [(40.0 + 10 * k, 620.0, 5.0, 0.0) for k in range(8)], state)
    assert all(getattr(e, "order_id", "") != "s2" for e in events)
    assert not any(isinstance(e, Passed) for e in events)


def test_delivered_where_the_fence_saw_nothing_moves_progress_on() -> None:
    """The driver says s1 delivered while the fixes never showed an arrival there: the next
    stop is s2, the fixes arrive there as usual, and s1 gets no event from them."""
    track = street([("s1", 500, 10), ("s2", 1500, 10)])
    state, events = run(track, motion([(20.0, 400.0)]))
    assert events == []
    state = closed_by_driver(state, "s1", T0 + timedelta(seconds=25))
    assert state.next_stop == 1
    fixes = [(30.0 + 10 * k, 400.0 + 110 * k, 0.0, 11.0) for k in range(1, 10)]
    fixes += [(130.0 + 10 * k, 1500.0, 5.0, 0.0) for k in range(6)]
    state, events = run(track, fixes, state)
    assert kinds(events) == [("Arrived", "s2")]
    assert state.stops[0].arrived_at is None
    assert not state.stops[0].passed


def test_an_arrival_told_stands_when_the_driver_closes_the_stop() -> None:
    """Arrived by the fence, then the driver's "delivered": the arrival is kept, the stop is
    left at the driver's time, and the neighbour's dwell starts afresh after it."""
    track = street([("s1", 500, 10), ("s2", 530, 10)])
    state, events = run(track, motion([(30.0, 500.0), (40.0, 500.0)]))
    assert kinds(events) == [("Arrived", "s1")]
    arrived_at = state.stops[0].arrived_at
    state = closed_by_driver(state, "s1", T0 + timedelta(seconds=71))
    state, events = run(track, [(75.0 + 5 * k, 510.0, 0.0, 0.0) for k in range(8)], state)
    assert state.stops[0].arrived_at == arrived_at
    assert state.stops[0].departed_at == T0 + timedelta(seconds=71)
    assert kinds(events) == [("Arrived", "s2")]
    assert events[0].at == T0 + timedelta(seconds=75)


def test_moving_on_to_a_neighbour_closer_than_the_fences() -> None:
    """Neighbours 40 m apart (their fences overlap, the van never gets 80 m from s1): after
    serving s1 the van moves on and stands at s2: s1 is left when it began standing at s2,
    and s2 is arrived at then (before, s1 stayed "arrived" until the van drove off)."""
    track = street([("s1", 500, 10), ("s2", 540, 10)])
    fixes = motion([(30.0, 500.0), (60.0, 500.0), (5.0, 540.0), (60.0, 540.0)])
    _, events = run(track, fixes)
    assert kinds(events) == [("Arrived", "s1"), ("Departed", "s1"), ("Arrived", "s2")]
    assert isinstance(events[1], Departed)
    assert events[1].at == events[2].at == T0 + timedelta(seconds=95)


# The stored state --------------------------------------------------------------------------
def test_a_state_stored_before_standstills_were_kept_still_loads() -> None:
    """Old JSON has no standstill fields: it loads, and the next fixes start one."""
    track = street([("s1", 500, 10)])
    state, _ = run(track, motion([(30.0, 500.0), (10.0, 500.0)]))
    data = progress_to_dict(state)
    assert data["still_fixes"] == 3
    for key in ("still_lat", "still_lon", "still_fixes", "still_moved_m"):
        del data[key]
    old = progress_from_dict(data)
    assert (old.still_lat, old.still_fixes, old.still_moved_m) == (None, 0, 0.0)
    assert old.inside_since == state.inside_since
    _, events = run(track, [(45.0 + 5 * k, 500.0, 0.0, 0.0) for k in range(8)], old)
    assert kinds(events) == [("Arrived", "s1")]


def test_the_standstill_survives_the_json_round_trip() -> None:
    track = street([("s1", 500, 10)])
    state, _ = run(track, motion([(30.0, 500.0), (10.0, 500.0)]))
    again = progress_from_dict(progress_to_dict(state))
    assert again.still_lat == pytest.approx(state.still_lat)
    assert again.still_lon == pytest.approx(state.still_lon)
    assert again.inside_since == state.inside_since
    assert again.still_fixes == state.still_fixes == 3
    assert again.still_moved_m == state.still_moved_m

"""Progress along a route: matching through noise, arrivals with dwell, drive-bys, sparse
fixes that jump over a stop, leaving and rejoining the route."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.position import Position
from domain.route_track import RouteTrack, route_track
from domain.vehicle_progress import Progress
from telematics.progress import (
    Arrived,
    Departed,
    Event,
    LeftRoute,
    ProgressParams,
    RejoinedRoute,
    apply_fix,
    carry_over,
    start,
)

LAT0, LON0 = 60.17, 24.90
M_PER_DEG_LAT = 111_195.0
M_PER_DEG_LON = M_PER_DEG_LAT * math.cos(math.radians(LAT0))
T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
P = ProgressParams()


def at(x_m: float, y_m: float = 0.0) -> tuple[float, float]:
    """(lat, lon) of a point x metres east and y metres north of the route's start."""
    return LAT0 + y_m / M_PER_DEG_LAT, LON0 + x_m / M_PER_DEG_LON


def track() -> RouteTrack:
    """A straight 2 km street with stops at 500 m and 1,500 m."""
    line = [[at(x)[1], at(x)[0]] for x in range(0, 2001, 100)]
    stops = [("s1", *at(500, 10)), ("s2", *at(1500, -10))]
    return route_track("van-1", "plan-1", line, stops)


def drive(points: list[tuple[float, float, float]]) -> tuple[Progress, list[Event]]:
    """Apply fixes given as (seconds from T0, x m, y m)."""
    t = track()
    state = start(t)
    events: list[Event] = []
    for s, x, y in points:
        lat, lon = at(x, y)
        state, new = apply_fix(t, state, Position("van-1", T0 + timedelta(seconds=s), lat, lon), P)
        events += new
    return state, events


def test_stops_are_placed_along_the_route() -> None:
    """Each stop sits at its distance along the line."""
    t = track()
    assert abs(t.length_m - 2000) < 2
    assert [round(a) for a in t.stop_along_m] == [500, 1500]


def test_arrival_needs_dwell_and_departure_needs_distance() -> None:
    """40 s inside the fence: arrived at the first fix inside; then 100 m on: departed."""
    fixes = [(0, 300, 0), (15, 480, 5), (30, 500, 12), (45, 505, -8), (60, 498, 3), (75, 600, 0)]
    state, events = drive(fixes)
    assert events == [
        Arrived("s1", T0 + timedelta(seconds=15), False),
        Departed("s1", T0 + timedelta(seconds=75)),
    ]
    assert state.next_stop == 1


def test_driving_past_a_stop_is_not_an_arrival() -> None:
    """Through the fence at 12 m/s with fixes every 5 s: no arrival, the stop stays next."""
    fixes = [(s, 400 + 12 * s, 0) for s in range(0, 21, 5)]
    state, events = drive(fixes)
    assert events == []
    assert state.next_stop == 0
    assert state.along_m > 600


def test_sparse_fixes_that_jump_over_a_stop_still_catch_it() -> None:
    """A fix before the stop, the next 4 minutes later beyond it: arrival and departure
    inferred, with times from the distances."""
    _, events = drive([(0, 300, 0), (240, 800, 0)])
    assert [type(e) for e in events] == [Arrived, Departed]
    arrived, departed = events
    assert isinstance(arrived, Arrived)
    assert arrived.inferred
    assert abs((arrived.at - T0).total_seconds() - 200 / 12) < 0.01
    assert isinstance(departed, Departed)
    assert abs((departed.at - T0).total_seconds() - (240 - 300 / 12)) < 0.01


def test_leaving_and_rejoining_the_route() -> None:
    """200 m off the street for more than a minute: left; back on it: rejoined, once each."""
    fixes = [(0, 100, 0), (10, 200, 200), (40, 250, 220), (80, 300, 210), (120, 400, 0)]
    state, events = drive(fixes)
    assert [type(e) for e in events] == [LeftRoute, RejoinedRoute]
    assert state.on_route


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 2000), st.floats(-30, 30)), min_size=1, max_size=40))
def test_progress_never_runs_backwards_and_stops_arrive_once(
    path: list[tuple[float, float]],
) -> None:
    """Whatever the (noisy) fixes, distance along never decreases and no stop arrives twice."""
    fixes = [(10.0 * k, x, y) for k, (x, y) in enumerate(sorted(path))]
    t = track()
    state = start(t)
    arrivals: list[str] = []
    last = 0.0
    for s, x, y in fixes:
        lat, lon = at(x, y)
        state, events = apply_fix(
            t, state, Position("van-1", T0 + timedelta(seconds=s), lat, lon), P
        )
        assert state.along_m >= last
        last = state.along_m
        arrivals += [e.order_id for e in events if isinstance(e, Arrived)]
    assert len(arrivals) == len(set(arrivals))


def _run(t: RouteTrack, points: list[tuple[float, float, float]]) -> tuple[Progress, list[Event]]:
    state = start(t)
    events: list[Event] = []
    for s, x, y in points:
        lat, lon = at(x, y)
        state, new = apply_fix(t, state, Position("van-1", T0 + timedelta(seconds=s), lat, lon), P)
        events += new
    return state, events


def test_a_route_back_to_its_depot_starts_at_the_start() -> None:
    """Out along a street and back to the depot: the first fix at the depot is the start of
    the route, not its end (the nearer pass in time wins a tie)."""
    out = [[at(x)[1], at(x)[0]] for x in range(0, 1001, 100)]
    line = out + out[-2::-1]
    t = route_track("van-1", "plan-1", line, [("s1", *at(1000, 10))])
    state, _ = _run(t, [(0, 0, 3)])
    assert state.along_m < 50


def test_neighbours_served_out_of_order() -> None:
    """The driver serves the second of two neighbouring stops first: it is arrived at, the one
    skipped over counts as passed (not arrived), and the route goes on."""
    line = [[at(x)[1], at(x)[0]] for x in range(0, 2001, 100)]
    stops = [("s1", *at(500, 10)), ("s2", *at(620, 10)), ("s3", *at(1500, 0))]
    t = route_track("van-1", "plan-1", line, stops)
    fixes = [(float(s), 300.0 + 10 * s, 0.0) for s in range(0, 32)]  # drive to 610 m
    fixes += [(40.0 + 10 * k, 620.0, 5.0) for k in range(6)]  # dwell at s2
    state, events = _run(t, fixes)
    assert state.stops[0].passed
    assert state.stops[0].arrived_at is None
    assert state.stops[1].arrived_at is not None
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["Passed", "Arrived"]


def test_a_stop_far_behind_is_passed() -> None:
    """Driving on far beyond a stop without stopping there: it is passed, so the next stop
    is what the vehicle heads for (and no arrival is invented)."""
    fixes = [(float(k), 10.0 * k, 0.0) for k in range(0, 110)]  # 0 to 1,090 m at 10 m/s
    state, events = drive(fixes)
    assert state.stops[0].passed
    assert state.next_stop == 1
    assert not any(isinstance(e, Arrived) for e in events)


def test_standing_still_is_seen() -> None:
    """The time the vehicle last moved on along the route stays put while it stands."""
    fixes = [(float(k), 10.0 * k, 0.0) for k in range(0, 20)]
    fixes += [(20.0 + 10 * k, 200.0, 0.0) for k in range(30)]
    state, _ = drive(fixes)
    assert state.moved_at is not None
    assert state.moved_at <= T0 + timedelta(seconds=25)
    assert state.fix_time == T0 + timedelta(seconds=310)


def test_the_line_between_two_places_on_the_route_is_cut_where_they_fall() -> None:
    """From 250 m to 1,530 m: ends cut mid-segment, the vertices between kept, in order."""
    points = track().latlon_between(250.0, 1530.0)
    assert points[0] == pytest.approx(at(250), abs=1e-7)
    assert points[-1] == pytest.approx(at(1530), abs=1e-7)
    assert len(points) == 2 + len(range(300, 1501, 100))
    lons = [lon for _, lon in points]
    assert lons == sorted(lons)


@given(
    st.floats(min_value=-500, max_value=2500, allow_nan=False),
    st.floats(min_value=-500, max_value=2500, allow_nan=False),
)
@settings(max_examples=200, deadline=None)
def test_the_cut_line_is_as_long_as_the_stretch_it_covers(a_m: float, b_m: float) -> None:
    """Clamped to the route: its length is the distance between the clamped ends."""
    points = track().latlon_between(a_m, b_m)
    lo = min(max(a_m, 0.0), 2000.0)
    hi = min(max(b_m, lo), 2000.0)
    length_m = sum(
        math.hypot((b[0] - a[0]) * M_PER_DEG_LAT, (b[1] - a[1]) * M_PER_DEG_LON)
        for a, b in itertools.pairwise(points)
    )
    assert length_m == pytest.approx(hi - lo, abs=0.5)


def test_a_new_plan_mid_route_keeps_the_stops_done_and_the_place_reached() -> None:
    """Served s1 on the first plan; a re-plan inserts s-new between s1 and s2 on a line that
    reaches 4 km: s1 stays served, the van is placed at s1 (not the depot), and the next fixes
    find s-new, then s2, far beyond the old plan's reach from the start."""
    state, _ = drive([(0, 300, 0), (15, 480, 5), (30, 500, 12), (45, 505, -8), (75, 600, 0)])
    assert state.next_stop == 1
    line = [[at(x)[1], at(x)[0]] for x in range(0, 4001, 100)]
    stops = [("s1", *at(500, 10)), ("s-new", *at(2500, 10)), ("s2", *at(3500, -10))]
    new_track = route_track("van-1", "plan-2", line, stops)
    carried = carry_over(new_track, state)
    assert carried.plan_id == "plan-2"
    assert carried.stops[0] == state.stops[0]
    assert [s.order_id for s in carried.stops] == ["s1", "s-new", "s2"]
    assert carried.along_m == pytest.approx(500, abs=2)
    assert carried.next_stop == 1
    events: list[Event] = []
    for s, x in [(400, 1500), (500, 2450), (515, 2500), (560, 2505), (600, 2650)]:
        lat, lon = at(x, 3)
        carried, new = apply_fix(
            new_track, carried, Position("van-1", T0 + timedelta(seconds=s), lat, lon), P
        )
        events += new
    assert [type(e).__name__ for e in events] == ["Arrived", "Departed"]
    assert events[0].order_id == "s-new"  # type: ignore[union-attr]


def test_a_plan_sharing_no_stop_starts_afresh() -> None:
    """Tomorrow's plan has other orders: nothing carries over."""
    state, _ = drive([(0, 300, 0), (15, 480, 5), (30, 500, 12), (45, 505, -8), (75, 600, 0)])
    line = [[at(x)[1], at(x)[0]] for x in range(0, 2001, 100)]
    other = route_track("van-1", "plan-3", line, [("t1", *at(800, 10))])
    assert carry_over(other, state) == start(other)


def test_a_later_customers_door_passed_on_the_way_is_not_a_visit() -> None:
    """The route runs east 1 km to s1, then back west 45 m further north to s2: crawling past
    s2's door on the way out (a minute inside its fence) is no arrival there, and s1 is not
    skipped; s1 is then reached and served."""
    line = [[at(x)[1], at(x)[0]] for x in range(0, 1001, 100)]
    line += [[at(x, 45)[1], at(x, 45)[0]] for x in range(1000, -1, -100)]
    t = route_track("van-1", "plan-1", line, [("s1", *at(1000, 5)), ("s2", *at(300, 40))])
    state = start(t)
    events: list[Event] = []
    crawl = [(s, 200 + s) for s in range(0, 201, 10)]  # 1 m/s past x = 300
    drive_on = [(210 + s, 410 + 10 * s) for s in range(0, 60, 5)]
    serve = [(270 + s, 1000) for s in range(0, 61, 10)]
    for s, x in crawl + drive_on + serve:
        lat, lon = at(x)
        state, new = apply_fix(t, state, Position("van-1", T0 + timedelta(seconds=s), lat, lon), P)
        events += new
    assert [(type(e).__name__, getattr(e, "order_id", "")) for e in events] == [("Arrived", "s1")]

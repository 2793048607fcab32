"""Re-timing a solved plan by the hour of day (issue 16): each leg at the factor of the hour it
starts, windows waited for or reported missed, shift ends checked; all-ones factors give the
solvers' own times back."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routing import hgs, optimiser
from routing.costs import SolverParams
from routing.model import RouteResult, SolverModel, SolverResult, Visit
from routing.time_of_day import HourProfile, TimingViolation, retime, shift_factor
from tests.routing.models import line_model

FAST = SolverParams(time_limit_s=0.6, safety_margin_s=0.1)
#: 07:50 UTC: the first leg leaves in hour 7, the next ones in hour 8.
T0 = datetime(2026, 11, 26, 7, 50, tzinfo=UTC)
ONES = HourProfile((1.0,) * 24)


def rush(factor: float, hours: tuple[int, ...] = (8,), zone: str = "UTC") -> HourProfile:
    return HourProfile(tuple(factor if h in hours else 1.0 for h in range(24)), zone)


def one_route(nodes: list[int], starts_s: list[int]) -> SolverResult:
    """A hand-made solver result: vehicle 0 from the depot through ``nodes`` and back."""
    visits = tuple(Visit(n, s) for n, s in zip([0, *nodes, 0], starts_s, strict=True))
    return SolverResult((RouteResult(0, visits),), (), 0, "test", "test")


def times(result: SolverResult) -> list[int]:
    return [v.start_s for v in result.routes[0].visits]


def test_a_leg_leaving_in_a_rush_hour_takes_its_factor_times_the_road() -> None:
    """Depot -> 600 s -> 900 s -> 1500 s back, 10 s stops, from 07:50: the first leg leaves at
    07:50 (hour 7, x1) though it ends at 08:00; the next two leave in hour 8 (x1.5)."""
    model = line_model([600, 1500])
    solved = one_route([1, 2], [0, 600, 1510, 3020])
    timed = retime(model, solved, T0, rush(1.5))
    assert timed.drive_s == {1: 600, 2: 1350}
    assert timed.arrival_s == {1: 600, 2: 610 + 1350}
    assert times(timed.result) == [0, 600, 1960, 1970 + 2250]
    assert timed.violations == ()


@pytest.mark.parametrize(
    ("zone", "t0"),
    [("Europe/Helsinki", T0 - timedelta(hours=2)), ("America/New_York", T0 + timedelta(hours=5))],
)
def test_the_hour_is_the_local_one(zone: str, t0: datetime) -> None:
    """07:50 local is 05:50 UTC in Helsinki and 12:50 UTC in New York in November."""
    model = line_model([600, 1500])
    solved = one_route([1, 2], [0, 600, 1510, 3020])
    timed = retime(model, solved, t0, rush(1.5, zone=zone))
    assert times(timed.result) == [0, 600, 1960, 4220]


def test_a_window_missed_after_re_timing_is_reported_not_hidden() -> None:
    """Feasible at x1 (order 2 served at 1510, its window closes at 1600); the rush hour
    brings the van at 1960: served on arrival, reported 360 s late; and back 220 s after the
    shift's end."""
    model = line_model([600, 1500], windows={2: (0, 1600)}, shift_end_s=4000)
    solved = one_route([1, 2], [0, 600, 1510, 3020])
    timed = retime(model, solved, T0, rush(1.5))
    assert times(timed.result) == [0, 600, 1960, 4220]
    assert set(timed.violations) == {
        TimingViolation(0, 2, "window", 360),
        TimingViolation(0, None, "shift_end", 220),
    }


def test_a_route_the_hours_make_too_long_is_reported() -> None:
    """At most 4100 s on the road: 3020 s at x1, 4220 s at the rush hour's pace."""
    base = line_model([600, 1500])
    model = replace(base, vehicles=(replace(base.vehicles[0], max_duration_s=4100),))
    solved = one_route([1, 2], [0, 600, 1510, 3020])
    assert retime(model, solved, T0, ONES).violations == ()
    timed = retime(model, solved, T0, rush(1.5))
    assert timed.violations == (TimingViolation(0, None, "max_duration", 120),)


def test_the_van_waits_for_the_next_window_still_open() -> None:
    """Too late for 0-1600 but in time for 3000-3500: it waits, as the ETA core does, and
    nothing is missed; a window opening after it arrives is waited for too."""
    base = line_model([600, 1500])
    two = replace(base.orders[1], windows=((0, 1600), (3000, 3500)))
    model = replace(base, orders=(base.orders[0], two))
    timed = retime(model, one_route([1, 2], [0, 600, 1510, 3020]), T0, rush(1.5))
    assert timed.arrival_s[2] == 1960
    assert times(timed.result)[2] == 3000
    assert not [v for v in timed.violations if v.kind == "window"]


def _with_break(rule: tuple[int, int, int], planned_at: int) -> tuple[SolverModel, SolverResult]:
    """Depot -> 600 s -> 900 s -> back, 10 s stops; a 300 s break the solver put between the
    two orders at ``planned_at``, pausing the second drive (order 2 at 1810 at x1)."""
    base = line_model([600, 1500])
    model = replace(base, vehicles=(replace(base.vehicles[0], breaks=(rule,)),))
    visits = tuple(map(Visit, [0, 1, 2, 0], [0, 600, 1810, 3320]))
    return model, SolverResult((RouteResult(0, visits, ((planned_at, 300),)),), (), 0, "t", "t")


def test_a_break_stays_between_its_stops_and_pauses_the_drive() -> None:
    """Re-timed at x1.5 from hour 8, the van leaves order 1 at 610 and drives 1350 s: the
    break still starts at 1000, the drive pauses for it, order 2 is reached at 2260."""
    model, solved = _with_break((300, 900, 1200), 1000)
    timed = retime(model, solved, T0, rush(1.5))
    assert timed.result.routes[0].breaks == ((1000, 300),)
    assert timed.arrival_s[2] == 610 + 1350 + 300
    assert times(timed.result)[2] == 2260
    assert timed.violations == ()


def test_a_van_late_to_leave_takes_its_break_late_and_it_is_reported() -> None:
    """The break was to start at 620 (rule: by 700), right after order 1; every hour x2, the
    van only leaves order 1 at 1210: the break starts then, 510 s past its latest start."""
    model, solved = _with_break((300, 600, 700), 620)
    timed = retime(model, solved, T0, rush(2.0, hours=(7, 8)))
    assert timed.result.routes[0].breaks == ((1210, 300),)
    assert times(timed.result)[:3] == [0, 1200, 1210 + 1800 + 300]
    assert timed.violations == (TimingViolation(0, None, "break", 510),)


def _to_plan_arrivals(model: SolverModel, result: SolverResult) -> dict[int, int]:
    """The planner's arrivals (routing.planner.to_plan), in its own arithmetic."""
    orders = model.order_at()
    out = {}
    for route in result.routes:
        for a, b in zip(route.visits[:-1], route.visits[1:], strict=True):
            free = a.start_s + (orders[a.node].service_s if a.node in orders else 0)
            gap = sum(d for s, d in route.breaks if free <= s < b.start_s)
            if b.node in orders:
                out[b.node] = min(free + int(model.duration_s[a.node, b.node]) + gap, b.start_s)
    return out


def _windowed(vehicles: int = 2) -> SolverModel:
    return line_model(
        [300, 800, 1200, 2000, 2600, 150, 1700],
        vehicles=vehicles,
        windows={2: (1500, 2500), 4: (0, 2600), 5: (4000, 6000), 7: (3000, 3600)},
        service_s=60,
        shift_end_s=12_000,
    )


@pytest.mark.parametrize("hours", [HourProfile(), ONES], ids=["none", "ones"])
def test_all_ones_give_or_tools_own_times_back(hours: HourProfile) -> None:
    """Windows and a break: the solver's visits, breaks and the planner's arrivals exactly."""
    base = _windowed()
    vehicle = replace(base.vehicles[0], breaks=((600, 1500, 4000),))
    model = replace(base, vehicles=(vehicle, vehicle))
    result = optimiser.solve(model, FAST)
    assert result.routes
    assert not result.dropped
    assert any(r.breaks for r in result.routes)
    timed = retime(model, result, T0, hours)
    assert timed.result == result
    assert timed.arrival_s == _to_plan_arrivals(model, result)
    assert timed.violations == ()


def test_all_ones_give_pyvrp_own_times_back() -> None:
    model = _windowed()
    assert hgs.expressible(model, FAST) is None
    result = hgs.solve(model, FAST, time_limit_s=0.5)
    assert result.routes
    assert not result.dropped
    timed = retime(model, result, T0, ONES)
    assert timed.result == result
    assert timed.arrival_s == _to_plan_arrivals(model, result)


def test_shift_factor_weighs_each_second_of_each_shift() -> None:
    """07:30-09:00 at x1 then x2: (1800 x 1 + 3600 x 2) / 5400; local hours; none: 1."""
    hours = rush(2.0, zone="Europe/Helsinki")
    local = T0.replace(hour=5, minute=30)  # 07:30 in Helsinki
    assert shift_factor(hours, [(local, local + timedelta(minutes=90))]) == pytest.approx(
        (1800 + 7200) / 5400
    )
    two = [
        (local, local + timedelta(minutes=30)),
        (local + timedelta(minutes=30), local + timedelta(minutes=90)),
    ]
    assert shift_factor(hours, two) == pytest.approx((1800 + 7200) / 5400)
    assert shift_factor(HourProfile(), [(local, local + timedelta(hours=3))]) == 1.0
    assert shift_factor(hours, [(local, local)]) == 1.0


def test_a_profile_is_24_positive_factors_in_a_known_zone() -> None:
    with pytest.raises(ValueError, match="24"):
        HourProfile((1.0,) * 23)
    with pytest.raises(ValueError, match="positive"):
        HourProfile((1.0,) * 23 + (0.0,))
    with pytest.raises(KeyError):
        HourProfile((), "Mars/Olympus_Mons")
    assert HourProfile().neutral
    assert ONES.neutral
    assert not rush(1.1).neutral


factors = st.lists(st.floats(0.5, 2.5), min_size=24, max_size=24).map(tuple)


@st.composite
def routes(draw: st.DrawFn) -> tuple[SolverModel, SolverResult, datetime]:
    """A line model with random windows and a route through all its orders in random order,
    leaving at a random second of the day."""
    positions = draw(st.lists(st.integers(0, 3000), min_size=1, max_size=7))
    windows = {}
    for node in range(1, len(positions) + 1):
        if draw(st.booleans()):
            opens = draw(st.integers(0, 9000))
            windows[node] = (opens, opens + draw(st.integers(0, 3000)))
    model = line_model(positions, windows=windows, service_s=draw(st.integers(0, 300)),
                       shift_end_s=draw(st.integers(3000, 20_000)))  # fmt: skip
    order = draw(st.permutations(range(1, len(positions) + 1)))
    start = draw(st.integers(0, 3000))
    # The solver's times matter only for the route's start (no breaks here).
    result = one_route(list(order), [start] * (len(order) + 2))
    t0 = T0 + timedelta(seconds=draw(st.integers(0, 86_400)))
    return model, result, t0


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=routes(), f=factors, zone=st.sampled_from(["UTC", "Europe/Helsinki", "Asia/Kolkata"]))
def test_re_timed_routes_hold_together(
    case: tuple[SolverModel, SolverResult, datetime], f: tuple[float, ...], zone: str
) -> None:
    """Visits never go back in time; each drive is the road's times the factor of the hour it
    left in; service starts on arrival or at a window's opening, inside a window unless the
    miss is reported with exactly its lateness; the shift's end likewise."""
    model, result, t0 = case
    hours = HourProfile(f, zone)
    timed = retime(model, result, t0, hours)
    orders = model.order_at()
    visits = timed.result.routes[0].visits
    assert [v.start_s for v in visits] == sorted(v.start_s for v in visits)
    expected = set()
    for a, b in itertools.pairwise(visits):
        depart = a.start_s + (orders[a.node].service_s if a.node in orders else 0)
        road = int(model.duration_s[a.node, b.node])
        drive = round(road * hours.factor_at(t0 + timedelta(seconds=depart)))
        if b.node not in orders:
            assert b.start_s == depart + drive
            continue
        assert timed.drive_s[b.node] == drive
        assert timed.arrival_s[b.node] == depart + drive
        windows = orders[b.node].windows
        if not windows:
            assert b.start_s == depart + drive
        elif any(s <= b.start_s <= e for s, e in windows):
            assert b.start_s in (depart + drive, *(s for s, _ in windows))
        else:
            assert b.start_s == depart + drive
            closed = max(e for _, e in windows)
            expected.add(TimingViolation(0, b.node, "window", b.start_s - closed))
    end = visits[-1].start_s
    if end > model.vehicles[0].shift_end_s:
        expected.add(TimingViolation(0, None, "shift_end", end - model.vehicles[0].shift_end_s))
    assert set(timed.violations) == expected


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=routes(), f=factors)
def test_slower_hours_never_make_a_van_earlier_than_the_solver(
    case: tuple[SolverModel, SolverResult, datetime], f: tuple[float, ...]
) -> None:
    """Against the solver's own schedule (every hour x1): hours all at least 1 never bring a
    visit earlier, hours all at most 1 never later. (Against any other profile this need not
    hold: a van held up into a faster hour can overtake its earlier self.)"""
    model, result, t0 = case
    solver = times(retime(model, result, t0, ONES).result)
    slow = HourProfile(tuple(max(x, 1.0) for x in f))
    fast = HourProfile(tuple(min(x, 1.0) for x in f))
    later = times(retime(model, result, t0, slow).result)
    earlier = times(retime(model, result, t0, fast).result)
    assert all(a >= b for a, b in zip(later, solver, strict=True))
    assert all(a <= b for a, b in zip(earlier, solver, strict=True))

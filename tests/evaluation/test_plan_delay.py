"""The "plan + current delay" baseline: how late a van runs against its plan, read as a
dispatcher reads it off the plan and the map."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from eta.pace import Pace
from eta.params import EtaParams
from eta.predict import StopEta, predict
from eta.progress import RouteProgress, StopVisit, not_started
from eta.route import EtaRoute, EtaStop, eta_route
from evaluation.replay import plan_delay_s

T0 = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)


def _t(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.fixture
def route() -> EtaRoute:
    """Three stops 1 km apart: drive 600 s, serve 300 s. Planned arrivals at +600, +1500,
    +2400 s; departures at +900, +1800 s."""
    stops = [EtaStop(f"o{k}", 1000.0 * (k + 1), 600.0, 300.0) for k in range(3)]
    return eta_route("v1", "p1", T0, stops)


@pytest.fixture
def plan(route: EtaRoute) -> tuple[StopEta, ...]:
    return predict(route, not_started(3), T0, EtaParams(), Pace())


def _progress(
    fix_s: float, along_m: float, visits: list[tuple[float | None, float | None]]
) -> RouteProgress:
    padded = visits + [(None, None)] * (3 - len(visits))
    return RouteProgress(
        _t(fix_s),
        along_m,
        T0,
        tuple(
            StopVisit(None if a is None else _t(a), None if d is None else _t(d)) for a, d in padded
        ),
    )


def test_the_plan_is_as_assumed(plan: tuple[StopEta, ...]) -> None:
    assert [e.eta for e in plan] == [_t(600), _t(1500), _t(2400)]
    assert [e.departure for e in plan[:2]] == [_t(900), _t(1800)]


def test_not_yet_started(route: EtaRoute, plan: tuple[StopEta, ...]) -> None:
    """Before its planned departure a van is on time; after it, late by the time past it."""
    assert plan_delay_s(route, plan, not_started(3), _t(-60)) == 0.0
    assert plan_delay_s(route, plan, not_started(3), _t(300)) == 300.0


def test_mid_leg_late_by_the_planned_time_at_its_position(
    route: EtaRoute, plan: tuple[StopEta, ...]
) -> None:
    """Left stop 0 ten minutes late, halfway to stop 1 ten minutes after the plan had it
    there (+1200 s): 600 s late."""
    progress = _progress(1800, 1500.0, [(900, 1500)])
    assert plan_delay_s(route, plan, progress, _t(1800)) == pytest.approx(600.0)


def test_early_is_negative(route: EtaRoute, plan: tuple[StopEta, ...]) -> None:
    """Halfway along leg 1 at +1000 s where the plan says +1200 s: 200 s early."""
    progress = _progress(1000, 1500.0, [(500, 800)])
    assert plan_delay_s(route, plan, progress, _t(1000)) == pytest.approx(-200.0)


def test_standing_in_a_jam_grows_with_the_clock(route: EtaRoute, plan: tuple[StopEta, ...]) -> None:
    """A quarter along leg 1 (planned +1050 s) at +1500 s: 450 s late; still short of stop 1
    at +2000 s, it is at least 500 s past that stop's planned arrival."""
    progress = _progress(1500, 1250.0, [(600, 900)])
    assert plan_delay_s(route, plan, progress, _t(1500)) == pytest.approx(450.0)
    assert plan_delay_s(route, plan, progress, _t(2000)) == pytest.approx(500.0)


def test_at_a_stop_its_arrival_delay_then_the_overrun(
    route: EtaRoute, plan: tuple[StopEta, ...]
) -> None:
    """Arrived at stop 0 two minutes late; still there five minutes after its planned
    departure: five minutes late."""
    progress = _progress(800, 1000.0, [(720, None)])
    assert plan_delay_s(route, plan, progress, _t(800)) == pytest.approx(120.0)
    assert plan_delay_s(route, plan, progress, _t(1200)) == pytest.approx(300.0)


def test_off_route_counts_the_drive_back(route: EtaRoute, plan: tuple[StopEta, ...]) -> None:
    """Off the route at +1300 s with 400 s to drive back to stop 1 (planned +1500 s)."""
    on = _progress(1300, 1200.0, [(600, 900)])
    off = RouteProgress(on.fix_time, on.along_m, on.started_at, on.visits, 400.0)
    assert plan_delay_s(route, plan, off, _t(1300)) == pytest.approx(200.0)

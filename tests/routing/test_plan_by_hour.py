"""Planning by the hour of day on a given matrix (issue 16): the plan's times are the re-timed
ones, each stop's drive stays the road's, what the hours break is reported by order id, and
the cold start is the planner's plan exactly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from domain.geo import LatLon
from domain.problem import Depot, Order, PlanningProblem, TimeWindow, Vehicle, planning_problem
from routing.costs import SolverParams
from routing.matrix import TravelMatrix
from routing.plan_by_hour import Lateness, plan_on_matrix_by_hour
from routing.planner import plan_on_matrix
from routing.time_of_day import HourProfile

ONLY_OR_TOOLS = SolverParams(time_limit_s=0.8, safety_margin_s=0.1, engines=("or-tools",))
EIGHT = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
DEPOT = LatLon(60.17, 24.94)
#: Every hour x1 but 08:00-09:00 UTC, x1.5.
RUSH = HourProfile(tuple(1.5 if h == 8 else 1.0 for h in range(24)))


def _problem(o3_window: TimeWindow | None = None) -> PlanningProblem:
    """One van from 08:00 on an open route (so o1, o2, o3 in that order is the one best
    route); each order 600 s of road beyond the last, 60 s at the door."""
    orders = [
        Order(
            f"o{i}",
            LatLon(60.17 + 0.01 * i, 24.94),
            windows=(o3_window,) if i == 3 and o3_window else (),
            service_s=60,
            demand=(1,),
        )
        for i in (1, 2, 3)
    ]
    van = Vehicle("v1", DEPOT, TimeWindow(EIGHT, EIGHT + timedelta(hours=4)), capacity=(10,))
    return planning_problem([Depot("d1", DEPOT)], [van], orders)


def _matrix() -> TravelMatrix:
    xs = np.array([0, 600, 1200, 1800], dtype=np.int64)  # the depot, then o1..o3
    line = np.abs(xs[:, None] - xs[None, :])
    return TravelMatrix(line.copy(), line.copy())


def _at(minutes: float) -> datetime:
    return EIGHT + timedelta(minutes=minutes)


def test_the_cold_start_is_the_planners_plan() -> None:
    timed = plan_on_matrix_by_hour(_problem(), _matrix(), HourProfile(), ONLY_OR_TOOLS)
    assert timed.plan == plan_on_matrix(_problem(), _matrix(), ONLY_OR_TOOLS)
    assert (timed.solve_factor, timed.violations) == (1.0, ())


def test_rush_hour_moves_arrivals_later_and_keeps_the_roads_drives() -> None:
    """Every leg leaves between 08:00 and 09:00: 900 s instead of 600 s. The optimiser solved
    on the shift's mean (x1.5 for one hour of four: x1.125)."""
    cold = plan_on_matrix_by_hour(_problem(), _matrix(), HourProfile(), ONLY_OR_TOOLS).plan
    timed = plan_on_matrix_by_hour(_problem(), _matrix(), RUSH, ONLY_OR_TOOLS)
    assert timed.solve_factor == 1.125
    [route] = timed.plan.routes
    assert [s.order_id for s in route.stops] == ["o1", "o2", "o3"]
    assert [s.arrival for s in route.stops] == [_at(15), _at(31), _at(47)]
    assert [s.arrival for s in cold.routes[0].stops] == [_at(10), _at(21), _at(32)]
    for stop in route.stops:
        assert stop.duration_from_previous_s == 600
        assert stop.service_start == stop.arrival + timedelta(seconds=stop.wait_s)
        assert stop.departure == stop.service_start + timedelta(seconds=60)
    assert route.end == _at(48)
    assert timed.violations == ()


def test_a_window_the_rush_hour_breaks_is_reported_by_order_id() -> None:
    """o3 must be served by 08:40: feasible on the solve's matrix (08:35:45), not at the
    hour's pace (08:47): served on arrival and reported 420 s late, also in the summary."""
    window = TimeWindow(EIGHT, _at(40))
    timed = plan_on_matrix_by_hour(_problem(window), _matrix(), RUSH, ONLY_OR_TOOLS)
    [route] = timed.plan.routes
    o3 = route.stops[-1]
    assert (o3.order_id, o3.arrival, o3.service_start, o3.wait_s) == ("o3", _at(47), _at(47), 0)
    assert timed.violations == (Lateness("v1", "o3", "window", 420),)
    assert str(timed.violations[0]) == "vehicle v1, order o3: window missed by 420 s"
    summary = timed.summary()
    assert summary["violations"] == [
        {"vehicle_id": "v1", "order_id": "o3", "kind": "window", "late_s": 420}
    ]
    assert summary["hour_factors"][8] == 1.5
    assert summary["solve_factor"] == 1.125

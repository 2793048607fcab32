"""Planning a generated day on the Helsinki network."""

from __future__ import annotations

from datetime import timedelta

from routing.optimiser import SolverParams
from routing.planner import plan_routes
from routing.road_graph import RoadGraph
from routing.scenario import random_day
from routing.snapping import Snapper


def test_plan_serves_every_order_within_windows_and_capacity(
    helsinki: RoadGraph, helsinki_snapper: Snapper
) -> None:
    """A feasible day: every order planned once, inside its window, loads within capacity."""
    problem = random_day(helsinki, orders=25, vehicles=3, seed=4)
    plan = plan_routes(problem, helsinki, helsinki_snapper, SolverParams(time_limit_s=2))
    served = [s.order_id for r in plan.routes for s in r.stops]
    assert sorted(served) == sorted(o.id for o in problem.orders)
    assert not plan.unassigned
    orders = {o.id: o for o in problem.orders}
    capacity = {v.id: v.capacity for v in problem.vehicles}
    for route in plan.routes:
        previous_departure = route.start
        for stop in route.stops:
            window = orders[stop.order_id].window
            assert window.start <= stop.service_start <= window.end
            assert stop.arrival >= previous_departure
            assert stop.service_start == stop.arrival + timedelta(seconds=stop.wait_s)
            assert stop.load_after <= capacity[route.vehicle_id]
            previous_departure = stop.departure
        assert route.end >= previous_departure


def test_impossible_window_is_left_out_with_a_reason(
    helsinki: RoadGraph, helsinki_snapper: Snapper
) -> None:
    """An order whose window closes before any shift starts is reported, not planned."""
    from dataclasses import replace

    from domain.planning import TimeWindow, planning_problem

    problem = random_day(helsinki, orders=5, vehicles=1, seed=2)
    shift_start = problem.vehicles[0].shift.start
    early = TimeWindow(shift_start - timedelta(hours=3), shift_start - timedelta(hours=2))
    orders = [*problem.orders[:-1], replace(problem.orders[-1], window=early)]
    plan = plan_routes(
        planning_problem(list(problem.depots), list(problem.vehicles), orders),
        helsinki,
        helsinki_snapper,
        SolverParams(time_limit_s=1),
    )
    assert [u.order_id for u in plan.unassigned] == [orders[-1].id]
    assert "window" in plan.unassigned[0].reason

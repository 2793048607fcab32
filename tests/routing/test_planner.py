"""Planning on the Helsinki road network: constraints, explanations, absolute times."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from domain.plan import Plan
from domain.problem import (
    Break,
    Pair,
    PlanningProblem,
    TimeWindow,
    planning_problem,
)
from routing.costs import SolverParams
from routing.planner import plan_geojson, plan_routes
from routing.road_graph import RoadGraph
from routing.scenario import random_day
from routing.snapping import Snapper

QUICK = SolverParams(time_limit_s=1.5, safety_margin_s=0.2)


def _check_schedule(problem: PlanningProblem, plan: Plan) -> None:
    orders = {o.id: o for o in problem.orders}
    vehicles = {v.id: v for v in problem.vehicles}
    for route in plan.routes:
        vehicle = vehicles[route.vehicle_id]
        previous = route.start
        for stop in route.stops:
            windows = orders[stop.order_id].windows
            if windows:
                assert any(w.start <= stop.service_start <= w.end for w in windows)
            assert stop.arrival >= previous
            assert stop.service_start == stop.arrival + timedelta(seconds=stop.wait_s)
            capacity = vehicle.capacity
            assert all(0 <= x <= c for x, c in zip(stop.load_after, capacity, strict=False))
            previous = stop.departure
        assert route.end >= previous
        assert vehicle.shift.start <= route.start
        assert route.end <= vehicle.shift.end


def test_plan_serves_every_order_within_windows_and_capacity(
    helsinki: RoadGraph, helsinki_snapper: Snapper
) -> None:
    """A feasible day: every order planned once, inside its window, loads within capacity."""
    problem = random_day(helsinki, orders=25, vehicles=3, seed=4)
    plan = plan_routes(problem, helsinki, helsinki_snapper, QUICK)
    served = [s.order_id for r in plan.routes for s in r.stops]
    assert sorted(served) == sorted(o.id for o in problem.orders)
    assert not plan.unassigned
    _check_schedule(problem, plan)


def _small(helsinki: RoadGraph, orders: int = 6) -> PlanningProblem:
    return random_day(helsinki, orders=orders, vehicles=2, seed=2)


def test_each_impossible_order_gets_its_reason(
    helsinki: RoadGraph, helsinki_snapper: Snapper
) -> None:
    """Skills no single vehicle has, demand over capacity and a window before every shift
    are reported with their reasons; the rest is planned."""
    base = _small(helsinki)
    v1, v2 = base.vehicles
    vehicles = [replace(v1, skills=frozenset({"fridge"})), replace(v2, skills=frozenset({"lift"}))]
    shift_start = v1.shift.start
    early = TimeWindow(shift_start - timedelta(hours=3), shift_start - timedelta(hours=2))
    orders = list(base.orders)
    orders[0] = replace(orders[0], skills=frozenset({"fridge", "lift"}))
    orders[1] = replace(orders[1], demand=(10_000,))
    orders[2] = replace(orders[2], windows=(early,))
    problem = planning_problem(list(base.depots), vehicles, orders)
    plan = plan_routes(problem, helsinki, helsinki_snapper, QUICK)
    reasons = {u.order_id: u.reason for u in plan.unassigned}
    assert reasons[orders[0].id].startswith("no vehicle has all the skills")
    assert "larger than any vehicle's capacity" in reasons[orders[1].id]
    assert reasons[orders[2].id] == "window unreachable within any shift"
    assert len(reasons) == 3
    assert sorted(s.order_id for r in plan.routes for s in r.stops) == sorted(
        o.id for o in orders[3:]
    )


def test_optional_order_dropped_as_too_costly_says_its_marginal_cost(
    helsinki: RoadGraph, helsinki_snapper: Snapper
) -> None:
    """An optional order with a penalty of 1 is left out, with its marginal cost stated."""
    base = _small(helsinki)
    orders = [*base.orders[:-1], replace(base.orders[-1], optional=True, penalty=1.0)]
    problem = planning_problem(list(base.depots), list(base.vehicles), orders)
    plan = plan_routes(problem, helsinki, helsinki_snapper, QUICK)
    (left,) = plan.unassigned
    assert left.order_id == orders[-1].id
    assert "too costly" in left.reason
    assert left.marginal_cost is not None
    assert left.marginal_cost > 1


def test_break_is_planned_in_its_window(helsinki: RoadGraph, helsinki_snapper: Snapper) -> None:
    """A 30-minute lunch between 11:00 and 13:00 appears in the route, clear of stops."""
    base = _small(helsinki, orders=8)
    start = base.vehicles[0].shift.start
    lunch = Break(1800, TimeWindow(start + timedelta(hours=3), start + timedelta(hours=5)))
    vehicles = [replace(v, breaks=(lunch,)) for v in base.vehicles[:1]]
    problem = planning_problem(list(base.depots), vehicles, list(base.orders))
    plan = plan_routes(problem, helsinki, helsinki_snapper, QUICK)
    (route,) = plan.routes
    (pause,) = route.breaks
    assert lunch.window.start <= pause.start <= lunch.window.end
    assert pause.end - pause.start == timedelta(minutes=30)
    for stop in route.stops:
        assert stop.departure <= pause.start or stop.service_start >= pause.end
    _check_schedule(problem, plan)


def test_open_route_ends_at_the_last_stop(helsinki: RoadGraph, helsinki_snapper: Snapper) -> None:
    """A vehicle with no end location finishes its day where it leaves its last stop."""
    base = _small(helsinki)
    vehicles = [replace(base.vehicles[0], end=None), *base.vehicles[1:]]
    problem = planning_problem(list(base.depots), vehicles, list(base.orders))
    route = plan_routes(problem, helsinki, helsinki_snapper, QUICK).routes[0]
    assert route.stops
    assert route.end == route.stops[-1].departure


def test_pickup_and_delivery_pair(helsinki: RoadGraph, helsinki_snapper: Snapper) -> None:
    """A pair is served by one vehicle, pickup first, carrying its goods in between."""
    base = _small(helsinki)
    orders = list(base.orders)
    pickup, delivery = orders[1], orders[4]  # open 09-11, then 14-16
    problem = planning_problem(
        list(base.depots), list(base.vehicles), orders, [Pair(pickup.id, delivery.id)]
    )
    plan = plan_routes(problem, helsinki, helsinki_snapper, QUICK)
    assert not plan.unassigned
    route = next(r for r in plan.routes if any(s.order_id == pickup.id for s in r.stops))
    ids = [s.order_id for s in route.stops]
    assert ids.index(pickup.id) < ids.index(delivery.id)
    _check_schedule(problem, plan)


def test_pair_in_the_wrong_order_of_windows_is_explained(
    helsinki: RoadGraph, helsinki_snapper: Snapper
) -> None:
    """A delivery window closing before its pickup opens leaves both out, with the reason,
    and the rest of the day is planned."""
    base = _small(helsinki)
    orders = list(base.orders)
    pickup, delivery = orders[4], orders[1]  # pickup 14-16, delivery 09-11
    problem = planning_problem(
        list(base.depots), list(base.vehicles), orders, [Pair(pickup.id, delivery.id)]
    )
    plan = plan_routes(problem, helsinki, helsinki_snapper, QUICK)
    reasons = {u.order_id: u.reason for u in plan.unassigned}
    assert set(reasons) == {pickup.id, delivery.id}
    assert "delivery window closes before the pickup window opens" in reasons[pickup.id]
    assert len([s for r in plan.routes for s in r.stops]) == len(orders) - 2


def test_progress_is_reported(helsinki: RoadGraph, helsinki_snapper: Snapper) -> None:
    """The improving-solution callback fires with falling costs."""
    seen: list[tuple[float, int]] = []
    problem = _small(helsinki, orders=10)
    plan_routes(
        problem, helsinki, helsinki_snapper, QUICK, on_improve=lambda t, c: seen.append((t, c))
    )
    assert seen
    costs = [c for _, c in seen]
    assert costs == sorted(costs, reverse=True)


@pytest.mark.parametrize("dims", [1, 2])
def test_capacity_in_several_dimensions(
    helsinki: RoadGraph, helsinki_snapper: Snapper, dims: int
) -> None:
    """With a second dimension (kilograms) that binds, loads respect both."""
    base = _small(helsinki, orders=8)
    vehicles = [replace(v, capacity=(100, 50)[:dims]) for v in base.vehicles]
    orders = [replace(o, demand=(1, 10)[:dims]) for o in base.orders]
    problem = planning_problem(list(base.depots), vehicles, orders)
    plan = plan_routes(problem, helsinki, helsinki_snapper, QUICK)
    assert not plan.unassigned
    _check_schedule(problem, plan)
    if dims == 2:
        assert plan.vehicles_used == 2


def test_plan_geojson_draws_each_route(helsinki: RoadGraph, helsinki_snapper: Snapper) -> None:
    """One LineString per used vehicle, through its stops, with leg times matching the plan."""
    problem = _small(helsinki, orders=6)
    plan = plan_routes(problem, helsinki, helsinki_snapper, QUICK)
    collection = plan_geojson(problem, plan, helsinki, helsinki_snapper)
    used = [r for r in plan.routes if r.stops]
    assert len(collection["features"]) == len(used)
    for feature, route in zip(collection["features"], used, strict=True):
        assert feature["geometry"]["type"] == "LineString"
        assert feature["properties"]["order_ids"] == [s.order_id for s in route.stops]
        legs = feature["properties"]["legs"]
        assert len(legs) == len(route.stops) + 1
        for leg, stop in zip(legs, route.stops, strict=False):
            assert abs(leg["duration_s"] - stop.duration_from_previous_s) <= 1


def test_max_distance_splits_the_work(helsinki: RoadGraph, helsinki_snapper: Snapper) -> None:
    """With each van limited to a short total distance, no route exceeds it."""
    base = _small(helsinki, orders=8)
    free = plan_routes(base, helsinki, helsinki_snapper, QUICK)
    longest = max(r.distance_m for r in free.routes)
    limit = int(longest * 0.7)
    vehicles = [replace(v, max_distance_m=limit) for v in base.vehicles]
    problem = planning_problem(list(base.depots), vehicles, list(base.orders))
    plan = plan_routes(problem, helsinki, helsinki_snapper, QUICK)
    assert all(r.distance_m <= limit for r in plan.routes)

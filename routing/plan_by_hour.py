"""Planning by the hour of day: the planner's pipeline (:mod:`routing.planner`) with the
optimiser's matrix chosen for the hours the vehicles drive, then every route re-timed leg by
leg and checked (:mod:`routing.time_of_day`, docs/adr/0022).

The plan's arrivals, services, departures, breaks and route ends are the re-timed ones; each
stop's ``duration_from_previous_s`` stays the road's drive, unscaled: the ETA core and the
fleet-prior fit read that field as the road's and apply the hour factor themselves, so a scaled
one would count the hour twice in the window told at dispatch and teach the next fit that rush
hour is normal.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from domain.plan import Plan, PlannedRoute, PlannedStop
from domain.problem import PlanningProblem
from routing import portfolio
from routing.costs import ProgressCallback, SolverParams
from routing.matrix import TravelMatrix, travel_matrix
from routing.planner import ModelIndex, build_model, impossible_orders, stop_locations, to_plan
from routing.road_graph import RoadGraph
from routing.snapping import DEFAULT_MAX_SNAP_M, Snapper
from routing.time_of_day import HourProfile, Retimed, retime, scaled, shift_factor


@dataclass(frozen=True, slots=True)
class Lateness:
    """Something the hours of the day break in a plan the optimiser found feasible on its one
    matrix: a stop served after its last window closed, a van back after its shift, a break
    started after its latest start, a route longer than its vehicle may drive."""

    vehicle_id: str
    #: None: the route itself (its end, a break, its length).
    order_id: str | None
    #: "window", "shift_end", "break" or "max_duration".
    kind: str
    late_s: int

    def __str__(self) -> str:
        where = f"vehicle {self.vehicle_id}" + (f", order {self.order_id}" if self.order_id else "")
        return f"{where}: {self.kind} missed by {self.late_s} s"


@dataclass(frozen=True, slots=True)
class TimedPlan:
    plan: Plan
    hours: HourProfile
    #: The one factor the optimiser's matrix was scaled by.
    solve_factor: float
    violations: tuple[Lateness, ...] = ()

    def summary(self) -> dict[str, Any]:
        """JSON-ready, for the stored plan: the profile planned with, the solve's factor and
        what the hours break."""
        return {
            "hour_factors": list(self.hours.factors),
            "timezone": self.hours.timezone,
            "solve_factor": round(self.solve_factor, 4),
            "violations": [
                {
                    "vehicle_id": v.vehicle_id,
                    "order_id": v.order_id,
                    "kind": v.kind,
                    "late_s": v.late_s,
                }
                for v in self.violations
            ],
        }


def plan_routes_by_hour(
    problem: PlanningProblem,
    graph: RoadGraph,
    snapper: Snapper,
    hours: HourProfile,
    params: SolverParams | None = None,
    *,
    max_snap_m: float = DEFAULT_MAX_SNAP_M,
    on_improve: ProgressCallback | None = None,
) -> TimedPlan:
    """:func:`routing.planner.plan_routes` by the hour of day. Raises SnapError as it does."""
    places, ids = stop_locations(problem)
    points = snapper.snap(places, ids=ids, max_distance_m=max_snap_m, field="stops")
    matrix = travel_matrix(graph, points)
    return plan_on_matrix_by_hour(problem, matrix, hours, params, on_improve=on_improve)


def plan_on_matrix_by_hour(
    problem: PlanningProblem,
    matrix: TravelMatrix,
    hours: HourProfile,
    params: SolverParams | None = None,
    *,
    on_improve: ProgressCallback | None = None,
) -> TimedPlan:
    """:func:`routing.planner.plan_on_matrix` by the hour of day: solved on ``matrix`` scaled
    by the mean factor of the vehicles' shifts, then re-timed and checked. A neutral profile
    (the cold start) is exactly the planner's plan."""
    params = params or SolverParams()
    factor = shift_factor(hours, ((v.shift.start, v.shift.end) for v in problem.vehicles))
    solve_matrix = TravelMatrix(scaled(matrix.duration_s, factor), matrix.distance_m)
    left_out = impossible_orders(problem, solve_matrix)
    road = build_model(problem, matrix, params=params, exclude=frozenset(left_out))
    # The solve's model: costs and the reasons of dropped orders are in its units.
    solve_durations = scaled(road.model.duration_s, factor)
    solve = replace(road, model=replace(road.model, duration_s=solve_durations))
    result = portfolio.solve(solve.model, params, on_improve=on_improve)
    if hours.neutral:
        return TimedPlan(to_plan(problem, solve, result, params, left_out), hours, factor)
    timed = retime(road.model, result, road.t0, hours)
    plan = to_plan(problem, solve, timed.result, params, left_out)
    plan = replace(plan, routes=_road_drives(plan, road, timed))
    violations = tuple(
        Lateness(
            problem.vehicles[v.vehicle].id,
            road.node_order.get(v.node) if v.node is not None else None,
            v.kind,
            v.late_s,
        )
        for v in timed.violations
    )
    return TimedPlan(plan, hours, factor, violations)


def _road_drives(plan: Plan, road: ModelIndex, timed: Retimed) -> tuple[PlannedRoute, ...]:
    """Each stop's re-timed arrival and wait, and its drive on the road, unscaled."""
    routes: list[PlannedRoute] = []
    for planned, route in zip(plan.routes, timed.result.routes, strict=True):
        stops: list[PlannedStop] = []
        legs = zip(route.visits[:-2], route.visits[1:-1], strict=True)
        for stop, (a, b) in zip(planned.stops, legs, strict=True):
            arrival_s = timed.arrival_s[b.node]
            stops.append(
                replace(
                    stop,
                    arrival=road.at(arrival_s),
                    wait_s=b.start_s - arrival_s,
                    duration_from_previous_s=int(road.model.duration_s[a.node, b.node]),
                )
            )
        routes.append(replace(planned, stops=tuple(stops)))
    return tuple(routes)

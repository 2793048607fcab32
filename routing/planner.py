"""From a dispatcher's problem on a road graph to a plan: snap, build matrices, solve, explain."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

import numpy as np

from domain.planning import (
    Plan,
    PlannedRoute,
    PlannedStop,
    PlanningProblem,
    Unassigned,
)
from routing.matrix import travel_matrix
from routing.optimiser import SolverModel, SolverParams, solve
from routing.road_graph import RoadGraph
from routing.snapping import DEFAULT_MAX_SNAP_M, Snapper


def plan_routes(
    problem: PlanningProblem,
    graph: RoadGraph,
    snapper: Snapper,
    params: SolverParams | None = None,
    *,
    max_snap_m: float = DEFAULT_MAX_SNAP_M,
) -> Plan:
    """Plan the problem's orders over its vehicles on real road travel times.

    Raises SnapError (naming each stop) if a depot or order is too far from any road.
    """
    params = params or SolverParams()
    depot_index = {d.id: i for i, d in enumerate(problem.depots)}
    n_depots = len(problem.depots)
    locations = [d.location for d in problem.depots] + [o.location for o in problem.orders]
    ids = [f"depot {d.id}" for d in problem.depots] + [o.id for o in problem.orders]
    # Snap every stop first, so one error lists every stop that is off the road network.
    all_points = snapper.snap(locations, ids=ids, max_distance_m=max_snap_m, field="stops")

    t0 = min(v.shift.start for v in problem.vehicles)

    def seconds(t: datetime) -> int:
        return int((t - t0).total_seconds())

    left_out = _impossible_orders(problem)
    orders = [o for o in problem.orders if o.id not in left_out]
    points = all_points.take(
        list(range(n_depots))
        + [n_depots + k for k, o in enumerate(problem.orders) if o.id not in left_out]
    )
    matrix = travel_matrix(graph, points)
    n = len(points)
    window_start = np.zeros(n, dtype=np.int64)
    window_end = np.full(n, max(seconds(v.shift.end) for v in problem.vehicles), dtype=np.int64)
    service = np.zeros(n, dtype=np.int64)
    demand = np.zeros(n, dtype=np.int64)
    for k, order in enumerate(orders):
        node = n_depots + k
        window_start[node] = max(0, seconds(order.window.start))
        window_end[node] = seconds(order.window.end)
        service[node] = order.service_s
        demand[node] = order.demand
    model = SolverModel(
        duration_s=matrix.duration_s,
        distance_m=matrix.distance_m,
        window_start_s=window_start,
        window_end_s=window_end,
        service_s=service,
        demand=demand,
        order_nodes=tuple(range(n_depots, n)),
        vehicle_start_node=tuple(depot_index[v.depot_id] for v in problem.vehicles),
        vehicle_end_node=tuple(depot_index[v.depot_id] for v in problem.vehicles),
        vehicle_shift_start_s=tuple(seconds(v.shift.start) for v in problem.vehicles),
        vehicle_shift_end_s=tuple(seconds(v.shift.end) for v in problem.vehicles),
        vehicle_capacity=tuple(v.capacity for v in problem.vehicles),
    )
    result = solve(model, params)

    def at(s: int) -> datetime:
        return t0 + timedelta(seconds=s)

    routes: list[PlannedRoute] = []
    for vehicle, visits in zip(problem.vehicles, result.routes, strict=False):
        stops: list[PlannedStop] = []
        load = 0
        distance = 0
        for prev, visit in itertools.pairwise(visits):
            leg_m = int(matrix.distance_m[prev.node, visit.node])
            distance += leg_m
            arrival = prev.service_start_s + int(service[prev.node]) + int(
                matrix.duration_s[prev.node, visit.node]
            )
            if visit.node < n_depots:
                continue  # back at the depot: the route's end, not a stop
            load += int(demand[visit.node])
            stops.append(
                PlannedStop(
                    order_id=orders[visit.node - n_depots].id,
                    arrival=at(arrival),
                    service_start=at(visit.service_start_s),
                    departure=at(visit.service_start_s + int(service[visit.node])),
                    wait_s=visit.service_start_s - arrival,
                    load_after=load,
                    distance_from_previous_m=leg_m,
                )
            )
        start_s, end_s = visits[0].service_start_s, visits[-1].service_start_s
        routes.append(
            PlannedRoute(
                vehicle_id=vehicle.id,
                start=at(start_s),
                end=at(end_s),
                stops=tuple(stops),
                distance_m=distance,
                duration_s=end_s - start_s,
            )
        )
    dropped = {
        orders[node - n_depots].id: "dropped by the optimiser: no vehicle can reach it within "
        "its window, shift and capacity"
        for node in result.dropped_nodes
    }
    reasons = {**left_out, **dropped}
    unassigned = tuple(
        Unassigned(o.id, reasons[o.id]) for o in problem.orders if o.id in reasons
    )
    return Plan(tuple(routes), unassigned)


def _impossible_orders(problem: PlanningProblem) -> dict[str, str]:
    """Orders no vehicle could serve whatever the routes: found before solving, with why."""
    first_start = min(v.shift.start for v in problem.vehicles)
    last_end = max(v.shift.end for v in problem.vehicles)
    largest = max(v.capacity for v in problem.vehicles)
    out: dict[str, str] = {}
    for order in problem.orders:
        if order.window.end < first_start:
            out[order.id] = "window unreachable: it closes before any shift starts"
        elif order.window.start > last_end:
            out[order.id] = "window unreachable: it opens after every shift ends"
        elif order.demand > largest:
            out[order.id] = (
                f"demand {order.demand} is larger than any vehicle's capacity ({largest})"
            )
    return out

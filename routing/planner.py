"""From a dispatcher's problem on a road graph to an explained plan.

Snap every stop, build road matrices, turn the problem into the integer model, solve with the
portfolio (which checks every plan with the independent validator), and translate back to
absolute times, saying why each left-out order was left out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from domain.geo import LatLon
from domain.plan import Plan, PlannedBreak, PlannedRoute, PlannedStop, Unassigned
from domain.problem import Order, PlanningProblem, Vehicle
from routing import portfolio
from routing.costs import PRIORITY_STEP, ProgressCallback, SolverParams, arc_cost_matrix
from routing.geometry import route_geojson
from routing.matrix import TravelMatrix, travel_matrix
from routing.model import OrderNode, SolverModel, SolverResult, VehicleSpec
from routing.road_graph import RoadGraph
from routing.snapping import DEFAULT_MAX_SNAP_M, Snapper
from routing.validator import route_loads

#: Penalty of an optional order without one of its own, in cost units (an hour of driving).
DEFAULT_OPTIONAL_PENALTY = 3600


@dataclass(frozen=True, slots=True)
class ModelIndex:
    """How a problem's vehicles and orders map to model nodes, and the model's time origin."""

    t0: datetime
    order_node: dict[str, int]
    node_order: dict[int, str]
    model: SolverModel

    def at(self, seconds: int) -> datetime:
        return self.t0 + timedelta(seconds=int(seconds))

    def seconds(self, t: datetime) -> int:
        return int((t - self.t0).total_seconds())


def stop_locations(problem: PlanningProblem) -> tuple[list[LatLon], list[str]]:
    """Every place the matrices need, once: vehicles' starts and ends, then orders."""
    places: list[LatLon] = []
    ids: list[str] = []
    seen: set[LatLon] = set()
    for v in problem.vehicles:
        for role, where in (("start", v.start), ("end", v.end)):
            if where is not None and where not in seen:
                seen.add(where)
                places.append(where)
                ids.append(f"vehicle {v.id} {role}")
    places += [o.location for o in problem.orders]
    ids += [o.id for o in problem.orders]
    return places, ids


def build_model(
    problem: PlanningProblem,
    matrix: TravelMatrix,
    *,
    params: SolverParams | None = None,
    exclude: frozenset[str] = frozenset(),
    t0: datetime | None = None,
) -> ModelIndex:
    """The integer model of a problem whose :func:`stop_locations` ``matrix`` was built for.

    Orders in ``exclude`` get no node (they are reported, not solved).
    """
    params = params or SolverParams()
    places, _ = stop_locations(problem)
    n_vehicle_places = len(places) - len(problem.orders)
    place_node = {p: i for i, p in enumerate(places[:n_vehicle_places])}
    kept = [k for k, o in enumerate(problem.orders) if o.id not in exclude]
    open_end = any(v.end is None for v in problem.vehicles)
    index = list(range(n_vehicle_places)) + [n_vehicle_places + k for k in kept]
    n = len(index) + (1 if open_end else 0)
    duration = np.zeros((n, n), dtype=np.int64)
    distance = np.zeros((n, n), dtype=np.int64)
    m = len(index)
    duration[:m, :m] = matrix.duration_s[np.ix_(index, index)]
    distance[:m, :m] = matrix.distance_m[np.ix_(index, index)]
    # The open end (if any) is node n - 1: zero from everywhere, so the day ends at the last stop.

    origin = t0 or min(v.shift.start for v in problem.vehicles)

    def sec(t: datetime) -> int:
        return int((t - origin).total_seconds())

    # Never before the origin: a re-plan after every shift has ended has nothing to plan, and
    # a negative horizon would abort OR-Tools (and the process with it).
    horizon = max(0, max(sec(v.shift.end) for v in problem.vehicles))
    order_node: dict[str, int] = {}
    nodes: list[OrderNode] = []
    for position, k in enumerate(kept):
        order = problem.orders[k]
        node = n_vehicle_places + position
        order_node[order.id] = node
        windows = tuple(
            (max(0, sec(w.start)), min(horizon, sec(w.end)))
            for w in sorted(order.windows, key=lambda w: w.start)
            if sec(w.end) >= 0 and sec(w.start) <= horizon
        )
        nodes.append(
            OrderNode(
                node=node,
                windows=windows,
                service_s=order.service_s,
                demand=order.demand,
                skills=order.skills,
                penalty=_penalty(order),
                priority=order.priority,
            )
        )
    vehicles = tuple(_vehicle_spec(v, place_node, n - 1, sec, horizon) for v in problem.vehicles)
    pairs = tuple(
        (order_node[p.pickup_id], order_node[p.delivery_id])
        for p in problem.pairs
        if p.pickup_id in order_node and p.delivery_id in order_node
    )
    model = SolverModel(duration, distance, tuple(nodes), vehicles, pairs)
    return ModelIndex(origin, order_node, {v: k for k, v in order_node.items()}, model)


def _penalty(order: Order) -> int | None:
    if not order.optional:
        return None
    base = order.penalty if order.penalty is not None else DEFAULT_OPTIONAL_PENALTY
    return round(base * (1 + PRIORITY_STEP * max(0, order.priority)))


def _vehicle_spec(
    v: Vehicle,
    place_node: dict[LatLon, int],
    open_end: int,
    sec: Callable[[datetime], int],
    horizon: int,
) -> VehicleSpec:
    breaks = tuple(
        (b.duration_s, max(0, sec(b.window.start)), max(0, sec(b.window.end))) for b in v.breaks
    )
    shift_start_s = max(0, sec(v.shift.start))
    return VehicleSpec(
        start_node=place_node[v.start],
        end_node=place_node[v.end] if v.end is not None else open_end,
        shift_start_s=shift_start_s,
        # A shift already over is an empty one at the origin: the vehicle serves nothing.
        shift_end_s=max(shift_start_s, min(horizon, sec(v.shift.end))),
        capacity=v.capacity,
        skills=v.skills,
        max_duration_s=v.max_duration_s,
        max_distance_m=v.max_distance_m,
        fixed_cost=round(v.fixed_cost * 100),
        cost_per_hour=v.cost_per_hour,
        cost_per_km=v.cost_per_km,
        breaks=breaks,
    )


def impossible_orders(problem: PlanningProblem, matrix: TravelMatrix) -> dict[str, str]:
    """Orders no vehicle could serve whatever the other routes: found before solving, with why."""
    places, _ = stop_locations(problem)
    n_vehicle_places = len(places) - len(problem.orders)
    place_node = {p: i for i, p in enumerate(places[:n_vehicle_places])}
    dims = problem.dimensions
    out: dict[str, str] = {}
    for k, order in enumerate(problem.orders):
        node = n_vehicle_places + k
        demand = list(order.demand) + [0] * (dims - len(order.demand))
        skilled = [v for v in problem.vehicles if order.skills <= v.skills]
        if not skilled:
            out[order.id] = (
                f"no vehicle has all the skills it needs ({', '.join(sorted(order.skills))})"
            )
            continue
        roomy = [
            v
            for v in skilled
            if all(
                d <= c
                for d, c in zip(
                    demand, list(v.capacity) + [0] * (dims - len(v.capacity)), strict=True
                )
            )
        ]
        if not roomy:
            out[order.id] = f"demand {order.demand} is larger than any vehicle's capacity"
            continue
        if not any(_reachable(order, v, node, place_node, matrix) for v in roomy):
            out[order.id] = "window unreachable within any shift"
    by_id = {o.id: o for o in problem.orders}
    for pair in problem.pairs:
        pickup, delivery = by_id[pair.pickup_id], by_id[pair.delivery_id]
        if pickup.windows and delivery.windows:
            opens = min(w.start for w in pickup.windows)
            closes = max(w.end for w in delivery.windows)
            if closes < opens:
                why = "its pair cannot be served in order: the delivery window closes before "
                why += "the pickup window opens"
                out.setdefault(pickup.id, why)
                out.setdefault(delivery.id, why)
    for pair in problem.pairs:
        # A pair travels together: if one half cannot be served, neither is.
        for one, other in ((pair.pickup_id, pair.delivery_id), (pair.delivery_id, pair.pickup_id)):
            if one in out and other not in out:
                out[other] = f"its paired order {one} cannot be served: {out[one]}"
    return out


def _reachable(
    order: Order, v: Vehicle, node: int, place_node: dict[LatLon, int], matrix: TravelMatrix
) -> bool:
    start = place_node[v.start]
    earliest = v.shift.start + timedelta(seconds=int(matrix.duration_s[start, node]))
    back_s = 0 if v.end is None else int(matrix.duration_s[node, place_node[v.end]])
    latest = v.shift.end - timedelta(seconds=order.service_s + back_s)
    if latest < earliest:
        return False
    if not order.windows:
        return True
    return any(max(w.start, earliest) <= min(w.end, latest) for w in order.windows)


def plan_routes(
    problem: PlanningProblem,
    graph: RoadGraph,
    snapper: Snapper,
    params: SolverParams | None = None,
    *,
    max_snap_m: float = DEFAULT_MAX_SNAP_M,
    on_improve: ProgressCallback | None = None,
) -> Plan:
    """Plan the problem on real road travel times.

    Raises SnapError (naming every stop) if a vehicle's start or end or an order is too far
    from any road.
    """
    params = params or SolverParams()
    places, ids = stop_locations(problem)
    points = snapper.snap(places, ids=ids, max_distance_m=max_snap_m, field="stops")
    matrix = travel_matrix(graph, points)
    return plan_on_matrix(problem, matrix, params, on_improve=on_improve)


def plan_on_matrix(
    problem: PlanningProblem,
    matrix: TravelMatrix,
    params: SolverParams | None = None,
    *,
    on_improve: ProgressCallback | None = None,
) -> Plan:
    """Plan with a ready :func:`stop_locations` matrix (from roads, or supplied by the user)."""
    params = params or SolverParams()
    left_out = impossible_orders(problem, matrix)
    index = build_model(problem, matrix, params=params, exclude=frozenset(left_out))
    result = portfolio.solve(index.model, params, on_improve=on_improve)
    return to_plan(problem, index, result, params, left_out)


def to_plan(
    problem: PlanningProblem,
    index: ModelIndex,
    result: SolverResult,
    params: SolverParams,
    left_out: dict[str, str] | None = None,
) -> Plan:
    """Absolute times, loads and reasons for a solver result."""
    model = index.model
    orders = model.order_at()
    routes: list[PlannedRoute] = []
    for route in result.routes:
        vehicle = problem.vehicles[route.vehicle]
        loads = route_loads(model, route)
        stops: list[PlannedStop] = []
        distance = 0
        for k, (a, b) in enumerate(zip(route.visits[:-1], route.visits[1:], strict=True)):
            leg_m = int(model.distance_m[a.node, b.node])
            leg_s = int(model.duration_s[a.node, b.node])
            distance += leg_m
            free_from = a.start_s + (orders[a.node].service_s if a.node in orders else 0)
            in_gap = sum(d for s, d in route.breaks if free_from <= s < b.start_s)
            if b.node not in orders:
                continue
            arrival = min(free_from + leg_s + in_gap, b.start_s)
            stops.append(
                PlannedStop(
                    order_id=index.node_order[b.node],
                    arrival=index.at(arrival),
                    service_start=index.at(b.start_s),
                    departure=index.at(b.start_s + orders[b.node].service_s),
                    wait_s=b.start_s - arrival,
                    load_after=tuple(loads[k + 1]),
                    distance_from_previous_m=leg_m,
                    duration_from_previous_s=leg_s,
                )
            )
        start_s, end_s = route.visits[0].start_s, route.visits[-1].start_s
        routes.append(
            PlannedRoute(
                vehicle_id=vehicle.id,
                start=index.at(start_s),
                end=index.at(end_s),
                stops=tuple(stops),
                breaks=tuple(PlannedBreak(index.at(s), index.at(s + d)) for s, d in route.breaks),
                distance_m=distance,
                duration_s=end_s - start_s,
            )
        )
    reasons: dict[str, Unassigned] = {
        oid: Unassigned(oid, why) for oid, why in (left_out or {}).items()
    }
    for node in result.dropped:
        oid = index.node_order[node]
        if not result.routes:
            why = f"no plan was found within the time limit (solver status {result.status})"
            reasons[oid] = Unassigned(oid, why)
            continue
        marginal = _cheapest_insertion(model, params, result, node)
        if orders[node].penalty is None:
            why = (
                "dropped by the optimiser: no vehicle could fit it within its windows, shift, "
                "capacity and breaks alongside the other orders"
            )
        else:
            why = (
                f"optional, dropped by the optimiser as too costly: serving it would add at "
                f"least {marginal:.0f} cost units, more than its penalty of {orders[node].penalty}"
            )
        reasons[oid] = Unassigned(oid, why, marginal)
    unassigned = tuple(reasons[o.id] for o in problem.orders if o.id in reasons)
    return Plan(tuple(routes), unassigned, result.objective, result.engine)


def _cheapest_insertion(
    model: SolverModel, params: SolverParams, result: SolverResult, node: int
) -> float:
    """The least travel cost of slotting ``node`` into any route, ignoring time windows."""
    best = float("inf")
    for route in result.routes:
        cost = arc_cost_matrix(model, params, route.vehicle)
        for a, b in zip(route.visits[:-1], route.visits[1:], strict=True):
            extra = int(cost[a.node, node]) + int(cost[node, b.node]) - int(cost[a.node, b.node])
            best = min(best, float(extra))
    return best


def planned_order_ids(plan: Plan) -> Sequence[str]:
    return [s.order_id for r in plan.routes for s in r.stops]


def plan_geojson(
    problem: PlanningProblem, plan: Plan, graph: RoadGraph, snapper: Snapper
) -> dict[str, Any]:
    """A GeoJSON FeatureCollection: each route's road geometry, start to end through its stops.

    Each feature's properties carry the vehicle id, the order ids in sequence and each leg's
    duration and distance.
    """
    orders = {o.id: o for o in problem.orders}
    vehicles = {v.id: v for v in problem.vehicles}
    features: list[dict[str, Any]] = []
    for route in plan.routes:
        if not route.stops:
            continue
        vehicle = vehicles[route.vehicle_id]
        places = [vehicle.start, *(orders[s.order_id].location for s in route.stops)]
        if vehicle.end is not None:
            places.append(vehicle.end)
        feature = route_geojson(graph, snapper.snap(places, max_distance_m=float("inf")))
        feature["properties"] = {
            "vehicle_id": route.vehicle_id,
            "order_ids": [s.order_id for s in route.stops],
            "distance_m": route.distance_m,
            **feature["properties"],
        }
        features.append(feature)
    return {"type": "FeatureCollection", "features": features}

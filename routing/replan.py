"""Re-planning a fleet already on the road, and inserting an order with the least change.

What is done stays done: served or failed orders leave the problem. What is committed stays
committed: a vehicle driving to its next stop keeps it as its next stop. Goods already on board
stay on their van: its undelivered orders may be re-sequenced but not moved to another
vehicle. Windows already told to customers become soft: breaking one costs
``SolverModel.told_window_cost_per_s`` per second, so a new plan keeps promises where it can.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from domain.geo import LatLon
from domain.plan import Plan, PlannedRoute, Unassigned
from domain.problem import Break, Order, PlanningProblem, TimeWindow, planning_problem
from routing import portfolio
from routing.costs import SolverParams, arc_cost_matrix, vehicle_weight
from routing.matrix import travel_matrix
from routing.model import IntMatrix, RouteResult, SolverModel, SolverResult, Visit
from routing.planner import ModelIndex, build_model, impossible_orders, stop_locations, to_plan
from routing.road_graph import RoadGraph
from routing.snapping import DEFAULT_MAX_SNAP_M, Snapper
from routing.validator import check, route_loads


@dataclass(frozen=True, slots=True)
class VehicleState:
    """Where a vehicle on the road is now, and what it has done."""

    vehicle_id: str
    position: LatLon
    #: Orders served or failed: never planned again.
    done: frozenset[str] = frozenset()
    #: The stop it is driving to now: stays its next stop.
    next_order_id: str | None = None
    #: Orders on board (left the depot with it): may be re-sequenced, not moved to another van.
    on_board: frozenset[str] = frozenset()


def live_problem(
    problem: PlanningProblem,
    states: Sequence[VehicleState],
    now: datetime,
    new_orders: Sequence[Order] = (),
) -> PlanningProblem:
    """The rest of the day as a problem: vehicles start where they are, at ``now``."""
    by_vehicle = {s.vehicle_id: s for s in states}
    done = frozenset().union(*(s.done for s in states)) if states else frozenset()
    vehicles = []
    for v in problem.vehicles:
        state = by_vehicle.get(v.id)
        start = max(now, v.shift.start)
        shift = TimeWindow(min(start, v.shift.end), v.shift.end)
        breaks = tuple(b for b in v.breaks if b.window.end >= start)
        breaks = tuple(
            Break(b.duration_s, TimeWindow(max(b.window.start, start), b.window.end))
            for b in breaks
        )
        if state is None:
            vehicles.append(replace(v, shift=shift, breaks=breaks))
        else:
            vehicles.append(replace(v, start=state.position, shift=shift, breaks=breaks))
    orders = [o for o in problem.orders if o.id not in done] + list(new_orders)
    remaining = {o.id for o in orders}
    pairs = [p for p in problem.pairs if p.pickup_id in remaining and p.delivery_id in remaining]
    return planning_problem(list(problem.depots), vehicles, orders, pairs)


def _seconds(index: ModelIndex, t: datetime) -> int:
    return int((t - index.t0).total_seconds())


def _bind(
    index: ModelIndex,
    problem: PlanningProblem,
    states: Sequence[VehicleState],
    told: Mapping[str, TimeWindow],
) -> SolverModel:
    model = index.model
    vehicle_index = {v.id: k for k, v in enumerate(problem.vehicles)}
    bound: dict[int, int] = {}
    for state in states:
        for oid in state.on_board - state.done:
            if oid in index.order_node:
                bound[index.order_node[oid]] = vehicle_index[state.vehicle_id]
    orders = tuple(
        replace(
            o,
            vehicles=frozenset({bound[o.node]}) if o.node in bound else o.vehicles,
            told_window=(
                (
                    _seconds(index, told[index.node_order[o.node]].start),
                    _seconds(index, told[index.node_order[o.node]].end),
                )
                if index.node_order[o.node] in told
                else None
            ),
        )
        for o in model.orders
    )
    vehicles = list(model.vehicles)
    for state in states:
        if state.next_order_id is not None and state.next_order_id in index.order_node:
            k = vehicle_index[state.vehicle_id]
            vehicles[k] = replace(vehicles[k], committed=(index.order_node[state.next_order_id],))
    return replace(model, orders=orders, vehicles=tuple(vehicles))


def replan_rest(
    problem: PlanningProblem,
    states: Sequence[VehicleState],
    now: datetime,
    graph: RoadGraph,
    snapper: Snapper,
    params: SolverParams | None = None,
    *,
    told: Mapping[str, TimeWindow] | None = None,
    new_orders: Sequence[Order] = (),
    max_snap_m: float = DEFAULT_MAX_SNAP_M,
) -> Plan:
    """Re-optimise everything not done or committed, from where the vehicles are now."""
    params = params or SolverParams()
    live = live_problem(problem, states, now, new_orders)
    places, ids = stop_locations(live)
    matrix = travel_matrix(graph, snapper.snap(places, ids=ids, max_distance_m=max_snap_m))
    left_out = impossible_orders(live, matrix)
    index = build_model(live, matrix, params=params, exclude=frozenset(left_out), t0=now)
    model = _bind(index, live, states, told or {})
    index = replace(index, model=model)
    result = portfolio.solve(model, params)
    return to_plan(live, index, result, params, left_out)


def forward_schedule(
    model: SolverModel,
    vehicle: int,
    nodes: Sequence[int],
    start_s: int,
    breaks: Sequence[tuple[int, int]] = (),
) -> tuple[Visit, ...] | None:
    """Earliest service times for a fixed sequence, or None if a window or the shift breaks.

    ``breaks`` are fixed (start, duration) intervals: a drive that would cross one waits it out.
    """
    spec = model.vehicles[vehicle]
    orders = model.order_at()
    visits = [Visit(spec.start_node, start_s)]
    free_from = start_s
    previous = spec.start_node
    for node in [*nodes, spec.end_node]:
        arrive = free_from + int(model.duration_s[previous, node])
        arrive += sum(d for s, d in breaks if free_from <= s < arrive)
        order = orders.get(node)
        start = arrive
        if order is not None and order.windows:
            opening = [max(arrive, s) for s, e in order.windows if e >= arrive]
            if not opening:
                return None
            start = min(opening)
        visits.append(Visit(node, start))
        free_from = start + (order.service_s if order is not None else 0)
        previous = node
    if visits[-1].start_s > spec.shift_end_s:
        return None
    return tuple(visits)


def _told_cost(model: SolverModel, visits: Sequence[Visit]) -> int:
    orders = model.order_at()
    cost = 0
    for visit in visits:
        told = orders[visit.node].told_window if visit.node in orders else None
        if told is not None:
            late = max(0, visit.start_s - told[1]) + max(0, told[0] - visit.start_s)
            cost += late * model.told_window_cost_per_s
    return cost


def _planned_visits(
    index: ModelIndex, v: int, nodes: Sequence[int], route: PlannedRoute
) -> tuple[Visit, ...]:
    spec = index.model.vehicles[v]
    return (
        Visit(spec.start_node, _seconds(index, route.start)),
        *(
            Visit(n, _seconds(index, s.service_start))
            for n, s in zip(nodes, route.stops, strict=True)
        ),
        Visit(spec.end_node, _seconds(index, route.end)),
    )


def insert_order(
    problem: PlanningProblem,
    plan: Plan,
    order: Order,
    now: datetime,
    graph: RoadGraph,
    snapper: Snapper,
    params: SolverParams | None = None,
    *,
    told: Mapping[str, TimeWindow] | None = None,
    max_snap_m: float = DEFAULT_MAX_SNAP_M,
) -> Plan:
    """The plan with ``order`` slotted in where it costs least, nothing else reordered.

    A vehicle that has left keeps its stops already started and its next stop; the new order
    can go anywhere after those. The cost counts the extra driving, a newly used vehicle's
    fixed cost, and every second a told window would be broken by the later stops. If no
    position is feasible, the plan comes back unchanged with the order left out and why.
    """
    params = params or SolverParams()
    full = planning_problem(
        list(problem.depots), list(problem.vehicles), [*problem.orders, order], list(problem.pairs)
    )
    places, ids = stop_locations(full)
    matrix = travel_matrix(graph, snapper.snap(places, ids=ids, max_distance_m=max_snap_m))
    index = build_model(full, matrix, params=params)
    model = _bind(index, full, (), told or {})
    index = replace(index, model=model)
    new_node = index.order_node[order.id]
    planned = {r.vehicle_id: r for r in plan.routes}

    routes: list[RouteResult] = []
    best: tuple[int, RouteResult] | None = None
    for v, vehicle in enumerate(full.vehicles):
        spec = model.vehicles[v]
        route = planned.get(vehicle.id)
        if route is None or not route.stops:
            nodes: list[int] = []
            start_s = max(spec.shift_start_s, _seconds(index, now))
            breaks: list[tuple[int, int]] = []
            current: tuple[Visit, ...] = (
                Visit(spec.start_node, start_s),
                Visit(spec.end_node, start_s),
            )
            fixed = spec.fixed_cost + vehicle_weight(model, params)
        else:
            nodes = [index.order_node[s.order_id] for s in route.stops]
            start_s = _seconds(index, route.start)
            breaks = [
                (_seconds(index, b.start), int((b.end - b.start).total_seconds()))
                for b in route.breaks
            ]
            current = _planned_visits(index, v, nodes, route)
            fixed = 0
        routes.append(RouteResult(v, current, tuple(breaks)))
        if not order.skills <= spec.skills:
            continue
        started = sum(1 for s in (route.stops if route else ()) if s.service_start <= now)
        if route is not None and route.start <= now and nodes:
            started = max(started, 1)  # on its way: the next stop is committed
        cost = arc_cost_matrix(model, params, v)
        before = _route_cost(cost, current) + _told_cost(model, current)
        capacity = [*spec.capacity, *([0] * (model.dimensions - len(spec.capacity)))]
        for position in range(started, len(nodes) + 1):
            visits = forward_schedule(
                model, v, [*nodes[:position], new_node, *nodes[position:]], start_s, breaks
            )
            if visits is None:
                continue
            trial = RouteResult(v, visits, tuple(breaks))
            if any(
                x < 0 or x > c
                for load in route_loads(model, trial)
                for x, c in zip(load, capacity, strict=True)
            ):
                continue
            extra = fixed + _route_cost(cost, visits) + _told_cost(model, visits) - before
            if best is None or extra < best[0]:
                best = (extra, trial)
    if best is None:
        reason = "no vehicle can fit it without breaking a window, a shift or a capacity"
        return replace(plan, unassigned=(*plan.unassigned, Unassigned(order.id, reason)))
    chosen = best[1]
    routes[chosen.vehicle] = chosen
    dropped = tuple(
        index.order_node[u.order_id] for u in plan.unassigned if u.order_id in index.order_node
    )
    result = SolverResult(tuple(routes), dropped, 0, "insertion", "INSERTED")
    violations = [x for x in check(model, result) if x.vehicle == chosen.vehicle]
    if violations:
        raise portfolio.PlanCheckError(violations)
    return replace(to_plan(full, index, result, params), unassigned=plan.unassigned)


def _route_cost(cost: IntMatrix, visits: Sequence[Visit]) -> int:
    return sum(int(cost[a.node, b.node]) for a, b in itertools.pairwise(visits))

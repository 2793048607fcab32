"""The PyVRP engine (hybrid genetic search). The only module that imports PyVRP.

PyVRP is state of the art on time-windowed problems but expresses less than OR-Tools: one time
window per order, no breaks, skills, pickup-and-delivery pairs, committed stops or told
windows, and one cost profile for all vehicles. :func:`expressible` says whether a model fits;
the portfolio runs PyVRP only then.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pyvrp
from pyvrp.exceptions import PenaltyBoundWarning
from pyvrp.stop import MaxRuntime

from routing.costs import SolverParams, base_cost_matrix, drop_penalty, vehicle_weight
from routing.model import RouteResult, SolverModel, SolverResult, Visit

_NO_LIMIT = np.iinfo(np.int64).max
#: What makes vehicles interchangeable for PyVRP: one vehicle type per distinct key.
_TypeKey = tuple[int, int, int, int, tuple[int, ...], int | None, int | None, int]


def expressible(model: SolverModel, params: SolverParams) -> str | None:
    """None if PyVRP can solve the model exactly as posed, else why not."""
    if model.pairs:
        return "pickup-and-delivery pairs"
    for o in model.orders:
        if len(o.windows) > 1:
            return "an order with several time windows"
        if o.told_window is not None:
            return "told windows (re-planning)"
        if o.vehicles is not None:
            return "orders bound to a vehicle (re-planning)"
        if o.skills and not all(o.skills <= v.skills for v in model.vehicles):
            return "skills not every vehicle has"
    for v in model.vehicles:
        if v.breaks:
            return "breaks"
        if v.committed:
            return "committed stops (re-planning)"
        if v.cost_per_hour or v.cost_per_km:
            return "per-vehicle money costs"
        if v.max_distance_m is not None and (
            params.travel_time_weight != 0 or params.distance_weight != 1
        ):
            return "a maximum distance with a cost that is not distance"
    return None


def solve(
    model: SolverModel,
    params: SolverParams,
    *,
    time_limit_s: float,
    on_improve: Callable[[float, int], None] | None = None,
) -> SolverResult:
    """Solve an expressible model with PyVRP within ``time_limit_s`` on one thread."""
    del on_improve  # PyVRP reports only at the end; the portfolio reports its result
    weight = vehicle_weight(model, params)
    cost = base_cost_matrix(model, params)
    depot_nodes = sorted(
        {v.start_node for v in model.vehicles} | {v.end_node for v in model.vehicles}
    )
    order_nodes = [o.node for o in model.orders]
    nodes = depot_nodes + order_nodes  # PyVRP's location i is our node nodes[i]
    locations = [pyvrp.Location(0, 0) for _ in nodes]
    horizon_lo = min(v.shift_start_s for v in model.vehicles)
    horizon_hi = max(v.shift_end_s for v in model.vehicles)
    depots = [
        pyvrp.Depot(i, tw_early=horizon_lo, tw_late=horizon_hi) for i in range(len(depot_nodes))
    ]
    dims = model.dimensions
    clients = []
    for k, o in enumerate(model.orders):
        early, late = o.windows[0] if o.windows else (0, _NO_LIMIT)
        clients.append(
            pyvrp.Client(
                len(depot_nodes) + k,
                delivery=list(o.demand) + [0] * (dims - len(o.demand)),
                service_duration=o.service_s,
                tw_early=early,
                tw_late=late,
                prize=drop_penalty(model, params, o),
                required=False,
            )
        )
    depot_of = {node: i for i, node in enumerate(depot_nodes)}
    groups: dict[_TypeKey, list[int]] = {}
    for v, spec in enumerate(model.vehicles):
        key: _TypeKey = (
            spec.start_node,
            spec.end_node,
            spec.shift_start_s,
            spec.shift_end_s,
            tuple(spec.capacity) + (0,) * (dims - len(spec.capacity)),
            spec.max_duration_s,
            spec.max_distance_m,
            spec.fixed_cost,
        )
        groups.setdefault(key, []).append(v)
    vehicle_types = []
    for key, members in groups.items():
        start, end, early, late, capacity, max_duration, max_distance, fixed = key
        vehicle_types.append(
            pyvrp.VehicleType(
                len(members),
                capacity=list(capacity),
                start_depot=depot_of[start],
                end_depot=depot_of[end],
                fixed_cost=weight + int(fixed),
                tw_early=early,
                tw_late=late,
                shift_duration=_NO_LIMIT if max_duration is None else max_duration,
                max_distance=_NO_LIMIT if max_distance is None else max_distance,
                unit_distance_cost=1,
                unit_duration_cost=0,
            )
        )
    index = np.array(nodes)
    data = pyvrp.ProblemData(
        locations,
        clients,
        depots,
        vehicle_types,
        [np.ascontiguousarray(cost[np.ix_(index, index)])],  # type: ignore[list-item]
        [np.ascontiguousarray(model.duration_s[np.ix_(index, index)])],  # type: ignore[list-item]
    )
    with warnings.catch_warnings():
        # PyVRP warns when it cannot serve every client; leaving some out is ours to report.
        warnings.simplefilter("ignore", PenaltyBoundWarning)
        result = pyvrp.solve(
            data,
            MaxRuntime(max(0.05, time_limit_s)),
            seed=params.seed,
            collect_stats=False,
            display=False,
        )
    best = result.best
    status = "FEASIBLE" if best.is_feasible() else "INFEASIBLE"
    # Our vehicles of each type, handed out in order to the type's routes.
    free = {t: list(members) for t, members in enumerate(groups.values())}
    routes: dict[int, RouteResult] = {}
    served: set[int] = set()
    for route in best.routes():
        v = free[route.vehicle_type()].pop(0)
        spec = model.vehicles[v]
        visits = [Visit(spec.start_node, int(route.start_time()))]
        for activity in route.schedule():
            if activity.is_client():
                node = order_nodes[activity.idx]
                served.add(node)
                visits.append(Visit(node, int(activity.start_time)))
        visits.append(Visit(spec.end_node, int(route.end_time())))
        routes[v] = RouteResult(v, tuple(visits))
    for v, spec in enumerate(model.vehicles):
        if v not in routes:
            routes[v] = RouteResult(
                v,
                (
                    Visit(spec.start_node, spec.shift_start_s),
                    Visit(spec.end_node, spec.shift_start_s),
                ),
            )
    dropped = tuple(n for n in order_nodes if n not in served)
    return SolverResult(
        tuple(routes[v] for v in range(len(model.vehicles))),
        dropped,
        int(result.cost()) if best.is_feasible() else -1,
        "pyvrp",
        status,
    )

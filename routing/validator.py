"""An independent check of a plan against its model, with its own arithmetic.

Shares nothing with the solvers but the model's data: it recomputes loads, times, breaks and
totals from the matrices and reports every violation it finds. The solvers' callers run it
before returning a plan; the tests run it on every plan they make.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from routing.model import RouteResult, SolverModel, SolverResult


@dataclass(frozen=True, slots=True)
class Violation:
    vehicle: int | None
    node: int | None
    what: str

    def __str__(self) -> str:
        where = f"vehicle {self.vehicle}" if self.vehicle is not None else "plan"
        at = f", node {self.node}" if self.node is not None else ""
        return f"{where}{at}: {self.what}"


def _pad(values: tuple[int, ...], size: int) -> list[int]:
    return list(values) + [0] * (size - len(values))


def route_loads(model: SolverModel, route: RouteResult) -> list[list[int]]:
    """Load on board when leaving the start and after each order, per capacity dimension.

    Plain deliveries are on board from the start; a pair's goods from its pickup until its
    delivery.
    """
    dims = model.dimensions
    orders = model.order_at()
    pickup_of = {d: p for p, d in model.pairs}
    delivery_of = dict(model.pairs)
    load = [0] * dims
    for node in route.order_nodes:
        if node not in pickup_of and node not in delivery_of:
            load = [a + b for a, b in zip(load, _pad(orders[node].demand, dims), strict=True)]
    out = [load]
    for node in route.order_nodes:
        demand = _pad(orders[node].demand, dims)
        sign = 1 if node in delivery_of else -1
        load = [a + sign * b for a, b in zip(load, demand, strict=True)]
        out.append(load)
    return out


def check(model: SolverModel, result: SolverResult) -> list[Violation]:
    """Every hard constraint the result breaks (an empty list means the plan is feasible)."""
    out: list[Violation] = []
    orders = model.order_at()
    seen: dict[int, int] = {}
    for route in result.routes:
        for node in route.order_nodes:
            if node not in orders:
                out.append(Violation(route.vehicle, node, "visits a node that is not an order"))
            elif node in seen:
                out.append(Violation(route.vehicle, node, "order served twice"))
            seen[node] = route.vehicle
        out += _check_route(model, route)
    for node in result.dropped:
        if node in seen:
            out.append(Violation(None, node, "order both served and reported dropped"))
    missing = set(orders) - set(seen) - set(result.dropped)
    out += [
        Violation(None, n, "order neither served nor reported dropped") for n in sorted(missing)
    ]
    for pickup, delivery in model.pairs:
        vp, vd = seen.get(pickup), seen.get(delivery)
        if vp != vd:
            out.append(
                Violation(vp, pickup, f"pair split: delivery {delivery} not on the same route")
            )
        elif vp is not None:
            nodes = next(r.order_nodes for r in result.routes if r.vehicle == vp)
            if nodes.index(pickup) > nodes.index(delivery):
                out.append(Violation(vp, delivery, "delivered before its pickup"))
    return out


def _check_route(model: SolverModel, route: RouteResult) -> list[Violation]:
    out: list[Violation] = []
    v = route.vehicle
    spec = model.vehicles[v]
    orders = model.order_at()
    visits = route.visits
    if visits[0].node != spec.start_node or visits[-1].node != spec.end_node:
        out.append(Violation(v, None, "does not start and end where the vehicle does"))
    if visits[0].start_s < spec.shift_start_s:
        out.append(Violation(v, None, "leaves before the shift starts"))
    if visits[-1].start_s > spec.shift_end_s:
        out.append(
            Violation(
                v, None, f"ends at {visits[-1].start_s}, after the shift ({spec.shift_end_s})"
            )
        )
    nodes = route.order_nodes
    if spec.committed and nodes[: len(spec.committed)] != spec.committed:
        out.append(Violation(v, None, "does not begin with its committed stops"))
    breaks = sorted(route.breaks)
    if len(breaks) != len(spec.breaks):
        out.append(Violation(v, None, f"takes {len(breaks)} breaks, needs {len(spec.breaks)}"))
    for (start, duration), (need, earliest, latest) in zip(
        breaks, sorted(spec.breaks, key=lambda b: b[1]), strict=False
    ):
        if duration < need or not earliest <= start <= latest:
            out.append(Violation(v, None, f"break at {start} for {duration} s is outside its rule"))
    distance = 0
    for a, b in itertools.pairwise(visits):
        service = orders[a.node].service_s if a.node in orders else 0
        free_from = a.start_s + service
        in_gap = sum(d for s, d in breaks if free_from <= s < b.start_s)
        if any(free_from <= s < b.start_s and s + d > b.start_s for s, d in breaks):
            out.append(Violation(v, b.node, "a break overruns the next stop"))
        earliest = free_from + int(model.duration_s[a.node, b.node]) + in_gap
        if b.start_s < earliest:
            out.append(
                Violation(v, b.node, f"starts at {b.start_s}, cannot arrive before {earliest}")
            )
        distance += int(model.distance_m[a.node, b.node])
    for visit in visits[1:-1]:
        order = orders.get(visit.node)
        if order is None:
            continue
        if order.windows and not any(s <= visit.start_s <= e for s, e in order.windows):
            out.append(
                Violation(
                    v, visit.node, f"service at {visit.start_s} outside its windows {order.windows}"
                )
            )
        if order.vehicles is not None and v not in order.vehicles:
            out.append(Violation(v, visit.node, "served by a vehicle it is not bound to"))
        if not order.skills <= spec.skills:
            out.append(
                Violation(v, visit.node, f"needs skills {sorted(order.skills - spec.skills)}")
            )
    if (
        spec.max_duration_s is not None
        and visits[-1].start_s - visits[0].start_s > spec.max_duration_s
    ):
        out.append(Violation(v, None, "route longer than the vehicle's maximum duration"))
    if spec.max_distance_m is not None and distance > spec.max_distance_m:
        out.append(Violation(v, None, "route longer than the vehicle's maximum distance"))
    capacity = _pad(spec.capacity, model.dimensions)
    for k, load in enumerate(route_loads(model, route)):
        if any(x < 0 or x > c for x, c in zip(load, capacity, strict=True)):
            node = nodes[k - 1] if k else None
            out.append(Violation(v, node, f"load {load} outside 0..{capacity}"))
    return out

"""Solver parameters and the objective every engine is judged by.

Cost units: seconds of driving times ``travel_time_weight``, plus metres times
``distance_weight``, plus cents for vehicles that carry money costs per hour or km. A used
vehicle costs ``vehicle_weight`` (plus its own fixed cost); a left-out order its penalty.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from routing.model import IntMatrix, OrderNode, SolverModel, SolverResult

#: Called with (seconds since the solve began, objective) on every improving solution.
ProgressCallback = Callable[[float, int], None]

DEFAULT_STARTS: tuple[str, ...] = (
    "PARALLEL_CHEAPEST_INSERTION",
    "LOCAL_CHEAPEST_INSERTION",
    "SAVINGS",
    "PATH_CHEAPEST_ARC",
)


@dataclass(frozen=True, slots=True)
class SolverParams:
    """Tunables of one solve."""

    time_limit_s: float = 10.0
    #: PyVRP's random seed; OR-Tools' search is deterministic for a given model and time.
    seed: int = 0
    #: Cost of using a vehicle; None picks one that dominates any plan's travel cost, so
    #: fewer vehicles always win, yet small enough that penalties never saturate.
    vehicle_weight: int | None = None
    travel_time_weight: int = 1
    distance_weight: int = 0
    #: Cost of leaving a mandatory order out; None: 100 vehicle weights.
    mandatory_penalty: int | None = None
    #: OR-Tools first-solution strategies tried in its construction phase (enum names).
    first_solutions: tuple[str, ...] = DEFAULT_STARTS
    #: Share of OR-Tools' time spent building starts before improving the best one.
    construction_share: float = 0.25
    #: OR-Tools has overrun its limit by seconds on large problems: stop this much earlier.
    safety_margin_s: float = 0.5
    #: Engines the portfolio may use: "or-tools" always; "pyvrp" on problems it can express.
    engines: tuple[str, ...] = ("pyvrp", "or-tools")
    #: Share of the time the portfolio gives PyVRP when both engines run.
    pyvrp_share: float = 0.8


def base_cost_matrix(model: SolverModel, params: SolverParams) -> IntMatrix:
    cost: IntMatrix = (
        model.duration_s * params.travel_time_weight + model.distance_m * params.distance_weight
    )
    return cost


def arc_cost_matrix(model: SolverModel, params: SolverParams, v: int) -> IntMatrix:
    """What driving each arc costs vehicle ``v``."""
    spec = model.vehicles[v]
    cost = base_cost_matrix(model, params)
    if spec.cost_per_hour or spec.cost_per_km:
        cents = model.duration_s * (spec.cost_per_hour * 100 / 3600) + model.distance_m * (
            spec.cost_per_km * 100 / 1000
        )
        cost = cost + np.rint(cents).astype(np.int64)
    return cost


def vehicle_weight(model: SolverModel, params: SolverParams) -> int:
    """A fixed vehicle cost larger than any plausible total travel cost of the whole plan."""
    if params.vehicle_weight is not None:
        return params.vehicle_weight
    bound = int(base_cost_matrix(model, params).max(initial=0)) * (len(model.orders) + 1)
    return int(min(max(bound, 10_000), 10**12))


def mandatory_penalty(model: SolverModel, params: SolverParams) -> int:
    if params.mandatory_penalty is not None:
        return params.mandatory_penalty
    return 100 * vehicle_weight(model, params)


#: Each priority point adds this share to a mandatory order's cost of being left out.
PRIORITY_STEP = 0.1


def drop_penalty(model: SolverModel, params: SolverParams, order: OrderNode) -> int:
    """What leaving ``order`` out costs: its own penalty if optional, else the mandatory
    penalty raised by its priority (so the least important impossible orders go first)."""
    if order.penalty is not None:
        return order.penalty
    return int(mandatory_penalty(model, params) * (1 + PRIORITY_STEP * max(0, order.priority)))


def objective(model: SolverModel, params: SolverParams, result: SolverResult) -> int:
    """The one objective all engines are compared by (lower is better)."""
    weight = vehicle_weight(model, params)
    total = 0
    for route in result.routes:
        if not route.order_nodes:
            continue
        total += weight + model.vehicles[route.vehicle].fixed_cost
        cost = arc_cost_matrix(model, params, route.vehicle)
        total += sum(
            int(cost[a.node, b.node])
            for a, b in zip(route.visits[:-1], route.visits[1:], strict=True)
        )
    orders = model.order_at()
    for node in result.dropped:
        total += drop_penalty(model, params, orders[node])
    return total

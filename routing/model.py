"""The engine-neutral integer model every solver reads, and the result every solver writes.

Nodes index the matrices: vehicle starts and ends first, then one node per order, then (only
if some vehicle has an open route) a free "anywhere" end node that is zero seconds and metres
from everything. Times are integer seconds from the model's reference instant.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

IntMatrix = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class OrderNode:
    node: int
    windows: tuple[tuple[int, int], ...]
    service_s: int
    demand: tuple[int, ...]
    skills: frozenset[str] = frozenset()
    #: Cost of leaving the order out; None means mandatory (left out only if impossible).
    penalty: int | None = None
    #: Orders with higher priority are left out last (scales a mandatory order's penalty).
    priority: int = 0
    #: A window already told to the customer: arriving outside it costs, but is allowed.
    told_window: tuple[int, int] | None = None
    #: Vehicles allowed to serve it (None: any with the skills), e.g. the van it is loaded on.
    vehicles: frozenset[int] | None = None


@dataclass(frozen=True, slots=True)
class VehicleSpec:
    start_node: int
    end_node: int
    shift_start_s: int
    shift_end_s: int
    capacity: tuple[int, ...]
    skills: frozenset[str] = frozenset()
    max_duration_s: int | None = None
    max_distance_m: int | None = None
    #: Extra fixed cost of using this vehicle, in cost units, on top of the solver's weight.
    fixed_cost: int = 0
    cost_per_hour: float = 0.0
    cost_per_km: float = 0.0
    #: (duration, earliest start, latest start) of each break.
    breaks: tuple[tuple[int, int, int], ...] = ()
    #: Order nodes this vehicle must visit first, in this order (re-planning on the road).
    committed: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class SolverModel:
    duration_s: IntMatrix
    distance_m: IntMatrix
    orders: tuple[OrderNode, ...]
    vehicles: tuple[VehicleSpec, ...]
    #: (pickup node, delivery node) pairs served by one vehicle, pickup first.
    pairs: tuple[tuple[int, int], ...] = ()
    #: Cost units a second of told-window violation costs (re-planning).
    told_window_cost_per_s: int = 10

    @property
    def node_count(self) -> int:
        return len(self.duration_s)

    @property
    def dimensions(self) -> int:
        return max(
            [len(v.capacity) for v in self.vehicles] + [len(o.demand) for o in self.orders] + [0]
        )

    def order_at(self) -> dict[int, OrderNode]:
        return {o.node: o for o in self.orders}


@dataclass(frozen=True, slots=True)
class Visit:
    node: int
    #: When service starts (for a route's start and end: leaving and arriving at the depot).
    start_s: int


@dataclass(frozen=True, slots=True)
class RouteResult:
    vehicle: int
    visits: tuple[Visit, ...]  # start, orders..., end
    breaks: tuple[tuple[int, int], ...] = ()  # (start, duration)

    @property
    def order_nodes(self) -> tuple[int, ...]:
        return tuple(v.node for v in self.visits[1:-1])


@dataclass(frozen=True, slots=True)
class SolverResult:
    routes: tuple[RouteResult, ...]
    dropped: tuple[int, ...]
    objective: int
    engine: str
    status: str
    #: Seconds from the start of the solve to the first feasible solution, if known.
    first_solution_s: float | None = None
    progress: tuple[tuple[float, int], ...] = field(default_factory=tuple)

    @property
    def vehicles_used(self) -> int:
        return sum(1 for r in self.routes if r.order_nodes)

    def distance(self, model: SolverModel) -> int:
        return sum(
            int(model.distance_m[a.node, b.node])
            for r in self.routes
            for a, b in zip(r.visits[:-1], r.visits[1:], strict=True)
        )

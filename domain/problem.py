"""What a dispatcher plans: depots, vehicles and orders, validated and frozen.

Build a problem with :class:`ProblemBuilder` (each ``add_*`` returns what it made) and freeze it
with :meth:`ProblemBuilder.build`, which checks everything and raises one ValidationError
listing every problem, each naming its field. Timestamps are timezone-aware at this edge; the
solver works in integer seconds and metres.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from domain.errors import Problem, ValidationError
from domain.geo import LatLon


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """A closed interval of absolute time, both ends timezone-aware."""

    start: datetime
    end: datetime

    def problems(self, where: str) -> list[Problem]:
        out: list[Problem] = []
        if self.start.tzinfo is None:
            out.append(Problem(f"{where}.start", "must carry a time zone"))
        if self.end.tzinfo is None:
            out.append(Problem(f"{where}.end", "must carry a time zone"))
        if not out and self.end < self.start:
            out.append(
                Problem(
                    where,
                    f"ends ({self.end.isoformat()}) before it starts ({self.start.isoformat()})",
                )
            )
        return out


@dataclass(frozen=True, slots=True)
class Break:
    """A driver's break of ``duration_s`` that must start within ``window``."""

    duration_s: int
    window: TimeWindow


@dataclass(frozen=True, slots=True)
class Depot:
    id: str
    location: LatLon


@dataclass(frozen=True, slots=True)
class Vehicle:
    """A van and its driver's day.

    ``end`` None means an open route: the day ends at the last stop. Capacities, like order
    demands, are one number per dimension (for example parcels, kilograms, litres).
    """

    id: str
    start: LatLon
    shift: TimeWindow
    end: LatLon | None = None
    capacity: tuple[int, ...] = ()
    skills: frozenset[str] = frozenset()
    max_duration_s: int | None = None
    max_distance_m: int | None = None
    fixed_cost: float = 0.0
    cost_per_hour: float = 0.0
    cost_per_km: float = 0.0
    breaks: tuple[Break, ...] = ()


@dataclass(frozen=True, slots=True)
class Order:
    """A stop to make: a delivery, or the pickup half of a pickup-and-delivery pair.

    ``windows`` empty means any time within the vehicles' shifts. An ``optional`` order may be
    left out at ``penalty`` cost units; a mandatory one is left out only when it cannot be
    served, and then with a reason. Higher ``priority`` orders are left out last.
    """

    id: str
    location: LatLon
    windows: tuple[TimeWindow, ...] = ()
    service_s: int = 0
    demand: tuple[int, ...] = ()
    skills: frozenset[str] = frozenset()
    priority: int = 0
    optional: bool = False
    penalty: float | None = None
    customer_ref: str = ""


@dataclass(frozen=True, slots=True)
class Pair:
    """The same goods picked up at one order and delivered at another, by one vehicle."""

    pickup_id: str
    delivery_id: str


@dataclass(frozen=True, slots=True)
class PlanningProblem:
    """A validated problem: build it with :class:`ProblemBuilder`."""

    depots: tuple[Depot, ...]
    vehicles: tuple[Vehicle, ...]
    orders: tuple[Order, ...]
    pairs: tuple[Pair, ...] = ()

    @property
    def dimensions(self) -> int:
        """Capacity dimensions in use (vehicles and orders are padded with zeros to this)."""
        sizes = [len(v.capacity) for v in self.vehicles] + [len(o.demand) for o in self.orders]
        return max(sizes, default=0)


@dataclass(slots=True)
class ProblemBuilder:
    """Collects depots, vehicles, orders and pairs, then freezes them into a checked problem."""

    depots: list[Depot] = field(default_factory=list)
    vehicles: list[Vehicle] = field(default_factory=list)
    orders: list[Order] = field(default_factory=list)
    pairs: list[Pair] = field(default_factory=list)

    def add_depot(self, depot: Depot) -> Depot:
        self.depots.append(depot)
        return depot

    def add_vehicle(self, vehicle: Vehicle) -> Vehicle:
        self.vehicles.append(vehicle)
        return vehicle

    def add_order(self, order: Order) -> Order:
        self.orders.append(order)
        return order

    def add_pair(self, pickup: Order, delivery: Order) -> Pair:
        pair = Pair(pickup.id, delivery.id)
        self.pairs.append(pair)
        return pair

    def build(self) -> PlanningProblem:
        """Check everything and freeze; raises ValidationError listing every problem."""
        return planning_problem(self.depots, self.vehicles, self.orders, self.pairs)


def _id_problems(kind: str, ids: Sequence[str]) -> list[Problem]:
    out: list[Problem] = []
    seen: set[str] = set()
    for i, item_id in enumerate(ids):
        if not item_id:
            out.append(Problem(f"{kind}[{i}].id", "must not be empty"))
        elif item_id in seen:
            out.append(Problem(f"{kind}[{i}].id", f"duplicate id {item_id!r}"))
        seen.add(item_id)
    return out


def _non_negative(where: str, values: Iterable[int]) -> list[Problem]:
    return [
        Problem(f"{where}[{k}]", f"must not be negative, got {v}")
        for k, v in enumerate(values)
        if v < 0
    ]


def planning_problem(
    depots: Sequence[Depot],
    vehicles: Sequence[Vehicle],
    orders: Sequence[Order],
    pairs: Sequence[Pair] = (),
) -> PlanningProblem:
    """Check everything and freeze it; raises ValidationError listing every problem."""
    problems: list[Problem] = []
    problems += _id_problems("depots", [d.id for d in depots])
    problems += _id_problems("vehicles", [v.id for v in vehicles])
    problems += _id_problems("orders", [o.id for o in orders])
    if not vehicles:
        problems.append(Problem("vehicles", "at least one vehicle is needed"))
    all_skills: set[str] = set()
    for i, v in enumerate(vehicles):
        where = f"vehicles[{v.id or i}]"
        all_skills |= v.skills
        problems += v.shift.problems(f"{where}.shift")
        problems += _non_negative(f"{where}.capacity", v.capacity)
        for name in ("max_duration_s", "max_distance_m"):
            value = getattr(v, name)
            if value is not None and value <= 0:
                problems.append(Problem(f"{where}.{name}", f"must be positive, got {value}"))
        for name in ("fixed_cost", "cost_per_hour", "cost_per_km"):
            if getattr(v, name) < 0:
                problems.append(Problem(f"{where}.{name}", "must not be negative"))
        for k, b in enumerate(v.breaks):
            problems += b.window.problems(f"{where}.breaks[{k}].window")
            if b.duration_s <= 0:
                problems.append(Problem(f"{where}.breaks[{k}].duration_s", "must be positive"))
    for i, o in enumerate(orders):
        where = f"orders[{o.id or i}]"
        for k, w in enumerate(o.windows):
            problems += w.problems(f"{where}.windows[{k}]")
        if o.service_s < 0:
            problems.append(Problem(f"{where}.service_s", "must not be negative"))
        problems += _non_negative(f"{where}.demand", o.demand)
        unknown = sorted(o.skills - all_skills)
        if unknown:
            problems.append(
                Problem(f"{where}.skills", f"no vehicle has skill(s) {', '.join(unknown)}")
            )
        if o.penalty is not None and o.penalty < 0:
            problems.append(Problem(f"{where}.penalty", "must not be negative"))
        if o.penalty is not None and not o.optional:
            problems.append(Problem(f"{where}.penalty", "only optional orders carry a penalty"))
    order_ids = {o.id for o in orders}
    paired: set[str] = set()
    for k, p in enumerate(pairs):
        where = f"pairs[{k}]"
        if p.pickup_id == p.delivery_id:
            problems.append(
                Problem(where, f"pickup and delivery are the same order {p.pickup_id!r}")
            )
        for role, oid in (("pickup_id", p.pickup_id), ("delivery_id", p.delivery_id)):
            if oid not in order_ids:
                problems.append(Problem(f"{where}.{role}", f"unknown order {oid!r}"))
            elif oid in paired:
                problems.append(Problem(f"{where}.{role}", f"order {oid!r} is already in a pair"))
            paired.add(oid)
    if problems:
        raise ValidationError(problems)
    return PlanningProblem(tuple(depots), tuple(vehicles), tuple(orders), tuple(pairs))

"""What a dispatcher plans with: depots, vehicles, orders, and the plan that comes back.

Absolute, timezone-aware timestamps at the edges; the solver works in integer seconds from a
day's reference instant and metres.
"""

from __future__ import annotations

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
                Problem(where, f"ends ({self.end.isoformat()}) before it starts "
                               f"({self.start.isoformat()})")
            )
        return out


@dataclass(frozen=True, slots=True)
class Depot:
    id: str
    location: LatLon


@dataclass(frozen=True, slots=True)
class Vehicle:
    id: str
    depot_id: str
    shift: TimeWindow
    capacity: int


@dataclass(frozen=True, slots=True)
class Order:
    id: str
    location: LatLon
    window: TimeWindow
    service_s: int
    demand: int = 1
    customer_ref: str = ""


@dataclass(frozen=True, slots=True)
class PlanningProblem:
    """A validated day to plan. Build it with :func:`planning_problem`."""

    depots: tuple[Depot, ...]
    vehicles: tuple[Vehicle, ...]
    orders: tuple[Order, ...]


def planning_problem(
    depots: list[Depot], vehicles: list[Vehicle], orders: list[Order]
) -> PlanningProblem:
    """Check everything and freeze it; raises ValidationError listing every problem."""
    problems: list[Problem] = []
    depot_ids = {d.id for d in depots}
    id_lists = {
        "depots": [d.id for d in depots],
        "vehicles": [v.id for v in vehicles],
        "orders": [o.id for o in orders],
    }
    for kind, item_ids in id_lists.items():
        seen: set[str] = set()
        for i, item_id in enumerate(item_ids):
            if not item_id:
                problems.append(Problem(f"{kind}[{i}].id", "must not be empty"))
            elif item_id in seen:
                problems.append(Problem(f"{kind}[{i}].id", f"duplicate id {item_id!r}"))
            seen.add(item_id)
    if not vehicles:
        problems.append(Problem("vehicles", "at least one vehicle is needed"))
    for i, v in enumerate(vehicles):
        where = f"vehicles[{v.id or i}]"
        if v.depot_id not in depot_ids:
            problems.append(Problem(f"{where}.depot_id", f"unknown depot {v.depot_id!r}"))
        if v.capacity < 0:
            problems.append(Problem(f"{where}.capacity", "must not be negative"))
        problems.extend(v.shift.problems(f"{where}.shift"))
    for i, o in enumerate(orders):
        where = f"orders[{o.id or i}]"
        problems.extend(o.window.problems(f"{where}.window"))
        if o.service_s < 0:
            problems.append(Problem(f"{where}.service_s", "must not be negative"))
        if o.demand < 0:
            problems.append(Problem(f"{where}.demand", "must not be negative"))
    if problems:
        raise ValidationError(problems)
    return PlanningProblem(tuple(depots), tuple(vehicles), tuple(orders))


@dataclass(frozen=True, slots=True)
class PlannedStop:
    order_id: str
    arrival: datetime
    service_start: datetime
    departure: datetime
    wait_s: int
    load_after: int
    distance_from_previous_m: int


@dataclass(frozen=True, slots=True)
class PlannedRoute:
    vehicle_id: str
    start: datetime
    end: datetime
    stops: tuple[PlannedStop, ...]
    distance_m: int
    duration_s: int


@dataclass(frozen=True, slots=True)
class Unassigned:
    order_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Plan:
    routes: tuple[PlannedRoute, ...]
    unassigned: tuple[Unassigned, ...] = field(default_factory=tuple)

    @property
    def distance_m(self) -> int:
        return sum(r.distance_m for r in self.routes)

    @property
    def vehicles_used(self) -> int:
        return sum(1 for r in self.routes if r.stops)

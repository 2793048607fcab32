"""A plan: what each vehicle does and when, and which orders were left out and why."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class PlannedStop:
    order_id: str
    arrival: datetime
    service_start: datetime
    departure: datetime
    wait_s: int
    load_after: tuple[int, ...]
    distance_from_previous_m: int
    duration_from_previous_s: int


@dataclass(frozen=True, slots=True)
class PlannedBreak:
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class PlannedRoute:
    vehicle_id: str
    start: datetime
    end: datetime
    stops: tuple[PlannedStop, ...]
    breaks: tuple[PlannedBreak, ...]
    distance_m: int
    duration_s: int


@dataclass(frozen=True, slots=True)
class Unassigned:
    """An order left out. ``marginal_cost`` is set when the optimiser dropped it as too costly."""

    order_id: str
    reason: str
    marginal_cost: float | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    routes: tuple[PlannedRoute, ...]
    unassigned: tuple[Unassigned, ...] = ()
    objective: int = 0
    engine: str = ""

    @property
    def distance_m(self) -> int:
        return sum(r.distance_m for r in self.routes)

    @property
    def vehicles_used(self) -> int:
        return sum(1 for r in self.routes if r.stops)

    @property
    def duration_s(self) -> int:
        """Working time of every used vehicle, first departure to last arrival."""
        return sum(r.duration_s for r in self.routes if r.stops)

    @property
    def wait_s(self) -> int:
        return sum(s.wait_s for r in self.routes for s in r.stops)

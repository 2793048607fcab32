"""What the ETA core needs to know of a vehicle's progress along its route (filled from the
vehicle progress by :mod:`eta.live`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class StopVisit:
    arrived_at: datetime | None = None
    departed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class RouteProgress:
    #: Time of the last fix placed on the route (None: no fix yet).
    fix_time: datetime | None
    #: Distance along the route's road line at that fix.
    along_m: float
    #: When the vehicle left its start (None: not yet).
    started_at: datetime | None
    #: One per stop of the route, in order.
    visits: tuple[StopVisit, ...]
    #: Off the route: the drive time back to the next stop (the caller's graph search);
    #: None when on the route.
    off_route_travel_s: float | None = None
    #: No fix for longer than the caller's silence threshold (a dead phone, a breakdown):
    #: the vehicle is taken to stand where it was last seen, so what is left of its route
    #: starts now, not at the last fix.
    silent: bool = False

    @property
    def next_stop(self) -> int:
        """Index of the first stop not yet left (len(visits) when all are done)."""
        for k, visit in enumerate(self.visits):
            if visit.departed_at is None:
                return k
        return len(self.visits)


def not_started(stop_count: int) -> RouteProgress:
    return RouteProgress(None, 0.0, None, tuple(StopVisit() for _ in range(stop_count)))

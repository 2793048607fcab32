"""Where a vehicle is along its route: the state the telematics progress keeps and the ETA
core reads (served stops, place along the line, on or off the route), and its JSON form."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class StopStatus:
    order_id: str
    arrived_at: datetime | None = None
    departed_at: datetime | None = None
    #: Inferred from fixes on both sides of the stop, none inside its fence.
    inferred: bool = False
    #: Left behind without an arrival (the vehicle moved on to later stops).
    passed: bool = False


@dataclass(frozen=True, slots=True)
class Progress:
    vehicle_id: str
    plan_id: str
    stops: tuple[StopStatus, ...]
    fix_time: datetime | None = None
    lat: float | None = None
    lon: float | None = None
    along_m: float = 0.0
    off_route_m: float = 0.0
    on_route: bool = True
    off_route_since: datetime | None = None
    #: When the vehicle began standing where it stands now (None: moving). A stop's dwell is
    #: counted from it; a driver's delivered / failed clears it, so the next stop's dwell
    #: starts afresh (the van may stand at a neighbour's door all along).
    inside_since: datetime | None = None
    #: Where it stands: the mean of the fixes since ``inside_since``, and how many there were
    #: (one fix's noise does not move a van from the door to the red light before it).
    still_lat: float | None = None
    still_lon: float | None = None
    still_fixes: int = 0
    #: How far it says it moved meanwhile (reported speed x time): a queue crawling at walking
    #: pace is not standing, however close its fixes are.
    still_moved_m: float = 0.0
    #: When the vehicle was first seen away from its start (None: not yet left).
    started_at: datetime | None = None
    #: When it last moved on along its route (by ``moved_m``), and where: a vehicle standing
    #: still between stops (a breakdown, a blocked street) is seen from these.
    moved_at: datetime | None = None
    moved_along_m: float = 0.0

    @property
    def next_stop(self) -> int:
        """Index of the first stop not yet left (len(stops) when all are done)."""
        for k, s in enumerate(self.stops):
            if s.departed_at is None:
                return k
        return len(self.stops)


def progress_to_dict(
    progress: Progress, stops: list[dict[str, object]] | None = None
) -> dict[str, object]:
    """JSON-ready progress (ISO times); ``stops``: :func:`stops_to_list` of its stops, when
    the caller kept it from an earlier call (they change only at a stop's event)."""
    return {
        "vehicle_id": progress.vehicle_id,
        "plan_id": progress.plan_id,
        "fix_time": _iso(progress.fix_time),
        "lat": progress.lat,
        "lon": progress.lon,
        "along_m": round(progress.along_m, 1),
        "off_route_m": round(progress.off_route_m, 1),
        "on_route": progress.on_route,
        "off_route_since": _iso(progress.off_route_since),
        "inside_since": _iso(progress.inside_since),
        "still_lat": progress.still_lat,
        "still_lon": progress.still_lon,
        "still_fixes": progress.still_fixes,
        "still_moved_m": round(progress.still_moved_m, 1),
        "started_at": _iso(progress.started_at),
        "moved_at": _iso(progress.moved_at),
        "moved_along_m": round(progress.moved_along_m, 1),
        "next_stop": progress.next_stop,
        "stops": stops if stops is not None else stops_to_list(progress.stops),
    }


def stops_to_list(stops: Sequence[StopStatus]) -> list[dict[str, object]]:
    """JSON-ready stop statuses (ISO times)."""
    return [
        {
            "order_id": s.order_id,
            "arrived_at": _iso(s.arrived_at),
            "departed_at": _iso(s.departed_at),
            "inferred": s.inferred,
            "passed": s.passed,
        }
        for s in stops
    ]


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t is not None else None


def progress_from_dict(data: dict[str, Any]) -> Progress:
    def when(value: object) -> datetime | None:
        return datetime.fromisoformat(value) if isinstance(value, str) else None

    return Progress(
        vehicle_id=str(data["vehicle_id"]),
        plan_id=str(data["plan_id"]),
        stops=tuple(
            StopStatus(
                s["order_id"],
                when(s["arrived_at"]),
                when(s["departed_at"]),
                bool(s["inferred"]),
                bool(s.get("passed", False)),
            )
            for s in data["stops"]
        ),
        fix_time=when(data.get("fix_time")),
        lat=data.get("lat"),
        lon=data.get("lon"),
        along_m=float(data.get("along_m", 0.0)),
        off_route_m=float(data.get("off_route_m", 0.0)),
        on_route=bool(data.get("on_route", True)),
        off_route_since=when(data.get("off_route_since")),
        inside_since=when(data.get("inside_since")),
        # States stored before standstills were kept have none: the next fix starts one.
        still_lat=_number(data.get("still_lat")),
        still_lon=_number(data.get("still_lon")),
        still_fixes=int(data.get("still_fixes") or 0),
        still_moved_m=_number(data.get("still_moved_m")) or 0.0,
        started_at=when(data.get("started_at")),
        moved_at=when(data.get("moved_at")),
        moved_along_m=float(data.get("moved_along_m", 0.0)),
    )


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None

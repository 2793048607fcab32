"""A dispatched route as the ETA core needs it: legs with their planned drive times, stops
with their planned service and windows, each placed along the route's road line.

Built once per route (when it is dispatched), then read on every fix: all per-fix work is
O(remaining stops).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from domain.errors import Problem, ValidationError

TimeWindow = tuple[datetime, datetime]


@dataclass(frozen=True, slots=True)
class EtaStop:
    order_id: str
    #: Where the stop sits along the route's road line (metres from the start).
    along_m: float
    #: Planned drive from the previous stop (or the start) to this one.
    travel_s: float
    #: Planned time at the stop.
    service_s: float
    #: When service may start (several windows, in order; empty: any time).
    windows: tuple[TimeWindow, ...] = ()

    @property
    def windows_s(self) -> tuple[tuple[float, float], ...]:
        """The windows in epoch seconds (what the hot path compares)."""
        return tuple((a.timestamp(), b.timestamp()) for a, b in self.windows)


@dataclass(frozen=True, slots=True)
class EtaBreak:
    start: datetime
    duration_s: float


@dataclass(frozen=True, slots=True)
class EtaRoute:
    vehicle_id: str
    plan_id: str
    #: Planned departure from the start (the shift start or the plan's route start).
    start: datetime
    stops: tuple[EtaStop, ...]
    breaks: tuple[EtaBreak, ...] = ()
    #: Per stop, its windows in epoch seconds; and each break as (start, end) epoch seconds.
    windows_s: tuple[tuple[tuple[float, float], ...], ...] = ()
    breaks_s: tuple[tuple[float, float], ...] = ()

    def leg_start_m(self, k: int) -> float:
        """Where leg ``k`` (the drive to stop ``k``) begins along the line."""
        return self.stops[k - 1].along_m if k > 0 else 0.0

    def index(self, order_id: str) -> int:
        for k, stop in enumerate(self.stops):
            if stop.order_id == order_id:
                return k
        raise KeyError(order_id)


def eta_route(
    vehicle_id: str,
    plan_id: str,
    start: datetime,
    stops: Sequence[EtaStop],
    breaks: Sequence[EtaBreak] = (),
) -> EtaRoute:
    """Validate and freeze a route (stops in visiting order, placed in order along the line)."""
    problems: list[Problem] = []
    if start.tzinfo is None:
        problems.append(Problem("start", "must be timezone-aware"))
    previous = 0.0
    for k, stop in enumerate(stops):
        if stop.along_m < previous - 1e-6:
            problems.append(Problem(f"stops[{k}].along_m", "stops must be in order along the line"))
        if stop.travel_s < 0 or stop.service_s < 0:
            problems.append(Problem(f"stops[{k}]", "travel_s and service_s must be >= 0"))
        for a, b in stop.windows:
            if b < a:
                problems.append(Problem(f"stops[{k}].windows", "a window ends before it starts"))
        previous = max(previous, stop.along_m)
    if problems:
        raise ValidationError(problems)
    ordered = tuple(sorted(breaks, key=lambda b: b.start))
    return EtaRoute(
        vehicle_id,
        plan_id,
        start,
        tuple(stops),
        ordered,
        tuple(stop.windows_s for stop in stops),
        tuple((b.start.timestamp(), b.start.timestamp() + b.duration_s) for b in ordered),
    )


def service_start(
    arrival_s: float, windows_s: Sequence[tuple[float, float]], *, wait: bool
) -> float:
    """When service begins for an arrival (epoch seconds): at the opening of the first window
    not yet closed (if ``wait``), else on arrival."""
    if not wait:
        return arrival_s
    for opens, closes in windows_s:
        if arrival_s <= closes:
            return max(arrival_s, opens)
    return arrival_s  # late for every window: served on arrival

"""Time of day: a leg's drive depends on the hour it starts.

The optimisers take one duration matrix, so planning by the hour is scale, then re-time
(docs/adr/0022): the optimiser solves on the road matrix scaled by one factor, the mean of the
hour factors over the vehicles' shifts (:func:`shift_factor`); then :func:`retime` drives each
route again leg by leg, every drive scaled by the factor of the hour it starts, and checks the
result against windows, shift ends, breaks and maximum durations. What the hours break is
reported (vehicle, stop, seconds late), never hidden: the solve was feasible on the mean, the
day's hours need not be.

Re-timing follows the ETA core's rules (``eta.predict``), so the first window told at dispatch
and the plan agree: a leg's factor is the one of the hour the van leaves (not where the drive
ends), the van waits for the first window not yet closed and, late for every window, serves on
arrival. Routes leave when the solver said; breaks stay between the stops the solver put them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from routing.model import IntMatrix, RouteResult, SolverModel, SolverResult, Visit

HOURS = 24


@dataclass(frozen=True, slots=True)
class HourProfile:
    """Multipliers of the road's drive time by the local hour (in ``timezone``) a leg starts:
    24 of them, or none (the cold start: every hour 1)."""

    factors: tuple[float, ...] = ()
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        if self.factors and len(self.factors) != HOURS:
            raise ValueError(f"hour factors: {HOURS} or none, not {len(self.factors)}")
        if not all(math.isfinite(f) and f > 0 for f in self.factors):
            raise ValueError(f"hour factors must be positive: {self.factors}")
        ZoneInfo(self.timezone)  # an unknown zone fails here, not in the middle of a plan

    @property
    def neutral(self) -> bool:
        return all(f == 1.0 for f in self.factors)

    def factor_at(self, at: datetime) -> float:
        if not self.factors:
            return 1.0
        return self.factors[at.astimezone(ZoneInfo(self.timezone)).hour]


def shift_factor(hours: HourProfile, shifts: Iterable[tuple[datetime, datetime]]) -> float:
    """The mean hour factor over the ``shifts`` (start, end), every second of every shift
    weighing alike; 1 when they have no length."""
    if hours.neutral:
        return 1.0
    zone = ZoneInfo(hours.timezone)
    weighted = total_s = 0.0
    for start, end in shifts:
        # UTC arithmetic: adding to a zoned datetime moves the wall clock, not the instant.
        t, stop = start.astimezone(UTC), end.astimezone(UTC)
        while t < stop:
            local = t.astimezone(zone)
            into_hour_s = local.minute * 60 + local.second + local.microsecond / 1e6
            step_s = min(3600.0 - into_hour_s, (stop - t).total_seconds())
            weighted += hours.factors[local.hour] * step_s
            total_s += step_s
            t += timedelta(seconds=step_s)
    return weighted / total_s if total_s > 0 else 1.0


def scaled(duration_s: IntMatrix, factor: float) -> IntMatrix:
    """Every drive ``factor`` times as long, in whole seconds."""
    out: IntMatrix = np.rint(duration_s * factor).astype(np.int64)
    return out


@dataclass(frozen=True, slots=True)
class TimingViolation:
    vehicle: int
    #: The order node; None for the route itself (its end, a break, its length).
    node: int | None
    #: "window" (served after its last window closed), "shift_end" (back after the shift),
    #: "break" (started after its latest start) or "max_duration" (route too long).
    kind: str
    late_s: int


@dataclass(frozen=True, slots=True)
class Retimed:
    #: The solver's routes with their visits and breaks at the re-timed times.
    result: SolverResult
    #: Per order node: when the van gets there, before any wait (breaks on the way included,
    #: as the planner counts them).
    arrival_s: dict[int, int]
    #: Per order node: the drive to it, at the factor of the hour it started.
    drive_s: dict[int, int]
    violations: tuple[TimingViolation, ...]


def retime(model: SolverModel, result: SolverResult, t0: datetime, hours: HourProfile) -> Retimed:
    """``result``'s routes re-timed on ``model``'s durations (the road's, unscaled), each
    drive times the factor of the hour it starts; ``t0`` is the instant of the model's
    second 0. All factors 1 give the solver's own times back."""
    routes: list[RouteResult] = []
    arrivals: dict[int, int] = {}
    drives: dict[int, int] = {}
    violations: list[TimingViolation] = []
    for route in result.routes:
        routes.append(_retime_route(model, route, t0, hours, arrivals, drives, violations))
    return Retimed(replace(result, routes=tuple(routes)), arrivals, drives, tuple(violations))


def _retime_route(
    model: SolverModel,
    route: RouteResult,
    t0: datetime,
    hours: HourProfile,
    arrivals: dict[int, int],
    drives: dict[int, int],
    violations: list[TimingViolation],
) -> RouteResult:
    orders = model.order_at()
    v = route.vehicle
    spec = model.vehicles[v]
    solved = route.visits
    pending = sorted(route.breaks)
    taken: list[tuple[int, int]] = []
    visits = [solved[0]]
    for k in range(len(solved) - 1):
        a, b = solved[k], solved[k + 1]
        service_s = orders[a.node].service_s if a.node in orders else 0
        # The breaks the solver put between these two stops (the planner's own rule).
        gap = [(s, d) for s, d in pending if a.start_s + service_s <= s < b.start_s]
        pending = [x for x in pending if x not in gap]
        depart = visits[k].start_s + service_s
        drive = round(
            int(model.duration_s[a.node, b.node]) * hours.factor_at(t0 + timedelta(seconds=depart))
        )
        drive_end, free = depart + drive, depart
        for s, d in gap:
            begins = max(s, free)
            if begins < drive_end:  # the drive pauses for it
                drive_end += d
            free = begins + d
            taken.append((begins, d))
        ready = max(drive_end, free)
        order = orders.get(b.node)
        if order is None:  # the route's end
            visits.append(Visit(b.node, ready))
            continue
        begin, late_s = _service_start(ready, order.windows)
        if late_s > 0:
            violations.append(TimingViolation(v, b.node, "window", late_s))
        arrivals[b.node] = min(depart + drive + sum(d for _, d in gap), begin)
        drives[b.node] = drive
        visits.append(Visit(b.node, begin))
    breaks = sorted(taken + pending)
    rules = sorted(spec.breaks, key=lambda rule: rule[1])
    for (start, _), (_, _, latest) in zip(breaks, rules, strict=False):
        if start > latest:
            violations.append(TimingViolation(v, None, "break", start - latest))
    end, begun = visits[-1].start_s, visits[0].start_s
    if end > spec.shift_end_s:
        violations.append(TimingViolation(v, None, "shift_end", end - spec.shift_end_s))
    if spec.max_duration_s is not None and end - begun > spec.max_duration_s:
        violations.append(
            TimingViolation(v, None, "max_duration", end - begun - spec.max_duration_s)
        )
    return RouteResult(v, tuple(visits), tuple(breaks))


def _service_start(ready_s: int, windows: tuple[tuple[int, int], ...]) -> tuple[int, int]:
    """(when service begins, seconds late): at the opening of the first window not yet
    closed; late for every window, on arrival, late by the time since the last one closed."""
    if not windows:
        return ready_s, 0
    ordered = sorted(windows)
    for opens, closes in ordered:
        if ready_s <= closes:
            return max(ready_s, opens), 0
    return ready_s, ready_s - max(closes for _, closes in ordered)

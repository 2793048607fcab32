"""Learning from the day so far: how this vehicle's drives and stops compare with the plan.

Recomputed from the progress on each fix (O(stops)), so there is no model state to store or
lose: a restarted worker learns exactly what the crashed one knew.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from eta.params import EtaParams
from eta.progress import RouteProgress
from eta.route import EtaRoute, EtaStop, service_start


@dataclass(frozen=True, slots=True)
class Pace:
    #: Actual / planned drive time (1.0: as planned; 1.3: 30% slower).
    travel: float = 1.0
    #: Actual / planned service time.
    service: float = 1.0
    #: Planned driving seconds of evidence behind ``travel`` (0: the prior alone).
    travel_evidence_s: float = 0.0
    #: Completed stops behind ``service``.
    service_evidence: float = 0.0


def expected_travel_s(stop: EtaStop, params: EtaParams, start_s: float | None = None) -> float:
    """The drive to ``stop``, starting at ``start_s`` (epoch s), as the fleet's history says
    it takes, before today's pace."""
    prior = params.prior
    factor = prior.travel_factor
    if start_s is not None:
        factor *= prior.hour_factor(start_s)
    return prior.leg_overhead_s + factor * stop.travel_s


def expected_service_s(stop: EtaStop, params: EtaParams) -> float:
    return params.prior.service_factor * stop.service_s


def _clamp(x: float, bounds: tuple[float, float]) -> float:
    return min(max(x, bounds[0]), bounds[1])


def learn(route: EtaRoute, progress: RouteProgress, params: EtaParams) -> Pace:
    """Geometric means of actual/planned ratios, weighted by planned duration, newer legs
    weighing more, shrunk towards 1.0 by a prior (robust: each ratio is clamped, and legs
    too short to measure are skipped)."""
    legs: list[tuple[float, float]] = []  # (log ratio, weight) per completed leg, oldest first
    services: list[float] = []
    departed = progress.started_at
    k_next = progress.next_stop
    for k, visit in enumerate(progress.visits):
        stop = route.stops[k]
        if visit.arrived_at is None:
            if visit.departed_at is None:
                break
            departed = None  # passed without an arrival: no evidence for the next leg
            continue
        expected_s = expected_travel_s(
            stop, params, departed.timestamp() if departed is not None else None
        )
        if departed is not None and expected_s >= params.min_leg_evidence_s:
            actual_s = (visit.arrived_at - departed).total_seconds()
            ratio = _clamp(actual_s / expected_s, params.leg_ratio_bounds)
            legs.append((math.log(ratio), expected_s))
        if visit.departed_at is not None and stop.service_s > 0:
            begin_s = service_start(
                visit.arrived_at.timestamp(), route.windows_s[k], wait=params.wait_for_window
            )
            actual_s = max(visit.departed_at.timestamp() - begin_s, 0.0)
            ratio = _clamp(actual_s / expected_service_s(stop, params), params.service_ratio_bounds)
            services.append(math.log(ratio))
        departed = visit.departed_at
    current = _current_leg(route, progress, departed, k_next, params)
    if current is not None:
        legs.append(current)
    log_sum, weight_sum = 0.0, params.prior_travel_weight_s
    evidence = 0.0
    for age, (log_ratio, weight) in enumerate(reversed(legs)):
        w = weight * params.leg_memory**age
        log_sum += w * log_ratio
        weight_sum += w
        evidence += w
    service_weight = params.prior_service_weight + len(services)
    return Pace(
        travel=math.exp(log_sum / weight_sum),
        service=math.exp(sum(services) / service_weight),
        travel_evidence_s=evidence,
        service_evidence=float(len(services)),
    )


def _current_leg(
    route: EtaRoute,
    progress: RouteProgress,
    departed: datetime | None,
    k: int,
    params: EtaParams,
) -> tuple[float, float] | None:
    """The leg under way: time spent so far against the planned time for the distance
    covered (only once enough of it is covered to mean something)."""
    if (
        departed is None
        or progress.fix_time is None
        or k >= len(route.stops)
        or progress.visits[k].arrived_at is not None
        or progress.off_route_travel_s is not None
    ):
        return None
    stop = route.stops[k]
    leg_m = stop.along_m - route.leg_start_m(k)
    if leg_m <= 0:
        return None
    covered = min(max(progress.along_m - route.leg_start_m(k), 0.0) / leg_m, 1.0)
    leg_s = expected_travel_s(stop, params, departed.timestamp())
    planned_s = leg_s * covered
    elapsed_s = (progress.fix_time - departed).total_seconds()
    # A vehicle standing still in a jam covers nothing: count the time it has spent beyond
    # the whole leg's plan as evidence too, so the pace reacts before the leg ends.
    if planned_s < params.min_leg_evidence_s and elapsed_s < leg_s:
        return None
    basis_s = max(planned_s, min(elapsed_s, leg_s), 1.0)
    ratio = _clamp(elapsed_s / basis_s, params.leg_ratio_bounds)
    return math.log(ratio), basis_s * params.current_leg_weight

"""Every remaining stop's arrival, with a P10-P90 window, from where the vehicle is now.

Pure and O(remaining stops): the rest of the leg under way (by the distance still to drive
along the planned road line), then each planned leg and service scaled by the vehicle's
learned pace, waits for windows and breaks. No graph search: when the vehicle is off its
route the caller passes the drive time back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from eta.calibration import calibrated_window_s
from eta.pace import Pace, expected_service_s, expected_travel_s, learn
from eta.params import EtaParams
from eta.progress import RouteProgress
from eta.route import EtaRoute, service_start


@dataclass(frozen=True, slots=True)
class StopEta:
    """One stop's forecast, in epoch seconds (the hot path's unit); the datetime properties
    are for the edges."""

    order_id: str
    #: Index of the stop in its route.
    index: int
    eta_s: float
    #: P10 and P90 of the arrival: about 80% of arrivals fall between them.
    earliest_s: float
    latest_s: float
    #: Expected departure (after any wait and the service).
    departure_s: float
    #: The vehicle is already at this stop (``eta`` is when it arrived).
    arrived: bool = False

    @property
    def eta(self) -> datetime:
        return datetime.fromtimestamp(self.eta_s, UTC)

    @property
    def earliest(self) -> datetime:
        return datetime.fromtimestamp(self.earliest_s, UTC)

    @property
    def latest(self) -> datetime:
        return datetime.fromtimestamp(self.latest_s, UTC)

    @property
    def departure(self) -> datetime:
        return datetime.fromtimestamp(self.departure_s, UTC)


def _after_breaks(route: EtaRoute, t0: float, arrival: float, taken: set[int]) -> float:
    """Push ``arrival`` back by each planned break that falls before it (once each); breaks
    whose planned end is before ``t0`` count as taken."""
    for i, (start, end) in enumerate(route.breaks_s):
        if i in taken:
            continue
        if end <= t0:
            taken.add(i)
        elif start <= arrival:
            arrival += end - max(start, t0)
            taken.add(i)
    return arrival


def predict(
    route: EtaRoute,
    progress: RouteProgress,
    now: datetime,
    params: EtaParams,
    pace: Pace | None = None,
) -> tuple[StopEta, ...]:
    """ETAs of the stops not yet left, in route order. Never before ``now``, never
    decreasing along the route."""
    pace = pace if pace is not None else learn(route, progress, params)
    k0 = progress.next_stop
    if k0 >= len(route.stops):
        return ()
    now_s = now.timestamp()
    # Times run from the last fix; what happened since is unknown, so arrivals are clamped
    # to now below (a stale fix shows as a later, not an earlier, ETA). The clamp alone
    # would hold an ETA still until now reaches it and then assume the whole leg driven;
    # a silent vehicle (no fix for long: a dead phone, a breakdown) is instead taken to
    # stand where it was last seen, so what is left of its route starts now.
    if progress.started_at is None or progress.fix_time is None:
        clock = max(now_s, route.start.timestamp())
    elif progress.silent:
        clock = max(progress.fix_time.timestamp(), now_s)
    else:
        clock = progress.fix_time.timestamp()
    t0 = clock
    taken: set[int] = set()
    travel_ahead_s = service_ahead_s = 0.0
    wait = params.wait_for_window
    out: list[StopEta] = []
    for k in range(k0, len(route.stops)):
        stop = route.stops[k]
        arrived_at = progress.visits[k].arrived_at
        if k == k0 and arrived_at is not None:
            arrived_s = arrived_at.timestamp()
            begin = service_start(arrived_s, route.windows_s[k], wait=wait)
            done_s = max(max(clock, begin) - begin, 0.0)
            expected_s = expected_service_s(stop, params) * pace.service
            left_s = max(expected_s - done_s, params.min_remaining_service_s)
            service_ahead_s += left_s
            clock = max(clock, begin) + left_s
            out.append(StopEta(stop.order_id, k, arrived_s, arrived_s, arrived_s, clock, True))
            continue
        if k == k0:
            drive_s = _remaining_leg_s(route, progress, k, params, clock) * pace.travel
        else:
            drive_s = expected_travel_s(stop, params, clock) * pace.travel
        travel_ahead_s += drive_s
        arrival = max(_after_breaks(route, t0, clock + drive_s, taken), now_s)
        # Calibrated where history covers this horizon (holding the ETA and not before now:
        # see calibrated_window_s), else the hand-set spread.
        window = (
            None
            if params.calibration is None
            else calibrated_window_s(params.calibration, arrival, now_s)
        )
        if window is None:
            early = (
                params.spread_base_s
                + params.spread_travel_early * travel_ahead_s
                + params.spread_service_early * service_ahead_s
            )
            late = (
                params.spread_base_s
                + params.spread_travel_late * travel_ahead_s
                + params.spread_service_late * service_ahead_s
            )
            window = (max(arrival - early, now_s), arrival + late)
        begin = service_start(arrival, route.windows_s[k], wait=wait)
        service_s = expected_service_s(stop, params) * pace.service
        service_ahead_s += service_s
        clock = begin + service_s
        out.append(StopEta(stop.order_id, k, arrival, window[0], window[1], clock))
    return tuple(out)


def _remaining_leg_s(
    route: EtaRoute, progress: RouteProgress, k: int, params: EtaParams, now_s: float
) -> float:
    """Expected drive time still ahead on leg ``k``, in proportion to the distance left."""
    stop = route.stops[k]
    if progress.off_route_travel_s is not None:
        return progress.off_route_travel_s
    leg_s = expected_travel_s(stop, params, now_s)
    if progress.started_at is None:
        return leg_s
    start_m = route.leg_start_m(k)
    leg_m = stop.along_m - start_m
    if leg_m <= 0:
        return 0.0
    left = min(max((stop.along_m - progress.along_m) / leg_m, 0.0), 1.0)
    return leg_s * left

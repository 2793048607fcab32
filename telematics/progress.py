"""Where a vehicle is along its planned route, and when it arrives at and leaves its stops.

Pure: :func:`apply_fix` takes the route (a :class:`domain.route_track.RouteTrack`), the
progress so far (:class:`domain.vehicle_progress.Progress`) and one screened fix, and returns
the new progress and the events it caused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import numpy as np

from domain.position import Position
from domain.route_track import XY, RouteTrack, nearest_on
from domain.vehicle_progress import Progress, StopStatus


@dataclass(frozen=True, slots=True)
class ProgressParams:
    #: Within this of the route line the vehicle is on it (GPS noise is about ±30 m).
    on_route_m: float = 50.0
    #: Farther than ``on_route_m`` for this long: off the route.
    off_route_after_s: float = 60.0
    #: Matching looks back this far and ahead this far plus what the elapsed time allows,
    #: so a route that passes a street twice is matched to the right pass.
    search_back_m: float = 100.0
    search_ahead_m: float = 1500.0
    max_speed_mps: float = 40.0
    #: Geofence of a stop, and how long the vehicle must stay inside to have arrived.
    arrive_radius_m: float = 50.0
    dwell_s: float = 30.0
    #: Leaving is only counted beyond this wider radius, so noise at the fence is no departure.
    depart_radius_m: float = 80.0
    #: Arrivals are also looked for at this many stops after the next one, so neighbours
    #: served in another order than planned are caught (the ones in between count as passed).
    lookahead_stops: int = 3
    #: A stop this far behind the vehicle along the route, with the vehicle this far from it,
    #: was passed without stopping.
    passed_after_m: float = 300.0
    #: Progress along the route by at least this counts as moving (below: GPS noise).
    moved_m: float = 25.0
    #: Speed assumed between two sparse fixes that straddle a stop: if the gap is longer than
    #: driving it at this speed plus ``dwell_s``, the vehicle must have stopped.
    assumed_speed_mps: float = 12.0


@dataclass(frozen=True, slots=True)
class Arrived:
    order_id: str
    at: datetime
    inferred: bool


@dataclass(frozen=True, slots=True)
class Departed:
    order_id: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Passed:
    """The vehicle moved on without stopping here (no arrival seen)."""

    order_id: str
    at: datetime


@dataclass(frozen=True, slots=True)
class LeftRoute:
    at: datetime
    distance_m: float


@dataclass(frozen=True, slots=True)
class RejoinedRoute:
    at: datetime


Event = Arrived | Departed | Passed | LeftRoute | RejoinedRoute


def start(track: RouteTrack) -> Progress:
    return Progress(track.vehicle_id, track.plan_id, tuple(StopStatus(o) for o in track.stop_ids))


def carry_over(track: RouteTrack, old: Progress) -> Progress:
    """Progress on a new plan's track for a vehicle already on the road (a re-plan, an
    inserted order): the stops it shares with the old plan keep their arrivals and
    departures, and the vehicle is placed at the last stop it reached, so the next fix is
    searched for from there, not from the depot. A track sharing no stop starts afresh."""
    before = {s.order_id: s for s in old.stops}
    if not before.keys() & set(track.stop_ids):
        return start(track)
    stops = tuple(
        replace(before[o], order_id=o) if o in before else StopStatus(o) for o in track.stop_ids
    )
    along_m = 0.0
    for status, at_m in zip(stops, track.stop_along_m, strict=True):
        if status.arrived_at is not None or status.departed_at is not None or status.passed:
            along_m = max(along_m, at_m)
    return Progress(
        track.vehicle_id,
        track.plan_id,
        stops,
        fix_time=old.fix_time,
        lat=old.lat,
        lon=old.lon,
        along_m=along_m,
        on_route=True,
        started_at=old.started_at,
        moved_at=old.moved_at,
        moved_along_m=along_m,
    )


def apply_fix(
    track: RouteTrack, progress: Progress, fix: Position, params: ProgressParams
) -> tuple[Progress, list[Event]]:
    """Move the vehicle to ``fix`` (already screened: newer than ``progress.fix_time``)."""
    events: list[Event] = []
    point = track.to_xy(fix.lat, fix.lon)
    elapsed = (fix.fix_time - progress.fix_time).total_seconds() if progress.fix_time else math.inf
    reach = params.search_ahead_m + params.max_speed_mps * min(elapsed, 3600.0)
    along, off = nearest_on(
        track.xy,
        track.cum_m,
        point,
        progress.along_m - params.search_back_m,
        progress.along_m + reach,
    )
    state = replace(progress, fix_time=fix.fix_time, lat=fix.lat, lon=fix.lon, off_route_m=off)
    if off <= params.on_route_m:
        if not progress.on_route:
            events.append(RejoinedRoute(fix.fix_time))
        # Progress never runs backwards on noise at a stop.
        state = replace(
            state, along_m=max(progress.along_m, along), on_route=True, off_route_since=None
        )
    else:
        since = progress.off_route_since or fix.fix_time
        state = replace(state, off_route_since=since)
        if progress.on_route and (fix.fix_time - since).total_seconds() >= params.off_route_after_s:
            state = replace(state, on_route=False)
            events.append(LeftRoute(fix.fix_time, off))
    if state.moved_at is None or state.along_m - state.moved_along_m >= params.moved_m:
        state = replace(state, moved_at=fix.fix_time, moved_along_m=state.along_m)
    if state.started_at is None and state.along_m > params.depart_radius_m:
        # It left between the last fix at the start and this one: back off by the distance
        # driven at a typical speed, so sparse fixes do not make it look late.
        left = fix.fix_time - timedelta(seconds=state.along_m / params.assumed_speed_mps)
        state = replace(state, started_at=max(left, progress.fix_time or left))
    state, stop_events = _stops(track, progress, state, point, fix, params)
    return state, events + stop_events


def _stops(
    track: RouteTrack,
    before: Progress,
    state: Progress,
    point: XY,
    fix: Position,
    params: ProgressParams,
) -> tuple[Progress, list[Event]]:
    events: list[Event] = []
    stops = list(state.stops)
    inside_since = state.inside_since
    k = state.next_stop
    while k < len(stops):
        stop = stops[k]
        distance = float(np.hypot(*(track.stop_xy[k] - point)))
        if stop.arrived_at is not None:
            if distance > params.depart_radius_m or _inside_next(track, k, point, params):
                stops[k] = replace(stop, departed_at=fix.fix_time)
                events.append(Departed(stop.order_id, fix.fix_time))
                inside_since = None
                k += 1
                continue
            break
        # The fence the vehicle is in: this stop's, or (drivers serve neighbours in the order
        # that suits the street) one of the next few.
        # A later stop counts only once the vehicle has reached its stretch of the route: a
        # road that passes near a later customer's door on the way here is not a visit.
        j = next(
            (
                j
                for j in range(k, min(k + 1 + params.lookahead_stops, len(stops)))
                if float(np.hypot(*(track.stop_xy[j] - point))) <= params.arrive_radius_m
                and (j == k or state.along_m >= track.stop_along_m[j] - params.depart_radius_m)
            ),
            None,
        )
        if j is not None:
            inside_since = inside_since or fix.fix_time
            if (fix.fix_time - inside_since).total_seconds() >= params.dwell_s:
                for m in range(k, j):
                    stops[m] = replace(stops[m], departed_at=inside_since, passed=True)
                    events.append(Passed(stops[m].order_id, inside_since))
                stops[j] = replace(stops[j], arrived_at=inside_since)
                events.append(Arrived(stops[j].order_id, inside_since, False))
            break
        inside_since = None
        passed = _passed_with_time_to_stop(track, before, state, k, fix, params)
        if passed is not None:
            arrived, departed = passed
            stops[k] = replace(stop, arrived_at=arrived, departed_at=departed, inferred=True)
            events += [Arrived(stop.order_id, arrived, True), Departed(stop.order_id, departed)]
            k += 1
            continue
        if (
            state.on_route
            and state.along_m > track.stop_along_m[k] + params.passed_after_m
            and distance > params.passed_after_m
        ):
            # Well beyond it along the route and far from it: the vehicle did not stop here
            # (no arrival), but the stops after it are what it is driving to now.
            stops[k] = replace(stop, departed_at=fix.fix_time, passed=True)
            events.append(Passed(stop.order_id, fix.fix_time))
            k += 1
            continue
        break
    return replace(state, stops=tuple(stops), inside_since=inside_since), events


def _inside_next(track: RouteTrack, k: int, point: XY, params: ProgressParams) -> bool:
    """Already inside the next stop's fence (stops next door): this one is left."""
    if k + 1 >= len(track.stop_ids):
        return False
    return (
        float(np.hypot(*(track.stop_xy[k + 1] - point))) <= params.arrive_radius_m
        and float(np.hypot(*(track.stop_xy[k + 1] - track.stop_xy[k]))) > params.arrive_radius_m
    )


def _passed_with_time_to_stop(
    track: RouteTrack,
    before: Progress,
    after: Progress,
    k: int,
    fix: Position,
    params: ProgressParams,
) -> tuple[datetime, datetime] | None:
    """If two fixes straddle stop ``k`` with time enough to have stopped there: when."""
    if before.fix_time is None or not after.on_route:
        return None
    at = track.stop_along_m[k]
    r = params.arrive_radius_m
    if not (before.along_m < at - r and after.along_m > at + r):
        return None
    gap_s = (fix.fix_time - before.fix_time).total_seconds()
    to_stop_s = (at - before.along_m) / params.assumed_speed_mps
    from_stop_s = (after.along_m - at) / params.assumed_speed_mps
    if gap_s - to_stop_s - from_stop_s < params.dwell_s:
        return None  # driving past: no time to stop
    return (
        before.fix_time + timedelta(seconds=to_stop_s),
        fix.fix_time - timedelta(seconds=from_stop_s),
    )

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
    """How fixes become progress, arrivals and departures.

    Arrival (see :func:`apply_fix`): the vehicle has arrived at a stop when it has stood still
    for ``dwell_s`` in the stop's fence, at the stop or beyond it along the route, or for
    ``dwell_short_s`` in the fence but short of the stop. Standing still, not being inside a
    circle: a van crawling past the door is not there. At the stop along the route, not just
    near it: a van waiting 40 s at a red light 40 m before the door is near the door but not
    yet at it; the route goes on from there to the stop, and the van with it. Beyond the stop
    is allowed (a van overshoots to the next free kerb); short of it only for longer than a
    traffic light holds a van. And the fence is drawn around where vans stand to serve the
    stop (the route's road point, or a stand learned from past deliveries), not only around
    the address point, which may be a house 70 m back from the road.
    """

    #: Within this of the route line the vehicle is on it (GPS noise is about ±30 m).
    on_route_m: float = 50.0
    #: Farther than ``on_route_m`` for this long: off the route.
    off_route_after_s: float = 60.0
    #: Matching looks back this far and ahead this far plus what the elapsed time allows,
    #: so a route that passes a street twice is matched to the right pass.
    search_back_m: float = 100.0
    search_ahead_m: float = 1500.0
    max_speed_mps: float = 40.0
    #: A stop's fence: within this of its stand (where vans are known to stop for it), its road
    #: point (the route line where it passes closest to the address) or its address point.
    arrive_radius_m: float = 50.0
    #: Standing still in the fence this long, at the stop or beyond it along the route: arrived
    #: (from when it began standing).
    dwell_s: float = 30.0
    #: "At the stop": standing within this of one of its fence's centres, or at most this far
    #: short of its place along the route (beyond it is fine). Where a van stands is the mean
    #: of its fixes, so this can be tighter than the GPS noise of one fix. (Both: along the
    #: line alone misjudges a stop at a hairpin bend, distance alone a red light at 40 m.)
    short_of_stop_m: float = 25.0
    #: Standing in the fence but farther short of the stop: arrived only after this long. A
    #: red light or a queue rarely holds a van two minutes; a delivery nearly always takes
    #: that (and a van that parked short of the door is still caught).
    dwell_short_s: float = 120.0
    #: Standing still: a reported speed at most this (walking pace and below) ...
    stopped_mps: float = 2.0
    #: ... and each fix within this of where the standstill's fixes average: farther than GPS
    #: noise takes a standing van's fix, so sparse fixes both at speed 0 far apart are two
    #: standstills.
    still_jump_m: float = 100.0
    #: ... and what its reported speeds add up to since it stopped at most this (a queue
    #: crawling at 1.5 m/s is not standing). A device reporting no speed stands while its fixes
    #: stay within this of where they average (GPS noise of a standing van): a vehicle moving
    #: at v leaves that in about 2 * still_m / v seconds, so it cannot stand a whole dwell
    #: moving faster than 2 * still_m / dwell_s (2 m/s).
    still_m: float = 30.0
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
    """Move the vehicle to ``fix`` (already screened: newer than ``progress.fix_time``).

    Arrivals (see :class:`ProgressParams`): the vehicle stands still (its reported speed, or
    its fixes staying put) and where it stands, the mean of its fixes since it stopped, is in
    a stop's fence and not more than ``short_of_stop_m`` short of the stop along the route:
    arrived after ``dwell_s``, at the time it began standing; farther short of the stop,
    after ``dwell_short_s``. Stops a driver has already closed (delivered, failed) are never
    arrived at or passed by the fixes: the driver's word stands, and progress goes on to the
    next open stop.
    """
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
    state = _standstill(track, progress, state, point, fix, params)
    state, stop_events = _stops(track, progress, state, point, fix, params)
    return state, events + stop_events


def _standstill(
    track: RouteTrack,
    before: Progress,
    state: Progress,
    point: XY,
    fix: Position,
    params: ProgressParams,
) -> Progress:
    """Whether the vehicle stands still, since when and where: the standstill goes on (its
    place the mean of its fixes), a new one begins at this fix, or (reported moving) none."""
    speed = fix.speed_mps
    if speed is not None and speed > params.stopped_mps:
        return replace(
            state,
            inside_since=None,
            still_lat=None,
            still_lon=None,
            still_fixes=0,
            still_moved_m=0.0,
        )
    if (
        before.inside_since is not None
        and before.fix_time is not None
        and before.still_fixes > 0
        and before.still_lat is not None
        and before.still_lon is not None
    ):
        place = track.to_xy(before.still_lat, before.still_lon)
        off = float(np.hypot(*(point - place)))
        if speed is None:
            moved, stands = before.still_moved_m, off <= params.still_m
        else:
            elapsed = (fix.fix_time - before.fix_time).total_seconds()
            moved = before.still_moved_m + speed * elapsed
            stands = off <= params.still_jump_m and moved <= params.still_m
        if stands:
            n = before.still_fixes + 1
            lat, lon = track.to_latlon(place + (point - place) / n)
            return replace(state, still_lat=lat, still_lon=lon, still_fixes=n, still_moved_m=moved)
    # Without a speed every fix may be where the vehicle stopped: the next ones will tell.
    return _stand_here(state, fix)


def _stand_here(state: Progress, fix: Position) -> Progress:
    """A standstill beginning at this fix."""
    return replace(
        state,
        inside_since=fix.fix_time,
        still_lat=fix.lat,
        still_lon=fix.lon,
        still_fixes=1,
        still_moved_m=0.0,
    )


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
    k = state.next_stop
    while k < len(stops):
        stop = stops[k]
        if stop.departed_at is not None:
            # Closed by its driver before the stops planned ahead of it: not arrived at or
            # passed by the fixes (an arrival would contradict a delivery already told).
            k += 1
            continue
        if stop.arrived_at is not None:
            if _distance(track, k, point) > params.depart_radius_m or _inside_next(
                track, k, point, params
            ):
                stops[k] = replace(stop, departed_at=fix.fix_time)
                events.append(Departed(stop.order_id, fix.fix_time))
                if state.inside_since is not None:
                    # Standing at the next door: its dwell starts now, not at this one's.
                    state = _stand_here(state, fix)
                k += 1
                continue
            moved_on = _moved_to_next(track, k, stop, state, fix, params)
            if moved_on is not None:
                # It drove on and stands at the next door, still near this one: it left here
                # when it began standing there (that stop's dwell counts from then too).
                stops[k] = replace(stop, departed_at=moved_on)
                events.append(Departed(stop.order_id, moved_on))
                k += 1
                continue
            break
        # The fence the vehicle is in: this stop's, or (drivers serve neighbours in the order
        # that suits the street) one of the next few open ones.
        # A later stop counts only once the vehicle has reached its stretch of the route: a
        # road that passes near a later customer's door on the way here is not a visit.
        candidates = [
            j
            for j in range(k, min(k + 1 + params.lookahead_stops, len(stops)))
            if stops[j].departed_at is None
            and (
                j == k
                or state.along_m
                >= min(track.stop_along_m[j], track.stand_along_m[j]) - params.depart_radius_m
            )
        ]
        j, in_fence = _arrival(track, state, point, candidates, fix, params)
        if j is not None and state.inside_since is not None:
            since = state.inside_since
            for m in range(k, j):
                if stops[m].departed_at is None:
                    stops[m] = replace(stops[m], departed_at=since, passed=True)
                    events.append(Passed(stops[m].order_id, since))
            stops[j] = replace(stops[j], arrived_at=since)
            events.append(Arrived(stops[j].order_id, since, False))
            break
        if in_fence:
            break  # not (yet) arrived: waiting for the dwell, or for the van to reach the door
        passed = _passed_with_time_to_stop(track, before, state, k, fix, params)
        if passed is not None:
            arrived, departed = passed
            stops[k] = replace(stop, arrived_at=arrived, departed_at=departed, inferred=True)
            events += [Arrived(stop.order_id, arrived, True), Departed(stop.order_id, departed)]
            k += 1
            continue
        if (
            state.on_route
            and state.along_m
            > max(track.stop_along_m[k], track.stand_along_m[k]) + params.passed_after_m
            and _distance(track, k, point) > params.passed_after_m
        ):
            # Well beyond it along the route and far from it: the vehicle did not stop here
            # (no arrival), but the stops after it are what it is driving to now.
            stops[k] = replace(stop, departed_at=fix.fix_time, passed=True)
            events.append(Passed(stop.order_id, fix.fix_time))
            k += 1
            continue
        break
    return replace(state, stops=tuple(stops)), events


def _arrival(
    track: RouteTrack,
    state: Progress,
    point: XY,
    candidates: list[int],
    fix: Position,
    params: ProgressParams,
) -> tuple[int | None, bool]:
    """The stop among ``candidates`` the vehicle has arrived at (None: none yet), and whether
    it is inside one of their fences (then it is not driving past them)."""
    r = params.arrive_radius_m
    in_fence = any(_distance(track, j, point) <= r for j in candidates)
    since, lat, lon = state.inside_since, state.still_lat, state.still_lon
    if since is None or lat is None or lon is None:
        return None, in_fence
    dwell = (fix.fix_time - since).total_seconds()
    if dwell < params.dwell_s:
        return None, in_fence
    place = track.to_xy(lat, lon)
    for j in candidates:
        centres = [(float(np.hypot(*(xy - place))), at) for xy, at in _centres(track, j)]
        near = [at for d, at in centres if d <= r]
        if not near:
            continue
        in_fence = True
        if dwell >= params.dwell_short_s or min(centres)[0] <= params.short_of_stop_m:
            return j, True
        # Where it stands along the route, looked for on the stretch by the stop (the vehicle
        # may be off its planned line: its own place along then lags behind).
        stop_at = max(near)
        place_along, _ = nearest_on(track.xy, track.cum_m, place, stop_at - 2 * r, stop_at + 2 * r)
        if stop_at - place_along <= params.short_of_stop_m:
            return j, True
    return None, in_fence


def _centres(track: RouteTrack, k: int) -> list[tuple[XY, float]]:
    """The points stop ``k``'s fence is drawn around, each with its place along the route:
    its stand, its road point and its address point."""
    return [
        (track.stand_xy[k], track.stand_along_m[k]),
        (track.road_xy[k], track.stop_along_m[k]),
        (track.stop_xy[k], track.stop_along_m[k]),
    ]


def _distance(track: RouteTrack, k: int, point: XY) -> float:
    """From ``point`` to stop ``k``'s fence centres (the nearest of them)."""
    x, y = float(point[0]), float(point[1])
    # Plain floats: called for every candidate stop on every fix.
    return min(
        math.hypot(float(c[0]) - x, float(c[1]) - y)
        for c in (track.stand_xy[k], track.road_xy[k], track.stop_xy[k])
    )


def _moved_to_next(
    track: RouteTrack,
    k: int,
    stop: StopStatus,
    state: Progress,
    fix: Position,
    params: ProgressParams,
) -> datetime | None:
    """When the vehicle, arrived at stop ``k``, moved on and has stood ``dwell_s`` since then
    nearer the next stop than this one, within the next one's fence (neighbours closer
    than the departure radius): the time it began standing there. None otherwise."""
    since, lat, lon = state.inside_since, state.still_lat, state.still_lon
    if k + 1 >= len(track.stop_ids) or since is None or lat is None or lon is None:
        return None
    if stop.arrived_at is None or since <= stop.arrived_at:
        return None  # the standstill it arrived with: it has not moved
    if (fix.fix_time - since).total_seconds() < params.dwell_s:
        return None
    place = track.to_xy(lat, lon)
    to_next = _distance(track, k + 1, place)
    if to_next <= params.arrive_radius_m and to_next < _distance(track, k, place):
        return since
    return None


def _inside_next(track: RouteTrack, k: int, point: XY, params: ProgressParams) -> bool:
    """Already inside the next stop's fence (stops next door): this one is left."""
    if k + 1 >= len(track.stop_ids):
        return False
    apart = min(
        float(np.hypot(*(a - b))) for a, _ in _centres(track, k) for b, _ in _centres(track, k + 1)
    )
    return _distance(track, k + 1, point) <= params.arrive_radius_m and apart > (
        params.arrive_radius_m
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
    at = track.stand_along_m[k]
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

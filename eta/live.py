"""The ETA core on a live vehicle: its progress in, ETAs and delay events out.

The one place where the ETA core meets a vehicle's progress (:mod:`domain.vehicle_progress`,
kept by the telematics side); used alike by the ingester
(each accepted fix) and by the accuracy replay (``lastmile eval-eta``), so what is measured is
what runs.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from domain.route_track import RouteTrack
from domain.vehicle_progress import Progress
from eta.calibration import first_window
from eta.delay import DelayEvent, DelayParams, Told, detect
from eta.pace import Pace, learn
from eta.params import EtaParams
from eta.predict import StopEta, predict
from eta.progress import RouteProgress, StopVisit, not_started
from eta.route import EtaBreak, EtaRoute, EtaStop, eta_route


@dataclass(frozen=True, slots=True)
class LiveEtas:
    etas: tuple[StopEta, ...]
    pace: Pace
    #: The told state of every stop, updated.
    told: dict[str, Told]
    events: tuple[DelayEvent, ...]


def route_progress(
    progress: Progress, off_route_travel_s: float | None = None, *, silent: bool = False
) -> RouteProgress:
    """``silent``: the vehicle has sent nothing for longer than the caller's threshold (see
    :attr:`RouteProgress.silent`)."""
    return RouteProgress(
        fix_time=progress.fix_time,
        along_m=progress.along_m,
        started_at=progress.started_at,
        visits=tuple(StopVisit(s.arrived_at, s.departed_at) for s in progress.stops),
        off_route_travel_s=off_route_travel_s if not progress.on_route else None,
        silent=silent,
    )


def recompute(
    route: EtaRoute,
    progress: RouteProgress,
    told: Mapping[str, Told],
    now: datetime,
    params: EtaParams,
    delay: DelayParams,
) -> LiveEtas:
    """ETAs of every remaining stop, and the delay events they cause against what was told.
    A stop told nothing yet is told its first window, capped at ``params.first_window_cap_s``
    (the ETAs returned keep the forecast's own windows)."""
    pace = learn(route, progress, params)
    etas = predict(route, progress, now, params, pace)
    now_s, cap_s = now.timestamp(), params.first_window_cap_s
    updated = dict(told)
    events: list[DelayEvent] = []
    for eta in etas:
        before = told.get(eta.order_id)
        shown = eta if before is not None else first_window(eta, now_s, params, cap_s)
        new_told, event = detect(before, shown, now, delay)
        if new_told is not None:
            updated[eta.order_id] = new_told
        if event is not None:
            events.append(event)
    return LiveEtas(etas, pace, updated, tuple(events))


def route_from_track(
    track: RouteTrack,
    start: datetime,
    leg_travel_s: Sequence[float],
    service_s: Sequence[float],
    windows: Sequence[Sequence[tuple[datetime, datetime]]],
    breaks: Sequence[EtaBreak] = (),
) -> EtaRoute:
    """An ETA route on a route track: the stops at the track's places along the line,
    with the plan's leg drive times (one per stop: the drive to it), service and windows."""
    stops = [
        EtaStop(order_id, along_m, float(leg_travel_s[k]), float(service_s[k]), tuple(windows[k]))
        for k, (order_id, along_m) in enumerate(
            zip(track.stop_ids, track.stop_along_m, strict=True)
        )
    ]
    return eta_route(track.vehicle_id, track.plan_id, start, stops, breaks)


def route_from_plan(
    vehicle_id: str,
    plan_id: str,
    planned: Mapping[str, Any],
    windows: Mapping[str, Sequence[tuple[datetime, datetime]]],
    along_m: Sequence[float] | None = None,
) -> EtaRoute:
    """An ETA route from a route of the stored plan (``start``, ``breaks`` and ``stops`` with
    ``order_id``, ``duration_from_previous_s``, ``distance_from_previous_m``,
    ``service_start``, ``departure``) and the orders' time windows. Each stop sits at
    ``along_m`` (a track's places) or, without a track, at the planned distance so far."""
    if along_m is None:
        along_m = list(
            itertools.accumulate(
                float(s.get("distance_from_previous_m", 0)) for s in planned["stops"]
            )
        )
    stops = []
    for stop, at_m in zip(planned["stops"], along_m, strict=True):
        begin = datetime.fromisoformat(stop["service_start"])
        stops.append(
            EtaStop(
                stop["order_id"],
                float(at_m),
                float(stop["duration_from_previous_s"]),
                (datetime.fromisoformat(stop["departure"]) - begin).total_seconds(),
                tuple(windows.get(stop["order_id"], ())),
            )
        )
    breaks = []
    for b in planned.get("breaks", []):
        start = datetime.fromisoformat(b["start"])
        breaks.append(EtaBreak(start, (datetime.fromisoformat(b["end"]) - start).total_seconds()))
    return eta_route(vehicle_id, plan_id, datetime.fromisoformat(planned["start"]), stops, breaks)


def plan_windows(
    vehicle_id: str,
    plan_id: str,
    planned: Mapping[str, Any],
    windows: Mapping[str, Sequence[tuple[datetime, datetime]]],
    now: datetime,
    params: EtaParams,
) -> tuple[StopEta, ...]:
    """The first windows of a planned route, before the vehicle moves (what a customer is
    told when the plan is confirmed), capped at ``params.first_window_cap_s`` like the first
    window of a live route (an organisation's own cap: ``replace(params,
    first_window_cap_s=...)``)."""
    route = route_from_plan(vehicle_id, plan_id, planned, windows)
    etas = predict(route, not_started(len(route.stops)), now, params, Pace())
    now_s = now.timestamp()
    return tuple(first_window(eta, now_s, params, params.first_window_cap_s) for eta in etas)


def told_to_list(told: Told) -> list[float | None]:
    """Compact, for the progress state written on every batch."""
    return [
        told.version,
        told.eta_s,
        told.earliest_s,
        told.latest_s,
        told.at_s,
        told.changes,
        told.breaking_since_s,
    ]


def told_from_list(data: list[Any]) -> Told:
    version, eta_s, earliest_s, latest_s, at_s, changes, breaking = data
    return Told(
        int(version),
        float(eta_s),
        float(earliest_s),
        float(latest_s),
        float(at_s),
        int(changes),
        None if breaking is None else float(breaking),
    )


def eta_to_list(eta: StopEta) -> list[object]:
    """[order id, eta, earliest, latest, departure (epoch s), arrived]."""
    return [
        eta.order_id,
        round(eta.eta_s, 1),
        round(eta.earliest_s, 1),
        round(eta.latest_s, 1),
        round(eta.departure_s, 1),
        eta.arrived,
    ]

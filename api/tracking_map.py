"""What the tracking page's map shows: the customer's stop on our own roads, and, only while
their stop is the vehicle's next, the vehicle and the road it still has to drive.

Privacy decides the shape (ADR 0013): before the stop is next, the leg to it starts at another
customer's door, so neither that leg nor the vehicle is shown; the customer sees their own
place on the surrounding streets. Once it is next, the line runs from where the vehicle is
to the stop, never further back.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from domain.geo import LatLon
from domain.route_track import RouteTrack, route_track
from routing.snapping import Snapper
from store.schema import OrderRow, PlanRow, ProgressRow

#: Roads drawn around the stop (the base map, sent once with the page).
ROADS_RADIUS_M = 500.0
MAX_ROADS = 400
#: Coordinates sent to the browser are rounded to this many decimals (about a metre).
DECIMALS = 5


def _point(lat: float, lon: float) -> tuple[float, float]:
    return (round(lat, DECIMALS), round(lon, DECIMALS))


@dataclass(frozen=True, slots=True)
class MapView:
    """The map's live part: the stop, and the vehicle with its remaining road when next."""

    stop: tuple[float, float]
    vehicle: tuple[float, float] | None = None
    leg: tuple[tuple[float, float], ...] = ()

    def live(self) -> dict[str, Any]:
        return {
            "stop": list(self.stop),
            "vehicle": list(self.vehicle) if self.vehicle is not None else None,
            "leg": [list(p) for p in self.leg],
        }


class Tracks:
    """Route tracks rebuilt from stored plans, kept for the most recent routes (a page polls
    every few seconds; the plan's line does not change)."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._tracks: OrderedDict[tuple[str, str], RouteTrack | None] = OrderedDict()
        self._lock = threading.Lock()

    def track(self, session: Session, plan_id: str, vehicle: str) -> RouteTrack | None:
        key = (plan_id, vehicle)
        with self._lock:
            if key in self._tracks:
                self._tracks.move_to_end(key)
                return self._tracks[key]
        found = _build_track(session, plan_id, vehicle)
        with self._lock:
            self._tracks[key] = found
            while len(self._tracks) > self.size:
                self._tracks.popitem(last=False)
        return found


def _build_track(session: Session, plan_id: str, vehicle: str) -> RouteTrack | None:
    plan = session.get(PlanRow, plan_id)
    if plan is None or plan.geojson is None:
        return None
    feature = next(
        (f for f in plan.geojson["features"] if f["properties"].get("vehicle_id") == vehicle),
        None,
    )
    if feature is None:
        return None
    order_ids = list(feature["properties"]["order_ids"])
    places = {
        external_id: (lat, lon)
        for external_id, lat, lon in session.execute(
            select(OrderRow.external_id, OrderRow.lat, OrderRow.lon).where(
                OrderRow.organisation_id == plan.organisation_id,
                OrderRow.external_id.in_(order_ids),
            )
        )
    }
    stops = [(oid, *places[oid]) for oid in order_ids if oid in places]
    return route_track(vehicle, plan_id, feature["geometry"]["coordinates"], stops)


def map_view(
    session: Session,
    order: OrderRow,
    plan_id: str | None,
    vehicle: str | None,
    progress: ProgressRow | None,
    stop_is_next: bool,
    tracks: Tracks,
) -> MapView:
    """The map for ``order``: the vehicle and its remaining road only when ``stop_is_next``
    (the caller decides that from the live ETAs) and the vehicle has a recent position."""
    stop = _point(order.lat, order.lon)
    if not stop_is_next or progress is None or progress.last_lat is None:
        return MapView(stop)
    assert progress.last_lon is not None
    here = _point(progress.last_lat, progress.last_lon)
    state = progress.state or {}
    if plan_id is None or vehicle is None or not state.get("on_route", False):
        # Off its route, the planned line would mislead: the vehicle and the stop only.
        return MapView(stop, here)
    track = tracks.track(session, plan_id, vehicle)
    if track is None or order.external_id not in track.stop_ids:
        return MapView(stop, here)
    to_m = track.stop_along_m[track.stop_ids.index(order.external_id)]
    from_m = float(state.get("along_m", 0.0))
    leg = tuple(_point(lat, lon) for lat, lon in track.latlon_between(from_m, to_m))
    return MapView(stop, here, leg)


def roads_around(snapper: Snapper | None, order: OrderRow) -> list[list[list[float]]]:
    """The streets around the stop, for the map's background (empty without a road graph)."""
    if snapper is None:
        return []
    roads = snapper.roads_near(LatLon(order.lat, order.lon), ROADS_RADIUS_M, MAX_ROADS)
    return [[list(_point(lat, lon)) for lat, lon in road] for road in roads]

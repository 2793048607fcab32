"""A planned route as a line in local metres, with each stop's place along it: what the
telematics progress places fixes on and the ETA core measures distances along.

The line is kept in an equirectangular projection around its first point (centimetre-exact
over a city).

Each stop has three places: its address point (``stop_xy``, where the customer is), its road
point (``road_xy``, the route line at ``stop_along_m``, where a van on the planned line comes
closest) and its stand (``stand_xy``, where vans really stop to serve it: learned from past
deliveries when known, else the road point). Arrival fences are drawn around these.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from domain.geo import EARTH_RADIUS_M

XY = npt.NDArray[np.float64]
#: Two matches whose distances from the fix differ by less than this are equally good.
TIE_M = 20.0
#: A learned stand is placed along the route within this of its address's place (the street
#: the van serves it from), and one farther than this from the address point is ignored.
STAND_MAX_M = 300.0


@dataclass(frozen=True, slots=True)
class RouteTrack:
    """A planned route as a line in local metres, with each stop's place along it."""

    vehicle_id: str
    plan_id: str
    origin_lat: float
    origin_lon: float
    xy: XY
    cum_m: XY
    stop_ids: tuple[str, ...]
    #: Each stop's address point.
    stop_xy: XY
    #: Each stop's place along the line (of its address point; what ETAs measure to).
    stop_along_m: tuple[float, ...]
    #: Each stop's road point: the line at ``stop_along_m``.
    road_xy: XY
    #: Where vans stand to serve each stop (learned, else the road point), and its place
    #: along the line.
    stand_xy: XY
    stand_along_m: tuple[float, ...]

    @property
    def length_m(self) -> float:
        return float(self.cum_m[-1])

    def to_xy(self, lat: float, lon: float) -> XY:
        # One point, every fix: plain floats (as :func:`project` computes), not array ops.
        k = math.pi / 180 * EARTH_RADIUS_M
        dlon = (lon - self.origin_lon + 180.0) % 360.0 - 180.0
        x = dlon * k * math.cos(math.radians(self.origin_lat))
        return np.array((x, (lat - self.origin_lat) * k))

    def to_latlon(self, point: XY) -> tuple[float, float]:
        """(lat, lon) of a point in the track's metres (the inverse of :meth:`to_xy`)."""
        k = math.pi / 180 * EARTH_RADIUS_M
        lat = self.origin_lat + float(point[1]) / k
        lon = self.origin_lon + float(point[0]) / (k * math.cos(math.radians(self.origin_lat)))
        if not -180.0 <= lon <= 180.0:
            lon = (lon + 180.0) % 360.0 - 180.0
        return lat, lon

    def latlon_at(self, along_m: float) -> tuple[float, float]:
        """(lat, lon) of the place ``along_m`` along the route (clamped to it)."""
        return self.latlon_between(along_m, along_m)[0]

    def latlon_between(self, from_m: float, to_m: float) -> list[tuple[float, float]]:
        """The route's line from ``from_m`` to ``to_m`` along it (clamped to the route), as
        (lat, lon) points: both ends cut where they fall, the vertices between kept."""
        lo = min(max(from_m, 0.0), self.length_m)
        hi = min(max(to_m, lo), self.length_m)
        inner = np.flatnonzero((self.cum_m > lo) & (self.cum_m < hi))
        at = np.concatenate(([lo], self.cum_m[inner], [hi]))
        x = np.interp(at, self.cum_m, self.xy[:, 0])
        y = np.interp(at, self.cum_m, self.xy[:, 1])
        k = math.pi / 180 * EARTH_RADIUS_M
        lat = self.origin_lat + y / k
        lon = self.origin_lon + x / (k * math.cos(math.radians(self.origin_lat)))
        lon = np.where(lon > 180, lon - 360, np.where(lon < -180, lon + 360, lon))
        return [(float(a), float(b)) for a, b in zip(lat, lon, strict=True)]


def project(lonlat: XY, lat0: float, lon0: float) -> XY:
    k = math.pi / 180 * EARTH_RADIUS_M
    # East of the origin the short way round: a route across the antimeridian stays whole.
    dlon = (lonlat[:, 0] - lon0 + 180.0) % 360.0 - 180.0
    x = dlon * k * math.cos(math.radians(lat0))
    y = (lonlat[:, 1] - lat0) * k
    return np.column_stack((x, y))


def nearest_on(
    xy: XY, cum: XY, point: XY, lo_m: float = -math.inf, hi_m: float = math.inf
) -> tuple[float, float]:
    """(distance along the line, distance from it) of the nearest point, among segments that
    overlap [lo_m, hi_m] of the line."""
    # The segments overlapping the window are contiguous (``cum`` never decreases): only
    # they are measured, so a fix costs the few hundred metres searched, not the whole route.
    first_seg = int(np.searchsorted(cum[1:], lo_m, side="left"))
    end_seg = int(np.searchsorted(cum[:-1], hi_m, side="right"))
    if first_seg >= end_seg:
        first_seg, end_seg = 0, len(xy) - 1
    a, b = xy[first_seg:end_seg], xy[first_seg + 1 : end_seg + 1]
    seg = b - a
    length2 = (seg**2).sum(axis=1)
    t = np.clip(((point - a) * seg).sum(axis=1) / np.where(length2 > 0, length2, 1), 0, 1)
    nearest = a + seg * t[:, None]
    dist = np.hypot(*(nearest - point).T)
    along = cum[first_seg:end_seg] + t * np.sqrt(length2)
    best = int(np.argmin(dist))
    # Where the line passes the same place twice (a route back to its depot, a street driven
    # both ways), the earliest pass within GPS noise of the best match is the one the vehicle
    # is on: progress is monotone, so a later pass will still be found when it gets there.
    close = np.flatnonzero(dist <= dist[best] + TIE_M)
    first = int(close[np.argmin(along[close])])
    return float(along[first]), float(dist[first])


def route_track(
    vehicle_id: str,
    plan_id: str,
    line_lonlat: Sequence[Sequence[float]],
    stops: Sequence[tuple[str, float, float]],
    *,
    stands: Mapping[str, tuple[float, float]] | None = None,
) -> RouteTrack:
    """Build a track from the route's road line ([lon, lat] points, depot to depot) and its
    stops (order id, lat, lon) in visiting order.

    ``stands``: order id -> (lat, lon) where vans have been seen to stop for that stop (see
    ``telematics/stopping_points.py``); the stop's fence is also drawn around it. A stand
    farther than ``STAND_MAX_M`` from the address point is ignored."""
    lonlat = np.asarray(line_lonlat, dtype=np.float64)
    if len(lonlat) < 2:
        lonlat = np.vstack((lonlat, lonlat))
    lat0, lon0 = float(lonlat[0, 1]), float(lonlat[0, 0])
    xy = project(lonlat, lat0, lon0)
    cum = np.concatenate(([0.0], np.cumsum(np.hypot(*np.diff(xy, axis=0).T))))
    stop_xy = (
        project(np.array([[lon, lat] for _, lat, lon in stops]), lat0, lon0)
        if stops
        else np.zeros((0, 2))
    )
    along: list[float] = []
    floor = 0.0
    for point in stop_xy:
        # Stops come in order: each is placed at or after the previous one.
        at, _ = nearest_on(xy, cum, point, floor, math.inf)
        at = max(at, floor)  # the segment found may begin before the previous stop
        along.append(at)
        floor = at
    road_xy = _points_at(xy, cum, along)
    stand_xy = road_xy.copy()
    stand_along = list(along)
    for k, (order_id, _, _) in enumerate(stops):
        stand = (stands or {}).get(order_id)
        if stand is None:
            continue
        point = project(np.array([[stand[1], stand[0]]]), lat0, lon0)[0]
        if float(np.hypot(*(point - stop_xy[k]))) > STAND_MAX_M:
            continue
        at, _ = nearest_on(xy, cum, point, along[k] - STAND_MAX_M, along[k] + STAND_MAX_M)
        stand_xy[k] = point
        stand_along[k] = min(max(at, along[k] - STAND_MAX_M), along[k] + STAND_MAX_M)
    return RouteTrack(
        vehicle_id,
        plan_id,
        lat0,
        lon0,
        xy,
        cum,
        tuple(s[0] for s in stops),
        stop_xy,
        tuple(along),
        road_xy,
        stand_xy,
        tuple(stand_along),
    )


def _points_at(xy: XY, cum: XY, along: Sequence[float]) -> XY:
    """The line's points at these distances along it."""
    if not along:
        return np.zeros((0, 2))
    at = np.asarray(along, dtype=np.float64)
    return np.column_stack((np.interp(at, cum, xy[:, 0]), np.interp(at, cum, xy[:, 1])))

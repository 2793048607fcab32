"""Where vans really stand to serve an address, learned from past deliveries.

An address point is where the customer is (a geocoded building, often set back from the road,
or at the back of a block); a van stops where it can: at the kerb, in a lay-by, round the
corner. When a driver confirms a delivery while the van stands still, where it stood is
kept with the event (:func:`stood_at`); the stands seen at an address, once at least two
agree, give its learned stand (:func:`learned_stands`), which the arrival fence of the next
route to that address is also drawn around (``domain.route_track.route_track(stands=...)``).

Pure: no store access here (``telematics/ingest/place.py`` reads the observations).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeGuard

from domain.geo import EARTH_RADIUS_M

#: (address key, lat, lon): a van stood there when a delivery to that address was confirmed.
Observation = tuple[str, float, float]
#: Keys of a delivered event's ``data`` holding where the van stood.
STOOD_LAT, STOOD_LON = "stood_lat", "stood_lon"


@dataclass(frozen=True, slots=True)
class StandParams:
    #: A stand is learned once this many past stands agree ...
    min_agree: int = 2
    #: ... i.e. lie within this of their median (GPS noise of a standing van, plus the length
    #: of a parking bay or two) ...
    agree_m: float = 40.0
    #: ... and make at least half of the ones seen (an address served from two sides has no
    #: single stand: it keeps the fence around its road point).
    min_share: float = 0.5
    #: Only the newest this many stands of an address count (a new lay-by, a road rebuilt).
    newest: int = 20
    #: A stand farther than this from its address point is not where it was served from (a
    #: driver confirming late, at the next stop): ignored.
    max_from_address_m: float = 300.0
    #: A driver's confirmation records the stand only if the van's last fix is this recent.
    max_fix_age_s: float = 600.0


def address_key(lat: float, lon: float, address: str | None = None) -> str:
    """What identifies an address across orders: its normalised text when the order has one,
    else its point rounded to 1e-4 degrees (about 11 m: one building, geocoded the same way)."""
    text = " ".join(address.casefold().split()) if address else ""
    if text:
        return f"addr:{text}"
    # + 0.0: -0.0 and 0.0 are one key.
    return f"ll:{round(lat, 4) + 0.0:.4f},{round(lon, 4) + 0.0:.4f}"


def stood_at(
    kind: str, at: datetime, state: Mapping[str, Any] | None, params: StandParams | None = None
) -> dict[str, float]:
    """Where the van stood when its driver reported ``kind`` at ``at``, for the event's data:
    the place of its current standstill (the mean of its fixes since it stopped, from the
    progress ``state``) when it is a delivery, the van is standing (two fixes or more) and its
    last fix is recent. Empty otherwise (the van moving: the driver confirmed later, on the
    way; no fix lately)."""
    params = params or StandParams()
    if kind != "delivered" or not state:
        return {}
    lat, lon = state.get("still_lat"), state.get("still_lon")
    fixes, fix_time = state.get("still_fixes"), state.get("fix_time")
    if state.get("inside_since") is None or not isinstance(fix_time, str):
        return {}
    if not (_finite(lat) and _finite(lon)):
        return {}
    if not (isinstance(fixes, int) and fixes >= 2):
        return {}
    try:
        age = abs((at - datetime.fromisoformat(fix_time)).total_seconds())
    except (TypeError, ValueError):
        return {}
    if age > params.max_fix_age_s:
        return {}
    return {STOOD_LAT: round(float(lat), 6), STOOD_LON: round(float(lon), 6)}


def stood_point(data: Mapping[str, Any] | None) -> tuple[float, float] | None:
    """Where the van stood, from an event's ``data`` (None: not recorded)."""
    lat, lon = (data or {}).get(STOOD_LAT), (data or {}).get(STOOD_LON)
    if _finite(lat) and _finite(lon):
        return float(lat), float(lon)
    return None


def learned_stands(
    observations: Iterable[Observation],
    addresses: Mapping[str, tuple[float, float]] | None = None,
    params: StandParams | None = None,
) -> dict[str, tuple[float, float]]:
    """Address key -> (lat, lon) of its learned stand: the median of the past stands that
    agree (see :class:`StandParams`). ``observations`` newest first; ``addresses`` (key ->
    address point), when given, drops stands implausibly far from their address."""
    params = params or StandParams()
    by_key: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for key, lat, lon in observations:
        if not (_finite(lat) and _finite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180):
            continue
        if len(by_key[key]) >= params.newest:
            continue
        home = (addresses or {}).get(key)
        if home is not None and _distance_m(home, (lat, lon)) > params.max_from_address_m:
            continue
        by_key[key].append((lat, lon))
    learned: dict[str, tuple[float, float]] = {}
    for key, points in by_key.items():
        if len(points) < params.min_agree:
            continue
        centre = _median(points)
        agree = [p for p in points if _distance_m(centre, p) <= params.agree_m]
        if len(agree) >= params.min_agree and len(agree) >= params.min_share * len(points):
            learned[key] = _median(agree)
    return learned


def _finite(value: object) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _median(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Per-coordinate median; longitudes unwrapped around the first point (the antimeridian)."""
    lon0 = points[0][1]
    lats = sorted(p[0] for p in points)
    lons = sorted(lon0 + (p[1] - lon0 + 180.0) % 360.0 - 180.0 for p in points)
    n = len(points)
    lat = (lats[(n - 1) // 2] + lats[n // 2]) / 2
    lon = (lons[(n - 1) // 2] + lons[n // 2]) / 2
    if not -180.0 <= lon <= 180.0:
        lon = (lon + 180.0) % 360.0 - 180.0
    return lat, lon


def _distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Equirectangular distance (exact enough over a few hundred metres)."""
    k = math.pi / 180 * EARTH_RADIUS_M
    dlon = (b[1] - a[1] + 180.0) % 360.0 - 180.0
    return math.hypot(dlon * k * math.cos(math.radians((a[0] + b[0]) / 2)), (b[0] - a[0]) * k)

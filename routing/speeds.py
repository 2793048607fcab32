"""Free-flow speeds per road and delays at intersections.

Speeds come from the OSM ``maxspeed`` tag where it parses, else from the default for the
road's ``highway`` class below. Free-flow times are optimistic in cities: a van slows for
junctions, signals and turns. We add a delay at the end of every edge that enters a real
intersection (see :class:`DelayParams`); the defaults were chosen so that planned times on the
Columbus extract run about 1.1x the plain ``length / maxspeed`` time, matching the median ratio
measured between Valhalla (which models turns and intersections) and osmnx free flow there.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

MPH_TO_KPH = 1.609344
KNOTS_TO_KPH = 1.852

#: Default free-flow speed (km/h) per OSM ``highway`` class when ``maxspeed`` is absent or
#: unreadable. Urban values: the extracts we serve are cities, where legal limits of rural
#: roads of the same class do not apply.
DEFAULT_SPEED_KPH: dict[str, float] = {
    "motorway": 100.0,
    "motorway_link": 60.0,
    "trunk": 80.0,
    "trunk_link": 50.0,
    "primary": 50.0,
    "primary_link": 40.0,
    "secondary": 50.0,
    "secondary_link": 40.0,
    "tertiary": 40.0,
    "tertiary_link": 35.0,
    "unclassified": 40.0,
    "residential": 30.0,
    "living_street": 10.0,
    "service": 20.0,
    "road": 30.0,
    "busway": 30.0,
}
#: Used for a ``highway`` value not in the table.
FALLBACK_SPEED_KPH = 30.0

#: Rank of each class at a junction: a vehicle entering a junction from a lower-ranked road
#: usually has to yield. Unknown classes rank with ``service``.
ROAD_CLASS_RANK: dict[str, int] = {
    "motorway": 7,
    "trunk": 6,
    "primary": 5,
    "secondary": 4,
    "tertiary": 3,
    "unclassified": 2,
    "residential": 2,
    "road": 2,
    "busway": 2,
    "living_street": 1,
    "service": 1,
}

#: Country-coded implicit limits (``maxspeed=FI:urban``) that appear in our extracts' regions.
IMPLICIT_SPEED_KPH: dict[str, float] = {
    "urban": 50.0,
    "rural": 80.0,
    "motorway": 110.0,
    "trunk": 100.0,
    "living_street": 20.0,
    "bicycle_road": 30.0,
    "walk": 7.0,
}

_NUMBER = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(mph|knots|km/h|kmh|kph)?\s*$", re.IGNORECASE)


def parse_maxspeed_kph(value: object) -> float | None:
    """The speed (km/h) that an OSM ``maxspeed`` value means, or None if it gives no number.

    Handles ``50``, ``30 mph``, ``10 knots``, ``FI:urban``, ``walk``, lists such as
    ``50;30`` (the lowest wins: a van drives the slower limit of a mixed way) and the lists
    osmnx makes when it merges ways. ``none`` (no limit, German motorways) gives None so the
    class default applies.
    """
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, list | tuple | set):
        speeds = [s for s in (parse_maxspeed_kph(v) for v in value) if s is not None]
        return min(speeds) if speeds else None
    text = str(value).strip()
    if not text:
        return None
    if ";" in text or "|" in text:
        return parse_maxspeed_kph(re.split(r"[;|]", text))
    match = _NUMBER.match(text)
    if match:
        speed = float(match.group(1))
        unit = (match.group(2) or "").lower()
        if unit == "mph":
            speed *= MPH_TO_KPH
        elif unit == "knots":
            speed *= KNOTS_TO_KPH
        return speed if 0 < speed <= 300 else None
    key = text.split(":", 1)[-1].lower()
    return IMPLICIT_SPEED_KPH.get(key)


def road_class(highway: object) -> str:
    """The single ``highway`` class of an edge (osmnx gives a list for merged ways)."""
    if isinstance(highway, list | tuple):
        ranked = sorted((str(h) for h in highway), key=lambda h: -ROAD_CLASS_RANK.get(h, 1))
        return ranked[0] if ranked else "unclassified"
    if highway is None or (isinstance(highway, float) and math.isnan(highway)):
        return "unclassified"
    return str(highway)


def free_flow_speed_kph(highway: str, maxspeed: object) -> float:
    """Free-flow speed of an edge: its ``maxspeed`` if it parses, else its class default."""
    parsed = parse_maxspeed_kph(maxspeed)
    if parsed is not None:
        return parsed
    return DEFAULT_SPEED_KPH.get(highway, FALLBACK_SPEED_KPH)


@dataclass(frozen=True, slots=True)
class DelayParams:
    """Delays (seconds) added to the time of an edge that ends at a real intersection.

    A node is an intersection when three or more distinct roads meet there; nodes merely
    joining two pieces of one street add nothing. Turn costs proper would need an edge-based
    graph, roughly tripling matrix time (see docs/adr/0003-intersection-delays.md); these
    node delays carry their average instead.
    """

    #: Entering a signalised junction: on average about half a red phase.
    traffic_signal_s: float = 8.0
    #: Entering a junction from a lower-ranked road than the busiest one there: stop or yield.
    yield_to_major_s: float = 3.0
    #: Any other junction: slowing, looking, the occasional turn across traffic.
    other_junction_s: float = 0.5
    #: Multiplies free-flow speeds (1.0 = drive at the limit).
    speed_factor: float = 1.0

    def fingerprint(self) -> str:
        """A stable text of the parameters, part of the graph cache key."""
        return (
            f"sig={self.traffic_signal_s};yield={self.yield_to_major_s};"
            f"other={self.other_junction_s};factor={self.speed_factor}"
        )

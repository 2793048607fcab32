"""One position fix in fixed units, whatever device or protocol it came from."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Position:
    """A GPS fix: where a vehicle was at ``fix_time`` (UTC), as its device reported it.

    Units: degrees, metres per second, degrees clockwise from north, metres; ``battery`` is a
    fraction 0..1. None means the device did not say.
    """

    vehicle_id: str
    fix_time: datetime
    lat: float
    lon: float
    speed_mps: float | None = None
    heading_deg: float | None = None
    accuracy_m: float | None = None
    altitude_m: float | None = None
    battery: float | None = None
    source: str = ""

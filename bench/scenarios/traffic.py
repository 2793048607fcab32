"""Background traffic that follows the hour of the day (the ``*-week-*`` days).

The rate is the city's peak (cities.py) times a weekday shape on the local clock: a morning
peak 07:30-09:00, a quieter late morning, a lunch bump 12:00-13:30, a quiet early afternoon
and the evening rise, linear between the knots below. randomTrips.py is given one insertion
rate per 5-minute interval (its ``--insertion-rate`` with a list of values: equal intervals
from ``--begin`` to ``--end``), each the shape at the interval's middle.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

INTERVAL_S = 300
#: (local time, share of the peak rate); linear in between, flat outside.
SHAPE: tuple[tuple[str, float], ...] = (
    ("05:00", 0.30),
    ("06:30", 0.55),
    ("07:30", 1.00),
    ("09:00", 1.00),
    ("09:45", 0.60),
    ("10:15", 0.50),
    ("11:30", 0.50),
    ("12:00", 0.70),
    ("13:30", 0.70),
    ("14:00", 0.55),
    ("15:00", 0.55),
    ("16:00", 0.75),
    ("17:00", 0.95),
    ("18:30", 0.95),
    ("20:00", 0.45),
)


def _minutes(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


def share_at(local_minute: float) -> float:
    """The shape's share of the peak rate at ``local_minute`` after local midnight."""
    xs = [_minutes(c) for c, _ in SHAPE]
    ys = [share for _, share in SHAPE]
    return float(np.interp(local_minute, xs, ys))


def interval_rates(epoch0: int, end_s: int, zone: ZoneInfo, peak_per_hour: int) -> list[int]:
    """Vehicles per hour for each 5-minute interval from ``epoch0`` until ``end_s`` after it
    (rounded up to whole intervals)."""
    count = math.ceil(end_s / INTERVAL_S)
    rates: list[int] = []
    for k in range(count):
        middle = datetime.fromtimestamp(epoch0 + (k + 0.5) * INTERVAL_S, zone)
        minute = middle.hour * 60 + middle.minute + middle.second / 60
        rates.append(round(peak_per_hour * share_at(minute)))
    return rates


def profile_meta(
    epoch0: int, rates: list[int], zone: ZoneInfo, peak_per_hour: int, last_s: int
) -> dict[str, Any]:
    """What meta records: the shape, the peak, and the mean rate of each local hour from the
    warm-up's start (``epoch0``) to the last van's return (``last_s``, epoch s)."""
    by_hour: dict[str, list[int]] = defaultdict(list)
    for k, rate in enumerate(rates):
        begin = epoch0 + k * INTERVAL_S
        if begin > last_s:
            break
        by_hour[f"{datetime.fromtimestamp(begin, zone).hour:02d}"].append(rate)
    return {
        "peak_per_hour": peak_per_hour,
        "interval_s": INTERVAL_S,
        "shape": [[clock, share] for clock, share in SHAPE],
        "per_hour_by_local_hour": {h: round(sum(r) / len(r)) for h, r in sorted(by_hour.items())},
    }

"""Fitting the fleet's prior from its own history: how long legs and stops really took
against what the plans said (completed days; the live pace then adapts within a day)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np

from eta.params import FleetPrior

#: Fewer completed legs than this say too little: the prior stays neutral.
MIN_LEGS = 20
#: Each observed/planned ratio is clipped to this before fitting, so a van parked for lunch
#: mid-leg or a stop the driver forgot to close cannot drag the fleet's prior.
RATIO_BOUNDS = (0.3, 4.0)


#: An hour of the day needs this many legs started in it to get its own factor; its factor is
#: shrunk towards 1 by ``n / (n + MIN_HOUR_LEGS)``.
MIN_HOUR_LEGS = 10


def fit_prior(
    legs: Sequence[tuple[float, float]],
    services: Sequence[tuple[float, float]],
    *,
    departures_s: Sequence[float] | None = None,
    timezone: str = "UTC",
) -> FleetPrior:
    """``legs``: (planned drive s, actual drive s); ``services``: (planned s, actual s);
    ``departures_s``: when each leg started (epoch s), for the time-of-day profile.

    Travel: least squares of actual = overhead + factor x planned (overhead >= 0); then, per
    hour of the day in ``timezone``, the ratio of actual to that fit; service: total actual
    over total planned.
    """
    leg = np.array([(p, a) for p, a in legs if p > 0], dtype=np.float64).reshape(-1, 2)
    if len(leg) < MIN_LEGS:
        return FleetPrior()
    planned, actual = leg[:, 0], np.clip(leg[:, 1], *(b * leg[:, 0] for b in RATIO_BOUNDS))
    if np.ptp(planned) < 1.0:  # all legs alike: no slope to tell from an overhead
        factor, overhead = float(planned @ actual / (planned @ planned)), 0.0
    else:
        factor, overhead = np.polyfit(planned, actual, 1)
    if overhead < 0:  # no negative time per leg: refit through the origin
        overhead, factor = 0.0, float(planned @ actual / (planned @ planned))
    svc = np.array([(p, a) for p, a in services if p > 0], dtype=np.float64).reshape(-1, 2)
    service_factor = 1.0
    if len(svc):
        clipped = np.clip(svc[:, 1], *(b * svc[:, 0] for b in RATIO_BOUNDS))
        service_factor = float(clipped.sum() / svc[:, 0].sum())
    hours: tuple[float, ...] = ()
    kept = [p > 0 for p, _ in legs]
    if departures_s is not None and len(departures_s) == len(legs):
        starts = np.array([d for d, k in zip(departures_s, kept, strict=True) if k])
        zone = ZoneInfo(timezone)
        hour = np.array([datetime.fromtimestamp(t, zone).hour for t in starts])
        fitted = overhead + factor * planned
        profile = []
        for h in range(24):
            here = hour == h
            n = int(here.sum())
            if n < MIN_HOUR_LEGS:
                profile.append(1.0)
                continue
            raw = float(actual[here].sum() / fitted[here].sum())
            profile.append(round(1.0 + (raw - 1.0) * n / (n + MIN_HOUR_LEGS), 3))
        if any(f != 1.0 for f in profile):
            hours = tuple(profile)
    return FleetPrior(
        leg_overhead_s=round(float(overhead), 1),
        travel_factor=round(float(factor), 3),
        service_factor=round(service_factor, 3),
        hour_factors=hours,
        timezone=timezone,
    )

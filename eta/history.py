"""Fitting the fleet's prior from its own history: how long legs and stops really took
against what the plans said (completed days; the live pace then adapts within a day)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from eta.params import FleetPrior

#: Fewer completed legs than this say too little: the prior stays neutral.
MIN_LEGS = 20
#: Each observed/planned ratio is clipped to this before fitting, so a van parked for lunch
#: mid-leg or a stop the driver forgot to close cannot drag the fleet's prior.
RATIO_BOUNDS = (0.3, 4.0)


def fit_prior(
    legs: Sequence[tuple[float, float]], services: Sequence[tuple[float, float]]
) -> FleetPrior:
    """``legs``: (planned drive s, actual drive s); ``services``: (planned s, actual s).

    Travel: least squares of actual = overhead + factor x planned (overhead >= 0); service:
    total actual over total planned.
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
    return FleetPrior(
        leg_overhead_s=round(float(overhead), 1),
        travel_factor=round(float(factor), 3),
        service_factor=round(service_factor, 3),
    )

"""Widening the calibrated window so it covers what it says by the arrival's real horizon.

The calibration (:mod:`eta.calibration`) holds the residual quantiles by *predicted* horizon,
so among all windows told at a predicted horizon, 80 % hold the arrival. Customers, and our
figures (:mod:`eta.promise`), group by how far off the arrival really was. An ETA that turns
out late was told at a shorter predicted horizon than its real one, so the long real horizons
collect the upper tails of shorter predicted ones (covered less than 80 %) and the short real
horizons the well-behaved rest (covered more). One factor per predicted-horizon bucket widens
(or narrows) its P10-P90 about the median; the factors are chosen on past days' residuals by
coordinate descent so that coverage in each real-horizon bucket comes as near ``target`` as
the factors allow. Fitted on history like the quantiles, never on the day it is used on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from eta.calibration import WindowCalibration, unwidened_parts
from eta.promise import HORIZON_LABELS, horizon_bucket

#: Factors tried per bucket: from half to three times the fitted spread.
FACTORS: tuple[float, ...] = tuple(float(f) for f in np.geomspace(0.5, 3.0, 37))
SWEEPS = 4


def coverage_by_real_horizon(
    cal: WindowCalibration, samples: Sequence[tuple[float, float]], widen: Sequence[float]
) -> list[float | None]:
    """Share of samples (predicted horizon s, residual s) inside the window widened by
    ``widen``, per real-horizon bucket of :data:`eta.promise.HORIZON_LABELS`."""
    parts = _parts(cal, samples)
    return list(_coverage(parts, np.asarray(widen, dtype=np.float64)))


def _parts(cal: WindowCalibration, samples: Sequence[tuple[float, float]]) -> np.ndarray:
    rows = []
    for horizon_s, residual_s in samples:
        got = unwidened_parts(cal, horizon_s)
        if got is None:
            continue
        b, n, t, median_s, lo_s, hi_s = got
        label = horizon_bucket(horizon_s + residual_s)
        if label is not None:
            bucket = HORIZON_LABELS.index(label)
            rows.append((b, n, t, median_s, lo_s, hi_s, horizon_s, residual_s, bucket))
    return np.asarray(rows, dtype=np.float64).reshape(-1, 9)


def _coverage(parts: np.ndarray, widen: np.ndarray) -> list[float | None]:
    b, n, t = parts[:, 0].astype(int), parts[:, 1].astype(int), parts[:, 2]
    median, lo, hi = parts[:, 3], parts[:, 4], parts[:, 5]
    horizon, residual, bucket = parts[:, 6], parts[:, 7], parts[:, 8].astype(int)
    w = (1.0 - t) * widen[b] + t * widen[n]
    # As predict tells it: the ETA inside its window, the window not beginning before now.
    low = np.maximum(np.minimum(median + w * (lo - median), 0.0), np.minimum(-horizon, 0.0))
    high = np.maximum(median + w * (hi - median), 0.0)
    inside = (low <= residual) & (residual <= high)
    out: list[float | None] = []
    for k in range(len(HORIZON_LABELS)):
        here = bucket == k
        out.append(float(inside[here].mean()) if here.any() else None)
    return out


def fit_widening(
    cal: WindowCalibration,
    samples: Sequence[tuple[float, float]],
    *,
    target: float = 0.8,
) -> WindowCalibration:
    """``cal`` with the widening per bucket that brings coverage by real horizon nearest
    ``target`` on ``samples`` (least squares over the real-horizon buckets). Unfitted buckets
    keep 1; with no usable sample, ``cal`` unchanged."""
    parts = _parts(cal, samples)
    if len(parts) == 0:
        return cal
    widen = np.ones(len(cal.edges_s))
    fitted = [i for i, row in enumerate(cal.quantiles_s) if row is not None]

    def loss(candidate: np.ndarray) -> float:
        return sum((c - target) ** 2 for c in _coverage(parts, candidate) if c is not None)

    best = loss(widen)
    for _ in range(SWEEPS):
        improved = False
        for i in fitted:
            for factor in FACTORS:
                trial = widen.copy()
                trial[i] = factor
                value = loss(trial)
                if value < best - 1e-12:
                    best, widen, improved = value, trial, True
        if not improved:
            break
    return replace(cal, widen=tuple(round(float(w), 3) for w in widen))

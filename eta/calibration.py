"""The live window calibrated from the fleet's own past, and the first window told.

**Calibration.** How far actual arrivals fell from the ETA (the residual, actual - ETA) on
completed days, by how far ahead the ETA was when it was made: the *predicted* horizon,
ETA - now, the only horizon known when a window is told (the true one is known only after the
arrival, and bucketing by it would leak the outcome). Per horizon bucket the empirical
quantiles of the residual at a fixed grid of levels (split-conformal: the samples are ETAs the
model made on days it was not fitted on, so their quantiles cover new days as often as they
say). :func:`interval_s` reads two levels off it, linear between bucket centres so a window
does not jump when its stop crosses a bucket edge.

**Cold start.** A bucket with fewer than ``min_per_bucket`` samples is *unfitted*:
:func:`interval_s` says None there and the caller falls back to the hand-set spread of
:class:`eta.params.EtaParams` (as it does everywhere while no calibration is set: a new fleet,
or one with too little history). A sparse bucket is not pooled with its neighbour: the spread
grows with the horizon (roughly doubling from one long bucket to the next), so borrowing a
shorter neighbour's quantiles would tell too narrow a window exactly where history is thinnest,
while the hand-set spread grows with what lies ahead. Interpolation never reaches into an
unfitted bucket either.

**First window.** The first window told (:func:`first_window`) is what a customer plans a
morning around; parcel carriers promise one hour. So it is capped: the calibrated P10-P90 when
it is narrower than the cap, else the window of the cap's width holding the most probability
mass (which is how to be right most often with a fixed width), always holding the ETA and
never beginning before now.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import pairwise
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    # Only for annotations: params holds a WindowCalibration and predict imports params, so
    # importing either here at run time would be a cycle.
    from eta.params import EtaParams
    from eta.predict import StopEta

#: Lower edges of the predicted-horizon buckets, seconds; the last bucket is open. Narrow
#: where most windows are told and read (the last hour), wider beyond.
DEFAULT_EDGES_S: tuple[float, ...] = tuple(
    60.0 * m for m in (0, 5, 10, 20, 30, 45, 60, 90, 120, 180)
)
#: Levels at which each bucket's residual quantiles are kept: fine enough to read a window of
#: any width off them, small enough to store per fleet as JSON.
LEVELS: tuple[float, ...] = tuple(round(0.05 * k, 2) for k in range(1, 20))
#: Fewer residuals than this in a bucket: its tails are a handful of arrivals; unfitted.
MIN_PER_BUCKET = 50
#: Masses within this are equal (sums of floats): the tie goes to the window nearer the median.
_MASS_TOLERANCE = 1e-9


@dataclass(frozen=True, slots=True)
class WindowCalibration:
    """Residual quantiles by predicted horizon. Bucket ``i`` holds the horizons from
    ``edges_s[i]`` up to ``edges_s[i + 1]`` (the last: and beyond; below the first edge: the
    first)."""

    edges_s: tuple[float, ...]
    levels: tuple[float, ...]
    #: Where each bucket's quantiles hold exactly, for interpolating between buckets: the
    #: median horizon of its samples (a mean over an open or skewed bucket would sit where
    #: few windows are told); the lower edge when it had none.
    centres_s: tuple[float, ...]
    #: Samples per bucket.
    counts: tuple[int, ...]
    #: Per bucket, the residual (actual - ETA, seconds) at each level; None: unfitted.
    quantiles_s: tuple[tuple[float, ...] | None, ...]
    #: Per bucket, how much the live P10-P90 is widened about its median (1: as fitted;
    #: empty: 1 everywhere). Fitted by :func:`eta.coverage.fit_widening` so the windows cover
    #: 80 % of arrivals by how far off the arrival *really* was: an ETA that turns out late
    #: was made at a shorter predicted horizon than the arrival's, so long real horizons
    #: gather the tails of shorter predicted ones and are covered less than their quantiles say.
    widen: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        n = len(self.edges_s)
        if n == 0 or any(b <= a for a, b in pairwise(self.edges_s)):
            raise ValueError("edges_s must be strictly increasing, at least one")
        if not self.levels or any(b <= a for a, b in pairwise(self.levels)):
            raise ValueError("levels must be strictly increasing, at least one")
        if not (self.levels[0] > 0.0 and self.levels[-1] < 1.0):
            raise ValueError("levels must lie strictly between 0 and 1")
        if not len(self.centres_s) == len(self.counts) == len(self.quantiles_s) == n:
            raise ValueError("one centre, count and quantile row per bucket")
        numbers = (*self.edges_s, *self.centres_s, *(x for r in self.quantiles_s for x in r or ()))
        if not all(math.isfinite(x) for x in numbers) or min(self.counts) < 0:
            raise ValueError("edges, centres and quantiles must be finite, counts >= 0")
        for i, centre in enumerate(self.centres_s):
            upper = self.edges_s[i + 1] if i + 1 < n else math.inf
            if not self.edges_s[i] <= centre <= upper:
                raise ValueError(f"centre of bucket {i} outside it")
        if self.widen and (
            len(self.widen) != n or not all(math.isfinite(w) and w > 0 for w in self.widen)
        ):
            raise ValueError("widen: one finite factor > 0 per bucket, or none")
        for row in self.quantiles_s:
            if row is None:
                continue
            if len(row) != len(self.levels) or any(b < a for a, b in pairwise(row)):
                raise ValueError("a quantile row must be non-decreasing, one value per level")

    def bucket(self, horizon_s: float) -> int:
        """The bucket a predicted horizon falls in."""
        return max(bisect_right(self.edges_s, horizon_s) - 1, 0)

    def fitted(self, horizon_s: float) -> bool:
        return self.quantiles_s[self.bucket(horizon_s)] is not None

    def to_dict(self) -> dict[str, Any]:
        """Plain lists and numbers: JSON as it is."""
        return {
            "edges_s": list(self.edges_s),
            "levels": list(self.levels),
            "centres_s": list(self.centres_s),
            "counts": list(self.counts),
            "quantiles_s": [None if row is None else list(row) for row in self.quantiles_s],
            "widen": list(self.widen),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WindowCalibration:
        """The inverse of :meth:`to_dict`; ValueError on anything else."""
        try:
            return cls(
                tuple(float(x) for x in data["edges_s"]),
                tuple(float(x) for x in data["levels"]),
                tuple(float(x) for x in data["centres_s"]),
                tuple(int(x) for x in data["counts"]),
                tuple(
                    None if row is None else tuple(float(x) for x in row)
                    for row in data["quantiles_s"]
                ),
                tuple(float(x) for x in data.get("widen", ())),
            )
        except (KeyError, TypeError) as e:
            raise ValueError(f"not a window calibration: {e!r}") from e


def fit_window_calibration(
    samples: Sequence[tuple[float, float]],
    *,
    min_per_bucket: int = MIN_PER_BUCKET,
    edges_s: Sequence[float] = DEFAULT_EDGES_S,
) -> WindowCalibration:
    """``samples``: (predicted horizon s, residual s = actual - ETA) of ETAs made on past days.
    Non-finite samples are dropped. Buckets with fewer than ``min_per_bucket`` are unfitted."""
    if min_per_bucket < 1:
        raise ValueError("min_per_bucket must be at least 1")
    edges = tuple(float(e) for e in edges_s)
    if not edges:
        raise ValueError("at least one bucket edge")
    data = np.asarray(samples, dtype=np.float64).reshape(-1, 2)
    data = data[np.isfinite(data).all(axis=1)]
    # Below the first edge (an ETA already due) counts as the first bucket, centre included.
    horizon = np.maximum(data[:, 0], edges[0])
    which = np.searchsorted(np.asarray(edges), horizon, side="right") - 1
    centres: list[float] = []
    counts: list[int] = []
    rows: list[tuple[float, ...] | None] = []
    for i, lower in enumerate(edges):
        here = which == i
        n = int(here.sum())
        counts.append(n)
        centres.append(float(np.median(horizon[here])) if n else lower)
        if n < min_per_bucket:
            rows.append(None)
            continue
        # Weibull plotting positions (level k/(n+1) at the k-th smallest): the finite-sample
        # conformal quantile, a little wider in the tails than the plain empirical one.
        values = np.quantile(data[here, 1], LEVELS, method="weibull")
        rows.append(tuple(float(v) for v in values))
    return WindowCalibration(edges, LEVELS, tuple(centres), tuple(counts), tuple(rows))


def _at_level(levels: Sequence[float], row: Sequence[float], level: float) -> float:
    k = min(max(bisect_right(levels, level) - 1, 0), len(levels) - 2)
    if k < 0:  # a single level
        return row[0]
    t = (level - levels[k]) / (levels[k + 1] - levels[k])
    return row[k] + t * (row[k + 1] - row[k])


def _blend(cal: WindowCalibration, horizon_s: float) -> tuple[int, int, float] | None:
    """(bucket, neighbour, weight of the neighbour) at a horizon: linear between the bucket's
    centre and the nearer side's neighbour's, flat where that neighbour is unfitted or
    missing. None: the horizon's own bucket is unfitted."""
    b = cal.bucket(horizon_s)
    if cal.quantiles_s[b] is None:
        return None
    n = b + 1 if horizon_s >= cal.centres_s[b] else b - 1
    if not 0 <= n < len(cal.edges_s) or cal.quantiles_s[n] is None:
        return b, b, 0.0
    span = cal.centres_s[n] - cal.centres_s[b]
    if span == 0.0:
        return b, b, 0.0
    return b, n, min(max((horizon_s - cal.centres_s[b]) / span, 0.0), 1.0)


def _quantile_s(cal: WindowCalibration, blend: tuple[int, int, float], level: float) -> float:
    b, n, t = blend
    at_b = _at_level(cal.levels, cal.quantiles_s[b] or (), level)
    if t == 0.0:
        return at_b
    return (1.0 - t) * at_b + t * _at_level(cal.levels, cal.quantiles_s[n] or (), level)


def interval_s(
    cal: WindowCalibration, horizon_s: float, lo: float = 0.1, hi: float = 0.9
) -> tuple[float, float] | None:
    """Offsets from the ETA (seconds; negative: before it) of the ``lo`` and ``hi`` quantiles
    of the arrival at this predicted horizon; None where unfitted."""
    if not cal.levels[0] <= lo <= hi <= cal.levels[-1]:
        raise ValueError(f"levels must satisfy {cal.levels[0]} <= lo <= hi <= {cal.levels[-1]}")
    blend = _blend(cal, horizon_s)
    if blend is None:
        return None
    lo_s, hi_s = _quantile_s(cal, blend, lo), _quantile_s(cal, blend, hi)
    if not cal.widen:
        return lo_s, hi_s
    b, n, t = blend
    w = (1.0 - t) * cal.widen[b] + t * cal.widen[n]
    median_s = _quantile_s(cal, blend, 0.5)
    return median_s + w * (lo_s - median_s), median_s + w * (hi_s - median_s)


def unwidened_parts(
    cal: WindowCalibration, horizon_s: float, lo: float = 0.1, hi: float = 0.9
) -> tuple[int, int, float, float, float, float] | None:
    """What :func:`interval_s` widens, for fitting the widening: (bucket, neighbour, weight
    of the neighbour, median, ``lo`` and ``hi`` quantile offsets as fitted); None where
    unfitted."""
    blend = _blend(cal, horizon_s)
    if blend is None:
        return None
    b, n, t = blend
    return (
        b,
        n,
        t,
        _quantile_s(cal, blend, 0.5),
        _quantile_s(cal, blend, lo),
        _quantile_s(cal, blend, hi),
    )


def _grid_s(cal: WindowCalibration, horizon_s: float) -> tuple[float, ...] | None:
    blend = _blend(cal, horizon_s)
    if blend is None:
        return None
    return tuple(_quantile_s(cal, blend, level) for level in cal.levels)


class _Cdf:
    """The arrival's distribution as its quantile grid draws it: linear between the grid's
    points, a jump where several levels share one value, and no mass outside the grid (the
    tails beyond the outer levels are unknown, so no window is credited with them)."""

    def __init__(self, levels: Sequence[float], row: Sequence[float]) -> None:
        xs: list[float] = []
        low: list[float] = []
        high: list[float] = []
        for x, level in zip(row, levels, strict=True):
            if xs and x == xs[-1]:
                high[-1] = level
            else:
                xs.append(x)
                low.append(level)
                high.append(level)
        self.xs, self.low, self.high = xs, low, high

    def at(self, x: float, *, left: bool) -> float:
        """P(arrival < x) if ``left``, else P(arrival <= x)."""
        k = bisect_right(self.xs, x) - 1
        if k < 0:
            return self.low[0]
        if self.xs[k] == x:
            return self.low[k] if left else self.high[k]
        if k == len(self.xs) - 1:
            return self.high[k]
        t = (x - self.xs[k]) / (self.xs[k + 1] - self.xs[k])
        return self.high[k] + t * (self.low[k + 1] - self.high[k])

    def mass(self, start: float, width: float) -> float:
        """P(start <= arrival <= start + width)."""
        return self.at(start + width, left=False) - self.at(start, left=True)


def _densest_start_s(
    levels: Sequence[float],
    row: Sequence[float],
    width_s: float,
    lowest_s: float = -math.inf,
    highest_s: float = math.inf,
) -> float:
    """Start of the window of ``width_s`` holding the most mass, among starts in
    [``lowest_s``, ``highest_s``]. The mass is piecewise linear in the start, breaking where
    either end meets a grid point, so its maximum is at one of those starts or a bound."""
    cdf = _Cdf(levels, row)
    median = _at_level(levels, row, 0.5) if levels[0] <= 0.5 <= levels[-1] else row[len(row) // 2]
    # The median-centred start breaks ties: on a plateau of equal mass (flat density) the
    # window stays in the middle of the distribution rather than at a plateau's end.
    raw = [median - width_s / 2, *row, *(x - width_s for x in row), lowest_s, highest_s]
    candidates = {min(max(s, lowest_s), highest_s) for s in raw if math.isfinite(s)}
    best_s, best_mass = 0.0, -1.0
    for s in sorted(candidates, key=lambda s: abs(s + width_s / 2 - median)):
        mass = cdf.mass(s, width_s)
        if mass > best_mass + _MASS_TOLERANCE:
            best_s, best_mass = s, mass
    return best_s


def _check_cap(cap_s: float) -> None:
    if not cap_s >= 0.0:  # also NaN
        raise ValueError("cap_s must be >= 0")


def capped_interval_s(
    cal: WindowCalibration, horizon_s: float, cap_s: float
) -> tuple[float, float] | None:
    """The P10-P90 offsets from the ETA if no wider than ``cap_s``, else the offsets of the
    window of width ``cap_s`` holding the most probability mass; None where unfitted."""
    _check_cap(cap_s)
    window = interval_s(cal, horizon_s)
    if window is None or window[1] - window[0] <= cap_s:
        return window
    row = _grid_s(cal, horizon_s) or ()
    start = _densest_start_s(cal.levels, row, cap_s)
    return start, start + cap_s


def calibrated_window_s(
    cal: WindowCalibration, eta_s: float, now_s: float, cap_s: float | None = None
) -> tuple[float, float] | None:
    """The calibrated window (epoch seconds) around an ETA made at ``now_s``: the P10-P90 at
    its predicted horizon, holding the ETA, never beginning before now (for an ETA not before
    now), and at most ``cap_s`` wide (the densest such window when the P10-P90 is wider);
    None where unfitted."""
    if cap_s is not None:
        _check_cap(cap_s)
    horizon_s = eta_s - now_s
    window = interval_s(cal, horizon_s)
    if window is None:
        return None
    floor_s = min(now_s - eta_s, 0.0)
    # The ETA is told with its window: one outside it reads as a contradiction ("at 10:00,
    # between 10:05 and 10:40"), and the delay detection would find a fresh window already
    # broken by its own ETA. Residuals all on one side (an ETA biased early or late in that
    # bucket) would exclude it, so the window is stretched to reach it.
    lo_s = max(min(window[0], 0.0), floor_s)
    hi_s = max(window[1], 0.0)
    if cap_s is not None and hi_s - lo_s > cap_s:
        # Stretching may have made it too wide: the densest window of the cap's width among
        # those that hold the ETA and do not begin before now.
        row = _grid_s(cal, horizon_s) or ()
        lo_s = _densest_start_s(cal.levels, row, cap_s, max(-cap_s, floor_s), 0.0)
        hi_s = lo_s + cap_s
    return eta_s + lo_s, eta_s + hi_s


def _narrowed_s(
    eta_s: float, earliest_s: float, latest_s: float, cap_s: float | None
) -> tuple[float, float]:
    """The hand-set window, cut to ``cap_s`` keeping its lean: the ETA sits at the same share
    of the way through it (a window leaning late stays leaning late)."""
    width_s = latest_s - earliest_s
    if cap_s is None or width_s <= cap_s:
        return earliest_s, latest_s
    lean = min(max((eta_s - earliest_s) / width_s, 0.0), 1.0)
    earliest = eta_s - cap_s * lean
    return earliest, earliest + cap_s


def first_window(eta: StopEta, now_s: float, params: EtaParams, cap_s: float | None) -> StopEta:
    """The first window to tell for a stop (``cap_s``: the organisation's widest, None: no
    cap): the capped calibrated window at the stop's predicted horizon; without a fitted
    calibration there, the hand-set window narrowed to the cap keeping its lean. Holds the
    ETA and never begins before ``now_s`` (for an ETA not before it, as predict gives). An
    arrived stop is returned as it is."""
    if eta.arrived:
        return eta
    if cap_s is not None:
        _check_cap(cap_s)
    cal = params.calibration
    window = None if cal is None else calibrated_window_s(cal, eta.eta_s, now_s, cap_s)
    if window is None:
        window = _narrowed_s(eta.eta_s, eta.earliest_s, eta.latest_s, cap_s)
    earliest_s = max(window[0], min(now_s, eta.eta_s))
    return replace(eta, earliest_s=earliest_s, latest_s=max(window[1], eta.eta_s))

"""Widening the calibrated window for coverage by the arrival's real horizon
(eta/coverage.py)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from eta.calibration import WindowCalibration, fit_window_calibration, interval_s
from eta.coverage import coverage_by_real_horizon, fit_widening


def skewed_history(n: int = 20_000, seed: int = 3) -> list[tuple[float, float]]:
    """ETAs made 0-150 min ahead whose errors grow with the horizon and lean late (queues,
    parking): the late ones land in longer real horizons than they were told at."""
    rng = np.random.default_rng(seed)
    horizon = rng.uniform(0, 150 * 60, n)
    scale = 60 + 0.4 * horizon
    residual = rng.gamma(0.7, scale) - 0.5 * scale
    return list(zip(horizon.tolist(), residual.tolist(), strict=True))


def test_unwidened_quantiles_under_cover_long_real_horizons() -> None:
    """The effect the widening is for: by real horizon, P10-P90 by predicted horizon covers
    the longest bucket less than 80 % and the shortest more."""
    history = skewed_history()
    cal = fit_window_calibration(history)
    coverage = coverage_by_real_horizon(cal, history, [1.0] * len(cal.edges_s))
    first, last = coverage[0], coverage[-1]
    assert first is not None
    assert first > 0.85
    assert last is not None
    assert last < 0.78


def test_widening_brings_every_real_horizon_bucket_near_the_target() -> None:
    history = skewed_history()
    cal = fit_window_calibration(history)
    before = coverage_by_real_horizon(cal, history, [1.0] * len(cal.edges_s))
    widened = fit_widening(cal, history)
    after = coverage_by_real_horizon(widened, history, widened.widen)
    assert all(c is not None for c in after)
    spread_before = sum((c - 0.8) ** 2 for c in before if c is not None)
    spread_after = sum((c - 0.8) ** 2 for c in after if c is not None)
    assert spread_after < spread_before / 4
    assert all(0.75 <= c <= 0.85 for c in after if c is not None)
    # And it holds on a new day drawn alike (not just the history it was fitted on).
    fresh = skewed_history(seed=11)
    assert all(
        0.74 <= c <= 0.86 for c in coverage_by_real_horizon(widened, fresh, widened.widen) if c
    )


def test_a_widening_factor_scales_the_window_about_its_median() -> None:
    history = skewed_history(5_000)
    cal = fit_window_calibration(history)
    doubled = replace(cal, widen=tuple(2.0 for _ in cal.edges_s))
    at = 40 * 60.0
    lo, hi = interval_s(cal, at) or (0.0, 0.0)
    median = (interval_s(cal, at, 0.5, 0.5) or (0.0, 0.0))[0]
    lo2, hi2 = interval_s(doubled, at) or (0.0, 0.0)
    assert lo2 == pytest.approx(median + 2 * (lo - median))
    assert hi2 == pytest.approx(median + 2 * (hi - median))


def test_widening_survives_json_and_is_checked() -> None:
    cal = fit_widening(fit_window_calibration(skewed_history(5_000)), skewed_history(5_000))
    assert WindowCalibration.from_dict(cal.to_dict()) == cal
    # Older stored calibrations have no widening: 1 everywhere.
    data = cal.to_dict()
    del data["widen"]
    assert WindowCalibration.from_dict(data).widen == ()
    with pytest.raises(ValueError, match="widen"):
        replace(cal, widen=(1.0,))
    with pytest.raises(ValueError, match="widen"):
        replace(cal, widen=tuple(0.0 for _ in cal.edges_s))


def test_nothing_usable_leaves_the_calibration_as_it_was() -> None:
    cal = fit_window_calibration([])
    assert fit_widening(cal, []) == cal

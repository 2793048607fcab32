"""The window calibrated from past residuals (eta/calibration.py): what it fits, how the live
window and the first window told read it, and the cold start's fallback to the hand-set spread."""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import replace
from datetime import datetime, timedelta

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given, settings

from eta.calibration import (
    LEVELS,
    WindowCalibration,
    capped_interval_s,
    first_window,
    fit_window_calibration,
    interval_s,
)
from eta.delay import DelayParams, WindowTold
from eta.live import plan_windows, recompute
from eta.pace import Pace
from eta.params import EtaParams
from eta.predict import StopEta, predict
from eta.progress import RouteProgress, not_started
from eta.route import EtaRoute
from tests.eta.test_predict import T0, line_route, scenarios

MIN = 60.0
HOUR = 3600.0
NOW_S = T0.timestamp()


def skewed_samples(n: int, seed: int = 1) -> list[tuple[float, float]]:
    """Residuals -2 min + Exponential(5 min) at every horizon up to 4 h: late is likelier."""
    rng = np.random.default_rng(seed)
    horizons = rng.uniform(0.0, 4 * HOUR, n)
    residuals = -2 * MIN + rng.exponential(5 * MIN, n)
    return list(zip(horizons.tolist(), residuals.tolist(), strict=True))


def skewed_quantile_s(q: float) -> float:
    return -2 * MIN - 5 * MIN * math.log(1.0 - q)


def growing_samples(n: int, seed: int = 2) -> list[tuple[float, float]]:
    """Residuals N(0, 1 min + a quarter of the horizon): the further ahead, the wider."""
    rng = np.random.default_rng(seed)
    horizons = rng.uniform(0.0, 4 * HOUR, n)
    residuals = rng.normal(0.0, MIN + 0.25 * horizons)
    return list(zip(horizons.tolist(), residuals.tolist(), strict=True))


def one_bucket(row: list[float]) -> WindowCalibration:
    """A calibration with a single bucket (every horizon) holding this quantile row."""
    return WindowCalibration((0.0,), LEVELS, (0.0,), (1000,), (tuple(row),))


def oracle_mass(row: list[float], start_s: float, width_s: float) -> float:
    """Mass of [start, start + width] under the piecewise-linear CDF through the quantiles
    (strictly increasing), none beyond the outer levels: an independent reading."""
    cdf = np.interp([start_s, start_s + width_s], row, LEVELS)
    return float(cdf[1] - cdf[0])


#: Fitted at every horizon up to four hours, wider further ahead.
CALIBRATED = fit_window_calibration(growing_samples(20_000))


@st.composite
def quantile_rows(draw: st.DrawFn) -> list[float]:
    start = draw(st.floats(-HOUR, HOUR))
    gaps = draw(st.lists(st.floats(1.0, 30 * MIN), min_size=len(LEVELS), max_size=len(LEVELS)))
    return list(itertools.accumulate(gaps[1:], initial=start + gaps[0]))


# --- Fitting ------------------------------------------------------------------------------


def test_fit_recovers_the_true_quantiles() -> None:
    """Skewed residuals of a known law: P10, median and P90 within 45 s of the truth (about
    three standard errors of the P90 in the smallest bucket, ~4,000 samples)."""
    cal = fit_window_calibration(skewed_samples(200_000))
    assert all(row is not None for row in cal.quantiles_s)
    for horizon_s in (2 * MIN, 12 * MIN, 50 * MIN, 100 * MIN, 3.5 * HOUR):
        window = interval_s(cal, horizon_s)
        assert window is not None
        assert window[0] == pytest.approx(skewed_quantile_s(0.1), abs=45.0)
        assert window[1] == pytest.approx(skewed_quantile_s(0.9), abs=45.0)
    median = interval_s(cal, 40 * MIN, 0.5, 0.5)
    assert median is not None
    assert median[0] == pytest.approx(skewed_quantile_s(0.5), abs=45.0)


def test_the_window_widens_with_the_horizon_when_the_data_does() -> None:
    """Interpolated between bucket centres: never narrower further ahead, nor jumping at an
    edge."""
    cal = fit_window_calibration(growing_samples(60_000))
    horizons = np.arange(0.0, 5 * HOUR, 30.0)
    windows = [interval_s(cal, float(h)) for h in horizons]
    assert all(w is not None for w in windows)
    lows = [w[0] for w in windows if w is not None]
    highs = [w[1] for w in windows if w is not None]
    assert all(b <= a + 1e-9 for a, b in itertools.pairwise(lows))
    assert all(b >= a - 1e-9 for a, b in itertools.pairwise(highs))
    # Continuous: between two horizons 30 s apart the edge moves by seconds, not a bucket's
    # worth (a jump would be ~100 s at the 45/60-minute edge).
    assert max(abs(b - a) for a, b in itertools.pairwise(highs)) < 20.0
    assert highs[0] < 3 * MIN < 30 * MIN < highs[-1]


def test_sparse_buckets_are_unfitted() -> None:
    """Residuals only within the first half hour: beyond it nothing is said."""
    samples = [(h, r) for h, r in skewed_samples(20_000) if h < 30 * MIN]
    cal = fit_window_calibration(samples)
    assert cal.fitted(10 * MIN)
    assert not cal.fitted(2 * HOUR)
    assert interval_s(cal, 2 * HOUR) is None
    assert capped_interval_s(cal, 2 * HOUR, HOUR) is None
    assert cal.counts[-1] == 0
    few = fit_window_calibration(samples[:40])
    assert all(row is None for row in few.quantiles_s)
    assert sum(few.counts) == 40
    # Interpolation stops at the last fitted bucket rather than reaching into an empty one.
    assert interval_s(cal, 29 * MIN) == interval_s(cal, 29.5 * MIN)


def test_a_fitted_bucket_needs_min_per_bucket_samples() -> None:
    samples = [(10 * MIN + k, float(k)) for k in range(49)]
    assert not fit_window_calibration(samples).fitted(12 * MIN)
    assert fit_window_calibration(samples, min_per_bucket=49).fitted(12 * MIN)
    with pytest.raises(ValueError, match="min_per_bucket"):
        fit_window_calibration(samples, min_per_bucket=0)


def test_round_trip_through_json() -> None:
    samples = [(h, r) for h, r in skewed_samples(5_000) if h < 2 * HOUR]
    cal = fit_window_calibration(samples)
    assert any(row is None for row in cal.quantiles_s)
    stored = json.loads(json.dumps(cal.to_dict()))
    assert WindowCalibration.from_dict(stored) == cal
    with pytest.raises(ValueError, match="not a window calibration"):
        WindowCalibration.from_dict({"edges_s": [0.0]})
    broken = {**stored, "centres_s": stored["centres_s"][:-1]}
    with pytest.raises(ValueError, match="per bucket"):
        WindowCalibration.from_dict(broken)


# --- The capped interval ------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(quantile_rows(), st.floats(60.0, 2 * HOUR))
def test_the_capped_interval_is_the_densest_of_its_width(row: list[float], cap_s: float) -> None:
    cal = one_bucket(row)
    window = capped_interval_s(cal, 20 * MIN, cap_s)
    assert window is not None
    lo, hi = window
    assert hi - lo <= cap_s + 1e-5
    p10, p90 = row[LEVELS.index(0.1)], row[LEVELS.index(0.9)]
    if p90 - p10 <= cap_s:
        assert window == pytest.approx((p10, p90))
        return
    held = oracle_mass(row, lo, cap_s)
    median = row[LEVELS.index(0.5)]
    assert held >= oracle_mass(row, median - cap_s / 2, cap_s) - 1e-9
    assert held >= oracle_mass(row, (p10 + p90 - cap_s) / 2, cap_s) - 1e-9
    starts = np.linspace(row[0] - cap_s, row[-1], 500)
    assert held >= max(oracle_mass(row, float(s), cap_s) for s in starts) - 1e-9


def test_the_capped_interval_moves_to_where_arrivals_crowd() -> None:
    """Most arrivals in a tight cluster, a long late tail: the hour goes to the cluster."""
    row = [float(x) for x in np.concatenate([np.linspace(-600, 600, 15), [2e3, 4e3, 6e3, 8e3]])]
    # The hour starts where the cluster does: starting earlier gains nothing (no mass below
    # it), starting later loses the cluster faster than the tail is gained.
    assert capped_interval_s(one_bucket(row), 0.0, HOUR) == pytest.approx((-600.0, 3000.0))


def test_identical_residuals_make_a_point() -> None:
    cal = one_bucket([120.0] * len(LEVELS))
    assert capped_interval_s(cal, 0.0, HOUR) == (120.0, 120.0)


# --- The first window told ----------------------------------------------------------------


def stop_eta(eta_s: float, earliest_s: float, latest_s: float) -> StopEta:
    return StopEta("o1", 0, eta_s, earliest_s, latest_s, latest_s + 300.0)


@settings(max_examples=300, deadline=None)
@given(
    st.floats(0.0, 6 * HOUR),
    st.floats(0.0, 3 * HOUR),
    st.floats(0.0, 3 * HOUR),
    st.one_of(st.none(), st.floats(0.0, 3 * HOUR)),
    st.one_of(st.none(), quantile_rows()),
)
def test_the_first_window_holds_the_eta_from_now_within_the_cap(
    ahead_s: float,
    before_s: float,
    after_s: float,
    cap_s: float | None,
    row: list[float] | None,
) -> None:
    eta_s = NOW_S + ahead_s
    hand = stop_eta(eta_s, max(eta_s - before_s, NOW_S), eta_s + after_s)
    params = EtaParams(calibration=None if row is None else one_bucket(row))
    told = first_window(hand, NOW_S, params, cap_s)
    assert told.earliest_s >= NOW_S
    assert told.earliest_s <= told.eta_s <= told.latest_s
    assert told.eta_s == eta_s
    assert told.departure_s == hand.departure_s
    if cap_s is not None:
        assert told.latest_s - told.earliest_s <= cap_s + 1e-5


def test_without_calibration_the_hand_set_window_is_cut_keeping_its_lean() -> None:
    """Two hours, a quarter before the ETA: an hour, still a quarter before it."""
    eta_s = NOW_S + 3 * HOUR
    hand = stop_eta(eta_s, eta_s - 30 * MIN, eta_s + 90 * MIN)
    told = first_window(hand, NOW_S, EtaParams(), HOUR)
    # Offsets from the ETA: epoch seconds are too large for approx's relative tolerance.
    assert told.earliest_s - eta_s == pytest.approx(-15 * MIN)
    assert told.latest_s - eta_s == pytest.approx(45 * MIN)
    narrow = stop_eta(eta_s, eta_s - 10 * MIN, eta_s + 20 * MIN)
    assert first_window(narrow, NOW_S, EtaParams(), HOUR) == narrow
    assert first_window(hand, NOW_S, EtaParams(), None) == hand


def test_with_calibration_the_first_window_is_the_calibrated_one_capped() -> None:
    cal = fit_window_calibration(skewed_samples(40_000))
    eta_s = NOW_S + 2 * HOUR
    hand = stop_eta(eta_s, eta_s - 5 * MIN, eta_s + 5 * MIN)
    params = EtaParams(calibration=cal)
    p10, p90 = interval_s(cal, 2 * HOUR) or (math.nan, math.nan)
    told = first_window(hand, NOW_S, params, HOUR)
    assert (told.earliest_s - eta_s, told.latest_s - eta_s) == pytest.approx((p10, p90))
    capped = first_window(hand, NOW_S, params, 10 * MIN)
    assert capped.latest_s - capped.earliest_s == pytest.approx(10 * MIN)
    assert capped.earliest_s <= eta_s <= capped.latest_s


def test_an_arrived_stop_is_left_alone() -> None:
    arrived = replace(stop_eta(NOW_S - 60.0, NOW_S - 60.0, NOW_S - 60.0), arrived=True)
    assert first_window(arrived, NOW_S, EtaParams(), HOUR) is arrived


# --- The live window (predict) ------------------------------------------------------------


def long_route() -> EtaRoute:
    """Eight stops 20 minutes apart: the last is hours ahead, its hand-set window wide."""
    return line_route(8, leg_s=20 * MIN, service_s=5 * MIN)


def test_unfitted_horizons_keep_the_hand_set_spread() -> None:
    """Calibrated up to half an hour ahead only: the stops beyond get exactly today's window."""
    samples = [(h, r) for h, r in skewed_samples(20_000) if h < 30 * MIN]
    cal = fit_window_calibration(samples)
    route = long_route()
    hand = predict(route, not_started(8), T0, EtaParams(), Pace())
    calibrated = predict(route, not_started(8), T0, EtaParams(calibration=cal), Pace())
    assert [e.eta_s for e in calibrated] == [e.eta_s for e in hand]
    for h, c in zip(hand, calibrated, strict=True):
        horizon_s = c.eta_s - NOW_S
        offsets = interval_s(cal, horizon_s)
        if offsets is None:
            assert (c.earliest_s, c.latest_s) == (h.earliest_s, h.latest_s)
        else:
            floor_s = max(min(offsets[0], 0.0), NOW_S - c.eta_s)
            assert c.earliest_s - c.eta_s == pytest.approx(floor_s)
            assert c.latest_s - c.eta_s == pytest.approx(offsets[1])
    assert sum(cal.fitted(e.eta_s - NOW_S) for e in hand) == 1
    cold = fit_window_calibration([])
    assert predict(route, not_started(8), T0, EtaParams(calibration=cold), Pace()) == hand


def test_one_sided_residuals_still_hold_the_eta() -> None:
    """Every arrival 5-15 minutes after its ETA: the window reaches back to the ETA."""
    rng = np.random.default_rng(3)
    samples = list(zip(rng.uniform(0, 4 * HOUR, 5000), rng.uniform(300, 900, 5000), strict=True))
    params = EtaParams(calibration=fit_window_calibration(samples))
    for e in predict(long_route(), not_started(8), T0, params, Pace()):
        assert e.earliest_s == e.eta_s
        assert e.latest_s > e.eta_s + 300.0


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_calibrated_windows_keep_the_cores_promises(
    case: tuple[EtaRoute, RouteProgress, datetime],
) -> None:
    route, progress, now = case
    params = EtaParams(calibration=CALIBRATED)
    for e in predict(route, progress, now, params):
        if not e.arrived:
            assert e.earliest_s >= now.timestamp()
        assert e.earliest_s <= e.eta_s <= e.latest_s


# --- Live: the first window told ----------------------------------------------------------


def test_recompute_tells_a_capped_first_window_then_keeps_it() -> None:
    route = long_route()
    live = recompute(route, not_started(8), {}, T0, EtaParams(), DelayParams())
    assert max(e.latest_s - e.earliest_s for e in live.etas) > HOUR  # the cap has work to do
    firsts = [e for e in live.events if isinstance(e, WindowTold)]
    assert len(firsts) == 8
    for event in firsts:
        assert (event.latest - event.earliest).total_seconds() <= HOUR + 1e-5
        assert event.earliest <= event.eta <= event.latest
        told = live.told[event.order_id]
        assert told.latest_s - told.earliest_s <= HOUR + 1e-5
    uncapped = recompute(
        route, not_started(8), {}, T0, EtaParams(first_window_cap_s=None), DelayParams()
    )
    widths = [(e.latest - e.earliest).total_seconds() for e in uncapped.events]
    assert widths == pytest.approx([e.latest_s - e.earliest_s for e in live.etas])
    # Told once: the next recompute compares with the capped window rather than re-telling.
    again = recompute(route, not_started(8), live.told, T0, EtaParams(), DelayParams())
    assert again.told == live.told
    assert again.events == ()


def test_plan_windows_are_capped_first_windows() -> None:
    route = long_route()
    planned = {
        "start": T0.isoformat(),
        "stops": [
            {
                "order_id": s.order_id,
                "duration_from_previous_s": s.travel_s,
                "distance_from_previous_m": 1000.0,
                "service_start": T0.isoformat(),
                "departure": (T0 + timedelta(seconds=s.service_s)).isoformat(),
            }
            for s in route.stops
        ],
    }
    params = EtaParams(calibration=CALIBRATED)
    windows = plan_windows("v1", "p1", planned, {}, T0, params)
    assert len(windows) == 8
    assert all(w.latest_s - w.earliest_s <= HOUR + 1e-5 for w in windows)
    assert all(NOW_S <= w.earliest_s <= w.eta_s <= w.latest_s for w in windows)
    wide = plan_windows("v1", "p1", planned, {}, T0, replace(params, first_window_cap_s=None))
    assert max(w.latest_s - w.earliest_s for w in wide) > HOUR

"""Scoring a replay (``lastmile eval-eta``, ``bench.eta_accuracy``): the ETAs' errors by
horizon against the two baselines, and the promise as the customer lives it
(:mod:`eta.promise`)."""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from eta.promise import HORIZON_LABELS, WindowSample, horizon_bucket, promise_figures
from evaluation.replay import Prediction, ReplayResult


def _median(values: list[float]) -> float | None:
    return float(np.median(values)) if values else None


def score(result: ReplayResult) -> dict[str, Any]:
    """The figures the accuracy goals are stated in (see the module doc of bench.eta_accuracy)."""
    by_horizon: dict[str, list[Prediction]] = defaultdict(list)
    for p in result.predictions:
        bucket = horizon_bucket(p.horizon_s)
        if bucket is not None:
            by_horizon[bucket].append(p)
    labels = HORIZON_LABELS

    def abs_errors(
        ps: list[Prediction], which: Callable[[Prediction], datetime] = lambda p: p.eta
    ) -> list[float]:
        return [abs((which(p) - p.actual).total_seconds()) for p in ps]

    def rounded(x: float | None) -> float | None:
        return round(x, 1) if x is not None else None

    def widths_min(ps: list[Prediction]) -> list[float]:
        return [(p.latest - p.earliest).total_seconds() / 60.0 for p in ps]

    mae = {h: rounded(_mean(abs_errors(by_horizon[h]))) for h in labels}
    p90 = {h: rounded(_quantile(abs_errors(by_horizon[h]), 0.9)) for h in labels}
    baseline = {
        h: rounded(_mean(abs_errors(by_horizon[h], lambda p: p.static_eta))) for h in labels
    }
    plus_delay = {
        h: rounded(_mean(abs_errors(by_horizon[h], lambda p: p.static_plus_delay_eta)))
        for h in labels
    }
    ratio_plus_delay = {
        h: round(m / b, 3) if (m := mae[h]) is not None and (b := plus_delay[h]) else None
        for h in labels
    }
    delayed = notified = both = 0
    messages: list[float] = []
    actual_by_stop = {(p.vehicle, p.stop_id): p.actual for p in result.predictions}
    for key, notices in result.notices.items():
        arrival = actual_by_stop.get(key)
        if arrival is None or notices.first_latest is None:
            continue
        truly = arrival > notices.first_latest
        told = notices.late_notices_before_arrival > 0
        delayed += truly
        notified += told
        both += truly and told
        messages.append(float(notices.messages))
    promise = promise_figures(
        [n.promise(stop_id) for (_, stop_id), n in result.notices.items()],
        window_samples(result.predictions),
    )
    return {
        "mae_s": mae,
        "p90_abs_s": p90,
        "baseline_mae_s": baseline,
        "static_plus_delay_mae_s": plus_delay,
        "ratio_to_static_plus_delay": ratio_plus_delay,
        "window_width_median_min": rounded(_median(widths_min(result.predictions))),
        "notify_precision": round(both / notified, 3) if notified else None,
        "notify_recall": round(both / delayed, 3) if delayed else None,
        "messages_per_stop_median": _median(messages),
        "stops": len(messages),
        "stops_delayed": delayed,
        "stops_notified": notified,
        "predictions": len(result.predictions),
        "fixes": result.fixes,
        "fixes_applied": result.fixes_applied,
        # The promise as the customer lives it (eta/promise.py, docs/accuracy.md): coverage,
        # coverage_by_horizon, window widths, first window, material delays, notices.
        **promise,
    }


def window_samples(predictions: Sequence[Prediction]) -> list[WindowSample]:
    """The live windows sampled once a minute, beside the arrival each was about."""
    return [
        WindowSample(
            p.at.timestamp(), p.earliest.timestamp(), p.latest.timestamp(), p.actual.timestamp()
        )
        for p in predictions
    ]


def residual_samples(predictions: Sequence[Prediction]) -> list[tuple[float, float]]:
    """(predicted horizon s, residual s) per prediction, residual = actual - ETA: what the
    window calibration (eta/calibration.py) is fitted on."""
    return [
        ((p.eta - p.at).total_seconds(), (p.actual - p.eta).total_seconds()) for p in predictions
    ]


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _quantile(values: list[float], q: float) -> float | None:
    return float(np.quantile(values, q)) if values else None


def write_predictions(result: ReplayResult, path: Path) -> None:
    def iso(t: datetime) -> str:
        return t.isoformat()

    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "vehicle",
                "stop_id",
                "predicted_at",
                "horizon_s",
                "eta",
                "earliest",
                "latest",
                "static_eta",
                "actual_arrival",
                "error_s",
                "static_error_s",
                "static_plus_delay_eta",
                "static_plus_delay_error_s",
            ]
        )
        for p in result.predictions:
            w.writerow(
                [
                    p.vehicle,
                    p.stop_id,
                    iso(p.at),
                    round(p.horizon_s),
                    iso(p.eta),
                    iso(p.earliest),
                    iso(p.latest),
                    iso(p.static_eta),
                    iso(p.actual),
                    round((p.eta - p.actual).total_seconds()),
                    round((p.static_eta - p.actual).total_seconds()),
                    iso(p.static_plus_delay_eta),
                    round((p.static_plus_delay_eta - p.actual).total_seconds()),
                ]
            )

"""ETA accuracy against traffic-simulation ground truth: every kept scenario under each noise
profile.

    python -m bench.eta_accuracy [--scenarios bench/scenarios] [--seed 0] [--no-record]

Each scenario is replayed through the live pipeline (decoder -> progress -> ETA -> delay
events) with the fleet's prior fitted on the OTHER scenarios (leave-one-out: a day never
learns from its own ground truth). Writes a table into BENCHMARKS.md (between the
``eta-accuracy`` markers) and plots to docs/img/; the last line printed is one JSON object
with the figures per noise profile.

Two baselines: "static", the plan's own arrival, never updated (``baseline_mae_s``); and
"plan + delay", the plan's arrivals shifted by the van's current delay, as a dispatcher would
estimate by hand (``static_plus_delay_mae_s``, and ``ratio_to_static_plus_delay`` = our MAE
over it). The P10-P90 window's median width is reported beside its coverage
(``window_width_min_by_horizon``): a wide enough window covers anything.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from eta.params import EtaParams
from evaluation.noise import PROFILES
from evaluation.replay import (
    HORIZONS_MIN,
    ReplayResult,
    history_prior,
    horizon_label,
    merge,
    replay,
    score,
)
from evaluation.scenario import Scenario, find_osm, load_scenario
from routing.network import load_road_graph
from routing.road_graph import RoadGraph

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- eta-accuracy:start -->", "<!-- eta-accuracy:end -->"


def run_profile(
    scenarios: list[Scenario], graph: RoadGraph, profile: str, seed: int
) -> tuple[ReplayResult, dict[str, dict[str, Any]]]:
    results: dict[str, ReplayResult] = {}
    per_scenario: dict[str, dict[str, Any]] = {}
    for k, scenario in enumerate(scenarios):
        others = [s for s in scenarios if s.name != scenario.name]
        params = EtaParams(prior=history_prior(others, graph))
        result = replay(scenario, graph, PROFILES[profile], seed=seed + k, params=params)
        results[scenario.name] = result
        per_scenario[scenario.name] = score(result)
    return merge(results), per_scenario


def _cell(x: object) -> str:
    return "n/a" if x is None else f"{x:g}" if isinstance(x, float) else str(x)


def table(figures: dict[str, dict[str, Any]]) -> str:
    labels = [horizon_label(lo, hi) for lo, hi in HORIZONS_MIN]
    head = (
        "| noise | "
        + " | ".join(f"MAE {h} min (static; plan + delay)" for h in labels)
        + " | ours / plan + delay 30-60 | P90 abs 30-60 | coverage (30-60) "
        "| window width, median (30-60) | notify precision | notify recall "
        "| messages/stop (median, mean) | stops (delayed) |"
    )
    rows = [head, "|" + " --- |" * (head.count("|") - 1)]
    for profile, f in figures.items():
        mae = " | ".join(
            f"{_cell(f['mae_s'][h])} s ({_cell(f['baseline_mae_s'][h])}; "
            f"{_cell(f['static_plus_delay_mae_s'][h])})"
            for h in labels
        )
        rows.append(
            f"| {profile} | {mae} | {_cell(f['ratio_to_static_plus_delay']['30-60'])} "
            f"| {_cell(f['p90_abs_s']['30-60'])} s "
            f"| {_cell(f['coverage'])} ({_cell(f['coverage_by_horizon']['30-60'])}) "
            f"| {_cell(f['window_width_median_min'])} min "
            f"({_cell(f['window_width_min_by_horizon']['30-60'])} min) "
            f"| {_cell(f['notify_precision'])} | {_cell(f['notify_recall'])} "
            f"| {_cell(f['messages_per_stop'])}, {_cell(f['messages_per_stop_mean'])} "
            f"| {f['stops']} ({f['stops_delayed']}) |"
        )
    return "\n".join(rows)


def plot(merged: dict[str, ReplayResult], path: Path) -> None:
    """Absolute error by horizon (5-minute bins): live ETA per noise profile vs the static
    plan and the plan + current delay, with the window's coverage below."""
    fig, (ax, cov) = plt.subplots(2, 1, figsize=(8, 6.5), sharex=True, height_ratios=(3, 1))
    bins = np.arange(0, 125, 5)
    for name, result in merged.items():
        h = np.array([p.horizon_s / 60 for p in result.predictions])
        err = np.array([abs((p.eta - p.actual).total_seconds()) for p in result.predictions])
        inside = np.array([p.earliest <= p.actual <= p.latest for p in result.predictions])
        which = np.digitize(h, bins)
        full = [i + 1 for i in range(len(bins) - 1) if (which == i + 1).sum() >= 20]
        centres = [float(bins[i - 1]) + 2.5 for i in full]
        ax.plot(
            centres,
            [err[which == i].mean() for i in full],
            marker="o", ms=3, label=f"live ETA, {name} GPS",
        )  # fmt: skip
        cov.plot(
            centres,
            [inside[which == i].mean() for i in full],
            marker="o", ms=3, label=name,
        )  # fmt: skip
        if name == "typical":
            static = np.array(
                [abs((p.static_eta - p.actual).total_seconds()) for p in result.predictions]
            )
            ax.plot(
                centres,
                [static[which == i].mean() for i in full],
                color="grey", ls="--", label="static plan",
            )  # fmt: skip
            shifted = np.array(
                [
                    abs((p.static_plus_delay_eta - p.actual).total_seconds())
                    for p in result.predictions
                ]
            )
            ax.plot(
                centres,
                [shifted[which == i].mean() for i in full],
                color="black", ls=":", label="plan + current delay",
            )  # fmt: skip
    ax.set_ylabel("mean absolute error (s)")
    ax.set_title("ETA error by horizon, SUMO ground truth (Monaco)")
    ax.legend()
    ax.grid(alpha=0.3)
    cov.axhspan(0.75, 0.85, color="green", alpha=0.1)
    cov.set_ylim(0, 1)
    cov.set_ylabel("P10-P90 coverage")
    cov.set_xlabel("minutes until the actual arrival")
    cov.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def record(markdown: str, path: Path) -> None:
    text = path.read_text()
    block = f"{START}\n{markdown}\n{END}"
    if START in text:
        text = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    else:
        text += f"\n{block}\n"
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", type=Path, default=ROOT / "bench" / "scenarios")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-record", action="store_true", help="leave BENCHMARKS.md alone")
    args = parser.parse_args(argv)
    folders = sorted(p for p in args.scenarios.iterdir() if (p / "plan.json").is_file())
    scenarios = [load_scenario(p) for p in folders]
    graph = load_road_graph(find_osm(scenarios[0], None, ROOT))[0]
    started = time.perf_counter()
    figures: dict[str, dict[str, Any]] = {}
    merged: dict[str, ReplayResult] = {}
    for profile in PROFILES:
        merged[profile], per_scenario = run_profile(scenarios, graph, profile, args.seed)
        figures[profile] = score(merged[profile])
        for name, f in per_scenario.items():
            print(f"{profile:8s} {name:20s} MAE 30-60 {f['mae_s']['30-60']} s "
                  f"(static {f['baseline_mae_s']['30-60']}, "
                  f"plan + delay {f['static_plus_delay_mae_s']['30-60']}), "
                  f"coverage {f['coverage']}")  # fmt: skip
    elapsed = time.perf_counter() - started
    markdown = table(figures)
    print(markdown)
    if not args.no_record:
        plot(merged, ROOT / "docs" / "img" / "eta_error_by_horizon.png")
        record(
            f"{len(scenarios)} scenarios, {sum(len(s.vehicles) for s in scenarios)} vans, "
            f"{sum(len(v.stops) for s in scenarios for v in s.vehicles)} stops; "
            f"`python -m bench.eta_accuracy` (seed {args.seed}), {elapsed:.0f} s.\n\n"
            f"{markdown}\n\n![ETA error by horizon](docs/img/eta_error_by_horizon.png)",
            ROOT / "BENCHMARKS.md",
        )
    print(json.dumps({"seconds": round(elapsed, 1), **figures}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

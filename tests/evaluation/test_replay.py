"""Replaying ground truth through the live pipeline: a van slower than planned is learned, the
scores have the documented shape, and `lastmile eval-eta` writes what it says."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from evaluation.noise import PROFILES
from evaluation.replay import merge, replay
from evaluation.scenario import load_scenario
from evaluation.scores import score
from lastmile.cli import app
from routing.road_graph import RoadGraph
from routing.snapping import Snapper
from tests.conftest import shared_osm
from tests.eta.synthetic import write_scenario

KEYS = {
    "mae_s",
    "p90_abs_s",
    "baseline_mae_s",
    "coverage",
    "notify_precision",
    "notify_recall",
    "messages_per_stop",
    "first_window_hit",
    "first_window_width_min",
    "material_delays",
    "material_delay_recall",
    "lead_time_median_min",
    "late_notice_precision",
    "coverage_by_horizon",
    "static_plus_delay_mae_s",
    "ratio_to_static_plus_delay",
    "window_width_min_by_horizon",
    "window_width_median_min",
}
KEPT = Path(__file__).resolve().parents[2] / "bench" / "scenarios"


@pytest.fixture(scope="module")
def slow_day(
    tmp_path_factory: pytest.TempPathFactory, monaco: RoadGraph, monaco_snapper: Snapper
) -> Path:
    return write_scenario(
        tmp_path_factory.mktemp("slow") / "slow-day",
        monaco,
        monaco_snapper,
        stops=8,
        slowdown=1.4,
        service_overrun=1.5,
        jam=(3, 600.0),
    )


def test_a_slow_van_is_learned(slow_day: Path, monaco: RoadGraph) -> None:
    """40% slower drives, 50% longer stops and a 10-minute jam: the live ETAs at 10-30
    minutes are far closer than the static plan's, and ETAs never precede the prediction."""
    result = replay(load_scenario(slow_day), monaco, PROFILES["none"], seed=1)
    figures = score(result)
    assert figures.keys() >= KEYS
    assert figures["mae_s"]["10-30"] < 0.5 * figures["baseline_mae_s"]["10-30"]
    assert figures["mae_s"]["0-10"] < 120
    assert all(p.eta >= p.at for p in result.predictions)
    assert all(p.earliest <= p.eta <= p.latest for p in result.predictions)
    # The van ends late on every stop after the jam: customers were told.
    assert figures["stops_notified"] >= 1


def test_plan_plus_delay_shifts_a_late_vans_predictions(slow_day: Path, monaco: RoadGraph) -> None:
    """The "plan + current delay" baseline moves the plan's arrivals by the van's delay at
    the time of each prediction: never earlier for a van late all day, by one amount for
    every stop ahead (unless that would be in the past), growing through the day, and much
    closer than the static plan."""
    result = replay(load_scenario(slow_day), monaco, PROFILES["none"], seed=1)
    shifts: dict[datetime, set[float]] = defaultdict(set)
    for p in result.predictions:
        assert p.static_plus_delay_eta >= p.at
        shift = p.static_plus_delay_eta - p.static_eta
        assert shift >= timedelta(0)
        if p.static_plus_delay_eta > p.at:
            shifts[p.at].add(round(shift.total_seconds(), 3))
    assert shifts
    assert all(len(amounts) == 1 for amounts in shifts.values())
    by_time = [amounts.pop() for _, amounts in sorted(shifts.items())]
    # 40% slower drives, 50% longer stops and a 10-minute jam: over half an hour by the end.
    assert by_time[-1] > 1800 > 600 > by_time[0]
    figures: dict[str, Any] = score(result)
    for h in ("0-10", "10-30", "30-60"):
        assert figures["static_plus_delay_mae_s"][h] < 0.5 * figures["baseline_mae_s"][h]
        ratio = figures["mae_s"][h] / figures["static_plus_delay_mae_s"][h]
        assert figures["ratio_to_static_plus_delay"][h] == pytest.approx(ratio, abs=0.002)
    widths = figures["window_width_min_by_horizon"]
    assert 0 < widths["0-10"] < widths["10-30"] < widths["30-60"]


def test_noise_costs_little_at_short_horizons(slow_day: Path, monaco: RoadGraph) -> None:
    """Typical GPS noise (10 m, every 5 s, 2% lost) barely moves the short-horizon error."""
    scenario = load_scenario(slow_day)
    clean = score(replay(scenario, monaco, PROFILES["none"], seed=1))
    noisy = score(replay(scenario, monaco, PROFILES["typical"], seed=1))
    assert noisy["mae_s"]["0-10"] < clean["mae_s"]["0-10"] + 60


def test_merged_scenarios_keep_their_stops_apart(slow_day: Path, monaco: RoadGraph) -> None:
    """Two replays merged count each stop once per scenario (vehicle ids prefixed)."""
    result = replay(load_scenario(slow_day), monaco, PROFILES["none"], seed=1)
    merged = merge({"a": result, "b": result})
    assert len(merged.predictions) == 2 * len(result.predictions)
    assert score(merged)["stops"] == 2 * score(result)["stops"]


def test_eval_eta_command(slow_day: Path, tmp_path: Path) -> None:
    """`lastmile eval-eta` prints one JSON object last and writes predictions.csv."""
    osm = shared_osm("monaco.osm.pbf")
    out = runner_invoke(
        ["eval-eta", str(slow_day), "--osm", str(osm), "--noise", "typical", "--out", str(tmp_path)]
    )
    figures = json.loads(out.strip().splitlines()[-1])
    assert figures.keys() >= KEYS
    header = (tmp_path / "predictions.csv").read_text().splitlines()[0]
    assert header.startswith("vehicle,stop_id,predicted_at,horizon_s,eta,earliest,latest")
    assert header.endswith("static_plus_delay_eta,static_plus_delay_error_s")


def test_eval_eta_refuses_unknown_noise(slow_day: Path) -> None:
    """A noise profile that does not exist is named in the error, exit code 2."""
    result = CliRunner().invoke(app, ["eval-eta", str(slow_day), "--noise", "stormy"])
    assert result.exit_code == 2
    assert "stormy" in result.output


@pytest.mark.slow
def test_a_kept_scenario_beats_the_static_plan(monaco: RoadGraph) -> None:
    """A kept SUMO day under typical noise: the live ETA beats the static plan at 10-30 min
    and the window covers most arrivals."""
    shared_osm("monaco.osm.pbf")
    figures = score(replay(load_scenario(KEPT / "monaco-incident-1"), monaco, PROFILES["typical"]))
    assert figures["mae_s"]["10-30"] < figures["baseline_mae_s"]["10-30"]
    assert 0.5 < figures["coverage"] < 0.95


def runner_invoke(args: list[str]) -> str:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.output

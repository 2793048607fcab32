"""What a day learns from the days before it (evaluation/learning.py): only earlier days of
the same fleet, the city's time zone, service per customer, and the window's calibration;
and `lastmile eval-eta --history` uses all of it."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from evaluation.learning import (
    history_before,
    learn,
    learn_all,
    scenario_timezone,
    service_observations,
    stop_key,
)
from evaluation.noise import PROFILES
from evaluation.scenario import load_scenario
from lastmile.cli import app
from routing.road_graph import RoadGraph
from tests.conftest import shared_osm

KEPT = Path(__file__).resolve().parents[2] / "bench" / "scenarios"


def test_a_day_learns_only_from_earlier_days_of_its_own_fleet() -> None:
    days = [
        load_scenario(KEPT / name)
        for name in ("monaco-week-d1", "monaco-week-d2", "monaco-week-d3", "columbus-week-d1")
    ]
    by_name = {d.name: d for d in days}
    assert [d.name for d in history_before(by_name["monaco-week-d3"], days)] == [
        "monaco-week-d1",
        "monaco-week-d2",
    ]
    assert history_before(by_name["monaco-week-d1"], days) == []
    assert history_before(by_name["columbus-week-d1"], days) == []
    assert scenario_timezone(by_name["columbus-week-d1"]) == "America/New_York"


def test_service_is_learned_per_customer(monaco: RoadGraph) -> None:
    """Customers seen on d1-d2 have their own factor on d3; the fleet prior's hours are in
    Monaco's zone."""
    history = [load_scenario(KEPT / f"monaco-week-d{k}") for k in (1, 2)]
    learned = learn(history, monaco, "Europe/Monaco")
    assert learned.prior.timezone == "Europe/Monaco"
    assert learned.service is not None
    seen = {o.key for day in history for o in service_observations(day)}
    day3 = load_scenario(KEPT / "monaco-week-d3")
    keys = [stop_key(s) for v in day3.vehicles for s in v.stops]
    assert keys[0].startswith("customer:")
    returning = [k for k in keys if k in seen]
    assert len(returning) >= len(keys) // 2
    assert all(learned.service.knows(k) for k in returning)
    assert any(abs(learned.service.address_factor(k) - 1.0) > 0.05 for k in returning)
    service_of = learned.service_of()
    assert service_of is not None
    stop = day3.vehicles[0].stops[0]
    assert service_of(stop) == stop.service_s * learned.service.address_factor(stop_key(stop))


def test_no_history_is_a_cold_start(monaco: RoadGraph) -> None:
    learned = learn_all([], monaco, "UTC", PROFILES["typical"])
    assert learned.service is None
    assert learned.calibration is None
    assert learned.service_of() is None


def test_eval_eta_with_history_calibrates_and_prints_the_promise(tmp_path: Path) -> None:
    osm = shared_osm("monaco.osm.pbf")
    result = CliRunner().invoke(
        app,
        [
            "eval-eta",
            str(KEPT / "monaco-week-d3"),
            "--osm",
            str(osm),
            "--history",
            str(KEPT / "monaco-week-d1"),
            "--history",
            str(KEPT / "monaco-week-d2"),
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "calibrated window: True" in result.output
    figures = json.loads(result.output.strip().splitlines()[-1])
    for key in (
        "first_window_hit",
        "first_window_width_min",
        "material_delays",
        "material_delay_recall",
        "lead_time_median_min",
        "late_notice_precision",
        "coverage_by_horizon",
        "coverage",
        "messages_per_stop",
    ):
        assert key in figures
    assert figures["stops_scored"] == 36
    # The first window told is capped at an hour.
    assert figures["first_window_width_min"] <= 60

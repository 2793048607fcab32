"""Fitting the fleet prior, degrading GPS, and reading scenario folders (with errors that name
the file and field)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from domain.errors import ValidationError
from eta.history import MIN_LEGS, fit_prior
from eta.params import FleetPrior
from evaluation.noise import PROFILES, degrade
from evaluation.scenario import Gps, find_osm, load_scenario


def test_fit_recovers_overhead_and_factor() -> None:
    """Legs generated as 40 s + 0.8 x planned give back about those two numbers."""
    rng = np.random.default_rng(1)
    planned = rng.uniform(30, 600, 200)
    legs = [(p, 40 + 0.8 * p + rng.normal(0, 5)) for p in planned]
    prior = fit_prior(legs, [(120.0, 180.0)] * 10)
    assert abs(prior.leg_overhead_s - 40) < 5
    assert abs(prior.travel_factor - 0.8) < 0.03
    assert prior.service_factor == 1.5


def test_too_little_history_keeps_the_neutral_prior() -> None:
    """Fewer legs than the minimum: the plan's own times are kept."""
    assert fit_prior([(100.0, 200.0)] * (MIN_LEGS - 1), []) == FleetPrior()


def test_outliers_are_clipped_before_fitting() -> None:
    """One leg with a lunch in it cannot double the fleet's prior."""
    legs = [(200.0, 200.0)] * 40 + [(200.0, 20000.0)]
    assert fit_prior(legs, []).travel_factor < 1.2


def _gps(n: int) -> Gps:
    t = np.arange(n, dtype=np.float64) + 1.7e9
    lat = np.full(n, 43.73)
    lon = np.linspace(7.41, 7.42, n)
    return Gps(t, lat, lon, np.full(n, 8.0), np.zeros(n))


def test_typical_noise_thins_and_perturbs() -> None:
    """Typical: a fix every 5 s, about 2% lost, errors of about 10 m."""
    clean = _gps(3600)
    noisy = degrade(clean, PROFILES["typical"], np.random.default_rng(0))
    assert 690 <= len(noisy.timestamp) <= 720
    assert set(np.diff(noisy.timestamp)) <= {5.0, 10.0, 15.0}
    index = (noisy.timestamp - clean.timestamp[0]).astype(int)
    error_m = np.hypot(
        (noisy.lat - clean.lat[index]) * 111_195,
        (noisy.lon - clean.lon[index]) * 111_195 * np.cos(np.radians(43.73)),
    )
    assert 7 < error_m.mean() < 13


def test_harsh_noise_has_gaps() -> None:
    """Harsh: fixes every 15 s with tunnel-like gaps of a minute or more."""
    noisy = degrade(_gps(4 * 3600), PROFILES["harsh"], np.random.default_rng(3))
    assert np.diff(noisy.timestamp).max() >= 60


def test_none_is_the_identity() -> None:
    """No noise: every fix, unchanged."""
    clean = _gps(100)
    same = degrade(clean, PROFILES["none"], np.random.default_rng(0))
    assert np.array_equal(same.lat, clean.lat)
    assert len(same.timestamp) == 100


def _write(folder: Path, plan: object, gps: str, stops: str) -> Path:
    folder.mkdir()
    (folder / "plan.json").write_text(json.dumps(plan))
    (folder / "gps.csv").write_text(gps)
    (folder / "stops.csv").write_text(stops)
    return folder


PLAN = {
    "osm": "monaco.osm.pbf",
    "vehicles": [
        {
            "id": "v1",
            "depot": {"lat": 43.73, "lon": 7.41},
            "shift_start": 1_700_000_000,
            "stops": [{"id": "a", "lat": 43.74, "lon": 7.42, "service_s": 60, "time_windows": []}],
        }
    ],
}
GPS = "vehicle,timestamp,lat,lon,speed,heading\nv1,1700000001,43.73,7.41,0,0\n"
STOPS = (
    "vehicle,stop_index,stop_id,actual_arrival,actual_departure,status,extra\n"
    "v1,0,a,1700000100,1700000160,delivered,x\n"
)


def test_a_scenario_folder_is_read(tmp_path: Path) -> None:
    """The documented format, with an extra column, loads."""
    scenario = load_scenario(_write(tmp_path / "s", PLAN, GPS, STOPS))
    assert scenario.vehicles[0].stops[0].service_s == 60
    assert scenario.actual[("v1", "a")].arrival == datetime.fromtimestamp(1_700_000_100, UTC)
    assert len(scenario.gps["v1"].timestamp) == 1


def test_bad_scenarios_name_file_and_field(tmp_path: Path) -> None:
    """Every problem is reported with where it is: a missing column, an unknown vehicle, a
    stop without coordinates."""
    plan = json.loads(json.dumps(PLAN))
    del plan["vehicles"][0]["stops"][0]["lat"]
    folder = _write(
        tmp_path / "bad",
        plan,
        "vehicle,timestamp,lat,lon,speed\nv9,1,2,3,4\n",
        STOPS,
    )
    with pytest.raises(ValidationError) as caught:
        load_scenario(folder)
    text = str(caught.value)
    assert "plan.json.vehicles[0].stops[0].lat" in text
    assert "gps.csv" in text
    assert "heading" in text


def test_missing_plan_is_an_error(tmp_path: Path) -> None:
    """A folder that is not a scenario says so."""
    with pytest.raises(ValidationError, match=r"plan\.json"):
        load_scenario(tmp_path)


def test_osm_is_found_in_the_folder_or_named_by_the_plan(tmp_path: Path) -> None:
    """--osm wins; then an OSM file in the folder; an unknown name is an error naming it."""
    folder = _write(tmp_path / "s", {**PLAN, "osm": "nowhere.osm.pbf"}, GPS, STOPS)
    scenario = load_scenario(folder)
    assert find_osm(scenario, Path("x.osm.pbf"), tmp_path) == Path("x.osm.pbf")
    with pytest.raises(ValidationError, match=r"nowhere\.osm\.pbf"):
        find_osm(scenario, None, tmp_path)
    (folder / "area.osm.pbf").write_bytes(b"")
    assert find_osm(scenario, None, tmp_path) == folder / "area.osm.pbf"


def test_time_of_day_profile() -> None:
    """Legs started in the 8 o'clock rush take 1.5x the others: that hour gets a factor well
    above the rest, hours without enough history stay at 1."""
    rng = np.random.default_rng(2)
    base = datetime(2026, 3, 10, tzinfo=UTC).timestamp()
    legs, starts = [], []
    for _ in range(400):
        hour = int(rng.choice([8, 12]))
        planned = float(rng.uniform(60, 600))
        legs.append((planned, planned * (1.5 if hour == 8 else 1.0)))
        starts.append(base + hour * 3600 + float(rng.uniform(0, 3500)))
    prior = fit_prior(legs, [], departures_s=starts)
    assert len(prior.hour_factors) == 24
    assert prior.hour_factors[8] > 1.15 * prior.hour_factors[12]
    assert prior.hour_factors[3] == 1.0
    eight = prior.hour_factor(base + 8 * 3600 + 60)
    noon = prior.hour_factor(base + 12 * 3600 + 60)
    assert eight > noon

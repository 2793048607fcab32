"""The kept SUMO ground-truth scenarios (bench/scenarios/<name>/) are well-formed and coherent."""

from __future__ import annotations

import csv
import itertools
import json
from collections import defaultdict
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from domain.geo import LatLon, haversine_m

SCENARIO_ROOT = Path(__file__).resolve().parents[2] / "bench" / "scenarios"
GPS_HEADER = ["vehicle", "timestamp", "lat", "lon", "speed", "heading"]
STOPS_HEADER = ["vehicle", "stop_index", "stop_id", "actual_arrival", "actual_departure", "status"]
#: A van at its stop when it halts is within this of the stop's position.
NEAR_STOP_M = 60.0
#: No car moves faster; a faster step between fixes is a teleport or a glitch.
MAX_SPEED_MPS = 60.0
#: The whole set is test data in the repository: keep it small.
MAX_SET_BYTES = 20_000_000
#: One scenario folder stays about a megabyte (Columbus's longer days: a megabyte and a half).
MAX_FOLDER_BYTES = {"monaco.osm.pbf": 1_100_000, "columbus.osm.pbf": 1_600_000}
#: Where each extract's stops and disruptions lie: (min lat, max lat, min lon, max lon).
BOUNDS = {
    "monaco.osm.pbf": (43.70, 43.78, 7.34, 7.50),
    "columbus.osm.pbf": (39.94, 40.03, -83.06, -82.94),
}
TIMEZONES = {"monaco.osm.pbf": "Europe/Monaco", "columbus.osm.pbf": "America/New_York"}
SPLIT = SCENARIO_ROOT / "split.json"
#: What every disruption record in an incident scenario's meta carries.
DISRUPTION_KEYS = {"kind", "van", "start", "end", "lat", "lon", "delay_s"}


@dataclass(frozen=True, slots=True)
class Fix:
    timestamp: int
    lat: float
    lon: float
    speed_mps: float
    heading_deg: int


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    plan: dict[str, Any]
    gps_header: list[str]
    fixes: dict[str, list[Fix]]
    stops_header: list[str]
    stops: list[dict[str, str]]


def scenario_folders() -> list[Path]:
    return sorted(p.parent for p in SCENARIO_ROOT.glob("*/plan.json"))


@cache
def load(folder: Path) -> Scenario:
    plan = json.loads((folder / "plan.json").read_text(encoding="utf-8"))
    with (folder / "gps.csv").open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        gps_header = next(reader)
        fixes: dict[str, list[Fix]] = defaultdict(list)
        for row in reader:
            fixes[row[0]].append(
                Fix(int(row[1]), float(row[2]), float(row[3]), float(row[4]), int(row[5]))
            )
    with (folder / "stops.csv").open(encoding="utf-8", newline="") as handle:
        stops_header = next(csv.reader(handle))
        handle.seek(0)
        stops = list(csv.DictReader(handle))
    return Scenario(folder.name, plan, gps_header, dict(fixes), stops_header, stops)


def _gps_lines(folder: Path) -> list[str]:
    return (folder / "gps.csv").read_text(encoding="utf-8").splitlines()[1:]


def _at(scenario: Scenario, vehicle: str, timestamp: int) -> Fix | None:
    return next((f for f in scenario.fixes[vehicle] if f.timestamp == timestamp), None)


def _in_bounds(osm: str, lat: float, lon: float) -> bool:
    min_lat, max_lat, min_lon, max_lon = BOUNDS[osm]
    return min_lat <= lat <= max_lat and min_lon <= lon <= max_lon


FOLDERS = scenario_folders()
IDS = [p.name for p in FOLDERS]
each = pytest.mark.parametrize("folder", FOLDERS, ids=IDS)
INCIDENTS = [p for p in FOLDERS if "disruptions" in load(p).plan["meta"]]
each_incident = pytest.mark.parametrize("folder", INCIDENTS, ids=[p.name for p in INCIDENTS])
WEEK_DAYS = [p for p in FOLDERS if "-week-d" in p.name]
each_week_day = pytest.mark.parametrize("folder", WEEK_DAYS, ids=[p.name for p in WEEK_DAYS])


def test_a_set_of_scenarios_is_kept_and_compact() -> None:
    """The eleven first Monaco days (four with incidents), a Monaco week and a Columbus week,
    together under twenty megabytes, each folder about a megabyte."""
    assert 20 <= len(FOLDERS) <= 24
    assert len(INCIDENTS) >= 7
    assert len(WEEK_DAYS) >= 11
    size = sum(f.stat().st_size for folder in FOLDERS for f in folder.iterdir())
    assert size <= MAX_SET_BYTES
    for folder in FOLDERS:
        limit = MAX_FOLDER_BYTES[load(folder).plan["osm"]]
        assert sum(f.stat().st_size for f in folder.iterdir()) <= limit


@each
def test_folder_holds_exactly_the_three_files(folder: Path) -> None:
    """Each scenario folder has plan.json, gps.csv and stops.csv and nothing else."""
    assert sorted(p.name for p in folder.iterdir()) == ["gps.csv", "plan.json", "stops.csv"]


@each
def test_plan_json_has_the_documented_shape(folder: Path) -> None:
    """plan.json names the extract, its vans have a depot, a shift start and 10-20 stops."""
    plan = load(folder).plan
    assert plan["osm"] in BOUNDS
    assert {"seed", "congestion", "background_vehicles", "sumo_version"} <= set(plan["meta"])
    assert plan["meta"]["timezone"] == TIMEZONES[plan["osm"]]
    assert 2 <= len(plan["vehicles"]) <= 4
    stop_ids = [s["id"] for v in plan["vehicles"] for s in v["stops"]]
    assert len(stop_ids) == len(set(stop_ids))
    for vehicle in plan["vehicles"]:
        assert set(vehicle) >= {"id", "depot", "shift_start", "stops"}
        assert set(vehicle["depot"]) == {"lat", "lon"}
        assert isinstance(vehicle["shift_start"], int)
        assert 10 <= len(vehicle["stops"]) <= 20
        for stop in vehicle["stops"]:
            assert set(stop) - {"customer_id"} == {"id", "lat", "lon", "service_s", "time_windows"}
            assert _in_bounds(plan["osm"], stop["lat"], stop["lon"])
            assert stop["service_s"] > 0
            for start, end in stop["time_windows"]:
                assert vehicle["shift_start"] - 4 * 3600 <= start < end


@each
def test_csv_headers_are_the_documented_ones(folder: Path) -> None:
    """gps.csv has exactly its six columns; stops.csv starts with its six required ones."""
    scenario = load(folder)
    assert scenario.gps_header == GPS_HEADER
    assert scenario.stops_header[: len(STOPS_HEADER)] == STOPS_HEADER


@each
def test_gps_values_are_rounded_and_in_range(folder: Path) -> None:
    """Lat/lon carry 6 decimals, speed 1, heading is an integer compass bearing 0-359."""
    for line in _gps_lines(folder)[:2000]:
        _, timestamp, lat, lon, speed, heading = line.split(",")
        assert timestamp.isdigit()
        assert len(lat.split(".")[1]) == 6
        assert len(lon.split(".")[1]) == 6
        assert len(speed.split(".")[1]) == 1
        assert heading.isdigit()
    for fixes in load(folder).fixes.values():
        assert all(0 <= f.heading_deg <= 359 and 0 <= f.speed_mps < MAX_SPEED_MPS for f in fixes)


@each
def test_gps_has_only_the_plans_vans_at_one_hertz(folder: Path) -> None:
    """Fixes are from the planned vans only, timestamps strictly increase, one per second."""
    scenario = load(folder)
    assert set(scenario.fixes) == {v["id"] for v in scenario.plan["vehicles"]}
    for vehicle in scenario.plan["vehicles"]:
        stamps = [f.timestamp for f in scenario.fixes[vehicle["id"]]]
        assert all(b - a == 1 for a, b in itertools.pairwise(stamps))
        assert stamps[0] >= vehicle["shift_start"]


@each
def test_gps_never_jumps_faster_than_a_car(folder: Path) -> None:
    """No two consecutive fixes of a van imply more than 60 m/s."""
    for fixes in load(folder).fixes.values():
        for a, b in itertools.pairwise(fixes):
            distance_m = haversine_m(LatLon(a.lat, a.lon), LatLon(b.lat, b.lon))
            assert distance_m / (b.timestamp - a.timestamp) <= MAX_SPEED_MPS


@each
def test_vans_start_and_end_at_their_depot(folder: Path) -> None:
    """Each van's first and last fixes are at its depot."""
    scenario = load(folder)
    for vehicle in scenario.plan["vehicles"]:
        depot = LatLon(vehicle["depot"]["lat"], vehicle["depot"]["lon"])
        fixes = scenario.fixes[vehicle["id"]]
        for fix in (fixes[0], fixes[-1]):
            assert haversine_m(LatLon(fix.lat, fix.lon), depot) <= NEAR_STOP_M


@each
def test_stops_csv_serves_every_planned_stop_in_order(folder: Path) -> None:
    """stops.csv lists each van's planned stops, all delivered, in plan.json's order."""
    scenario = load(folder)
    served: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for row in scenario.stops:
        assert row["status"] == "delivered"
        served[row["vehicle"]].append((int(row["stop_index"]), row["stop_id"]))
    assert set(served) == {v["id"] for v in scenario.plan["vehicles"]}
    for vehicle in scenario.plan["vehicles"]:
        planned = [(k, s["id"]) for k, s in enumerate(vehicle["stops"])]
        assert served[vehicle["id"]] == planned


@each
def test_stop_times_are_ordered_and_inside_the_gps_track(folder: Path) -> None:
    """Each arrival precedes its departure, follows the previous departure, and has GPS."""
    scenario = load(folder)
    previous: dict[str, int] = {}
    for row in scenario.stops:
        vehicle = row["vehicle"]
        arrival, departure = int(row["actual_arrival"]), int(row["actual_departure"])
        fixes = scenario.fixes[vehicle]
        assert fixes[0].timestamp <= arrival < departure <= fixes[-1].timestamp
        assert arrival >= previous.get(vehicle, fixes[0].timestamp)
        previous[vehicle] = departure


@each
def test_van_is_at_the_stop_when_it_arrives(folder: Path) -> None:
    """The van's fix at each actual arrival lies within 60 m of the stop's position."""
    scenario = load(folder)
    stops = [s for v in scenario.plan["vehicles"] for s in v["stops"]]
    where = {s["id"]: LatLon(s["lat"], s["lon"]) for s in stops}
    for row in scenario.stops:
        fix = _at(scenario, row["vehicle"], int(row["actual_arrival"]))
        assert fix is not None
        assert haversine_m(LatLon(fix.lat, fix.lon), where[row["stop_id"]]) <= NEAR_STOP_M


@each
def test_simulated_service_differs_from_the_planned(folder: Path) -> None:
    """Dwell is not a copy of the plan: actual service times depart from the planned ones."""
    scenario = load(folder)
    planned = {s["id"]: s["service_s"] for v in scenario.plan["vehicles"] for s in v["stops"]}
    actual = {
        r["stop_id"]: int(r["actual_departure"]) - int(r["actual_arrival"]) for r in scenario.stops
    }
    assert sum(actual[k] != planned[k] for k in planned) >= len(planned) // 2


def _disruptions(scenario: Scenario) -> list[dict[str, Any]]:
    disruptions: list[dict[str, Any]] = scenario.plan["meta"]["disruptions"]
    return disruptions


@each_incident
def test_incident_meta_lists_its_disruptions(folder: Path) -> None:
    """meta lists a hold-up, a road closure and long dwells, each with van, times and place."""
    scenario = load(folder)
    disruptions = _disruptions(scenario)
    kinds = [d["kind"] for d in disruptions]
    assert kinds.count("holdup") == 1
    assert kinds.count("road_closure") == 1
    assert 1 <= kinds.count("long_service") <= 2
    assert set(kinds) <= {"holdup", "road_closure", "long_service", "slowdown"}
    vans = {v["id"] for v in scenario.plan["vehicles"]}
    for disruption in disruptions:
        assert set(disruption) >= DISRUPTION_KEYS
        assert disruption["van"] in vans
        assert isinstance(disruption["start"], int)
        assert isinstance(disruption["end"], int)
        assert disruption["start"] < disruption["end"]
        assert _in_bounds(scenario.plan["osm"], disruption["lat"], disruption["lon"])
    lengths = {d["kind"]: d["end"] - d["start"] for d in disruptions}
    assert 15 * 60 <= lengths["holdup"] <= 36 * 60
    assert 20 * 60 <= lengths["road_closure"] <= 40 * 60
    if "slowdown" in lengths:
        assert lengths["slowdown"] == 30 * 60


@each_incident
def test_long_service_stops_take_three_to_four_times_the_plan(folder: Path) -> None:
    """Each long-service stop's dwell in stops.csv is 3-4x its planned service time."""
    scenario = load(folder)
    rows = {r["stop_id"]: r for r in scenario.stops}
    for disruption in _disruptions(scenario):
        if disruption["kind"] != "long_service":
            continue
        row = rows[disruption["stop"]]
        dwell = int(row["actual_departure"]) - int(row["actual_arrival"])
        planned = int(row["planned_service_s"])
        assert 2.9 * planned <= dwell <= 4.1 * planned
        assert row["vehicle"] == disruption["van"]


@each_incident
def test_held_up_van_stands_still_and_reports(folder: Path) -> None:
    """During its hold-up the van keeps sending fixes, all at one spot near the recorded one."""
    scenario = load(folder)
    holdup = next(d for d in _disruptions(scenario) if d["kind"] == "holdup")
    fixes = [
        f
        for f in scenario.fixes[holdup["van"]]
        if holdup["start"] <= f.timestamp <= holdup["end"] - 1
    ]
    assert len(fixes) == holdup["end"] - holdup["start"]
    where = LatLon(holdup["lat"], holdup["lon"])
    # SUMO's first halted step may still report a last crawl (0.1 m/s) as the van pulls over.
    assert all(f.speed_mps == 0.0 for f in fixes[1:])
    for fix in fixes:
        assert haversine_m(LatLon(fix.lat, fix.lon), where) <= NEAR_STOP_M
    # Not a delivery: no stop of the van is being served meanwhile.
    for row in scenario.stops:
        if row["vehicle"] == holdup["van"]:
            arrival, departure = int(row["actual_arrival"]), int(row["actual_departure"])
            assert departure <= holdup["start"] or arrival >= holdup["end"]


@each_incident
def test_disruptions_make_many_stops_late(folder: Path) -> None:
    """A quarter or more of the stops arrive 10+ min after the planner said they would."""
    scenario = load(folder)
    planned = scenario.plan["meta"]["planned_arrival"]
    late = [int(r["actual_arrival"]) - planned[r["stop_id"]] >= 600 for r in scenario.stops]
    assert sum(late) >= 0.25 * len(late)
    assert scenario.plan["meta"]["stops_delayed_10min"] >= 0.25 * len(late)


@each_week_day
def test_week_days_name_their_customers(folder: Path) -> None:
    """Every stop of a week day names its customer, once; 60-70 % of a later day's customers
    were served earlier that week (up to 85 % once the pool's occasional customers are used up
    and those served longest ago come back); the customers' true service factors are in meta."""
    plan = load(folder).plan
    customers = [s["customer_id"] for v in plan["vehicles"] for s in v["stops"]]
    assert len(customers) == len(set(customers))
    meta = plan["meta"]
    assert set(meta["customer_service_factor"]) == set(customers)
    assert all(0.1 < f < 10 for f in meta["customer_service_factor"].values())
    seen = meta["customers_seen_earlier_in_week"]
    if meta["week_day"] == 1:
        assert seen == 0
    else:
        assert 0.55 * len(customers) <= seen <= 0.85 * len(customers)


@each_week_day
def test_week_days_record_an_hourly_traffic_profile(folder: Path) -> None:
    """A week day's background follows the hour: meta has the shape, the peak and the mean
    rate of each local hour, a busier morning peak than the late morning where both occur."""
    profile = load(folder).plan["meta"]["traffic_profile"]
    by_hour = profile["per_hour_by_local_hour"]
    assert by_hour
    assert all(0 < rate <= profile["peak_per_hour"] for rate in by_hour.values())
    if "08" in by_hour and "10" in by_hour:
        assert by_hour["08"] > by_hour["10"]


def test_a_customer_is_at_one_place_on_every_day() -> None:
    """A customer id names one address: the same lat/lon (and the same extract) on every day
    it appears; some customers appear on several days of each week."""
    where: dict[str, set[tuple[str, float, float]]] = defaultdict(set)
    days: dict[str, int] = defaultdict(int)
    for folder in WEEK_DAYS:
        plan = load(folder).plan
        for vehicle in plan["vehicles"]:
            for stop in vehicle["stops"]:
                key = f"{plan['osm']}/{stop['customer_id']}"
                where[key].add((plan["osm"], stop["lat"], stop["lon"]))
                days[key] += 1
    assert all(len(places) == 1 for places in where.values())
    for osm in {load(f).plan["osm"] for f in WEEK_DAYS}:
        assert sum(n >= 2 for key, n in days.items() if key.startswith(osm)) >= 20


def test_split_names_existing_days_once() -> None:
    """split.json: train and test name existing scenario folders, none in both, every folder
    in one of them, with the rule stated; each test day comes after the train days of its
    own week."""
    split = json.loads(SPLIT.read_text(encoding="utf-8"))
    assert set(split) == {"train", "test", "rule"}
    assert isinstance(split["rule"], str)
    assert split["rule"]
    train, test = set(split["train"]), set(split["test"])
    assert len(train) == len(split["train"])
    assert len(test) == len(split["test"])
    assert not train & test
    assert train | test == set(IDS)

    def week_and_day(name: str) -> tuple[str, int]:
        week, day = name.rsplit("-d", 1)
        return week, int(day)

    for week, day in (week_and_day(n) for n in test if "-week-d" in n):
        earlier = [d for w, d in (week_and_day(n) for n in train if "-week-d" in n) if w == week]
        assert earlier
        assert max(earlier) < day

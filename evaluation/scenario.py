"""A ground-truth scenario folder: the plan, the vans' GPS, and when each stop was really
reached and left (see ``bench/scenarios/README.md`` for the format)."""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from domain.errors import Problem, ValidationError

FloatArray = npt.NDArray[np.float64]
GPS_COLUMNS = ("vehicle", "timestamp", "lat", "lon", "speed", "heading")
STOP_COLUMNS = ("vehicle", "stop_index", "stop_id", "actual_arrival", "actual_departure", "status")
OSM_SUFFIXES = (".osm.pbf", ".osm", ".osm.bz2", ".osm.gz", ".graphml")


@dataclass(frozen=True, slots=True)
class ScenarioStop:
    id: str
    lat: float
    lon: float
    service_s: float
    windows: tuple[tuple[datetime, datetime], ...]
    #: The customer the stop is for, when the plan says (the week scenarios do): the same
    #: customer on several days, for service times learned per customer.
    customer_id: str | None = None


@dataclass(frozen=True, slots=True)
class ScenarioVehicle:
    id: str
    depot_lat: float
    depot_lon: float
    shift_start: datetime
    stops: tuple[ScenarioStop, ...]


@dataclass(frozen=True, slots=True)
class Gps:
    """One vehicle's fixes, sorted by time (epoch seconds)."""

    timestamp: FloatArray
    lat: FloatArray
    lon: FloatArray
    speed_mps: FloatArray
    heading_deg: FloatArray


@dataclass(frozen=True, slots=True)
class Actual:
    arrival: datetime | None
    departure: datetime | None
    status: str


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    folder: Path
    osm: str | None
    vehicles: tuple[ScenarioVehicle, ...]
    gps: dict[str, Gps]
    #: (vehicle id, stop id) -> what really happened.
    actual: dict[tuple[str, str], Actual]


def _epoch(value: object, where: str, problems: list[Problem]) -> datetime:
    try:
        return datetime.fromtimestamp(float(str(value)), UTC)
    except (TypeError, ValueError, OverflowError):
        problems.append(Problem(where, f"expected epoch seconds, got {str(value)[:40]!r}"))
        return datetime.fromtimestamp(0, UTC)


def _float(data: Any, key: str, where: str, problems: list[Problem]) -> float:
    value = data.get(key) if isinstance(data, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        problems.append(Problem(f"{where}.{key}", "expected a number"))
        return 0.0
    return float(value)


def _vehicles(plan: Any, problems: list[Problem]) -> tuple[ScenarioVehicle, ...]:
    if not isinstance(plan, dict) or not isinstance(plan.get("vehicles"), list):
        problems.append(Problem("plan.json.vehicles", "expected a list of vehicles"))
        return ()
    vehicles: list[ScenarioVehicle] = []
    for i, v in enumerate(plan["vehicles"]):
        where = f"plan.json.vehicles[{i}]"
        if not isinstance(v, dict) or not isinstance(v.get("id"), str | int):
            problems.append(Problem(f"{where}.id", "expected an id"))
            continue
        depot = v.get("depot")
        stops: list[ScenarioStop] = []
        for j, s in enumerate(v.get("stops") or []):
            at = f"{where}.stops[{j}]"
            windows = []
            for w in (s.get("time_windows") or []) if isinstance(s, dict) else []:
                if isinstance(w, list) and len(w) == 2:
                    windows.append(
                        (
                            _epoch(w[0], f"{at}.time_windows", problems),
                            _epoch(w[1], f"{at}.time_windows", problems),
                        )
                    )
                else:
                    problems.append(Problem(f"{at}.time_windows", "expected [start, end] pairs"))
            if not isinstance(s, dict) or not isinstance(s.get("id"), str | int):
                problems.append(Problem(f"{at}.id", "expected an id"))
                continue
            customer = s.get("customer_id")
            if customer is not None and (
                isinstance(customer, bool) or not isinstance(customer, str | int)
            ):
                problems.append(Problem(f"{at}.customer_id", "expected an id"))
                customer = None
            stops.append(
                ScenarioStop(
                    str(s["id"]),
                    _float(s, "lat", at, problems),
                    _float(s, "lon", at, problems),
                    _float(s, "service_s", at, problems),
                    tuple(windows),
                    None if customer is None else str(customer),
                )
            )
        vehicles.append(
            ScenarioVehicle(
                str(v["id"]),
                _float(depot, "lat", f"{where}.depot", problems),
                _float(depot, "lon", f"{where}.depot", problems),
                _epoch(v.get("shift_start"), f"{where}.shift_start", problems),
                tuple(stops),
            )
        )
    return tuple(vehicles)


def _rows(path: Path, columns: tuple[str, ...], problems: list[Problem]) -> list[dict[str, str]]:
    if not path.is_file():
        problems.append(Problem(path.name, "file missing"))
        return []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            problems.append(Problem(path.name, f"missing columns: {', '.join(missing)}"))
            return []
        return list(reader)


def load_scenario(folder: Path) -> Scenario:
    """Read and check a scenario folder; every problem found is reported at once."""
    problems: list[Problem] = []
    try:
        plan = json.loads((folder / "plan.json").read_text())
    except FileNotFoundError:
        raise ValidationError([Problem("plan.json", f"missing in {folder}")]) from None
    except ValueError as exc:
        raise ValidationError([Problem("plan.json", f"not JSON: {exc}")]) from None
    vehicles = _vehicles(plan, problems)
    known = {v.id for v in vehicles}
    by_vehicle: dict[str, list[tuple[float, float, float, float, float]]] = {}
    for n, row in enumerate(_rows(folder / "gps.csv", GPS_COLUMNS, problems), start=2):
        try:
            fix = tuple(float(row[c] or "nan") for c in GPS_COLUMNS[1:])
        except ValueError:
            problems.append(Problem(f"gps.csv line {n}", "non-numeric value"))
            continue
        if row["vehicle"] not in known:
            problems.append(Problem(f"gps.csv line {n}", f"unknown vehicle {row['vehicle']!r}"))
            continue
        by_vehicle.setdefault(row["vehicle"], []).append(fix)  # type: ignore[arg-type]
    actual: dict[tuple[str, str], Actual] = {}
    for n, row in enumerate(_rows(folder / "stops.csv", STOP_COLUMNS, problems), start=2):
        where = f"stops.csv line {n}"
        arrival = _epoch(row["actual_arrival"], where, problems) if row["actual_arrival"] else None
        departure = (
            _epoch(row["actual_departure"], where, problems) if row["actual_departure"] else None
        )
        actual[(row["vehicle"], row["stop_id"])] = Actual(arrival, departure, row["status"])
    if problems:
        raise ValidationError(problems[:50])
    gps: dict[str, Gps] = {}
    for vehicle_id, fixes in by_vehicle.items():
        data = np.array(sorted(fixes), dtype=np.float64)
        gps[vehicle_id] = Gps(data[:, 0], data[:, 1], data[:, 2], data[:, 3], data[:, 4])
    osm = plan.get("osm") if isinstance(plan.get("osm"), str) else None
    return Scenario(folder.name, folder, osm, vehicles, gps, actual)


def find_osm(scenario: Scenario, explicit: Path | None, repo_root: Path) -> Path:
    """The road network of a scenario: ``--osm`` if given; else an OSM file in the folder;
    else the file its plan names under ``$LASTMILE_SHARED_DIR/data/osm/`` or
    ``../shared/data/osm/`` (next to the working directory or the repository)."""
    if explicit is not None:
        return explicit
    local = sorted(p for p in scenario.folder.iterdir() if p.name.endswith(OSM_SUFFIXES))
    if local:
        return local[0]
    if scenario.osm:
        shared = (
            [Path(os.environ["LASTMILE_SHARED_DIR"])] if "LASTMILE_SHARED_DIR" in os.environ else []
        )
        for folder in [*shared, *(base / ".." / "shared" for base in (Path.cwd(), repo_root))]:
            candidate = folder / "data" / "osm" / scenario.osm
            if candidate.is_file():
                return candidate.resolve()
        raise ValidationError(
            [Problem("plan.json.osm", f"{scenario.osm!r} not found under ../shared/data/osm/")]
        )
    raise ValidationError(
        [Problem("osm", "the scenario has no OSM file and its plan names none; pass --osm")]
    )

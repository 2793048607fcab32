"""A kept scenario as its folder holds it: plan.json (the vans, their stops and the run's
meta), gps.csv (every van's fixes) and stops.csv (each stop's actual arrival and departure)."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.scenarios.simulate import Fix, RunOutput, StopEvent, VanStop, VanTrip
from bench.scenarios.world import World
from domain.plan import Plan
from domain.problem import Order, PlanningProblem


@dataclass(frozen=True, slots=True)
class Kept:
    """A scenario that passed every check, ready to be written."""

    plan_json: dict[str, Any]
    gps_rows: list[list[str]]
    stop_rows: list[list[str]]
    service_errors_s: list[int]


def gps_rows(run: RunOutput, grid_north_deg: float, epoch0: int) -> list[list[str]]:
    rows: list[list[str]] = []
    for vehicle_id in sorted(run.fixes):
        rows += [_gps_row(vehicle_id, f, grid_north_deg, epoch0) for f in run.fixes[vehicle_id]]
    return rows


def _gps_row(vehicle_id: str, fix: Fix, grid_north_deg: float, epoch0: int) -> list[str]:
    heading_deg = round(fix.angle_deg + grid_north_deg) % 360
    return [
        vehicle_id,
        str(epoch0 + round(fix.time_s)),
        f"{fix.lat:.6f}",
        f"{fix.lon:.6f}",
        f"{fix.speed_mps:.1f}",
        str(heading_deg),
    ]


def stop_rows(
    run: RunOutput, vans: list[VanTrip], problem: PlanningProblem, epoch0: int
) -> tuple[list[list[str]], list[int]]:
    planned = {o.id: o.service_s for o in problem.orders}
    rows: list[list[str]] = []
    errors: list[int] = []
    for van in sorted(vans, key=lambda v: v.vehicle_id):
        for k, (stop, event) in enumerate(zip(van.stops, run.stops[van.vehicle_id], strict=True)):
            rows.append(_stop_row(van.vehicle_id, k, stop, event, planned[stop.stop_id], epoch0))
            errors.append(round(event.ended_s - event.started_s) - planned[stop.stop_id])
    return rows, errors


def _stop_row(
    vehicle_id: str, index: int, stop: VanStop, event: StopEvent, planned_s: int, epoch0: int
) -> list[str]:
    arrival, departure = epoch0 + round(event.started_s), epoch0 + round(event.ended_s)
    return [
        vehicle_id,
        str(index),
        stop.stop_id,
        str(arrival),
        str(departure),
        "delivered",
        str(planned_s),
        str(departure - arrival),
    ]


def plan_json(
    world: World,
    problem: PlanningProblem,
    plan: Plan,
    meta: dict[str, Any],
    customer_of: dict[str, str] | None = None,
) -> dict[str, Any]:
    """``customer_of`` (order id -> customer id, week days) adds each stop's ``customer_id``."""
    orders = {o.id: o for o in problem.orders}
    customers = customer_of or {}
    shifts = {v.id: v.shift.start for v in problem.vehicles}
    vehicles = [
        {
            "id": route.vehicle_id,
            "depot": {"lat": round(world.depot.lat, 6), "lon": round(world.depot.lon, 6)},
            "shift_start": int(shifts[route.vehicle_id].timestamp()),
            "stops": [
                _stop_json(orders[s.order_id], customers.get(s.order_id)) for s in route.stops
            ],
        }
        for route in sorted(plan.routes, key=lambda r: r.vehicle_id)
    ]
    return {"osm": world.osm.name, "vehicles": vehicles, "meta": meta}


def _stop_json(order: Order, customer_id: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"id": order.id}
    if customer_id is not None:
        out["customer_id"] = customer_id
    return out | {
        "lat": round(order.location.lat, 6),
        "lon": round(order.location.lon, 6),
        "service_s": order.service_s,
        "time_windows": [[int(w.start.timestamp()), int(w.end.timestamp())] for w in order.windows],
    }


GPS_HEADER = ["vehicle", "timestamp", "lat", "lon", "speed", "heading"]
STOPS_HEADER = [
    "vehicle",
    "stop_index",
    "stop_id",
    "actual_arrival",
    "actual_departure",
    "status",
    "planned_service_s",
    "actual_service_s",
]


def write_scenario(folder: Path, kept: Kept) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    text = json.dumps(kept.plan_json, indent=1) + "\n"
    (folder / "plan.json").write_text(text, encoding="utf-8")
    _write_csv(folder / "gps.csv", GPS_HEADER, kept.gps_rows)
    _write_csv(folder / "stops.csv", STOPS_HEADER, kept.stop_rows)


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)

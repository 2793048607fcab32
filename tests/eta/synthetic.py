"""A small ground-truth scenario written by the tests themselves: one van driving our own
planned road line, slower than planned and with longer stops, at 1 Hz."""

from __future__ import annotations

import csv
import json
import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from domain.geo import LatLon
from routing.geometry import leg_coordinates
from routing.road_graph import RoadGraph
from routing.snapping import Snapper

SHIFT_START = int(datetime(2026, 3, 10, 7, 0, tzinfo=UTC).timestamp())


def _cumulative_m(coords: np.ndarray) -> np.ndarray:
    lat = np.radians(coords[:, 1])
    dx = np.diff(np.radians(coords[:, 0])) * np.cos(lat[:-1]) * 6_371_008.8
    dy = np.diff(lat) * 6_371_008.8
    return np.concatenate(([0.0], np.cumsum(np.hypot(dx, dy))))


def write_scenario(
    folder: Path,
    graph: RoadGraph,
    snapper: Snapper,
    *,
    stops: int = 8,
    seed: int = 1,
    slowdown: float = 1.4,
    service_overrun: float = 1.5,
    jam: tuple[int, float] | None = None,
) -> Path:
    """Write plan.json, gps.csv and stops.csv. ``jam`` = (leg index, extra seconds standing
    still halfway along that leg)."""
    rng = np.random.default_rng(seed)
    lat_c, lon_c = graph.node_lat.mean(), graph.node_lon.mean()
    centre = int(np.argmin((graph.node_lat - lat_c) ** 2 + (graph.node_lon - lon_c) ** 2))
    depot = LatLon(float(graph.node_lat[centre]), float(graph.node_lon[centre]))
    nodes = rng.choice(graph.node_count, stops, replace=False)
    places = [LatLon(float(graph.node_lat[n]), float(graph.node_lon[n])) for n in nodes]
    points = snapper.snap([depot, *places, depot], max_distance_m=math.inf)
    service = rng.integers(120, 300, stops)
    t = float(SHIFT_START)
    rows: list[tuple[float, float, float]] = []
    actual: list[tuple[int, int]] = []
    plan_stops = []
    for k in range(stops + 1):
        coords, duration_s, _ = leg_coordinates(graph, points, k, k + 1)
        cum = _cumulative_m(coords)
        drive_s = max(duration_s * slowdown, 1.0)
        stand_s = jam[1] if jam is not None and jam[0] == k else 0.0
        for s in np.arange(0.0, drive_s + stand_s, 1.0):
            moving = s if s < drive_s / 2 else max(s - stand_s, drive_s / 2)
            d = cum[-1] * min(moving / drive_s, 1.0)
            rows.append(
                (
                    t + s,
                    float(np.interp(d, cum, coords[:, 1])),
                    float(np.interp(d, cum, coords[:, 0])),
                )
            )
        t += drive_s + stand_s
        if k == stops:
            break
        arrival = t
        dwell = float(service[k]) * service_overrun
        for s in np.arange(0.0, dwell, 1.0):
            rows.append((t + s, rows[-1][1], rows[-1][2]))
        t += dwell
        actual.append((round(arrival), round(t)))
        plan_stops.append(
            {
                "id": f"s{k}",
                "lat": places[k].lat,
                "lon": places[k].lon,
                "service_s": int(service[k]),
                "time_windows": [[SHIFT_START, SHIFT_START + 8 * 3600]],
            }
        )
    folder.mkdir(parents=True, exist_ok=True)
    plan = {
        "osm": "monaco.osm.pbf",
        "vehicles": [
            {
                "id": "van1",
                "depot": {"lat": depot.lat, "lon": depot.lon},
                "shift_start": SHIFT_START,
                "stops": plan_stops,
            }
        ],
    }
    (folder / "plan.json").write_text(json.dumps(plan))
    with (folder / "gps.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["vehicle", "timestamp", "lat", "lon", "speed", "heading"])
        for ts, lat, lon in rows:
            w.writerow(["van1", int(ts), f"{lat:.6f}", f"{lon:.6f}", "8.0", "0"])
    with (folder / "stops.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            ["vehicle", "stop_index", "stop_id", "actual_arrival", "actual_departure", "status"]
        )
        for k, (a, d) in enumerate(actual):
            w.writerow(["van1", k, f"s{k}", a, d, "delivered"])
    return folder

"""Route geometry for ``lastmile plan``, for both input kinds: the routes as GeoJSON, and each
route's encoded polyline (``geometry``, as ``vroom -g`` writes it).

A plan made on the road network (our problem files; VROOM problems without matrices) follows
the roads (:func:`routing.planner.plan_geojson`). A plan made on a VROOM problem's own matrices
had no roads to follow: each route is the straight line through its stops' coordinates, so
those need ``[lon, lat]`` coordinates for every location, not only a ``location_index``.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

from domain.geo import LatLon
from domain.plan import Plan, PlannedRoute
from domain.problem import Order, PlanningProblem, Vehicle
from routing.geometry import encode_polyline
from routing.matrix import TravelMatrix
from routing.planner import plan_geojson, stop_locations
from routing.road_graph import RoadGraph
from routing.snapping import Snapper
from routing.vroom_format import VroomInput


def locations_without_coordinates(vin: VroomInput) -> int:
    """How many of a VROOM problem's locations are matrix indices with no ``[lon, lat]``."""
    return sum(1 for where in vin.location.values() if not isinstance(where, list))


def _path(route: PlannedRoute, vehicle: Vehicle, orders: Mapping[str, Order]) -> list[LatLon]:
    """Where a route goes, in order: its start, its stops, its end (if not open)."""
    places = [vehicle.start, *(orders[s.order_id].location for s in route.stops)]
    return places if vehicle.end is None else [*places, vehicle.end]


def straight_geojson(problem: PlanningProblem, plan: Plan, matrix: TravelMatrix) -> dict[str, Any]:
    """Like :func:`routing.planner.plan_geojson` for a plan on a given ``matrix`` (in
    :func:`routing.planner.stop_locations` order): straight lines between the stops, each leg's
    duration and distance from the matrix."""
    places, _ = stop_locations(problem)
    row: dict[LatLon, int] = {}
    for k, place in enumerate(places):
        row.setdefault(place, k)
    orders = {o.id: o for o in problem.orders}
    vehicles = {v.id: v for v in problem.vehicles}
    features: list[dict[str, Any]] = []
    for route in plan.routes:
        if not route.stops:
            continue
        path = _path(route, vehicles[route.vehicle_id], orders)
        legs = [
            {
                "duration_s": float(matrix.duration_s[row[a], row[b]]),
                "distance_m": float(matrix.distance_m[row[a], row[b]]),
            }
            for a, b in itertools.pairwise(path)
        ]
        line = [[round(p.lon, 7), round(p.lat, 7)] for p in path]
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "LineString", "coordinates": line},
                "properties": {
                    "vehicle_id": route.vehicle_id,
                    "order_ids": [s.order_id for s in route.stops],
                    "distance_m": route.distance_m,
                    "legs": legs,
                },
            }
        )
    return {"type": "FeatureCollection", "features": features}


def vroom_geojson(
    vin: VroomInput, plan: Plan, graph: RoadGraph | None, snapper: Snapper | None
) -> dict[str, Any]:
    """The routes of a VROOM problem's plan: on the roads when planned on them, else straight.

    Each feature names its route as VROOM does: ``vehicle`` (the user's id) and ``tasks``
    (``{"type": "job" | "pickup" | "delivery", "id": ...}`` in visiting order).
    """
    if vin.matrix is not None:
        collection = straight_geojson(vin.problem, plan, vin.matrix)
    elif graph is not None and snapper is not None:
        collection = plan_geojson(vin.problem, plan, graph, snapper)
    else:
        raise ValueError("a VROOM plan without matrices was made on a road network: pass it")
    for feature in collection["features"]:
        ours = feature["properties"]
        feature["properties"] = {
            "vehicle": vin.vehicle_ids[ours.pop("vehicle_id")],
            "tasks": [
                {"type": kind, "id": user_id}
                for kind, user_id in (vin.order_kind[o] for o in ours.pop("order_ids"))
            ],
            **ours,
        }
    return collection


def encoded_geometry(collection: Mapping[str, Any], key: str) -> dict[Any, str]:
    """Each route's line as an encoded polyline (precision 5), by its feature's ``key``."""
    return {
        feature["properties"][key]: encode_polyline(feature["geometry"]["coordinates"])
        for feature in collection["features"]
    }

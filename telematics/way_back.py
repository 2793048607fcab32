"""The way back for a vehicle off its route: re-snap it onto the network and drive to its
next stop (the rest of the route is unchanged from there)."""

from __future__ import annotations

from dataclasses import dataclass

from domain.geo import LatLon
from routing.geometry import leg_coordinates
from routing.road_graph import RoadGraph
from routing.snapping import Snapper


@dataclass(frozen=True, slots=True)
class WayBack:
    duration_s: float
    distance_m: float
    #: [lon, lat] points of the drive, from the vehicle's road to the stop.
    coordinates: list[list[float]]
    snap_distance_m: float


def way_back(graph: RoadGraph, snapper: Snapper, here: LatLon, stop: LatLon) -> WayBack:
    """Fastest drive from where the vehicle is (snapped to the nearest road, however far)
    to the stop."""
    points = snapper.snap([here, stop], max_distance_m=float("inf"))
    coords, duration_s, distance_m = leg_coordinates(graph, points, 0, 1)
    return WayBack(duration_s, distance_m, coords.round(7).tolist(), float(points.distance_m[0]))

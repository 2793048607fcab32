"""Route geometry between consecutive points."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from bench.matrix import random_points
from domain.geo import LatLon, haversine_m
from routing.geometry import route_geojson
from routing.matrix import travel_matrix
from routing.road_graph import RoadGraph
from routing.snapping import Snapper


def _length_m(coords: list[list[float]]) -> float:
    return sum(
        haversine_m(LatLon(a[1], a[0]), LatLon(b[1], b[0])) for a, b in itertools.pairwise(coords)
    )


def test_route_line_runs_from_first_to_last_point(
    monaco: RoadGraph, monaco_snapper: Snapper
) -> None:
    """The LineString starts and ends at the snapped points; its length is the leg distances."""
    points = random_points(monaco, monaco_snapper, 4, seed=11)
    feature = route_geojson(monaco, points)
    coords = feature["geometry"]["coordinates"]
    assert feature["geometry"]["type"] == "LineString"
    start, end = LatLon(coords[0][1], coords[0][0]), LatLon(coords[-1][1], coords[-1][0])
    assert haversine_m(start, points.point(0)) < 1
    assert haversine_m(end, points.point(3)) < 1
    legs = feature["properties"]["legs"]
    assert len(legs) == 3
    total = sum(leg["distance_m"] for leg in legs)
    assert _length_m(coords) == pytest.approx(total, rel=0.02)


def test_leg_times_equal_the_matrix(monaco: RoadGraph, monaco_snapper: Snapper) -> None:
    """Each leg's duration in the geometry is the matrix entry for that pair."""
    points = random_points(monaco, monaco_snapper, 5, seed=12)
    m = travel_matrix(monaco, points, workers=1)
    legs = route_geojson(monaco, points)["properties"]["legs"]
    for i, leg in enumerate(legs):
        assert abs(leg["duration_s"] - m.duration_s[i, i + 1]) <= 1
        assert abs(leg["distance_m"] - m.distance_m[i, i + 1]) <= 1


def test_single_point_gives_a_degenerate_line(helsinki: RoadGraph) -> None:
    """One point still yields valid GeoJSON (a zero-length line), not an error."""
    points = Snapper(helsinki).snap([LatLon(60.1680, 24.9440)])
    coords = route_geojson(helsinki, points)["geometry"]["coordinates"]
    assert len(coords) == 2
    assert np.allclose(coords[0], coords[1])

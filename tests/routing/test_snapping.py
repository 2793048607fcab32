"""Snapping to the nearest point on the nearest road."""

from __future__ import annotations

import numpy as np
import pytest

from domain.geo import LatLon, haversine_m
from routing.road_graph import RoadGraph
from routing.snapping import SnapError, Snapper


def test_point_on_a_road_snaps_at_about_zero(
    helsinki: RoadGraph, helsinki_snapper: Snapper
) -> None:
    """A vertex of a road's shape is on the road: snap distance ~0, position unchanged."""
    coords = helsinki.edge_coords(10)
    mid = coords[len(coords) // 2]
    snapped = helsinki_snapper.snap([LatLon(float(mid[1]), float(mid[0]))])
    assert snapped.distance_m[0] < 0.01
    assert haversine_m(snapped.point(0), LatLon(float(mid[1]), float(mid[0]))) < 0.01


def test_snaps_to_the_road_not_the_nearest_junction(
    helsinki: RoadGraph, helsinki_snapper: Snapper
) -> None:
    """Midway along a long edge, the snapped point lies on the edge, far from both ends."""
    longest = int(np.argmax(helsinki.edge_length_m))
    coords = helsinki.edge_coords(longest)
    a, b = coords[0], coords[-1]
    # A point a few metres beside the road near its middle (by shape, not straight line).
    mid = coords[len(coords) // 2] if len(coords) > 2 else (a + b) / 2
    point = LatLon(float(mid[1]) + 0.00003, float(mid[0]))
    snapped = helsinki_snapper.snap([point])
    assert snapped.distance_m[0] < 10
    assert 0.05 < snapped.fraction[0] < 0.95
    end_a = LatLon(float(a[1]), float(a[0]))
    assert haversine_m(snapped.point(0), end_a) > 20


def test_point_in_the_sea_is_rejected_naming_stop_and_distance(helsinki_snapper: Snapper) -> None:
    """Points beyond the limit raise SnapError naming each point and its distance."""
    points = [LatLon(60.1680, 24.9440), LatLon(60.10, 24.90), LatLon(60.12, 24.99)]
    with pytest.raises(SnapError) as info:
        helsinki_snapper.snap(points, ids=["ok", "sea-1", "sea-2"], field="orders")
    problems = info.value.problems
    assert [p.field for p in problems] == ["orders[sea-1]", "orders[sea-2]"]
    assert "from the nearest drivable road (limit 500 m)" in problems[0].message
    assert " m from" in problems[0].message


def test_limit_is_configurable(helsinki_snapper: Snapper) -> None:
    """A point 40 m off the road passes a 500 m limit and fails a 10 m one."""
    near = helsinki_snapper.snap([LatLon(60.1680, 24.9440)])
    offset = LatLon(float(near.lat[0]) + 40 / 111_320, float(near.lon[0]))
    distance = helsinki_snapper.snap([offset]).distance_m[0]
    if distance < 15:
        pytest.skip("the offset point happens to lie near another road")
    with pytest.raises(SnapError):
        helsinki_snapper.snap([offset], max_distance_m=10)


def test_vectorised_snap_matches_one_by_one(helsinki: RoadGraph, helsinki_snapper: Snapper) -> None:
    """Snapping many points at once gives the same result as one at a time."""
    rng = np.random.default_rng(3)
    lat = rng.uniform(helsinki.node_lat.min(), helsinki.node_lat.max(), 50)
    lon = rng.uniform(helsinki.node_lon.min(), helsinki.node_lon.max(), 50)
    many = helsinki_snapper.snap_arrays(lat, lon)
    for i in range(0, 50, 7):
        one = helsinki_snapper.snap_arrays(lat[i : i + 1], lon[i : i + 1])
        assert one.distance_m[0] == pytest.approx(many.distance_m[i])
        assert one.lat[0] == pytest.approx(many.lat[i])


def test_roads_near_a_point_are_the_streets_within_the_radius(
    helsinki_snapper: Snapper,
) -> None:
    """The base map of the tracking page: each road (twins once) has a point within reach,
    nearest first, and the cap holds."""
    centre = LatLon(60.1699, 24.9384)
    roads = helsinki_snapper.roads_near(centre, 300.0)
    assert len(roads) > 20
    nearest = [min(haversine_m(centre, LatLon(lat, lon)) for lat, lon in road) for road in roads]
    # Each road passes within the radius (a vertex may lie beyond it on a long road).
    assert all(len(road) >= 2 for road in roads)
    assert nearest[0] < 100
    assert len({tuple(road) for road in roads}) == len(roads)
    assert len(helsinki_snapper.roads_near(centre, 300.0, max_roads=5)) == 5
    assert helsinki_snapper.roads_near(LatLon(60.0, 24.0), 300.0) == []

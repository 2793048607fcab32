"""Distances at the edges of the map: across the antimeridian, at and between the poles."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.geo import EARTH_RADIUS_M, LatLon, haversine_m

HALF_WAY_ROUND_M = math.pi * EARTH_RADIUS_M
#: One degree along the equator.
DEGREE_M = HALF_WAY_ROUND_M / 180


def test_across_the_antimeridian_is_the_short_way() -> None:
    """179.9 E to 179.9 W on the equator is 0.2 degrees (22 km), not 359.8 degrees."""
    d = haversine_m(LatLon(0, 179.9), LatLon(0, -179.9))
    assert d == pytest.approx(0.2 * DEGREE_M, rel=1e-9)
    assert d == pytest.approx(haversine_m(LatLon(0, -0.1), LatLon(0, 0.1)), rel=1e-9)


def test_180_east_and_180_west_are_one_meridian() -> None:
    """lon +180 and -180 are the same line: no distance between them, at any latitude."""
    for lat in (-90.0, -16.8, 0.0, 65.5, 90.0):
        assert haversine_m(LatLon(lat, 180), LatLon(lat, -180)) == pytest.approx(0, abs=1e-6)


def test_fiji_across_the_date_line() -> None:
    """Taveuni (Fiji) straddles 180: two points 200 m apart either side of it."""
    lat = -16.8
    step = 100 / (DEGREE_M * math.cos(math.radians(lat)))  # 100 m of longitude
    d = haversine_m(LatLon(lat, 180 - step), LatLon(lat, -180 + step))
    assert d == pytest.approx(200, rel=1e-6)


def test_the_poles() -> None:
    """Every longitude meets at a pole; pole to pole is half way round."""
    assert haversine_m(LatLon(90, 0), LatLon(90, 137.5)) == pytest.approx(0, abs=1e-6)
    assert haversine_m(LatLon(-90, -180), LatLon(-90, 180)) == pytest.approx(0, abs=1e-6)
    assert haversine_m(LatLon(90, 10), LatLon(-90, -170)) == pytest.approx(HALF_WAY_ROUND_M)
    assert haversine_m(LatLon(89, 0), LatLon(89, 180)) == pytest.approx(2 * DEGREE_M, rel=1e-9)


def test_antipodes_do_not_fail_on_rounding() -> None:
    """Exactly opposite points: the haversine term may round above 1; it is clamped."""
    assert haversine_m(LatLon(0, 0), LatLon(0, 180)) == pytest.approx(HALF_WAY_ROUND_M)
    assert haversine_m(LatLon(45, 90), LatLon(-45, -90)) == pytest.approx(HALF_WAY_ROUND_M)


@pytest.mark.parametrize(("lat", "lon"), [(90, 180), (-90, -180), (90, -180), (-90, 180)])
def test_the_corners_of_the_map_are_points(lat: float, lon: float) -> None:
    assert LatLon(lat, lon) == LatLon(lat, lon)


@pytest.mark.parametrize(
    ("lat", "lon"),
    [
        (90.000001, 0),
        (-90.000001, 0),
        (0, 180.000001),
        (0, -180.000001),
        (0, 360),
        (math.nan, 0),
        (0, math.inf),
    ],
)
def test_past_the_edges_is_refused(lat: float, lon: float) -> None:
    with pytest.raises(ValueError, match="must be a number"):
        LatLon(lat, lon)


LATS = st.floats(-90, 90)
#: East longitudes, as distance west of the antimeridian.
WEST_OF_180 = st.floats(0, 10)


@given(LATS, WEST_OF_180, LATS, WEST_OF_180)
def test_a_pair_across_180_is_as_far_as_the_same_pair_across_0(
    lat1: float, e1: float, lat2: float, e2: float
) -> None:
    """Turning both points 180 degrees round the axis keeps their distance: a pair
    straddling the antimeridian measures as the same pair straddling Greenwich."""
    across_180 = haversine_m(LatLon(lat1, 180 - e1), LatLon(lat2, -180 + e2))
    across_0 = haversine_m(LatLon(lat1, -e1), LatLon(lat2, e2))
    assert across_180 == pytest.approx(across_0, rel=1e-9, abs=1e-6)
    assert 0 <= across_180 <= HALF_WAY_ROUND_M * (1 + 1e-12)


@given(LATS, st.floats(-180, 180), LATS, st.floats(-180, 180))
def test_distance_is_symmetric_and_bounded(
    lat1: float, lon1: float, lat2: float, lon2: float
) -> None:
    a, b = LatLon(lat1, lon1), LatLon(lat2, lon2)
    d = haversine_m(a, b)
    assert d == pytest.approx(haversine_m(b, a), rel=1e-12, abs=1e-9)
    assert 0 <= d <= HALF_WAY_ROUND_M * (1 + 1e-12)

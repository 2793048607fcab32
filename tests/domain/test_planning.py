"""Validation of a dispatcher's problem: every problem listed, each naming its field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain.errors import ValidationError
from domain.geo import LatLon
from domain.planning import Depot, Order, TimeWindow, Vehicle, planning_problem

T0 = datetime(2026, 11, 26, 8, tzinfo=UTC)
SHIFT = TimeWindow(T0, T0 + timedelta(hours=8))


def test_every_problem_is_listed_with_its_field() -> None:
    """A bad window, negative demand and an unknown depot are all reported at once."""
    orders = [
        Order("o1", LatLon(60.17, 24.94), TimeWindow(T0 + timedelta(hours=2), T0), 60),
        Order("o2", LatLon(60.17, 24.94), SHIFT, 60, demand=-1),
        Order("o2", LatLon(60.17, 24.94), SHIFT, -5),
    ]
    vehicles = [Vehicle("v1", "nowhere", SHIFT, 10)]
    with pytest.raises(ValidationError) as info:
        planning_problem([Depot("d1", LatLon(60.17, 24.94))], vehicles, orders)
    fields = [p.field for p in info.value.problems]
    assert fields == [
        "orders[2].id",
        "vehicles[v1].depot_id",
        "orders[o1].window",
        "orders[o2].demand",
        "orders[o2].service_s",
    ]
    assert "ends" in str(info.value)


def test_naive_timestamps_are_rejected() -> None:
    """Times without a zone are ambiguous for a fleet crossing DST: refuse them."""
    naive = TimeWindow(datetime(2026, 11, 26, 8), datetime(2026, 11, 26, 9))
    with pytest.raises(ValidationError, match="time zone"):
        planning_problem([Depot("d", LatLon(0, 0))], [Vehicle("v", "d", naive, 1)], [])


@pytest.mark.parametrize(("lat", "lon"), [(91.0, 0.0), (0.0, 181.0), (float("nan"), 0.0)])
def test_coordinates_out_of_range_are_rejected(lat: float, lon: float) -> None:
    """Latitude and longitude are checked when the point is made."""
    with pytest.raises(ValueError, match=r"lat|lon"):
        LatLon(lat, lon)

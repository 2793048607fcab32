"""Validation of a dispatcher's problem: every problem listed, each naming its field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain.errors import ValidationError
from domain.geo import LatLon
from domain.problem import Break, Order, ProblemBuilder, TimeWindow, Vehicle

T0 = datetime(2026, 11, 26, 8, tzinfo=UTC)
SHIFT = TimeWindow(T0, T0 + timedelta(hours=8))
HERE = LatLon(60.17, 24.94)


def test_every_problem_is_listed_with_its_field() -> None:
    """Bad windows, negative demand, unknown skills and broken pairs are all reported at once."""
    b = ProblemBuilder()
    b.add_vehicle(Vehicle("v1", HERE, SHIFT, capacity=(10,), skills=frozenset({"fridge"})))
    o1 = b.add_order(Order("o1", HERE, (TimeWindow(T0 + timedelta(hours=2), T0),), 60))
    b.add_order(Order("o2", HERE, demand=(-1,)))
    b.add_order(Order("o2", HERE, service_s=-5, skills=frozenset({"crane"})))
    b.add_pair(o1, o1)
    with pytest.raises(ValidationError) as info:
        b.build()
    fields = [p.field for p in info.value.problems]
    assert fields == [
        "orders[2].id",
        "orders[o1].windows[0]",
        "orders[o2].demand[0]",
        "orders[o2].service_s",
        "orders[o2].skills",
        "pairs[0]",
        "pairs[0].delivery_id",
    ]
    assert "no vehicle has skill(s) crane" in str(info.value)
    assert "same order" in str(info.value)


def test_vehicle_problems_are_named() -> None:
    """Negative capacity, a zero maximum and a break of no length each name their field."""
    b = ProblemBuilder()
    b.add_vehicle(
        Vehicle(
            "v1",
            HERE,
            SHIFT,
            capacity=(5, -2),
            max_duration_s=0,
            breaks=(Break(0, SHIFT),),
            cost_per_km=-1,
        )
    )
    with pytest.raises(ValidationError) as info:
        b.build()
    assert [p.field for p in info.value.problems] == [
        "vehicles[v1].capacity[1]",
        "vehicles[v1].max_duration_s",
        "vehicles[v1].cost_per_km",
        "vehicles[v1].breaks[0].duration_s",
    ]


def test_pairs_must_name_known_orders_once() -> None:
    """A pair naming an unknown order, or reusing one, is refused."""
    b = ProblemBuilder()
    b.add_vehicle(Vehicle("v", HERE, SHIFT))
    a = b.add_order(Order("a", HERE))
    c = b.add_order(Order("c", HERE))
    b.add_pair(a, c)
    b.add_pair(a, Order("ghost", HERE))
    with pytest.raises(ValidationError) as info:
        b.build()
    messages = [str(p) for p in info.value.problems]
    assert messages == [
        "pairs[1].pickup_id: order 'a' is already in a pair",
        "pairs[1].delivery_id: unknown order 'ghost'",
    ]


def test_naive_timestamps_are_rejected() -> None:
    """Times without a zone are ambiguous for a fleet crossing DST: refuse them."""
    naive = TimeWindow(datetime(2026, 11, 26, 8), datetime(2026, 11, 26, 9))
    with pytest.raises(ValidationError, match="time zone"):
        ProblemBuilder([], [Vehicle("v", HERE, naive)]).build()


def test_penalty_only_on_optional_orders() -> None:
    """A penalty on a mandatory order is a contradiction the dispatcher should hear about."""
    with pytest.raises(ValidationError, match="only optional orders carry a penalty"):
        ProblemBuilder([], [Vehicle("v", HERE, SHIFT)], [Order("o", HERE, penalty=5)]).build()


def test_valid_problem_freezes() -> None:
    """A good problem builds, and reports its capacity dimensions."""
    b = ProblemBuilder()
    b.add_vehicle(Vehicle("v", HERE, SHIFT, capacity=(10, 200)))
    b.add_order(Order("o", HERE, demand=(1,)))
    problem = b.build()
    assert problem.dimensions == 2
    assert problem.orders[0].id == "o"


@pytest.mark.parametrize(("lat", "lon"), [(91.0, 0.0), (0.0, 181.0), (float("nan"), 0.0)])
def test_coordinates_out_of_range_are_rejected(lat: float, lon: float) -> None:
    """Latitude and longitude are checked when the point is made."""
    with pytest.raises(ValueError, match=r"lat|lon"):
        LatLon(lat, lon)

"""Service times learned per customer or address (issue 16): the fleet's factor, each key's
shrunk factor on top, and the invariants that make them safe to plan with."""

from __future__ import annotations

import json
import math

import hypothesis.strategies as st
import pytest
from hypothesis import given

from domain.errors import ValidationError
from eta.service_time import (
    PRIOR_WEIGHT,
    RATIO_BOUNDS,
    ServiceObservation,
    ServiceTimes,
    address_key,
    fit_service_times,
)

planned = st.floats(min_value=30.0, max_value=1800.0)
ratio = st.floats(min_value=0.05, max_value=20.0)
keys = st.sampled_from(["customer:a", "customer:b", "ll:43.7300,7.4200", "ll:0.0000,0.0000"])


@st.composite
def observations(draw: st.DrawFn) -> list[ServiceObservation]:
    return [
        ServiceObservation(draw(keys), p, p * draw(ratio))
        for p in draw(st.lists(planned, min_size=1, max_size=40))
    ]


def visits(key: str, n: int, ratio: float, planned_s: float = 120.0) -> list[ServiceObservation]:
    return [ServiceObservation(key, planned_s, planned_s * ratio) for _ in range(n)]


def test_the_customer_s_reference_wins_over_the_address() -> None:
    assert address_key("  C-17 ", 43.73, 7.42) == "customer:C-17"
    assert address_key("", 43.73, 7.42) == address_key(" ", 43.730_04, 7.419_96)
    assert address_key("", 43.73, 7.42) == "ll:43.7300,7.4200"
    assert address_key("", 43.73, 7.42) != address_key("", 43.7302, 7.42)  # ~22 m apart
    assert address_key("", -0.000_01, 0.0) == address_key("", 0.0, 0.0)


@pytest.mark.parametrize(
    ("lat", "lon", "field"), [(91.0, 7.0, "lat"), (43.0, math.nan, "lon"), (43.0, 181.0, "lon")]
)
def test_a_bad_point_is_refused_naming_the_field(lat: float, lon: float, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        address_key("", lat, lon)
    assert [p.field for p in caught.value.problems] == [field]


def test_a_bad_observation_is_refused_naming_the_field() -> None:
    with pytest.raises(ValidationError) as caught:
        ServiceObservation("customer:a", -1.0, math.inf)
    assert [p.field for p in caught.value.problems] == ["planned_s", "actual_s"]
    with pytest.raises(ValidationError, match="key"):
        ServiceObservation("", 60.0, 60.0)


def test_no_history_is_the_dispatcher_s_figure() -> None:
    times = fit_service_times([])
    assert times.fleet_factor == 1.0
    assert times.expected_s("customer:a", 180.0) == 180.0
    assert not times.knows("customer:a")
    # A planned service of zero scales to zero and teaches nothing.
    assert fit_service_times(visits("customer:a", 5, 3.0, planned_s=0.0)) == times


@given(st.text(min_size=1, max_size=8), planned)
def test_an_unseen_key_gets_the_fleet_factor_alone(key: str, planned_s: float) -> None:
    times = fit_service_times(visits("customer:seen", 4, 1.5) + visits("customer:x", 4, 1.1))
    unseen = f"new:{key}"
    assert times.address_factor(unseen) == 1.0
    assert times.expected_s(unseen, planned_s) == pytest.approx(planned_s * times.fleet_factor)


def test_the_fleet_factor_is_total_actual_over_total_planned() -> None:
    times = fit_service_times(
        [
            ServiceObservation("customer:a", 100.0, 150.0),
            ServiceObservation("customer:b", 300.0, 300.0),
        ]
    )
    assert times.fleet_factor == pytest.approx(450.0 / 400.0)
    assert times.observations == 2


def test_an_always_slow_customer_is_learned_after_a_few_visits() -> None:
    """Twenty ordinary stops at the fleet's pace; one customer takes 2.5x on every visit."""
    ordinary = [o for k in range(20) for o in visits(f"customer:o{k}", 1, 1.0)]
    believed = []
    for n in (1, 3, 5, 10):
        times = fit_service_times(ordinary + visits("customer:slow", n, 2.5))
        believed.append(times.expected_s("customer:slow", 120.0) / 120.0)
    assert believed == sorted(believed)
    assert believed[0] < 1.6  # one slow visit is not a slow customer
    assert believed[2] > 1.8  # five are
    assert believed[3] > 2.0


@given(st.floats(min_value=-2.0, max_value=2.0), st.integers(min_value=1, max_value=30))
def test_shrinkage_follows_the_visits(log_dev: float, n: int) -> None:
    """A key always ``exp(log_dev)`` times the planned: its factor is its deviation from the
    fleet's shrunk by n / (n + w), so it moves towards what it showed with every visit."""
    rest = visits("customer:rest", 50, 1.0, planned_s=60_000.0)  # holds the fleet's near 1
    shown = min(max(math.exp(log_dev), RATIO_BOUNDS[0]), RATIO_BOUNDS[1])

    def learned(visits_n: int) -> float:
        times = fit_service_times(rest + visits("customer:k", visits_n, shown))
        deviation = math.log(shown) - math.log(times.fleet_factor)
        own = math.log(times.address_factor("customer:k"))
        assert own == pytest.approx(visits_n / (visits_n + PRIOR_WEIGHT) * deviation, abs=1e-12)
        return own

    assert abs(learned(n + 1)) >= abs(learned(n)) - 1e-12
    assert learned(n) * log_dev >= 0  # towards what it showed, never away


@given(observations(), planned)
def test_every_expected_service_stays_within_the_clipping_bounds(
    obs: list[ServiceObservation], planned_s: float
) -> None:
    """However wild the history, a stop is planned between 0.3x and 4x the dispatcher's."""
    times = fit_service_times(obs)
    low, high = RATIO_BOUNDS
    assert low <= times.fleet_factor <= high
    for key in {o.key for o in obs} | {"customer:never"}:
        expected = times.expected_s(key, planned_s)
        assert low * planned_s * (1 - 1e-9) <= expected <= high * planned_s * (1 + 1e-9)


@given(st.floats(min_value=5.0, max_value=1e6), st.integers(min_value=2, max_value=10))
def test_a_clipped_outlier_cannot_drag(outlier_ratio: float, n: int) -> None:
    """A stop left open for hours counts as 4x at most: a regular at the fleet's pace with one
    such visit stays under what one 4x visit can do, however long the stop really was."""
    ordinary = [o for k in range(30) for o in visits(f"customer:o{k}", 1, 1.0)]
    regular = visits("customer:r", n - 1, 1.0) + visits("customer:r", 1, outlier_ratio)
    times = fit_service_times(ordinary + regular)
    capped = fit_service_times(
        ordinary + visits("customer:r", n - 1, 1.0) + visits("customer:r", 1, RATIO_BOUNDS[1])
    )
    assert times == capped
    assert times.fleet_factor < 1.2
    assert times.address_factor("customer:r") <= math.exp(math.log(4.0) / (n + PRIOR_WEIGHT))


@given(observations())
def test_json_round_trip(obs: list[ServiceObservation]) -> None:
    times = fit_service_times(obs, prior_weight=3.0)
    again = ServiceTimes.from_dict(json.loads(json.dumps(times.to_dict())))
    assert again == times


def test_bad_json_is_refused_naming_each_field() -> None:
    data = {
        "fleet_factor": 0,
        "observations": -1,
        "keys": {"customer:a": {"factor": "x", "visits": 0}, "customer:b": 3},
    }
    with pytest.raises(ValidationError) as caught:
        ServiceTimes.from_dict(data)
    assert [p.field for p in caught.value.problems] == [
        "fleet_factor",
        "observations",
        "keys['customer:a'].factor",
        "keys['customer:a'].visits",
        "keys['customer:b']",
    ]


def test_a_negative_planned_service_is_refused() -> None:
    with pytest.raises(ValidationError, match="planned_s"):
        ServiceTimes().expected_s("customer:a", -5.0)

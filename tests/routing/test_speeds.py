"""Speeds from maxspeed tags and class defaults."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from routing.speeds import (
    DEFAULT_SPEED_KPH,
    FALLBACK_SPEED_KPH,
    free_flow_speed_kph,
    parse_maxspeed_kph,
    road_class,
)


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("50", 50.0),
        ("30 mph", 30 * 1.609344),
        ("25mph", 25 * 1.609344),
        ("10 knots", 18.52),
        ("FI:urban", 50.0),
        ("RU:rural", 80.0),
        ("walk", 7.0),
        ("50;30", 30.0),
        (["40", "60"], 40.0),
        ("none", None),
        ("signals", None),
        ("", None),
        (None, None),
        (math.nan, None),
        ("0", None),
    ],
)
def test_parse_maxspeed(tag: object, expected: float | None) -> None:
    """Every maxspeed form seen in our extracts parses to km/h, or to None when it has no number."""
    result = parse_maxspeed_kph(tag)
    if expected is None:
        assert result is None
    else:
        assert result == pytest.approx(expected)


@given(st.one_of(st.text(), st.none(), st.floats(), st.lists(st.text(), max_size=3)))
def test_parse_maxspeed_never_raises(tag: object) -> None:
    """Arbitrary tag text gives a positive speed or None, never an exception."""
    result = parse_maxspeed_kph(tag)
    assert result is None or 0 < result <= 300


def test_class_default_when_tag_missing() -> None:
    """Roads without maxspeed drive at their class default; unknown classes at the fallback."""
    assert free_flow_speed_kph("residential", None) == DEFAULT_SPEED_KPH["residential"]
    assert free_flow_speed_kph("primary", "70") == 70.0
    assert free_flow_speed_kph("moon_road", None) == FALLBACK_SPEED_KPH


def test_road_class_of_merged_ways_is_the_major_one() -> None:
    """osmnx merges ways into lists; the busiest class names the edge."""
    assert road_class(["residential", "primary"]) == "primary"
    assert road_class("service") == "service"
    assert road_class(None) == "unclassified"

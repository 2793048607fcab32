"""Where the demo's troubles fall on a dispatched plan: the jam and the long stop early enough
in their routes that several stops lie behind them, the failed stop elsewhere."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from lastmile.demo.trouble import (
    JAM_AFTER,
    JAM_DURATION,
    SLOW_AFTER,
    SLOW_EXTRA,
    choose_disruptions,
    jam_stop,
    stop_after,
)

T0 = datetime(2026, 11, 26, 6, 0, tzinfo=UTC)


def route(vehicle: str, legs_m: list[int], every_min: float = 7.0) -> dict[str, Any]:
    """A route from T0 with a stop every ``every_min`` minutes, legs of ``legs_m``."""
    n = len(legs_m)
    return {
        "vehicle_id": vehicle,
        "start": T0.isoformat(),
        "duration_s": int(n * every_min * 60),
        "stops": [
            {
                "order_id": f"{vehicle}-{k}",
                "arrival": (T0 + timedelta(minutes=(k + 1) * every_min)).isoformat(),
                "distance_from_previous_m": m,
            }
            for k, m in enumerate(legs_m)
        ],
    }


def test_a_trouble_comes_once_the_van_is_under_way_with_stops_behind_it() -> None:
    """Stops every 7 minutes: the first planned 25 minutes or more after the start is the
    4th (28 min); on a short route, the last one that keeps three stops behind it."""
    assert stop_after(route("v", [300] * 12), timedelta(minutes=25)) == 3
    assert stop_after(route("v", [300] * 12), timedelta(minutes=1)) == 1  # never the first
    assert stop_after(route("v", [300] * 6), timedelta(minutes=60)) == 2
    assert stop_after(route("v", [300] * 2), timedelta(minutes=60)) == 1


def test_the_jam_takes_a_leg_long_enough_for_its_queue() -> None:
    """From the 4th stop on: the 5th's leg is the first long one; with none long enough, the
    longest of the three candidates."""
    assert timedelta(minutes=25) == JAM_AFTER
    legs = [900, 300, 300, 200, 800, 900, 300, 300, 300, 300, 300, 300]
    assert jam_stop(route("v", legs)) == 4
    short = [900, 300, 300, 200, 450, 100, 400, 300, 300, 300, 300, 300]
    assert jam_stop(route("v", short)) == 4
    assert jam_stop(route("v", [900, 300, 300, 450, 100, 480, 300, 300, 300, 300])) == 5


def test_the_troubles_fall_on_different_routes_with_stops_behind_them() -> None:
    routes = (
        route("long", [600] * 14, 9.0),
        route("short", [700] * 12, 7.0),
        route("mid", [500] * 13, 8.0),
    )
    disruptions, said = choose_disruptions(routes)
    assert disruptions.jam is not None
    assert disruptions.jam.vehicle_id == "short"
    assert disruptions.jam.order_id == "short-3"
    assert disruptions.jam.duration == JAM_DURATION
    # The long stop on the next shortest route, the first planned 15 minutes or more in.
    assert timedelta(minutes=15) == SLOW_AFTER
    assert disruptions.slow_stops == ("mid-1",)
    assert disruptions.slow_extra == SLOW_EXTRA
    assert disruptions.failed_stops == ("long-12",)
    assert set(said) == {"jam", "slow", "failed"}
    assert "35 min" in said["jam"]

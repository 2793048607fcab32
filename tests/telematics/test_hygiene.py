"""Screening fixes: clock, accuracy, order, duplicates and jumps."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.position import Position
from telematics.hygiene import HygieneParams, Verdict, screen

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
P = HygieneParams()
FIX = Position("van-1", NOW - timedelta(seconds=10), 60.1699, 24.9384, accuracy_m=5)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"fix_time": NOW + timedelta(minutes=10)}, "from_the_future"),
        ({"fix_time": NOW - timedelta(days=8)}, "too_old"),
        ({"accuracy_m": 500.0}, "inaccurate"),
    ],
)
def test_rejections_without_history(change: dict[str, object], reason: str) -> None:
    """A fix from the future, a stale one and an inaccurate one are rejected with reasons."""
    result = screen(replace(FIX, **change), None, NOW, P)  # type: ignore[arg-type]
    assert result.verdict is Verdict.REJECT
    assert result.reason == reason


def test_duplicate_out_of_order_and_jump() -> None:
    """Same time again: duplicate. Older: history only. 5 km in 10 s: implausible."""
    later = replace(FIX, fix_time=FIX.fix_time + timedelta(seconds=10), lat=FIX.lat + 0.0002)
    assert screen(FIX, FIX, NOW, P).reason == "duplicate"
    assert screen(FIX, later, NOW, P).verdict is Verdict.HISTORY_ONLY
    jump = replace(later, lat=FIX.lat + 0.045)
    assert screen(jump, FIX, NOW, P).reason == "implausible_jump"
    assert screen(later, FIX, NOW, P).verdict is Verdict.APPLY


@given(st.floats(min_value=-0.0001, max_value=0.0001), st.integers(1, 600))
def test_jitter_at_a_stop_is_never_a_jump(dlat: float, dt: int) -> None:
    """A few metres of GPS noise is never an implausible jump, however close in time."""
    nxt = replace(FIX, fix_time=FIX.fix_time + timedelta(seconds=dt), lat=FIX.lat + dlat)
    assert screen(nxt, FIX, NOW + timedelta(seconds=dt), P).verdict is Verdict.APPLY

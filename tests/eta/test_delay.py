"""Delay deltas: which new ETAs are worth telling the customer, and which are noise."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import hypothesis.strategies as st
from hypothesis import given

from eta.delay import DelayParams, EtaChanged, Told, WindowBroken, WindowTold, detect
from eta.predict import StopEta

T0 = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)
D = DelayParams(break_confidence=0.0, break_persist_s=0.0)


def _s(x: float) -> timedelta:
    return timedelta(seconds=x)


def eta(at_s: float, half_width_s: float = 900.0) -> StopEta:
    t = T0.timestamp() + at_s
    return StopEta("o1", 0, t, t - half_width_s, t + half_width_s, t + 300)


def told(at_s: float = 3600.0) -> Told:
    e = eta(at_s)
    return Told(1, e.eta_s, e.earliest_s, e.latest_s, T0.timestamp())


def test_first_prediction_is_the_first_window() -> None:
    """Nothing told yet: the first window is told as it is."""
    state, event = detect(None, eta(3600), T0, D)
    assert isinstance(event, WindowTold)
    assert state is not None
    assert state.version == 1


def test_a_move_inside_the_window_is_not_told() -> None:
    """Ten minutes later but still inside the told window: silence."""
    state, event = detect(told(), eta(3600 + 600), T0 + _s(60), D)
    assert event is None
    assert state == told()


def test_leaving_the_window_late_is_told_once() -> None:
    """Past the told window's end by more than the margin: one WindowBroken."""
    t = T0 + _s(600)
    state, event = detect(told(), eta(3600 + 900 + D.break_margin_s + 60), t, D)
    assert isinstance(event, WindowBroken)
    assert event.late
    assert event.version == 2
    assert state is not None
    assert state.eta_s == event.eta.timestamp()
    again, second = detect(state, eta(3600 + 900 + D.break_margin_s + 90), t + _s(60), D)
    assert second is None
    assert again == state


def test_at_the_edge_the_margin_holds() -> None:
    """An ETA just past the window's end (within the margin) breaks nothing."""
    _, event = detect(told(), eta(3600 + 900 + D.break_margin_s - 1), T0 + _s(60), D)
    assert event is None


def test_early_break_is_told_as_early() -> None:
    """Well before the told window: the customer must be told too (not late)."""
    _, event = detect(told(), eta(3600 - 900 - D.break_margin_s - 60), T0 + _s(60), D)
    assert isinstance(event, WindowBroken)
    assert not event.late


def test_a_large_move_inside_a_wide_window_is_told() -> None:
    """A window of hours still gets an update when the ETA moves by more than the threshold."""
    t0 = T0.timestamp()
    wide = Told(1, t0 + 7200, t0, t0 + 14400, t0)
    _, event = detect(wide, eta(7200 + D.change_s + 1), T0 + _s(60), D)
    assert isinstance(event, EtaChanged)
    assert event.late


def test_min_interval_holds_back_a_second_change() -> None:
    """After one delay event, another within the minimum interval waits."""
    state, first = detect(told(), eta(3600 + 2000), T0 + _s(60), D)
    assert first is not None
    assert state is not None
    _, second = detect(state, eta(3600 + 5000), T0 + _s(120), D)
    assert second is None
    _, third = detect(state, eta(3600 + 5000), T0 + _s(60 + D.min_interval_s), D)
    assert isinstance(third, WindowBroken)


@given(st.lists(st.floats(-300, 300), min_size=1, max_size=200))
def test_wobble_never_streams(wobble: list[float]) -> None:
    """An ETA wobbling by up to 5 minutes around the told one, once a minute, tells nothing."""
    state: Told | None = told()
    for i, w in enumerate(wobble):
        state, event = detect(state, eta(3600 + w), T0 + _s(60 * (i + 1)), D)
        assert event is None


def test_confidence_waits_for_the_near_edge() -> None:
    """With full confidence asked, an ETA past the told end is not yet a break while the
    new window's early edge is still inside the told window."""
    sure = DelayParams(break_confidence=1.0, break_persist_s=0.0)
    past_end = eta(3600 + 900 + sure.break_margin_s + 60, half_width_s=600)
    _, event = detect(told(), past_end, T0 + _s(60), sure)
    assert event is None
    _, event = detect(told(), eta(3600 + 900 + sure.break_margin_s + 700, 600), T0 + _s(60), sure)
    assert isinstance(event, WindowBroken)


def test_a_break_is_told_even_close_to_the_door() -> None:
    """Two minutes from arrival, a broken window is still told; a mere change is not."""
    now = T0 + _s(3600 + 900 + 300)
    _, event = detect(told(), eta(3600 + 900 + 420, 60), now, D)
    assert isinstance(event, WindowBroken)


def test_a_break_must_persist_before_it_is_told() -> None:
    """A break that heals within the persistence time tells nothing; one that lasts is told
    once it has lasted."""
    slow = DelayParams(break_confidence=0.0, break_persist_s=120.0)
    late = eta(3600 + 900 + slow.break_margin_s + 300)
    state, event = detect(told(), late, T0 + _s(60), slow)
    assert event is None
    state, event = detect(state, eta(3600), T0 + _s(120), slow)  # healed
    assert event is None
    state, event = detect(state, late, T0 + _s(150), slow)
    assert event is None
    state, event = detect(state, late, T0 + _s(150 + 60), slow)
    assert event is None
    _, event = detect(state, late, T0 + _s(150 + 120), slow)
    assert isinstance(event, WindowBroken)

"""The promise's figures (eta/promise.py): each definition of docs/accuracy.md on small days
worked by hand, and the invariants any day keeps."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from eta.promise import (
    DelayNotice,
    StopPromise,
    ToldWindow,
    WindowSample,
    horizon_bucket,
    notice_lead_s,
    promise_figures,
    told_stop,
)

T = 1_775_000_000.0
MIN = 60.0


def stop(
    name: str,
    actual_min: float | None,
    *,
    window: tuple[float, float] | None = (0, 60),
    notices: tuple[tuple[float, float], ...] = (),
    messages: int | None = None,
) -> StopPromise:
    """Times in minutes after T."""
    return StopPromise(
        name,
        None if window is None else T + window[0] * MIN,
        None if window is None else T + window[1] * MIN,
        None if actual_min is None else T + actual_min * MIN,
        tuple(DelayNotice(T + at * MIN, T + end * MIN) for at, end in notices),
        len(notices) if messages is None else messages,
    )


def test_first_window_hit_and_width() -> None:
    f = promise_figures(
        [
            stop("a", 30),
            stop("b", 59.9),
            stop("c", 61),  # late by a minute: a miss, not material
            stop("d", 30, window=(0, 30)),
            stop("never", None),
            stop("untold", 10, window=None),
        ]
    )
    assert f["first_window_hit"] == 0.75
    assert f["first_window_width_min"] == 60.0
    assert f["stops_scored"] == 4
    assert f["stops_unscored"] == 2
    assert f["material_delays"] == 0
    assert f["material_delay_recall"] is None


def test_material_delays_told_at_least_15_minutes_ahead() -> None:
    f = promise_figures(
        [
            stop("told-early", 100, notices=((60, 60),)),  # 40 min ahead
            stop("told-late", 100, notices=((90, 60),)),  # 10 min ahead: too late
            stop("untold", 100),
            stop("exactly-15", 100, notices=((85, 60),)),
            stop("ten-past", 70),  # 10 min past the window: not material (more than 10)
        ]
    )
    assert f["material_delays"] == 4
    assert f["material_delays_told_15min_ahead"] == 2
    assert f["material_delay_recall"] == 0.5
    # Leads of the three told before arrival: 40, 10 and 15 minutes.
    assert f["lead_time_median_min"] == 15.0


def test_the_lead_is_from_the_first_late_notice() -> None:
    s = stop("a", 120, notices=((50, 60), (90, 80)))
    assert notice_lead_s(s) == 70 * MIN
    assert notice_lead_s(stop("b", 120)) is None
    # A notice after the van came is no notice.
    assert notice_lead_s(stop("c", 120, notices=((121, 60),))) is None


def test_a_late_notice_is_true_when_the_van_comes_after_the_window_it_said_was_broken() -> None:
    f = promise_figures(
        [
            stop("true", 75, notices=((40, 60),)),
            stop("false", 55, notices=((40, 60),)),  # came inside the window after all
            # The second notice said a later window (to 90) was broken; the van came at 85.
            stop("second-false", 85, notices=((40, 60), (70, 90))),
            stop("never-came", None, notices=((40, 60),)),  # left out
        ]
    )
    assert f["late_notices"] == 4
    assert f["late_notice_precision"] == 0.5


def test_messages_per_stop_is_the_mean_over_scored_stops() -> None:
    f = promise_figures([stop("a", 30, messages=0), stop("b", 30, messages=3)])
    assert f["messages_per_stop"] == 1.5


def test_coverage_by_horizon() -> None:
    def sample(at_min: float, lo: float, hi: float, actual: float) -> WindowSample:
        return WindowSample(T + at_min * MIN, T + lo * MIN, T + hi * MIN, T + actual * MIN)

    samples = [
        sample(0, 5, 10, 8),  # horizon 8 min, inside
        sample(0, 5, 10, 9.5),  # inside
        sample(0, 20, 30, 25),  # 25 min, inside
        sample(0, 20, 30, 31),  # 31 min, outside
        sample(0, 80, 100, 90),  # 90 min, inside
        sample(10, 0, 5, 5),  # at the window's end: inside; horizon -5: not scored
    ]
    f = promise_figures([], samples)
    assert f["coverage_by_horizon"] == {"0-10": 1.0, "10-30": 1.0, "30-60": 0.0, "60+": 1.0}
    assert f["coverage"] == 0.8
    assert f["window_samples"] == 5
    assert f["window_width_min_by_horizon"]["0-10"] == 5.0


def test_horizon_buckets_are_closed_below_open_above() -> None:
    assert horizon_bucket(0) == "0-10"
    assert horizon_bucket(10 * MIN) == "10-30"
    assert horizon_bucket(59.9 * MIN) == "30-60"
    assert horizon_bucket(600 * MIN) == "60+"
    assert horizon_bucket(-1) is None


minutes = st.floats(min_value=0, max_value=600, allow_nan=False)


@st.composite
def stops(draw: st.DrawFn) -> StopPromise:
    lo = draw(minutes)
    hi = lo + draw(st.floats(min_value=0, max_value=240))
    actual = draw(st.none() | minutes)
    notices = draw(st.lists(st.tuples(minutes, minutes), max_size=3))
    return stop("s", actual, window=(lo, hi), notices=tuple(notices))


@given(st.lists(stops(), max_size=30))
def test_shares_are_shares_and_counts_add_up(day: list[StopPromise]) -> None:
    f = promise_figures(day)
    for key in ("first_window_hit", "material_delay_recall", "late_notice_precision"):
        assert f[key] is None or 0.0 <= f[key] <= 1.0  # type: ignore[operator]
    assert 0 <= f["material_delays_told_15min_ahead"] <= f["material_delays"]  # type: ignore[operator]
    assert f["material_delays"] <= f["stops_scored"]  # type: ignore[operator]
    assert f["stops_scored"] + f["stops_unscored"] == len(day)  # type: ignore[operator]
    lead = f["lead_time_median_min"]
    assert lead is None or lead >= 0  # type: ignore[operator]


def test_told_stop_finds_the_late_notices_among_the_windows_sent() -> None:
    """Each window sent after the first that ends later than the one held is a notice against
    that one's end, whatever message carried it; a window moved earlier is held from then on
    (the next later one is judged against it)."""
    first = ToldWindow(T, T + 60 * MIN, T + 90 * MIN)
    later = [
        ToldWindow(T + 50 * MIN, T + 70 * MIN, T + 100 * MIN),  # later: notice vs 90
        ToldWindow(T + 20 * MIN, T + 50 * MIN, T + 80 * MIN),  # sent first: earlier, held
        ToldWindow(T + 60 * MIN, T + 65 * MIN, T + 95 * MIN),  # earlier than 100: held
    ]
    record = told_stop("s", first, later, T + 110 * MIN)
    assert record.late_notices == (DelayNotice(T + 50 * MIN, T + 80 * MIN),)
    assert record.messages == 3
    assert (record.first_earliest_s, record.first_latest_s) == (T + 60 * MIN, T + 90 * MIN)
    assert told_stop("s", None, later, None, messages=5).late_notices == ()
    assert told_stop("s", None, later, None, messages=5).messages == 5

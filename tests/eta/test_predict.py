"""The ETA core's forecasts: the static schedule, the leg under way, stops, waits, breaks."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import hypothesis.strategies as st
from hypothesis import given, settings

from eta.pace import Pace, learn
from eta.params import EtaParams
from eta.predict import predict
from eta.progress import RouteProgress, StopVisit, not_started
from eta.route import EtaBreak, EtaRoute, EtaStop, eta_route

T0 = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)
P = EtaParams()


def _s(x: float) -> timedelta:
    return timedelta(seconds=x)


def line_route(n: int = 3, leg_s: float = 600.0, service_s: float = 300.0) -> EtaRoute:
    stops = [EtaStop(f"o{k}", 1000.0 * (k + 1), leg_s, service_s) for k in range(n)]
    return eta_route("v1", "p1", T0, stops)


def test_not_started_is_the_planned_schedule() -> None:
    """Before the vehicle moves, ETAs are the plan: drive, serve, drive..."""
    etas = predict(line_route(), not_started(3), T0, P, Pace())
    assert [e.eta for e in etas] == [T0 + _s(600), T0 + _s(1500), T0 + _s(2400)]
    assert all(e.earliest <= e.eta <= e.latest for e in etas)


def test_window_wait_delays_the_following_stops() -> None:
    """Arriving before a window opens means waiting, and everything after moves."""
    stops = [
        EtaStop("o0", 1000.0, 600.0, 300.0, ((T0 + _s(3600), T0 + _s(7200)),)),
        EtaStop("o1", 2000.0, 600.0, 300.0),
    ]
    etas = predict(eta_route("v", "p", T0, stops), not_started(2), T0, P, Pace())
    assert etas[0].eta == T0 + _s(600)
    assert etas[0].departure == T0 + _s(3900)
    assert etas[1].eta == T0 + _s(4500)


def test_mid_leg_counts_only_the_distance_left() -> None:
    """Halfway along the first leg, half its drive time remains."""
    progress = RouteProgress(T0 + _s(300), 500.0, T0, (StopVisit(), StopVisit(), StopVisit()))
    etas = predict(line_route(), progress, T0 + _s(300), P, Pace())
    assert etas[0].eta == T0 + _s(600)


def test_standing_still_pushes_the_eta_with_the_clock() -> None:
    """A vehicle stuck where it was: the ETA is now plus what is left, not the old plan."""
    progress = RouteProgress(T0 + _s(1200), 500.0, T0, (StopVisit(), StopVisit(), StopVisit()))
    etas = predict(line_route(), progress, T0 + _s(1200), P, Pace())
    assert etas[0].eta == T0 + _s(1500)


def test_at_a_stop_the_service_left_is_counted() -> None:
    """Arrived two minutes ago with five planned: three remain before driving on."""
    visits = (StopVisit(T0 + _s(600)), StopVisit(), StopVisit())
    now = T0 + _s(720)
    progress = RouteProgress(now, 1000.0, T0, visits)
    etas = predict(line_route(), progress, now, P, Pace())
    assert etas[0].arrived
    assert etas[0].eta == T0 + _s(600)
    assert etas[1].eta == now + _s(180 + 600)


def test_overrun_stop_still_gets_minimum_remaining_service() -> None:
    """A stop already longer than planned is not assumed to end this very second."""
    visits = (StopVisit(T0 + _s(600)), StopVisit(), StopVisit())
    now = T0 + _s(600 + 900)
    etas = predict(line_route(), RouteProgress(now, 1000.0, T0, visits), now, P, Pace())
    assert etas[1].eta == now + _s(P.min_remaining_service_s + 600)


def test_pace_scales_drives_and_services() -> None:
    """A vehicle 50% slower than planned gets proportionally later ETAs."""
    etas = predict(line_route(), not_started(3), T0, P, Pace(travel=1.5, service=2.0))
    assert etas[0].eta == T0 + _s(900)
    assert etas[1].eta == T0 + _s(900 + 600 + 900)


def test_a_break_ahead_is_taken_once() -> None:
    """A planned 30-minute break between stops pushes the later stops by 30 minutes."""
    route = eta_route(
        "v",
        "p",
        T0,
        [EtaStop(f"o{k}", 1000.0 * (k + 1), 600.0, 300.0) for k in range(3)],
        [EtaBreak(T0 + _s(1000), 1800.0)],
    )
    etas = predict(route, not_started(3), T0, P, Pace())
    assert [e.eta for e in etas] == [T0 + _s(600), T0 + _s(3300), T0 + _s(4200)]


def test_learned_pace_follows_slow_legs() -> None:
    """Legs driven 1.5x slower than planned pull the pace towards 1.5, not past it."""
    route = line_route(4)
    visits = (
        StopVisit(T0 + _s(900), T0 + _s(1200)),
        StopVisit(T0 + _s(2100), T0 + _s(2400)),
        StopVisit(),
        StopVisit(),
    )
    pace = learn(route, RouteProgress(T0 + _s(2400), 2000.0, T0, visits), P)
    assert 1.05 < pace.travel < 1.5
    assert abs(pace.service - 1.0) < 1e-9


def test_one_absurd_leg_is_clamped() -> None:
    """A leg ten times slower (a lunch in the van) cannot triple every later ETA."""
    route = line_route(3)
    visits = (StopVisit(T0 + _s(6000), T0 + _s(6300)), StopVisit(), StopVisit())
    pace = learn(route, RouteProgress(T0 + _s(6300), 1000.0, T0, visits), P)
    assert pace.travel < P.leg_ratio_bounds[1]


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[EtaRoute, RouteProgress, datetime]:
    n = draw(st.integers(1, 8))
    along = 0.0
    stops = []
    for k in range(n):
        along += draw(st.floats(0, 5000))
        opens = draw(st.floats(0, 20000))
        windows = (
            ((T0 + _s(opens), T0 + _s(opens + draw(st.floats(0, 7200)))),)
            if draw(st.booleans())
            else ()
        )
        stops.append(
            EtaStop(f"o{k}", along, draw(st.floats(0, 3000)), draw(st.floats(0, 900)), windows)
        )
    route = eta_route("v", "p", T0, stops, [EtaBreak(T0 + _s(draw(st.floats(0, 20000))), 1800)])
    done = draw(st.integers(0, n))
    t = T0
    visits = []
    for k in range(n):
        if k < done:
            t += _s(draw(st.floats(0, 3000)))
            arrived = t
            t += _s(draw(st.floats(0, 900)))
            visits.append(StopVisit(arrived, t))
        elif k == done and draw(st.booleans()):
            t += _s(draw(st.floats(0, 3000)))
            visits.append(StopVisit(t))
        else:
            visits.append(StopVisit())
    fix = t + _s(draw(st.floats(0, 600)))
    now = fix + _s(draw(st.floats(0, 3600)))
    progress = RouteProgress(fix, draw(st.floats(0, along + 100)), T0, tuple(visits))
    return route, progress, now


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_etas_never_before_now_and_never_decrease(
    case: tuple[EtaRoute, RouteProgress, datetime],
) -> None:
    """Whatever the progress: no ETA before now (unless arrived), none earlier than the
    stop before it, and each window holds its ETA."""
    route, progress, now = case
    etas = predict(route, progress, now, P)
    assert len(etas) == len(route.stops) - progress.next_stop
    for a, b in itertools.pairwise(etas):
        assert b.eta >= a.eta
    for e in etas:
        if not e.arrived:
            assert e.eta >= now
            assert e.earliest >= now
        assert e.earliest <= e.eta <= e.latest

"""A silent vehicle (no fix for longer than the caller's threshold) in the ETA core: taken to
stand where it was last seen, so what is left of its route starts now (issue 21, item 4).

Without the flag the core only clamps each arrival to now: an ETA stays put until now reaches
it, then rides along with now as if the whole leg had been driven meanwhile."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import datetime

from hypothesis import given, settings

from eta.pace import Pace
from eta.params import EtaParams
from eta.predict import predict
from eta.progress import RouteProgress, StopVisit
from eta.route import EtaRoute
from tests.eta.test_predict import T0, _s, line_route, scenarios

P = EtaParams()
#: Halfway along the first 600 s leg at T0+300: 300 s of driving left.
HALFWAY = RouteProgress(T0 + _s(300), 500.0, T0, (StopVisit(), StopVisit(), StopVisit()))


def test_without_the_flag_an_old_fix_holds_the_eta_then_assumes_the_leg_driven() -> None:
    """Twenty minutes after the last fix the first stop is due "now": the clamp alone."""
    early = predict(line_route(), HALFWAY, T0 + _s(400), P, Pace())
    assert early[0].eta == T0 + _s(600)  # fixed while now advances
    late = predict(line_route(), HALFWAY, T0 + _s(1500), P, Pace())
    assert late[0].eta == T0 + _s(1500)


def test_a_silent_vehicle_has_what_is_left_ahead_of_it_from_now() -> None:
    """Silent: the 300 s still to drive start now, and every later stop follows; each
    minute of silence moves every ETA a minute later."""
    silent = replace(HALFWAY, silent=True)
    now = T0 + _s(1500)
    etas = predict(line_route(), silent, now, P, Pace())
    assert etas[0].eta == now + _s(300)
    assert etas[1].eta == now + _s(300 + 300 + 600)
    later = predict(line_route(), silent, now + _s(60), P, Pace())
    assert [b.eta - a.eta for a, b in zip(etas, later, strict=True)] == [_s(60)] * 3


def test_silent_with_a_fresh_fix_changes_nothing() -> None:
    """At the fix's own time the flag makes no difference."""
    now = HALFWAY.fix_time
    assert now is not None
    assert predict(line_route(), replace(HALFWAY, silent=True), now, P, Pace()) == predict(
        line_route(), HALFWAY, now, P, Pace()
    )


def test_silent_at_a_stop_is_still_there() -> None:
    """Last seen at a stop: still being served (at least the minimum left), then on."""
    visits = (StopVisit(T0 + _s(600)), StopVisit(), StopVisit())
    progress = RouteProgress(T0 + _s(620), 1000.0, T0, visits, silent=True)
    now = T0 + _s(3600)
    etas = predict(line_route(), progress, now, P, Pace())
    assert etas[0].arrived
    assert etas[1].eta == now + _s(P.min_remaining_service_s + 600)


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_silent_etas_never_before_now_and_never_decrease(
    case: tuple[EtaRoute, RouteProgress, datetime],
) -> None:
    """The core's promises hold for a silent vehicle too."""
    route, progress, now = case
    etas = predict(route, replace(progress, silent=True), now, P)
    assert len(etas) == len(route.stops) - progress.next_stop
    for a, b in itertools.pairwise(etas):
        assert b.eta >= a.eta
    for e in etas:
        if not e.arrived:
            assert e.eta >= now
            assert e.earliest >= now
        assert e.earliest <= e.eta <= e.latest

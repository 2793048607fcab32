"""The independent validator catches each kind of broken plan."""

from __future__ import annotations

from dataclasses import replace

from routing.model import RouteResult, SolverResult, Visit
from routing.validator import check, route_loads
from tests.routing.models import line_model


def _result(*routes: RouteResult, dropped: tuple[int, ...] = ()) -> SolverResult:
    return SolverResult(tuple(routes), dropped, 0, "test", "test")


def test_a_correct_schedule_passes() -> None:
    """Depot -> 10 -> 20 -> depot with exact times has no violation."""
    model = line_model([10, 20])
    route = RouteResult(0, (Visit(0, 0), Visit(1, 10), Visit(2, 30), Visit(0, 60)))
    assert check(model, _result(route)) == []


def test_arriving_too_early_is_caught() -> None:
    """Starting service before the vehicle can have driven there is a violation."""
    model = line_model([10, 20])
    route = RouteResult(0, (Visit(0, 0), Visit(1, 5), Visit(2, 30), Visit(0, 60)))
    assert any("cannot arrive before" in v.what for v in check(model, _result(route)))


def test_window_capacity_and_shift_violations_are_caught() -> None:
    """Outside a window, over capacity and past the shift: each is reported."""
    model = line_model([10, 20], windows={2: (100, 200)}, capacity=(1,), shift_end_s=50)
    route = RouteResult(0, (Visit(0, 0), Visit(1, 10), Visit(2, 30), Visit(0, 60)))
    whats = " | ".join(v.what for v in check(model, _result(route)))
    assert "outside its windows" in whats
    assert "load [2] outside" in whats
    assert "after the shift" in whats


def test_missing_and_duplicated_orders_are_caught() -> None:
    """An order served twice, and one neither served nor dropped, are both violations."""
    model = line_model([10, 20, 30])
    route = RouteResult(0, (Visit(0, 0), Visit(1, 10), Visit(1, 20), Visit(0, 40)))
    whats = [v.what for v in check(model, _result(route))]
    assert "order served twice" in whats
    assert whats.count("order neither served nor reported dropped") == 2


def test_split_or_reversed_pairs_are_caught() -> None:
    """A pair's delivery before its pickup is a violation."""
    model = replace(line_model([10, 20]), pairs=((2, 1),))
    route = RouteResult(0, (Visit(0, 0), Visit(1, 10), Visit(2, 30), Visit(0, 60)))
    assert any("before its pickup" in v.what for v in check(model, _result(route)))


def test_loads_count_deliveries_from_the_start_and_pairs_in_between() -> None:
    """Plain deliveries start on board; a pair's goods ride from pickup to delivery."""
    model = replace(line_model([10, 20, 30], demand=(2,)), pairs=((1, 3),))
    route = RouteResult(0, (Visit(0, 0), Visit(1, 10), Visit(2, 30), Visit(3, 50), Visit(0, 90)))
    assert route_loads(model, route) == [[2], [4], [2], [0]]

"""The engines on small integer models: constraints honoured, results checked."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routing import hgs, optimiser, portfolio
from routing.costs import SolverParams, objective
from routing.model import OrderNode
from routing.validator import check
from tests.routing.models import line_model

FAST = SolverParams(time_limit_s=0.6, safety_margin_s=0.1)


def test_ortools_serves_everything_and_passes_the_validator() -> None:
    """Ten orders on a line, one vehicle: all served, no violation."""
    model = line_model(list(range(10, 110, 10)))
    result = optimiser.solve(model, FAST)
    assert not result.dropped
    assert check(model, result) == []


def test_fewest_vehicles_first() -> None:
    """Two vehicles available, one suffices: only one is used."""
    model = line_model([10, 20, 30], vehicles=2)
    result = portfolio.solve(model, FAST)
    assert result.vehicles_used == 1


def test_capacity_forces_a_second_vehicle() -> None:
    """Capacity 2 with three unit orders needs two vehicles."""
    model = line_model([10, 20, 30], vehicles=3, capacity=(2,))
    result = optimiser.solve(model, FAST)
    assert result.vehicles_used == 2
    assert check(model, result) == []


def test_pickup_before_delivery_on_one_vehicle() -> None:
    """A pair whose delivery lies on the way out is still visited pickup first."""
    model = replace(line_model([10, 50, 30], vehicles=2), pairs=((2, 1),))
    result = optimiser.solve(model, FAST)
    assert check(model, result) == []
    route = next(r for r in result.routes if 2 in r.order_nodes)
    assert route.order_nodes.index(2) < route.order_nodes.index(1)


def test_skills_restrict_vehicles() -> None:
    """An order needing a skill goes to the one vehicle that has it."""
    base = line_model([10, 20], vehicles=2)
    skilled = replace(base.vehicles[1], skills=frozenset({"fridge"}))
    orders = (replace(base.orders[0], skills=frozenset({"fridge"})), base.orders[1])
    model = replace(base, vehicles=(base.vehicles[0], skilled), orders=orders)
    result = optimiser.solve(model, FAST)
    assert check(model, result) == []
    assert 1 in result.routes[1].order_nodes


def test_breaks_are_taken_within_their_window() -> None:
    """A 30 s break that must start between 15 and 25 is placed there, between visits."""
    base = line_model([10, 20, 30])
    vehicle = replace(base.vehicles[0], breaks=((30, 15, 25),))
    model = replace(base, vehicles=(vehicle,))
    result = optimiser.solve(model, FAST)
    assert check(model, result) == []
    ((start, duration),) = result.routes[0].breaks
    assert 15 <= start <= 25
    assert duration == 30


def test_several_windows_per_order() -> None:
    """An order open at 0-5 or 200-300, unreachable by 5, is served in its second window."""
    base = line_model([100])
    order = replace(base.orders[0], windows=((0, 5), (200, 300)))
    model = replace(base, orders=(order,))
    result = optimiser.solve(model, FAST)
    assert check(model, result) == []
    assert 200 <= result.routes[0].visits[1].start_s <= 300


def test_optional_order_too_costly_is_dropped() -> None:
    """An optional order 5 km away with a penalty of 10 is left out; the rest are served."""
    base = line_model([10, 20, 5000])
    far = replace(base.orders[2], penalty=10)
    model = replace(base, orders=(*base.orders[:2], far))
    result = portfolio.solve(model, FAST)
    assert result.dropped == (3,)


def test_committed_stops_stay_first() -> None:
    """A vehicle committed to the farthest order goes there first."""
    base = line_model([10, 20, 30])
    vehicle = replace(base.vehicles[0], committed=(3,))
    model = replace(base, vehicles=(vehicle,))
    result = optimiser.solve(model, FAST)
    assert check(model, result) == []
    assert result.routes[0].order_nodes[0] == 3


def test_pyvrp_expresses_plain_models_only() -> None:
    """PyVRP takes plain time-window models and declines breaks and pairs, saying why."""
    plain = line_model([10, 20])
    assert hgs.expressible(plain, FAST) is None
    with_pair = replace(plain, pairs=((1, 2),))
    assert hgs.expressible(with_pair, FAST) == "pickup-and-delivery pairs"
    vehicle = replace(plain.vehicles[0], breaks=((10, 0, 100),))
    assert hgs.expressible(replace(plain, vehicles=(vehicle,)), FAST) == "breaks"


def test_portfolio_keeps_the_best_checked_plan() -> None:
    """The portfolio's answer is never worse than either engine's alone."""
    model = line_model([10, 60, 20, 80, 40], vehicles=2, windows={2: (50, 80), 4: (0, 200)})
    params = SolverParams(time_limit_s=1.0, safety_margin_s=0.1)
    best = portfolio.solve(model, params)
    alone = optimiser.solve(model, params)
    assert check(model, best) == []
    assert objective(model, params, best) <= objective(model, params, alone)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.integers(1, 300), min_size=1, max_size=7),
    st.lists(st.tuples(st.integers(0, 400), st.integers(0, 200)), min_size=7, max_size=7),
    st.integers(1, 3),
)
def test_every_order_served_once_or_reported(
    positions: list[int], raw_windows: list[tuple[int, int]], capacity: int
) -> None:
    """Whatever the windows and capacity, each order is served once or reported dropped,
    and what is served passes the validator."""
    windows = {i + 1: (s, s + w) for i, (s, w) in enumerate(raw_windows[: len(positions)])}
    model = line_model(positions, vehicles=2, capacity=(capacity,), windows=windows)
    result = optimiser.solve(model, SolverParams(time_limit_s=0.3, safety_margin_s=0.05))
    served = [n for r in result.routes for n in r.order_nodes]
    assert sorted(served + list(result.dropped)) == [o.node for o in model.orders]
    assert check(model, result) == []


def test_nodes_are_typed() -> None:
    """OrderNode defaults: mandatory, no skills, no told window."""
    node = OrderNode(1, (), 0, ())
    assert node.penalty is None
    assert node.told_window is None


def test_lower_priority_order_is_left_out_first() -> None:
    """Room for one of two mandatory orders: the higher-priority one is served, by both engines."""
    base = line_model([10, 20], capacity=(1,))
    urgent = replace(base.orders[1], priority=50)
    model = replace(base, orders=(base.orders[0], urgent))
    assert optimiser.solve(model, FAST).dropped == (1,)
    assert portfolio.solve(model, FAST).dropped == (1,)

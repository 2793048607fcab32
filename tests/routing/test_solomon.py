"""Solomon instances: reading, and solving tight windows feasibly."""

from __future__ import annotations

from pathlib import Path

import pytest

from routing import optimiser, portfolio
from routing.costs import SolverParams
from routing.solomon import SolomonFormatError, exact_distance, read_solomon, solomon_model
from routing.validator import check
from tests.conftest import shared_file

DISTANCE = SolverParams(time_limit_s=3, travel_time_weight=0, distance_weight=1)


def _instance(name: str) -> Path:
    return shared_file("benchmarks", "solomon", "instances", f"{name}.txt")


def test_reads_an_instance() -> None:
    """R101: 100 customers, 25 vehicles of capacity 200, the depot's due date as horizon."""
    inst = read_solomon(_instance("R101"))
    assert inst.name == "R101"
    assert inst.customers == 100
    assert (inst.vehicles, inst.capacity) == (25, 200)
    assert inst.due[0] == 230
    model = solomon_model(inst)
    assert len(model.orders) == 100
    assert model.vehicles[0].shift_end_s == 23000


@pytest.mark.parametrize("name", ["R101", "RC105"])
def test_ortools_alone_is_feasible_on_tight_windows(name: str) -> None:
    """Where cheapest-arc + GLS finds nothing in 10 s, our OR-Tools search serves every
    customer in 3 s, and the validator agrees."""
    inst = read_solomon(_instance(name))
    model = solomon_model(inst)
    result = optimiser.solve(model, DISTANCE)
    assert not result.dropped
    assert check(model, result) == []


def test_portfolio_on_c101_finds_the_best_known() -> None:
    """C101 is easy: 10 vehicles and 828.94, the best known, within 3 s."""
    inst = read_solomon(_instance("C101"))
    model = solomon_model(inst)
    result = portfolio.solve(model, DISTANCE)
    routes = [list(r.order_nodes) for r in result.routes if r.order_nodes]
    assert len(routes) == 10
    assert exact_distance(inst, routes) == pytest.approx(828.94, abs=0.01)


def test_bad_file_names_the_line(tmp_path: Path) -> None:
    """A row with missing columns is reported with its file and line."""
    bad = tmp_path / "bad.txt"
    rows = ["X1", "", "VEHICLE", "NUMBER CAPACITY", " 2 10", "", "CUSTOMER", "hdr"]
    bad.write_text("\n".join([*rows, " 0 0 0 0 0 100 0", " 1 5 5", ""]))
    with pytest.raises(SolomonFormatError, match=r"bad.txt:\d+: expected 7 columns"):
        read_solomon(bad)

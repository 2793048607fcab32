"""VROOM's problem format in, a VROOM-like plan out."""

from __future__ import annotations

import json
from pathlib import Path

from routing.costs import SolverParams
from routing.road_graph import RoadGraph
from routing.snapping import Snapper
from routing.vroom_format import read_vroom, solve_vroom

GOLDEN = Path(__file__).parent / "golden"
QUICK = SolverParams(time_limit_s=1.0, safety_margin_s=0.2)


def _problem() -> dict[str, object]:
    loaded: dict[str, object] = json.loads((GOLDEN / "vroom_matrix_problem.json").read_text())
    return loaded


def test_matrix_problem_is_planned_with_steps_and_reasons() -> None:
    """Jobs and a shipment on the user's own matrix: steps in order, skills honoured, the
    over-sized job reported unassigned with its reason."""
    out = solve_vroom(_problem(), QUICK)
    assert out["code"] == 0
    assert [u["id"] for u in out["unassigned"]] == [14]
    assert "capacity" in out["unassigned"][0]["reason"]
    steps = {
        (s["type"], s.get("id")): (r["vehicle"], k)
        for r in out["routes"]
        for k, s in enumerate(r["steps"])
    }
    assert steps[("job", 12)][0] == 1  # the only vehicle with skill 1
    pickup, delivery = steps[("pickup", 21)], steps[("delivery", 22)]
    assert pickup[0] == delivery[0]
    assert pickup[1] < delivery[1]
    for route in out["routes"]:
        assert route["steps"][0]["type"] == "start"
        assert route["steps"][-1]["type"] == "end"
        arrivals = [s["arrival"] for s in route["steps"]]
        assert arrivals == sorted(arrivals)
    job11 = next(s for r in out["routes"] for s in r["steps"] if s.get("id") == 11)
    assert job11["arrival"] + job11["waiting_time"] <= 3000
    assert out["summary"]["unassigned"] == 1


def test_input_errors_come_back_as_code_2_with_paths() -> None:
    """Bad input is an answer, not a crash: code 2, every problem with its path."""
    doc = _problem()
    doc["jobs"] = [{"id": "x"}, {"id": 5}, {"id": 6, "location": ["a", 1]}]  # type: ignore[index]
    out = solve_vroom(doc, QUICK)
    assert out["code"] == 2
    fields = [p["field"] for p in out["problems"]]
    assert fields == ["jobs[0].id", "jobs[1]", "jobs[2].location"]


def test_coordinates_without_matrices_use_the_road_network(
    helsinki: RoadGraph, helsinki_snapper: Snapper
) -> None:
    """With [lon, lat] locations and no matrix, travel times come from the roads."""
    doc = {
        "vehicles": [{"id": 7, "start": [24.9433, 60.1665], "end": [24.9433, 60.1665]}],
        "jobs": [
            {"id": 1, "location": [24.9500, 60.1700], "service": 120},
            {"id": 2, "location": [24.9400, 60.1620], "service": 120},
        ],
    }
    out = solve_vroom(doc, QUICK, graph=helsinki, snapper=helsinki_snapper)
    assert out["code"] == 0
    (route,) = out["routes"]
    assert route["vehicle"] == 7
    assert sorted(s["id"] for s in route["steps"] if s["type"] == "job") == [1, 2]
    assert route["distance"] > 500
    assert route["steps"][1]["location"] in ([24.95, 60.17], [24.94, 60.162])


def test_read_keeps_ids_and_kinds() -> None:
    """Jobs, pickups and deliveries keep the user's ids and types."""
    vin = read_vroom(_problem())
    assert vin.order_kind["job-11"] == ("job", 11)
    assert vin.order_kind["pickup-21"] == ("pickup", 21)
    assert vin.matrix is not None
    assert vin.matrix.duration_s.shape == (1 + 6, 1 + 6)

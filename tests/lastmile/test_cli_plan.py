"""`lastmile plan`: every option works on both input kinds (our problem file and VROOM's) or
stops the command with an error naming it. Each test looks at what its option should change,
so an option silently ignored fails it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from domain.geo import LatLon, haversine_m
from lastmile.cli import app
from routing import portfolio
from routing.costs import SolverParams
from routing.geometry import decode_polyline, encode_polyline
from routing.model import SolverModel, SolverResult
from tests.routing.osm_samples import LAT0, LON0, STEP, grid_osm_xml

runner = CliRunner()
TESTS = Path(__file__).resolve().parents[1]
#: Our problem file: two vans from one depot in central Helsinki.
OURS = TESTS / "api" / "golden_problem.json"
#: A VROOM problem on its own matrices, its locations only matrix indices (no coordinates).
VROOM_INDICES = TESTS / "routing" / "golden" / "vroom_matrix_problem.json"
DEPOT = [24.9433, 60.1665]
JOBS = {1: [24.9500, 60.1700], 2: [24.9400, 60.1620], 3: [24.9450, 60.1680]}
#: Which problem each input kind is: ours, VROOM on the roads, VROOM on its own matrices.
KINDS = ["ours", "vroom-roads", "vroom-matrices"]


def vroom_on_roads() -> dict[str, Any]:
    """A VROOM problem with coordinates and no matrices: planned on the road network."""
    return {
        "vehicles": [{"id": 7, "start": DEPOT, "end": DEPOT}],
        "jobs": [{"id": k, "location": where, "service": 120} for k, where in JOBS.items()],
    }


def vroom_on_matrices() -> dict[str, Any]:
    """The same places with coordinates and a location_index each, planned on its matrices."""
    durations = [[0, 300, 200, 250], [300, 0, 400, 150], [200, 400, 0, 260], [250, 150, 260, 0]]
    return {
        "vehicles": [{"id": 7, "start": DEPOT, "start_index": 0, "end": DEPOT, "end_index": 0}],
        "jobs": [
            {"id": k, "location": where, "location_index": k, "service": 120}
            for k, where in JOBS.items()
        ],
        "matrices": {
            "car": {
                "durations": durations,
                "distances": [[d * 10 for d in row] for row in durations],
            }
        },
    }


def problem_file(kind: str, folder: Path) -> Path:
    if kind == "ours":
        return OURS
    path = folder / f"{kind}.json"
    path.write_text(json.dumps(vroom_on_roads() if kind == "vroom-roads" else vroom_on_matrices()))
    return path


def plan(*args: str | Path) -> Result:
    return runner.invoke(app, ["plan", *(str(a) for a in args)])


def routes_with_stops(kind: str, result: dict[str, Any]) -> list[dict[str, Any]]:
    if kind == "ours":
        return [r for r in result["routes"] if r["stops"]]
    assert result["code"] == 0, result
    return list(result["routes"])


@pytest.mark.parametrize("kind", KINDS)
def test_out_writes_the_plan_to_the_file_not_stdout(kind: str, tmp_path: Path) -> None:
    """--out: the plan goes to the file; stdout has no plan."""
    out = tmp_path / "plan.json"
    result = plan(problem_file(kind, tmp_path), "--out", out, "--time-limit", "0.5")
    assert result.exit_code == 0, result.output
    assert '"routes"' not in result.stdout
    written = json.loads(out.read_text())
    assert routes_with_stops(kind, written)


@pytest.mark.parametrize("kind", KINDS)
def test_without_out_the_plan_is_printed(kind: str, tmp_path: Path) -> None:
    """No --out: the plan is the JSON on stdout."""
    result = plan(problem_file(kind, tmp_path), "--time-limit", "0.5")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout[result.stdout.index("{") :])
    assert routes_with_stops(kind, printed)


@pytest.mark.parametrize("kind", ["ours", "vroom-roads"])
def test_geojson_draws_each_route_along_the_roads(kind: str, tmp_path: Path) -> None:
    """--geojson on a plan made on the roads: one LineString per route, following the roads
    (many more points than stops) from the start, named as the input names its routes."""
    out, geo = tmp_path / "plan.json", tmp_path / "routes.geojson"
    result = plan(problem_file(kind, tmp_path), "--out", out, "--geojson", geo, "--time-limit", "1")
    assert result.exit_code == 0, result.output
    routes = routes_with_stops(kind, json.loads(out.read_text()))
    collection = json.loads(geo.read_text())
    assert collection["type"] == "FeatureCollection"
    assert len(collection["features"]) == len(routes)
    for route, feature in zip(routes, collection["features"], strict=True):
        line = feature["geometry"]["coordinates"]
        assert feature["geometry"]["type"] == "LineString"
        props = feature["properties"]
        if kind == "ours":
            assert props["vehicle_id"] == route["vehicle_id"]
            assert props["order_ids"] == [s["order_id"] for s in route["stops"]]
            start = LatLon(60.1699, 24.9384)  # the depot
            stops = len(route["stops"])
        else:
            tasks = [{"type": s["type"], "id": s["id"]} for s in route["steps"][1:-1]]
            assert props["vehicle"] == route["vehicle"] == 7
            assert props["tasks"] == tasks
            start = LatLon(DEPOT[1], DEPOT[0])
            stops = len(tasks)
        assert len(line) > stops + 2
        assert haversine_m(start, LatLon(line[0][1], line[0][0])) < 150
        open_route = kind == "ours" and route["vehicle_id"] == "van-2"  # ends at its last stop
        assert len(props["legs"]) == stops + (0 if open_route else 1)


def test_geojson_on_vroom_matrices_joins_the_stops_coordinates(tmp_path: Path) -> None:
    """--geojson on a VROOM problem planned on its own matrices: no roads were driven, so each
    route is the straight line through its steps' coordinates, legs timed by the matrix."""
    out, geo = tmp_path / "plan.json", tmp_path / "routes.geojson"
    path = problem_file("vroom-matrices", tmp_path)
    result = plan(path, "--out", out, "--geojson", geo, "--time-limit", "0.5")
    assert result.exit_code == 0, result.output
    (route,) = json.loads(out.read_text())["routes"]
    (feature,) = json.loads(geo.read_text())["features"]
    assert feature["geometry"]["coordinates"] == [s["location"] for s in route["steps"]]
    assert feature["properties"]["vehicle"] == 7
    legs = feature["properties"]["legs"]
    assert sum(leg["duration_s"] for leg in legs) == route["duration"]
    assert sum(leg["distance_m"] for leg in legs) == route["distance"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("flag", ["-g", "--geometry"])
def test_geometry_gives_each_route_its_encoded_path(kind: str, flag: str, tmp_path: Path) -> None:
    """-g/--geometry: each route carries its path as an encoded polyline (precision 5), the
    same line the GeoJSON draws; as VROOM, computing_times says how long routing took."""
    out, geo = tmp_path / "plan.json", tmp_path / "routes.geojson"
    path = problem_file(kind, tmp_path)
    result = plan(path, flag, "--out", out, "--geojson", geo, "--time-limit", "0.5")
    assert result.exit_code == 0, result.output
    written = json.loads(out.read_text())
    routes = routes_with_stops(kind, written)
    features = json.loads(geo.read_text())["features"]
    assert len(routes) == len(features) > 0
    for route, feature in zip(routes, features, strict=True):
        decoded = decode_polyline(route["geometry"])
        line = feature["geometry"]["coordinates"]
        assert len(decoded) == len(line)
        for got, want in zip(decoded, line, strict=True):
            assert got == pytest.approx(want, abs=1e-5)
    if kind == "ours":
        idle = [r for r in written["routes"] if not r["stops"]]
        assert all(r["geometry"] == "" for r in idle)
    else:
        assert written["summary"]["computing_times"]["routing"] >= 0


@pytest.mark.parametrize("kind", KINDS)
def test_no_geometry_unless_asked(kind: str, tmp_path: Path) -> None:
    """Without -g the routes carry no geometry (as VROOM without -g)."""
    out = tmp_path / "plan.json"
    result = plan(problem_file(kind, tmp_path), "--out", out, "--time-limit", "0.5")
    assert result.exit_code == 0, result.output
    assert all("geometry" not in r for r in json.loads(out.read_text())["routes"])


@pytest.mark.parametrize(
    "flags",
    [["--geojson", "routes.geojson"], ["-g"], ["--geometry"], ["-g", "--geojson", "r.geojson"]],
)
def test_geometry_of_a_vroom_problem_without_coordinates_fails_naming_the_flag(
    flags: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A VROOM problem given only as matrix indices has no coordinates to draw: --geojson and
    -g/--geometry stop the command (exit 2) naming the flag, before solving, writing nothing."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "plan.json"
    result = plan(VROOM_INDICES, *flags, "--out", out, "--time-limit", "0.5")
    assert result.exit_code == 2
    if "--geojson" in flags:
        assert "--geojson" in result.output
    if "-g" in flags or "--geometry" in flags:
        assert "--geometry" in result.output
    assert "coordinates" in result.output
    assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kind", KINDS)
def test_time_limit_and_seed_reach_the_solver(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--time-limit and --seed are what the solver is run with, on both input kinds."""
    seen: list[SolverParams] = []
    real_solve = portfolio.solve

    def spy(model: SolverModel, params: SolverParams | None = None, **kw: Any) -> SolverResult:
        assert params is not None
        seen.append(params)
        return real_solve(model, params, **kw)

    monkeypatch.setattr(portfolio, "solve", spy)
    out = tmp_path / "plan.json"
    path = problem_file(kind, tmp_path)
    result = plan(path, "--out", out, "--time-limit", "0.7", "--seed", "42")
    assert result.exit_code == 0, result.output
    assert [(p.time_limit_s, p.seed) for p in seen] == [(0.7, 42)]


GRID_POINTS = {"a": (LAT0 + 2 * STEP, LON0 + 2 * STEP), "b": (LAT0 + STEP, LON0 + STEP)}


def _grid_problem(kind: str, folder: Path) -> Path:
    """A problem whose stops are junctions of the small grid network of osm_samples."""
    path = folder / f"{kind}-grid.json"
    if kind == "ours":
        shift = {"start": "2026-11-26T08:00:00+02:00", "end": "2026-11-26T18:00:00+02:00"}
        doc: dict[str, Any] = {
            "depots": [{"id": "d", "location": {"lat": LAT0, "lon": LON0}}],
            "vehicles": [{"id": "van", "depot_id": "d", "capacity": [9], "shift": shift}],
            "orders": [
                {"id": k, "location": {"lat": lat, "lon": lon}, "service_s": 60, "demand": [1]}
                for k, (lat, lon) in GRID_POINTS.items()
            ],
        }
    else:
        doc = {
            "vehicles": [{"id": 1, "start": [LON0, LAT0], "end": [LON0, LAT0]}],
            "jobs": [
                {"id": k, "location": [lon, lat], "service": 60}
                for k, (lat, lon) in enumerate(GRID_POINTS.values(), 1)
            ],
        }
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize("kind", ["ours", "vroom-roads"])
def test_osm_is_the_network_planned_on(kind: str, tmp_path: Path) -> None:
    """--osm: the plan is made, and drawn, on that network (a 3 x 3 grid of ~100 m blocks),
    not on the default Helsinki one around the same place."""
    osm = tmp_path / "grid.osm"
    osm.write_text(grid_osm_xml())
    out, geo = tmp_path / "plan.json", tmp_path / "routes.geojson"
    path = _grid_problem(kind, tmp_path)
    result = plan(path, "--osm", osm, "--out", out, "--geojson", geo, "--time-limit", "0.5")
    assert result.exit_code == 0, result.output
    assert "road network grid" in result.output
    (feature,) = json.loads(geo.read_text())["features"]
    for lon, lat in feature["geometry"]["coordinates"]:
        assert LAT0 - 1e-6 <= lat <= LAT0 + 2 * STEP + 1e-6
        assert LON0 - 1e-6 <= lon <= LON0 + 2 * STEP + 1e-6
    written = json.loads(out.read_text())
    distance = written["distance_m"] if kind == "ours" else written["summary"]["distance"]
    assert 0 < distance < 1500


@pytest.mark.parametrize("kind", ["ours", "vroom-roads"])
def test_osm_that_cannot_be_read_fails(kind: str, tmp_path: Path) -> None:
    """--osm naming a missing file: exit 2 and the one-line error, on both input kinds."""
    path = problem_file(kind, tmp_path)
    result = plan(path, "--osm", tmp_path / "nope.osm.pbf", "--time-limit", "0.5")
    assert result.exit_code == 2
    assert "OSM file not found" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("problem", ["vroom-matrices", "indices"])
def test_osm_with_a_vroom_problems_own_matrices_fails_naming_it(
    problem: str, tmp_path: Path
) -> None:
    """A VROOM problem with its own matrices reads no road network: --osm would be ignored,
    so it stops the command (exit 2) naming --osm instead, writing nothing."""
    osm = tmp_path / "grid.osm"
    osm.write_text(grid_osm_xml())
    path = VROOM_INDICES if problem == "indices" else problem_file(problem, tmp_path)
    out = tmp_path / "plan.json"
    result = plan(path, "--osm", osm, "--out", out, "--time-limit", "0.5")
    assert result.exit_code == 2
    assert "--osm" in result.output
    assert "matrices" in result.output
    assert not out.exists()


def test_geometry_is_googles_encoded_polyline() -> None:
    """The geometry -g writes is Google's encoded polyline at precision 5, latitude first (what
    VROOM, OSRM and map libraries read): the format's published example round-trips."""
    points = [[-120.2, 38.5], [-120.95, 40.7], [-126.453, 43.252]]  # [lon, lat]
    assert encode_polyline(points) == "_p~iF~ps|U_ulLnnqC_mqNvxq`@"
    assert decode_polyline("_p~iF~ps|U_ulLnnqC_mqNvxq`@") == points
    assert encode_polyline([]) == ""

"""``lastmile plan``: plan a problem file, ours or VROOM's, and write the plan, its routes as
GeoJSON and (``-g``) each route's encoded geometry.

Every option works on both input kinds, or stops the command with an error naming it: nothing
asked for is silently left out.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import Progress

from domain.errors import ValidationError
from lastmile.cli_common import OsmOption, console, err, fail, load_graph, print_error
from lastmile.plan_geometry import encoded_geometry, locations_without_coordinates, vroom_geojson
from lastmile.problem_file import problem_from_json
from routing.costs import SolverParams
from routing.planner import plan_geojson, plan_routes
from routing.snapping import Snapper
from routing.vroom_format import input_error, plan_vroom, read_vroom, vroom_output
from store.repo import plan_to_dict

#: The plan document and, when GeoJSON or geometry was asked for, the routes' FeatureCollection.
Planned = tuple[dict[str, Any], dict[str, Any] | None]


def plan_file(
    problem_file: Annotated[
        Path,
        typer.Argument(
            help="A problem in our JSON format (depots, vehicles, orders) or VROOM's (jobs, "
            "shipments, vehicles)."
        ),
    ],
    osm: OsmOption = None,
    out: Annotated[
        Path | None, typer.Option(help="Write the plan (JSON) here (default: stdout).")
    ] = None,
    geojson: Annotated[
        Path | None,
        typer.Option(
            help="Also write the routes as GeoJSON: along the roads, or straight between the "
            "stops' coordinates for a VROOM problem planned on its own matrices."
        ),
    ] = None,
    geometry: Annotated[
        bool,
        typer.Option(
            "--geometry",
            "-g",
            help="Add each route's path as an encoded polyline (precision 5) in "
            "routes[].geometry, as vroom -g does.",
        ),
    ] = False,
    time_limit: Annotated[float, typer.Option(min=0.1, help="Solver time limit (s).")] = 10.0,
    seed: Annotated[int, typer.Option(help="Solver seed.")] = 0,
) -> None:
    """Plan a problem file on the road network (or a VROOM file's own matrices)."""
    try:
        doc = json.loads(problem_file.read_text())
    except (OSError, ValueError) as exc:
        print_error(ValueError(f"cannot read {problem_file}: {exc}"))
        raise typer.Exit(2) from exc
    params = SolverParams(time_limit_s=time_limit, seed=seed)
    drawn = [f for f, on in (("--geojson", geojson is not None), ("--geometry", geometry)) if on]
    if isinstance(doc, dict) and ("jobs" in doc or "shipments" in doc):
        result, collection = _plan_vroom(doc, params, osm, drawn, geometry)
    else:
        result, collection = _plan_ours(doc, params, osm, drawn, geometry)
    if geojson is not None and collection is not None:
        geojson.write_text(json.dumps(collection))
    text = json.dumps(result, indent=2)
    if out is not None:
        out.write_text(text)
    else:
        console.print_json(text)
    if result.get("code", 0) != 0:
        raise typer.Exit(2)


def _plan_ours(
    doc: Any, params: SolverParams, osm: Path | None, drawn: list[str], geometry: bool
) -> Planned:
    """Our problem file, planned on the road network; ``drawn`` names the options that want
    the routes' shapes (--geojson, --geometry)."""
    try:
        problem = problem_from_json(doc)
    except ValidationError as exc:
        print_error(exc)
        raise typer.Exit(2) from exc
    graph = load_graph(osm)
    snapper = Snapper(graph)
    with Progress(transient=True, console=err) as bar:
        task = bar.add_task("solving", total=params.time_limit_s)

        def show(elapsed_s: float, cost: int) -> None:
            bar.update(task, completed=elapsed_s, description=f"best cost {cost:,}")

        try:
            plan = plan_routes(problem, graph, snapper, params, on_improve=show)
        except ValidationError as exc:
            print_error(exc)
            raise typer.Exit(2) from exc
    result = plan_to_dict(plan)
    if not drawn:
        return result, None
    collection = plan_geojson(problem, plan, graph, snapper)
    if geometry:
        lines = encoded_geometry(collection, "vehicle_id")
        for route in result["routes"]:
            # A route with no stops never leaves: no points, the empty polyline.
            route["geometry"] = lines.get(route["vehicle_id"], "")
    return result, collection


def _plan_vroom(
    doc: dict[str, Any], params: SolverParams, osm: Path | None, drawn: list[str], geometry: bool
) -> Planned:
    """A VROOM problem, planned on its matrices or else the road network. Options it cannot
    honour stop the command naming themselves, before any solving."""
    try:
        vin = read_vroom(doc)
    except ValidationError as error:
        return input_error(error), None
    has_matrix = "matrices" in doc or "matrix" in doc
    if has_matrix and osm is not None:
        raise fail(
            "--osm: this VROOM problem brings its own matrices, so no road network is read; "
            "leave out --osm, or the matrices to plan on the roads"
        )
    missing = locations_without_coordinates(vin)
    if drawn and missing:
        raise fail(
            f"{' and '.join(drawn)} {'needs' if len(drawn) == 1 else 'need'} [lon, lat] "
            f"coordinates for every location, and {missing} of this VROOM problem's "
            f"{len(vin.location)} locations are only matrix indices (location_index)"
        )
    graph = None if has_matrix else load_graph(osm)
    snapper = Snapper(graph) if graph is not None else None
    started = time.perf_counter()
    try:
        plan = plan_vroom(vin, params, graph, snapper)
    except ValidationError as error:
        return input_error(error), None
    solved = time.perf_counter()
    result = vroom_output(vin, plan, int((solved - started) * 1000))
    if not drawn:
        return result, None
    collection = vroom_geojson(vin, plan, graph, snapper)
    if geometry:
        lines = encoded_geometry(collection, "vehicle")
        for route in result["routes"]:
            route["geometry"] = lines[route["vehicle"]]
        routing_ms = int((time.perf_counter() - solved) * 1000)
        result["summary"]["computing_times"]["routing"] = routing_ms
    return result, collection

"""``lastmile network``: inspect the road network (its size, snapping a point, one drive)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from domain.errors import ValidationError
from lastmile.cli_common import (
    NoCacheOption,
    OsmOption,
    console,
    load_graph,
    parse_point,
    print_error,
)
from routing.geometry import route_geojson
from routing.matrix import travel_matrix
from routing.snapping import DEFAULT_MAX_SNAP_M, Snapper

network_app = typer.Typer(help="Inspect the road network.", no_args_is_help=True)


@network_app.command("info")
def network_info(osm: OsmOption = None, no_cache: NoCacheOption = False) -> None:
    """Load the road network and report its size and what was pruned."""
    graph = load_graph(osm, no_cache)
    one_way = int((graph.edge_twin < 0).sum())
    console.print_json(
        json.dumps(
            {
                "name": graph.name,
                "source_sha256": graph.source_sha256,
                "junctions": graph.node_count,
                "edges": graph.edge_count,
                "one_way_edges": one_way,
                "road_km": round(float(graph.edge_length_m.sum()) / 1000, 1),
                "dropped_nodes": graph.nodes_dropped,
                "dropped_edges": graph.edges_dropped,
            }
        )
    )


@network_app.command("snap")
def network_snap(
    point: Annotated[str, typer.Argument(help="LAT,LON to place on the nearest road.")],
    osm: OsmOption = None,
    max_snap_m: Annotated[
        float, typer.Option(help="Reject points farther than this from any road (m).")
    ] = DEFAULT_MAX_SNAP_M,
) -> None:
    """Place a point on the nearest drivable road and say how far it moved."""
    graph = load_graph(osm)
    where = parse_point(point, "POINT")
    try:
        snapped = Snapper(graph).snap([where], ids=[point], max_distance_m=max_snap_m)
    except ValidationError as exc:
        print_error(exc)
        raise typer.Exit(2) from exc
    console.print_json(
        json.dumps(
            {
                "lat": round(float(snapped.lat[0]), 7),
                "lon": round(float(snapped.lon[0]), 7),
                "snap_distance_m": round(float(snapped.distance_m[0]), 1),
                "road_class": str(graph.edge_class[snapped.edge[0]]),
            }
        )
    )


@network_app.command("route")
def network_route(
    origin: Annotated[str, typer.Argument(help="LAT,LON where the drive starts.")],
    destination: Annotated[str, typer.Argument(help="LAT,LON where the drive ends.")],
    osm: OsmOption = None,
    geojson: Annotated[
        Path | None, typer.Option(help="Also write the route's GeoJSON Feature to this file.")
    ] = None,
) -> None:
    """Fastest drive between two points: time, distance and road geometry."""
    graph = load_graph(osm)
    points = [parse_point(origin, "ORIGIN"), parse_point(destination, "DESTINATION")]
    try:
        snapped = Snapper(graph).snap(points, ids=["origin", "destination"])
    except ValidationError as exc:
        print_error(exc)
        raise typer.Exit(2) from exc
    matrix = travel_matrix(graph, snapped, workers=1)
    feature = route_geojson(graph, snapped)
    if geojson is not None:
        geojson.write_text(json.dumps(feature))
    console.print_json(
        json.dumps(
            {
                "duration_s": int(matrix.duration_s[0, 1]),
                "distance_m": int(matrix.distance_m[0, 1]),
                "points": len(feature["geometry"]["coordinates"]),
            }
        )
    )

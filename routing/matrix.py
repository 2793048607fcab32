"""Travel-time and distance matrices between snapped points.

Each point becomes two virtual nodes added to the road graph: a source, joined to the ends of
its road by the partial edges from the point onwards, and a sink, joined from the starts of its
road by the partial edges up to the point. One compiled Dijkstra per origin
(:mod:`routing.shortest_paths`) then gives every destination, partial edges included, on the
real road graph.

Time and distance travel together in one int64 weight, ``time_units * 2**27 + distance_units``
(units of 0.1 s and 0.1 m): Dijkstra minimises time, breaks ties by distance, and the distance
of the fastest path falls out exactly, with no path tracing. Sums stay below 2**53 (so they are
exact in float64 too, for scipy's single searches in :mod:`routing.geometry`), which bounds one
path at 186 hours and 13,400 km: far beyond any city extract.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.sparse import csr_matrix

from routing.road_graph import FloatArray, IntArray, RoadGraph
from routing.shortest_paths import UNREACHED, many_to_many
from routing.snapping import SnappedPoints

TIME_UNIT_S = 0.1
DISTANCE_UNIT_M = 0.1
_SHIFT_BITS = 27


@dataclass(frozen=True, slots=True, eq=False)
class TravelMatrix:
    """``duration_s[i, j]`` and ``distance_m[i, j]``: the fastest drive from origin i to
    destination j, in whole seconds and whole metres."""

    duration_s: npt.NDArray[np.int64]
    distance_m: npt.NDArray[np.int64]


def encode(time_s: FloatArray, distance_m: FloatArray) -> IntArray:
    """Pack times and distances into one integer weight each (see the module doc)."""
    time_units = np.rint(time_s / TIME_UNIT_S).astype(np.int64)
    distance_units = np.rint(distance_m / DISTANCE_UNIT_M).astype(np.int64)
    # csgraph drops explicit zeros in sparse input; a 0.1 m floor keeps zero-length joins.
    packed: IntArray = np.maximum((time_units << _SHIFT_BITS) + distance_units, 1)
    return packed


def decode(weight: npt.NDArray[np.int64] | FloatArray) -> tuple[FloatArray, FloatArray]:
    """Times (s) and distances (m) from packed weights (integer or exact float)."""
    units = np.asarray(weight).astype(np.int64)
    time_units = units >> _SHIFT_BITS
    distance_units = units & ((1 << _SHIFT_BITS) - 1)
    return (
        (time_units * TIME_UNIT_S).astype(np.float64),
        (distance_units * DISTANCE_UNIT_M).astype(np.float64),
    )


def travel_matrix(
    graph: RoadGraph,
    origins: SnappedPoints,
    destinations: SnappedPoints | None = None,
    *,
    workers: int | None = None,
) -> TravelMatrix:
    """Fastest-path durations and distances from every origin to every destination.

    ``destinations`` defaults to ``origins`` (a square matrix). ``workers`` threads share
    the origins (default: one per CPU).
    """
    dests = origins if destinations is None else destinations
    n_orig, n_dest = len(origins), len(dests)
    if n_orig == 0 or n_dest == 0:
        empty = np.zeros((n_orig, n_dest), dtype=np.int64)
        return TravelMatrix(empty, empty.copy())
    adjacency, source_ids, sink_ids = augmented_graph(graph, origins, dests)

    encoded = many_to_many(
        adjacency.indptr,
        adjacency.indices,
        adjacency.data,
        source_ids,
        sink_ids,
        threads=workers if workers is not None else (os.cpu_count() or 1),
    )
    if np.any(encoded >= UNREACHED):
        # Cannot happen on a strongly connected graph; guard against a corrupted one.
        raise RuntimeError("road graph is not strongly connected: some destination unreachable")
    time_s, distance_m = decode(encoded)
    return TravelMatrix(
        duration_s=np.rint(time_s).astype(np.int64),
        distance_m=np.rint(distance_m).astype(np.int64),
    )


def augmented_graph(
    graph: RoadGraph, origins: SnappedPoints, dests: SnappedPoints
) -> tuple[csr_matrix, IntArray, IntArray]:
    """The road graph plus a source node per origin and a sink node per destination.

    Weights are encoded time and distance (see the module doc). Returns the adjacency and the
    node ids of the sources and the sinks.
    """
    n_nodes = graph.node_count
    source_ids = n_nodes + np.arange(len(origins), dtype=np.int64)
    sink_ids = n_nodes + len(origins) + np.arange(len(dests), dtype=np.int64)
    rows, cols, weights = _augmented_arcs(graph, origins, dests, source_ids, sink_ids)
    size = n_nodes + len(origins) + len(dests)
    # Parallel roads between one pair of junctions: keep the cheapest (csr would add them up).
    order = np.lexsort((weights, cols, rows))
    rows, cols, weights = rows[order], cols[order], weights[order]
    first = np.ones(len(rows), dtype=bool)
    first[1:] = (rows[1:] != rows[:-1]) | (cols[1:] != cols[:-1])
    adjacency = csr_matrix((weights[first], (rows[first], cols[first])), shape=(size, size))
    adjacency.sort_indices()
    return adjacency, source_ids, sink_ids


def _augmented_arcs(
    graph: RoadGraph,
    origins: SnappedPoints,
    dests: SnappedPoints,
    source_ids: IntArray,
    sink_ids: IntArray,
) -> tuple[IntArray, IntArray, IntArray]:
    ff = graph.edge_free_flow_s
    delay = graph.edge_travel_time_s - ff
    length = graph.edge_length_m
    twin = graph.edge_twin
    live = _edges_off_bare_dead_ends(graph, np.concatenate((origins.edge, dests.edge)))
    rows = [graph.edge_from[live]]
    cols = [graph.edge_to[live]]
    weights = [encode(graph.edge_travel_time_s[live], length[live])]

    # Origin: drive on to the end of its edge (and through that junction) ...
    e, f = origins.edge, origins.fraction
    rows.append(source_ids)
    cols.append(graph.edge_to[e])
    weights.append(encode((1 - f) * ff[e] + delay[e], (1 - f) * length[e]))
    # ... or, on a two-way road, the other way to its start.
    has = twin[e] >= 0
    t = twin[e[has]]
    rows.append(source_ids[has])
    cols.append(graph.edge_to[t])
    weights.append(encode(f[has] * ff[t] + delay[t], f[has] * length[t]))

    # Destination: arrive from the start of its edge, or from the far end on a two-way road.
    e, g = dests.edge, dests.fraction
    rows.append(graph.edge_from[e])
    cols.append(sink_ids)
    weights.append(encode(g * ff[e], g * length[e]))
    has = twin[e] >= 0
    t = twin[e[has]]
    rows.append(graph.edge_from[t])
    cols.append(sink_ids[has])
    weights.append(encode((1 - g[has]) * ff[t], (1 - g[has]) * length[t]))

    # Origin and destination on the same road: drive straight there along it.
    by_edge: dict[int, list[int]] = {}
    for j, edge in enumerate(dests.edge.tolist()):
        by_edge.setdefault(edge, []).append(j)
    direct_rows: list[int] = []
    direct_cols: list[int] = []
    direct_time: list[float] = []
    direct_dist: list[float] = []
    for i, edge in enumerate(origins.edge.tolist()):
        for j in by_edge.get(edge, ()):
            fi, gj = float(origins.fraction[i]), float(dests.fraction[j])
            options: list[tuple[float, float]] = []
            if gj >= fi:
                options.append(((gj - fi) * ff[edge], (gj - fi) * length[edge]))
            if twin[edge] >= 0 and fi >= gj:
                other = int(twin[edge])
                options.append(((fi - gj) * ff[other], (fi - gj) * length[other]))
            if options:
                best = min(options)
                direct_rows.append(int(source_ids[i]))
                direct_cols.append(int(sink_ids[j]))
                direct_time.append(best[0])
                direct_dist.append(best[1])
    if direct_rows:
        rows.append(np.array(direct_rows, dtype=np.int64))
        cols.append(np.array(direct_cols, dtype=np.int64))
        weights.append(encode(np.array(direct_time), np.array(direct_dist)))
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(weights)


def _edges_off_bare_dead_ends(graph: RoadGraph, point_edges: IntArray) -> npt.NDArray[np.bool_]:
    """Edges worth searching: all but those inside dead-end trees that hold no point.

    A junction with a single neighbour can only be entered from that neighbour and left back
    to it, so no fastest path between two other places passes through it. Peeling such
    junctions repeatedly (cul-de-sacs, then the streets that only lead to them) removes about
    15% of a city's junctions from every search, and changes no distance. Junctions at the
    ends of a point's road (either direction) are never peeled.
    """
    n = graph.node_count
    protected = np.zeros(n, dtype=bool)
    twins = graph.edge_twin[point_edges]
    for edges in (point_edges, twins[twins >= 0]):
        protected[graph.edge_from[edges]] = True
        protected[graph.edge_to[edges]] = True
    pairs = graph.road_pairs
    alive = np.ones(n, dtype=bool)
    while True:
        kept = pairs[alive[pairs[:, 0]] & alive[pairs[:, 1]]]
        neighbours = np.bincount(kept[:, 0], minlength=n) + np.bincount(kept[:, 1], minlength=n)
        leaves = alive & (neighbours <= 1) & ~protected
        if not leaves.any():
            break
        alive &= ~leaves
    return np.asarray(alive[graph.edge_from] & alive[graph.edge_to], dtype=np.bool_)

"""Travel-time matrix benchmark: ours (csgraph, all cores) against a networkx baseline.

    python -m bench.matrix --osm FILE --n N [--seed S] [--baseline-origins K]

Builds an N x N matrix between N random points snapped to the network (fixed seed) -- once
to compile the search, then `--repeat` times, keeping the median -- then
runs networkx single-source Dijkstra per origin on the same graph and checks that both agree.
The baseline on all N origins takes minutes on a city; ``--baseline-origins K`` times K of
them and scales up linearly (each origin is an independent, equally sized search), which the
output says. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from dataclasses import replace
from pathlib import Path

import networkx as nx
import numpy as np

from routing.matrix import travel_matrix
from routing.network import load_road_graph
from routing.road_graph import RoadGraph
from routing.snapping import SnappedPoints, Snapper


def random_points(graph: RoadGraph, snapper: Snapper, n: int, seed: int) -> SnappedPoints:
    """N points near random places on the network's roads (within ~50 m), snapped."""
    rng = np.random.default_rng(seed)
    edges = rng.integers(0, graph.edge_count, n)
    start = graph.geom_offset[edges]
    lat = graph.geom_lat[start] + rng.normal(0.0, 0.0002, n)
    lon = graph.geom_lon[start] + rng.normal(0.0, 0.0002, n)
    return snapper.snap_arrays(lat, lon)


def networkx_baseline(
    graph: RoadGraph, points: SnappedPoints, origins: np.ndarray
) -> tuple[np.ndarray, float]:
    """Durations from the given origins by networkx Dijkstra, partial edges counted alike."""
    g = nx.DiGraph()
    for u, v, w in zip(
        graph.edge_from.tolist(),
        graph.edge_to.tolist(),
        graph.edge_travel_time_s.tolist(),
        strict=True,
    ):
        if not g.has_edge(u, v) or g[u][v]["weight"] > w:
            g.add_edge(u, v, weight=w)
    ff = graph.edge_free_flow_s
    delay = graph.edge_travel_time_s - ff
    twin = graph.edge_twin
    started = time.perf_counter()
    out = np.empty((len(origins), len(points)))
    for row, i in enumerate(origins):
        e, f = int(points.edge[i]), float(points.fraction[i])
        starts = {int(graph.edge_to[e]): (1 - f) * ff[e] + delay[e]}
        if twin[e] >= 0:
            t = int(twin[e])
            starts[int(graph.edge_to[t])] = min(
                starts.get(int(graph.edge_to[t]), np.inf), f * ff[t] + delay[t]
            )
        best: dict[int, float] = {}
        for node, offset in starts.items():
            for target, d in nx.single_source_dijkstra_path_length(g, node).items():
                if d + offset < best.get(target, np.inf):
                    best[target] = d + offset
        for j in range(len(points)):
            e2, g2 = int(points.edge[j]), float(points.fraction[j])
            cost = best[int(graph.edge_from[e2])] + g2 * ff[e2]
            if twin[e2] >= 0:
                t2 = int(twin[e2])
                cost = min(cost, best[int(graph.edge_from[t2])] + (1 - g2) * ff[t2])
            if e2 == e and g2 >= f:
                cost = min(cost, (g2 - f) * ff[e])
            if twin[e] >= 0 and e2 == e and f >= g2:
                cost = min(cost, (f - g2) * ff[int(twin[e])])
            out[row, j] = cost
    return out, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--osm", type=Path, default=None, help="OSM file (default: Helsinki)")
    parser.add_argument("--n", type=int, default=1000, help="number of points")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3, help="warm runs; the median is kept")
    parser.add_argument("--workers", type=int, default=None, help="threads (default: CPUs)")
    parser.add_argument(
        "--baseline-origins",
        type=int,
        default=None,
        help="time the networkx baseline on this many origins and scale (default: all N)",
    )
    args = parser.parse_args(argv)

    graph, report = load_road_graph(args.osm)
    snapper = Snapper(graph)
    points = random_points(graph, snapper, args.n, args.seed)
    # The first call compiles the search (or loads it from numba's cache); time the next ones.
    started = time.perf_counter()
    travel_matrix(graph, points, workers=args.workers)
    cold_seconds = time.perf_counter() - started
    runs = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        matrix = travel_matrix(graph, points, workers=args.workers)
        runs.append(time.perf_counter() - started)
    seconds = float(np.median(runs))

    # GPS hot path: one point at a time against the index built once.
    sample = min(args.n, 500)
    started = time.perf_counter()
    for i in range(sample):
        snapper.snap_arrays(points.lat[i : i + 1], points.lon[i : i + 1])
    snap_us = (time.perf_counter() - started) / sample * 1e6

    k = args.n if args.baseline_origins is None else min(args.n, args.baseline_origins)
    origins = np.random.default_rng(args.seed + 1).choice(args.n, size=k, replace=False)
    baseline, baseline_part_s = networkx_baseline(graph, points, origins)
    baseline_seconds = baseline_part_s * args.n / k
    max_abs_diff_s = float(np.max(np.abs(baseline - matrix.duration_s[origins])))
    ratio_to_free_flow = _free_flow_ratio(graph, points, matrix.duration_s)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"network {graph.name}: {graph.node_count} nodes, {graph.edge_count} edges "
        f"(dropped {graph.nodes_dropped} nodes outside the largest strongly connected part); "
        f"loaded in {report.seconds:.2f} s ({'cache' if report.from_cache else 'file'})",
        file=sys.stderr,
    )
    print(
        f"ours: {seconds:.3f} s warm (median of {len(runs)}: "
        f"{', '.join(f'{r:.3f}' for r in runs)}), {cold_seconds:.3f} s for the first call; "
        f"networkx: {baseline_seconds:.1f} s ({k} of {args.n} origins timed); "
        f"max |difference| {max_abs_diff_s:.2f} s; "
        f"median planned/free-flow {ratio_to_free_flow:.3f}",
        file=sys.stderr,
    )
    result = {
        "n": args.n,
        "seconds": round(seconds, 3),
        "cold_seconds": round(cold_seconds, 3),
        "baseline_seconds": round(baseline_seconds, 2),
        "baseline_origins_timed": k,
        "ratio": round(baseline_seconds / seconds, 1),
        "max_abs_diff_s": round(max_abs_diff_s, 3),
        "median_ratio_to_free_flow": round(ratio_to_free_flow, 3),
        "peak_mb": round(peak_mb, 1),
        "snap_one_point_us": round(snap_us, 1),
    }
    print(json.dumps(result))
    return 0


def _free_flow_ratio(graph: RoadGraph, points: SnappedPoints, duration_s: np.ndarray) -> float:
    """Median over pairs of planned time / free-flow time along the same road graph."""
    free = replace(graph, edge_travel_time_s=graph.edge_free_flow_s)
    sample = np.arange(min(len(points), 200))
    sub = points.take(sample)
    planned = duration_s[np.ix_(sample, sample)].astype(float)
    ff = travel_matrix(free, sub, workers=1).duration_s.astype(float)
    mask = ff > 60  # pairs under a minute are dominated by rounding
    return float(np.median(planned[mask] / ff[mask]))


if __name__ == "__main__":
    raise SystemExit(main())

"""Travel-time matrix benchmark: ours (compiled Dijkstra, all cores) against networkx.

    python -m bench.matrix --osm FILE --n N [--seed S] [--workers W] [--baseline-origins K]

Builds an N x N matrix between N random points snapped to the network (fixed seed) -- once
to compile the search, then `--repeat` times, keeping the median -- then runs the networkx
baseline on the same graph and checks that both agree.

The baseline is the fairest plain networkx version we know: one
``single_source_dijkstra_path_length`` per origin, from a virtual source node joined to the two
ends of the origin's road by the partial-edge costs, with the origins spread over as many
processes as ours uses threads (``--workers``, default: every CPU). Until 2026-12-05 it ran two
full Dijkstras per origin (one from each end of the road) in one process, which flattered ours
by about 4x on two cores (BENCHMARKS.md).

The baseline on all N origins takes a while on a city; ``--baseline-origins K`` times K of
them and scales up linearly (each origin is an independent, equally sized search), which the
output says. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import networkx as nx
import numpy as np

from routing.matrix import travel_matrix
from routing.network import load_road_graph
from routing.road_graph import FloatArray, IntArray, RoadGraph
from routing.snapping import SnappedPoints, Snapper


def random_points(graph: RoadGraph, snapper: Snapper, n: int, seed: int) -> SnappedPoints:
    """N points near random places on the network's roads (within ~50 m), snapped."""
    rng = np.random.default_rng(seed)
    edges = rng.integers(0, graph.edge_count, n)
    start = graph.geom_offset[edges]
    lat = graph.geom_lat[start] + rng.normal(0.0, 0.0002, n)
    lon = graph.geom_lon[start] + rng.normal(0.0, 0.0002, n)
    return snapper.snap_arrays(lat, lon)


_SOURCE = -1  # the virtual source node; road junctions are 0..node_count-1


@dataclass(frozen=True, slots=True)
class _Inputs:
    """The arrays the baseline reads (small to send to a worker process)."""

    node_count: int
    edge_from: IntArray
    edge_to: IntArray
    travel_time_s: FloatArray
    free_flow_s: FloatArray
    twin: IntArray
    point_edge: IntArray
    point_fraction: FloatArray

    @classmethod
    def of(cls, graph: RoadGraph, points: SnappedPoints) -> _Inputs:
        return cls(
            node_count=graph.node_count,
            edge_from=np.asarray(graph.edge_from, dtype=np.int64),
            edge_to=np.asarray(graph.edge_to, dtype=np.int64),
            travel_time_s=np.asarray(graph.edge_travel_time_s, dtype=np.float64),
            free_flow_s=np.asarray(graph.edge_free_flow_s, dtype=np.float64),
            twin=np.asarray(graph.edge_twin, dtype=np.int64),
            point_edge=np.asarray(points.edge, dtype=np.int64),
            point_fraction=np.asarray(points.fraction, dtype=np.float64),
        )


@dataclass(frozen=True, slots=True)
class _Baseline:
    """What one baseline process searches: the road graph in networkx, and the inputs."""

    g: nx.DiGraph
    inputs: _Inputs


def _baseline_state(inputs: _Inputs) -> _Baseline:
    g = nx.DiGraph()
    g.add_nodes_from(range(inputs.node_count))
    for u, v, w in zip(
        inputs.edge_from.tolist(),
        inputs.edge_to.tolist(),
        inputs.travel_time_s.tolist(),
        strict=True,
    ):
        if not g.has_edge(u, v) or g[u][v]["weight"] > w:
            g.add_edge(u, v, weight=w)
    return _Baseline(g, inputs)


def _baseline_rows(state: _Baseline, origins: Sequence[int]) -> FloatArray:
    """One networkx Dijkstra per origin, from a virtual source joined to the ends of the
    origin's road by the partial-edge costs; destinations read off both ends of their road."""
    g, a = state.g, state.inputs
    ff, twin, edge_to = a.free_flow_s, a.twin, a.edge_to
    delay = a.travel_time_s - ff
    dest_edge, dest_frac = a.point_edge, a.point_fraction
    dest_twin = twin[dest_edge]
    has_twin = dest_twin >= 0
    via_start = a.edge_from[dest_edge]
    via_start_s = dest_frac * ff[dest_edge]
    via_end = a.edge_from[np.where(has_twin, dest_twin, dest_edge)]
    via_end_s = np.where(has_twin, (1 - dest_frac) * ff[np.where(has_twin, dest_twin, 0)], np.inf)
    out = np.empty((len(origins), len(dest_edge)))
    dist = np.empty(a.node_count)
    for row, i in enumerate(origins):
        e, f = int(dest_edge[i]), float(dest_frac[i])
        g.add_edge(_SOURCE, int(edge_to[e]), weight=(1 - f) * ff[e] + delay[e])
        if twin[e] >= 0:
            t = int(twin[e])
            w, end = f * ff[t] + delay[t], int(edge_to[t])
            if not g.has_edge(_SOURCE, end) or g[_SOURCE][end]["weight"] > w:
                g.add_edge(_SOURCE, end, weight=w)
        best = nx.single_source_dijkstra_path_length(g, _SOURCE)
        g.remove_node(_SOURCE)
        del best[_SOURCE]
        dist.fill(np.inf)
        dist[np.fromiter(best.keys(), np.int64, len(best))] = np.fromiter(
            best.values(), np.float64, len(best)
        )
        cost = np.minimum(dist[via_start] + via_start_s, dist[via_end] + via_end_s)
        # Origin and destination on the same road: straight along it, either way.
        same = dest_edge == e
        ahead = same & (dest_frac >= f)
        cost[ahead] = np.minimum(cost[ahead], (dest_frac[ahead] - f) * ff[e])
        if twin[e] >= 0:
            behind = same & (dest_frac <= f)
            cost[behind] = np.minimum(cost[behind], (f - dest_frac[behind]) * ff[int(twin[e])])
        out[row] = cost
    return out


_worker_state: _Baseline | None = None


def _init_worker(inputs: _Inputs) -> None:
    global _worker_state  # one baseline per worker process
    _worker_state = _baseline_state(inputs)


def _worker_ready(pause_s: float) -> int:
    time.sleep(pause_s)  # hold this worker so the next warm-up task starts another
    return os.getpid()


def _worker_rows(origins: list[int]) -> FloatArray:
    assert _worker_state is not None, "worker not initialised"
    return _baseline_rows(_worker_state, origins)


def networkx_baseline(
    graph: RoadGraph, points: SnappedPoints, origins: np.ndarray, *, workers: int = 1
) -> tuple[np.ndarray, float]:
    """Durations from the given origins by networkx Dijkstra, partial edges counted alike.

    One ``single_source_dijkstra_path_length`` per origin from a virtual source node, spread
    over ``workers`` processes (networkx holds the GIL, so threads would not help). Returns
    the rows and the seconds the searches took: building the networkx graph and starting
    the processes are not timed.
    """
    order = [int(i) for i in origins]
    inputs = _Inputs.of(graph, points)
    if workers <= 1:
        state = _baseline_state(inputs)
        started = time.perf_counter()
        out = _baseline_rows(state, order)
        return out, time.perf_counter() - started
    # Small chunks keep both processes busy to the end; spawn: no fork of a threaded parent.
    size = max(1, len(order) // (workers * 8))
    chunks = [order[k : k + size] for k in range(0, len(order), size)]
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_worker,
        initargs=(inputs,),
    ) as pool:
        # Start and initialise every worker before the clock starts.
        list(pool.map(_worker_ready, [0.5] * workers))
        started = time.perf_counter()
        parts = list(pool.map(_worker_rows, chunks))
        seconds = time.perf_counter() - started
    return (np.concatenate(parts) if parts else np.empty((0, len(points)))), seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--osm", type=Path, default=None, help="OSM file (default: Helsinki)")
    parser.add_argument("--n", type=int, default=1000, help="number of points")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3, help="warm runs; the median is kept")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="our threads and the baseline's processes (default: one per CPU)",
    )
    parser.add_argument(
        "--baseline-origins",
        type=int,
        default=None,
        help="time the networkx baseline on this many origins and scale (default: all N)",
    )
    args = parser.parse_args(argv)
    cpus = os.cpu_count() or 1
    workers = args.workers if args.workers is not None else cpus

    graph, report = load_road_graph(args.osm)
    snapper = Snapper(graph)
    points = random_points(graph, snapper, args.n, args.seed)
    # The first call compiles the search (or loads it from numba's cache); time the next ones.
    started = time.perf_counter()
    travel_matrix(graph, points, workers=workers)
    cold_seconds = time.perf_counter() - started
    runs = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        matrix = travel_matrix(graph, points, workers=workers)
        runs.append(time.perf_counter() - started)
    seconds = float(np.median(runs))

    # GPS hot path: one point at a time against the index built once.
    sample = min(args.n, 500)
    started = time.perf_counter()
    for i in range(sample):
        snapper.snap_arrays(points.lat[i : i + 1], points.lon[i : i + 1])
    snap_us = (time.perf_counter() - started) / sample * 1e6

    # Ours only: measured before the baseline, which runs in its own processes.
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    k = args.n if args.baseline_origins is None else min(args.n, args.baseline_origins)
    origins = np.random.default_rng(args.seed + 1).choice(args.n, size=k, replace=False)
    baseline, baseline_part_s = networkx_baseline(graph, points, origins, workers=workers)
    baseline_seconds = baseline_part_s * args.n / k
    max_abs_diff_s = float(np.max(np.abs(baseline - matrix.duration_s[origins])))
    ratio_to_free_flow = _free_flow_ratio(graph, points, matrix.duration_s)
    print(
        f"network {graph.name}: {graph.node_count} nodes, {graph.edge_count} edges "
        f"(dropped {graph.nodes_dropped} nodes outside the largest strongly connected part); "
        f"loaded in {report.seconds:.2f} s ({'cache' if report.from_cache else 'file'})",
        file=sys.stderr,
    )
    print(
        f"ours ({workers} threads): {seconds:.3f} s warm (median of {len(runs)}: "
        f"{', '.join(f'{r:.3f}' for r in runs)}), {cold_seconds:.3f} s for the first call; "
        f"networkx ({workers} processes, one Dijkstra per origin): {baseline_seconds:.1f} s "
        f"({k} of {args.n} origins timed); "
        f"max |difference| {max_abs_diff_s:.2f} s; "
        f"median planned/free-flow {ratio_to_free_flow:.3f}",
        file=sys.stderr,
    )
    result = {
        "n": args.n,
        "workers": workers,
        "cpu_count": cpus,
        "seconds": round(seconds, 3),
        "cold_seconds": round(cold_seconds, 3),
        "baseline_seconds": round(baseline_seconds, 2),
        "baseline_origins_timed": k,
        "baseline": "networkx single_source_dijkstra_path_length from a virtual source, "
        "one per origin",
        "baseline_workers": workers,
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

"""Many-to-many shortest paths: Dijkstra compiled with numba, origins spread over threads.

Why not a library: scipy's csgraph, igraph and networkit all spend about 1.7-2 ms per origin
on a city graph of 11k junctions, and csgraph and igraph hold the GIL, so the 1,000-point matrix
took 1.0-1.2 s even split over two processes. This search stops as soon as every sink is
settled, works on integer weights, reuses its buffers between origins and runs without the GIL
on every core: about 0.8 s for the same matrix (BENCHMARKS.md, docs/adr/0002).

Weights are non-negative int64 (the packed time/distance units of :mod:`routing.matrix`).
"""

from __future__ import annotations

import threading

import numba
import numpy as np
import numpy.typing as npt

Int64Array = npt.NDArray[np.int64]

#: Distance of an unreached node. Far above any sum of packed weights (< 2**53).
UNREACHED = np.int64(2**62)

# The default numba threading layer must not be entered by two Python threads at once.
_parallel_lock = threading.Lock()


@numba.njit(cache=True, nogil=True)
def _search(
    indptr: Int64Array,
    indices: Int64Array,
    weights: Int64Array,
    source: int,
    is_sink: npt.NDArray[np.bool_],
    n_sinks: int,
    dist: Int64Array,
    settled: npt.NDArray[np.bool_],
    heap_key: Int64Array,
    heap_node: Int64Array,
    touched: Int64Array,
) -> int:
    """One Dijkstra from ``source`` on a binary heap with lazy deletion.

    Leaves distances in ``dist`` and returns how many entries of ``touched`` name nodes whose
    ``dist``/``settled`` the caller must reset before the next search.
    """
    n_touched = 0
    dist[source] = 0
    touched[n_touched] = source
    n_touched += 1
    heap_key[0] = 0
    heap_node[0] = source
    size = 1
    sinks_left = n_sinks
    while size > 0:
        d = heap_key[0]
        u = heap_node[0]
        size -= 1
        if size > 0:  # move the last entry to the root and sift it down
            last_key = heap_key[size]
            last_node = heap_node[size]
            i = 0
            while True:
                child = 2 * i + 1
                if child >= size:
                    break
                if child + 1 < size and heap_key[child + 1] < heap_key[child]:
                    child += 1
                if heap_key[child] < last_key:
                    heap_key[i] = heap_key[child]
                    heap_node[i] = heap_node[child]
                    i = child
                else:
                    break
            heap_key[i] = last_key
            heap_node[i] = last_node
        if settled[u]:
            continue
        settled[u] = True
        if is_sink[u]:
            sinks_left -= 1
            if sinks_left == 0:
                break
        for k in range(indptr[u], indptr[u + 1]):
            v = indices[k]
            if settled[v]:
                continue
            candidate = d + weights[k]
            if candidate < dist[v]:
                if dist[v] == UNREACHED:
                    touched[n_touched] = v
                    n_touched += 1
                dist[v] = candidate
                i = size  # push and sift up
                size += 1
                while i > 0:
                    parent = (i - 1) >> 1
                    if heap_key[parent] > candidate:
                        heap_key[i] = heap_key[parent]
                        heap_node[i] = heap_node[parent]
                        i = parent
                    else:
                        break
                heap_key[i] = candidate
                heap_node[i] = v
    return n_touched


@numba.njit(cache=True, nogil=True, parallel=True)
def _many_to_many(
    indptr: Int64Array,
    indices: Int64Array,
    weights: Int64Array,
    sources: Int64Array,
    sinks: Int64Array,
    n_threads: int,
) -> Int64Array:
    n = len(indptr) - 1
    out = np.empty((len(sources), len(sinks)), dtype=np.int64)
    is_sink = np.zeros(n, dtype=np.bool_)
    for s in sinks:
        is_sink[s] = True
    n_sinks = int(is_sink.sum())
    heap_size = len(indices) + 1  # lazy deletion: at most one entry per relaxed arc
    for t in numba.prange(n_threads):
        dist = np.full(n, UNREACHED, dtype=np.int64)
        settled = np.zeros(n, dtype=np.bool_)
        heap_key = np.empty(heap_size, dtype=np.int64)
        heap_node = np.empty(heap_size, dtype=np.int64)
        touched = np.empty(n, dtype=np.int64)
        for row in range(t, len(sources), n_threads):
            n_touched = _search(
                indptr, indices, weights, sources[row], is_sink, n_sinks,
                dist, settled, heap_key, heap_node, touched,
            )  # fmt: skip
            for j in range(len(sinks)):
                out[row, j] = dist[sinks[j]]
            for k in range(n_touched):
                dist[touched[k]] = UNREACHED
                settled[touched[k]] = False
    return out


def many_to_many(
    indptr: Int64Array,
    indices: Int64Array,
    weights: Int64Array,
    sources: Int64Array,
    sinks: Int64Array,
    *,
    threads: int,
) -> Int64Array:
    """Shortest-path lengths from every source to every sink of a CSR graph.

    Entry ``[i, j]`` is the length from ``sources[i]`` to ``sinks[j]``, or ``UNREACHED``.
    """
    n_threads = max(1, min(threads, numba.get_num_threads(), len(sources)))
    with _parallel_lock:
        result: Int64Array = _many_to_many(
            np.ascontiguousarray(indptr, dtype=np.int64),
            np.ascontiguousarray(indices, dtype=np.int64),
            np.ascontiguousarray(weights, dtype=np.int64),
            np.ascontiguousarray(sources, dtype=np.int64),
            np.ascontiguousarray(sinks, dtype=np.int64),
            n_threads,
        )
    return result

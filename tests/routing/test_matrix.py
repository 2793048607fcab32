"""Travel-time matrices: partial edges, one-way streets, agreement with networkx."""

from __future__ import annotations

import numpy as np
import pytest

from bench.matrix import networkx_baseline, random_points
from routing.matrix import travel_matrix
from routing.road_graph import RoadGraph
from routing.snapping import SnappedPoints, Snapper

# Per-edge rounding to 0.1 s plus rounding the total to whole seconds.
TOLERANCE_S = 2.0


def _on_edge(edge: int, fractions: list[float], graph: RoadGraph) -> SnappedPoints:
    n = len(fractions)
    return SnappedPoints(
        edge=np.full(n, edge, dtype=np.int64),
        fraction=np.array(fractions),
        distance_m=np.zeros(n),
        lat=np.full(n, graph.node_lat[graph.edge_from[edge]]),
        lon=np.full(n, graph.node_lon[graph.edge_from[edge]]),
    )


def test_one_way_pair_differs_by_direction(helsinki: RoadGraph) -> None:
    """On a one-way street, A->B along the flow is short; B->A must go round the block."""
    one_way = np.flatnonzero(helsinki.edge_twin < 0)
    edge = int(one_way[np.argmax(helsinki.edge_length_m[one_way])])
    points = _on_edge(edge, [0.2, 0.8], helsinki)
    m = travel_matrix(helsinki, points, workers=1)
    along = 0.6 * helsinki.edge_free_flow_s[edge]
    assert abs(m.duration_s[0, 1] - along) <= TOLERANCE_S
    assert m.duration_s[1, 0] > m.duration_s[0, 1] + 10
    assert m.distance_m[0, 1] == pytest.approx(0.6 * helsinki.edge_length_m[edge], abs=1)


def test_two_way_road_counts_partial_edges_both_ways(helsinki: RoadGraph) -> None:
    """On a two-way road, points 60% apart are the same partial edge apart in both directions."""
    two_way = np.flatnonzero(helsinki.edge_twin >= 0)
    edge = int(two_way[np.argmax(helsinki.edge_length_m[two_way])])
    m = travel_matrix(helsinki, _on_edge(edge, [0.2, 0.8], helsinki), workers=1)
    twin = int(helsinki.edge_twin[edge])
    assert abs(m.duration_s[0, 1] - 0.6 * helsinki.edge_free_flow_s[edge]) <= TOLERANCE_S
    assert abs(m.duration_s[1, 0] - 0.6 * helsinki.edge_free_flow_s[twin]) <= TOLERANCE_S


def test_diagonal_is_zero(helsinki: RoadGraph, helsinki_snapper: Snapper) -> None:
    """From a point to itself takes no time and no distance."""
    points = random_points(helsinki, helsinki_snapper, 30, seed=1)
    m = travel_matrix(helsinki, points, workers=1)
    assert np.all(np.diag(m.duration_s) == 0)
    assert np.all(np.diag(m.distance_m) == 0)


def test_matches_networkx_on_random_pairs(monaco: RoadGraph, monaco_snapper: Snapper) -> None:
    """Every entry from 10 origins equals networkx Dijkstra on the same graph, partial edges
    included."""
    points = random_points(monaco, monaco_snapper, 60, seed=5)
    m = travel_matrix(monaco, points, workers=1)
    origins = np.arange(0, 60, 6)
    reference, _ = networkx_baseline(monaco, points, origins)
    assert np.max(np.abs(reference - m.duration_s[origins])) <= TOLERANCE_S


def test_parallel_workers_give_the_same_matrix(monaco: RoadGraph, monaco_snapper: Snapper) -> None:
    """Splitting origins over worker threads changes nothing in the result."""
    points = random_points(monaco, monaco_snapper, 100, seed=2)
    one = travel_matrix(monaco, points, workers=1)
    two = travel_matrix(monaco, points, workers=2)
    assert np.array_equal(one.duration_s, two.duration_s)
    assert np.array_equal(one.distance_m, two.distance_m)


def test_triangle_inequality(monaco: RoadGraph, monaco_snapper: Snapper) -> None:
    """Going via a third point is never faster than going direct (up to rounding)."""
    points = random_points(monaco, monaco_snapper, 40, seed=9)
    t = travel_matrix(monaco, points, workers=1).duration_s.astype(float)
    via = t[:, :, None] + t[None, :, :]  # via[i, j, k] = t[i, j] + t[j, k]
    direct = t[:, None, :]
    assert np.all(direct <= via + TOLERANCE_S)


def test_rectangular_matrix(helsinki: RoadGraph, helsinki_snapper: Snapper) -> None:
    """Origins and destinations may differ; the shape follows them."""
    points = random_points(helsinki, helsinki_snapper, 12, seed=4)
    full = travel_matrix(helsinki, points, workers=1)
    part = travel_matrix(helsinki, points.take([0, 1, 2]), points.take([5, 6]), workers=1)
    assert part.duration_s.shape == (3, 2)
    assert np.array_equal(part.duration_s, full.duration_s[np.ix_([0, 1, 2], [5, 6])])

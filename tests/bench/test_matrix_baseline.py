"""The matrix benchmark's networkx baseline (bench.matrix): one Dijkstra per origin from a
virtual source, spread over processes, gives the same matrix as routing.matrix."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench.matrix import main, networkx_baseline, random_points
from routing.matrix import travel_matrix
from routing.road_graph import RoadGraph
from routing.snapping import Snapper

# Ours rounds each edge to 0.1 s and each entry to whole seconds; networkx does neither.
TOLERANCE_S = 2.0


def test_baseline_agrees_with_ours_on_every_pair(
    helsinki: RoadGraph, helsinki_snapper: Snapper
) -> None:
    """All origins to all destinations, partial edges at both ends and pairs on one road."""
    points = random_points(helsinki, helsinki_snapper, 40, seed=3)
    ours = travel_matrix(helsinki, points, workers=1).duration_s
    reference, seconds = networkx_baseline(helsinki, points, np.arange(40))
    assert reference.shape == (40, 40)
    assert np.max(np.abs(reference - ours)) <= TOLERANCE_S
    assert np.all(np.diag(reference) == 0)
    assert seconds > 0


def test_baseline_in_processes_gives_the_same_rows_in_order(
    helsinki: RoadGraph, helsinki_snapper: Snapper
) -> None:
    """Two processes, origins in a shuffled order: the rows come back as asked, equal to one
    process's."""
    points = random_points(helsinki, helsinki_snapper, 30, seed=4)
    origins = np.random.default_rng(0).permutation(30)[:25]
    one, _ = networkx_baseline(helsinki, points, origins, workers=1)
    two, _ = networkx_baseline(helsinki, points, origins, workers=2)
    assert np.array_equal(one, two)


def test_json_states_the_workers(capsys: pytest.CaptureFixture[str]) -> None:
    """The last line names the baseline and its process count, equal to our thread count."""
    assert main(["--n", "20", "--repeat", "1", "--workers", "2"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["workers"] == result["baseline_workers"] == 2
    assert result["cpu_count"] >= 1
    assert "one per origin" in result["baseline"]
    assert result["max_abs_diff_s"] <= TOLERANCE_S
    assert result["baseline_origins_timed"] == 20

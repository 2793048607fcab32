"""Shared fixtures: road graphs loaded once per session, a private graph cache."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from routing.network import load_road_graph
from routing.road_graph import RoadGraph
from routing.snapping import Snapper

REPO = Path(__file__).resolve().parents[1]
SHARED_OSM = REPO.parent / "shared" / "data" / "osm"


@pytest.fixture(scope="session", autouse=True)
def _private_graph_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Tests never read or write the user's graph cache."""
    previous = os.environ.get("LASTMILE_CACHE_DIR")
    os.environ["LASTMILE_CACHE_DIR"] = str(tmp_path_factory.mktemp("graph-cache"))
    yield
    if previous is None:
        os.environ.pop("LASTMILE_CACHE_DIR", None)
    else:
        os.environ["LASTMILE_CACHE_DIR"] = previous


def shared_osm(name: str) -> Path:
    """A real extract from the shared data folder, or skip saying where it was looked for."""
    path = SHARED_OSM / name
    if not path.is_file():
        pytest.skip(f"shared OSM extract not found: {path}")
    return path


@pytest.fixture(scope="session")
def helsinki() -> RoadGraph:
    return load_road_graph()[0]


@pytest.fixture(scope="session")
def helsinki_snapper(helsinki: RoadGraph) -> Snapper:
    return Snapper(helsinki)


@pytest.fixture(scope="session")
def monaco() -> RoadGraph:
    return load_road_graph(shared_osm("monaco.osm.pbf"))[0]


@pytest.fixture(scope="session")
def monaco_snapper(monaco: RoadGraph) -> Snapper:
    return Snapper(monaco)

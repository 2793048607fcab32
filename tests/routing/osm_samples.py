"""Small OSM XML documents written by the tests (real format, hand-sized content)."""

from __future__ import annotations

LAT0, LON0 = 60.1700, 24.9400
STEP = 0.001  # about 111 m north-south, 55 m east-west at this latitude


def grid_osm_xml(*, drivable: bool = True) -> str:
    """A 3 x 3 grid of junctions: two-way residential rows, a one-way column, a footway.

    With ``drivable=False`` every way is a footway or cycleway: no road for a van.
    """
    nodes = []
    for r in range(3):
        for c in range(3):
            nid = 1 + r * 3 + c
            nodes.append(
                f'  <node id="{nid}" version="1" lat="{LAT0 + r * STEP:.7f}" '
                f'lon="{LON0 + c * STEP:.7f}"/>'
            )
    ways = []
    wid = 100

    def way(refs: list[int], tags: dict[str, str]) -> None:
        nonlocal wid
        wid += 1
        nds = "".join(f'<nd ref="{n}"/>' for n in refs)
        tag_xml = "".join(f'<tag k="{k}" v="{v}"/>' for k, v in tags.items())
        ways.append(f'  <way id="{wid}" version="1">{nds}{tag_xml}</way>')

    road = {"highway": "residential"} if drivable else {"highway": "footway"}
    for r in range(3):
        way([1 + r * 3, 2 + r * 3, 3 + r * 3], road)
    way([1, 4, 7], road)
    way([9, 6, 3], road)
    # The middle column is one-way northwards (increasing latitude).
    way([2, 5, 8], {**road, "oneway": "yes"} if drivable else {"highway": "cycleway"})
    # A footway across the middle: never part of the driving graph.
    way([4, 8], {"highway": "footway"})
    body = "\n".join(nodes + ways)
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<osm version="0.6">\n{body}\n</osm>\n'

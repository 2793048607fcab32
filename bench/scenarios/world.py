"""What every scenario shares: SUMO's network and our planner's graph of one OSM extract, the
depot, and the kerbside places a stop may be sampled at."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.scenarios import sumo_net
from bench.scenarios.cities import MONACO, City
from bench.scenarios.sumo_net import StopEdge, StopSite
from domain.geo import LatLon, haversine_m
from routing.network import file_sha256, load_road_graph
from routing.road_graph import RoadGraph
from routing.snapping import Snapper

STOP_MIN_LANE_M = 40.0
STOP_MAX_SPEED_MPS = 16.7
STOP_KERB_MARGIN_M = (15.0, 10.0)


@dataclass(frozen=True, slots=True)
class World:
    """Everything shared by the scenarios: SUMO's net and our planner's graph of one extract."""

    osm: Path
    osm_sha256: str
    city: City
    net_path: Path
    net: Any
    graph: RoadGraph
    snapper: Snapper
    stop_edges: tuple[StopEdge, ...]
    depot: StopSite
    grid_north_deg: float
    connected: frozenset[str]


def prepare_world(osm: Path, work_dir: Path, city: City = MONACO) -> World:
    net_path = sumo_net.build_net(osm, work_dir, boundary=city.net_boundary)
    net = sumo_net.read_net(net_path)
    connected = sumo_net.strongly_connected_edges(net)
    edges = sumo_net.stop_edges(
        net, connected, min_length_m=STOP_MIN_LANE_M, max_speed_mps=STOP_MAX_SPEED_MPS
    )
    if city.district_centre is not None:
        edges = _in_district(net, edges, city.district_centre, city.district_radius_m)
    graph, _ = load_road_graph(osm)
    return World(
        osm=osm,
        osm_sha256=file_sha256(osm),
        city=city,
        net_path=net_path,
        net=net,
        graph=graph,
        snapper=Snapper(graph),
        stop_edges=tuple(edges),
        depot=_depot_site(net, edges, city.depot_near),
        grid_north_deg=sumo_net.grid_north_deg(net),
        connected=frozenset(connected),
    )


def _in_district(
    net: Any, edges: Sequence[StopEdge], centre: LatLon, radius_m: float
) -> list[StopEdge]:
    """The edges whose middle lies within ``radius_m`` of ``centre``."""
    out: list[StopEdge] = []
    for edge in edges:
        middle = sumo_net.site_at(net, edge, edge.length_m / 2)
        if haversine_m(LatLon(middle.lat, middle.lon), centre) <= radius_m:
            out.append(edge)
    return out


def _depot_site(net: Any, edges: Sequence[StopEdge], near: LatLon) -> StopSite:
    sites = [sumo_net.site_at(net, e, e.length_m / 2) for e in edges]
    return min(sites, key=lambda s: haversine_m(LatLon(s.lat, s.lon), near))


def sample_sites(world: World, rng: np.random.Generator, count: int) -> list[StopSite]:
    """``count`` stops on distinct edges (never the depot's), at a random kerb position."""
    pool = [e for e in world.stop_edges if e.edge_id != world.depot.edge_id]
    picked = rng.choice(len(pool), size=count, replace=False)
    sites: list[StopSite] = []
    for k in picked.tolist():
        edge = pool[k]
        low_m, high_m = STOP_KERB_MARGIN_M[0], edge.length_m - STOP_KERB_MARGIN_M[1]
        sites.append(sumo_net.site_at(world.net, edge, float(rng.uniform(low_m, high_m))))
    return sites

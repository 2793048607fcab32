"""Snapping points to the nearest point on the nearest road (not merely the nearest node).

The spatial index (a shapely STRtree over every road's shape, in a local metric projection)
is built once per graph and reused for every point, so the GPS hot path pays only a query.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyproj
import shapely

from domain.errors import Problem, ValidationError
from domain.geo import LatLon
from routing.road_graph import FloatArray, IntArray, RoadGraph

DEFAULT_MAX_SNAP_M = 500.0


class SnapError(ValidationError):
    """One or more points are too far from any drivable road; each problem names the point."""


@dataclass(frozen=True, slots=True, eq=False)
class SnappedPoints:
    """Points placed on roads.

    Point ``i`` lies on edge ``edge[i]`` at ``fraction[i]`` of its length from its start
    (the edge's twin, if any, passes the same place at ``1 - fraction[i]``).
    ``distance_m[i]`` is how far the original point was from the road.
    """

    edge: IntArray
    fraction: FloatArray
    distance_m: FloatArray
    lat: FloatArray
    lon: FloatArray

    def __len__(self) -> int:
        return len(self.edge)

    def point(self, i: int) -> LatLon:
        return LatLon(float(self.lat[i]), float(self.lon[i]))

    def take(self, indices: Sequence[int] | IntArray) -> SnappedPoints:
        """A subset, in the given order."""
        idx = np.asarray(indices, dtype=np.int64)
        return SnappedPoints(
            self.edge[idx], self.fraction[idx], self.distance_m[idx], self.lat[idx], self.lon[idx]
        )


class Snapper:
    """Nearest-road lookups on one graph. Build once; thread-safe to query."""

    def __init__(self, graph: RoadGraph) -> None:
        self.graph = graph
        lat0 = float(np.mean(graph.node_lat))
        lon0 = float(np.mean(graph.node_lon))
        # Azimuthal equidistant around the graph's centre: metres, nearly true over a city.
        crs = pyproj.CRS.from_proj4(f"+proj=aeqd +lat_0={lat0} +lon_0={lon0} +datum=WGS84 +units=m")
        self._to_m = pyproj.Transformer.from_crs("EPSG:4326", crs, always_xy=True)
        self._to_deg = pyproj.Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
        # One line per road: a two-way road's twin edges share a shape, index it once.
        twin = graph.edge_twin
        canonical = np.flatnonzero((twin < 0) | (np.arange(graph.edge_count) < twin))
        self._segment_edge: IntArray = canonical.astype(np.int64)
        x, y = self._to_m.transform(graph.geom_lon, graph.geom_lat)
        coords = np.column_stack((x, y))
        sizes = np.diff(graph.geom_offset)
        owner = np.repeat(np.arange(graph.edge_count), sizes)
        mask = np.isin(owner, canonical)
        remap = np.full(graph.edge_count, -1, dtype=np.int64)
        remap[canonical] = np.arange(len(canonical))
        self._lines = shapely.linestrings(coords[mask], indices=remap[owner[mask]])
        self._tree = shapely.STRtree(self._lines)

    def roads_near(
        self, point: LatLon, radius_m: float, max_roads: int = 600
    ) -> list[list[tuple[float, float]]]:
        """The roads within ``radius_m`` of ``point``, each as (lat, lon) points, nearest first
        and at most ``max_roads`` (a base map drawn from our own network, with no tile server).
        """
        x, y = self._to_m.transform(point.lon, point.lat)
        centre = shapely.Point(x, y)
        found = self._tree.query(centre.buffer(radius_m))
        if len(found) == 0:
            return []
        order = np.argsort(shapely.distance(self._lines[found], centre), kind="stable")
        roads = []
        for segment in found[order][:max_roads]:
            edge = int(self._segment_edge[segment])
            start, end = self.graph.geom_offset[edge], self.graph.geom_offset[edge + 1]
            lats = self.graph.geom_lat[start:end]
            lons = self.graph.geom_lon[start:end]
            roads.append([(float(a), float(b)) for a, b in zip(lats, lons, strict=True)])
        return roads

    def snap(
        self,
        points: Sequence[LatLon],
        *,
        ids: Sequence[str] | None = None,
        max_distance_m: float = DEFAULT_MAX_SNAP_M,
        field: str = "points",
    ) -> SnappedPoints:
        """Place every point on its nearest road.

        Raises SnapError listing every point farther than ``max_distance_m`` from a road,
        each named by its id (or index) with its distance.
        """
        lats = np.array([p.lat for p in points], dtype=np.float64)
        lons = np.array([p.lon for p in points], dtype=np.float64)
        snapped = self.snap_arrays(lats, lons)
        far = np.flatnonzero(snapped.distance_m > max_distance_m)
        if len(far):
            problems = [
                Problem(
                    f"{field}[{ids[int(i)] if ids is not None else int(i)}]",
                    f"point ({lats[i]:.6f}, {lons[i]:.6f}) is {snapped.distance_m[i]:.0f} m "
                    f"from the nearest drivable road (limit {max_distance_m:.0f} m)",
                )
                for i in far
            ]
            raise SnapError(problems)
        return snapped

    def snap_arrays(self, lat: FloatArray, lon: FloatArray) -> SnappedPoints:
        """Snap without a distance limit (the caller judges ``distance_m``)."""
        if len(lat) == 0:
            empty_f = np.zeros(0, dtype=np.float64)
            return SnappedPoints(np.zeros(0, dtype=np.int64), empty_f, empty_f, empty_f, empty_f)
        x, y = self._to_m.transform(np.asarray(lon), np.asarray(lat))
        pts = shapely.points(np.column_stack((x, y)))
        (query_idx, line_idx), dist = self._tree.query_nearest(
            pts, return_distance=True, all_matches=False
        )
        order = np.argsort(query_idx, kind="stable")
        line_idx = line_idx[order]
        dist = dist[order]
        lines = self._lines[line_idx]
        along = shapely.line_locate_point(lines, pts)
        length = shapely.length(lines)
        ratio = np.divide(along, length, out=np.zeros_like(along), where=length > 0)
        fraction = np.clip(ratio, 0.0, 1.0)
        on_road = shapely.line_interpolate_point(lines, along)
        sx, sy = shapely.get_x(on_road), shapely.get_y(on_road)
        slon, slat = self._to_deg.transform(sx, sy)
        return SnappedPoints(
            edge=self._segment_edge[line_idx],
            fraction=np.asarray(fraction, dtype=np.float64),
            distance_m=np.asarray(dist, dtype=np.float64),
            lat=np.asarray(slat, dtype=np.float64),
            lon=np.asarray(slon, dtype=np.float64),
        )

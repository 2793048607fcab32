"""Seeded, realistic delivery days on a road graph, for the demo, tests and benchmarks."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from domain.geo import LatLon
from domain.problem import (
    Depot,
    Order,
    PlanningProblem,
    TimeWindow,
    Vehicle,
    planning_problem,
)
from routing.road_graph import RoadGraph


def random_day(
    graph: RoadGraph,
    *,
    orders: int,
    vehicles: int,
    seed: int = 0,
    day: date = date(2026, 11, 26),
    tz: str = "UTC",
    capacity: int | None = None,
    shift_h: float = 10.0,
    window_h: tuple[float, ...] = (2.0, 3.0),
) -> PlanningProblem:
    """A day of deliveries: addresses sampled on the roads, mixed windows, 2-8 min service.

    Shifts run from 08:00 local time for ``shift_h`` hours; a third of the orders are open all
    day, the rest have a window of one of the ``window_h`` lengths (whole quarter hours,
    starting on a quarter hour); the depot sits at the node nearest the network's centre.
    """
    rng = np.random.default_rng(seed)
    zone = ZoneInfo(tz)
    t8 = datetime.combine(day, time(8, 0), zone)
    shift = TimeWindow(t8, t8 + timedelta(hours=shift_h))
    quarters = int(shift_h * 4)
    lat_c, lon_c = graph.node_lat.mean(), graph.node_lon.mean()
    centre = np.argmin((graph.node_lat - lat_c) ** 2 + (graph.node_lon - lon_c) ** 2)
    depot = Depot("depot-1", LatLon(float(graph.node_lat[centre]), float(graph.node_lon[centre])))
    edges = rng.integers(0, graph.edge_count, orders)
    made: list[Order] = []
    for k, edge in enumerate(edges.tolist()):
        coords = graph.edge_coords(edge)
        p = coords[rng.integers(0, len(coords))]
        # Addresses sit beside the road, not on its centre line.
        lat = float(p[1] + rng.normal(0.0, 0.00008))
        lon = float(p[0] + rng.normal(0.0, 0.00008))
        windows: tuple[TimeWindow, ...] = ()
        if rng.random() >= 1 / 3:
            length_q = min(quarters, max(1, round(float(rng.choice(window_h)) * 4)))
            start_q = int(rng.integers(0, quarters - length_q + 1))
            windows = (
                TimeWindow(
                    t8 + timedelta(minutes=15 * start_q),
                    t8 + timedelta(minutes=15 * (start_q + length_q)),
                ),
            )
        made.append(
            Order(
                id=f"order-{k + 1:04d}",
                location=LatLon(lat, lon),
                windows=windows,
                service_s=int(rng.integers(120, 481)),
                demand=(int(rng.integers(1, 4)),),
                customer_ref=f"customer-{k + 1:04d}",
            )
        )
    cap = capacity if capacity is not None else int(np.ceil(orders * 2 / vehicles * 1.5))
    fleet = [
        Vehicle(f"van-{i + 1}", depot.location, shift, end=depot.location, capacity=(cap,))
        for i in range(vehicles)
    ]
    return planning_problem([depot], fleet, made)

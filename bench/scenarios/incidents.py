"""Disruptions for the incident scenarios, picked on an undisrupted run's van routes.

A disrupted scenario is simulated twice with the same seed, background traffic and dwell
draws: first undisrupted (the *baseline*, with each fix's lane), then with the disruptions,
which are placed on the edges the vans really drove in the baseline and timed by it:

- ``holdup``: a van halted 15-35 min between two deliveries (breakdown, accident, police)
  on a kerbside lane of its route: an extra SUMO ``<stop>``, not a delivery;
- ``road_closure``: 20-40 min on an edge a van is about to drive (``<rerouter>`` with a
  ``<closingReroute>``), so it detours;
- ``long_service``: a delivery whose dwell is 3-4x the planned service time;
- ``slowdown``: a ``<variableSpeedSign>`` cutting an edge to walking pace for 30 min.

Only what runs before a van's first disruption may be timed by the baseline, so a closure or
slowdown is placed on a van before any other disruption of that van.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import networkx as nx
import numpy as np

from bench.scenarios.simulate import Closure, Fix, HoldUp, Slowdown, StopEvent, VanTrip
from bench.scenarios.sumo_net import EdgeInfo, StopEdge

HOLDUP_S = (900, 2100)
CLOSURE_S = (1200, 2400)
SLOWDOWN_S = 1800
SLOWDOWN_MPS = 2.5
LONG_SERVICE_FACTOR = (3.0, 4.0)
#: Long dwells go to stops planned at this or longer (a heavy parcel is not a 2-minute drop).
LONG_SERVICE_MIN_PLANNED_S = 240
#: A closure is worth simulating if the best detour costs this much more (free-flow, s).
CLOSURE_DETOUR_S = (30.0, 900.0)
SLOWDOWN_MIN_LENGTH_M = 80.0
SLOWDOWN_MIN_SPEED_MPS = 8.0
#: Where along a route (share of its stops) disruptions go: early enough to delay many stops.
EARLY_SHARE = (0.2, 0.5)


@dataclass(frozen=True, slots=True)
class EdgeVisit:
    """A van on one (normal) edge, from its first to its last fix there (SUMO seconds)."""

    edge_id: str
    enter_s: float
    exit_s: float


@dataclass(frozen=True, slots=True)
class Roles:
    """Which van suffers what; ``long_service`` maps stop id to its (long) simulated dwell."""

    holdup_van: str
    closure_van: str
    long_service: dict[str, int]
    long_service_van: dict[str, str]


def edge_visits(fixes: Sequence[Fix]) -> list[EdgeVisit]:
    """The van's normal edges in driving order (junction-internal lanes skipped)."""
    out: list[EdgeVisit] = []
    for fix in fixes:
        if not fix.lane_id or fix.lane_id.startswith(":"):
            continue
        edge_id = fix.lane_id.rsplit("_", 1)[0]
        if out and out[-1].edge_id == edge_id:
            out[-1] = EdgeVisit(edge_id, out[-1].enter_s, fix.time_s)
        else:
            out.append(EdgeVisit(edge_id, fix.time_s, fix.time_s))
    return out


def segment(
    visits: Sequence[EdgeVisit], events: Sequence[StopEvent], van: VanTrip, index: int
) -> list[EdgeVisit]:
    """Edges driven between delivery ``index`` and the next one (their own edges excluded)."""
    left, arrive = events[index].ended_s, events[index + 1].started_s
    ends = {van.stops[index].site.edge_id, van.stops[index + 1].site.edge_id}
    return [v for v in visits if left < v.enter_s < arrive and v.edge_id not in ends]


def early_indices(count: int, rng: np.random.Generator) -> list[int]:
    """Stop indices in the early-middle part of a route of ``count`` stops, shuffled."""
    low = max(1, round(EARLY_SHARE[0] * count))
    high = max(low, round(EARLY_SHARE[1] * count))
    return [int(k) for k in rng.permutation(np.arange(low, high + 1))]


def pick_roles(
    vans: Sequence[VanTrip], planned_s: dict[str, int], rng: np.random.Generator
) -> tuple[Roles, dict[str, int]]:
    """Hold-up van, closure van, and one or two long-service stops (index by van)."""
    order = [vans[int(k)] for k in rng.permutation(len(vans))]
    holdup, closure = order[0], order[1]
    # Long dwells on the vans not closed off (the closure must be timed by the baseline):
    # the third (and fourth) van, or the hold-up van when there are only two.
    targets = order[2:] or [holdup]
    long_service: dict[str, int] = {}
    long_van: dict[str, str] = {}
    index_of: dict[str, int] = {}
    for van in targets[:2]:
        candidates = early_indices(len(van.stops), rng)
        heavy = [
            k for k in candidates if planned_s[van.stops[k].stop_id] >= LONG_SERVICE_MIN_PLANNED_S
        ]
        k = (heavy or candidates)[0]
        stop_id = van.stops[k].stop_id
        factor = float(rng.uniform(*LONG_SERVICE_FACTOR))
        long_service[stop_id] = round(planned_s[stop_id] * factor)
        long_van[stop_id] = van.vehicle_id
        index_of[van.vehicle_id] = k
    return Roles(holdup.vehicle_id, closure.vehicle_id, long_service, long_van), index_of


def pick_holdup(
    van: VanTrip,
    visits: Sequence[EdgeVisit],
    events: Sequence[StopEvent],
    kerb: dict[str, StopEdge],
    busy: set[str],
    rng: np.random.Generator,
    site_at: Any,
) -> HoldUp | None:
    """A kerbside halt on the van's route between two deliveries, early-mid route."""
    for k in early_indices(len(van.stops) - 1, rng):
        if k + 1 >= len(van.stops):
            continue
        options = [v for v in segment(visits, events, van, k) if v.edge_id in kerb]
        options = [v for v in options if v.edge_id not in busy]
        if not options:
            continue
        edge = kerb[options[len(options) // 2].edge_id]
        position_m = float(rng.uniform(15.0, edge.length_m - 10.0))
        duration_s = int(rng.integers(HOLDUP_S[0], HOLDUP_S[1] + 1))
        return HoldUp(k, site_at(edge, position_m), duration_s)
    return None


@dataclass(frozen=True, slots=True)
class ClosurePick:
    closure: Closure
    index: int
    enter_s: float
    detour_s: float


def pick_closure(
    van: VanTrip,
    visits: Sequence[EdgeVisit],
    events: Sequence[StopEvent],
    graph: Any,
    infos: dict[str, EdgeInfo],
    busy: set[str],
    incoming: Any,
    rng: np.random.Generator,
) -> ClosurePick | None:
    """An edge the van drives early-mid route, with a real but bounded detour around it."""
    for k in early_indices(len(van.stops) - 1, rng):
        if k + 1 >= len(van.stops):
            continue
        path = [van.stops[k].site.edge_id] + [v.edge_id for v in segment(visits, events, van, k)]
        enter = {v.edge_id: v.enter_s for v in segment(visits, events, van, k)}
        best: tuple[float, int] | None = None
        for i in range(2, len(path) - 1):
            closed = path[i]
            if closed in busy or closed not in infos:
                continue
            detour_s = _detour_s(graph, path[i - 1], closed, path[i + 1])
            bounded = CLOSURE_DETOUR_S[0] <= detour_s <= CLOSURE_DETOUR_S[1]
            if bounded and (best is None or detour_s > best[0]):
                best = (detour_s, i)
        if best is None:
            continue
        detour_s, i = best
        closed = path[i]
        left_s = events[k].ended_s
        begin_s = int(left_s - rng.uniform(60.0, 600.0))
        end_s = begin_s + int(rng.integers(CLOSURE_S[0], CLOSURE_S[1] + 1))
        if enter[closed] > end_s - 120:
            continue
        upstream = set(path[1:i]) | set(incoming(closed))
        upstream |= {e for edge in list(upstream) for e in incoming(edge)}
        upstream.discard(closed)
        closure = Closure(closed, begin_s, end_s, tuple(sorted(upstream)))
        return ClosurePick(closure, k, enter[closed], detour_s)
    return None


def _detour_s(graph: Any, before: str, closed: str, after: str) -> float:
    """Extra free-flow seconds from ``before`` to ``after`` when ``closed`` is shut."""
    if not (graph.has_edge(before, closed) and graph.has_edge(closed, after)):
        return float("inf")
    direct = graph[before][closed]["weight"] + graph[closed][after]["weight"]

    def weight(u: str, v: str, data: dict[str, float]) -> float | None:
        return None if closed in (u, v) else data["weight"]

    try:
        around = float(nx.shortest_path_length(graph, before, after, weight=weight))
    except nx.NetworkXNoPath:
        return float("inf")
    return around - float(direct)


@dataclass(frozen=True, slots=True)
class SlowdownPick:
    slowdown: Slowdown
    van: str
    edge_id: str
    enter_s: float


def pick_slowdown(
    vans: Sequence[VanTrip],
    visits: dict[str, list[EdgeVisit]],
    events: dict[str, list[StopEvent]],
    first_disruption: dict[str, int],
    infos: dict[str, EdgeInfo],
    busy: set[str],
    rng: np.random.Generator,
) -> SlowdownPick | None:
    """A long, fast edge a van drives before its other disruptions; busiest (most vans) first."""
    used: dict[str, int] = {}
    for van_visits in visits.values():
        for edge_id in {v.edge_id for v in van_visits}:
            used[edge_id] = used.get(edge_id, 0) + 1
    options: list[tuple[int, float, float, str, str, float]] = []
    for van in vans:
        limit = first_disruption.get(van.vehicle_id, len(van.stops) - 1)
        for k in range(min(limit, len(van.stops) - 1)):
            for v in segment(visits[van.vehicle_id], events[van.vehicle_id], van, k):
                info = infos.get(v.edge_id)
                if info is None or v.edge_id in busy:
                    continue
                if info.length_m < SLOWDOWN_MIN_LENGTH_M or info.speed_mps < SLOWDOWN_MIN_SPEED_MPS:
                    continue
                tie = float(rng.random())
                options.append(
                    (used[v.edge_id], info.length_m, tie, van.vehicle_id, v.edge_id, v.enter_s)
                )
    if not options:
        return None
    _, _, _, van_id, edge_id, enter_s = max(options)
    info = infos[edge_id]
    begin_s = max(0, int(enter_s - rng.uniform(300.0, 1200.0)))
    slowdown = Slowdown(info.lane_ids, begin_s, begin_s + SLOWDOWN_S, SLOWDOWN_MPS, info.speed_mps)
    return SlowdownPick(slowdown, van_id, edge_id, enter_s)


def time_on(visits: Iterable[EdgeVisit], edge_id: str, begin_s: float, end_s: float) -> float:
    """Seconds the van spent on ``edge_id`` on visits entered between begin and end."""
    return sum(
        v.exit_s - v.enter_s + 1
        for v in visits
        if v.edge_id == edge_id and begin_s <= v.enter_s and v.enter_s <= end_s
    )

"""Generate the SUMO ground-truth delivery scenarios (offline; needs the ``sim`` extra).

    python -m bench.scenarios.generate [--osm ../shared/data/osm/monaco.osm.pbf]
                                       [--out bench/scenarios] [--only NAME ...]
                                       [--attempts N] [--work-dir DIR]

For each scenario: stops are sampled on SUMO's network, our planner (on its own graph of the
same extract) orders them as a dispatcher would, then SUMO drives the vans through them in
that order among random background traffic, with dwell times that differ from the planned
ones. A run where a van teleports, misses a stop or the traffic locks up is thrown away and
the scenario is tried again with the next seed. The last line printed is a JSON summary.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from bench.scenarios import incidents, simulate, sumo_net
from bench.scenarios.simulate import Fix, RunOutput, StopEvent, VanStop, VanTrip
from bench.scenarios.sumo_net import StopEdge, StopSite
from domain.geo import LatLon, haversine_m
from domain.plan import Plan
from domain.problem import Depot, Order, PlanningProblem, TimeWindow, Vehicle, planning_problem
from routing.costs import SolverParams
from routing.network import file_sha256, load_road_graph
from routing.planner import plan_routes
from routing.road_graph import RoadGraph
from routing.snapping import Snapper

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OSM = Path("../shared/data/osm/monaco.osm.pbf")
SCENARIO_DIR = Path(__file__).resolve().parent
MONACO = ZoneInfo("Europe/Monaco")

#: Fontvieille's light-industrial quarter, where a parcel depot would plausibly sit.
DEPOT_NEAR = LatLon(43.7290, 7.4158)
#: Background traffic runs this long before the first van leaves, so the roads are loaded.
WARMUP_S = 1200
SHIFT_S = 9 * 3600
#: Vans leave the depot a few minutes apart, as they would after loading one by one.
VAN_STAGGER_S = 240
STOPS_PER_VAN = (10, 13)
PLANNED_SERVICE_S = (120, 150, 180, 210, 240, 270, 300)
#: Background vehicles inserted per hour for each congestion level; "heavy" is the busiest
#: rate at which trial runs on Monaco stayed clear of gridlock (jam teleports).
BACKGROUND_PER_HOUR = {"light": 1000, "moderate": 2500, "heavy": 4000}
#: A run whose background traffic teleports more than this share of its vehicles is gridlocked.
MAX_BACKGROUND_TELEPORT_SHARE = 0.01
MAX_FIX_SPEED_MPS = 60.0
MAX_STOP_FIX_M = 60.0
STOP_MIN_LANE_M = 40.0
STOP_MAX_SPEED_MPS = 16.7
STOP_KERB_MARGIN_M = (15.0, 10.0)
PLANNER_TIME_LIMIT_S = 5.0


@dataclass(frozen=True, slots=True)
class ScenarioSpec:
    name: str
    seed: int
    congestion: str
    vans: int
    day: date
    shift_start: time
    #: Inject disruptions (hold-up, road closure, long dwells, slowdown); see incidents.py.
    incidents: bool = False


#: The kept set: light to heavy traffic, 2-4 vans, weekdays in March 2026 around 08:00.
SCENARIOS: tuple[ScenarioSpec, ...] = (
    ScenarioSpec("monaco-light-1", 101, "light", 2, date(2026, 3, 10), time(8, 0)),
    ScenarioSpec("monaco-light-2", 102, "light", 3, date(2026, 3, 11), time(7, 45)),
    ScenarioSpec("monaco-moderate-1", 201, "moderate", 2, date(2026, 3, 12), time(8, 0)),
    ScenarioSpec("monaco-moderate-2", 202, "moderate", 3, date(2026, 3, 13), time(8, 15)),
    ScenarioSpec("monaco-moderate-3", 203, "moderate", 4, date(2026, 3, 16), time(8, 0)),
    ScenarioSpec("monaco-heavy-1", 301, "heavy", 2, date(2026, 3, 17), time(8, 0)),
    ScenarioSpec("monaco-heavy-2", 302, "heavy", 3, date(2026, 3, 18), time(7, 30)),
    ScenarioSpec("monaco-incident-1", 401, "moderate", 2, date(2026, 3, 19), time(8, 0), True),
    ScenarioSpec("monaco-incident-2", 402, "moderate", 3, date(2026, 3, 20), time(8, 0), True),
    ScenarioSpec("monaco-incident-3", 403, "moderate", 2, date(2026, 3, 23), time(7, 45), True),
    ScenarioSpec("monaco-incident-4", 404, "moderate", 3, date(2026, 3, 24), time(8, 15), True),
)
#: An incident scenario is kept only if its disruptions delay this share of its stops by
#: 10+ minutes (against the same run undisrupted), so that delay notices matter.
MIN_DELAYED_SHARE = 0.25
DELAYED_S = 600


@dataclass(frozen=True, slots=True)
class ServiceModel:
    """How simulated dwell departs from the planned one: a bias, a spread and rare overruns."""

    bias: float
    sigma: float
    overrun_share: float
    overrun_factor: tuple[float, float] = (2.0, 3.0)

    def draw(self, planned_s: int, rng: np.random.Generator) -> int:
        if rng.random() < self.overrun_share:
            factor = float(rng.uniform(*self.overrun_factor))
        else:
            factor = self.bias * math.exp(float(rng.normal(0.0, self.sigma)))
        return max(30, round(planned_s * factor))


@dataclass(frozen=True, slots=True)
class World:
    """Everything shared by the scenarios: SUMO's net and our planner's graph of one extract."""

    osm: Path
    osm_sha256: str
    net_path: Path
    net: Any
    graph: RoadGraph
    snapper: Snapper
    stop_edges: tuple[StopEdge, ...]
    depot: StopSite
    grid_north_deg: float
    connected: frozenset[str]


@dataclass(frozen=True, slots=True)
class Kept:
    """A scenario that passed every check, ready to be written."""

    plan_json: dict[str, Any]
    gps_rows: list[list[str]]
    stop_rows: list[list[str]]
    service_errors_s: list[int]


class DiscardError(Exception):
    """This attempt broke a discard rule; the reason is the message."""


def prepare_world(osm: Path, work_dir: Path) -> World:
    net_path = sumo_net.build_net(osm, work_dir)
    net = sumo_net.read_net(net_path)
    connected = sumo_net.strongly_connected_edges(net)
    edges = sumo_net.stop_edges(
        net, connected, min_length_m=STOP_MIN_LANE_M, max_speed_mps=STOP_MAX_SPEED_MPS
    )
    graph, _ = load_road_graph(osm)
    return World(
        osm=osm,
        osm_sha256=file_sha256(osm),
        net_path=net_path,
        net=net,
        graph=graph,
        snapper=Snapper(graph),
        stop_edges=tuple(edges),
        depot=_depot_site(net, edges),
        grid_north_deg=sumo_net.grid_north_deg(net),
        connected=frozenset(connected),
    )


def _depot_site(net: Any, edges: Sequence[StopEdge]) -> StopSite:
    sites = [sumo_net.site_at(net, e, e.length_m / 2) for e in edges]
    return min(sites, key=lambda s: haversine_m(LatLon(s.lat, s.lon), DEPOT_NEAR))


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


def shift_starts(spec: ScenarioSpec) -> list[datetime]:
    first = datetime.combine(spec.day, spec.shift_start, MONACO)
    return [first + timedelta(seconds=VAN_STAGGER_S * k) for k in range(spec.vans)]


def build_problem(
    world: World,
    spec: ScenarioSpec,
    sites: Sequence[StopSite],
    planned_service_s: Sequence[int],
    windows: Sequence[TimeWindow | None],
) -> PlanningProblem:
    """The dispatcher's day: one depot, the vans, one parcel per stop.

    Capacity is the fair share plus one, so the planner (which prefers fewer vans) must use
    every van and none gets far more than the others.
    """
    depot = LatLon(world.depot.lat, world.depot.lon)
    capacity = math.ceil(len(sites) / spec.vans) + 1
    vans = [
        Vehicle(
            f"van-{k + 1}",
            depot,
            TimeWindow(start, start + timedelta(seconds=SHIFT_S)),
            end=depot,
            capacity=(capacity,),
        )
        for k, start in enumerate(shift_starts(spec))
    ]
    orders = [
        Order(
            id=f"s{k + 1:02d}",
            location=LatLon(site.lat, site.lon),
            windows=(window,) if window is not None else (),
            service_s=service_s,
            demand=(1,),
        )
        for k, (site, service_s, window) in enumerate(
            zip(sites, planned_service_s, windows, strict=True)
        )
    ]
    return planning_problem([Depot("depot", depot)], vans, orders)


def delivery_slot(service_start: datetime, rng: np.random.Generator) -> TimeWindow | None:
    """The slot a customer would have booked around the planned visit: none, 2 h or 4 h.

    Slots sit on the local clock's grid (08-10, 10-12 or 08-12, 12-16), as web shops sell them.
    """
    draw = rng.random()
    if draw < 0.25:
        return None
    hours = 2 if draw < 0.7 else 4
    local = service_start.astimezone(MONACO)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    slot = (local.hour // hours) * hours
    start = midnight + timedelta(hours=slot)
    return TimeWindow(start, start + timedelta(hours=hours))


def plan_day(world: World, problem: PlanningProblem, seed: int) -> Plan:
    params = SolverParams(time_limit_s=PLANNER_TIME_LIMIT_S, seed=seed)
    return plan_routes(problem, world.graph, world.snapper, params)


def check_plan(plan: Plan, spec: ScenarioSpec) -> None:
    if plan.unassigned:
        raise DiscardError(f"planner left out {len(plan.unassigned)} orders")
    counts = [len(r.stops) for r in plan.routes if r.stops]
    if len(counts) != spec.vans or not all(10 <= c <= 20 for c in counts):
        raise DiscardError(f"stops per van {counts} not 10-20 on each of {spec.vans} vans")


def attempt(world: World, spec: ScenarioSpec, seed: int, work_dir: Path) -> Kept:
    """One try at a scenario with ``seed``; raises DiscardError if a discard rule is broken."""
    rng = np.random.default_rng(seed)
    count = int(sum(rng.integers(STOPS_PER_VAN[0], STOPS_PER_VAN[1] + 1, spec.vans)))
    sites = sample_sites(world, rng, count)
    planned = [int(rng.choice(PLANNED_SERVICE_S)) for _ in sites]
    open_problem = build_problem(world, spec, sites, planned, [None] * count)
    first = plan_day(world, open_problem, seed)
    check_plan(first, spec)
    visit = {s.order_id: s.service_start for r in first.routes for s in r.stops}
    windows = [delivery_slot(visit[o.id], rng) for o in open_problem.orders]
    problem = build_problem(world, spec, sites, planned, windows)
    plan = plan_day(world, problem, seed)
    check_plan(plan, spec)
    service = ServiceModel(
        bias=float(rng.uniform(1.0, 1.25)), sigma=0.3, overrun_share=float(rng.uniform(0.05, 0.1))
    )
    simulated = {o.id: service.draw(o.service_s, rng) for o in problem.orders}
    t0 = min(v.shift.start for v in problem.vehicles)
    epoch0 = int(t0.timestamp()) - WARMUP_S
    site_of = {o.id: site for o, site in zip(problem.orders, sites, strict=True)}
    vans = [
        VanTrip(
            vehicle_id=route.vehicle_id,
            depart_s=int(route.start.timestamp()) - epoch0,
            depot=world.depot,
            stops=tuple(
                VanStop(s.order_id, site_of[s.order_id], simulated[s.order_id]) for s in route.stops
            ),
        )
        for route in plan.routes
    ]
    horizon_s = max(int(r.end.timestamp()) for r in plan.routes) - epoch0
    # Room for slow traffic and overruns; a van not home by then fails the "served all" rule.
    end_s = round(horizon_s * 1.5) + 1800
    per_hour = BACKGROUND_PER_HOUR[spec.congestion]
    disrupted: dict[str, Any] = {}
    if spec.incidents:
        planned_s = {o.id: o.service_s for o in problem.orders}
        run, vans, disrupted = _run_with_incidents(
            world, vans, planned_s, work_dir, end_s=end_s + 3600, per_hour=per_hour, seed=seed
        )
    else:
        run = _simulate(world, vans, work_dir, end_s=end_s, per_hour=per_hour, seed=seed)
    _check_run(run, vans)
    background = run.stats.inserted - len(vans)
    if run.stats.teleports > MAX_BACKGROUND_TELEPORT_SHARE * background:
        raise DiscardError(f"gridlock: {run.stats.teleports} teleports of {background} vehicles")
    gps = _gps_rows(run, world.grid_north_deg, epoch0)
    stop_rows, errors = _stop_rows(run, vans, problem, epoch0)
    _check_trajectories(run, vans)
    meta = {
        "seed": seed,
        "congestion": spec.congestion,
        "background_vehicles": background,
        "background_vehicles_per_hour": per_hour,
        "background_teleports": run.stats.teleports,
        "warmup_s": WARMUP_S,
        "sumo_version": sumo_net.sumo_version(),
        "timezone": "Europe/Monaco",
        "osm_sha256": world.osm_sha256,
        "planner_engine": plan.engine,
        "service_model": {
            "bias": round(service.bias, 3),
            "sigma": service.sigma,
            "overrun_share": round(service.overrun_share, 3),
            "overrun_factor": list(service.overrun_factor),
        },
        "planned_arrival": {
            s.order_id: int(s.arrival.timestamp()) for r in plan.routes for s in r.stops
        },
        "generator": "python -m bench.scenarios.generate",
    }
    if disrupted:
        meta |= _epoch_disruptions(disrupted, epoch0)
    return Kept(_plan_json(world, problem, plan, meta), gps, stop_rows, errors)


def _simulate(
    world: World, vans: list[VanTrip], work_dir: Path, *, end_s: int, per_hour: int, seed: int
) -> RunOutput:
    run_dir = Path(tempfile.mkdtemp(prefix=f"run-{seed}-", dir=work_dir))
    van_file, background_file = run_dir / "vans.rou.xml", run_dir / "background.trips.xml"
    simulate.write_van_routes(van_file, vans)
    simulate.write_background_trips(
        world.net_path, background_file, end_s=end_s, per_hour=per_hour, seed=seed
    )
    return simulate.run_sumo(
        world.net_path,
        [background_file, van_file],
        run_dir,
        end_s=end_s,
        seed=seed,
        van_ids=[v.vehicle_id for v in vans],
    )


def _run_with_incidents(
    world: World,
    vans: list[VanTrip],
    planned_s: dict[str, int],
    work_dir: Path,
    *,
    end_s: int,
    per_hour: int,
    seed: int,
) -> tuple[RunOutput, list[VanTrip], dict[str, Any]]:
    """Simulate undisrupted, place the disruptions on that run's routes, simulate again.

    Returns the disrupted run (delivery halts only), the vans as driven (long dwells and
    hold-ups included) and what was injected with its measured effect (SUMO seconds).
    """
    rng = np.random.default_rng([seed, 7])
    run_dir = Path(tempfile.mkdtemp(prefix=f"run-{seed}-", dir=work_dir))
    background_file = run_dir / "background.trips.xml"
    simulate.write_background_trips(
        world.net_path, background_file, end_s=end_s, per_hour=per_hour, seed=seed
    )
    base_dir = run_dir / "baseline"
    base_dir.mkdir()
    base = _run_in(world, vans, base_dir, background_file, end_s=end_s, seed=seed)
    try:
        _check_run(base, vans)
    except DiscardError as why:
        raise DiscardError(f"baseline: {why}") from why
    ids = [v.vehicle_id for v in vans]
    by_id = {v.vehicle_id: v for v in vans}
    visits = {vid: incidents.edge_visits(base.fixes[vid]) for vid in ids}
    busy = {s.site.edge_id for v in vans for s in v.stops} | {world.depot.edge_id}
    roles, long_index = incidents.pick_roles(vans, planned_s, rng)
    kerb = {e.edge_id: e for e in world.stop_edges}
    holdup = incidents.pick_holdup(
        by_id[roles.holdup_van],
        visits[roles.holdup_van],
        base.stops[roles.holdup_van],
        kerb,
        busy,
        rng,
        lambda edge, pos: sumo_net.site_at(world.net, edge, pos),
    )
    connected = set(world.connected)
    infos = sumo_net.edge_infos(world.net, connected)
    graph = sumo_net.travel_time_graph(world.net, connected)
    closure = incidents.pick_closure(
        by_id[roles.closure_van],
        visits[roles.closure_van],
        base.stops[roles.closure_van],
        graph,
        infos,
        busy,
        lambda edge: sumo_net.incoming_edges(world.net, edge, connected),
        rng,
    )
    if holdup is None or closure is None:
        raise DiscardError("no place for a hold-up or a closure on the vans' routes")
    first = dict(long_index)
    first[roles.holdup_van] = min(
        first.get(roles.holdup_van, holdup.after_index), holdup.after_index
    )
    first[roles.closure_van] = closure.index
    slowdown = incidents.pick_slowdown(
        vans, visits, base.stops, first, infos, busy | {closure.closure.edge_id}, rng
    )
    driven = [
        VanTrip(
            v.vehicle_id,
            v.depart_s,
            v.depot,
            tuple(
                VanStop(s.stop_id, s.site, roles.long_service.get(s.stop_id, s.duration_s))
                for s in v.stops
            ),
            (holdup,) if v.vehicle_id == roles.holdup_van else (),
        )
        for v in vans
    ]
    extra_file = run_dir / "disruptions.add.xml"
    slowdowns = [slowdown.slowdown] if slowdown is not None else []
    simulate.write_disruptions(extra_file, [closure.closure], slowdowns)
    hit_dir = run_dir / "disrupted"
    hit_dir.mkdir()
    hit = _run_in(world, driven, hit_dir, background_file, end_s=end_s, seed=seed, extra=extra_file)
    deliveries, halts = _split_halts(hit, driven)
    run = RunOutput(hit.fixes, deliveries, hit.stats)
    _check_run(run, driven)
    hit_visits = {vid: incidents.edge_visits(hit.fixes[vid]) for vid in ids}
    injected: list[dict[str, Any]] = []

    def leg_s(stops: dict[str, list[StopEvent]], vid: str, k: int) -> float:
        return stops[vid][k + 1].started_s - stops[vid][k].ended_s

    # Hold-up.
    van = by_id[roles.holdup_van]
    halt = halts[van.vehicle_id][0]
    k = holdup.after_index
    injected.append(
        {
            "kind": "holdup",
            "van": van.vehicle_id,
            "start": halt.started_s,
            "end": halt.ended_s,
            "lat": round(holdup.site.lat, 6),
            "lon": round(holdup.site.lon, 6),
            "after_stop": van.stops[k].stop_id,
            "before_stop": van.stops[k + 1].stop_id,
            "sumo_edge": holdup.site.edge_id,
            "delay_s": round(
                leg_s(deliveries, van.vehicle_id, k) - leg_s(base.stops, van.vehicle_id, k)
            ),
        }
    )
    # Road closure: the van must not have driven the closed edge while it was shut.
    van = by_id[roles.closure_van]
    shut = closure.closure
    if any(
        v.edge_id == shut.edge_id and shut.begin_s <= v.enter_s <= shut.end_s
        for v in hit_visits[van.vehicle_id]
    ):
        raise DiscardError(f"closure of {shut.edge_id} did not divert {van.vehicle_id}")
    k = closure.index
    info = infos[shut.edge_id]
    injected.append(
        {
            "kind": "road_closure",
            "van": van.vehicle_id,
            "start": shut.begin_s,
            "end": shut.end_s,
            "lat": round(info.lat, 6),
            "lon": round(info.lon, 6),
            "after_stop": van.stops[k].stop_id,
            "before_stop": van.stops[k + 1].stop_id,
            "sumo_edge": shut.edge_id,
            "free_flow_detour_s": round(closure.detour_s),
            "delay_s": round(
                leg_s(deliveries, van.vehicle_id, k) - leg_s(base.stops, van.vehicle_id, k)
            ),
        }
    )
    # Long dwells.
    for stop_id, van_id in roles.long_service_van.items():
        index = [s.stop_id for s in by_id[van_id].stops].index(stop_id)
        now, before = deliveries[van_id][index], base.stops[van_id][index]
        site = by_id[van_id].stops[index].site
        injected.append(
            {
                "kind": "long_service",
                "van": van_id,
                "start": now.started_s,
                "end": now.ended_s,
                "lat": round(site.lat, 6),
                "lon": round(site.lon, 6),
                "stop": stop_id,
                "planned_service_s": planned_s[stop_id],
                "actual_service_s": round(now.ended_s - now.started_s),
                "delay_s": round(
                    (now.ended_s - now.started_s) - (before.ended_s - before.started_s)
                ),
            }
        )
    if slowdown is not None:
        sign, info = slowdown.slowdown, infos[slowdown.edge_id]
        window = (sign.begin_s, sign.end_s)
        slow_s = incidents.time_on(hit_visits[slowdown.van], slowdown.edge_id, *window)
        fast_s = incidents.time_on(visits[slowdown.van], slowdown.edge_id, *window)
        injected.append(
            {
                "kind": "slowdown",
                "van": slowdown.van,
                "start": sign.begin_s,
                "end": sign.end_s,
                "lat": round(info.lat, 6),
                "lon": round(info.lon, 6),
                "sumo_edge": slowdown.edge_id,
                "speed_mps": sign.speed_mps,
                "normal_speed_mps": round(sign.normal_speed_mps, 2),
                "delay_s": round(slow_s - fast_s),
            }
        )
    caused = {
        s.stop_id: deliveries[v.vehicle_id][k].started_s - base.stops[v.vehicle_id][k].started_s
        for v in vans
        for k, s in enumerate(v.stops)
    }
    delayed = sum(d >= DELAYED_S for d in caused.values())
    if delayed < MIN_DELAYED_SHARE * len(caused):
        raise DiscardError(f"only {delayed} of {len(caused)} stops delayed 10+ min")
    impact = {
        "disruptions": injected,
        "stops_delayed_10min": delayed,
        "disruption_delay_s": {sid: round(d) for sid, d in sorted(caused.items())},
    }
    return run, driven, impact


def _epoch_disruptions(impact: dict[str, Any], epoch0: int) -> dict[str, Any]:
    out = dict(impact)
    out["disruptions"] = [
        {**d, "start": epoch0 + round(d["start"]), "end": epoch0 + round(d["end"])}
        for d in impact["disruptions"]
    ]
    return out


def _split_halts(
    run: RunOutput, vans: list[VanTrip]
) -> tuple[dict[str, list[StopEvent]], dict[str, list[StopEvent]]]:
    """The stop events split into deliveries and hold-ups (checked against the trips)."""
    deliveries: dict[str, list[StopEvent]] = {}
    holdups: dict[str, list[StopEvent]] = {}
    for van in vans:
        events = run.stops.get(van.vehicle_id, [])
        if [e.lane_id for e in events] != van.halt_lanes():
            raise DiscardError(f"{van.vehicle_id} did not make all its halts in order")
        kinds = iter(
            kind
            for k in range(len(van.stops))
            for kind in ["delivery"] + ["holdup" for h in van.holdups if h.after_index == k]
        )
        pairs = list(zip(kinds, events, strict=True))
        deliveries[van.vehicle_id] = [e for kind, e in pairs if kind == "delivery"]
        holdups[van.vehicle_id] = [e for kind, e in pairs if kind == "holdup"]
    return deliveries, holdups


def _run_in(
    world: World,
    vans: list[VanTrip],
    run_dir: Path,
    background_file: Path,
    *,
    end_s: int,
    seed: int,
    extra: Path | None = None,
) -> RunOutput:
    van_file = run_dir / "vans.rou.xml"
    simulate.write_van_routes(van_file, vans)
    return simulate.run_sumo(
        world.net_path,
        [background_file, van_file],
        run_dir,
        end_s=end_s,
        seed=seed,
        van_ids=[v.vehicle_id for v in vans],
        additional_files=[extra] if extra is not None else None,
        fcd_lanes=True,
    )


def _check_run(run: RunOutput, vans: list[VanTrip]) -> None:
    if run.stats.van_teleport_warnings:
        raise DiscardError(f"van teleported: {run.stats.van_teleport_warnings[0]}")
    for van in vans:
        if van.vehicle_id not in run.stats.van_arrival_s:
            raise DiscardError(f"{van.vehicle_id} did not get back to the depot")
        events = run.stops.get(van.vehicle_id, [])
        lanes = [e.lane_id for e in events]
        if lanes != [s.site.lane_id for s in van.stops]:
            raise DiscardError(
                f"{van.vehicle_id} served {len(events)} of {len(van.stops)} stops in order"
            )
        if not run.fixes.get(van.vehicle_id):
            raise DiscardError(f"{van.vehicle_id} has no FCD")


def _check_trajectories(run: RunOutput, vans: list[VanTrip]) -> None:
    """No jump faster than a car can drive, and each van at its stop when it says it halted."""
    for van in vans:
        fixes = run.fixes[van.vehicle_id]
        for a, b in itertools.pairwise(fixes):
            gap_s = b.time_s - a.time_s
            distance_m = haversine_m(LatLon(a.lat, a.lon), LatLon(b.lat, b.lon))
            if gap_s <= 0 or distance_m / gap_s > MAX_FIX_SPEED_MPS:
                raise DiscardError(f"{van.vehicle_id} jumps {distance_m:.0f} m at t={b.time_s}")
        at = {round(f.time_s): f for f in fixes}
        for stop, event in zip(van.stops, run.stops[van.vehicle_id], strict=True):
            fix = at.get(round(event.started_s))
            where = LatLon(stop.site.lat, stop.site.lon)
            if fix is None or haversine_m(LatLon(fix.lat, fix.lon), where) > MAX_STOP_FIX_M:
                raise DiscardError(f"{van.vehicle_id} not at {stop.stop_id} when it halted")


def _gps_rows(run: RunOutput, grid_north_deg: float, epoch0: int) -> list[list[str]]:
    rows: list[list[str]] = []
    for vehicle_id in sorted(run.fixes):
        rows += [_gps_row(vehicle_id, f, grid_north_deg, epoch0) for f in run.fixes[vehicle_id]]
    return rows


def _gps_row(vehicle_id: str, fix: Fix, grid_north_deg: float, epoch0: int) -> list[str]:
    heading_deg = round(fix.angle_deg + grid_north_deg) % 360
    return [
        vehicle_id,
        str(epoch0 + round(fix.time_s)),
        f"{fix.lat:.6f}",
        f"{fix.lon:.6f}",
        f"{fix.speed_mps:.1f}",
        str(heading_deg),
    ]


def _stop_rows(
    run: RunOutput, vans: list[VanTrip], problem: PlanningProblem, epoch0: int
) -> tuple[list[list[str]], list[int]]:
    planned = {o.id: o.service_s for o in problem.orders}
    rows: list[list[str]] = []
    errors: list[int] = []
    for van in sorted(vans, key=lambda v: v.vehicle_id):
        for k, (stop, event) in enumerate(zip(van.stops, run.stops[van.vehicle_id], strict=True)):
            rows.append(_stop_row(van.vehicle_id, k, stop, event, planned[stop.stop_id], epoch0))
            errors.append(round(event.ended_s - event.started_s) - planned[stop.stop_id])
    return rows, errors


def _stop_row(
    vehicle_id: str, index: int, stop: VanStop, event: StopEvent, planned_s: int, epoch0: int
) -> list[str]:
    arrival, departure = epoch0 + round(event.started_s), epoch0 + round(event.ended_s)
    return [
        vehicle_id,
        str(index),
        stop.stop_id,
        str(arrival),
        str(departure),
        "delivered",
        str(planned_s),
        str(departure - arrival),
    ]


def _plan_json(
    world: World, problem: PlanningProblem, plan: Plan, meta: dict[str, Any]
) -> dict[str, Any]:
    orders = {o.id: o for o in problem.orders}
    shifts = {v.id: v.shift.start for v in problem.vehicles}
    vehicles = [
        {
            "id": route.vehicle_id,
            "depot": {"lat": round(world.depot.lat, 6), "lon": round(world.depot.lon, 6)},
            "shift_start": int(shifts[route.vehicle_id].timestamp()),
            "stops": [_stop_json(orders[s.order_id]) for s in route.stops],
        }
        for route in sorted(plan.routes, key=lambda r: r.vehicle_id)
    ]
    return {"osm": world.osm.name, "vehicles": vehicles, "meta": meta}


def _stop_json(order: Order) -> dict[str, Any]:
    return {
        "id": order.id,
        "lat": round(order.location.lat, 6),
        "lon": round(order.location.lon, 6),
        "service_s": order.service_s,
        "time_windows": [[int(w.start.timestamp()), int(w.end.timestamp())] for w in order.windows],
    }


GPS_HEADER = ["vehicle", "timestamp", "lat", "lon", "speed", "heading"]
STOPS_HEADER = [
    "vehicle",
    "stop_index",
    "stop_id",
    "actual_arrival",
    "actual_departure",
    "status",
    "planned_service_s",
    "actual_service_s",
]


def write_scenario(folder: Path, kept: Kept) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    text = json.dumps(kept.plan_json, indent=1) + "\n"
    (folder / "plan.json").write_text(text, encoding="utf-8")
    _write_csv(folder / "gps.csv", GPS_HEADER, kept.gps_rows)
    _write_csv(folder / "stops.csv", STOPS_HEADER, kept.stop_rows)


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def generate(
    world: World, spec: ScenarioSpec, out_dir: Path, work_dir: Path, attempts: int
) -> dict[str, Any]:
    """Try seeds until one run passes every check; write it; return its summary."""
    discarded: list[str] = []
    for k in range(attempts):
        seed = spec.seed + 1000 * k
        try:
            kept = attempt(world, spec, seed, work_dir)
        except DiscardError as why:
            discarded.append(f"seed {seed}: {why}")
            print(f"{spec.name}: discarded seed {seed}: {why}", file=sys.stderr)
            continue
        folder = out_dir / spec.name
        write_scenario(folder, kept)
        return _summary(spec, folder, kept, discarded)
    raise SystemExit(f"{spec.name}: no run passed in {attempts} attempts: {discarded}")


def _summary(spec: ScenarioSpec, folder: Path, kept: Kept, discarded: list[str]) -> dict[str, Any]:
    vehicles = kept.plan_json["vehicles"]
    stamps = [int(r[1]) for r in kept.gps_rows]
    return {
        "name": spec.name,
        "seed": kept.plan_json["meta"]["seed"],
        "congestion": spec.congestion,
        "vans": len(vehicles),
        "stops": sum(len(v["stops"]) for v in vehicles),
        "background_vehicles": kept.plan_json["meta"]["background_vehicles"],
        "background_teleports": kept.plan_json["meta"]["background_teleports"],
        "duration_s": max(stamps) - min(stamps),
        "gps_rows": len(kept.gps_rows),
        "bytes": sum(p.stat().st_size for p in folder.iterdir()),
        "mean_abs_service_error_s": round(float(np.mean(np.abs(kept.service_errors_s))), 1),
        "sum_abs_service_error_s": int(np.sum(np.abs(kept.service_errors_s))),
        "discarded": discarded,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--osm", type=Path, default=REPO_ROOT / DEFAULT_OSM)
    parser.add_argument("--out", type=Path, default=SCENARIO_DIR)
    parser.add_argument("--only", nargs="*", default=None, help="scenario names to (re)make")
    parser.add_argument("--attempts", type=int, default=5)
    parser.add_argument("--work-dir", type=Path, default=None, help="keep SUMO's files here")
    args = parser.parse_args(argv)
    specs = [s for s in SCENARIOS if args.only is None or s.name in args.only]
    with tempfile.TemporaryDirectory(prefix="lastmile-sumo-") as scratch:
        work_dir: Path = args.work_dir or Path(scratch)
        work_dir.mkdir(parents=True, exist_ok=True)
        world = prepare_world(args.osm.resolve(), work_dir)
        summaries = [generate(world, s, args.out, work_dir, args.attempts) for s in specs]
    for summary in summaries:
        print(json.dumps(summary), file=sys.stderr)
    stops = sum(s["stops"] for s in summaries)
    error_s = sum(s["sum_abs_service_error_s"] for s in summaries) / max(1, stops)
    total_bytes = sum(s["bytes"] for s in summaries)
    total = {"scenarios": len(summaries), "stops": stops, "bytes": total_bytes}
    print(json.dumps({**total, "mean_abs_service_error_s": round(error_s, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

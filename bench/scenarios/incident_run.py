"""An incident day: simulated undisrupted (the baseline), its disruptions placed on that run's
routes (see incidents.py), simulated again disrupted, and each disruption's effect measured
against the baseline."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.scenarios import incidents, simulate, sumo_net
from bench.scenarios.discard_rules import DiscardError, check_run
from bench.scenarios.simulate import RunOutput, StopEvent, VanStop, VanTrip
from bench.scenarios.world import World

#: An incident scenario is kept only if its disruptions delay this share of its stops by
#: 10+ minutes (against the same run undisrupted), so that delay notices matter.
MIN_DELAYED_SHARE = 0.25
DELAYED_S = 600


def run_with_incidents(
    world: World,
    vans: list[VanTrip],
    planned_s: dict[str, int],
    work_dir: Path,
    *,
    end_s: int,
    per_hour: int | Sequence[int],
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
        check_run(base, vans)
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
    check_run(run, driven)
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


def epoch_disruptions(impact: dict[str, Any], epoch0: int) -> dict[str, Any]:
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

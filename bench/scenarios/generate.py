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
import json
import math
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.scenarios import incident_run, scenario_files, simulate, sumo_net
from bench.scenarios.discard_rules import DiscardError, check_plan, check_run, check_trajectories
from bench.scenarios.dispatch import build_problem, delivery_slot, plan_day
from bench.scenarios.scenario_files import Kept
from bench.scenarios.simulate import RunOutput, VanStop, VanTrip
from bench.scenarios.specs import SCENARIOS, ScenarioSpec
from bench.scenarios.world import World, prepare_world, sample_sites

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OSM = Path("../shared/data/osm/monaco.osm.pbf")
SCENARIO_DIR = Path(__file__).resolve().parent
#: Background traffic runs this long before the first van leaves, so the roads are loaded.
WARMUP_S = 1200
STOPS_PER_VAN = (10, 13)
PLANNED_SERVICE_S = (120, 150, 180, 210, 240, 270, 300)
#: Background vehicles inserted per hour for each congestion level; "heavy" is the busiest
#: rate at which trial runs on Monaco stayed clear of gridlock (jam teleports).
BACKGROUND_PER_HOUR = {"light": 1000, "moderate": 2500, "heavy": 4000}
#: A run whose background traffic teleports more than this share of its vehicles is gridlocked.
MAX_BACKGROUND_TELEPORT_SHARE = 0.01


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
        run, vans, disrupted = incident_run.run_with_incidents(
            world, vans, planned_s, work_dir, end_s=end_s + 3600, per_hour=per_hour, seed=seed
        )
    else:
        run = _simulate(world, vans, work_dir, end_s=end_s, per_hour=per_hour, seed=seed)
    check_run(run, vans)
    background = run.stats.inserted - len(vans)
    if run.stats.teleports > MAX_BACKGROUND_TELEPORT_SHARE * background:
        raise DiscardError(f"gridlock: {run.stats.teleports} teleports of {background} vehicles")
    gps = scenario_files.gps_rows(run, world.grid_north_deg, epoch0)
    stop_rows, errors = scenario_files.stop_rows(run, vans, problem, epoch0)
    check_trajectories(run, vans)
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
        meta |= incident_run.epoch_disruptions(disrupted, epoch0)
    return Kept(scenario_files.plan_json(world, problem, plan, meta), gps, stop_rows, errors)


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
        scenario_files.write_scenario(folder, kept)
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

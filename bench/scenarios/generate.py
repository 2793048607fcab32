"""Generate the SUMO ground-truth delivery scenarios (offline; needs the ``sim`` extra).

    python -m bench.scenarios.generate [--osm FILE] [--out bench/scenarios]
                                       [--only NAME_OR_PATTERN ...]
                                       [--attempts N] [--work-dir DIR]

For each scenario: stops are sampled on SUMO's network, our planner (on its own graph of the
same extract) orders them as a dispatcher would, then SUMO drives the vans through them in
that order among random background traffic, with dwell times that differ from the planned
ones. The ``*-week-*`` days draw their stops from a pool of returning customers (customers.py)
and their background traffic follows the hour of the day (traffic.py). A run where a van
teleports, misses a stop or the traffic locks up is thrown away and
the scenario is tried again with the next seed. The last line printed is a JSON summary.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import math
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.scenarios import customers, incident_run, scenario_files, simulate, sumo_net, traffic
from bench.scenarios.cities import CITIES
from bench.scenarios.customers import PLANNED_SERVICE_S, Customer, draw_pool, week_schedule
from bench.scenarios.discard_rules import DiscardError, check_plan, check_run, check_trajectories
from bench.scenarios.dispatch import build_problem, delivery_slot, plan_day, zone_of
from bench.scenarios.scenario_files import Kept
from bench.scenarios.simulate import RunOutput, VanStop, VanTrip
from bench.scenarios.specs import ALL, PROFILE, ScenarioSpec
from bench.scenarios.world import World, prepare_world, sample_sites

REPO_ROOT = Path(__file__).resolve().parents[2]
OSM_DIR = Path("../shared/data/osm")
SCENARIO_DIR = Path(__file__).resolve().parent
#: Background traffic runs this long before the first van leaves, so the roads are loaded.
WARMUP_S = 1200
STOPS_PER_VAN = (10, 13)
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

    def draw(self, planned_s: int, rng: np.random.Generator, character: float = 1.0) -> int:
        """A dwell; ``character`` is the customer's own multiplier (overruns ignore it)."""
        if rng.random() < self.overrun_share:
            factor = float(rng.uniform(*self.overrun_factor))
        else:
            factor = self.bias * math.exp(float(rng.normal(0.0, self.sigma))) * character
        return max(30, round(planned_s * factor))


@dataclass(frozen=True, slots=True)
class WeekDay:
    """A week day's customers (from the pool) and which of them came earlier in the week."""

    customers: list[Customer]
    seen_before: frozenset[str]
    index: int


def attempt(
    world: World, spec: ScenarioSpec, seed: int, work_dir: Path, week: WeekDay | None = None
) -> Kept:
    """One try at a scenario with ``seed``; raises DiscardError if a discard rule is broken."""
    rng = np.random.default_rng(seed)
    zone = zone_of(spec)
    if week is None:
        count = int(sum(rng.integers(STOPS_PER_VAN[0], STOPS_PER_VAN[1] + 1, spec.vans)))
        sites = sample_sites(world, rng, count)
        planned = [int(rng.choice(PLANNED_SERVICE_S)) for _ in sites]
        character = [1.0] * count
    else:
        count = len(week.customers)
        sites = [c.site for c in week.customers]
        planned = [c.planned_service_s for c in week.customers]
        character = [c.service_factor for c in week.customers]
    open_problem = build_problem(world, spec, sites, planned, [None] * count)
    first = plan_day(world, open_problem, seed)
    check_plan(first, spec)
    visit = {s.order_id: s.service_start for r in first.routes for s in r.stops}
    windows = [delivery_slot(visit[o.id], rng, zone) for o in open_problem.orders]
    problem = build_problem(world, spec, sites, planned, windows)
    plan = plan_day(world, problem, seed)
    check_plan(plan, spec)
    service = ServiceModel(
        bias=float(rng.uniform(1.0, 1.25)), sigma=0.3, overrun_share=float(rng.uniform(0.05, 0.1))
    )
    simulated = {
        o.id: service.draw(o.service_s, rng, factor)
        for o, factor in zip(problem.orders, character, strict=True)
    }
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
    run_end_s = end_s + 3600 if spec.incidents else end_s
    city = CITIES[spec.city]
    per_hour: int | list[int]
    if spec.congestion == PROFILE:
        per_hour = traffic.interval_rates(epoch0, run_end_s, zone, city.peak_per_hour)
    else:
        per_hour = BACKGROUND_PER_HOUR[spec.congestion]
    disrupted: dict[str, Any] = {}
    if spec.incidents:
        planned_s = {o.id: o.service_s for o in problem.orders}
        run, vans, disrupted = incident_run.run_with_incidents(
            world, vans, planned_s, work_dir, end_s=run_end_s, per_hour=per_hour, seed=seed
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
        **({"background_vehicles_per_hour": per_hour} if isinstance(per_hour, int) else {}),
        "background_teleports": run.stats.teleports,
        "warmup_s": WARMUP_S,
        "sumo_version": sumo_net.sumo_version(),
        "timezone": city.timezone,
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
    if not isinstance(per_hour, int):
        last_s = max(int(row[1]) for row in gps)
        meta["traffic_profile"] = traffic.profile_meta(
            epoch0, per_hour, zone, city.peak_per_hour, last_s
        )
    customer_of: dict[str, str] = {}
    if week is not None:
        customer_of = {o.id: c.id for o, c in zip(problem.orders, week.customers, strict=True)}
        meta |= _week_meta(spec, week)
    if disrupted:
        meta |= incident_run.epoch_disruptions(disrupted, epoch0)
    plan_json = scenario_files.plan_json(world, problem, plan, meta, customer_of)
    return Kept(plan_json, gps, stop_rows, errors)


def _week_meta(spec: ScenarioSpec, week: WeekDay) -> dict[str, Any]:
    city = CITIES[spec.city]
    return {
        "city": city.name,
        "week_day": week.index,
        "customer_pool": {
            "city": city.name,
            "seed": city.pool_seed,
            "size": city.pool_size,
            "regulars": city.regulars,
            "service_character_sigma": customers.SERVICE_CHARACTER_SIGMA,
            "repeat_share": list(customers.REPEAT_SHARE),
        },
        "customers_seen_earlier_in_week": sum(c.id in week.seen_before for c in week.customers),
        # The truth a learner should find, for checking it: never read by the ETA code.
        "customer_service_factor": {c.id: c.service_factor for c in week.customers},
    }


def _simulate(
    world: World,
    vans: list[VanTrip],
    work_dir: Path,
    *,
    end_s: int,
    per_hour: int | list[int],
    seed: int,
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
    world: World,
    spec: ScenarioSpec,
    out_dir: Path,
    work_dir: Path,
    attempts: int,
    week: WeekDay | None = None,
) -> dict[str, Any]:
    """Try seeds until one run passes every check; write it; return its summary.

    A week day keeps its customers on a retry; its seed changes the rest (plan, dwells,
    traffic)."""
    discarded: list[str] = []
    for k in range(attempts):
        seed = spec.seed + 1000 * k
        try:
            kept = attempt(world, spec, seed, work_dir, week)
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
    meta = kept.plan_json["meta"]
    return {
        "name": spec.name,
        "city": spec.city,
        "day": f"{spec.day:%a %Y-%m-%d} {spec.shift_start:%H:%M}",
        "seed": meta["seed"],
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
        "seen_earlier_in_week": meta.get("customers_seen_earlier_in_week"),
        "traffic_by_hour": meta.get("traffic_profile", {}).get("per_hour_by_local_hour"),
        "discarded": discarded,
    }


def week_days(world: World, city: str) -> dict[str, WeekDay]:
    """Every week day of ``city`` (all of them, so that any subset gets the same customers)."""
    days = sorted((s for s in ALL if s.city == city and s.stops is not None), key=lambda s: s.day)
    if not days:
        return {}
    pool = draw_pool(world, CITIES[city])
    counts = [d.stops or 0 for d in days]
    names = [d.name for d in days]
    schedule = week_schedule(pool, CITIES[city].regulars, names, counts, CITIES[city].pool_seed)
    out: dict[str, WeekDay] = {}
    seen: set[str] = set()
    for k, day in enumerate(days):
        out[day.name] = WeekDay(schedule[day.name], frozenset(seen), k + 1)
        seen |= {c.id for c in schedule[day.name]}
    return out


def selected(only: list[str] | None) -> list[ScenarioSpec]:
    """The specs named (or matched by a shell pattern) in ``only``; all when None."""
    if only is None:
        return list(ALL)
    unknown = [n for n in only if not any(fnmatch.fnmatchcase(s.name, n) for s in ALL)]
    if unknown:
        raise SystemExit(f"no scenario named {', '.join(unknown)}")
    return [s for s in ALL if any(fnmatch.fnmatchcase(s.name, n) for n in only)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--osm", type=Path, default=None, help="the extract (default: the city's, in ../shared)"
    )
    parser.add_argument("--out", type=Path, default=SCENARIO_DIR)
    parser.add_argument("--only", nargs="*", default=None, help="names or patterns to (re)make")
    parser.add_argument("--attempts", type=int, default=5)
    parser.add_argument("--work-dir", type=Path, default=None, help="keep SUMO's files here")
    args = parser.parse_args(argv)
    specs = selected(args.only)
    cities = sorted({s.city for s in specs})
    if args.osm is not None and len(cities) > 1:
        raise SystemExit(f"--osm names one extract, the scenarios are in {', '.join(cities)}")
    summaries: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="lastmile-sumo-") as scratch:
        for city in cities:
            work_dir: Path = (args.work_dir or Path(scratch)) / city
            work_dir.mkdir(parents=True, exist_ok=True)
            osm = args.osm or REPO_ROOT / OSM_DIR / CITIES[city].osm_file
            world = prepare_world(osm.resolve(), work_dir, CITIES[city])
            weeks = week_days(world, city)
            for spec in (s for s in specs if s.city == city):
                summary = generate(
                    world, spec, args.out, work_dir, args.attempts, weeks.get(spec.name)
                )
                print(json.dumps(summary), file=sys.stderr, flush=True)
                summaries.append(summary)
    stops = sum(s["stops"] for s in summaries)
    error_s = sum(s["sum_abs_service_error_s"] for s in summaries) / max(1, stops)
    total_bytes = sum(s["bytes"] for s in summaries)
    total = {"scenarios": len(summaries), "stops": stops, "bytes": total_bytes}
    print(json.dumps({**total, "mean_abs_service_error_s": round(error_s, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

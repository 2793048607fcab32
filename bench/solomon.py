"""Solomon VRPTW benchmark: our solver against PyVRP at the same time limit, one thread each.

    python -m bench.solomon --time-limit 10 [--instances C101,R101,...] [--engines E] [FILE ...]

Default: the 56 instances in ../shared/benchmarks/solomon/. Both solvers get the hierarchical
objective (a fixed cost per vehicle that dominates distance). Distances reported are the
unrounded Euclidean totals of the routes; gaps are against the hierarchical best-known
solutions (bks.csv). Feasibility is checked by our independent validator, and every customer
must be served. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from routing import hgs
from routing.costs import SolverParams
from routing.model import SolverModel, SolverResult
from routing.portfolio import solve
from routing.solomon import SolomonInstance, exact_distance, read_solomon, solomon_model
from routing.validator import check

DEFAULT_DIR = (
    Path(
        os.environ.get("LASTMILE_SHARED_DIR")
        or Path(__file__).resolve().parents[1].parent / "shared"
    )
    / "benchmarks"
    / "solomon"
)


def _summary(
    instance: SolomonInstance, model: SolverModel, result: SolverResult
) -> tuple[int, float, bool]:
    routes = [list(r.order_nodes) for r in result.routes if r.order_nodes]
    feasible = not result.dropped and not check(model, result)
    return len(routes), exact_distance(instance, routes), feasible


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path, help="Solomon-format instance files")
    parser.add_argument("--time-limit", type=float, default=10.0, help="seconds per solver")
    parser.add_argument("--instances", default="", help="comma-separated names from --dir")
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="benchmark folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--engines",
        default="pyvrp,or-tools",
        help="our solver's engines (e.g. 'or-tools' alone, to show it on tight windows)",
    )
    args = parser.parse_args(argv)

    bks: dict[str, tuple[int, float]] = {}
    bks_file = args.dir / "bks.csv"
    if bks_file.is_file():
        with bks_file.open() as handle:
            for row in csv.DictReader(handle):
                bks[row["instance"]] = (int(row["bks_vehicles"]), float(row["bks_distance"]))
    files = list(args.files)
    if args.instances:
        files += [args.dir / "instances" / f"{n.strip()}.txt" for n in args.instances.split(",")]
    if not files:
        files = sorted((args.dir / "instances").glob("*.txt"))
    if not files:
        print(f"no instances found in {args.dir}", file=sys.stderr)
        return 2

    params = SolverParams(
        time_limit_s=args.time_limit,
        seed=args.seed,
        travel_time_weight=0,
        distance_weight=1,
        engines=tuple(e.strip() for e in args.engines.split(",")),
    )
    rows: list[dict[str, Any]] = []
    print(
        f"{'instance':10} {'veh':>4} {'distance':>9} {'gap%':>7} {'ok':>3} | "
        f"{'pyvrp veh':>9} {'distance':>9} {'ok':>3} | {'ratio':>6} {'bks':>9} {'engine':>8}",
        file=sys.stderr,
    )
    for path in files:
        instance = read_solomon(path)
        model = solomon_model(instance)
        started = time.perf_counter()
        ours = solve(model, params)
        ours_s = time.perf_counter() - started
        theirs = hgs.solve(model, params, time_limit_s=args.time_limit)
        veh, dist, ok = _summary(instance, model, ours)
        p_veh, p_dist, p_ok = _summary(instance, model, theirs)
        best = bks.get(instance.name)
        gap = (dist / best[1] - 1) * 100 if best else None
        row = {
            "instance": instance.name,
            "vehicles": veh,
            "distance": round(dist, 2),
            "gap_pct": None if gap is None else round(gap, 2),
            "feasible": ok,
            "seconds": round(ours_s, 2),
            "engine": ours.engine,
            "pyvrp_vehicles": p_veh,
            "pyvrp_distance": round(p_dist, 2),
            "pyvrp_feasible": p_ok,
            "ratio_to_pyvrp": round(dist / p_dist, 4) if p_dist else None,
            "bks_vehicles": best[0] if best else None,
            "bks_distance": best[1] if best else None,
        }
        rows.append(row)
        print(
            f"{instance.name:10} {veh:>4} {dist:>9.2f} "
            f"{'' if gap is None else f'{gap:7.2f}':>7} {'yes' if ok else 'NO':>3} | "
            f"{p_veh:>9} {p_dist:>9.2f} {'yes' if p_ok else 'NO':>3} | "
            f"{dist / p_dist if p_dist else float('nan'):>6.3f} "
            f"{'' if not best else f'{best[0]}/{best[1]:.2f}':>9} {ours.engine:>8}",
            file=sys.stderr,
        )
    same = [r["ratio_to_pyvrp"] for r in rows if r["vehicles"] == r["pyvrp_vehicles"]]
    gaps = [r["gap_pct"] for r in rows if r["gap_pct"] is not None]
    extra = [r["vehicles"] - r["bks_vehicles"] for r in rows if r["bks_vehicles"] is not None]
    print(
        json.dumps(
            {
                "instances": len(rows),
                "feasible": sum(1 for r in rows if r["feasible"]),
                "mean_gap_pct": round(statistics.mean(gaps), 3) if gaps else None,
                "mean_ratio_to_pyvrp": round(statistics.mean(same), 4) if same else None,
                "more_vehicles_than_pyvrp": sum(
                    1 for r in rows if r["vehicles"] > r["pyvrp_vehicles"]
                ),
                "fewer_vehicles_than_pyvrp": sum(
                    1 for r in rows if r["vehicles"] < r["pyvrp_vehicles"]
                ),
                "max_extra_vehicles": max(extra) if extra else None,
                "time_limit_s": args.time_limit,
                "engines": args.engines,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Scale benchmark: a seeded 1,000-order, 50-vehicle day with time windows on a real network.

    python -m bench.scale --osm FILE [--orders 1000] [--vehicles 50] [--limits 30,60]

Builds the road matrix, then for each time limit plans with our solver (progress printed as it
improves) and with PyVRP alone on the same model and limit. Reports time to the first feasible
solution, vehicles and cost at each limit, the wall time actually taken (OR-Tools has overrun
limits at this size), and the ratio to PyVRP. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from routing import hgs, portfolio
from routing.costs import SolverParams, objective
from routing.matrix import travel_matrix
from routing.network import load_road_graph
from routing.planner import build_model, impossible_orders, stop_locations
from routing.scenario import random_day
from routing.snapping import Snapper
from routing.validator import check


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--osm", type=Path, default=None)
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--vehicles", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--limits", default="30,60", help="time limits in seconds")
    parser.add_argument("--engines", default="pyvrp,or-tools", help="our solver's engines")
    args = parser.parse_args(argv)

    graph, _ = load_road_graph(args.osm)
    snapper = Snapper(graph)
    problem = random_day(graph, orders=args.orders, vehicles=args.vehicles, seed=args.seed)
    started = time.perf_counter()
    places, ids = stop_locations(problem)
    matrix = travel_matrix(graph, snapper.snap(places, ids=ids, max_distance_m=2000))
    matrix_s = time.perf_counter() - started
    left_out = impossible_orders(problem, matrix)
    model = build_model(problem, matrix, exclude=frozenset(left_out)).model
    print(
        f"{graph.name}: {args.orders} orders ({len(left_out)} impossible), {args.vehicles} vans; "
        f"matrix {len(places)}x{len(places)} in {matrix_s:.1f} s",
        file=sys.stderr,
    )
    out: dict[str, Any] = {
        "orders": args.orders,
        "vehicles_available": args.vehicles,
        "engines": args.engines,
        "matrix_s": round(matrix_s, 2),
    }
    for limit in (float(x) for x in args.limits.split(",")):
        params = SolverParams(
            time_limit_s=limit,
            seed=args.seed,
            engines=tuple(e.strip() for e in args.engines.split(",")),
        )
        progress: list[tuple[float, int]] = []

        def shown(
            elapsed: float,
            cost: int,
            progress: list[tuple[float, int]] = progress,
            limit: float = limit,
        ) -> None:
            progress.append((elapsed, cost))
            print(f"  [{limit:.0f} s] {elapsed:6.1f} s  cost {cost:,}", file=sys.stderr)

        t = time.perf_counter()
        ours = portfolio.solve(model, params, on_improve=shown)
        ours_s = time.perf_counter() - t
        t = time.perf_counter()
        theirs = hgs.solve(model, params, time_limit_s=limit)
        theirs_s = time.perf_counter() - t
        cost_ours = objective(model, params, ours)
        cost_theirs = objective(model, params, theirs)
        key = f"{limit:.0f}s"
        out[f"first_solution_s_{key}"] = round(progress[0][0], 2) if progress else None
        out[f"wall_s_{key}"] = round(ours_s, 2)
        out[f"vehicles_{key}"] = ours.vehicles_used
        out[f"dropped_{key}"] = len(ours.dropped)
        out[f"travel_s_{key}"] = int(
            sum(
                int(model.duration_s[a.node, b.node])
                for r in ours.routes
                for a, b in zip(r.visits[:-1], r.visits[1:], strict=True)
            )
        )
        out[f"cost_{key}"] = cost_ours
        out[f"feasible_{key}"] = not check(model, ours)
        out[f"engine_{key}"] = ours.engine
        out[f"pyvrp_vehicles_{key}"] = theirs.vehicles_used
        out[f"pyvrp_dropped_{key}"] = len(theirs.dropped)
        out[f"pyvrp_cost_{key}"] = cost_theirs
        out[f"pyvrp_wall_s_{key}"] = round(theirs_s, 2)
        out[f"cost_ratio_to_pyvrp_{key}"] = round(cost_ours / cost_theirs, 4)
        print(
            f"limit {limit:.0f} s: ours {ours.vehicles_used} vans, cost {cost_ours:,} "
            f"({ours.engine}, {ours_s:.1f} s wall); PyVRP {theirs.vehicles_used} vans, "
            f"cost {cost_theirs:,} ({theirs_s:.1f} s)",
            file=sys.stderr,
        )
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

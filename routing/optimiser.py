"""The OR-Tools engine. The only module that imports OR-Tools.

Reads a :class:`routing.model.SolverModel`, returns a :class:`routing.model.SolverResult`.
Transit costs are registered as matrices (no per-arc Python callbacks). Tight time windows
defeat a single cheapest-arc start (no feasible solution in 10 s on Solomon R101, RC101,
RC105), so the search first builds several starts with insertion heuristics, every order
droppable at a high penalty during construction, keeps the best, then improves it with guided
local search for the rest of the time.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence

import numpy as np
from ortools.constraint_solver import pywrapcp, routing_enums_pb2

from routing.costs import (
    DEFAULT_STARTS,
    ProgressCallback,
    SolverParams,
    arc_cost_matrix,
    drop_penalty,
    vehicle_weight,
)
from routing.model import RouteResult, SolverModel, SolverResult, Visit

FirstSolution = routing_enums_pb2.FirstSolutionStrategy
Metaheuristic = routing_enums_pb2.LocalSearchMetaheuristic


def solve(
    model: SolverModel,
    params: SolverParams | None = None,
    *,
    on_improve: ProgressCallback | None = None,
) -> SolverResult:
    """Plan routes for the model within the time limit (never longer)."""
    params = params or SolverParams()
    started = time.perf_counter()
    built = _Built(model, params)
    progress: list[tuple[float, int]] = []
    first_s: list[float] = []

    def record() -> None:
        cost = int(built.routing.CostVar().Max())
        if not progress or cost < progress[-1][1]:
            elapsed = time.perf_counter() - started
            progress.append((elapsed, cost))
            if on_improve is not None:
                on_improve(elapsed, cost)

    built.routing.AddAtSolutionCallback(record)
    budget = max(0.2, params.time_limit_s - params.safety_margin_s)
    starts = params.first_solutions or DEFAULT_STARTS
    per_start = budget * params.construction_share / len(starts)

    # Keep copies of assignments: rebuilding one from its routes (ReadAssignmentFromRoutes)
    # fails on some valid partial starts, e.g. Solomon RC105.
    best: tuple[tuple[int, int], pywrapcp.Assignment] | None = None
    for name in starts:
        search = _search_params(name, "GREEDY_DESCENT", per_start)
        solution = built.routing.SolveWithParameters(search)
        if solution is None:
            continue
        if not first_s:
            first_s.append(time.perf_counter() - started)
        score = built.score(solution)
        if best is None or score < best[0]:
            best = (score, built.routing.solver().Assignment(solution))
    remaining = budget - (time.perf_counter() - started)
    final = None
    if best is not None and remaining > 0.1:
        search = _search_params(starts[0], "GUIDED_LOCAL_SEARCH", remaining)
        final = built.routing.SolveFromAssignmentWithParameters(best[1], search)
    if best is None and remaining > 0.1:
        # No start finished within its share: give the first strategy all the time left.
        final = built.routing.SolveWithParameters(
            _search_params(starts[0], "GUIDED_LOCAL_SEARCH", remaining)
        )
        if final is not None and not first_s:
            first_s.append(time.perf_counter() - started)
    if final is None and best is not None:
        final = best[1]
    status = routing_enums_pb2.RoutingSearchStatus.Value.Name(built.routing.status())
    if final is None:
        return SolverResult((), tuple(o.node for o in model.orders), -1, "or-tools", status)
    return built.result(final, status, first_s[0] if first_s else None, tuple(progress))


def _search_params(
    first: str, metaheuristic: str, seconds: float
) -> pywrapcp.DefaultRoutingSearchParameters:
    search = pywrapcp.DefaultRoutingSearchParameters()
    search.first_solution_strategy = FirstSolution.Value.Value(first)
    search.local_search_metaheuristic = Metaheuristic.Value.Value(metaheuristic)
    search.time_limit.FromMilliseconds(max(50, int(seconds * 1000)))
    return search


class _Built:
    """The OR-Tools model for one SolverModel, and readers of its solutions."""

    def __init__(self, model: SolverModel, params: SolverParams) -> None:
        self.model = model
        n_vehicles = len(model.vehicles)
        self.manager = pywrapcp.RoutingIndexManager(
            model.node_count,
            n_vehicles,
            [v.start_node for v in model.vehicles],
            [v.end_node for v in model.vehicles],
        )
        manager = self.manager
        routing = pywrapcp.RoutingModel(manager)
        self.routing = routing
        solver = routing.solver()
        orders = model.order_at()
        service = np.zeros(model.node_count, dtype=np.int64)
        for o in model.orders:
            service[o.node] = o.service_s

        # Costs: one matrix per distinct vehicle cost profile.
        cost_index: dict[tuple[float, float], int] = {}
        for v, spec in enumerate(model.vehicles):
            key = (spec.cost_per_hour, spec.cost_per_km)
            if key not in cost_index:
                cost_index[key] = routing.RegisterTransitMatrix(
                    arc_cost_matrix(model, params, v).tolist()
                )
            routing.SetArcCostEvaluatorOfVehicle(cost_index[key], v)
        self.vehicle_weight = vehicle_weight(model, params)
        for v, spec in enumerate(model.vehicles):
            routing.SetFixedCostOfVehicle(self.vehicle_weight + spec.fixed_cost, v)

        # Time: leaving node i takes its service, then the drive; waiting is slack.
        transit = (model.duration_s + service[:, None]).tolist()
        time_idx = routing.RegisterTransitMatrix(transit)
        horizon = max(v.shift_end_s for v in model.vehicles) + 1
        routing.AddDimension(time_idx, horizon, horizon, False, "time")
        time_dim = routing.GetDimensionOrDie("time")
        self.time_dim = time_dim
        for o in model.orders:
            index = manager.NodeToIndex(o.node)
            cumul = time_dim.CumulVar(index)
            if o.windows:
                lo = min(s for s, _ in o.windows)
                hi = max(e for _, e in o.windows)
                cumul.SetRange(max(0, lo), min(hi, horizon))
                ordered = sorted(o.windows)
                for (_, e1), (s2, _) in itertools.pairwise(ordered):
                    if s2 > e1 + 1:
                        cumul.RemoveInterval(e1 + 1, s2 - 1)
            if o.told_window is not None:
                # A promise already in the past still counts every second late from now on.
                told_start, told_end = (max(0, t) for t in o.told_window)
                time_dim.SetCumulVarSoftUpperBound(index, told_end, model.told_window_cost_per_s)
                time_dim.SetCumulVarSoftLowerBound(index, told_start, model.told_window_cost_per_s)
        for v, spec in enumerate(model.vehicles):
            for index in (routing.Start(v), routing.End(v)):
                time_dim.CumulVar(index).SetRange(spec.shift_start_s, spec.shift_end_s)
            # Finish as early as possible first, then leave as late as that allows: a plan
            # that keeps its slack at the end of the day absorbs delays.
            routing.AddVariableMinimizedByFinalizer(time_dim.CumulVar(routing.End(v)))
            routing.AddVariableMaximizedByFinalizer(time_dim.CumulVar(routing.Start(v)))
            if spec.max_duration_s is not None:
                time_dim.SetSpanUpperBoundForVehicle(spec.max_duration_s, v)

        # Breaks: fixed-duration intervals the time dimension must fit between visits.
        if any(spec.breaks for spec in model.vehicles):
            visit_transit = [
                int(service[manager.IndexToNode(i)]) for i in range(routing.Size())
            ] + [0] * n_vehicles
            for v, spec in enumerate(model.vehicles):
                intervals = [
                    solver.FixedDurationIntervalVar(
                        earliest, latest, duration, False, f"break {v} {k}"
                    )
                    for k, (duration, earliest, latest) in enumerate(spec.breaks)
                ]
                if intervals:
                    time_dim.SetBreakIntervalsOfVehicle(intervals, v, visit_transit)

        # Capacities. Without pairs, cumulative demand from zero is the tighter, faster model;
        # with pairs, load is signed: deliveries leave, pickups board, the start load is free.
        paired = {p for p, _ in model.pairs} | {d for _, d in model.pairs}
        delivery_of_pair = {d for _, d in model.pairs}
        for dim in range(model.dimensions):
            demand = [0] * model.node_count
            for o in model.orders:
                amount = o.demand[dim] if dim < len(o.demand) else 0
                if model.pairs:
                    boards = o.node in paired and o.node not in delivery_of_pair
                    amount = amount if boards else -amount
                demand[o.node] = amount
            demand_idx = routing.RegisterUnaryTransitVector(demand)
            capacity = [v.capacity[dim] if dim < len(v.capacity) else 0 for v in model.vehicles]
            routing.AddDimensionWithVehicleCapacity(
                demand_idx, 0, capacity, not model.pairs, f"load{dim}"
            )

        if any(v.max_distance_m is not None for v in model.vehicles):
            dist_idx = routing.RegisterTransitMatrix(model.distance_m.tolist())
            limit = int(model.distance_m.sum()) + 1
            routing.AddDimensionWithVehicleCapacity(
                dist_idx,
                0,
                [
                    v.max_distance_m if v.max_distance_m is not None else limit
                    for v in model.vehicles
                ],
                True,
                "distance",
            )

        # Skills.
        for o in model.orders:
            if o.skills or o.vehicles is not None:
                allowed = [
                    v
                    for v, spec in enumerate(model.vehicles)
                    if o.skills <= spec.skills and (o.vehicles is None or v in o.vehicles)
                ]
                # -1 keeps "not performed" possible, so the disjunction can still drop it.
                routing.VehicleVar(manager.NodeToIndex(o.node)).SetValues([-1, *allowed])

        # Pickup and delivery.
        for pickup, delivery in model.pairs:
            pi, di = manager.NodeToIndex(pickup), manager.NodeToIndex(delivery)
            routing.AddPickupAndDelivery(pi, di)
            solver.Add(routing.VehicleVar(pi) == routing.VehicleVar(di))
            solver.Add(routing.ActiveVar(pi) == routing.ActiveVar(di))
            # Pickup before delivery on one route already orders their times; an explicit
            # cumul constraint would also bind when both are left out, and make it infeasible.

        # Committed stops (re-planning on the road): fixed at the head of their route.
        committed: set[int] = set()
        for v, spec in enumerate(model.vehicles):
            previous = routing.Start(v)
            for node in spec.committed:
                index = manager.NodeToIndex(node)
                solver.Add(routing.NextVar(previous) == index)
                previous = index
                committed.add(node)

        # Every order may be left out at a price: optional ones at theirs, mandatory ones at a
        # price above any plan that serves them, so they drop only when impossible.
        for o in model.orders:
            if o.node in committed:
                continue
            routing.AddDisjunction([manager.NodeToIndex(o.node)], drop_penalty(model, params, o))
        self.orders = orders

    def score(self, solution: pywrapcp.Assignment) -> tuple[int, int]:
        """(mandatory orders left out, objective): lower is better."""
        dropped = sum(
            1
            for o in self.model.orders
            if o.penalty is None
            and solution.Value(self.routing.NextVar(self.manager.NodeToIndex(o.node)))
            == self.manager.NodeToIndex(o.node)
        )
        return dropped, int(solution.ObjectiveValue())

    def result(
        self,
        solution: pywrapcp.Assignment,
        status: str,
        first_solution_s: float | None,
        progress: Sequence[tuple[float, int]],
    ) -> SolverResult:
        routing, manager, time_dim = self.routing, self.manager, self.time_dim
        breaks: dict[int, list[tuple[int, int]]] = {}
        intervals = solution.IntervalVarContainer()
        for i in range(intervals.Size()):
            element = intervals.Element(i)
            if element.PerformedValue():
                v = int(element.Var().Name().split()[1])
                breaks.setdefault(v, []).append(
                    (int(element.StartValue()), int(element.DurationValue()))
                )
        routes: list[RouteResult] = []
        visited: set[int] = set()
        for v in range(len(self.model.vehicles)):
            index = routing.Start(v)
            visits: list[Visit] = []
            while True:
                node = manager.IndexToNode(index)
                visits.append(Visit(node, int(solution.Value(time_dim.CumulVar(index)))))
                visited.add(node)
                if routing.IsEnd(index):
                    break
                index = solution.Value(routing.NextVar(index))
            routes.append(RouteResult(v, tuple(visits), tuple(sorted(breaks.get(v, [])))))
        dropped = tuple(o.node for o in self.model.orders if o.node not in visited)
        return SolverResult(
            tuple(routes),
            dropped,
            int(solution.ObjectiveValue()),
            "or-tools",
            status,
            first_solution_s,
            tuple(progress),
        )

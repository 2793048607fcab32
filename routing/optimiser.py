"""The vehicle-routing solver. The only module that imports OR-Tools.

Works on an integer model (seconds from a reference instant, metres, units of demand);
:mod:`routing.planner` turns a dispatcher's problem into this model and back.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from ortools.constraint_solver import pywrapcp, routing_enums_pb2

IntMatrix = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class SolverParams:
    """Tunables of one solve."""

    time_limit_s: float = 10.0
    #: Cost of using a vehicle, in seconds of driving: dominates travel, so fewer vehicles win.
    vehicle_fixed_cost: int = 100_000
    #: Cost of leaving an order out: dominates everything, so only impossible orders drop.
    drop_penalty: int = 10_000_000


@dataclass(frozen=True, slots=True)
class SolverModel:
    """Nodes are indexes into the matrices: vehicle starts/ends and orders alike."""

    duration_s: IntMatrix
    distance_m: IntMatrix
    window_start_s: npt.NDArray[np.int64]
    window_end_s: npt.NDArray[np.int64]
    service_s: npt.NDArray[np.int64]
    demand: npt.NDArray[np.int64]
    order_nodes: tuple[int, ...]
    vehicle_start_node: tuple[int, ...]
    vehicle_end_node: tuple[int, ...]
    vehicle_shift_start_s: tuple[int, ...]
    vehicle_shift_end_s: tuple[int, ...]
    vehicle_capacity: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class SolverVisit:
    node: int
    service_start_s: int


@dataclass(frozen=True, slots=True)
class SolverResult:
    #: Per vehicle: start, the visited orders, end (each with its service start time).
    routes: tuple[tuple[SolverVisit, ...], ...]
    dropped_nodes: tuple[int, ...]
    objective: int
    status: str


def solve(model: SolverModel, params: SolverParams, *, seed: int = 0) -> SolverResult:
    """Plan routes for the model within the time limit."""
    del seed  # the routing library's search is deterministic for a fixed model
    n_vehicles = len(model.vehicle_start_node)
    manager = pywrapcp.RoutingIndexManager(
        len(model.duration_s),
        n_vehicles,
        list(model.vehicle_start_node),
        list(model.vehicle_end_node),
    )
    routing = pywrapcp.RoutingModel(manager)
    # Transit registered as a matrix: leaving node i takes its service time, then the drive.
    transit = model.duration_s + model.service_s[:, None]
    transit_idx = routing.RegisterTransitMatrix(transit.tolist())
    routing.SetArcCostEvaluatorOfAllVehicles(transit_idx)
    horizon = int(max(model.vehicle_shift_end_s) + 1)
    routing.AddDimension(transit_idx, horizon, horizon, False, "time")
    time_dim = routing.GetDimensionOrDie("time")
    demand_idx = routing.RegisterUnaryTransitVector(model.demand.tolist())
    routing.AddDimensionWithVehicleCapacity(
        demand_idx, 0, list(model.vehicle_capacity), True, "load"
    )
    for node in model.order_nodes:
        index = manager.NodeToIndex(node)
        time_dim.CumulVar(index).SetRange(
            int(model.window_start_s[node]), int(model.window_end_s[node])
        )
        routing.AddDisjunction([index], params.drop_penalty)
    for v in range(n_vehicles):
        time_dim.CumulVar(routing.Start(v)).SetRange(
            model.vehicle_shift_start_s[v], model.vehicle_shift_end_s[v]
        )
        time_dim.CumulVar(routing.End(v)).SetRange(
            model.vehicle_shift_start_s[v], model.vehicle_shift_end_s[v]
        )
        routing.SetFixedCostOfVehicle(params.vehicle_fixed_cost, v)
        routing.AddVariableMinimizedByFinalizer(time_dim.CumulVar(routing.Start(v)))
        routing.AddVariableMinimizedByFinalizer(time_dim.CumulVar(routing.End(v)))

    search = pywrapcp.DefaultRoutingSearchParameters()
    search.first_solution_strategy = (
        routing_enums_pb2.FirstSolutionStrategy.PARALLEL_CHEAPEST_INSERTION
    )
    search.local_search_metaheuristic = (
        routing_enums_pb2.LocalSearchMetaheuristic.GUIDED_LOCAL_SEARCH
    )
    search.time_limit.FromMilliseconds(int(params.time_limit_s * 1000))
    solution = routing.SolveWithParameters(search)
    status = routing_enums_pb2.RoutingSearchStatus.Value.Name(routing.status())
    if solution is None:
        return SolverResult((), tuple(model.order_nodes), -1, status)
    routes: list[tuple[SolverVisit, ...]] = []
    visited: set[int] = set()
    for v in range(n_vehicles):
        index = routing.Start(v)
        visits: list[SolverVisit] = []
        while True:
            node = manager.IndexToNode(index)
            visits.append(SolverVisit(node, int(solution.Min(time_dim.CumulVar(index)))))
            visited.add(node)
            if routing.IsEnd(index):
                break
            index = solution.Value(routing.NextVar(index))
        routes.append(tuple(visits))
    dropped = tuple(n for n in model.order_nodes if n not in visited)
    return SolverResult(tuple(routes), dropped, int(solution.ObjectiveValue()), status)

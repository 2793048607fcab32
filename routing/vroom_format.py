"""VROOM's JSON problem format in, a VROOM-like plan out, so VROOM and openrouteservice users
can switch.

Input: ``vehicles``, ``jobs``, ``shipments`` and optional ``matrices`` (``{"car": {"durations":
[[...]], "distances": [[...]]}}``, or the legacy ``matrix``). Locations are ``[lon, lat]``;
with matrices, ``location_index`` may stand in for them. Times are integers; we read them as
UNIX seconds (UTC) and write them back the same way, so relative times (0 = start of day)
come back relative. Skills are integers in VROOM; priorities 0-100.
Output: ``code`` (0 ok, 2 input error), ``summary``, ``unassigned`` and ``routes[].steps[]``
with ``arrival``, ``waiting_time``, ``service``, ``load``, ``distance`` and ``violations``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from domain.errors import Problem, ValidationError
from domain.geo import LatLon
from domain.plan import Plan
from domain.problem import (
    Break,
    Order,
    Pair,
    PlanningProblem,
    TimeWindow,
    Vehicle,
    planning_problem,
)
from routing.costs import SolverParams
from routing.matrix import TravelMatrix
from routing.planner import plan_on_matrix, plan_routes, stop_locations
from routing.road_graph import RoadGraph
from routing.snapping import Snapper

_FAR_FUTURE = 4_102_444_800  # 2100-01-01: VROOM's "no end" for an open time window


@dataclass(frozen=True, slots=True)
class VroomInput:
    problem: PlanningProblem
    #: The user's matrices, in the order of :func:`routing.planner.stop_locations`, if given.
    matrix: TravelMatrix | None
    #: Our order id -> ("job" | "pickup" | "delivery", the user's id).
    order_kind: dict[str, tuple[str, int]]
    vehicle_ids: dict[str, int]
    location: dict[LatLon, list[float] | int]


def _t(value: int) -> datetime:
    return datetime.fromtimestamp(int(value), UTC)


def _s(t: datetime) -> int:
    return int(t.timestamp())


class _Reader:
    def __init__(self, doc: Mapping[str, Any]) -> None:
        self.doc = doc
        self.problems: list[Problem] = []
        self.location: dict[LatLon, list[float] | int] = {}
        self.index_of: dict[LatLon, int] = {}

    def fail(self, where: str, message: str) -> None:
        self.problems.append(Problem(where, message))

    def place(self, item: Mapping[str, Any], where: str, key: str = "location") -> LatLon | None:
        coords = item.get(key)
        index = item.get(f"{key}_index")
        if coords is not None:
            try:
                lon, lat = (float(c) for c in coords)
                point = LatLon(lat, lon)
            except (TypeError, ValueError) as exc:
                self.fail(f"{where}.{key}", f"must be [lon, lat] in degrees ({exc})")
                return None
            self.location.setdefault(point, [lon, lat])
            if isinstance(index, int):
                self.index_of[point] = index
            return point
        if isinstance(index, int) and index >= 0:
            # No coordinates: a stand-in point, unique per matrix index, never shown to anyone.
            point = LatLon(0.0, min(179.0, index * 1e-6))
            self.location.setdefault(point, index)
            self.index_of[point] = index
            return point
        self.fail(where, f"needs {key} ([lon, lat]) or {key}_index")
        return None

    def windows(self, raw: Any, where: str) -> tuple[TimeWindow, ...]:
        if raw is None:
            return ()
        out: list[TimeWindow] = []
        try:
            for start, end in raw:
                out.append(TimeWindow(_t(start), _t(end)))
        except (TypeError, ValueError, OverflowError, OSError) as exc:
            self.fail(where, f"must be a list of [start, end] integer times ({exc})")
        return tuple(out)

    def amounts(self, item: Mapping[str, Any], key: str, where: str) -> tuple[int, ...]:
        raw = item.get(key, item.get("amount", [])) if key != "pickup" else item.get(key, [])
        try:
            return tuple(int(x) for x in raw)
        except (TypeError, ValueError) as exc:
            self.fail(f"{where}.{key}", f"must be a list of integers ({exc})")
            return ()


def _larger(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    size = max(len(a), len(b))
    a, b = a + (0,) * (size - len(a)), b + (0,) * (size - len(b))
    return tuple(max(x, y) for x, y in zip(a, b, strict=True))


def read_vroom(doc: Mapping[str, Any]) -> VroomInput:
    """Parse a VROOM problem; raises ValidationError listing every problem with its path."""
    r = _Reader(doc)
    if not isinstance(doc, Mapping):
        raise ValidationError([Problem("(root)", "must be a JSON object")])
    vehicles: list[Vehicle] = []
    vehicle_ids: dict[str, int] = {}
    for k, item in enumerate(doc.get("vehicles") or []):
        where = f"vehicles[{k}]"
        vid = item.get("id")
        if not isinstance(vid, int):
            r.fail(f"{where}.id", "must be an integer")
            continue
        start = (
            r.place(item, where, "start") if ("start" in item or "start_index" in item) else None
        )
        end = r.place(item, where, "end") if ("end" in item or "end_index" in item) else None
        if start is None and end is None:
            r.fail(where, "needs a start or an end")
            continue
        tw = item.get("time_window", [0, _FAR_FUTURE])
        shift = r.windows([tw], f"{where}.time_window")
        costs = item.get("costs", {})
        breaks = tuple(
            Break(int(b.get("service", 0)), w)
            for b in item.get("breaks", [])
            for w in r.windows(b.get("time_windows"), f"{where}.breaks")[:1]
        )
        vehicles.append(
            Vehicle(
                id=str(vid),
                start=start if start is not None else end,  # type: ignore[arg-type]
                end=end,
                shift=shift[0] if shift else TimeWindow(_t(0), _t(_FAR_FUTURE)),
                capacity=tuple(int(x) for x in item.get("capacity", [])),
                skills=frozenset(str(s) for s in item.get("skills", [])),
                max_duration_s=item.get("max_travel_time"),
                max_distance_m=item.get("max_distance"),
                fixed_cost=float(costs.get("fixed", 0)),
                cost_per_hour=float(costs.get("per_hour", 0)),
                cost_per_km=float(costs.get("per_km", 0)),
                breaks=breaks,
            )
        )
        vehicle_ids[str(vid)] = vid
    orders: list[Order] = []
    kinds: dict[str, tuple[str, int]] = {}
    for k, job in enumerate(doc.get("jobs") or []):
        where = f"jobs[{k}]"
        if not isinstance(job.get("id"), int):
            r.fail(f"{where}.id", "must be an integer")
            continue
        place = r.place(job, where)
        if place is None:
            continue
        oid = f"job-{job['id']}"
        delivery = r.amounts(job, "delivery", where)
        pickup = r.amounts(job, "pickup", where)
        orders.append(
            Order(
                id=oid,
                location=place,
                windows=r.windows(job.get("time_windows"), f"{where}.time_windows"),
                service_s=int(job.get("service", 0)) + int(job.get("setup", 0)),
                # A job's pickup rides back to the depot like a delivery rode out: both count
                # against capacity over the whole route, so the larger one is what binds.
                demand=_larger(delivery, pickup),
                skills=frozenset(str(s) for s in job.get("skills", [])),
                priority=int(job.get("priority", 0)),
                customer_ref=str(job.get("description", "")),
            )
        )
        kinds[oid] = ("job", job["id"])
    pairs: list[Pair] = []
    for k, shipment in enumerate(doc.get("shipments") or []):
        where = f"shipments[{k}]"
        halves: list[Order] = []
        for role in ("pickup", "delivery"):
            step = shipment.get(role) or {}
            if not isinstance(step.get("id"), int):
                r.fail(f"{where}.{role}.id", "must be an integer")
                continue
            place = r.place(step, f"{where}.{role}")
            if place is None:
                continue
            oid = f"{role}-{step['id']}"
            halves.append(
                Order(
                    id=oid,
                    location=place,
                    windows=r.windows(step.get("time_windows"), f"{where}.{role}.time_windows"),
                    service_s=int(step.get("service", 0)) + int(step.get("setup", 0)),
                    demand=tuple(int(x) for x in shipment.get("amount", [])),
                    skills=frozenset(str(s) for s in shipment.get("skills", [])),
                    priority=int(shipment.get("priority", 0)),
                )
            )
            kinds[oid] = (role, step["id"])
        if len(halves) == 2:
            orders += halves
            pairs.append(Pair(halves[0].id, halves[1].id))
    if r.problems:
        raise ValidationError(r.problems)
    problem = planning_problem([], vehicles, orders, pairs)
    return VroomInput(problem, _matrix(doc, problem, r), kinds, vehicle_ids, r.location)


def _matrix(doc: Mapping[str, Any], problem: PlanningProblem, r: _Reader) -> TravelMatrix | None:
    matrices = doc.get("matrices", {})
    profile = matrices.get("car") if isinstance(matrices, Mapping) else None
    if profile is None and "matrix" in doc:
        profile = {"durations": doc["matrix"]}
    if profile is None:
        return None
    durations = np.asarray(profile.get("durations"), dtype=np.int64)
    distances = np.asarray(profile.get("distances", profile.get("durations")), dtype=np.int64)
    places, _ = stop_locations(problem)
    missing = [p for p in places if p not in r.index_of]
    if missing:
        raise ValidationError(
            [Problem("matrices", "every location needs a location_index when matrices are given")]
        )
    size = len(durations)
    idx = np.array([r.index_of[p] for p in places])
    if durations.ndim != 2 or durations.shape != (size, size) or idx.max(initial=0) >= size:
        raise ValidationError(
            [Problem("matrices.car.durations", f"must be square and cover index {idx.max()}")]
        )
    return TravelMatrix(durations[np.ix_(idx, idx)], distances[np.ix_(idx, idx)])


def vroom_output(vin: VroomInput, plan: Plan, computing_ms: int = 0) -> dict[str, Any]:
    """A VROOM-like solution document for a plan of a problem read by :func:`read_vroom`."""
    orders = {o.id: o for o in vin.problem.orders}
    vehicles = {v.id: v for v in vin.problem.vehicles}
    routes_out: list[dict[str, Any]] = []
    totals = {"cost": 0, "service": 0, "duration": 0, "waiting_time": 0, "distance": 0}
    for route in plan.routes:
        if not route.stops:
            continue
        vehicle = vehicles[route.vehicle_id]
        steps: list[dict[str, Any]] = [
            {
                "type": "start",
                "location": vin.location.get(vehicle.start),
                "arrival": _s(route.start),
                "duration": 0,
                "distance": 0,
                "load": list(route.stops[0].load_after) if route.stops else [],
            }
        ]
        driven_s = 0
        distance = 0
        events = sorted(
            [(s.service_start, "stop", s) for s in route.stops]
            + [(b.start, "break", b) for b in route.breaks],
            key=lambda e: e[0],
        )
        waiting = service = 0
        for _, kind, item in events:
            if kind == "break":
                steps.append(
                    {
                        "type": "break",
                        "arrival": _s(item.start),  # type: ignore[union-attr]
                        "service": int((item.end - item.start).total_seconds()),  # type: ignore[union-attr]
                        "waiting_time": 0,
                        "violations": [],
                    }
                )
                continue
            stop = item
            driven_s += stop.duration_from_previous_s  # type: ignore[union-attr]
            distance += stop.distance_from_previous_m  # type: ignore[union-attr]
            order = orders[stop.order_id]  # type: ignore[union-attr]
            step_type, user_id = vin.order_kind[order.id]
            waiting += stop.wait_s  # type: ignore[union-attr]
            service += order.service_s
            steps.append(
                {
                    "type": step_type,
                    "id": user_id,
                    "location": vin.location.get(order.location),
                    "arrival": _s(stop.arrival),  # type: ignore[union-attr]
                    "duration": driven_s,
                    "waiting_time": stop.wait_s,  # type: ignore[union-attr]
                    "service": order.service_s,
                    "distance": distance,
                    "load": list(stop.load_after),  # type: ignore[union-attr]
                    "violations": [],
                }
            )
        distance = route.distance_m
        steps.append(
            {
                "type": "end",
                "location": vin.location.get(vehicle.end) if vehicle.end else steps[-1]["location"],
                "arrival": _s(route.end),
                "duration": int(route.duration_s) - waiting - service,
                "distance": distance,
            }
        )
        travel = steps[-1]["duration"]
        routes_out.append(
            {
                "vehicle": vin.vehicle_ids[route.vehicle_id],
                "cost": travel,
                "service": service,
                "duration": travel,
                "waiting_time": waiting,
                "distance": distance,
                "steps": steps,
                "violations": [],
            }
        )
        for key in totals:
            totals[key] += routes_out[-1][key]
    unassigned = [
        {
            "id": vin.order_kind[u.order_id][1],
            "type": vin.order_kind[u.order_id][0],
            "location": vin.location.get(orders[u.order_id].location),
            "reason": u.reason,
        }
        for u in plan.unassigned
    ]
    return {
        "code": 0,
        "summary": {
            **totals,
            "routes": len(routes_out),
            "unassigned": len(unassigned),
            "computing_times": {"solving": computing_ms},
        },
        "unassigned": unassigned,
        "routes": routes_out,
    }


def input_error(error: ValidationError) -> dict[str, Any]:
    """VROOM's error shape (code 2, input error), with every problem listed."""
    return {
        "code": 2,
        "error": str(error),
        "problems": [{"field": p.field, "message": p.message} for p in error.problems],
    }


def plan_vroom(
    vin: VroomInput, params: SolverParams, graph: RoadGraph | None, snapper: Snapper | None
) -> Plan:
    """Plan a problem read by :func:`read_vroom` on its matrices, else on the road graph."""
    if vin.matrix is not None:
        return plan_on_matrix(vin.problem, vin.matrix, params)
    if graph is not None and snapper is not None:
        return plan_routes(vin.problem, graph, snapper, params)
    raise ValidationError([Problem("matrices", "no matrices given and no road network")])


def solve_vroom(
    doc: Mapping[str, Any],
    params: SolverParams,
    *,
    graph: RoadGraph | None = None,
    snapper: Snapper | None = None,
) -> dict[str, Any]:
    """Read, plan (on its matrices, else the road graph) and write VROOM-like JSON; input errors
    come back as ``code`` 2 with every problem listed, not as an exception."""
    started = time.perf_counter()
    try:
        vin = read_vroom(doc)
        plan = plan_vroom(vin, params, graph, snapper)
    except ValidationError as error:
        return input_error(error)
    return vroom_output(vin, plan, int((time.perf_counter() - started) * 1000))

"""Our own problem file: the API's request bodies in one JSON document.

``{"depots": [DepotCreate...], "vehicles": [VehicleCreate...], "orders": [OrderCreate...],
"pairs": [{"pickup_id", "delivery_id"}]}``, checked by the same pydantic models as the API,
so a file that plans here posts there.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field
from pydantic import ValidationError as PydanticError

from api.schemas import DepotCreate, OrderCreate, Strict, VehicleCreate, WindowIn
from domain.errors import Problem, ValidationError
from domain.geo import LatLon
from domain.problem import (
    Break,
    Depot,
    Order,
    Pair,
    PlanningProblem,
    TimeWindow,
    Vehicle,
    planning_problem,
)


class PairIn(Strict):
    pickup_id: str
    delivery_id: str


class ProblemFile(Strict):
    depots: list[DepotCreate] = Field(default_factory=list)
    vehicles: list[VehicleCreate]
    orders: list[OrderCreate]
    pairs: list[PairIn] = Field(default_factory=list)


def _window(w: WindowIn) -> TimeWindow:
    return TimeWindow(w.start, w.end)


def _point(p: BaseModel) -> LatLon:
    return LatLon(p.lat, p.lon)  # type: ignore[attr-defined]


def problem_from_json(doc: Any) -> PlanningProblem:
    """Parse and check a problem file; raises ValidationError listing every problem."""
    try:
        data = ProblemFile.model_validate(doc)
    except PydanticError as exc:
        raise ValidationError(
            [Problem(".".join(str(x) for x in e["loc"]), e["msg"]) for e in exc.errors()]
        ) from exc
    depots = {d.id: Depot(d.id, _point(d.location)) for d in data.depots}
    problems: list[Problem] = []
    vehicles: list[Vehicle] = []
    for k, v in enumerate(data.vehicles):
        start = _point(v.start) if v.start else None
        if v.depot_id is not None:
            if v.depot_id not in depots:
                problems.append(Problem(f"vehicles[{k}].depot_id", f"unknown depot {v.depot_id!r}"))
                continue
            start = start or depots[v.depot_id].location
        if start is None:
            problems.append(Problem(f"vehicles[{k}].start", "give a start or a depot_id"))
            continue
        vehicles.append(
            Vehicle(
                id=v.id,
                start=start,
                end=None if v.open_route else (_point(v.end) if v.end else start),
                shift=_window(v.shift),
                capacity=tuple(v.capacity),
                skills=frozenset(v.skills),
                max_duration_s=v.max_duration_s,
                max_distance_m=v.max_distance_m,
                fixed_cost=v.fixed_cost,
                cost_per_hour=v.cost_per_hour,
                cost_per_km=v.cost_per_km,
                breaks=tuple(Break(b.duration_s, _window(b.window)) for b in v.breaks),
            )
        )
    if problems:
        raise ValidationError(problems)
    orders = [
        Order(
            id=o.id,
            location=_point(o.location),
            windows=tuple(_window(w) for w in o.windows),
            service_s=o.service_s,
            demand=tuple(o.demand),
            skills=frozenset(o.skills),
            priority=o.priority,
            optional=o.optional,
            penalty=o.penalty,
            customer_ref=o.customer_ref,
        )
        for o in data.orders
    ]
    pairs = [Pair(p.pickup_id, p.delivery_id) for p in data.pairs]
    return planning_problem(list(depots.values()), vehicles, orders, pairs)

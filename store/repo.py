"""Mapping between stored rows and domain types. The domain never sees a row."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from domain.errors import Problem, ValidationError
from domain.geo import LatLon
from domain.plan import Plan, PlannedBreak, PlannedRoute, PlannedStop, Unassigned
from domain.problem import (
    Break,
    Depot,
    Order,
    PlanningProblem,
    TimeWindow,
    Vehicle,
    planning_problem,
)
from store.db import transaction
from store.schema import (
    ApiKey,
    DepotRow,
    OrderRow,
    Organisation,
    PlanRouteRow,
    PlanRow,
    PlanStopRow,
    VehicleRow,
)
from store.secrets import new_api_key


def _window(raw: dict[str, str]) -> TimeWindow:
    return TimeWindow(datetime.fromisoformat(raw["start"]), datetime.fromisoformat(raw["end"]))


def order_windows(rows: Iterable[OrderRow]) -> dict[str, list[tuple[datetime, datetime]]]:
    """Each order's time windows as (start, end), by external id."""
    return {row.external_id: [(w.start, w.end) for w in map(_window, row.windows)] for row in rows}


def window_json(w: TimeWindow) -> dict[str, str]:
    return {"start": w.start.isoformat(), "end": w.end.isoformat()}


def vehicle_from_row(row: VehicleRow) -> Vehicle:
    end = None if row.end_lat is None or row.end_lon is None else LatLon(row.end_lat, row.end_lon)
    return Vehicle(
        id=row.external_id,
        start=LatLon(row.start_lat, row.start_lon),
        end=end,
        shift=TimeWindow(row.shift_start, row.shift_end),
        capacity=tuple(int(c) for c in row.capacity),
        skills=frozenset(str(s) for s in row.skills),
        max_duration_s=row.max_duration_s,
        max_distance_m=row.max_distance_m,
        fixed_cost=row.fixed_cost,
        cost_per_hour=row.cost_per_hour,
        cost_per_km=row.cost_per_km,
        breaks=tuple(Break(int(b["duration_s"]), _window(b["window"])) for b in row.breaks),
    )


def order_from_row(row: OrderRow) -> Order:
    return Order(
        id=row.external_id,
        location=LatLon(row.lat, row.lon),
        windows=tuple(_window(w) for w in row.windows),
        service_s=row.service_s,
        demand=tuple(int(d) for d in row.demand),
        skills=frozenset(str(s) for s in row.skills),
        priority=row.priority,
        optional=row.optional,
        penalty=row.penalty,
        customer_ref=row.customer_ref,
    )


def load_problem(
    session: Session,
    organisation_id: str,
    order_ids: Sequence[str] | None,
    vehicle_ids: Sequence[str] | None,
) -> PlanningProblem:
    """The stored orders (default: every open one) and vehicles (default: all) as a problem.

    Raises ValidationError naming unknown or cancelled ids.
    """
    vq = select(VehicleRow).where(VehicleRow.organisation_id == organisation_id)
    oq = select(OrderRow).where(OrderRow.organisation_id == organisation_id)
    if vehicle_ids is not None:
        vq = vq.where(VehicleRow.external_id.in_(vehicle_ids))
    if order_ids is not None:
        oq = oq.where(OrderRow.external_id.in_(order_ids))
    else:
        oq = oq.where(OrderRow.status != "cancelled")
    vehicles = list(session.scalars(vq.order_by(VehicleRow.external_id)))
    orders = list(session.scalars(oq.order_by(OrderRow.external_id)))
    problems: list[Problem] = []
    found_v = {v.external_id for v in vehicles}
    found_o = {o.external_id: o for o in orders}
    problems += [
        Problem(f"vehicle_ids[{i}]", f"unknown vehicle {vid!r}")
        for i, vid in enumerate(vehicle_ids or [])
        if vid not in found_v
    ]
    for i, oid in enumerate(order_ids or []):
        if oid not in found_o:
            problems.append(Problem(f"order_ids[{i}]", f"unknown order {oid!r}"))
        elif found_o[oid].status == "cancelled":
            problems.append(Problem(f"order_ids[{i}]", f"order {oid!r} is cancelled"))
    if problems:
        raise ValidationError(problems)
    depots = list(
        session.scalars(select(DepotRow).where(DepotRow.organisation_id == organisation_id))
    )
    return planning_problem(
        [Depot(d.external_id, LatLon(d.lat, d.lon)) for d in depots],
        [vehicle_from_row(v) for v in vehicles],
        [order_from_row(o) for o in orders],
    )


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    """The plan as JSON-ready data (ISO times)."""
    return {
        "engine": plan.engine,
        "objective": plan.objective,
        "vehicles_used": plan.vehicles_used,
        "distance_m": plan.distance_m,
        "duration_s": plan.duration_s,
        "wait_s": plan.wait_s,
        "routes": [
            {
                "vehicle_id": r.vehicle_id,
                "start": r.start.isoformat(),
                "end": r.end.isoformat(),
                "distance_m": r.distance_m,
                "duration_s": r.duration_s,
                "breaks": [
                    {"start": b.start.isoformat(), "end": b.end.isoformat()} for b in r.breaks
                ],
                "stops": [
                    {
                        "order_id": s.order_id,
                        "arrival": s.arrival.isoformat(),
                        "service_start": s.service_start.isoformat(),
                        "departure": s.departure.isoformat(),
                        "wait_s": s.wait_s,
                        "load_after": list(s.load_after),
                        "distance_from_previous_m": s.distance_from_previous_m,
                        "duration_from_previous_s": s.duration_from_previous_s,
                    }
                    for s in r.stops
                ],
            }
            for r in plan.routes
        ],
        "unassigned": [
            {"order_id": u.order_id, "reason": u.reason, "marginal_cost": u.marginal_cost}
            for u in plan.unassigned
        ],
    }


def save_routes(session: Session, plan_row: PlanRow, plan: Plan) -> None:
    """Store the plan's routes and stops as rows (what the live parts track against)."""
    org = plan_row.organisation_id
    vehicles = {
        v.external_id: v.id
        for v in session.scalars(select(VehicleRow).where(VehicleRow.organisation_id == org))
    }
    orders = {
        o.external_id: o.id
        for o in session.scalars(select(OrderRow).where(OrderRow.organisation_id == org))
    }
    old = select(PlanRouteRow.id).where(PlanRouteRow.plan_id == plan_row.id)
    session.execute(delete(PlanStopRow).where(PlanStopRow.route_id.in_(old)))
    session.execute(delete(PlanRouteRow).where(PlanRouteRow.plan_id == plan_row.id))
    for route in plan.routes:
        if not route.stops or route.vehicle_id not in vehicles:
            continue
        route_row = PlanRouteRow(
            plan_id=plan_row.id,
            vehicle_id=vehicles[route.vehicle_id],
            start=route.start,
            end=route.end,
            distance_m=route.distance_m,
            duration_s=route.duration_s,
        )
        session.add(route_row)
        session.flush()
        for seq, stop in enumerate(route.stops):
            if stop.order_id in orders:
                session.add(
                    PlanStopRow(
                        route_id=route_row.id,
                        seq=seq,
                        order_id=orders[stop.order_id],
                        arrival=stop.arrival,
                        service_start=stop.service_start,
                        departure=stop.departure,
                        wait_s=stop.wait_s,
                    )
                )


def plan_from_dict(data: dict[str, Any]) -> Plan:
    """The inverse of :func:`plan_to_dict`."""
    t = datetime.fromisoformat
    return Plan(
        routes=tuple(
            PlannedRoute(
                vehicle_id=r["vehicle_id"],
                start=t(r["start"]),
                end=t(r["end"]),
                stops=tuple(
                    PlannedStop(
                        order_id=s["order_id"],
                        arrival=t(s["arrival"]),
                        service_start=t(s["service_start"]),
                        departure=t(s["departure"]),
                        wait_s=s["wait_s"],
                        load_after=tuple(s["load_after"]),
                        distance_from_previous_m=s["distance_from_previous_m"],
                        duration_from_previous_s=s["duration_from_previous_s"],
                    )
                    for s in r["stops"]
                ),
                breaks=tuple(PlannedBreak(t(b["start"]), t(b["end"])) for b in r["breaks"]),
                distance_m=r["distance_m"],
                duration_s=r["duration_s"],
            )
            for r in data["routes"]
        ),
        unassigned=tuple(
            Unassigned(u["order_id"], u["reason"], u["marginal_cost"]) for u in data["unassigned"]
        ),
        objective=data.get("objective", 0),
        engine=data.get("engine", ""),
    )


def create_organisation(
    sessions: sessionmaker[Session], name: str, timezone: str
) -> tuple[str, str]:
    """A new organisation and its first admin key: (organisation id, the key, shown once)."""
    key, prefix, key_hash = new_api_key()
    with transaction(sessions) as session:
        org = Organisation(name=name, timezone=timezone)
        session.add(org)
        session.flush()
        session.add(
            ApiKey(
                organisation_id=org.id,
                name="first admin key",
                role="admin",
                prefix=prefix,
                key_hash=key_hash,
            )
        )
        return org.id, key

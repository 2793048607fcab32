"""Planning jobs and plans: start, watch (polling or server-sent events), read, dispatch,
cancel, re-plan and insert an order."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.auth import Caller
from api.deps import Dispatcher, PlanId, Reader, SessionDep, service_now
from api.errors import conflict, not_found
from api.routes.fleet import ERRORS
from api.routes.orders import order_row
from api.schemas import (
    ErrorBody,
    InsertCreate,
    PlanCreate,
    PlanJobPublic,
    PlanPublic,
    ProgressPoint,
    ReplanCreate,
)
from domain.errors import Problem, ValidationError
from eta.live import plan_windows
from notify.triggers import DeliveryEvent, Trigger
from store import audit
from store.db import transaction
from store.repo import load_problem, order_windows
from store.schema import OrderRow, PlanJobRow, PlanRow, VehicleRow
from telematics.mqtt import publish_checked
from telematics.topics import route_topic

#: Orders whose outcome is known: a dispatch does not make them "dispatched" again.
FINAL_STATUSES = frozenset({"delivered", "failed", "skipped", "cancelled"})

router = APIRouter(
    prefix="/v1/plans",
    tags=["plans"],
    responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody}},
)
FINISHED = ("succeeded", "failed", "cancelled")


def _progress(job: PlanJobRow | None) -> list[ProgressPoint]:
    return [ProgressPoint(elapsed_s=p[0], cost=int(p[1])) for p in (job.progress if job else [])]


def _job_of(session: SessionDep, plan_id: str) -> PlanJobRow | None:
    return session.scalar(
        select(PlanJobRow)
        .where(PlanJobRow.plan_id == plan_id)
        .order_by(PlanJobRow.created_at.desc())
    )


def _plan_row(session: SessionDep, organisation_id: str, plan_id: str) -> PlanRow:
    row = session.get(PlanRow, plan_id)
    if row is None or row.organisation_id != organisation_id:
        raise not_found("plan", plan_id)
    return row


def _start(
    request: Request,
    organisation_id: str,
    kind: str,
    body: dict[str, Any],
    parent: str | None = None,
    on_created: Callable[[Session, str], None] | None = None,
) -> PlanJobPublic:
    """Queue a planning job. ``on_created(session, plan_id)`` runs in the transaction that
    creates the plan (its audit entry: written with it or not at all)."""
    limit = body.get("time_limit_s")
    settings = request.app.state.settings
    if limit is not None and limit > settings.max_plan_time_limit_s:
        raise ValidationError(
            [Problem("time_limit_s", f"at most {settings.max_plan_time_limit_s:.0f} s")]
        )
    # Committed in its own transaction before the worker may look for it.
    with transaction(request.app.state.sessions) as session:
        plan = PlanRow(
            organisation_id=organisation_id, kind=kind, request=body, parent_plan_id=parent
        )
        session.add(plan)
        session.flush()
        job = PlanJobRow(organisation_id=organisation_id, plan_id=plan.id)
        session.add(job)
        session.flush()
        plan_id, job_id = plan.id, job.id
        if on_created is not None:
            on_created(session, plan_id)
    request.app.state.runner.submit(job_id)
    request.app.state.plan_jobs.inc()
    return PlanJobPublic(plan_id=plan_id, job_id=job_id, status="queued", progress=[])


@router.post("", status_code=202, responses=ERRORS, summary="Start a planning job.")
def create_plan(
    body: PlanCreate, request: Request, caller: Dispatcher, session: SessionDep
) -> PlanJobPublic:
    kind = "vroom" if body.vroom is not None else "plan"
    if kind == "plan":
        # Unknown ids are refused now, not after the job has queued.
        load_problem(session, caller.organisation_id, body.order_ids, body.vehicle_ids)
    return _start(request, caller.organisation_id, kind, body.model_dump(mode="json"))


@router.get("", summary="List plans, newest first.")
def list_plans(caller: Reader, session: SessionDep) -> list[PlanPublic]:
    rows = session.scalars(
        select(PlanRow)
        .where(PlanRow.organisation_id == caller.organisation_id)
        .order_by(PlanRow.created_at.desc())
        .limit(100)
    )
    return [_public(session, r, with_plan=False) for r in rows]


def _public(session: SessionDep, row: PlanRow, *, with_plan: bool = True) -> PlanPublic:
    return PlanPublic(
        id=row.id,
        kind=row.kind,
        status=row.status,
        parent_plan_id=row.parent_plan_id,
        created_at=row.created_at,
        dispatched_at=row.dispatched_at,
        progress=_progress(_job_of(session, row.id)),
        plan=row.result if with_plan else None,
        error=row.error,
    )


@router.get("/{plan_id}", responses=ERRORS, summary="A plan: status, progress and result.")
def get_plan(plan_id: PlanId, caller: Reader, session: SessionDep) -> PlanPublic:
    return _public(session, _plan_row(session, caller.organisation_id, plan_id))


@router.get("/{plan_id}/geojson", responses=ERRORS, summary="The plan's routes as GeoJSON.")
def get_geojson(plan_id: PlanId, caller: Reader, session: SessionDep) -> dict[str, Any]:
    row = _plan_row(session, caller.organisation_id, plan_id)
    if row.geojson is None:
        raise conflict(f"plan {plan_id!r} has no routes yet (status {row.status})")
    return row.geojson


@router.get(
    "/{plan_id}/events",
    responses=ERRORS,
    summary="Server-sent events: progress until the job ends.",
    response_class=StreamingResponse,
)
def plan_events(
    plan_id: PlanId, request: Request, caller: Reader, session: SessionDep
) -> StreamingResponse:
    _plan_row(session, caller.organisation_id, plan_id)
    sessions = request.app.state.sessions

    async def stream() -> AsyncIterator[str]:
        sent = 0
        while True:
            with sessions() as s:
                plan = s.get(PlanRow, plan_id)
                job = _job_of(s, plan_id)
                status = plan.status if plan else "failed"
                points = job.progress if job else []
            for elapsed, cost in points[sent:]:
                point = json.dumps({"elapsed_s": elapsed, "cost": cost})
                yield f"event: progress\ndata: {point}\n\n"
            sent = len(points)
            if status in FINISHED:
                done = json.dumps({"plan_id": plan_id, "status": status})
                yield f"event: {status}\ndata: {done}\n\n"
                return
            if await request.is_disconnected():
                return
            await asyncio.sleep(0.25)

    return StreamingResponse(stream(), media_type="text/event-stream")


@router.post(
    "/{plan_id}/dispatch",
    responses=ERRORS,
    summary="Make the plan's routes the vehicles' active routes.",
)
def dispatch(
    plan_id: PlanId, request: Request, caller: Dispatcher, session: SessionDep
) -> PlanPublic:
    row = _usable(session, caller.organisation_id, plan_id, "dispatched")
    assert row.result is not None
    vehicle_ids = [r["vehicle_id"] for r in row.result["routes"] if r["stops"]]
    order_ids = [s["order_id"] for r in row.result["routes"] for s in r["stops"]]
    for vehicle in session.scalars(
        select(VehicleRow).where(
            VehicleRow.organisation_id == caller.organisation_id,
            VehicleRow.external_id.in_(vehicle_ids),
        )
    ):
        vehicle.active_plan_id = row.id
    orders = {
        order.external_id: order
        for order in session.scalars(
            select(OrderRow).where(
                OrderRow.organisation_id == caller.organisation_id,
                OrderRow.external_id.in_(order_ids),
            )
        )
    }
    # An order that failed before and is planned again by a new plan is a new attempt:
    # "rescheduled". A change of a plan already on the road (an insertion, a re-plan) carries
    # its served stops along: their outcome stands.
    again = (
        {oid for oid, order in orders.items() if order.status == "failed"}
        if row.kind == "plan"
        else set()
    )
    for oid, order in orders.items():
        if order.status not in FINAL_STATUSES or oid in again:
            order.status = "dispatched"
    row.dispatched_at = service_now(request)
    _confirm(request, session, row, orders, again, row.dispatched_at)
    _audit(
        session,
        caller,
        "dispatched",
        row.id,
        {"kind": row.kind, "vehicles": len(vehicle_ids), "orders": len(order_ids)},
    )
    mqtt = getattr(request.app.state, "mqtt", None)
    if mqtt is not None and row.geojson is not None:
        for topic, message in route_messages(
            row.id, row.result, row.geojson, session, caller.organisation_id
        ):
            # Retained: a device that connects later still gets its route at once.
            publish_checked(mqtt.client, topic, message, qos=1, retain=True)
    return _public(session, row)


def _confirm(
    request: Request,
    session: SessionDep,
    row: PlanRow,
    orders: dict[str, OrderRow],
    rescheduled: set[str],
    now: datetime,
) -> None:
    """Tell each customer the first window of the dispatched plan ("plan confirmed", or
    "rescheduled" for an order that failed before), in this transaction, through the
    notification outbox."""
    outbox = getattr(request.app.state, "outbox", None)
    ingester = getattr(request.app.state, "ingester", None)
    if outbox is None or ingester is None or row.result is None:
        return
    events: dict[str, list[DeliveryEvent]] = {}
    windows = order_windows(orders.values())
    # The fleet's calibrated windows, capped as the organisation promises (its policy).
    params = ingester.eta_params_for(session, row.organisation_id)
    for planned in row.result["routes"]:
        if not planned["stops"]:
            continue
        etas = plan_windows(planned["vehicle_id"], row.id, planned, windows, now, params)
        for eta in etas:
            order = orders.get(eta.order_id)
            if order is None or order.status != "dispatched":
                continue  # cancelled, or its outcome is known
            told = int((order.notify_state or {}).get("known_version", -1)) >= 0
            if row.kind != "plan" and told:
                # A change of a plan on the road: the live ETAs tell this customer of any
                # change; only an order new to the road (an insertion) is confirmed.
                continue
            again = eta.order_id in rescheduled
            events[order.id] = [
                DeliveryEvent(
                    order.id,
                    Trigger.RESCHEDULED if again else Trigger.PLAN_CONFIRMED,
                    now,
                    # Newer than anything the customer was told in the earlier attempt.
                    int(order.notify_state.get("known_version", -1)) + 1 if again else 0,
                    eta.earliest,
                    eta.latest,
                    eta=eta.eta,
                )
            ]
    outbox.enqueue(session, events, now)


def route_messages(
    plan_id: str,
    result: dict[str, Any],
    geojson: dict[str, Any],
    session: SessionDep,
    organisation_id: str,
) -> list[tuple[str, str]]:
    """(topic, JSON) of each vehicle's active route: ordered stops and road geometry, on the
    organisation's topic of the vehicle (telematics/topics.py)."""
    lines = {f["properties"]["vehicle_id"]: f["geometry"] for f in geojson["features"]}
    ids = [s["order_id"] for r in result["routes"] for s in r["stops"]]
    orders = {
        o.external_id: o
        for o in session.scalars(
            select(OrderRow).where(
                OrderRow.organisation_id == organisation_id, OrderRow.external_id.in_(ids)
            )
        )
    }
    out = []
    for route in result["routes"]:
        if not route["stops"]:
            continue
        stops = [
            {
                "order_id": s["order_id"],
                "lat": orders[s["order_id"]].lat,
                "lon": orders[s["order_id"]].lon,
                "arrival": s["arrival"],
                "service_start": s["service_start"],
                "departure": s["departure"],
                # The drive from the previous stop alone (arrival - departure may hold a wait).
                "drive_s": s.get("duration_from_previous_s"),
                "drive_m": s.get("distance_from_previous_m"),
                "windows": orders[s["order_id"]].windows,
                # What the customer asked for on the tracking page (safe place, notes, code).
                "instructions": orders[s["order_id"]].delivery_instructions or {},
            }
            for s in route["stops"]
            if s["order_id"] in orders
        ]
        message = {
            "plan_id": plan_id,
            "vehicle_id": route["vehicle_id"],
            "start": route["start"],
            "end": route["end"],
            "stops": stops,
            "geometry": lines.get(route["vehicle_id"]),
        }
        out.append((route_topic(organisation_id, route["vehicle_id"]), json.dumps(message)))
    return out


@router.post("/{plan_id}/cancel", responses=ERRORS, summary="Cancel a plan (stops a queued job).")
def cancel(
    plan_id: PlanId, caller: Dispatcher, session: SessionDep, request: Request
) -> PlanPublic:
    row = _plan_row(session, caller.organisation_id, plan_id)
    if row.status == "cancelled":
        raise conflict(f"plan {plan_id!r} is already cancelled")
    previous = row.status
    row.status = "cancelled"
    row.cancelled_at = service_now(request)
    _audit(session, caller, "cancelled", row.id, {"previous_status": previous})
    return _public(session, row)


def _audit(
    session: Session,
    caller: Caller,
    action: audit.AuditAction,
    plan_id: str,
    detail: dict[str, Any],
) -> None:
    """The caller's action on a plan, in the audit log, in the action's own transaction
    (at the wall clock's time: who did what when, also in the demo's sped-up day)."""
    audit.record(
        session,
        organisation_id=caller.organisation_id,
        api_key_id=caller.key_id,
        action=action,
        object_type="plan",
        object_id=plan_id,
        at=datetime.now(UTC),
        detail=detail,
    )


def _usable(session: SessionDep, organisation_id: str, plan_id: str, action: str) -> PlanRow:
    """A plan with routes of our own (not cancelled, not a VROOM answer), or a 409."""
    row = _plan_row(session, organisation_id, plan_id)
    if row.status != "succeeded" or row.result is None or row.kind == "vroom":
        raise conflict(
            f"plan {plan_id!r} cannot be {action} (status {row.status}, kind {row.kind})"
        )
    return row


def _start_change(
    request: Request,
    organisation_id: str,
    kind: str,
    body: ReplanCreate | InsertCreate,
    plan_id: str,
    on_created: Callable[[Session, str], None] | None = None,
) -> PlanJobPublic:
    data = body.model_dump(mode="json")
    data["now"] = (body.now or service_now(request)).isoformat()
    return _start(request, organisation_id, kind, data, parent=plan_id, on_created=on_created)


@router.post(
    "/{plan_id}/replan",
    status_code=202,
    responses=ERRORS,
    summary="Re-plan the rest of the day from where vehicles are.",
)
def replan(
    plan_id: PlanId, body: ReplanCreate, request: Request, caller: Dispatcher, session: SessionDep
) -> PlanJobPublic:
    _usable(session, caller.organisation_id, plan_id, "changed")

    def audited(created: Session, new_plan_id: str) -> None:
        _audit(created, caller, "replanned", plan_id, {"new_plan_id": new_plan_id})

    return _start_change(request, caller.organisation_id, "replan", body, plan_id, audited)


@router.post(
    "/{plan_id}/insert",
    status_code=202,
    responses=ERRORS,
    summary="Insert an order with the least change.",
)
def insert(
    plan_id: PlanId, body: InsertCreate, request: Request, caller: Dispatcher, session: SessionDep
) -> PlanJobPublic:
    _usable(session, caller.organisation_id, plan_id, "changed")
    order = order_row(session, caller.organisation_id, body.order_id)
    if order.status == "cancelled":
        raise conflict(f"order {body.order_id!r} is cancelled")
    return _start_change(request, caller.organisation_id, "insert", body, plan_id)

"""Orders: create, list, read, cancel."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from fastapi import APIRouter, Query, Request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from api.deps import Dispatcher, OrderId, Reader, SessionDep, owned, service_now
from api.errors import conflict
from api.routes.fleet import ERRORS
from api.schemas import (
    ErrorBody,
    LatLonIn,
    OrderCreate,
    OrderPreferences,
    OrderPublic,
    WindowIn,
)
from store.schema import OrderRow
from store.secrets import new_tracking_token

router = APIRouter(
    prefix="/v1/orders",
    tags=["orders"],
    responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody}},
)


def order_public(row: OrderRow) -> OrderPublic:
    return OrderPublic(
        id=row.external_id,
        location=LatLonIn(lat=row.lat, lon=row.lon),
        windows=[WindowIn.model_validate(w) for w in row.windows],
        service_s=row.service_s,
        demand=[int(d) for d in row.demand],
        status=row.status,
        customer_ref=row.customer_ref,
        tracking_token=row.tracking_token,
        channels=list(row.channels),
        opted_out=row.opted_out,
        address=row.address,
    )


def order_row(session: SessionDep, organisation_id: str, order_id: str) -> OrderRow:
    row: OrderRow = owned(session, OrderRow, organisation_id, order_id, "order")
    return row


@router.post("", status_code=201, responses=ERRORS, summary="Add an order.")
def create_order(body: OrderCreate, caller: Dispatcher, session: SessionDep) -> OrderPublic:
    row = OrderRow(
        organisation_id=caller.organisation_id,
        external_id=body.id,
        lat=body.location.lat,
        lon=body.location.lon,
        windows=[{"start": w.start.isoformat(), "end": w.end.isoformat()} for w in body.windows],
        service_s=body.service_s,
        demand=list(body.demand),
        skills=list(body.skills),
        priority=body.priority,
        optional=body.optional,
        penalty=body.penalty,
        customer_ref=body.customer_ref,
        contact_name=body.contact.name,
        contact_phone=body.contact.phone,
        contact_email=body.contact.email,
        language=body.language,
        timezone=body.timezone,
        channels=_channels(body.channels),
        opted_out=body.opted_out,
        address=body.address,
        tracking_token=new_tracking_token(),
    )
    session.add(row)
    try:
        session.flush()
    except IntegrityError as exc:
        raise conflict(f"order {body.id!r} already exists") from exc
    return order_public(row)


@router.get("", summary="List orders, optionally by status.")
def list_orders(
    caller: Reader,
    session: SessionDep,
    status: Literal["open", "planned", "dispatched", "cancelled"] | None = Query(
        None, description="Only orders with this status."
    ),
    limit: int = Query(500, ge=1, le=5000, description="At most this many."),
) -> list[OrderPublic]:
    query = select(OrderRow).where(OrderRow.organisation_id == caller.organisation_id)
    if status is not None:
        query = query.where(OrderRow.status == status)
    rows = session.scalars(query.order_by(OrderRow.external_id).limit(limit))
    return [order_public(r) for r in rows]


@router.get("/{order_id}", responses=ERRORS, summary="One order.")
def get_order(order_id: OrderId, caller: Reader, session: SessionDep) -> OrderPublic:
    return order_public(order_row(session, caller.organisation_id, order_id))


@router.post("/{order_id}/cancel", responses=ERRORS, summary="Cancel an order.")
def cancel_order(
    order_id: OrderId, caller: Dispatcher, session: SessionDep, request: Request
) -> OrderPublic:
    row = order_row(session, caller.organisation_id, order_id)
    if row.status == "cancelled":
        raise conflict(f"order {order_id!r} is already cancelled")
    row.status = "cancelled"
    row.cancelled_at = service_now(request)
    return order_public(row)


def _channels(wanted: Sequence[str]) -> list[str]:
    """``mqtt`` is the older name of ``push``; each channel once, in order."""
    return list(dict.fromkeys("push" if c == "mqtt" else c for c in wanted))


@router.put(
    "/{order_id}/preferences",
    responses=ERRORS,
    summary="The customer's message preferences: channels, or no messages at all.",
)
def set_preferences(
    order_id: OrderId, body: OrderPreferences, caller: Reader, session: SessionDep
) -> OrderPublic:
    """Support staff record what a customer asked for; messages queued but not yet sent follow
    it (the policy checks consent when it releases them)."""
    row = order_row(session, caller.organisation_id, order_id)
    if body.channels is not None:
        row.channels = _channels(body.channels)
    if body.opted_out is not None:
        row.opted_out = body.opted_out
    return order_public(row)

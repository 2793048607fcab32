"""What a driver's phone shows (issue 20): the stops of the vehicle's active route, in route
order, each with what the driver needs at the door, and a version of the list that changes
whenever something the driver acts on changes (so the app refetches only then).

The active route is the one ``order_on_route`` checks actions against: the vehicle's route
in the plan last dispatched to it. Live ETAs are shown but kept out of the version: they
move with every position, and the app does not need a new list for each.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, undefer

from api.driver_mqtt import MqttOut
from api.driver_schemas import StopOut, StopProofOut, StopsOut, StopWindowOut
from store.schema import (
    DeliveryProofRow,
    EventRow,
    OrderRow,
    Organisation,
    PlanRow,
    ProgressRow,
    VehicleRow,
)

#: The drivers' app speaks English until organisations can choose (issue 20).
DEFAULT_LANGUAGE = "en"
#: The event a driver's "arrived" leaves (the fixes' own arrivals are "arrived").
DRIVER_ARRIVED = "driver_arrived"
OUTCOMES = ("delivered", "failed")
_FINAL = ("delivered", "failed", "skipped")
_PHONE_NOISE = re.compile(r"[\s().\-/]")
_PHONE = re.compile(r"\+?[0-9]{3,20}")


def active_route(session: Session, vehicle: VehicleRow) -> tuple[PlanRow, dict[str, Any]] | None:
    """The plan last dispatched to the vehicle and its route in it (None: no route)."""
    if vehicle.active_plan_id is None:
        return None
    plan = session.get(PlanRow, vehicle.active_plan_id)
    if plan is None or plan.organisation_id != vehicle.organisation_id:
        return None
    routes = (plan.result or {}).get("routes") or ()
    route = next((r for r in routes if r.get("vehicle_id") == vehicle.external_id), None)
    return (plan, route) if route is not None else None


def tel(phone: str) -> str | None:
    """A ``tel:`` URL for a phone number however the shop wrote it (00 → +), or None."""
    digits = _PHONE_NOISE.sub("", phone.strip())
    if digits.startswith("00"):
        digits = "+" + digits[2:]
    return f"tel:{digits}" if _PHONE.fullmatch(digits) else None


def _at(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)


def _window(order: OrderRow, planned_arrival: str | None) -> StopWindowOut | None:
    """The window the customer was told; else the order's window the plan arrives in (or
    its first)."""
    known = (order.notify_state or {}).get("known_window")
    if isinstance(known, list) and len(known) == 2:
        return StopWindowOut(
            start=datetime.fromisoformat(known[0]), end=datetime.fromisoformat(known[1])
        )
    windows = [
        (datetime.fromisoformat(w["start"]), datetime.fromisoformat(w["end"]))
        for w in order.windows or ()
    ]
    if not windows:
        return None
    arrival = datetime.fromisoformat(planned_arrival) if planned_arrival else None
    start, end = next(
        (w for w in windows if arrival is not None and w[0] <= arrival <= w[1]), windows[0]
    )
    return StopWindowOut(start=start, end=end)


def latest_proofs(
    session: Session, organisation_id: str, order_row_ids: list[str]
) -> dict[str, DeliveryProofRow]:
    """Order row id → its newest delivered / failed action (arrivals prove nothing)."""
    if not order_row_ids:
        return {}
    found: dict[str, DeliveryProofRow] = {}
    for row in session.scalars(
        select(DeliveryProofRow)
        .where(
            DeliveryProofRow.organisation_id == organisation_id,
            DeliveryProofRow.order_id.in_(order_row_ids),
            DeliveryProofRow.kind.in_(OUTCOMES),
        )
        .order_by(DeliveryProofRow.created_at, DeliveryProofRow.id)
    ):
        found[row.order_id] = row  # later rows overwrite earlier ones
    return found


def _arrived(session: Session, vehicle: VehicleRow, plan_id: str, order_ids: list[str]) -> set[str]:
    """Order row ids the driver marked arrived on this plan (an earlier attempt's arrival,
    on a route since replaced, does not count)."""
    if not order_ids:
        return set()
    return {
        order_id
        for order_id, data in session.execute(
            select(EventRow.order_id, EventRow.data).where(
                EventRow.organisation_id == vehicle.organisation_id,
                EventRow.vehicle_id == vehicle.id,
                EventRow.kind == DRIVER_ARRIVED,
                EventRow.order_id.in_(order_ids),
            )
        )
        if order_id is not None and (data or {}).get("plan_id") == plan_id
    }


def _status(order: OrderRow, arrived: bool) -> str:
    if order.status in _FINAL:
        return order.status
    return "arrived" if arrived else "pending"


def _proof(order: OrderRow, row: DeliveryProofRow | None) -> StopProofOut | None:
    """The proof of the order's current outcome (not of an earlier, rescheduled attempt)."""
    if row is None or row.kind != order.status:
        return None
    return StopProofOut(
        kind=row.kind,  # OUTCOMES only, by the query
        at=row.at,
        recipient_name=row.recipient_name,
        reason=row.reason,
        has_photo=row.photo_key is not None,
        has_signature=row.signature_key is not None,
    )


def route_version(body: StopsOut) -> str:
    """A short hash of what the driver sees: everything but the route's line (the plan's id
    stands for it), the live ETAs to the minute (the phone shows minutes: a change of a few
    seconds is no news, a change of a minute is)."""
    data = body.model_dump(mode="json", exclude={"route_version", "geometry"})
    for stop in data["stops"]:
        eta = stop.get("eta")
        stop["eta"] = eta[:16] if isinstance(eta, str) else None
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def stops_view(
    session: Session, vehicle: VehicleRow, *, geometry: bool = True, mqtt: MqttOut | None = None
) -> StopsOut:
    """The vehicle's stops now. ``geometry`` False: without the route's line, for the version
    alone (the live stream reads it every few seconds)."""
    organisation = session.get(Organisation, vehicle.organisation_id)
    branding = (organisation.branding if organisation is not None else None) or {}
    support_phone = str(branding.get("support_phone") or "") or None
    shows_phone = branding.get("driver_sees_phone", True) is not False
    found = active_route(session, vehicle)
    stops: list[StopOut] = []
    line: dict[str, Any] | None = None
    plan_id: str | None = None
    if found is not None:
        plan, route = found
        plan_id = plan.id
        planned = [(s["order_id"], s.get("arrival")) for s in route.get("stops") or ()]
        orders = {
            o.external_id: o
            for o in session.scalars(
                select(OrderRow)
                .options(undefer(OrderRow.notify_state))
                .where(
                    OrderRow.organisation_id == vehicle.organisation_id,
                    OrderRow.external_id.in_([oid for oid, _ in planned]),
                )
            )
        }
        row_ids = [o.id for o in orders.values()]
        arrived = _arrived(session, vehicle, plan.id, row_ids)
        proofs = latest_proofs(session, vehicle.organisation_id, row_ids)
        progress = session.get(ProgressRow, vehicle.id)
        etas: dict[str, float] = {}
        if progress is not None and progress.plan_id == plan.id:
            etas = {e[0]: e[1] for e in (progress.state or {}).get("etas", [])}
        for sequence, (order_id, arrival) in enumerate(planned, start=1):
            order = orders.get(order_id)
            if order is None or order.status == "cancelled":
                continue  # nothing to deliver; the others keep their place numbers
            customer = tel(order.contact_phone) if order.contact_phone else None
            stops.append(
                StopOut(
                    order_id=order_id,
                    sequence=sequence,
                    status=_status(order, order.id in arrived),
                    lat=order.lat,
                    lon=order.lon,
                    address=order.address,
                    contact_name=order.contact_name,
                    call=customer if shows_phone else tel(support_phone or ""),
                    window=_window(order, arrival),
                    eta=_at(etas[order_id]) if order_id in etas else None,
                    service_s=order.service_s,
                    instructions={
                        k: str(v) for k, v in (order.delivery_instructions or {}).items() if v
                    },
                    proof=_proof(order, proofs.get(order.id)),
                )
            )
        if geometry and plan.geojson is not None:
            line = next(
                (
                    f["geometry"]
                    for f in plan.geojson.get("features", ())
                    if f.get("properties", {}).get("vehicle_id") == vehicle.external_id
                ),
                None,
            )
    body = StopsOut(
        vehicle_id=vehicle.external_id,
        plan_id=plan_id,
        route_version="",
        language=DEFAULT_LANGUAGE,
        support_phone=support_phone,
        geometry=line,
        stops=stops,
        mqtt=mqtt,
    )
    body.route_version = route_version(body)
    return body

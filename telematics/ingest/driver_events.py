"""A driver's delivered / failed / skipped (MQTT ``{organisation}/fleet/{id}/events`` or
HTTP): decoded, recorded, and overriding what the fixes suggested."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from notify.outbox import Outbox
from notify.triggers import DeliveryEvent, Trigger
from store.schema import EventRow, OrderRow, PlanRow, ProgressRow, VehicleRow
from telematics.decoders import DecodeError, device_topic
from telematics.ingest.text import clean, storable
from telematics.stopping_points import stood_at
from telematics.topics import VehicleRef

DRIVER_EVENTS = ("delivered", "failed", "skipped")


def decode_driver_event(topic: str, payload: bytes) -> tuple[VehicleRef, dict[str, str]]:
    """The vehicle the topic names (organisation, own id) and the event's fields."""
    ref = device_topic(topic, "events").ref
    if not storable(ref[1]) or (ref[0] is not None and not storable(ref[0])):
        raise DecodeError("unknown_vehicle", ref[1][:100])
    return ref, event_json(payload)


def event_rows(session: Session, vehicle_row_id: str, order_id: str) -> tuple[VehicleRow, OrderRow]:
    """The vehicle (by its row) and the order the event is about: its organisation's, and a
    stop of its active route, or refused."""
    vehicle = session.get(VehicleRow, vehicle_row_id)
    if vehicle is None:
        raise DecodeError("unknown_vehicle", vehicle_row_id[:100])
    order = session.scalar(
        select(OrderRow).where(
            OrderRow.organisation_id == vehicle.organisation_id,
            OrderRow.external_id == order_id,
        )
    )
    if order is None:
        raise DecodeError("unknown_order", str(order_id)[:100])
    if not order_on_route(session, vehicle, order):
        raise DecodeError(
            "order_not_on_route",
            f"order {str(order_id)[:100]!r} is not on vehicle {vehicle.external_id[:100]!r}'s "
            "active route",
        )
    return vehicle, order


def order_on_route(session: Session, vehicle: VehicleRow, order: OrderRow) -> bool:
    """Whether the order is a stop of the vehicle's active route (the route of the plan last
    dispatched to it): a driver reports only on the stops given to them."""
    if vehicle.active_plan_id is None or order.organisation_id != vehicle.organisation_id:
        return False
    result = session.scalar(
        select(PlanRow.result).where(
            PlanRow.id == vehicle.active_plan_id,
            PlanRow.organisation_id == vehicle.organisation_id,
        )
    )
    routes = result.get("routes") if isinstance(result, dict) else None
    return any(
        route.get("vehicle_id") == vehicle.external_id
        and any(stop.get("order_id") == order.external_id for stop in route.get("stops") or ())
        for route in routes or ()
    )


def event_json(payload: bytes) -> dict[str, str]:
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise DecodeError("malformed_json", str(exc)[:200]) from exc
    if not isinstance(data, dict):
        raise DecodeError("malformed_json", "expected a JSON object")
    if not isinstance(data.get("order_id"), str) or not data["order_id"]:
        raise DecodeError("missing_field", "'order_id' is required")
    if not storable(data["order_id"]):
        raise DecodeError("bad_field", "'order_id' is not storable text")
    if data.get("kind") not in DRIVER_EVENTS:
        raise DecodeError("bad_field", f"'kind' must be one of {', '.join(DRIVER_EVENTS)}")
    reason = data.get("reason", "")
    return {
        "order_id": data["order_id"],
        "kind": data["kind"],
        "reason": clean(reason) if isinstance(reason, str) else "",
        "at": data.get("at") if isinstance(data.get("at"), str | int | float) else "",
    }


def record_driver_event(
    session: Session,
    vehicle: VehicleRow,
    order: OrderRow,
    kind: str,
    reason: str,
    at: datetime,
    outbox: Outbox | None = None,
    *,
    now: datetime | None = None,
) -> None:
    """A driver's delivered / failed / skipped: stored, and it overrides what the fixes
    suggested (the order's status, and the stop counts as left)."""
    if kind not in DRIVER_EVENTS:
        raise ValueError(f"kind must be one of {', '.join(DRIVER_EVENTS)}")
    # Where the van stood for a delivery: the address's stand is learned from these.
    stood_row = session.get(ProgressRow, vehicle.id)
    stood = stood_at(kind, at, stood_row.state if stood_row is not None else None)
    session.add(
        EventRow(
            organisation_id=vehicle.organisation_id,
            order_id=order.id,
            vehicle_id=vehicle.id,
            kind=kind,
            at=at,
            data={"reason": reason, "by": "driver", **stood},
        )
    )
    order.status = kind
    progress = session.get(ProgressRow, vehicle.id)
    if progress is not None and progress.state:
        state = dict(progress.state)
        # A vehicle tracked without a route has a state with no stops.
        state["stops"] = [
            {**s, "departed_at": s["departed_at"] or at.isoformat()}
            if s["order_id"] == order.external_id
            else s
            for s in state.get("stops", [])
        ]
        # Time inside a fence counted so far belonged to this stop: the next one's dwell
        # starts afresh (a neighbour's fence may hold the van all along).
        state["inside_since"] = None
        progress.state = state
        # A worker holding this vehicle's state in memory sees the row changed and reloads.
        progress.updated_at = datetime.now(UTC)
    outcome = {"delivered": Trigger.DELIVERED, "failed": Trigger.FAILED}.get(kind)
    if outbox is not None and outcome is not None:
        # The customer hears the outcome in the same transaction that records it.
        event = DeliveryEvent(order.id, outcome, at, 0, reason=reason)
        outbox.enqueue(session, {order.id: [event]}, now or datetime.now(UTC))

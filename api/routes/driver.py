"""The drivers' web app's API (issue 20): a vehicle's stops, a live signal when they change,
and the driver's actions (arrived, delivered, failed) with proof of delivery.

Every route acts with the vehicle's own device key, the one bound to it. Any other key
(another vehicle's, another organisation's, a key of another role) gets the same 404 as a
vehicle that does not exist: a phone learns nothing of vehicles that are not its own.

Actions are idempotent by the phone's ``action_id``: a phone that lost the answer sends the
same action again and gets 200 with the same answer, stored once and told to the customer
once; the same id with another body is refused (409). A delivered or failed action goes
through the same path as the driver events route (:func:`record_driver_event`), so ETAs,
customer notifications and the dashboard follow exactly as they do for it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.auth import Caller, require
from api.deps import SessionDep, VehicleId, service_now
from api.driver_mqtt import mqtt_offer
from api.driver_schemas import ActionIn, ActionOut, StopsOut
from api.driver_stops import DRIVER_ARRIVED, stops_view
from api.errors import ApiError, not_found
from api.proof_images import PHOTO_MAX_BYTES, PHOTO_TYPES, SIGNATURE_MAX_BYTES, SIGNATURE_TYPES
from api.proof_images import decode_image as _decode
from api.schemas import ErrorBody
from api.sse import POLL_S, STREAM_MAX_S, change_stream
from api.stream_caps import RETRY_AFTER_S, StreamCaps
from store.proof_files import ProofFiles, ProofFilesError
from store.schema import ApiKey, DeliveryProofRow, EventRow, OrderRow, VehicleRow
from telematics.ingest import order_on_route, record_driver_event

router = APIRouter(
    tags=["drivers"],
    responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody}, 404: {"model": ErrorBody}},
)


def _own_vehicle(
    vehicle_id: VehicleId, caller: Annotated[Caller, Depends(require("device"))]
) -> Caller:
    """The caller when it is the path's vehicle's own device key; else the 404 an unknown
    vehicle gets (admins pass the role check but act for no vehicle: the same 404)."""
    if caller.role != "device" or caller.vehicle != vehicle_id:
        raise not_found("vehicle", vehicle_id)
    return caller


#: The vehicle's own device key, and nothing else.
Driver = Annotated[Caller, Depends(_own_vehicle)]


def _vehicle(session: Session, caller: Caller, vehicle_id: str) -> VehicleRow:
    row = session.scalar(
        select(VehicleRow).where(
            VehicleRow.organisation_id == caller.organisation_id,
            VehicleRow.external_id == vehicle_id,
        )
    )
    if row is None:
        raise not_found("vehicle", vehicle_id)
    return row


def _etag_matches(header: str | None, version: str) -> bool:
    if not header:
        return False
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    return "*" in tags or f'"{version}"' in tags


@router.get(
    "/v1/vehicles/{vehicle_id}/stops",
    response_model=StopsOut,
    summary="The stops of the vehicle's active route, in route order (its device key).",
    responses={304: {"description": "Unchanged since the If-None-Match route_version."}},
)
def get_stops(
    vehicle_id: VehicleId, caller: Driver, session: SessionDep, request: Request
) -> Response:
    """``ETag`` is the route_version: it changes when the stops, their order, status or
    instructions do, or a live ETA moves by a minute."""
    mqtt = mqtt_offer(request, caller.organisation_id, vehicle_id)
    body = stops_view(session, _vehicle(session, caller, vehicle_id), mqtt=mqtt)
    headers = {"ETag": f'"{body.route_version}"', "Cache-Control": "private, no-cache"}
    if _etag_matches(request.headers.get("if-none-match"), body.route_version):
        return Response(status_code=304, headers=headers)
    return JSONResponse(body.model_dump(mode="json"), headers=headers)


def _version(request: Request, caller: Caller, vehicle_id: str) -> str | None:
    """The route_version now; None once the key is revoked or the vehicle is gone."""
    with request.app.state.sessions() as session:
        revoked = session.scalar(select(ApiKey.revoked_at).where(ApiKey.id == caller.key_id))
        vehicle = session.scalar(
            select(VehicleRow).where(
                VehicleRow.organisation_id == caller.organisation_id,
                VehicleRow.external_id == vehicle_id,
            )
        )
        if revoked is not None or vehicle is None:
            return None
        mqtt = mqtt_offer(request, caller.organisation_id, vehicle_id)
        return stops_view(session, vehicle, geometry=False, mqtt=mqtt).route_version


@router.get(
    "/v1/vehicles/{vehicle_id}/stops/events",
    summary="Server-sent events: `route` with the route_version at once and when it changes.",
    response_class=StreamingResponse,
    responses={429: {"model": ErrorBody}},
)
async def stop_events(vehicle_id: VehicleId, caller: Driver, request: Request) -> Response:
    """Polled from the store every 2 s, comments as keep-alive; ends after 10 minutes (the
    app reconnects). Counts under the open-stream caps: the organisation's, and per device
    key as many as per client address elsewhere (429 with Retry-After when full)."""
    first = await run_in_threadpool(_version, request, caller, vehicle_id)
    if first is None:
        raise not_found("vehicle", vehicle_id)
    state = request.app.state
    caps: StreamCaps = state.stream_caps
    # Counted per device key, not per address: a fleet's phones often share their carrier's
    # address (CGNAT), and the key already names the phone.
    slot = await run_in_threadpool(caps.acquire, "driver", caller.key_id, caller.organisation_id)
    if slot is None:
        error = {"code": "too_many_streams", "message": "too many open streams", "problems": []}
        return JSONResponse(
            {"error": error}, status_code=429, headers={"Retry-After": str(RETRY_AFTER_S)}
        )
    poll_s: float = getattr(state, "driver_poll_s", POLL_S)
    max_s: float = getattr(state, "driver_stream_max_s", STREAM_MAX_S)

    def version() -> dict[str, str] | None:
        found = _version(request, caller, vehicle_id)
        return None if found is None else {"route_version": found}

    return change_stream(
        request,
        {"route_version": first},
        version,
        poll_s=poll_s,
        max_s=max_s,
        hold=slot,
        event="route",
    )


def _digest(body: ActionIn) -> str:
    text = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _stored(session: Session, organisation_id: str, action_id: str) -> DeliveryProofRow | None:
    return session.scalar(
        select(DeliveryProofRow).where(
            DeliveryProofRow.organisation_id == organisation_id,
            DeliveryProofRow.action_id == action_id,
        )
    )


def _again(known: DeliveryProofRow, digest: str, vehicle_row_id: str, body: ActionIn) -> Response:
    """The answer to an action id already stored: the first answer (200) for the same
    action from the same vehicle, else 409."""
    if known.body_hash != digest or known.vehicle_id != vehicle_row_id:
        raise ApiError(
            409,
            "action_id_reused",
            f"action_id {body.action_id!r} was already used for another action",
            [{"field": "action_id", "message": "already used for another action"}],
        )
    out = ActionOut(action_id=body.action_id, order_id=body.order_id, status=body.kind)
    return JSONResponse(out.model_dump(), status_code=200)


def _not_on_route(body: ActionIn, vehicle_id: str) -> ApiError:
    # An order of the organisation's that is not on the route and one that does not exist get
    # the same answer: a phone learns nothing of other orders.
    return ApiError(
        409,
        "order_not_on_route",
        f"order {body.order_id!r} is not a stop of vehicle {vehicle_id!r}'s active route",
        [{"field": "order_id", "message": "not a stop of the vehicle's active route"}],
    )


def _put_images(
    files: ProofFiles, organisation_id: str, body: ActionIn, digest: str
) -> tuple[str | None, str | None]:
    """Store the photo and signature; their keys. The key carries the body's hash: a retry
    writes the same bytes to the same key, another body under the same id never overwrites."""
    keys: list[str | None] = []
    for part, given, allowed, max_bytes in (
        ("photo", body.photo, PHOTO_TYPES, PHOTO_MAX_BYTES),
        ("signature", body.signature, SIGNATURE_TYPES, SIGNATURE_MAX_BYTES),
    ):
        if given is None:
            keys.append(None)
            continue
        image = _decode(given, allowed, max_bytes)
        key = f"{organisation_id}/{part}-{body.action_id}-{digest[:16]}.{image.extension}"
        try:
            files.put(key, image.data, image.content_type)
        except ProofFilesError as exc:
            raise ApiError(
                503, "proof_store_unavailable", f"the {part} could not be stored; try again"
            ) from exc
        keys.append(key)
    return keys[0], keys[1]


@router.post(
    "/v1/vehicles/{vehicle_id}/actions",
    status_code=201,
    response_model=ActionOut,
    summary="The driver's arrived, delivered or failed, with proof (idempotent by action_id).",
    responses={
        200: {"model": ActionOut, "description": "The same action again: already stored."},
        409: {"model": ErrorBody},
        413: {"model": ErrorBody},
        503: {"model": ErrorBody},
    },
)
def post_action(
    vehicle_id: VehicleId, body: ActionIn, caller: Driver, request: Request
) -> Response:
    """201 the first time; the same action again: 200 with the same answer, nothing stored
    twice. The order must be a stop of the vehicle's active route (409 otherwise)."""
    # Sessions of its own rather than the request's: images are stored between the checks and
    # the write (no transaction open while they upload), and a concurrent copy of the same
    # action that wins the race is answered as a retry, not a 500.
    sessions = request.app.state.sessions
    organisation_id = caller.organisation_id
    digest = _digest(body)
    with sessions() as session:
        vehicle = _vehicle(session, caller, vehicle_id)
        known = _stored(session, organisation_id, body.action_id)
        if known is not None:
            return _again(known, digest, vehicle.id, body)
        order = session.scalar(
            select(OrderRow).where(
                OrderRow.organisation_id == organisation_id,
                OrderRow.external_id == body.order_id,
            )
        )
        if order is None or not order_on_route(session, vehicle, order):
            raise _not_on_route(body, vehicle_id)
        vehicle_row_id, order_row_id = vehicle.id, order.id
    photo_key, signature_key = _put_images(
        request.app.state.proof_files, organisation_id, body, digest
    )
    try:
        with sessions() as session, session.begin():
            _record(
                request,
                session,
                body,
                digest,
                vehicle_row_id,
                order_row_id,
                photo_key,
                signature_key,
            )
    except IntegrityError:
        with sessions() as session:
            known = _stored(session, organisation_id, body.action_id)
        if known is None:
            raise
        return _again(known, digest, vehicle_row_id, body)
    out = ActionOut(action_id=body.action_id, order_id=body.order_id, status=body.kind)
    return JSONResponse(out.model_dump(), status_code=201)


def _record(
    request: Request,
    session: Session,
    body: ActionIn,
    digest: str,
    vehicle_row_id: str,
    order_row_id: str,
    photo_key: str | None,
    signature_key: str | None,
) -> None:
    """One transaction: the action's row first (a concurrent copy fails here, before any
    effect), then its effect on the stop."""
    vehicle = session.get(VehicleRow, vehicle_row_id)
    order = session.get(OrderRow, order_row_id)
    # Read just before, and never deleted.
    assert vehicle is not None
    assert order is not None
    session.add(
        DeliveryProofRow(
            organisation_id=vehicle.organisation_id,
            order_id=order.id,
            vehicle_id=vehicle.id,
            action_id=body.action_id,
            kind=body.kind,
            reason=body.reason or "",
            recipient_name=(body.recipient_name or "").strip(),
            at=body.at,
            lat=body.lat,
            lon=body.lon,
            accuracy_m=body.accuracy_m,
            photo_key=photo_key,
            signature_key=signature_key,
            body_hash=digest,
        )
    )
    session.flush()
    if not order_on_route(session, vehicle, order):  # re-dispatched meanwhile
        raise _not_on_route(body, vehicle.external_id)
    if body.kind == "arrived":
        session.add(
            EventRow(
                organisation_id=vehicle.organisation_id,
                order_id=order.id,
                vehicle_id=vehicle.id,
                kind=DRIVER_ARRIVED,
                at=body.at,
                data=_arrival_data(vehicle, body),
            )
        )
        return
    record_driver_event(
        session,
        vehicle,
        order,
        body.kind,
        body.reason or "",
        body.at,
        getattr(request.app.state, "outbox", None),
        now=service_now(request),
    )


def _arrival_data(vehicle: VehicleRow, body: ActionIn) -> dict[str, Any]:
    """The arrival counts for the route it was made on (see driver_stops._arrived)."""
    return {
        "by": "driver",
        "plan_id": vehicle.active_plan_id,
        "action_id": body.action_id,
        "lat": body.lat,
        "lon": body.lon,
        "accuracy_m": body.accuracy_m,
    }

"""Positions and driver events over HTTP (OsmAnd / Traccar Client, our JSON), and progress."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api.deps import Reader, SessionDep, VehicleDevice, VehicleId, service_now
from api.errors import ApiError, not_found
from api.routes.fleet import ERRORS, vehicle_row
from api.routes.orders import order_row
from api.schemas import (
    DriverEventIn,
    ErrorBody,
    IngestOut,
    PaceOut,
    ProgressOut,
    StopEtaOut,
    StopProgressOut,
)
from domain.geo import LatLon
from store.schema import ProgressRow
from telematics.ingest import order_on_route, record_driver_event
from telematics.ingest.silence import no_signal, silent_for_s
from telematics.topics import vehicle_topic
from telematics.way_back import way_back

router = APIRouter(tags=["telematics"], responses={401: {"model": ErrorBody}})
#: The vehicle's own device key (403 for any other vehicle), or a dispatcher.
Device = VehicleDevice
#: A device key used for another vehicle than its own: 403.
VEHICLE_ERRORS: dict[int | str, dict[str, Any]] = {403: {"model": ErrorBody}, **ERRORS}
#: Traccar Client posts small bodies; anything larger is not a position.
MAX_BODY_BYTES = 16_384


def _answer(result: Any) -> JSONResponse:
    body = IngestOut(status=result.status, reason=result.reason).model_dump()
    return JSONResponse(body, status_code=400 if result.status == "rejected" else 200)


OSMAND_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": IngestOut},
    413: {"model": ErrorBody},
}


@router.get(
    "/osmand",
    summary="Traccar Client / OsmAnd position in query fields.",
    response_model=IngestOut,
    responses=OSMAND_RESPONSES,
)
async def osmand_get(request: Request) -> JSONResponse:
    """Devices are known by the identifier the server issued when they were registered
    (OsmAnd sends no API key); an unknown, revoked or shared one gets one answer."""
    return await _osmand(request)


@router.post(
    "/osmand",
    summary="Traccar Client / OsmAnd position: query fields, a form body, or the JSON body "
    "of newer clients.",
    response_model=IngestOut,
    responses=OSMAND_RESPONSES,
)
async def osmand_post(request: Request) -> JSONResponse:
    """Devices are known by the identifier the server issued when they were registered
    (OsmAnd sends no API key); an unknown, revoked or shared one gets one answer."""
    return await _osmand(request)


async def _osmand(request: Request) -> JSONResponse:
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise ApiError(413, "too_large", f"body over {MAX_BODY_BYTES} bytes")
    ingester = request.app.state.ingester
    # The ingester commits to the database: on a worker thread, so a slow or locked database
    # holds up this request only, not the event loop (every other request, /healthz too).
    if body.strip().startswith(b"{"):
        return _answer(await run_in_threadpool(ingester.osmand_json, body))
    fields = dict(request.query_params)
    if body:
        # Traccar Client may POST its fields form-encoded instead of in the query.
        fields.update(parse_qsl(body.decode("utf-8", errors="replace")))
    return _answer(await run_in_threadpool(ingester.osmand_query, fields))


@router.post(
    "/v1/vehicles/{vehicle_id}/positions",
    summary="A position in our JSON (the same body as on MQTT fleet/{vehicle_id}/position).",
    response_model=IngestOut,
    responses={400: {"model": IngestOut}, **VEHICLE_ERRORS},
)
async def post_position(vehicle_id: VehicleId, request: Request, caller: Device) -> JSONResponse:
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise ApiError(413, "too_large", f"body over {MAX_BODY_BYTES} bytes")

    def ingest() -> Any:  # on a worker thread, as /osmand
        with request.app.state.sessions() as session:
            vehicle = vehicle_row(session, caller.organisation_id, vehicle_id)
        # By its row: the caller's own vehicle, whoever else uses the same id.
        return request.app.state.ingester.fleet_message_for(
            vehicle.id, body, topic=vehicle_topic(caller.organisation_id, vehicle_id, "position")
        )

    return _answer(await run_in_threadpool(ingest))


@router.post(
    "/v1/vehicles/{vehicle_id}/events",
    status_code=201,
    summary="A driver's event: delivered, failed (with reason) or skipped, for an order on "
    "the vehicle's active route (409 order_not_on_route otherwise).",
    responses=VEHICLE_ERRORS,
)
def driver_event(
    vehicle_id: VehicleId,
    body: DriverEventIn,
    caller: Device,
    session: SessionDep,
    request: Request,
) -> dict[str, str]:
    vehicle = vehicle_row(session, caller.organisation_id, vehicle_id)
    order = order_row(session, caller.organisation_id, body.order_id)
    if not order_on_route(session, vehicle, order):
        raise ApiError(
            409,
            "order_not_on_route",
            f"order {body.order_id!r} is not a stop of vehicle {vehicle_id!r}'s active route",
        )
    record_driver_event(
        session,
        vehicle,
        order,
        body.kind,
        body.reason,
        body.at or service_now(request),
        getattr(request.app.state, "outbox", None),
    )
    return {"order_id": body.order_id, "status": body.kind}


def _eta_out(stored: list[Any]) -> StopEtaOut:
    """From the compact stored form: [order id, eta, earliest, latest, departure, arrived]."""
    order_id, eta, earliest, latest, departure, arrived = stored

    def at(epoch_s: float) -> datetime:
        return datetime.fromtimestamp(epoch_s, UTC)

    return StopEtaOut(
        order_id=order_id,
        eta=at(eta),
        earliest=at(earliest),
        latest=at(latest),
        departure=at(departure),
        arrived=arrived,
    )


@router.get(
    "/v1/vehicles/{vehicle_id}/progress",
    summary="The vehicle's progress along its active route.",
    responses=ERRORS,
)
def get_progress(
    vehicle_id: VehicleId, request: Request, caller: Reader, session: SessionDep
) -> ProgressOut:
    vehicle = vehicle_row(session, caller.organisation_id, vehicle_id)
    row = session.get(ProgressRow, vehicle.id)
    if row is None:
        raise not_found("progress for vehicle", vehicle_id)
    state = row.state or {}
    back = None
    stops = state.get("stops", [])
    upcoming = state.get("next_stop")
    if (
        state.get("on_route") is False
        and isinstance(upcoming, int)
        and upcoming < len(stops)
        and row.last_lat is not None
        and row.last_lon is not None
    ):
        order = order_row(session, caller.organisation_id, stops[upcoming]["order_id"])
        found = way_back(
            request.app.state.graph,
            request.app.state.snapper,
            LatLon(row.last_lat, row.last_lon),
            LatLon(order.lat, order.lon),
        )
        back = {
            "to_order_id": order.external_id,
            "duration_s": round(found.duration_s),
            "distance_m": round(found.distance_m),
            "geometry": {"type": "LineString", "coordinates": found.coordinates},
        }
    return ProgressOut(
        vehicle_id=vehicle_id,
        plan_id=row.plan_id,
        fix_time=row.last_fix_time,
        lat=row.last_lat,
        lon=row.last_lon,
        along_m=state.get("along_m"),
        on_route=state.get("on_route"),
        next_stop=state.get("next_stop"),
        stops=[StopProgressOut.model_validate(s) for s in stops],
        etas=[_eta_out(e) for e in state.get("etas", [])],
        pace=PaceOut.model_validate(state["pace"]) if state.get("pace") else None,
        way_back=back,
        **_silence(request, row.last_fix_time, isinstance(upcoming, int) and upcoming < len(stops)),
    )


def _silence(request: Request, last_fix: datetime | None, stops_left: bool) -> dict[str, Any]:
    """How long the vehicle has been silent, and whether that is "no signal" (silence.py)."""
    now = service_now(request)
    silent_s = silent_for_s(last_fix, now)
    return {
        "silent_s": round(silent_s, 1) if silent_s is not None else None,
        "no_signal": no_signal(
            last_fix, now, request.app.state.settings.silent_after_s, stops_left=stops_left
        ),
    }

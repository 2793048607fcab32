"""A vehicle's GPS devices: register, list, rotate, revoke (dispatcher).

A device's credentials bind it to one vehicle of one organisation: its MQTT account may only
publish and read that vehicle's topics (telematics/acl.py), an OsmAnd identifier reports for
that vehicle only. Rotation gives the same device a new password (and an OsmAnd device a new
identifier); revocation ends it. Over HTTP (``/osmand``) both take effect with the next
request; over MQTT when the broker rereads its files: with ``LASTMILE_MOSQUITTO_ACL_DIR`` set
the service exports them and runs the reload command after every change (api/broker_acl.py,
telematics/acl_sync.py), else ``lastmile devices export-mosquitto`` does it by hand.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, BackgroundTasks, Request
from sqlalchemy import select

from api.broker_acl import sync_later
from api.deps import Dispatcher, Now, SessionDep, VehicleId
from api.device_schemas import BrokerAcl, DeviceCreate, DeviceCredentials, DevicePublic
from api.errors import conflict, not_found
from api.routes.fleet import ERRORS, vehicle_row
from api.schemas import ErrorBody
from domain.errors import Problem, ValidationError
from store import audit
from store.schema import DeviceRow, VehicleRow
from store.secrets import hash_device_password, new_device_identifier, new_device_password
from telematics.topics import route_topic, vehicle_topic

router = APIRouter(prefix="/v1", responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody}})


def _credentials(
    organisation_id: str, vehicle: VehicleRow, row: DeviceRow, password: str, broker_acl: BrokerAcl
) -> DeviceCredentials:
    publish_topic = {
        "fleet": vehicle_topic(organisation_id, vehicle.external_id, "position"),
        "owntracks": f"owntracks/{row.external_device_id}",
    }.get(row.protocol)
    return DeviceCredentials(
        device_id=row.id,
        vehicle_id=vehicle.external_id,
        external_device_id=row.external_device_id,
        mqtt_username=row.mqtt_username,
        mqtt_password=password,
        publish_topic=publish_topic,
        route_topic=route_topic(organisation_id, vehicle.external_id),
        broker_acl=broker_acl,
    )


def _device(session: SessionDep, vehicle: VehicleRow, device_id: str) -> DeviceRow:
    row = session.get(DeviceRow, device_id)
    if (
        row is None
        or row.vehicle_id != vehicle.id
        or row.organisation_id != vehicle.organisation_id
    ):
        raise not_found("device", device_id)
    return row


def _public(
    vehicle: VehicleRow, row: DeviceRow, broker_acl: BrokerAcl | None = None
) -> DevicePublic:
    return DevicePublic(
        device_id=row.id,
        vehicle_id=vehicle.external_id,
        protocol=row.protocol,
        external_device_id=row.external_device_id,
        mqtt_username=row.mqtt_username,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        broker_acl=broker_acl,
    )


@router.post(
    "/vehicles/{vehicle_id}/devices",
    status_code=201,
    tags=["vehicles"],
    responses=ERRORS,
    summary="Register a GPS device for a vehicle; returns its MQTT credentials once, and an "
    "OsmAnd device's identifier (issued by the server).",
)
def register_device(
    vehicle_id: VehicleId,
    caller: Dispatcher,
    session: SessionDep,
    request: Request,
    background: BackgroundTasks,
    now: Now,
    body: DeviceCreate | None = None,
) -> DeviceCredentials:
    vehicle = vehicle_row(session, caller.organisation_id, vehicle_id)
    password = new_device_password()
    username = f"dev-{vehicle.id[:8]}-{new_device_password()[:6].lower()}"
    body = body or DeviceCreate()
    external_id = body.external_device_id
    if body.protocol == "osmand":
        # Traccar Client sends nothing but this id: the server picks it, unguessable.
        if external_id is not None:
            why = "OsmAnd ids are issued by the server: leave it out, enter the one returned"
            raise ValidationError([Problem("external_device_id", why)])
        external_id = new_device_identifier()
    if body.protocol != "fleet" and not external_id:
        raise ValidationError(
            [Problem("external_device_id", f"a {body.protocol} device needs its own id")]
        )
    if body.protocol == "owntracks" and external_id and "/" not in external_id:
        # OwnTracks publishes on owntracks/{MQTT username}/{device}: with the username the
        # server issued, no other device of any organisation can hold the same topic.
        external_id = f"{username}/{external_id}"
    if body.protocol == "owntracks" and len((external_id or "").split("/")) != 2:
        why = "OwnTracks ids are a device name (or user/device, deprecated)"
        raise ValidationError([Problem("external_device_id", why)])
    # Unique per organisation: whether another tenant holds an id is never told (the
    # ingester refuses an OwnTracks id more than one vehicle holds).
    taken = session.scalar(
        select(DeviceRow).where(
            DeviceRow.organisation_id == caller.organisation_id,
            DeviceRow.protocol == body.protocol,
            DeviceRow.external_device_id == external_id,
            DeviceRow.revoked_at.is_(None),
        )
    )
    if external_id and taken is not None:
        raise conflict(f"device {external_id!r} is already registered in your organisation")
    row = DeviceRow(
        organisation_id=caller.organisation_id,
        vehicle_id=vehicle.id,
        mqtt_username=username,
        password_hash=hash_device_password(password),
        protocol=body.protocol,
        external_device_id=external_id,
    )
    session.add(row)
    session.flush()
    _audit(session, caller.organisation_id, caller.key_id, "device_registered", row, now)
    acl = sync_later(request, background)
    return _credentials(caller.organisation_id, vehicle, row, password, acl)


@router.get(
    "/vehicles/{vehicle_id}/devices",
    tags=["vehicles"],
    responses=ERRORS,
    summary="The vehicle's devices, revoked ones included (never a password).",
)
def list_devices(
    vehicle_id: VehicleId, caller: Dispatcher, session: SessionDep
) -> list[DevicePublic]:
    vehicle = vehicle_row(session, caller.organisation_id, vehicle_id)
    rows = session.scalars(
        select(DeviceRow)
        .where(DeviceRow.vehicle_id == vehicle.id)
        .order_by(DeviceRow.created_at, DeviceRow.id)
    )
    return [_public(vehicle, row) for row in rows]


@router.post(
    "/vehicles/{vehicle_id}/devices/{device_id}/rotate",
    tags=["vehicles"],
    responses=ERRORS,
    summary="New credentials for the device (shown once): a new MQTT password, and an OsmAnd "
    "device a new identifier. The old ones stop working.",
)
def rotate_device(
    vehicle_id: VehicleId,
    device_id: str,
    caller: Dispatcher,
    session: SessionDep,
    request: Request,
    background: BackgroundTasks,
    now: Now,
) -> DeviceCredentials:
    vehicle = vehicle_row(session, caller.organisation_id, vehicle_id)
    row = _device(session, vehicle, device_id)
    if row.revoked_at is not None:
        raise conflict(f"device {device_id!r} is revoked: register a new one")
    password = new_device_password()
    row.password_hash = hash_device_password(password)
    if row.protocol == "osmand":
        row.external_device_id = new_device_identifier()
    session.flush()
    _audit(session, caller.organisation_id, caller.key_id, "device_rotated", row, now)
    acl = sync_later(request, background)
    return _credentials(caller.organisation_id, vehicle, row, password, acl)


@router.delete(
    "/vehicles/{vehicle_id}/devices/{device_id}",
    tags=["vehicles"],
    responses=ERRORS,
    summary="Revoke the device: /osmand refuses it from the next request, the broker when it "
    "reloads its files (broker_acl says whether the service does that).",
)
def revoke_device(
    vehicle_id: VehicleId,
    device_id: str,
    caller: Dispatcher,
    session: SessionDep,
    request: Request,
    background: BackgroundTasks,
    now: Now,
) -> DevicePublic:
    vehicle = vehicle_row(session, caller.organisation_id, vehicle_id)
    row = _device(session, vehicle, device_id)
    if row.revoked_at is None:
        row.revoked_at = now
        session.flush()
        _audit(session, caller.organisation_id, caller.key_id, "device_revoked", row, now)
    return _public(vehicle, row, sync_later(request, background))


def _audit(
    session: SessionDep,
    organisation_id: str,
    key_id: str,
    action: audit.AuditAction,
    row: DeviceRow,
    at: datetime,
) -> None:
    audit.record(
        session,
        organisation_id=organisation_id,
        api_key_id=key_id,
        action=action,
        object_type="device",
        object_id=row.id,
        at=at,
        detail={"protocol": row.protocol, "mqtt_username": row.mqtt_username},
    )

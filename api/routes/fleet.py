"""Depots, vehicles and their devices, and API keys."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, BackgroundTasks, Request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from api.broker_acl import sync_later
from api.deps import Admin, Dispatcher, Now, Reader, SessionDep, VehicleId, owned
from api.errors import conflict, not_found
from api.schemas import (
    Branding,
    DepotCreate,
    DepotPublic,
    ErrorBody,
    KeyCreate,
    KeyCreated,
    KeyPublic,
    LatLonIn,
    OrganisationPublic,
    OrganisationUpdate,
    VehicleCreate,
    VehiclePublic,
    WindowIn,
)
from domain.errors import Problem, ValidationError
from notify.channels.ssrf import check_saved_url
from notify.codec import branding_from_json, settings_from_json, settings_to_json
from store import audit
from store.schema import ApiKey, DepotRow, Organisation, VehicleRow
from store.secrets import hash_device_password, new_api_key

router = APIRouter(prefix="/v1", responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody}})
ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody},
    409: {"model": ErrorBody},
    422: {"model": ErrorBody},
}


@router.post(
    "/keys",
    status_code=201,
    tags=["keys"],
    responses=ERRORS,
    summary="Create an API key (admin); a device key names the one vehicle it reports for.",
)
def create_key(
    body: KeyCreate,
    caller: Admin,
    session: SessionDep,
    request: Request,
    background: BackgroundTasks,
) -> KeyCreated:
    """A device key also gets its Mosquitto hash (the drivers' app publishes over MQTT with
    the key as password: api/driver_mqtt.py), and the broker's files are exported again when
    the service manages them, so the phone can connect as soon as it has the key."""
    vehicle = _key_vehicle(session, caller.organisation_id, body)
    key, prefix, key_hash = new_api_key()
    row = ApiKey(
        organisation_id=caller.organisation_id,
        name=body.name,
        role=body.role,
        prefix=prefix,
        key_hash=key_hash,
        vehicle_id=vehicle.id if vehicle is not None else None,
        mqtt_hash=hash_device_password(key) if vehicle is not None else None,
    )
    session.add(row)
    session.flush()
    if row.mqtt_hash is not None:
        sync_later(request, background)
    vehicle_id = vehicle.external_id if vehicle is not None else None
    audit.record(
        session,
        organisation_id=caller.organisation_id,
        api_key_id=caller.key_id,
        action="api_key_created",
        object_type="api_key",
        object_id=row.id,
        at=datetime.now(UTC),
        detail={"name": row.name, "role": body.role, "vehicle_id": vehicle_id},
    )
    return KeyCreated(id=row.id, name=row.name, role=body.role, vehicle_id=vehicle_id, key=key)


@router.delete(
    "/keys/{key_id}",
    tags=["keys"],
    responses=ERRORS,
    summary="Revoke an API key (admin): refused from the next request on, its dashboard "
    "sessions end. To rotate a key, create the new one, switch, then revoke the old.",
)
def revoke_key(
    key_id: str,
    caller: Admin,
    session: SessionDep,
    now: Now,
    request: Request,
    background: BackgroundTasks,
) -> KeyPublic:
    """A device key with an MQTT account leaves the broker's files too (at once when the
    service manages them: Mosquitto ends its open sessions when it reloads)."""
    row = session.get(ApiKey, key_id)
    if row is None or row.organisation_id != caller.organisation_id:
        raise not_found("API key", key_id)
    if row.revoked_at is None:
        row.revoked_at = now
        session.flush()
        if row.mqtt_hash is not None:
            sync_later(request, background)
        audit.record(
            session,
            organisation_id=caller.organisation_id,
            api_key_id=caller.key_id,
            action="api_key_revoked",
            object_type="api_key",
            object_id=row.id,
            at=now,
            detail={"name": row.name, "role": row.role},
        )
    vehicle = session.get(VehicleRow, row.vehicle_id) if row.vehicle_id else None
    return _key_public(row, vehicle.external_id if vehicle is not None else None)


def _key_public(row: ApiKey, vehicle_id: str | None) -> KeyPublic:
    """A key as listed (never the key itself); ``vehicle_id``: its vehicle's own id."""
    return KeyPublic(
        id=row.id,
        name=row.name,
        role=row.role,
        vehicle_id=vehicle_id,
        prefix=row.prefix,
        created_at=row.created_at,
        revoked=row.revoked_at is not None,
    )


def _key_vehicle(session: SessionDep, organisation_id: str, body: KeyCreate) -> VehicleRow | None:
    """A device key's vehicle (one of the organisation's), or a 422 naming vehicle_id."""
    if body.role != "device":
        if body.vehicle_id is not None:
            why = f"only device keys name a vehicle, {body.role} keys do not"
            raise ValidationError([Problem("vehicle_id", why)])
        return None
    if not body.vehicle_id:
        why = "vehicle_id is required for a device key: the one vehicle it reports for"
        raise ValidationError([Problem("vehicle_id", why)])
    vehicle = session.scalar(
        select(VehicleRow).where(
            VehicleRow.organisation_id == organisation_id,
            VehicleRow.external_id == body.vehicle_id,
        )
    )
    if vehicle is None:
        raise ValidationError([Problem("vehicle_id", f"no vehicle {body.vehicle_id!r}")])
    return vehicle


@router.get("/keys", tags=["keys"], summary="List the organisation's API keys (admin).")
def list_keys(caller: Admin, session: SessionDep) -> list[KeyPublic]:
    rows = session.execute(
        select(ApiKey, VehicleRow.external_id)
        .outerjoin(VehicleRow, VehicleRow.id == ApiKey.vehicle_id)
        .where(ApiKey.organisation_id == caller.organisation_id)
    )
    return [_key_public(r, vehicle) for r, vehicle in rows]


def _organisation_public(row: Organisation) -> OrganisationPublic:
    return OrganisationPublic(
        id=row.id,
        name=row.name,
        timezone=row.timezone,
        branding=Branding.model_validate(row.branding or {}),
        notification_policy=row.notification_policy or {},
    )


@router.get("/organisation", tags=["organisation"], summary="The caller's organisation.")
def get_organisation(caller: Reader, session: SessionDep) -> OrganisationPublic:
    row = session.get(Organisation, caller.organisation_id)
    assert row is not None  # a key always belongs to an existing organisation
    return _organisation_public(row)


@router.patch(
    "/organisation",
    tags=["organisation"],
    responses=ERRORS,
    summary="Change the organisation's settings (admin).",
)
def update_organisation(
    body: OrganisationUpdate, caller: Admin, session: SessionDep, request: Request
) -> OrganisationPublic:
    row = session.get(Organisation, caller.organisation_id)
    assert row is not None
    before = _settings_of(row)
    if body.timezone is not None:
        try:
            ZoneInfo(body.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValidationError(
                [Problem("timezone", f"unknown time zone {body.timezone!r}")]
            ) from exc
        row.timezone = body.timezone
    if body.name is not None:
        row.name = body.name
    if body.branding is not None:
        branding = body.branding.model_dump()
        if branding["sender"] and not branding["sender_email"]:
            branding["sender_email"] = branding["sender"]
        # The same checks the messages will meet (https logo, sender formats).
        branding_from_json({k: v for k, v in branding.items() if v}, name=row.name)
        row.branding = branding
    if body.notification_policy is not None:
        policy = settings_from_json(body.notification_policy)
        if policy.webhook_url is not None:
            # No webhooks to the service's own network (checked again at every send).
            allow = request.app.state.settings.webhook_allow_private
            why = check_saved_url(policy.webhook_url, allow_private=allow)
            if why is not None:
                raise ValidationError([Problem("notification_policy.webhook_url", why)])
        row.notification_policy = settings_to_json(policy)
    after = _settings_of(row)
    # Which settings were sent and which changed, never their values (a webhook URL or a
    # sender address is not for the log).
    audit.record(
        session,
        organisation_id=caller.organisation_id,
        api_key_id=caller.key_id,
        action="settings_changed",
        object_type="organisation",
        object_id=row.id,
        at=datetime.now(UTC),
        detail={
            "fields": sorted(f for f in before if getattr(body, f) is not None),
            "changed": sorted(f for f in before if before[f] != after[f]),
        },
    )
    outbox = getattr(request.app.state, "outbox", None)
    if outbox is not None:
        outbox.forget(row.id)
    return _organisation_public(row)


def _settings_of(row: Organisation) -> dict[str, Any]:
    """The organisation's settings PATCH /v1/organisation may change, by field."""
    return {
        "name": row.name,
        "timezone": row.timezone,
        "branding": dict(row.branding or {}),
        "notification_policy": dict(row.notification_policy or {}),
    }


def _depot_public(row: DepotRow) -> DepotPublic:
    return DepotPublic(
        id=row.external_id, name=row.name, location=LatLonIn(lat=row.lat, lon=row.lon)
    )


@router.post("/depots", status_code=201, tags=["depots"], responses=ERRORS, summary="Add a depot.")
def create_depot(body: DepotCreate, caller: Dispatcher, session: SessionDep) -> DepotPublic:
    row = DepotRow(
        organisation_id=caller.organisation_id,
        external_id=body.id,
        name=body.name,
        lat=body.location.lat,
        lon=body.location.lon,
    )
    session.add(row)
    try:
        session.flush()
    except IntegrityError as exc:
        raise conflict(f"depot {body.id!r} already exists") from exc
    return _depot_public(row)


@router.get("/depots", tags=["depots"], summary="List depots.")
def list_depots(caller: Reader, session: SessionDep) -> list[DepotPublic]:
    rows = session.scalars(
        select(DepotRow).where(DepotRow.organisation_id == caller.organisation_id)
    )
    return [_depot_public(r) for r in rows]


def _vehicle_public(row: VehicleRow) -> VehiclePublic:
    end = (
        None
        if row.end_lat is None or row.end_lon is None
        else LatLonIn(lat=row.end_lat, lon=row.end_lon)
    )
    return VehiclePublic(
        id=row.external_id,
        start=LatLonIn(lat=row.start_lat, lon=row.start_lon),
        end=end,
        shift=WindowIn(start=row.shift_start, end=row.shift_end),
        capacity=[int(c) for c in row.capacity],
        skills=[str(s) for s in row.skills],
        active_plan_id=row.active_plan_id,
    )


def vehicle_row(session: SessionDep, organisation_id: str, vehicle_id: str) -> VehicleRow:
    row: VehicleRow = owned(session, VehicleRow, organisation_id, vehicle_id, "vehicle")
    return row


@router.post(
    "/vehicles", status_code=201, tags=["vehicles"], responses=ERRORS, summary="Add a vehicle."
)
def create_vehicle(body: VehicleCreate, caller: Dispatcher, session: SessionDep) -> VehiclePublic:
    problems: list[Problem] = []
    start = body.start
    if body.depot_id is not None:
        depot = session.scalar(
            select(DepotRow).where(
                DepotRow.organisation_id == caller.organisation_id,
                DepotRow.external_id == body.depot_id,
            )
        )
        if depot is None:
            problems.append(Problem("depot_id", f"unknown depot {body.depot_id!r}"))
        elif start is None:
            start = LatLonIn(lat=depot.lat, lon=depot.lon)
    if start is None and not problems:
        problems.append(Problem("start", "give a start location or a depot_id"))
    if problems:
        raise ValidationError(problems)
    assert start is not None
    end = None if body.open_route else (body.end or start)
    row = VehicleRow(
        organisation_id=caller.organisation_id,
        external_id=body.id,
        driver_first_name=body.driver_first_name,
        start_lat=start.lat,
        start_lon=start.lon,
        end_lat=end.lat if end else None,
        end_lon=end.lon if end else None,
        shift_start=body.shift.start,
        shift_end=body.shift.end,
        capacity=list(body.capacity),
        skills=list(body.skills),
        max_duration_s=body.max_duration_s,
        max_distance_m=body.max_distance_m,
        fixed_cost=body.fixed_cost,
        cost_per_hour=body.cost_per_hour,
        cost_per_km=body.cost_per_km,
        breaks=[
            {
                "duration_s": b.duration_s,
                "window": {"start": b.window.start.isoformat(), "end": b.window.end.isoformat()},
            }
            for b in body.breaks
        ],
    )
    session.add(row)
    try:
        session.flush()
    except IntegrityError as exc:
        raise conflict(f"vehicle {body.id!r} already exists") from exc
    return _vehicle_public(row)


@router.get("/vehicles", tags=["vehicles"], summary="List vehicles.")
def list_vehicles(caller: Reader, session: SessionDep) -> list[VehiclePublic]:
    rows = session.scalars(
        select(VehicleRow)
        .where(VehicleRow.organisation_id == caller.organisation_id)
        .order_by(VehicleRow.external_id)
    )
    return [_vehicle_public(r) for r in rows]


@router.get("/vehicles/{vehicle_id}", tags=["vehicles"], responses=ERRORS, summary="One vehicle.")
def get_vehicle(vehicle_id: VehicleId, caller: Reader, session: SessionDep) -> VehiclePublic:
    return _vehicle_public(vehicle_row(session, caller.organisation_id, vehicle_id))

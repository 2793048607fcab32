"""From a transport's message to a fix on a vehicle row: each format's decoder
(telematics/decoders.py), the device or vehicle it names, and the dead letter of a message
refused.

Nothing here remembers which row an id names: devices and vehicles are looked up as each
message (or, for vehicle ids, each batch) arrives, so a vehicle created or a device
registered or revoked counts from the next message, in every process of the service."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from dataclasses import replace

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from domain.position import Position
from store.schema import DeadLetterRow, DeviceRow, VehicleRow
from telematics.decoders import DecodeError, decode_osmand, decode_osmand_json, decode_owntracks
from telematics.ingest.state import BatchState
from telematics.ingest.text import clean, storable
from telematics.topics import VehicleRef

Sessions = sessionmaker[Session]


def owntracks_fix(sessions: Sessions, topic: str, payload: bytes) -> Position:
    """``owntracks/{user}/{device}``, known by its registered device. The topic names no
    organisation and ids are unique per organisation only: one that more than one vehicle
    holds is refused, as the ACL export leaves it out (telematics/acl.py)."""
    parts = topic.split("/")
    key = "/".join(parts[1:3]) if len(parts) == 3 else ""
    vehicles = devices(sessions, "owntracks", key)
    if len(vehicles) > 1:
        raise DecodeError("ambiguous_device", f"{len(vehicles)} vehicles hold {key[:100]!r}")
    registrations = {tuple(key.split("/")): v for v in vehicles}
    return decode_owntracks(topic, payload, registrations)  # type: ignore[arg-type]


def osmand_query_payload(fields: Mapping[str, str]) -> bytes:
    """The query's fields as bytes, kept for the dead letters only: whatever the fields hold,
    it must encode."""
    return "&".join(f"{k}={v}" for k, v in fields.items()).encode("utf-8", "backslashreplace")


def osmand_query_fix(sessions: Sessions, fields: Mapping[str, str], speed_unit: str) -> Position:
    device = fields.get("id") or fields.get("deviceid") or ""
    return decode_osmand(fields, device_map(sessions, "osmand", device), speed_unit=speed_unit)


def osmand_json_fix(sessions: Sessions, payload: bytes) -> Position:
    try:
        device = str(json.loads(payload).get("device_id") or "")
    except (ValueError, AttributeError, RecursionError):
        device = ""
    return decode_osmand_json(payload, device_map(sessions, "osmand", device))


def device_map(sessions: Sessions, protocol: str, external_id: str) -> dict[str, str]:
    """{device id: vehicle row id} for one registered device; empty if unknown, revoked or
    held by more than one vehicle (ids registered by clients before the server issued them):
    /osmand answers all three alike, and says nothing of whose an id is."""
    vehicles = devices(sessions, protocol, external_id)
    return {external_id: vehicles[0]} if len(vehicles) == 1 else {}


def devices(sessions: Sessions, protocol: str, external_id: str) -> list[str]:
    """The vehicles an unrevoked device of this id reports for (more than one: ambiguous)."""
    if not external_id or not storable(external_id):
        return []  # no device has an id that cannot be stored
    with sessions() as session:
        rows = session.scalars(
            select(DeviceRow.vehicle_id)
            .where(
                DeviceRow.protocol == protocol,
                DeviceRow.external_device_id == external_id,
                DeviceRow.revoked_at.is_(None),
            )
            .distinct()
            .limit(2)
        )
        return list(rows)


def resolve_vehicles(batch: BatchState, refs: Iterable[VehicleRef]) -> None:
    """Look up, in the batch's own transaction, the vehicle rows these topics name (two
    statements for the lot): by organisation and own id, or, for the deprecated topics that
    name no organisation, by own id across organisations. Kept for this batch only: an id
    another organisation takes later is seen by the next batch, in this process or any
    other, with nothing to invalidate."""
    wanted = {r for r in refs if r not in batch.vehicle_rows}
    for ref in wanted:
        batch.vehicle_rows[ref] = ()
    wanted = {r for r in wanted if storable(r[1]) and (r[0] is None or storable(r[0]))}
    legacy = {vehicle for organisation, vehicle in wanted if organisation is None}
    scoped = {r for r in wanted if r[0] is not None}
    found: dict[VehicleRef, list[str]] = {}
    if legacy:
        rows = batch.session.execute(
            select(VehicleRow.external_id, VehicleRow.id).where(VehicleRow.external_id.in_(legacy))
        )
        for external_id, row_id in rows:
            found.setdefault((None, external_id), []).append(row_id)
    if scoped:
        scoped_rows = batch.session.execute(
            select(VehicleRow.organisation_id, VehicleRow.external_id, VehicleRow.id).where(
                VehicleRow.organisation_id.in_({r[0] for r in scoped}),
                VehicleRow.external_id.in_({r[1] for r in scoped}),
            )
        )
        for organisation_id, external_id, row_id in scoped_rows:
            if (organisation_id, external_id) in scoped:
                found.setdefault((organisation_id, external_id), []).append(row_id)
    for ref, row_ids in found.items():
        batch.vehicle_rows[ref] = tuple(row_ids)


def vehicle_row_id(batch: BatchState, ref: VehicleRef) -> str:
    """The row of the vehicle a topic names: its organisation's vehicle of that id, or, for a
    deprecated topic naming no organisation, the one vehicle of that id across organisations;
    else refused: unknown, or ambiguous when several organisations use it."""
    resolve_vehicles(batch, (ref,))
    ids = batch.vehicle_rows[ref]
    if len(ids) != 1:
        raise DecodeError("unknown_vehicle" if not ids else "ambiguous_vehicle", ref[1][:100])
    return ids[0]


def on_vehicle_row(batch: BatchState, position: Position, organisation_id: str | None) -> Position:
    """The fix of a vehicle named by its own id (in ``organisation_id``, or in none: a
    deprecated topic), on its row id."""
    return with_vehicle(position, vehicle_row_id(batch, (organisation_id, position.vehicle_id)))


def with_vehicle(position: Position, vehicle_row_id: str) -> Position:
    return replace(position, vehicle_id=vehicle_row_id)


def dead_letter(source: str, topic: str, payload: bytes, reason: str, detail: str) -> DeadLetterRow:
    """A refused message with why, for the dead letters."""
    return DeadLetterRow(
        source=source,
        topic=clean(topic)[:300],
        reason=reason,
        detail=clean(detail)[:1000],
        payload=base64.b64encode(payload[:4096]).decode(),
    )

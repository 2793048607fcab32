"""From a transport's message to a fix on a vehicle row: each format's decoder
(telematics/decoders.py), the device or vehicle it names, and the dead letter of a message
refused."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import replace

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from domain.position import Position
from store.schema import DeadLetterRow, DeviceRow, VehicleRow
from telematics.decoders import DecodeError, decode_osmand, decode_osmand_json, decode_owntracks
from telematics.ingest.text import clean, storable

Sessions = sessionmaker[Session]


def owntracks_fix(sessions: Sessions, topic: str, payload: bytes) -> Position:
    """``owntracks/{user}/{device}``, known by its registered device."""
    parts = topic.split("/")
    key = "/".join(parts[1:3]) if len(parts) == 3 else ""
    registrations = {tuple(key.split("/")): v for v in devices(sessions, "owntracks", key)}
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
    """{device id: vehicle row id} for one registered device (empty if unknown)."""
    vehicles = devices(sessions, protocol, external_id)
    return {external_id: vehicles[0]} if vehicles else {}


def devices(sessions: Sessions, protocol: str, external_id: str) -> list[str]:
    if not external_id or not storable(external_id):
        return []  # no device has an id that cannot be stored
    with sessions() as session:
        rows = session.scalars(
            select(DeviceRow.vehicle_id).where(
                DeviceRow.protocol == protocol,
                DeviceRow.external_device_id == external_id,
                DeviceRow.revoked_at.is_(None),
            )
        )
        return list(rows)[:1]


def on_vehicle_row(sessions: Sessions, known: dict[str, str], position: Position) -> Position:
    """The fix of a vehicle named by its external id, on its row id (``known`` keeps the
    mapping)."""
    vehicle_id = known.get(position.vehicle_id)
    if vehicle_id is not None:
        return with_vehicle(position, vehicle_id)
    if not storable(position.vehicle_id):
        raise DecodeError("unknown_vehicle", position.vehicle_id[:100])
    with sessions() as session:
        ids = list(
            session.scalars(
                select(VehicleRow.id).where(VehicleRow.external_id == position.vehicle_id)
            )
        )
    if len(ids) != 1:
        raise DecodeError(
            "unknown_vehicle" if not ids else "ambiguous_vehicle", position.vehicle_id[:100]
        )
    # Vehicles are never renamed or deleted, so the mapping can be kept.
    known[position.vehicle_id] = ids[0]
    return with_vehicle(position, ids[0])


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

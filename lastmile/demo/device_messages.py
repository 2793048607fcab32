"""What the demo's simulated devices say: a GPS fix and a driver's delivered/failed, and
their MQTT messages as our JSON, as OwnTracks, or as a driver's event (topic, payload)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from telematics.topics import legacy_topic, vehicle_topic


@dataclass(frozen=True, slots=True)
class Fix:
    vehicle_id: str
    at: datetime
    lat: float
    lon: float
    speed_mps: float
    organisation_id: str | None = None


@dataclass(frozen=True, slots=True)
class DriverEvent:
    vehicle_id: str
    order_id: str
    kind: str  # delivered | failed
    at: datetime
    reason: str = ""
    organisation_id: str | None = None


def fleet_json(fix: Fix) -> tuple[str, str]:
    """(topic, payload) in our JSON."""
    payload = {
        "lat": round(fix.lat, 6),
        "lon": round(fix.lon, 6),
        "time": fix.at.timestamp(),
        "speed_mps": round(fix.speed_mps, 1),
        "accuracy_m": 8.0,
    }
    return _topic(fix.organisation_id, fix.vehicle_id, "position"), json.dumps(payload)


def _topic(organisation_id: str | None, vehicle_id: str, kind: str) -> str:
    if organisation_id is None:
        return legacy_topic(vehicle_id, kind)
    return vehicle_topic(organisation_id, vehicle_id, kind)


def owntracks_json(fix: Fix, user: str, device: str) -> tuple[str, str]:
    """(topic, payload) as the OwnTracks app sends it (``vel`` in km/h, ``tst`` epoch s)."""
    payload = {
        "_type": "location",
        "lat": round(fix.lat, 6),
        "lon": round(fix.lon, 6),
        "tst": int(fix.at.timestamp()),
        "vel": round(fix.speed_mps * 3.6),
        "acc": 8,
        "tid": device[-2:],
    }
    return f"owntracks/{user}/{device}", json.dumps(payload)


def event_json(event: DriverEvent) -> tuple[str, str]:
    payload: dict[str, Any] = {
        "order_id": event.order_id,
        "kind": event.kind,
        "at": event.at.isoformat(),
    }
    if event.reason:
        payload["reason"] = event.reason
    return _topic(event.organisation_id, event.vehicle_id, "events"), json.dumps(payload)

"""Decoders from device payloads to :class:`domain.position.Position`.

Each decoder raises only :class:`DecodeError` (with a short reason code for the dead-letter
counters), whatever bytes it is given. Range checks that need no state live here; checks that
need the vehicle's history or the clock live in :mod:`telematics.hygiene`.

Our own JSON, on ``{organisation}/fleet/{vehicle_id}/position`` (telematics/topics.py)::

    {"lat": 60.1699, "lon": 24.9384,          # WGS84 degrees, required
     "time": "2026-11-26T10:15:02Z",          # ISO 8601, or epoch seconds / milliseconds
     "speed_mps": 8.3, "heading_deg": 271.0,  # optional
     "accuracy_m": 5.0, "altitude_m": 12.0,   # optional
     "battery": 0.81}                         # optional, fraction 0..1
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from domain.position import Position
from telematics.topics import VehicleTopic, parse_vehicle_topic

KNOTS_TO_MPS = 0.514444
KPH_TO_MPS = 1 / 3.6
#: Epoch values above this are milliseconds (it is 5138 in seconds, 1973 in milliseconds).
_MILLIS_ABOVE = 1e11


class DecodeError(ValueError):
    """A payload that is not a usable position; ``reason`` is a short code for counters."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def _json(payload: bytes | str) -> Any:
    try:
        text = payload.decode("utf-8") if isinstance(payload, bytes) else payload
        return json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise DecodeError("malformed_json", str(exc)[:200]) from exc


def _object(payload: bytes | str) -> Mapping[str, Any]:
    data = _json(payload)
    if not isinstance(data, dict):
        raise DecodeError("malformed_json", "expected a JSON object")
    return data


def _number(data: Mapping[str, Any], key: str, *, required: bool = False) -> float | None:
    value = data.get(key)
    if value is None or value == "":
        if required:
            raise DecodeError("missing_field", f"{key!r} is required")
        return None
    if isinstance(value, bool):
        raise DecodeError("bad_field", f"{key!r} must be a number")
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise DecodeError("bad_field", f"{key!r} must be a number") from exc
    if not math.isfinite(number):
        raise DecodeError("not_finite", f"{key!r} is {value!r}")
    return number


def _required(data: Mapping[str, Any], key: str) -> float:
    value = _number(data, key, required=True)
    assert value is not None
    return value


def parse_time(value: Any, field: str = "time") -> datetime:
    """Epoch seconds, epoch milliseconds or ISO 8601 (``Z`` or offset; naive means UTC)."""
    if value is None or value == "":
        raise DecodeError("missing_field", f"{field!r} is required")
    if isinstance(value, bool):
        raise DecodeError("bad_time", f"{field!r} is not a time")
    if isinstance(value, int | float) or (isinstance(value, str) and _is_number(value)):
        try:
            seconds = float(value)
        except OverflowError as exc:  # an integer too large for a float
            raise DecodeError("bad_time", f"{field!r} out of range") from exc
        if not math.isfinite(seconds):
            raise DecodeError("not_finite", f"{field!r} is {str(value)[:40]!r}")
        if abs(seconds) > _MILLIS_ABOVE:
            seconds /= 1000
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise DecodeError("bad_time", f"{field!r} out of range") from exc
    if not isinstance(value, str):
        raise DecodeError("bad_time", f"{field!r} is not a time")
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        # An offset can carry a time at the ends of datetime's range beyond them in UTC.
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except OverflowError as exc:
        raise DecodeError("bad_time", f"{field!r} out of range: {value[:40]!r}") from exc
    except ValueError as exc:
        raise DecodeError("bad_time", f"{field!r} is not ISO 8601: {value[:40]!r}") from exc


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _position(
    vehicle_id: str,
    fix_time: datetime,
    lat: float,
    lon: float,
    *,
    source: str,
    speed_mps: float | None = None,
    heading_deg: float | None = None,
    accuracy_m: float | None = None,
    altitude_m: float | None = None,
    battery: float | None = None,
) -> Position:
    if not vehicle_id:
        raise DecodeError("missing_field", "no vehicle or device id")
    if not -90 <= lat <= 90 or not -180 <= lon <= 180:
        raise DecodeError("out_of_range", f"lat/lon ({lat}, {lon}) outside the globe")
    if lat == 0 and lon == 0:
        raise DecodeError("no_fix", "0,0 is what receivers send without a fix")
    if speed_mps is not None and not 0 <= speed_mps <= 150:
        raise DecodeError("out_of_range", f"speed {speed_mps} m/s")
    if heading_deg is not None and not 0 <= heading_deg <= 360:
        raise DecodeError("out_of_range", f"heading {heading_deg}")
    if accuracy_m is not None and accuracy_m < 0:
        raise DecodeError("out_of_range", f"accuracy {accuracy_m} m")
    if battery is not None and not 0 <= battery <= 1:
        raise DecodeError("out_of_range", f"battery {battery}")
    return Position(
        vehicle_id=vehicle_id,
        fix_time=fix_time,
        lat=lat,
        lon=lon,
        speed_mps=speed_mps,
        heading_deg=heading_deg % 360 if heading_deg is not None else None,
        accuracy_m=accuracy_m,
        altitude_m=altitude_m,
        battery=battery,
        source=source,
    )


def topic_part(topic: str, index: int, *, expect: tuple[str, ...] = ()) -> str:
    parts = topic.split("/")
    if expect and (
        len(parts) != len(expect) or any(e and e != p for e, p in zip(expect, parts, strict=True))
    ):
        raise DecodeError("bad_topic", f"unexpected topic {topic[:100]!r}")
    if index >= len(parts) or not parts[index]:
        raise DecodeError("bad_topic", f"no id in topic {topic[:100]!r}")
    return parts[index]


def device_topic(topic: str, kind: str) -> VehicleTopic:
    """A fleet topic carrying ``kind`` (telematics/topics.py, either form), or refused."""
    parsed = parse_vehicle_topic(topic, (kind,))
    if parsed is None:
        raise DecodeError("bad_topic", f"unexpected topic {topic[:100]!r}")
    return parsed


def decode_fleet_json(topic: str, payload: bytes | str) -> Position:
    """Our JSON on ``{organisation}/fleet/{vehicle_id}/position`` (or the deprecated
    ``fleet/{vehicle_id}/position``; schema in the module doc). The fix names the vehicle's
    own id; the caller resolves it in the topic's organisation."""
    vehicle_id = device_topic(topic, "position").vehicle
    data = _object(payload)
    return _position(
        vehicle_id,
        parse_time(data.get("time")),
        _required(data, "lat"),
        _required(data, "lon"),
        source="fleet",
        speed_mps=_number(data, "speed_mps"),
        heading_deg=_number(data, "heading_deg"),
        accuracy_m=_number(data, "accuracy_m"),
        altitude_m=_number(data, "altitude_m"),
        battery=_number(data, "battery"),
    )


def decode_owntracks(
    topic: str, payload: bytes | str, registrations: Mapping[tuple[str, str], str]
) -> Position:
    """OwnTracks ``_type: location`` on ``owntracks/{user}/{device}``; a registration maps
    (user, device) to a vehicle. ``vel`` is km/h, ``batt`` a percentage, zero fields omitted."""
    user = topic_part(topic, 1, expect=("owntracks", "", ""))
    device = topic_part(topic, 2)
    data = _object(payload)
    if data.get("_type") != "location":
        raise DecodeError("not_a_location", f"OwnTracks _type {str(data.get('_type'))[:30]!r}")
    vehicle_id = registrations.get((user, device))
    if vehicle_id is None:
        raise DecodeError("unknown_device", f"no vehicle registered for {user}/{device}")
    vel = _number(data, "vel")
    batt = _number(data, "batt")
    return _position(
        vehicle_id,
        parse_time(data.get("tst"), "tst"),
        _required(data, "lat"),
        _required(data, "lon"),
        source="owntracks",
        speed_mps=vel * KPH_TO_MPS if vel is not None else None,
        heading_deg=_number(data, "cog"),
        accuracy_m=_number(data, "acc"),
        altitude_m=_number(data, "alt"),
        battery=batt / 100 if batt is not None else None,
    )


def decode_osmand(
    fields: Mapping[str, str],
    devices: Mapping[str, str],
    *,
    speed_unit: str = "knots",
) -> Position:
    """Traccar's OsmAnd query protocol, as Traccar Client sends it (``speed`` in knots unless
    ``speed_unit`` is ``mps`` or ``kmh``); ``devices`` maps device ids to vehicles."""
    device = fields.get("id") or fields.get("deviceid") or ""
    if not device:
        raise DecodeError("missing_field", "'id' or 'deviceid' is required")
    vehicle_id = devices.get(device)
    if vehicle_id is None:
        raise DecodeError("unknown_device", f"no vehicle registered for device {device[:50]!r}")
    factor = {"knots": KNOTS_TO_MPS, "mps": 1.0, "kmh": KPH_TO_MPS}.get(speed_unit)
    if factor is None:
        raise ValueError(f"speed_unit must be knots, mps or kmh, not {speed_unit!r}")
    speed = _number(fields, "speed")
    batt = _number(fields, "batt")
    return _position(
        vehicle_id,
        parse_time(fields.get("timestamp"), "timestamp"),
        _required(fields, "lat"),
        _required(fields, "lon"),
        source="osmand",
        speed_mps=speed * factor if speed is not None else None,
        heading_deg=_number(fields, "bearing"),
        accuracy_m=_number(fields, "accuracy"),
        altitude_m=_number(fields, "altitude"),
        battery=batt / 100 if batt is not None else None,
    )


def decode_osmand_json(payload: bytes | str, devices: Mapping[str, str]) -> Position:
    """The JSON body newer Traccar Client apps POST: ``{"device_id", "location": {"timestamp",
    "coords": {"latitude", "longitude", "speed" (m/s), "heading", "accuracy", "altitude"},
    "battery": {"level": 0..1}}}``."""
    data = _object(payload)
    device = str(data.get("device_id") or "")
    location = data.get("location")
    if not isinstance(location, dict):
        raise DecodeError("missing_field", "'location' object is required")
    coords = location.get("coords")
    if not isinstance(coords, dict):
        raise DecodeError("missing_field", "'location.coords' object is required")
    if not device:
        raise DecodeError("missing_field", "'device_id' is required")
    vehicle_id = devices.get(device)
    if vehicle_id is None:
        raise DecodeError("unknown_device", f"no vehicle registered for device {device[:50]!r}")
    battery = location.get("battery")
    level = _number(battery, "level") if isinstance(battery, dict) else None
    speed = _number(coords, "speed")
    heading = _number(coords, "heading")
    return _position(
        vehicle_id,
        parse_time(location.get("timestamp"), "location.timestamp"),
        _required(coords, "latitude"),
        _required(coords, "longitude"),
        source="osmand",
        # The apps report -1 when they do not know.
        speed_mps=speed if speed is not None and speed >= 0 else None,
        heading_deg=heading if heading is not None and heading >= 0 else None,
        accuracy_m=_number(coords, "accuracy"),
        altitude_m=_number(coords, "altitude"),
        battery=level if level is not None and level >= 0 else None,
    )


def decode_gpsd_tpv(vehicle_id: str, payload: bytes | str) -> Position:
    """gpsd's TPV report (``class: TPV``; ``speed`` m/s, ``track`` degrees, ``eph`` or
    ``epx``/``epy`` metres), forwarded by a bridge that knows its vehicle."""
    data = _object(payload)
    if data.get("class") != "TPV":
        raise DecodeError("not_a_location", f"gpsd class {str(data.get('class'))[:30]!r}")
    mode = data.get("mode")
    if isinstance(mode, int) and mode < 2:
        raise DecodeError("no_fix", "gpsd mode < 2 (no fix)")
    accuracy = _number(data, "eph")
    if accuracy is None:
        epx, epy = _number(data, "epx"), _number(data, "epy")
        if epx is not None and epy is not None:
            accuracy = math.hypot(epx, epy)
    return _position(
        vehicle_id,
        parse_time(data.get("time")),
        _required(data, "lat"),
        _required(data, "lon"),
        source="gpsd",
        speed_mps=_number(data, "speed"),
        heading_deg=_number(data, "track"),
        accuracy_m=accuracy,
        altitude_m=_number(data, "altHAE") if "altHAE" in data else _number(data, "alt"),
    )

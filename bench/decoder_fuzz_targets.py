"""The decoders under fuzz and what counts as a pass: each decoder called with a fuzz case, and
what it lets through checked for sanity. A case passes when the decoder returns a sane Position
(or time) or raises :class:`DecodeError` with a reason; anything else is a crash.
``bench/fuzz_decoders.py`` runs these for minutes, ``tests/telematics/test_fuzz_decoders.py``
briefly in CI.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

from domain.position import Position
from telematics.decoders import (
    DecodeError,
    decode_fleet_json,
    decode_gpsd_tpv,
    decode_osmand,
    decode_osmand_json,
    decode_owntracks,
    parse_time,
)

#: The fuzzed ingester's clock (fixes near it pass the hygiene screen and reach the store).
NOW = datetime(2026, 6, 10, 10, 0, tzinfo=UTC)
DEVICES: Mapping[str, str] = {"dev-1": "van-1"}
REGISTRATIONS: Mapping[tuple[str, str], str] = {("anna", "phone"): "van-1"}


# What a decoder is given ------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Target:
    """One decoder, called with a fuzz case: ``(topic or vehicle id, payload)`` for the ones
    that take a topic, the payload alone, the query fields, or any value for ``parse_time``."""

    decoder: str
    call: Callable[[Any], Position | datetime]

    def __call__(self, case: Any) -> Position | datetime:
        return self.call(case)


def _topic_case(default: str, case: Any) -> tuple[str, bytes]:
    if isinstance(case, tuple):
        return case[0], case[1]
    return default, case


def _fleet(case: Any) -> Position:
    return decode_fleet_json(*_topic_case("fleet/van-1/position", case))


def _owntracks(case: Any) -> Position:
    topic, payload = _topic_case("owntracks/anna/phone", case)
    return decode_owntracks(topic, payload, REGISTRATIONS)


def _gpsd(case: Any) -> Position:
    return decode_gpsd_tpv(*_topic_case("van-1", case))


def _osmand_query(case: Any) -> Position:
    if isinstance(case, bytes):
        case = dict(parse_qsl(case.decode("utf-8", "replace"), keep_blank_values=True))
    return decode_osmand(case, DEVICES)


def _osmand_json(case: Any) -> Position:
    return decode_osmand_json(case, DEVICES)


TARGETS: dict[str, Target] = {
    "fleet_json": Target("decode_fleet_json", _fleet),
    "owntracks": Target("decode_owntracks", _owntracks),
    "osmand_query": Target("decode_osmand", _osmand_query),
    "osmand_json": Target("decode_osmand_json", _osmand_json),
    "gpsd_tpv": Target("decode_gpsd_tpv", _gpsd),
    "parse_time": Target("parse_time", parse_time),
}


class InsaneResultError(AssertionError):
    """A decoder let through a value no Position should hold."""


def _require(ok: bool, what: str, value: object) -> None:
    if not ok:
        raise InsaneResultError(f"{what}: {value!r}")


def check(position: Position | datetime) -> None:
    """What a decoder lets through is usable: in range, finite, times aware and in UTC."""
    if isinstance(position, datetime):
        _require(position.utcoffset() == timedelta(0), "time not in UTC", position)
        return
    _require(isinstance(position, Position), "not a Position", position)
    p = position
    _require(math.isfinite(p.lat) and -90 <= p.lat <= 90, "lat", p)
    _require(math.isfinite(p.lon) and -180 <= p.lon <= 180, "lon", p)
    _require(p.fix_time.utcoffset() == timedelta(0), "fix_time not in UTC", p)
    _require(p.speed_mps is None or 0 <= p.speed_mps <= 150, "speed", p)
    _require(p.heading_deg is None or 0 <= p.heading_deg < 360, "heading", p)
    _require(p.accuracy_m is None or p.accuracy_m >= 0, "accuracy", p)
    _require(p.battery is None or 0 <= p.battery <= 1, "battery", p)
    _require(p.altitude_m is None or math.isfinite(p.altitude_m), "altitude", p)


def run_case(name: str, case: Any) -> bool:
    """Decode one case; True when a Position came out. A DecodeError without a reason, an
    insane Position (:class:`InsaneResultError`) or any other exception propagates."""
    try:
        result = TARGETS[name](case)
    except DecodeError as exc:
        _require(bool(exc.reason), "a DecodeError without a reason", exc)
        return False
    check(result)
    return True

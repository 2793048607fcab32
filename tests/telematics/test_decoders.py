"""Decoders on real-shaped sample payloads (golden files), and on junk."""

from __future__ import annotations

import contextlib
import json
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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

GOLDEN = sorted((Path(__file__).parent / "golden").glob("*.json"))


def _decode(sample: dict[str, Any]) -> Position:
    kind = sample["decoder"]
    if kind == "fleet":
        return decode_fleet_json(sample["topic"], sample["payload"].encode())
    if kind == "owntracks":
        registrations = {(u, d): v for u, d, v in sample["registrations"]}
        return decode_owntracks(sample["topic"], sample["payload"].encode(), registrations)
    if kind == "osmand":
        return decode_osmand(dict(parse_qsl(sample["query"])), sample["devices"])
    if kind == "osmand_json":
        return decode_osmand_json(sample["payload"].encode(), sample["devices"])
    if kind == "gpsd":
        return decode_gpsd_tpv(sample["vehicle_id"], sample["payload"].encode())
    raise AssertionError(kind)


@pytest.mark.parametrize("path", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_golden_payloads_decode_to_fixed_units(path: Path) -> None:
    """Each captured-shape payload decodes to the expected Position, units converted."""
    sample = json.loads(path.read_text())
    position = _decode(sample)
    expected = sample["expected"]
    assert position.fix_time == datetime.fromisoformat(expected.pop("fix_time"))
    for key, value in expected.items():
        got = getattr(position, key)
        if isinstance(value, float):
            assert got == pytest.approx(value, abs=1e-3), key
        else:
            assert got == value, key


def test_there_is_a_golden_file_per_decoder() -> None:
    """Every decoder has at least one real-shaped sample."""
    kinds = {json.loads(p.read_text())["decoder"] for p in GOLDEN}
    assert kinds == {"fleet", "owntracks", "osmand", "osmand_json", "gpsd"}


@pytest.mark.parametrize(
    ("value", "iso"),
    [
        (1795662002, "2026-11-26T03:00:02+00:00"),
        (1795662002123, "2026-11-26T03:00:02.123000+00:00"),
        ("1795662002", "2026-11-26T03:00:02+00:00"),
        ("2026-11-26T05:00:02+02:00", "2026-11-26T03:00:02+00:00"),
        ("2026-11-26T03:00:02", "2026-11-26T03:00:02+00:00"),
    ],
)
def test_times_in_seconds_milliseconds_and_iso(value: object, iso: str) -> None:
    """Epoch seconds and milliseconds are told apart; ISO offsets become UTC."""
    assert parse_time(value) == datetime.fromisoformat(iso)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\xff\xfe garbage", "malformed_json"),
        (b"[1, 2]", "malformed_json"),
        (b'{"lon": 24.9, "time": 1795662002}', "missing_field"),
        (b'{"lat": "NaN", "lon": 24.9, "time": 1795662002}', "not_finite"),
        (b'{"lat": 91, "lon": 24.9, "time": 1795662002}', "out_of_range"),
        (b'{"lat": 0, "lon": 0, "time": 1795662002}', "no_fix"),
        (b'{"lat": 60.1, "lon": 24.9, "time": "yesterday"}', "bad_time"),
        (b'{"lat": 60.1, "lon": 24.9, "time": 1795662002, "speed_mps": -3}', "out_of_range"),
        (b'{"lat": true, "lon": 24.9, "time": 1795662002}', "bad_field"),
    ],
)
def test_bad_payloads_get_a_reason(payload: bytes, reason: str) -> None:
    """Each kind of bad payload is refused with its own reason code."""
    with pytest.raises(DecodeError) as info:
        decode_fleet_json("fleet/van-1/position", payload)
    assert info.value.reason == reason


def test_unknown_device_and_wrong_type() -> None:
    """An unregistered OwnTracks device, and an OwnTracks non-location message, are refused."""
    payload = b'{"_type":"location","lat":60.1,"lon":24.9,"tst":1795662002}'
    with pytest.raises(DecodeError, match="unknown_device"):
        decode_owntracks("owntracks/bob/phone", payload, {})
    with pytest.raises(DecodeError, match="not_a_location"):
        decode_owntracks("owntracks/bob/phone", b'{"_type":"transition"}', {("bob", "phone"): "v"})


JSONISH = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=True) | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=6)
    ),
    max_leaves=20,
)
FIELDS = st.dictionaries(
    st.sampled_from(
        [
            "lat",
            "lon",
            "time",
            "tst",
            "timestamp",
            "id",
            "deviceid",
            "speed",
            "_type",
            "class",
            "vel",
            "batt",
            "acc",
            "bearing",
            "coords",
            "location",
            "device_id",
        ]
    ),
    JSONISH,
    max_size=10,
)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=200),
        FIELDS.map(lambda d: json.dumps(d, default=str).encode()),
        JSONISH.map(lambda d: json.dumps(d, default=str).encode()),
    )
)
def test_every_decoder_raises_only_decode_error(payload: bytes) -> None:
    """Random bytes and random JSON: a Position or a DecodeError, never anything else."""
    devices = {"1": "van-1"}
    for decode in (
        lambda: decode_fleet_json("fleet/van-1/position", payload),
        lambda: decode_owntracks("owntracks/u/d", payload, {("u", "d"): "van-1"}),
        lambda: decode_osmand_json(payload, devices),
        lambda: decode_gpsd_tpv("van-1", payload),
    ):
        with contextlib.suppress(DecodeError):
            decode()


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "id",
                "deviceid",
                "lat",
                "lon",
                "timestamp",
                "speed",
                "bearing",
                "batt",
                "accuracy",
                "altitude",
            ]
        ),
        st.text(max_size=30),
        max_size=10,
    )
)
def test_osmand_query_raises_only_decode_error(fields: dict[str, str]) -> None:
    """Random query strings: a Position or a DecodeError."""
    with contextlib.suppress(DecodeError):
        decode_osmand(fields, {"1": "van-1"})

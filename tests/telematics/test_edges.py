"""Fixes at the edges: the antimeridian and the poles, epoch seconds against milliseconds,
times far in the future or past."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from domain.position import Position
from domain.route_track import route_track
from store.schema import DeadLetterRow, PositionRow
from telematics.decoders import (
    _MILLIS_ABOVE,
    DecodeError,
    decode_fleet_json,
    decode_gpsd_tpv,
    decode_osmand,
    decode_osmand_json,
    decode_owntracks,
    parse_time,
)
from telematics.hygiene import HygieneParams, Verdict, screen
from telematics.ingest import Ingester
from telematics.progress import (
    Arrived,
    Departed,
    Event,
    LeftRoute,
    Passed,
    ProgressParams,
    apply_fix,
    start,
)
from tests.telematics.conftest import store_with_vehicle

NOW = datetime(2026, 6, 10, 10, 0, tzinfo=UTC)
EPOCH_S = int(NOW.timestamp())

#: Each decoder, from (lat, lon, time value) to a Position (or its DecodeError).
Decode = Callable[[float, float, object], Position]


def _fleet(lat: float, lon: float, t: object) -> Position:
    payload = json.dumps({"lat": lat, "lon": lon, "time": t}).encode()
    return decode_fleet_json("fleet/van-1/position", payload)


def _owntracks(lat: float, lon: float, t: object) -> Position:
    payload = json.dumps({"_type": "location", "lat": lat, "lon": lon, "tst": t}).encode()
    return decode_owntracks("owntracks/anna/phone", payload, {("anna", "phone"): "van-1"})


def _osmand(lat: float, lon: float, t: object) -> Position:
    fields = {"id": "dev-1", "lat": repr(lat), "lon": repr(lon), "timestamp": str(t)}
    return decode_osmand(fields, {"dev-1": "van-1"})


def _osmand_json(lat: float, lon: float, t: object) -> Position:
    body = {
        "device_id": "dev-1",
        "location": {"timestamp": t, "coords": {"latitude": lat, "longitude": lon}},
    }
    return decode_osmand_json(json.dumps(body).encode(), {"dev-1": "van-1"})


def _gpsd(lat: float, lon: float, t: object) -> Position:
    payload = json.dumps({"class": "TPV", "mode": 3, "lat": lat, "lon": lon, "time": t})
    return decode_gpsd_tpv("van-1", payload.encode())


DECODERS: dict[str, Decode] = {
    "fleet": _fleet,
    "owntracks": _owntracks,
    "osmand": _osmand,
    "osmand_json": _osmand_json,
    "gpsd": _gpsd,
}


# The edges of the globe ---------------------------------------------------------------------
@pytest.mark.parametrize("decoder", sorted(DECODERS))
@pytest.mark.parametrize(
    ("lat", "lon"),
    [(90, 180), (-90, -180), (90, -180), (-90, 180), (-16.8, 180), (-16.8, -180), (71.5, 179.99)],
)
def test_every_decoder_takes_the_poles_and_the_antimeridian(
    decoder: str, lat: float, lon: float
) -> None:
    position = DECODERS[decoder](lat, lon, EPOCH_S)
    assert (position.lat, position.lon) == (lat, lon)


@pytest.mark.parametrize("decoder", sorted(DECODERS))
@pytest.mark.parametrize(
    ("lat", "lon"),
    [(90.000001, 10), (-90.000001, 10), (10, 180.000001), (10, -180.000001), (10, 360)],
)
def test_every_decoder_refuses_past_the_edges(decoder: str, lat: float, lon: float) -> None:
    with pytest.raises(DecodeError) as info:
        DECODERS[decoder](lat, lon, EPOCH_S)
    assert info.value.reason == "out_of_range"


def _fix(t: datetime, lat: float, lon: float) -> Position:
    return Position("van-1", t, lat, lon)


#: 100 m of longitude at Taveuni's latitude (Fiji, across the date line).
TAVEUNI_LAT = -16.8
STEP_100_M = 100 / (111_195.0 * math.cos(math.radians(TAVEUNI_LAT)))


def test_a_fix_across_the_antimeridian_is_a_short_step_not_a_jump() -> None:
    """200 m across 180 in 20 s is driving; the screen measures the short way round."""
    last = _fix(NOW - timedelta(seconds=20), TAVEUNI_LAT, 180 - STEP_100_M)
    here = _fix(NOW, TAVEUNI_LAT, -180 + STEP_100_M)
    assert screen(here, last, NOW, HygieneParams()).verdict is Verdict.APPLY
    # A real jump across it (0.4 degrees, 43 km in 20 s) is still one.
    far = _fix(NOW, TAVEUNI_LAT, -179.8)
    assert screen(far, _fix(last.fix_time, TAVEUNI_LAT, 179.8), NOW, HygieneParams()).reason == (
        "implausible_jump"
    )


def test_fixes_at_a_pole_are_screened_without_error() -> None:
    """At the pole every longitude is one place: no jump, whatever the longitude says."""
    last = _fix(NOW - timedelta(seconds=30), 90, 0)
    assert screen(_fix(NOW, 90, 180), last, NOW, HygieneParams()).verdict is Verdict.APPLY
    assert screen(_fix(NOW, 90, -180), last, NOW, HygieneParams()).verdict is Verdict.APPLY


def _taveuni_lon(x_m: float) -> float:
    """The longitude x metres east of 179.99 E, wrapped past the antimeridian."""
    lon = 179.99 + x_m * STEP_100_M / 100
    return lon - 360 if lon > 180 else lon


def test_a_route_across_the_antimeridian_is_followed() -> None:
    """A 2 km street across 180 with a stop on each side: the track is 2 km long (not once
    round the world), both stops are placed on it, and a van driving it arrives at and
    leaves both (before the fix, the second was "passed" 38,000 km down the line)."""
    line = [[_taveuni_lon(x), TAVEUNI_LAT] for x in range(0, 2001, 100)]
    assert line[0][0] > 179
    assert line[-1][0] < -179
    stops = [("s1", TAVEUNI_LAT, _taveuni_lon(500)), ("s2", TAVEUNI_LAT, _taveuni_lon(1500))]
    track = route_track("van-1", "plan-1", line, stops)
    assert track.length_m == pytest.approx(2000, rel=1e-3)
    assert track.stop_along_m == pytest.approx((500, 1500), rel=1e-3)
    lat, lon = track.latlon_at(1500)
    assert lat == pytest.approx(TAVEUNI_LAT)
    assert lon == pytest.approx(_taveuni_lon(1500), abs=1e-6)
    assert -180 <= lon <= 180
    progress, events = start(track), list[Event]()
    drive = [(0, 0), (20, 250), (40, 500), (70, 500), (100, 500), (120, 800), (140, 1200)]
    drive += [(160, 1500), (190, 1500), (230, 1500), (260, 1800)]
    for s, x in drive:
        fix = _fix(NOW + timedelta(seconds=s), TAVEUNI_LAT, _taveuni_lon(x))
        progress, new = apply_fix(track, progress, fix, ProgressParams())
        events += new
    kinds = [(type(e).__name__, getattr(e, "order_id", "")) for e in events]
    assert kinds == [
        ("Arrived", "s1"),
        ("Departed", "s1"),
        ("Arrived", "s2"),
        ("Departed", "s2"),
    ]
    assert not any(isinstance(e, LeftRoute | Passed) for e in events)
    assert all(isinstance(e, Arrived | Departed) for e in events)


def test_fixes_across_the_antimeridian_go_through_the_store(tmp_path: Path) -> None:
    """Over the ingester into SQLite: fixes either side of 180 (and at exactly +-180) are
    all applied, none dead-lettered."""
    sessions, _, engine = store_with_vehicle(tmp_path, "van-1")
    ingester = Ingester(sessions, clock=lambda: NOW)
    lons = [180 - 2 * STEP_100_M, 180 - STEP_100_M, 180, -180, -180 + STEP_100_M]
    results = [
        ingester.fleet_message(
            "fleet/van-1/position",
            json.dumps({"lat": TAVEUNI_LAT, "lon": lon, "time": EPOCH_S - 50 + 10 * k}).encode(),
        )
        for k, lon in enumerate(lons)
    ]
    assert [r.status for r in results] == ["applied"] * len(lons), results
    with sessions() as session:
        assert session.scalar(select(DeadLetterRow)) is None
        assert sorted(session.scalars(select(PositionRow.lon))) == sorted(lons)
    engine.dispose()


# Seconds, milliseconds, and times that cannot be ---------------------------------------------
@pytest.mark.parametrize("decoder", sorted(DECODERS))
def test_seconds_milliseconds_and_iso_give_the_same_instant(decoder: str) -> None:
    """Epoch seconds, epoch milliseconds (number or text) and ISO 8601 with any offset: one
    instant, in UTC."""
    ms = EPOCH_S * 1000 + 250
    exact = NOW + timedelta(milliseconds=250)
    values: list[object] = [
        ms,
        str(ms),
        EPOCH_S + 0.25,
        "2026-06-10T10:00:00.250Z",
        "2026-06-10T12:00:00.250+02:00",
        "2026-06-10T05:00:00.250-05:00",
    ]
    decode = DECODERS[decoder]
    for value in values:
        got = decode(60.17, 24.94, value).fix_time
        assert got == exact, value
        assert got.utcoffset() == timedelta(0)
    assert decode(60.17, 24.94, EPOCH_S).fix_time == NOW
    assert decode(60.17, 24.94, EPOCH_S * 1000).fix_time == NOW


def test_the_seconds_milliseconds_threshold() -> None:
    """At and below 1e11 a number is seconds (year 5138), above it milliseconds (1973):
    no fix of this century is on the wrong side either way."""
    assert parse_time(_MILLIS_ABOVE).year == 5138
    assert parse_time(_MILLIS_ABOVE + 1).year == 1973
    assert parse_time(int(datetime(2100, 1, 1, tzinfo=UTC).timestamp())).year == 2100
    assert parse_time(int(datetime(2100, 1, 1, tzinfo=UTC).timestamp() * 1000)).year == 2100
    assert parse_time(-EPOCH_S * 1000) == datetime.fromtimestamp(-EPOCH_S, UTC)


@pytest.mark.parametrize(
    "value",
    [
        EPOCH_S * 1_000_000,  # microseconds: would be year 58,000 as milliseconds
        EPOCH_S * 1_000_000_000,  # nanoseconds
        "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
        "9999-12-31T23:59:59-01:00",  # after year 9999 in UTC
        10**400,
        "1e400",
    ],
)
def test_times_that_cannot_be_are_refused(value: object) -> None:
    with pytest.raises(DecodeError) as info:
        parse_time(value)
    assert info.value.reason in {"bad_time", "not_finite"}


@pytest.mark.parametrize(
    ("offset", "reason"),
    [
        (timedelta(seconds=121), "from_the_future"),
        (timedelta(days=365 * 70), "from_the_future"),
        (timedelta(days=-7, seconds=-1), "too_old"),
        (timedelta(days=-365 * 56), "too_old"),  # 1970
    ],
)
def test_far_future_and_past_fixes_are_refused_by_hygiene(offset: timedelta, reason: str) -> None:
    verdict = screen(_fix(NOW + offset, 60.17, 24.94), None, NOW, HygieneParams())
    assert (verdict.verdict, verdict.reason) == (Verdict.REJECT, reason)


def test_near_the_limits_is_kept() -> None:
    """A clock 2 minutes fast, or a fix buffered for almost a week: still applied."""
    params = HygieneParams()
    for offset in (timedelta(seconds=119), timedelta(days=-7, seconds=1)):
        assert screen(_fix(NOW + offset, 60.17, 24.94), None, NOW, params).verdict is (
            Verdict.APPLY
        )


@pytest.mark.parametrize(
    ("time_value", "reason"),
    [
        (EPOCH_S + 3600, "from_the_future"),
        ((EPOCH_S + 3600) * 1000, "from_the_future"),
        (EPOCH_S - 8 * 86_400, "too_old"),
        ((EPOCH_S - 8 * 86_400) * 1000, "too_old"),
        (0, "too_old"),
        (EPOCH_S * 1_000_000, "bad_time"),
    ],
)
def test_the_ingester_dead_letters_a_fix_out_of_time(
    tmp_path: Path, time_value: int, reason: str
) -> None:
    """Through the ingester: refused with the screen's (or the decoder's) reason, kept as a
    dead letter, nothing stored as a position."""
    sessions, _, engine = store_with_vehicle(tmp_path, "van-1")
    ingester = Ingester(sessions, clock=lambda: NOW)
    payload = json.dumps({"lat": 60.17, "lon": 24.94, "time": time_value}).encode()
    result = ingester.fleet_message("fleet/van-1/position", payload)
    assert (result.status, result.reason) == ("rejected", reason)
    with sessions() as session:
        assert session.scalars(select(DeadLetterRow.reason)).all() == [reason]
        assert session.scalar(select(PositionRow)) is None
    engine.dispose()

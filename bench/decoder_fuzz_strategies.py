"""Structured junk for every decoder (hypothesis strategies): the right fields with wrong
types, huge numbers, NaN and Infinity, deep nesting, odd unicode, missing and extra fields,
topics with odd segments. ``bench/fuzz_decoders.py`` draws from them for minutes,
``tests/telematics/test_fuzz_decoders.py`` briefly in CI.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

from bench.decoder_fuzz_targets import NOW

#: Strings that broke or could break parsers and databases.
ODD_STRINGS = (
    "",
    " ",
    "\x00",
    "\ud800",
    "\udfff",
    "\ufeff",
    "\u202e",
    "NaN",
    "nan",
    "Infinity",
    "-Infinity",
    "inf",
    "1e400",
    "-1e400",
    "1e-400",
    "0x10",
    "1_000",
    " 60.1 ",
    "60,1",
    "١٢",
    "\U0001d7d8",  # a mathematical digit zero
    "null",
    "true",
    "+",
    "#",
    "$SYS",
    "..",
    "a" * 300,
)
TEXT = st.one_of(
    st.text(max_size=20),
    st.sampled_from(ODD_STRINGS),
    st.text(st.characters(codec=None, categories=["Cs", "Cc", "Zs", "Mn"]), max_size=5),
)
HUGE_INTS = st.sampled_from([2**63, -(2**63) - 1, 10**30, 10**400, -(10**400)])
NUMBER = st.one_of(
    st.integers(),
    st.floats(),  # NaN and the infinities included: json.dumps writes NaN / Infinity literals
    HUGE_INTS,
    st.sampled_from([0, -0.0, 1e-320, 1.7976931348623157e308, 5e-324]),
)
JSONISH = st.recursive(
    st.none() | st.booleans() | NUMBER | TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=5),
    max_leaves=15,
)


JUNK = st.one_of(NUMBER, NUMBER.map(str), TEXT, JSONISH)


def _edgy(good: st.SearchStrategy[Any], *edges: Any) -> st.SearchStrategy[Any]:
    """Mostly ``good``, sometimes a value on or just past the edge of the valid range."""
    return st.one_of(good, good, good, st.sampled_from(edges)) if edges else good


LAT = _edgy(st.floats(-90, 90), 90, -90, 90.0000001, -90.0000001, 0, -0.0, "60.17")
LON = _edgy(st.floats(-180, 180), 180, -180, 180.0000001, -180.0000001, 0, "24.94")
#: Offsets from NOW: mostly within the hygiene window, sometimes far off.
_SECONDS = st.one_of(
    st.floats(-7 * 86_400, 600, allow_nan=False),
    st.floats(-7 * 86_400, 600, allow_nan=False),
    st.floats(-1e12, 1e12, allow_nan=False),
)
_OFFSETS = st.builds(
    timezone, st.timedeltas(timedelta(hours=-23, minutes=-59), timedelta(hours=23, minutes=59))
)


def _epoch(seconds: float) -> float:
    return NOW.timestamp() + seconds


def _iso(seconds: float, zone: timezone) -> str:
    return (NOW + timedelta(seconds=max(-1e10, min(1e10, seconds)))).astimezone(zone).isoformat()


GOOD_TIMES = st.one_of(
    _SECONDS.map(_epoch).map(round),
    _SECONDS.map(_epoch),
    _SECONDS.map(lambda s: round(_epoch(s) * 1000)),
    _SECONDS.map(lambda s: str(round(_epoch(s)))),
    st.builds(_iso, _SECONDS, _OFFSETS),
    st.builds(_iso, _SECONDS, st.just(UTC)).map(lambda s: s.replace("+00:00", "Z")),
)
ODD_TIMES = st.one_of(
    st.datetimes(timezones=st.none() | _OFFSETS).map(datetime.isoformat),
    st.datetimes().map(lambda d: d.isoformat() + "Z"),
    st.sampled_from(
        [
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-01:00",
            "9999-12-31T23:59:59.999999+00:00",
            "2026-06-10",
            "2026-06-10T10:00:00+24:00",
            "2026-02-30T10:00:00Z",
            "10:00",
            "yesterday",
            "2026-06-10T10:00:00ZZ",
            1e11,
            -1e11,
            1e11 + 1,
            253402300800,
            -62135596801,
        ]
    ),
    st.floats(),
    HUGE_INTS,
)


def time_values() -> st.SearchStrategy[Any]:
    """What a time field might hold: epoch seconds or ms, ISO strings, edges, junk."""
    return st.one_of(GOOD_TIMES, GOOD_TIMES, ODD_TIMES, JUNK)


def _gauge(low: float, high: float) -> st.SearchStrategy[Any]:
    """A reading in [low, high], or just outside it."""
    return _edgy(st.floats(low, high), low, high, low - 1, high + 0.001)


@st.composite
def _object(draw: st.DrawFn, fields: Mapping[str, st.SearchStrategy[Any]]) -> dict[Any, Any]:
    """A JSON object with the decoder's fields: all of them plausible (half the time), or each
    one plausible, junk (a wrong type, a huge number, NaN...) or missing; plus extra fields."""
    data: dict[Any, Any] = draw(st.dictionaries(TEXT, JSONISH, max_size=3))
    junky = draw(st.booleans())
    for key, good in fields.items():
        how = draw(st.sampled_from(["good", "good", "junk", "missing"])) if junky else "good"
        if how == "good":
            data[key] = draw(good)
        elif how == "junk":
            data[key] = draw(JUNK)
        else:
            data.pop(key, None)
    return data


def _encode(value: Any, ascii_only: bool) -> bytes:
    text = json.dumps(value, allow_nan=True, ensure_ascii=ascii_only, default=str)
    # Not ASCII-only: lone surrogates go out as invalid UTF-8, as a broken client would send.
    return text.encode("utf-8", "surrogatepass")


@st.composite
def _payload(draw: st.DrawFn, value: st.SearchStrategy[Any]) -> bytes:
    """The value's JSON, or a mangled form of it: truncated, wrapped, nested deep, prefixed."""
    data = _encode(draw(value), draw(st.booleans()))
    how = draw(
        st.sampled_from(["plain"] * 10 + ["truncate", "wrap", "deep", "bom", "tail", "digits"])
    )
    if how == "truncate":
        return data[: draw(st.integers(0, len(data)))]
    if how == "wrap":
        return b"[" + data + b"]"
    if how == "deep":
        depth = draw(st.integers(1, 20_000))
        return b'{"lat":' + b"[" * depth + data + b"]" * depth + b"}"
    if how == "bom":
        return b"\xef\xbb\xbf" + data
    if how == "tail":
        return data + draw(st.binary(min_size=1, max_size=10))
    if how == "digits" and data.startswith(b"{"):
        # More digits than Python converts to an int (4,300), in a field JSON parses first.
        key = draw(st.sampled_from([b"lat", b"time", b"tst", b"speed", b"x"]))
        digits = b"9" * draw(st.integers(300, 5000))
        return b'{"' + key + b'": ' + digits + (b", " if len(data) > 2 else b"") + data[1:]
    return data


SEGMENTS = st.one_of(TEXT, st.sampled_from(["fleet", "owntracks", "position", "events", "van-1"]))


@st.composite
def topics(draw: st.DrawFn, good: str = "fleet/van-1/position") -> str:
    """The expected topic (mostly), or one with odd, missing or extra segments."""
    if draw(st.integers(0, 3)) > 0:
        return good
    parts = good.split("/")
    how = draw(st.sampled_from(["replace", "drop", "add", "random"]))
    if how == "replace":
        parts[draw(st.integers(0, len(parts) - 1))] = draw(SEGMENTS)
    elif how == "drop":
        del parts[draw(st.integers(0, len(parts) - 1))]
    elif how == "add":
        parts.insert(draw(st.integers(0, len(parts))), draw(SEGMENTS))
    else:
        parts = draw(st.lists(SEGMENTS, max_size=6))
    return "/".join(parts)


def fleet_payloads() -> st.SearchStrategy[tuple[str, bytes]]:
    """(topic, payload) for fleet/{vehicle}/position."""
    fields = {
        "lat": LAT,
        "lon": LON,
        "time": time_values(),
        "speed_mps": _gauge(0, 150),
        "heading_deg": _gauge(0, 360),
        "accuracy_m": _gauge(0, 500),
        "altitude_m": _gauge(-500, 9000),
        "battery": _gauge(0, 1),
    }
    return st.tuples(topics(), _payload(_object(fields)))


def owntracks_payloads() -> st.SearchStrategy[tuple[str, bytes]]:
    """(topic, payload) for owntracks/{user}/{device}."""
    fields = {
        "_type": _edgy(st.just("location"), "transition", "waypoint", "lwt", None),
        "lat": LAT,
        "lon": LON,
        "tst": time_values(),
        "vel": _gauge(0, 540),
        "cog": _gauge(0, 360),
        "acc": _gauge(0, 500),
        "alt": _gauge(-500, 9000),
        "batt": _gauge(0, 100),
        "tid": TEXT,
    }
    return st.tuples(topics("owntracks/anna/phone"), _payload(_object(fields)))


def osmand_fields() -> st.SearchStrategy[dict[str, str]]:
    """Traccar Client's query fields, as the HTTP layer hands them over (all text)."""
    fields = {
        "id": _edgy(st.just("dev-1"), "dev-2", "", "\x00", "\ud800"),
        "lat": LAT.map(str),
        "lon": LON.map(str),
        "timestamp": time_values().map(str),
        "speed": _gauge(0, 290).map(str),
        "bearing": _gauge(0, 360).map(str),
        "accuracy": _gauge(0, 500).map(str),
        "altitude": _gauge(-500, 9000).map(str),
        "batt": _gauge(0, 100).map(str),
    }
    junk = st.one_of(NUMBER.map(str), TEXT)

    @st.composite
    def query(draw: st.DrawFn) -> dict[str, str]:
        data: dict[str, str] = draw(st.dictionaries(TEXT, TEXT, max_size=3))
        junky = draw(st.booleans())
        for key, good in fields.items():
            how = draw(st.sampled_from(["good", "good", "junk", "missing"])) if junky else "good"
            if how == "good":
                data[key] = draw(good)
            elif how == "junk":
                data[key] = draw(junk)
            else:
                data.pop(key, None)
        if draw(st.booleans()) and "id" in data:
            data["deviceid"] = data.pop("id")
        return data

    return query()


def osmand_payloads() -> st.SearchStrategy[bytes]:
    """The JSON body newer Traccar Client apps POST."""
    coords = _object(
        {
            "latitude": LAT,
            "longitude": LON,
            "speed": _edgy(_gauge(0, 150), -1),
            "heading": _edgy(_gauge(0, 360), -1),
            "accuracy": _gauge(0, 500),
            "altitude": _gauge(-500, 9000),
        }
    )
    location = _object(
        {
            "timestamp": time_values(),
            "coords": coords,
            "battery": _object({"level": _edgy(_gauge(0, 1), -1)}),
        }
    )
    body = _object(
        {"device_id": _edgy(st.just("dev-1"), "dev-2", 1, "\ud800"), "location": location}
    )
    return _payload(body)


def gpsd_payloads() -> st.SearchStrategy[tuple[str, bytes]]:
    """(vehicle id, TPV report)."""
    fields = {
        "class": _edgy(st.just("TPV"), "SKY", "VERSION", None),
        "mode": _edgy(st.integers(2, 3), 0, 1, True, "3"),
        "time": time_values(),
        "lat": LAT,
        "lon": LON,
        "eph": _gauge(0, 500),
        "epx": _edgy(_gauge(0, 500), 1e308),
        "epy": _edgy(_gauge(0, 500), 1e308),
        "speed": _gauge(0, 150),
        "track": _gauge(0, 360),
        "alt": _gauge(-500, 9000),
        "altHAE": _gauge(-500, 9000),
    }
    vehicle = _edgy(st.just("van-1"), "van-2", "", "\x00", "\ud800")
    return st.tuples(vehicle, _payload(_object(fields)))


def event_payloads() -> st.SearchStrategy[tuple[str, bytes]]:
    """(topic, payload) for fleet/{vehicle}/events: a driver's delivered / failed / skipped."""
    fields = {
        "order_id": _edgy(st.just("o1"), "o2", "", "\x00", "\ud800"),
        "kind": st.sampled_from(["delivered", "failed", "skipped"]),
        "reason": TEXT,
        "at": time_values(),
    }
    return st.tuples(topics("fleet/van-1/events"), _payload(_object(fields)))


#: Decoder name -> strategy of its fuzz cases.
STRATEGIES: dict[str, st.SearchStrategy[Any]] = {
    "fleet_json": fleet_payloads(),
    "owntracks": owntracks_payloads(),
    "osmand_query": osmand_fields(),
    "osmand_json": osmand_payloads(),
    "gpsd_tpv": gpsd_payloads(),
    "parse_time": time_values(),
}

"""A long fuzz of every decoder in :mod:`telematics.decoders`: nothing but DecodeError.

    python -m bench.fuzz_decoders [--seconds S] [--engine atheris|hypothesis] [--crashes DIR]

``atheris`` (the ``fuzz`` extra; libFuzzer, coverage-guided) mutates bytes: the first byte
picks the decoder, the rest is its payload, seeded with the golden payloads and a dictionary
of field names and odd literals (NaN, Infinity, 1e400, lone surrogates). ``hypothesis`` (the
default when atheris is missing) draws structured junk from the strategies below, the same
ones ``tests/telematics/test_fuzz_decoders.py`` runs briefly in CI. Any other exception is a
crash: counted, its input kept under ``--crashes``, and the run goes on. Last line: one JSON
object ``{"decoders", "examples", "crashes", "seconds", ...}``; exit 1 if anything crashed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from domain.position import Position
from telematics import decoders
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
GOLDEN = Path(__file__).resolve().parents[1] / "tests" / "telematics" / "golden"


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


# Strategies: structured junk ----------------------------------------------------------------
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


# The run ------------------------------------------------------------------------------------
@dataclass
class Tally:
    examples: int = 0
    accepted: int = 0
    crashes: int = 0
    kinds: dict[str, str] | None = None

    def crash(self, crashes_dir: Path, name: str, case: Any, exc: BaseException) -> None:
        """Count it and keep the first input of each kind (exception type and place)."""
        self.crashes += 1
        where = traceback.extract_tb(exc.__traceback__)[-1]
        kind = f"{name}:{type(exc).__name__}:{Path(where.filename).name}:{where.lineno}"
        self.kinds = self.kinds or {}
        if kind in self.kinds:
            return
        crashes_dir.mkdir(parents=True, exist_ok=True)
        path = crashes_dir / f"crash-{len(self.kinds)}.txt"
        path.write_text(f"{kind}\n{exc!r}\n{case!r}\n", encoding="utf-8", errors="replace")
        self.kinds[kind] = str(path)
        print(f"CRASH {kind}: {exc!r} (input in {path})", file=sys.stderr, flush=True)


def _fuzz_round(name: str, tally: Tally, crashes_dir: Path) -> None:
    """1,000 fresh random examples for one decoder."""

    @settings(
        max_examples=1000,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(STRATEGIES[name])
    def fuzz(case: Any) -> None:
        tally.examples += 1
        try:
            tally.accepted += run_case(name, case)
        except Exception as exc:
            tally.crash(crashes_dir, name, case, exc)

    fuzz()


def _hypothesis(seconds: float, tally: Tally, crashes_dir: Path) -> None:
    """Round-robin over the decoders until the time is up; a crash is recorded and the
    rounds go on."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for name in sorted(STRATEGIES):
            _fuzz_round(name, tally, crashes_dir)
            if time.monotonic() >= deadline:
                break


def _seeds(corpus: Path) -> None:
    """The golden payloads, one per decoder, as starting inputs (byte 0 picks the decoder)."""
    corpus.mkdir(parents=True, exist_ok=True)
    names = sorted(TARGETS)
    for path in sorted(GOLDEN.glob("*.json")):
        sample = json.loads(path.read_text())
        kind = {"fleet": "fleet_json", "gpsd": "gpsd_tpv", "osmand": "osmand_query"}.get(
            sample["decoder"], sample["decoder"]
        )
        body = sample.get("payload", sample.get("query", "")).encode()
        (corpus / path.stem).write_bytes(bytes([names.index(kind)]) + body)
    (corpus / "time").write_bytes(bytes([names.index("parse_time")]) + b'"2026-06-10T10:00Z"')


def _dictionary(path: Path) -> None:
    """libFuzzer tokens: field names and the literals that make parsers stumble."""
    tokens = {
        *(f'"{k}"' for k in ("lat", "lon", "time", "tst", "_type", "location", "class", "TPV")),
        *(f'"{k}"' for k in ("coords", "latitude", "longitude", "device_id", "timestamp")),
        *("NaN", "Infinity", "-Infinity", "1e400", "1e308", "-0", "true", "null", "[]", "{}"),
        *(r'"\ud800"', r'"\u0000"', '"9999-12-31T23:59:59-01:00"', '"0001-01-01T00:00:00+01:00"'),
        *("lat=", "lon=", "id=dev-1", "timestamp=", "&"),
    }
    lines = [json.dumps(t) for t in sorted(tokens)]
    path.write_text("\n".join(lines) + "\n")


def _atheris(seconds: float, tally: Tally, crashes_dir: Path, work: Path) -> None:
    """libFuzzer over the decoders, instrumented for coverage; stops itself when the time is
    up (libFuzzer would exit the process without returning)."""
    atheris: Any = importlib.import_module("atheris")
    for name in dir(decoders):
        function = getattr(decoders, name)
        ours = getattr(function, "__module__", "") == decoders.__name__
        if ours and hasattr(function, "__code__"):
            atheris.instrument_func(function)
    names = sorted(TARGETS)
    corpus, dictionary = work / "corpus", work / "tokens.dict"
    _seeds(corpus)
    _dictionary(dictionary)
    started = time.monotonic()
    deadline = started + seconds

    def one(data: bytes) -> None:
        if tally.examples % 256 == 0 and time.monotonic() >= deadline:
            _report("atheris", tally, time.monotonic() - started)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(1 if tally.crashes else 0)
        tally.examples += 1
        if not data:
            return
        name = names[data[0] % len(names)]
        case: Any = data[1:]
        if name == "parse_time":
            try:
                case = json.loads(case)
            except (ValueError, RecursionError):
                case = case.decode("utf-8", "replace")
        try:
            tally.accepted += run_case(name, case)
        except Exception as exc:
            tally.crash(crashes_dir, name, case, exc)

    argv = [sys.argv[0], f"-dict={dictionary}", "-max_len=4096", "-print_final_stats=1"]
    atheris.Setup([*argv, str(corpus)], one)
    atheris.Fuzz()


def _report(engine: str, tally: Tally, elapsed: float) -> None:
    print(
        json.dumps(
            {
                "decoders": len(TARGETS),
                "examples": tally.examples,
                "crashes": tally.crashes,
                "seconds": round(elapsed, 1),
                "engine": engine,
                "accepted": tally.accepted,
                "crash_kinds": sorted(tally.kinds or {}),
            }
        ),
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--engine", choices=["atheris", "hypothesis", "auto"], default="auto")
    parser.add_argument("--crashes", type=Path, default=Path("var/fuzz/crashes"))
    parser.add_argument("--work", type=Path, default=Path("var/fuzz"), help="atheris corpus")
    args = parser.parse_args(argv)
    engine = args.engine
    if engine == "auto":
        try:
            importlib.import_module("atheris")
            engine = "atheris"
        except ImportError:
            engine = "hypothesis"
    tally = Tally()
    started = time.monotonic()
    if engine == "atheris":
        _atheris(args.seconds, tally, args.crashes, args.work)  # exits by itself
    _hypothesis(args.seconds, tally, args.crashes)
    _report(engine, tally, time.monotonic() - started)
    return 1 if tally.crashes else 0


if __name__ == "__main__":
    raise SystemExit(main())

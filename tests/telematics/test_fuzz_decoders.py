"""Fuzzing every decoder and every ingester entry point (hypothesis).

Random bytes and structured junk: the right fields with wrong types, huge numbers, NaN and
Infinity literals, deep nesting, unicode (lone surrogates and NUL included), missing and extra
fields, topics with odd segments. A decoder returns a sane Position or raises
:class:`DecodeError`, nothing else; an ingester entry point never raises, and each refusal is a
dead letter with its reason. ``bench/fuzz_decoders.py`` runs the same strategies for minutes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

import telematics.decoders as decoders
from bench.decoder_fuzz_strategies import (
    STRATEGIES,
    event_payloads,
    fleet_payloads,
    gpsd_payloads,
    osmand_fields,
    osmand_payloads,
    owntracks_payloads,
    topics,
)
from bench.decoder_fuzz_targets import NOW, REGISTRATIONS, TARGETS, run_case
from notify.outbox import Outbox
from store.db import transaction
from store.schema import DeadLetterRow, DeviceRow, OrderRow, VehicleRow
from telematics.ingest import Ingester, IngestResult
from tests.telematics.conftest import put_on_route, store_with_vehicle

pytestmark = pytest.mark.security

#: Per test: the decoders take microseconds, the ingester commits to SQLite every message.
DECODER_EXAMPLES = 300
INGEST_EXAMPLES = 100
FUZZ = settings(
    max_examples=DECODER_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
INGEST = settings(FUZZ, max_examples=INGEST_EXAMPLES)


# Decoders ---------------------------------------------------------------------------------
def test_targets_cover_every_decoder() -> None:
    """A new decoder in telematics.decoders must join the fuzz targets."""
    public = {n for n in dir(decoders) if n.startswith("decode_")} | {"parse_time"}
    assert public == {target.decoder for target in TARGETS.values()}
    assert set(STRATEGIES) == set(TARGETS)


@FUZZ
@given(st.sampled_from(sorted(TARGETS)), st.binary(max_size=300))
def test_random_bytes_to_every_decoder(name: str, payload: bytes) -> None:
    """Random bytes: a sane Position or a DecodeError (the query decoder parses them as a
    query string, parse_time takes them as text)."""
    run_case(name, payload.decode("utf-8", "replace") if name == "parse_time" else payload)


@FUZZ
@given(st.data())
def test_structured_junk_to_every_decoder(data: st.DataObject) -> None:
    """Each decoder's own fields with wrong types, huge numbers, NaN / Infinity literals, deep
    nesting, odd unicode, missing and extra fields, odd topics: a sane Position (in range,
    finite, UTC) or a DecodeError, nothing else."""
    name = data.draw(st.sampled_from(sorted(STRATEGIES)), label="decoder")
    run_case(name, data.draw(STRATEGIES[name], label="case"))


@FUZZ
@given(STRATEGIES["parse_time"])
def test_any_time_value(value: object) -> None:
    """Epoch seconds and milliseconds near and far, ISO strings at the ends of datetime's
    range with offsets, NaN, huge integers, junk: an aware UTC datetime or a DecodeError."""
    run_case("parse_time", value)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_the_junk_reaches_a_position(name: str) -> None:
    """The strategies are not all junk: each finds an accepted fix, so the fuzz goes past the
    first refusal into every range check."""
    found = find(
        STRATEGIES[name],
        lambda case: run_case(name, case),
        settings=settings(max_examples=2000, database=None, phases=[Phase.generate]),
    )
    assert found is not None


# Ingester entry points ---------------------------------------------------------------------
@dataclass
class Fuzzed:
    ingester: Ingester
    sessions: sessionmaker[Session]


def _store(tmp: Path) -> tuple[sessionmaker[Session], Engine]:
    """A real SQLite store: vehicle van-1 with an OwnTracks and an OsmAnd device, an order
    o1 on its route whose customer has an e-mail (so driver events reach the notification
    outbox)."""
    sessions, org_id, engine = store_with_vehicle(tmp, "van-1")
    with transaction(sessions) as session:
        vehicle = session.scalar(select(VehicleRow.id))
        assert vehicle is not None
        (user, device), _ = next(iter(REGISTRATIONS.items()))
        for protocol, external in (("owntracks", f"{user}/{device}"), ("osmand", "dev-1")):
            session.add(
                DeviceRow(
                    organisation_id=org_id,
                    vehicle_id=vehicle,
                    mqtt_username=f"{protocol}-1",
                    password_hash="x",
                    protocol=protocol,
                    external_device_id=external,
                )
            )
        session.add(
            OrderRow(
                organisation_id=org_id,
                external_id="o1",
                lat=60.17,
                lon=24.95,
                tracking_token="fuzz-token",
                contact_email="anna@example.com",
            )
        )
        put_on_route(session, "van-1", ["o1"])
    return sessions, engine


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzed]:
    """One store for all the examples of the module (hypothesis reruns a test, not its
    function-scoped fixtures)."""
    sessions, engine = _store(Path(tmp_path_factory.mktemp("fuzz-ingest")))
    yield Fuzzed(Ingester(sessions, outbox=Outbox(), clock=lambda: NOW), sessions)
    engine.dispose()


def test_good_messages_on_every_entry_point_are_applied(tmp_path: Path) -> None:
    """The fuzzed store is a working one (devices registered, the order known): good
    messages go all the way, so the fuzz is not stuck at "unknown device"."""
    sessions, engine = _store(tmp_path)
    ingester = Ingester(sessions, outbox=Outbox(), clock=lambda: NOW)

    def at(k: int) -> str:
        return (NOW - timedelta(seconds=60 - 10 * k)).isoformat()

    def stamp(k: int) -> int:
        return round((NOW - timedelta(seconds=60 - 10 * k)).timestamp())

    fix = '"lat": 60.17, "lon": 24.94'
    results = [
        ingester.fleet_message("fleet/van-1/position", f'{{{fix}, "time": "{at(0)}"}}'.encode()),
        ingester.owntracks_message(
            "owntracks/anna/phone",
            f'{{"_type": "location", {fix}, "tst": {stamp(1)}}}'.encode(),
        ),
        ingester.osmand_query({"id": "dev-1", "lat": "60.17", "lon": "24.94", "timestamp": at(2)}),
        ingester.osmand_json(
            b'{"device_id": "dev-1", "location": {"timestamp": "%s", "coords": '
            b'{"latitude": 60.17, "longitude": 24.94}}}' % at(3).encode()
        ),
        ingester.gpsd_message(
            "fleet/van-1/gpsd", f'{{"class": "TPV", {fix}, "time": "{at(4)}"}}'.encode()
        ),
        ingester.driver_event_message(
            "fleet/van-1/events", b'{"order_id": "o1", "kind": "delivered"}'
        ),
    ]
    engine.dispose()
    assert [r.status for r in results] == ["applied"] * 6, results


def _dead_letters(sessions: sessionmaker[Session]) -> tuple[int, str | None]:
    with sessions() as session:
        count = session.scalar(select(func.count()).select_from(DeadLetterRow)) or 0
        last = session.scalar(select(DeadLetterRow.reason).order_by(DeadLetterRow.id.desc()))
    return count, last


def _kept_or_dead_lettered(fuzzed: Fuzzed, call: Callable[[], IngestResult]) -> None:
    """The call returns (any exception fails the test); a refusal is one more dead letter,
    with the same reason, and anything else none."""
    before, _ = _dead_letters(fuzzed.sessions)
    result = call()
    after, last = _dead_letters(fuzzed.sessions)
    assert result.status in {"applied", "history", "rejected"}
    if result.status == "rejected":
        assert result.reason
        assert (after, last) == (before + 1, result.reason)
    else:
        assert after == before


@INGEST
@given(fleet_payloads())
def test_ingest_fleet_message(fuzzed: Fuzzed, case: tuple[str, bytes]) -> None:
    _kept_or_dead_lettered(fuzzed, lambda: fuzzed.ingester.fleet_message(*case))


@INGEST
@given(owntracks_payloads())
def test_ingest_owntracks_message(fuzzed: Fuzzed, case: tuple[str, bytes]) -> None:
    _kept_or_dead_lettered(fuzzed, lambda: fuzzed.ingester.owntracks_message(*case))


@INGEST
@given(osmand_fields())
def test_ingest_osmand_query(fuzzed: Fuzzed, fields: dict[str, str]) -> None:
    _kept_or_dead_lettered(fuzzed, lambda: fuzzed.ingester.osmand_query(fields))


@INGEST
@given(osmand_payloads())
def test_ingest_osmand_json(fuzzed: Fuzzed, payload: bytes) -> None:
    _kept_or_dead_lettered(fuzzed, lambda: fuzzed.ingester.osmand_json(payload))


@INGEST
@given(gpsd_payloads())
def test_ingest_gpsd_message(fuzzed: Fuzzed, case: tuple[str, bytes]) -> None:
    vehicle, payload = case
    topic = f"fleet/{vehicle}/gpsd"
    _kept_or_dead_lettered(fuzzed, lambda: fuzzed.ingester.gpsd_message(topic, payload))


@INGEST
@given(event_payloads())
def test_ingest_driver_event_message(fuzzed: Fuzzed, case: tuple[str, bytes]) -> None:
    """Driver events go further than fixes: an order, an event row, the notification outbox."""
    _kept_or_dead_lettered(fuzzed, lambda: fuzzed.ingester.driver_event_message(*case))


@INGEST
@given(topics(), st.binary(max_size=200), st.sampled_from(["too_large", "x" * 40]), st.text())
def test_ingest_reject(
    fuzzed: Fuzzed, topic: str, payload: bytes, reason: str, detail: str
) -> None:
    """A refusal before decoding (too large) is kept whatever its topic and detail hold."""
    _kept_or_dead_lettered(
        fuzzed, lambda: fuzzed.ingester.reject("mqtt", topic, payload, reason, detail)
    )

"""An MQTT payload over the size limit is refused before decoding, on every topic, and kept
as a dead letter with reason ``too_large`` (bounded: its first 4 KiB)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from api.routes.telematics import MAX_BODY_BYTES as HTTP_BODY_BYTES
from store.schema import DeadLetterRow, PositionRow
from telematics.ingest import Ingester
from telematics.mqtt import MAX_PAYLOAD_BYTES, BrokerAddress, MqttIngester
from tests.telematics.conftest import store_with_vehicle

pytestmark = pytest.mark.security

NOW = datetime(2026, 6, 10, 10, 0, tzinfo=UTC)


@pytest.fixture
def handler(tmp_path: Path) -> Iterator[tuple[MqttIngester, sessionmaker[Session]]]:
    sessions, _, engine = store_with_vehicle(tmp_path, "van-1")
    ingester = Ingester(sessions, clock=lambda: NOW)
    yield MqttIngester(ingester, BrokerAddress("127.0.0.1", 1)), sessions
    engine.dispose()


def _fix(seconds_ago: float, size: int = 0) -> bytes:
    """A good fix on van-1, padded with JSON whitespace to ``size`` bytes if given."""
    at = (NOW - timedelta(seconds=seconds_ago)).isoformat()
    data = json.dumps({"lat": 60.17, "lon": 24.94, "time": at}).encode()
    return data + b" " * max(0, size - len(data))


def test_http_and_mqtt_take_the_same_largest_payload() -> None:
    """What a device may POST it may publish, and the other way round."""
    assert MAX_PAYLOAD_BYTES == HTTP_BODY_BYTES


@pytest.mark.parametrize(
    "topic",
    [
        "fleet/van-1/position",
        "fleet/van-1/gpsd",
        "fleet/van-1/events",
        "owntracks/anna/phone",
        "fleet/van-1/unknown/extra",
    ],
)
def test_one_byte_over_the_limit_is_refused_on_every_topic(
    handler: tuple[MqttIngester, sessionmaker[Session]], topic: str
) -> None:
    """MAX_PAYLOAD_BYTES + 1 bytes: refused as too_large whatever the topic, without being
    decoded, and dead-lettered with the size and only the first 4 KiB of the payload."""
    mqtt_ingester, sessions = handler
    payload = _fix(0, MAX_PAYLOAD_BYTES + 1)
    result = mqtt_ingester.handle(topic, payload)
    assert (result.status, result.reason) == ("rejected", "too_large")
    with sessions() as session:
        letter = session.scalars(select(DeadLetterRow)).one()
        assert (letter.source, letter.topic, letter.reason) == ("mqtt", topic, "too_large")
        assert str(MAX_PAYLOAD_BYTES + 1) in letter.detail
        assert base64.b64decode(letter.payload) == payload[:4096]
        assert session.scalar(select(PositionRow)) is None
    assert mqtt_ingester.ingester.counts["too_large"] == 1


def test_exactly_the_limit_is_decoded(
    handler: tuple[MqttIngester, sessionmaker[Session]],
) -> None:
    """A payload of exactly MAX_PAYLOAD_BYTES is an ordinary message."""
    mqtt_ingester, sessions = handler
    payload = _fix(0, MAX_PAYLOAD_BYTES)
    assert len(payload) == MAX_PAYLOAD_BYTES
    assert mqtt_ingester.handle("fleet/van-1/position", payload).status == "applied"
    with sessions() as session:
        assert session.scalar(select(DeadLetterRow)) is None


def test_a_huge_payload_is_refused_without_decoding(
    handler: tuple[MqttIngester, sessionmaker[Session]],
) -> None:
    """8 MiB of deep JSON nesting: refused on size alone (no parser ever sees it)."""
    mqtt_ingester, sessions = handler
    payload = b"[" * (8 * 1024 * 1024)
    result = mqtt_ingester.handle("fleet/van-1/position", payload)
    assert result.reason == "too_large"
    with sessions() as session:
        assert len(session.scalars(select(DeadLetterRow.payload)).one()) < 6000


def _message(mid: int, topic: str, payload: bytes) -> mqtt.MQTTMessage:
    message = mqtt.MQTTMessage(mid, topic.encode())
    message.payload = payload
    message.qos = 1
    return message


def test_an_oversized_message_does_not_poison_its_batch(
    handler: tuple[MqttIngester, sessionmaker[Session]],
) -> None:
    """In a batch, the oversized message is dead-lettered and the fixes around it are
    stored: all three are processed (acknowledged), none is left for redelivery."""
    mqtt_ingester, sessions = handler
    batch = [
        _message(1, "fleet/van-1/position", _fix(20)),
        _message(2, "fleet/van-1/position", _fix(10, MAX_PAYLOAD_BYTES + 100)),
        _message(3, "fleet/van-1/position", _fix(5)),
    ]
    mqtt_ingester._process(batch)
    assert mqtt_ingester.processed == 3
    with sessions() as session:
        assert session.scalars(select(DeadLetterRow.reason)).all() == ["too_large"]
        assert len(session.scalars(select(PositionRow)).all()) == 2

"""Messages handed to the MQTT handler directly (no broker): routing by topic, driver events,
size limits."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from store.db import transaction
from store.schema import DeadLetterRow, EventRow, OrderRow
from telematics.ingest import Ingester
from telematics.mqtt import BrokerAddress, MqttIngester
from tests.telematics.conftest import put_on_route, store_with_vehicle


@pytest.fixture
def handler(tmp_path: Path) -> Iterator[tuple[MqttIngester, sessionmaker[Session]]]:
    sessions, org_id, engine = store_with_vehicle(tmp_path, "van-1")
    with transaction(sessions) as session:
        session.add(
            OrderRow(
                organisation_id=org_id, external_id="o1", lat=60.17, lon=24.95, tracking_token="x"
            )
        )
        put_on_route(session, "van-1", ["o1"])
    yield MqttIngester(Ingester(sessions), BrokerAddress("127.0.0.1", 1)), sessions
    engine.dispose()


def test_driver_event_over_mqtt_overrides_status(
    handler: tuple[MqttIngester, sessionmaker[Session]],
) -> None:
    """fleet/{id}/events: 'failed' with a reason is stored and sets the order's status."""
    mqtt_ingester, sessions = handler
    payload = json.dumps({"order_id": "o1", "kind": "failed", "reason": "nobody home"}).encode()
    assert mqtt_ingester.handle("fleet/van-1/events", payload).status == "applied"
    with sessions() as session:
        event = session.scalar(select(EventRow))
        assert event is not None
        assert (event.kind, event.data["reason"]) == ("failed", "nobody home")
        assert session.scalar(select(OrderRow.status)) == "failed"


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("fleet/van-1/events", b'{"order_id": "o1", "kind": "lost"}', "bad_field"),
        ("fleet/van-1/events", b'{"order_id": "nope", "kind": "delivered"}', "unknown_order"),
        ("fleet/van-9/events", b'{"order_id": "o1", "kind": "delivered"}', "unknown_vehicle"),
        ("fleet/van-1/position", b"x" * 20_000, "too_large"),
    ],
)
def test_refused_messages_are_dead_lettered(
    handler: tuple[MqttIngester, sessionmaker[Session]], topic: str, payload: bytes, reason: str
) -> None:
    """Bad events and oversized payloads are refused with their reason, and kept."""
    mqtt_ingester, sessions = handler
    result = mqtt_ingester.handle(topic, payload)
    assert (result.status, result.reason) == ("rejected", reason)
    with sessions() as session:
        assert session.scalar(select(DeadLetterRow.reason)) == reason

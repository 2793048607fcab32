"""Issue 18: a flood that the ingester cannot keep up with. The private broker's queue is
sized by memory (nothing dropped by a message count), and the ingester sheds by its stated
rule (telematics/shedding.py): nothing is lost that the rule does not say may be coalesced,
every driver event is taken, each van's newest fix is stored, and the coalesced ones are
counted."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from store.db import make_engine, session_factory
from telematics.broker import BrokerUnavailableError, start_mosquitto
from telematics.ingest import Ingester, IngestResult
from telematics.mqtt import MqttIngester
from tests.conftest import require_servers
from tests.faults.fix_streams import fix_message
from tests.faults.service_day import DEPOT, new_store, sqlite_url
from tests.faults.store_reads import stored_fixes

pytestmark = [pytest.mark.faults, pytest.mark.integration]

VEHICLES = tuple(f"van-{k}" for k in range(1, 11))
FIXES_PER_VAN = 300
#: Seconds each message costs the slowed ingester: 200 messages a second at most.
SLOW_S = 0.005


class SlowIngester(MqttIngester):
    """The real MQTT ingester with a store that takes 5 ms a message."""

    def handle(self, topic: str, payload: bytes) -> IngestResult:
        time.sleep(SLOW_S)
        return super().handle(topic, payload)


def test_a_flood_is_shed_by_the_rule_and_nothing_else_is_lost(tmp_path: Path) -> None:
    try:
        broker = start_mosquitto(tmp_path / "broker")
    except BrokerUnavailableError as exc:
        if require_servers():
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    url = sqlite_url(tmp_path)
    new_store(url, VEHICLES)
    engine = make_engine(url)
    ingester = SlowIngester(
        Ingester(session_factory(engine)),
        broker.address,
        client_id=f"slow-{uuid.uuid4().hex[:6]}",
        shed_backlog=200,
        shed_after_s=1.0,
    )
    publisher = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    try:
        ingester.start()
        assert ingester.connected.wait(10)
        time.sleep(0.3)  # subscribed
        publisher.connect(broker.address.host, broker.address.port)
        publisher.loop_start()
        t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
        newest: dict[str, float] = {}
        events = 0
        infos = []
        # 3,000 fixes and 30 driver events as fast as the publisher can: 15x what the
        # ingester stores per second.
        for k in range(FIXES_PER_VAN):
            for i, vehicle in enumerate(VEHICLES):
                at = t0 + timedelta(seconds=k)
                message = fix_message(vehicle, at, DEPOT[0] + k * 1e-5, DEPOT[1] + i * 1e-3)
                infos.append(publisher.publish(message.topic, message.payload, qos=1))
                newest[vehicle] = at.timestamp()
            if k % 100 == 0:
                for vehicle in VEHICLES:
                    body: dict[str, Any] = {"order_id": f"no-order-{k}", "kind": "delivered"}
                    topic = f"fleet/{vehicle}/events"
                    infos.append(publisher.publish(topic, json.dumps(body).encode(), qos=1))
                    events += 1
        for info in infos:
            info.wait_for_publish(30)
        sent = len(infos)
        deadline = time.monotonic() + 120
        while ingester.processed + ingester.coalesced < sent and time.monotonic() < deadline:
            time.sleep(0.1)
        counts = dict(ingester.ingester.counts)
    finally:
        publisher.loop_stop()
        publisher.disconnect()
        ingester.stop()
        broker.stop()
        engine.dispose()
    # Nothing lost outside the rule: every message was stored or coalesced, once.
    assert ingester.processed + ingester.coalesced == sent, (ingester.processed, ingester.coalesced)
    assert ingester.coalesced > 0, "the flood never overloaded the ingester"
    # Every driver event was taken (refused here: the orders do not exist; never coalesced).
    assert counts.get("unknown_order", 0) == events
    # Each van's newest fix is stored: its place is where it really was last.
    stored = stored_fixes(url)
    for vehicle, at in newest.items():
        assert stored[(vehicle, at)] == 1, vehicle
    assert sum(stored.values()) == ingester.processed - events

"""MQTT push against the real Mosquitto at 127.0.0.1:1883: the update arrives on the customer's
topic, QoS 1 and not retained; a lost connection is "retry"."""

from __future__ import annotations

import json
import queue
import socket
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from notify.channels.push import MqttPushChannel, connect_push_client
from notify.settings import Channel
from telematics.mqtt import BrokerAddress
from tests.notify.test_channels import outgoing

pytestmark = pytest.mark.integration


@pytest.fixture
def publisher(broker: BrokerAddress) -> Iterator[mqtt.Client]:
    """A connected push client, disconnected after the test."""
    client = connect_push_client(broker, timeout_s=5)
    yield client
    client.disconnect()
    client.loop_stop()


def subscribe(broker: BrokerAddress, topic: str) -> tuple[mqtt.Client, queue.Queue[Any]]:
    """An app's client subscribed (QoS 1) to ``topic``; messages go to the queue."""
    received: queue.Queue[Any] = queue.Queue()
    subscribed: queue.Queue[bool] = queue.Queue()
    app = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"app-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5
    )
    app.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
    app.on_subscribe = lambda *_: subscribed.put(True)
    app.on_message = lambda _c, _u, message: received.put(message)
    app.connect(broker.host, broker.port)
    app.loop_start()
    assert subscribed.get(timeout=5)
    return app, received


def test_push_arrives_on_the_customer_topic(broker: BrokerAddress, publisher: mqtt.Client) -> None:
    """The app subscribed to customers/{token}/updates gets the push JSON with the key."""
    token = f"tok{uuid.uuid4().hex[:12]}"
    app, received = subscribe(broker, f"customers/{token}/updates")
    try:
        message = outgoing(Channel.PUSH, push_token=token)
        result = MqttPushChannel(publisher, timeout_s=5).send(message)
        assert result.status == "sent", result.detail
        got = received.get(timeout=5)
    finally:
        app.disconnect()
        app.loop_stop()
    assert got.topic == f"customers/{token}/updates"
    assert got.qos == 1
    assert not got.retain
    body = json.loads(got.payload)
    assert body == {**message.push, "idempotency_key": "o1:eta_changed:3:push"}
    assert body["url"] == "https://lm.to/k3F9xQ"


def test_push_is_not_retained(broker: BrokerAddress, publisher: mqtt.Client) -> None:
    """An app subscribing after the update does not get it (nothing retained on the topic)."""
    token = f"tok{uuid.uuid4().hex[:12]}"
    assert MqttPushChannel(publisher).send(outgoing(Channel.PUSH, push_token=token)).ok
    app, received = subscribe(broker, f"customers/{token}/updates")
    try:
        with pytest.raises(queue.Empty):
            received.get(timeout=0.5)
    finally:
        app.disconnect()
        app.loop_stop()


def test_push_disconnected_is_retry(broker: BrokerAddress) -> None:
    """A client that lost its broker connection gives "retry" and queues nothing."""
    client = connect_push_client(broker, timeout_s=5)
    client.disconnect()
    client.loop_stop()
    result = MqttPushChannel(client).send(outgoing(Channel.PUSH))
    assert result.status == "retry"
    assert "not connected" in result.detail


def test_push_without_token_is_failed() -> None:
    """No tracking token, or one that would widen the topic, is "failed" (no broker needed)."""
    channel = MqttPushChannel(mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5))
    assert channel.send(outgoing(Channel.PUSH, push_token=None)).status == "failed"
    result = channel.send(outgoing(Channel.PUSH, push_token="#"))
    assert result.status == "failed"
    assert "tracking token" in result.detail


def test_connect_refused_raises() -> None:
    """connect_push_client says which broker it could not reach."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConnectionError, match=f"127.0.0.1:{port}"):
        connect_push_client(BrokerAddress("127.0.0.1", port), timeout_s=1)


def test_no_puback_is_retry() -> None:
    """A broker that takes the publish but never acknowledges it: "retry" after the timeout."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        accepted: list[socket.socket] = []

        def mute_broker() -> None:
            conn, _ = listener.accept()
            accepted.append(conn)
            conn.recv(1024)  # CONNECT
            conn.sendall(b"\x20\x03\x00\x00\x00")  # CONNACK (MQTT 5, success, no properties)

        thread = threading.Thread(target=mute_broker, daemon=True)
        thread.start()
        client = connect_push_client(BrokerAddress("127.0.0.1", port), timeout_s=5)
        try:
            result = MqttPushChannel(client, timeout_s=0.3).send(outgoing(Channel.PUSH))
        finally:
            client.disconnect()
            client.loop_stop()
            thread.join(5)
            for conn in accepted:
                conn.close()
    assert result.status == "retry"
    assert "no PUBACK" in result.detail

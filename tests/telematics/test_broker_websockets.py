"""The private broker's WebSocket listener (issue 20: the drivers' web app publishes from the
browser, which cannot open a TCP socket): Mosquitto's and the embedded amqtt's carry a QoS 1
publish made over WebSockets to a subscriber on the TCP listener, and a Mosquitto built
without websockets still starts, on TCP alone."""

from __future__ import annotations

import os
import stat
import threading
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from telematics import broker as broker_module
from telematics.broker import MqttBroker, start_private_broker
from tests.conftest import require_servers


def _mosquitto() -> str:
    found = broker_module._mosquitto_binary()
    if found is None:
        message = "mosquitto is not installed (Debian: apt-get install mosquitto)"
        if require_servers():
            pytest.fail(message)
        pytest.skip(message)
    return found


def _client(**kwargs: object) -> mqtt.Client:
    return mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"t-{uuid.uuid4().hex[:8]}",
        protocol=mqtt.MQTTv311,
        **kwargs,  # type: ignore[arg-type]
    )


def _carries_a_phones_fix(broker: MqttBroker) -> None:
    """A phone's fix over WebSockets (as the web app sends it: QoS 1, a persistent session,
    any user name) reaches a subscriber on the TCP listener."""
    assert broker.ws_port is not None
    got = threading.Event()
    subscriber = _client()
    subscribed = threading.Event()
    subscriber.on_subscribe = lambda *_args: subscribed.set()
    subscriber.on_message = lambda _c, _u, message: got.set() if message.payload == b"{}" else None
    subscriber.connect(broker.address.host, broker.address.port)
    subscriber.loop_start()
    phone = _client(transport="websockets", clean_session=False)
    try:
        subscriber.subscribe("+/fleet/+/position", qos=1)
        assert subscribed.wait(5)
        phone.ws_set_options(path="/mqtt")
        phone.username_pw_set("anyone", "anything")  # the private broker checks no one
        phone.connect(broker.address.host, broker.ws_port)
        phone.loop_start()
        phone.publish("org1/fleet/v1/position", b"{}", qos=1).wait_for_publish(5)
        assert got.wait(5)
    finally:
        for client in (phone, subscriber):
            client.disconnect()
            client.loop_stop()


def test_the_embedded_broker_carries_mqtt_over_websockets(tmp_path: Path) -> None:
    broker = start_private_broker(tmp_path / "broker", prefer="embedded")
    try:
        _carries_a_phones_fix(broker)
    finally:
        broker.stop()


def test_mosquitto_carries_mqtt_over_websockets(tmp_path: Path) -> None:
    _mosquitto()
    broker = start_private_broker(tmp_path / "broker", prefer="mosquitto")
    try:
        assert "protocol websockets" in (tmp_path / "broker" / "mosquitto.conf").read_text()
        _carries_a_phones_fix(broker)
    finally:
        broker.stop()


def test_a_mosquitto_without_websockets_starts_on_tcp_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As a Mosquitto built without websockets answers a websockets listener (it exits with
    this error): the private broker starts again without it, and phones use HTTP."""
    real = _mosquitto()
    fake = tmp_path / "mosquitto"
    fake.write_text(
        "#!/bin/sh\n"
        'if grep -q "protocol websockets" "$2"; then\n'
        '  echo "Error: Websockets support not available."; exit 3\n'
        "fi\n"
        f'exec "{real}" "$@"\n'
    )
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(broker_module, "_mosquitto_binary", lambda: os.fspath(fake))
    broker = start_private_broker(tmp_path / "broker", prefer="mosquitto")
    try:
        assert broker.kind == "mosquitto"
        assert broker.ws_port is None
        assert "websockets" not in (tmp_path / "broker" / "mosquitto.conf").read_text()
    finally:
        broker.stop()

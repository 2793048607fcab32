"""The private broker: Mosquitto when installed, else the embedded amqtt (MQTT 3.1.1), which
carries QoS 1 fixes to the ingester and keeps them for it while it is away."""

from __future__ import annotations

import logging
import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from store.schema import DeadLetterRow, PositionRow
from telematics import broker as broker_module
from telematics.broker import BrokerUnavailableError, MqttBroker, start_private_broker
from telematics.ingest import Ingester
from telematics.mqtt import BrokerAddress, MqttIngester, publish_checked
from tests.conftest import require_servers
from tests.telematics.conftest import store_with_vehicle
from tests.telematics.test_mqtt import VEHICLE, _count, _fix, _wait


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    factory, _, engine = store_with_vehicle(tmp_path, VEHICLE)
    yield factory
    engine.dispose()


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[MqttBroker]:
    broker = start_private_broker(tmp_path / "broker", prefer="embedded")
    yield broker
    broker.stop()


@pytest.fixture
def no_mosquitto(monkeypatch: pytest.MonkeyPatch) -> None:
    """As on a machine with nothing installed: no mosquitto on PATH nor in /usr/sbin."""
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    monkeypatch.setattr(broker_module, "MOSQUITTO_FALLBACK_PATHS", ())


def _publisher(broker: BrokerAddress) -> mqtt.Client:
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"pub-{uuid.uuid4().hex[:8]}",
        protocol=mqtt.MQTTv311,
    )
    client.connect(broker.host, broker.port)
    client.loop_start()
    return client


def _subscribed(ingester: MqttIngester) -> MqttIngester:
    """Start the ingester and wait for it to be ``connected``: set once the broker has
    granted the subscriptions (amqtt keeps nothing for a topic nobody subscribed to yet)."""
    ingester.start()
    assert ingester.connected.wait(10)
    return ingester


def _close(client: mqtt.Client) -> None:
    client.disconnect()
    client.loop_stop()


def _publish_fixes(client: mqtt.Client, ks: range) -> None:
    for k in ks:
        publish_checked(client, f"fleet/{VEHICLE}/position", _fix(k), qos=1).wait_for_publish(5)


def _refuses_connections(address: BrokerAddress) -> bool:
    try:
        socket.create_connection((address.host, address.port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def test_embedded_broker_listens_on_a_free_loopback_port_until_stopped(tmp_path: Path) -> None:
    """prefer="embedded": amqtt on 127.0.0.1 at a free port, MQTT 3.1.1; stop() frees it."""
    broker = start_private_broker(tmp_path / "broker", prefer="embedded")
    address = broker.address
    try:
        assert broker.kind == "amqtt"
        assert (address.host, address.protocol) == ("127.0.0.1", 4)
        socket.create_connection((address.host, address.port), timeout=1).close()
    finally:
        broker.stop()
    assert _refuses_connections(address)
    with socket.socket() as s:  # a new server can listen there (as brokers do, SO_REUSEADDR)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((address.host, address.port))
        s.listen()
    broker.stop()  # a second stop is harmless


def test_embedded_broker_refuses_mqtt_5(embedded: MqttBroker) -> None:
    """amqtt speaks only MQTT 3.1.1: an MQTT 5 CONNECT is refused, hence protocol=4."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect(embedded.address.host, embedded.address.port)
    for _ in range(20):  # the refusal arrives as the connection closing
        client.loop(timeout=0.1)
    assert not client.is_connected()
    client.disconnect()


def test_ingester_stores_qos1_fixes_through_the_embedded_broker(
    embedded: MqttBroker, sessions: sessionmaker[Session]
) -> None:
    """An MqttIngester on MQTT 3.1.1 stores 20 QoS 1 fixes in order and dead-letters junk."""
    ingester = _subscribed(
        MqttIngester(
            Ingester(sessions), embedded.address, client_id=f"ingester-{uuid.uuid4().hex[:8]}"
        )
    )
    publisher = _publisher(embedded.address)
    try:
        _publish_fixes(publisher, range(20))
        publish_checked(
            publisher, f"fleet/{VEHICLE}/position", b"\x00 not json", qos=1
        ).wait_for_publish(5)
        _wait(lambda: _count(sessions, PositionRow) == 20 and _count(sessions, DeadLetterRow) == 1)
    finally:
        _close(publisher)
        ingester.stop()
    with sessions() as session:
        times = list(session.scalars(select(PositionRow.fix_time).order_by(PositionRow.id)))
    assert times == sorted(times)


def _session_state(broker: MqttBroker, client_id: str) -> str:
    """The embedded broker's view of a client's session (amqtt internals, tests only)."""
    sessions = broker._broker._sessions  # type: ignore[attr-defined]
    entry = sessions.get(client_id)
    return str(entry[0].transitions.state) if entry else "unknown"


def test_fixes_published_while_the_ingester_is_down_wait_in_the_embedded_broker(
    embedded: MqttBroker, sessions: sessionmaker[Session]
) -> None:
    """Ingester down: 30 QoS 1 fixes wait in amqtt. Back with the same client id
    (clean_session=False): all 30 arrive, in order."""
    client_id = f"ingester-{uuid.uuid4().hex[:8]}"
    ingester = _subscribed(MqttIngester(Ingester(sessions), embedded.address, client_id=client_id))
    publisher = _publisher(embedded.address)
    try:
        _publish_fixes(publisher, range(20))
        _wait(lambda: _count(sessions, PositionRow) == 20)
        ingester.stop()
        # amqtt forgets a message it routes to a session that is still closing (documented in
        # telematics/broker.py): publish once the broker has seen the ingester leave.
        _wait(lambda: _session_state(embedded, client_id) == "disconnected")
        _publish_fixes(publisher, range(20, 50))
        again = MqttIngester(Ingester(sessions), embedded.address, client_id=client_id)
        again.start()
        try:
            _wait(lambda: _count(sessions, PositionRow) == 50)
        finally:
            again.stop()
    finally:
        _close(publisher)
    with sessions() as session:
        times = list(session.scalars(select(PositionRow.fix_time).order_by(PositionRow.id)))
    assert times == sorted(times)


def test_shared_group_is_refused_over_mqtt_311(sessions: sessionmaker[Session]) -> None:
    """MQTT 3.1.1 has no shared subscriptions: shared_group is a clear ValueError."""
    address = BrokerAddress("127.0.0.1", 1, protocol=4)
    with pytest.raises(ValueError, match="shared_group 'pool' needs MQTT 5"):
        MqttIngester(Ingester(sessions), address, shared_group="pool")


@pytest.mark.usefixtures("no_mosquitto")
def test_prefer_mosquitto_without_the_binary_raises(tmp_path: Path) -> None:
    """prefer="mosquitto" with no mosquitto binary: BrokerUnavailableError, no fallback."""
    with pytest.raises(BrokerUnavailableError, match="no mosquitto binary"):
        start_private_broker(tmp_path / "broker", prefer="mosquitto")


@pytest.mark.usefixtures("no_mosquitto")
def test_auto_falls_back_to_the_embedded_broker_without_mosquitto(tmp_path: Path) -> None:
    """prefer="auto" with no mosquitto binary: the embedded amqtt, on MQTT 3.1.1."""
    broker = start_private_broker(tmp_path / "broker")
    try:
        assert broker.kind == "amqtt"
        assert broker.address.protocol == 4
        socket.create_connection((broker.address.host, broker.address.port), timeout=1).close()
    finally:
        broker.stop()


@pytest.mark.usefixtures("no_mosquitto")
def test_neither_broker_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No mosquitto and amqtt cannot start: BrokerUnavailableError giving both reasons."""

    def fail(_port: int) -> broker_module.EmbeddedBroker:
        raise BrokerUnavailableError("port taken")

    monkeypatch.setattr(broker_module, "_start_embedded_on", fail)
    with pytest.raises(BrokerUnavailableError, match=r"no mosquitto binary.*port taken"):
        start_private_broker(tmp_path / "broker")


def test_auto_prefers_mosquitto_when_installed(tmp_path: Path) -> None:
    """prefer="auto" with the mosquitto binary present: Mosquitto, on MQTT 5 as before."""
    if broker_module._mosquitto_binary() is None:
        if require_servers():
            pytest.fail("no mosquitto binary")
        pytest.skip("no mosquitto binary")
    broker = start_private_broker(tmp_path / "broker")
    try:
        assert broker.kind == "mosquitto"
        assert broker.address.protocol == 5
    finally:
        broker.stop()


@pytest.mark.usefixtures("no_mosquitto")
def test_service_without_mosquitto_ingests_through_the_embedded_broker(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """No broker configured and no mosquitto: the service runs amqtt and ingests over 3.1.1;
    /readyz's port probe logs no error."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.settings import Settings

    url = f"sqlite:///{tmp_path / 'lastmile.db'}"
    settings = Settings(
        data_dir=tmp_path, database_url=url, mqtt_client_id=f"svc-{uuid.uuid4().hex[:6]}"
    )
    with TestClient(create_app(settings)) as client:
        state = client.app.state  # type: ignore[attr-defined]
        mqtt_ingester = state.mqtt
        assert mqtt_ingester.broker.protocol == 4
        assert mqtt_ingester.connected.wait(10)
        assert client.get("/readyz").json()["checks"]["broker"] == "ok"
        publisher = _publisher(mqtt_ingester.broker)
        try:
            publish_checked(publisher, "fleet/nobody/position", _fix(0), qos=1).wait_for_publish(5)
            _wait(lambda: _count(state.sessions, DeadLetterRow) == 1)
        finally:
            _close(publisher)
        with state.sessions() as session:
            assert session.scalar(select(DeadLetterRow.reason)) == "unknown_vehicle"
    assert _refuses_connections(mqtt_ingester.broker)  # stopped with the service
    amqtt_errors = [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("amqtt") and r.levelno >= logging.ERROR
    ]
    assert not amqtt_errors

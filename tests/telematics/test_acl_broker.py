"""A real Mosquitto enforcing the ACL export (ADR 0014), started with nothing but the exported
files: a device publishes only its own topics and reads only its own route, the service account
reads the device topics and publishes routes and pushes, and wrong, missing or revoked
credentials are refused at connect."""

from __future__ import annotations

import getpass
import json
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from notify.channels.push import TOPIC as PUSH_TOPIC
from store.schema import PositionRow, VehicleRow
from telematics.broker import MOSQUITTO_FALLBACK_PATHS
from telematics.ingest import Ingester
from telematics.mqtt import TOPICS, BrokerAddress, MqttIngester
from tests.conftest import require_servers
from tests.telematics.acl_store import Store, export, make_store
from tests.telematics.mqtt_probe import NOT_AUTHORIZED, Probe, accepted

pytestmark = pytest.mark.security


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    made = make_store(tmp_path)
    yield made
    made.engine.dispose()


def _mosquitto() -> str:
    found = shutil.which("mosquitto") or next(
        (str(p) for p in MOSQUITTO_FALLBACK_PATHS if p.exists()), None
    )
    if found is None:
        message = "mosquitto not installed: the ACL cannot be tried on a real broker"
        if require_servers():
            pytest.fail(message)
        pytest.skip(message)
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class AclBroker:
    port: int
    store: Store
    service_user: str
    service_password: str

    def probe(self, username: str | None, password: str | None = None, **kw: Any) -> Probe:
        return Probe(self.port, username, password, **kw)

    def device(self, username: str, **kw: Any) -> Probe:
        return self.probe(username, self.store.passwords[username], **kw)

    def service(self) -> Probe:
        return self.probe(self.service_user, self.service_password)


@pytest.fixture
def acl_broker(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[AclBroker]:
    """Mosquitto on a free loopback port, configured by nothing but a listener and the
    exported mosquitto.conf (which points at the exported passwords and acl)."""
    binary = _mosquitto()
    out = tmp_path / "export"
    service_password = f"svc-{uuid.uuid4().hex}"
    export(store, out, monkeypatch, mqtt_url=f"mqtt://lastmile:{service_password}@127.0.0.1")
    port = _free_port()
    config = tmp_path / "broker.conf"
    # Run as root, Mosquitto would switch to the "mosquitto" user, which cannot enter
    # pytest's private tmp_path; naming the current user keeps it (ignored when not root).
    config.write_text(
        f"listener {port} 127.0.0.1\nuser {getpass.getuser()}\n"
        + (out / "mosquitto.conf").read_text()
    )
    log = tmp_path / "mosquitto.log"
    with log.open("wb") as log_out:
        process = subprocess.Popen(
            [binary, "-v", "-c", str(config)], stdout=log_out, stderr=log_out
        )
    try:
        deadline = time.monotonic() + 10
        while True:
            if process.poll() is not None:
                pytest.fail(f"mosquitto exited: {log.read_text()[-500:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("mosquitto did not open its port within 10 s")
                time.sleep(0.05)
        yield AclBroker(port, store, "lastmile", service_password)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def service_probe(acl_broker: AclBroker) -> Iterator[Probe]:
    probe = acl_broker.service()
    assert probe.connack == 0
    assert probe.subscribe(*TOPICS) == [1] * len(TOPICS)
    yield probe
    probe.close()


@pytest.mark.integration
def test_a_device_publishes_its_own_topics_to_the_service(
    acl_broker: AclBroker, service_probe: Probe
) -> None:
    """dev-a's position, gpsd and events topics reach the service's subscriptions, and so does
    the OwnTracks device's own topic."""
    device = acl_broker.device("dev-a")
    phone = acl_broker.device("dev-c")
    try:
        for kind in ("position", "gpsd", "events"):
            assert accepted(device.publish(f"fleet/van-a/{kind}", kind.encode()))
            service_probe.wait_for_message(f"fleet/van-a/{kind}", kind.encode())
        assert accepted(phone.publish("owntracks/anna/phone", b"here"))
        service_probe.wait_for_message("owntracks/anna/phone", b"here")
    finally:
        device.close()
        phone.close()


@pytest.mark.integration
@pytest.mark.parametrize("protocol", [5, 4])
def test_a_device_cannot_publish_as_another_vehicle(
    acl_broker: AclBroker, service_probe: Probe, protocol: int
) -> None:
    """dev-a publishing on van-b's topics, someone else's OwnTracks topic, a route or a
    customer push: MQTT 5 answers 0x87 (not authorised), MQTT 3.1.1 drops it silently; either
    way the service never sees it. Each refusal is followed by a legitimate message from the
    same client: the broker keeps one client's order, so once that arrives the refused one
    would have arrived before it."""
    device = acl_broker.device("dev-a", protocol=protocol)
    # dev-a's own route is readable by dev-a only: a second connection of it watches there.
    route_reader = acl_broker.device("dev-a")
    forbidden = [
        "fleet/van-b/position",
        "fleet/van-b/events",
        "fleet/van-b/gpsd",
        "owntracks/anna/phone",
        "owntracks/dev-a/x",
        "fleet/van-a/route",
        "customers/tok123/updates",
        "fleet/van-a/position/extra",
        "fleet/van-a/status",
        "$SYS/broker/uptime",
    ]
    try:
        route_reader.subscribe("fleet/van-a/route")
        for k, topic in enumerate(forbidden):
            code = device.publish(topic, b"spoof")
            # MQTT 3.1.1 has no way to say no: the broker acks and drops.
            assert code == (NOT_AUTHORIZED if protocol == 5 else 0), topic
            sentinel = f"ok-{k}".encode()
            assert accepted(device.publish("fleet/van-a/position", sentinel))
            service_probe.wait_for_message("fleet/van-a/position", sentinel)
        assert accepted(service_probe.publish("fleet/van-a/route", b"route-sentinel"))
        route_reader.wait_for_message("fleet/van-a/route", b"route-sentinel")
        assert [m for m in service_probe.messages if m[1] == b"spoof"] == []
        assert [m for m in route_reader.messages if m[1] == b"spoof"] == []
    finally:
        device.close()
        route_reader.close()


@pytest.mark.integration
def test_a_device_reads_its_own_route_and_nothing_else(
    acl_broker: AclBroker, service_probe: Probe
) -> None:
    """dev-a subscribes to everything it can name. Mosquitto 2.0 grants such a SUBACK and
    filters each message by the ACL at delivery, so the proof is what arrives: van-a's
    retained route, never van-b's route, another vehicle's positions, an OwnTracks device,
    a customer's push, or the broker's $SYS topics."""
    assert accepted(service_probe.publish("fleet/van-b/route", b"route-b", retain=True))
    assert accepted(service_probe.publish("fleet/van-a/route", b"route-a", retain=True))
    device = acl_broker.device("dev-a")
    other = acl_broker.device("dev-b")
    phone = acl_broker.device("dev-c")
    try:
        device.subscribe(
            "#",
            "$SYS/#",
            "fleet/van-b/route",
            "fleet/+/position",
            "fleet/van-b/#",
            "owntracks/#",
            "customers/+/updates",
        )
        device.wait_for_message("fleet/van-a/route", b"route-a")
        assert accepted(other.publish("fleet/van-b/position", b"b-here"))
        assert accepted(phone.publish("owntracks/anna/phone", b"anna-here"))
        assert accepted(service_probe.publish(PUSH_TOPIC.format(token="tok123"), b"push"))
        assert accepted(service_probe.publish("fleet/van-b/route", b"route-b2"))
        # The service's last message: when it has arrived, everything before it has too.
        assert accepted(service_probe.publish("fleet/van-a/route", b"route-a2"))
        device.wait_for_message("fleet/van-a/route", b"route-a2")
        assert {topic for topic, _ in device.messages} == {"fleet/van-a/route"}
        # And van-b's own device does get its (retained) route.
        other.subscribe("fleet/van-b/route")
        other.wait_for_message("fleet/van-b/route", b"route-b")
    finally:
        for probe in (device, other, phone):
            probe.close()


@pytest.mark.integration
@pytest.mark.parametrize("protocol", [5, 4])
def test_wrong_missing_or_revoked_credentials_are_refused(
    acl_broker: AclBroker, protocol: int
) -> None:
    """CONNACK refuses a wrong password, no credentials at all, an unknown user, a revoked
    device with its once-valid password, and a device whose vehicle id clashes."""
    passwords = acl_broker.store.passwords
    attempts = [
        ("dev-a", passwords["dev-b"]),
        ("dev-a", passwords["dev-a"] + "x"),
        (None, None),
        ("nobody", "x"),
        ("dev-a-old", passwords["dev-a-old"]),
        ("dev-x1", passwords["dev-x1"]),
        ("lastmile", "guess"),
    ]
    for username, password in attempts:
        probe = acl_broker.probe(username, password, protocol=protocol)
        # 0x86 bad user name or password, or 0x87 not authorised (paho maps MQTT 3.1.1's
        # return codes 4 and 5 onto the same MQTT 5 reason codes).
        assert probe.connack in (0x86, NOT_AUTHORIZED), username
        probe.close()
    good = acl_broker.device("dev-a", protocol=protocol)
    assert good.connack == 0
    good.close()


@pytest.mark.integration
def test_the_ingester_works_with_the_service_account(acl_broker: AclBroker) -> None:
    """The real MQTT ingester, connecting with the exported service account and a shared
    subscription group, stores dev-a's fix and nothing dev-a sent as van-b."""
    store = acl_broker.store
    address = BrokerAddress(
        "127.0.0.1", acl_broker.port, acl_broker.service_user, acl_broker.service_password
    )
    ingester = MqttIngester(
        Ingester(store.sessions),
        address,
        client_id=f"ingester-{uuid.uuid4().hex[:8]}",
        shared_group="lastmile",
    )
    subscribed = threading.Event()
    ingester.client.on_subscribe = lambda *_args: subscribed.set()
    ingester.start()
    device = acl_broker.device("dev-a")
    try:
        assert subscribed.wait(10)
        fix = {"lat": 60.1701, "lon": 24.9401, "time": (datetime.now(UTC)).isoformat()}
        assert device.publish("fleet/van-b/position", json.dumps(fix).encode()) == NOT_AUTHORIZED
        assert accepted(device.publish("fleet/van-a/position", json.dumps(fix).encode()))
        deadline = time.monotonic() + 10
        while _positions(store.sessions) == {} and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        device.close()
        ingester.stop()
    assert _positions(store.sessions) == {"van-a": 1}


def _positions(sessions: sessionmaker[Session]) -> dict[str, int]:
    with sessions() as session:
        rows = session.execute(
            select(VehicleRow.external_id, func.count())
            .join(PositionRow, PositionRow.vehicle_id == VehicleRow.id)
            .group_by(VehicleRow.external_id)
        )
        return {name: int(count) for name, count in rows}


@pytest.mark.integration
def test_the_service_account_publishes_routes_and_pushes(acl_broker: AclBroker) -> None:
    """The service may publish a vehicle's route and a customer's push, and read nothing it
    does not ingest (a customer's push topic, routes)."""
    service = acl_broker.service()
    spy = acl_broker.service()
    try:
        spy.subscribe("customers/+/updates", "fleet/+/route")
        assert accepted(service.publish("fleet/van-z/route", b"r"))
        assert accepted(service.publish(PUSH_TOPIC.format(token="tok456"), b"p"))
        assert service.publish("fleet/van-z/position", b"spoof") == NOT_AUTHORIZED
        assert service.publish("owntracks/x/y", b"spoof") == NOT_AUTHORIZED
        reader = acl_broker.device("dev-z")
        try:
            reader.subscribe("fleet/van-z/route")
            assert accepted(service.publish("fleet/van-z/route", b"r2"))
            reader.wait_for_message("fleet/van-z/route", b"r2")
        finally:
            reader.close()
        assert spy.messages == []
    finally:
        service.close()
        spy.close()

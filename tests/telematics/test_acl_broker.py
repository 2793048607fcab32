"""A real Mosquitto enforcing the ACL export (ADR 0014, ADR 0025), started with nothing but the
exported files: a device publishes only its own vehicle's topics under its own organisation and
reads only its own route, the service account reads the device topics and publishes routes and
pushes, and wrong, missing or revoked credentials are refused at connect. Two organisations
both have a ``van-x``: neither's device can write or read the other's."""

from __future__ import annotations

import getpass
import json
import shutil
import socket
import subprocess
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
from store.schema import Organisation, PositionRow, VehicleRow
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

    def one(self, rest: str) -> str:
        """A topic of organisation 1 (``rest``: ``fleet/van-a/position``)."""
        return f"{self.store.org1}/{rest}"

    def two(self, rest: str) -> str:
        return f"{self.store.org2}/{rest}"


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
    """dev-a's position, gpsd and events topics under its organisation reach the service's
    subscriptions (and the deprecated un-prefixed ones: van-a is unique across
    organisations), and so does the OwnTracks device's own topic."""
    b = acl_broker
    device = b.device("dev-a")
    phone = b.device("dev-c")
    try:
        for kind in ("position", "gpsd", "events"):
            for topic in (b.one(f"fleet/van-a/{kind}"), f"fleet/van-a/{kind}"):
                assert accepted(device.publish(topic, kind.encode()))
                service_probe.wait_for_message(topic, kind.encode())
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
    """dev-a publishing on van-b's topics, on the same vehicle id in the other organisation,
    on someone else's OwnTracks topic, a route or a customer push: MQTT 5 answers 0x87 (not
    authorised), MQTT 3.1.1 drops it silently; either way the service never sees it. Each
    refusal is followed by a legitimate message from the same client: the broker keeps one
    client's order, so once that arrives the refused one would have arrived before it."""
    b = acl_broker
    device = b.device("dev-a", protocol=protocol)
    own = b.one("fleet/van-a/position")
    # dev-a's own route is readable by dev-a only: a second connection of it watches there.
    route_reader = b.device("dev-a")
    forbidden = [
        b.one("fleet/van-b/position"),
        b.one("fleet/van-b/events"),
        b.one("fleet/van-b/gpsd"),
        b.two("fleet/van-a/position"),
        b.two("fleet/van-z/position"),
        b.two("fleet/van-x/events"),
        "fleet/van-b/position",
        "owntracks/anna/phone",
        "owntracks/dev-a/x",
        b.one("fleet/van-a/route"),
        "fleet/van-a/route",
        "customers/tok123/updates",
        b.one("fleet/van-a/position/extra"),
        b.one("fleet/van-a/status"),
        "$SYS/broker/uptime",
    ]
    try:
        route_reader.subscribe(b.one("fleet/van-a/route"))
        for k, topic in enumerate(forbidden):
            code = device.publish(topic, b"spoof")
            # MQTT 3.1.1 has no way to say no: the broker acks and drops.
            assert code == (NOT_AUTHORIZED if protocol == 5 else 0), topic
            sentinel = f"ok-{k}".encode()
            assert accepted(device.publish(own, sentinel))
            service_probe.wait_for_message(own, sentinel)
        route = b.one("fleet/van-a/route")
        assert accepted(service_probe.publish(route, b"route-sentinel"))
        route_reader.wait_for_message(route, b"route-sentinel")
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
    retained route, never van-b's route, the other organisation's routes, another vehicle's
    positions, an OwnTracks device, a customer's push, or the broker's $SYS topics."""
    b = acl_broker
    mine = b.one("fleet/van-a/route")
    assert accepted(service_probe.publish(b.one("fleet/van-b/route"), b"route-b", retain=True))
    assert accepted(service_probe.publish(b.two("fleet/van-a/route"), b"theirs", retain=True))
    assert accepted(service_probe.publish(mine, b"route-a", retain=True))
    device = b.device("dev-a")
    other = b.device("dev-b")
    phone = b.device("dev-c")
    try:
        device.subscribe(
            "#",
            "$SYS/#",
            "+/fleet/+/route",
            b.one("fleet/van-b/route"),
            b.two("fleet/#"),
            "+/fleet/+/position",
            "fleet/+/position",
            "owntracks/#",
            "customers/+/updates",
        )
        device.wait_for_message(mine, b"route-a")
        assert accepted(other.publish(b.one("fleet/van-b/position"), b"b-here"))
        assert accepted(phone.publish("owntracks/anna/phone", b"anna-here"))
        assert accepted(service_probe.publish(PUSH_TOPIC.format(token="tok123"), b"push"))
        assert accepted(service_probe.publish(b.one("fleet/van-b/route"), b"route-b2"))
        assert accepted(service_probe.publish(b.two("fleet/van-a/route"), b"theirs-2"))
        # The service's last message: when it has arrived, everything before it has too.
        assert accepted(service_probe.publish(mine, b"route-a2"))
        device.wait_for_message(mine, b"route-a2")
        assert {topic for topic, _ in device.messages} == {mine}
        # And van-b's own device does get its (retained) route.
        other.subscribe(b.one("fleet/van-b/route"))
        other.wait_for_message(b.one("fleet/van-b/route"), b"route-b")
    finally:
        for probe in (device, other, phone):
            probe.close()


@pytest.mark.integration
def test_two_organisations_with_the_same_vehicle_id_stay_apart(
    acl_broker: AclBroker, service_probe: Probe
) -> None:
    """Both organisations have a van-x. Each one's device publishes and reads on its own
    organisation's van-x topics only; the deprecated un-prefixed van-x topics are granted to
    neither (they would name both)."""
    b = acl_broker
    x1, x2 = b.device("dev-x1"), b.device("dev-x2")
    try:
        assert (x1.connack, x2.connack) == (0, 0)
        for device, own, theirs in (
            (x1, b.one("fleet/van-x/position"), b.two("fleet/van-x/position")),
            (x2, b.two("fleet/van-x/position"), b.one("fleet/van-x/position")),
        ):
            assert device.publish(theirs, b"spoof") == NOT_AUTHORIZED
            assert device.publish("fleet/van-x/position", b"spoof") == NOT_AUTHORIZED
            assert accepted(device.publish(own, b"mine"))
            service_probe.wait_for_message(own, b"mine")
        x1.subscribe("+/fleet/van-x/route", "fleet/van-x/route")
        route1, route2 = b.one("fleet/van-x/route"), b.two("fleet/van-x/route")
        assert accepted(service_probe.publish(route2, b"theirs"))
        assert accepted(service_probe.publish(route1, b"mine"))
        x1.wait_for_message(route1, b"mine")
        assert x1.messages == [(route1, b"mine")]
        assert [m for m in service_probe.messages if m[1] == b"spoof"] == []
    finally:
        x1.close()
        x2.close()


@pytest.mark.integration
@pytest.mark.parametrize("protocol", [5, 4])
def test_wrong_missing_or_revoked_credentials_are_refused(
    acl_broker: AclBroker, protocol: int
) -> None:
    """CONNACK refuses a wrong password, no credentials at all, an unknown user, a revoked
    device with its once-valid password, and another account's password."""
    passwords = acl_broker.store.passwords
    attempts = [
        ("dev-a", passwords["dev-b"]),
        ("dev-a", passwords["dev-a"] + "x"),
        (None, None),
        ("nobody", "x"),
        ("dev-a-old", passwords["dev-a-old"]),
        ("dev-x1", passwords["dev-x2"]),
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
    subscription group, stores each device's fix on its own organisation's vehicle (two
    organisations' van-x included) and nothing a device sent as another vehicle."""
    b = acl_broker
    store = b.store
    address = BrokerAddress("127.0.0.1", b.port, b.service_user, b.service_password)
    ingester = MqttIngester(
        Ingester(store.sessions),
        address,
        client_id=f"ingester-{uuid.uuid4().hex[:8]}",
        shared_group="lastmile",
    )
    ingester.start()
    device, x1, x2 = b.device("dev-a"), b.device("dev-x1"), b.device("dev-x2")
    try:
        # Set once the broker has granted the subscriptions.
        assert ingester.connected.wait(10)
        fix = json.dumps(
            {"lat": 60.1701, "lon": 24.9401, "time": (datetime.now(UTC)).isoformat()}
        ).encode()
        assert device.publish(b.one("fleet/van-b/position"), fix) == NOT_AUTHORIZED
        assert device.publish(b.two("fleet/van-x/position"), fix) == NOT_AUTHORIZED
        assert accepted(device.publish(b.one("fleet/van-a/position"), fix))
        assert accepted(x1.publish(b.one("fleet/van-x/position"), fix))
        assert accepted(x2.publish(b.two("fleet/van-x/position"), fix))
        want = {("One", "van-a"): 1, ("One", "van-x"): 1, ("Two", "van-x"): 1}
        deadline = time.monotonic() + 10
        while _positions(store.sessions) != want and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        for probe in (device, x1, x2):
            probe.close()
        ingester.stop()
    assert _positions(store.sessions) == want


def _positions(sessions: sessionmaker[Session]) -> dict[tuple[str, str], int]:
    with sessions() as session:
        rows = session.execute(
            select(Organisation.name, VehicleRow.external_id, func.count())
            .join(PositionRow, PositionRow.vehicle_id == VehicleRow.id)
            .join(Organisation, Organisation.id == VehicleRow.organisation_id)
            .group_by(Organisation.name, VehicleRow.external_id)
        )
        return {(org, name): int(count) for org, name, count in rows}


@pytest.mark.integration
def test_the_service_account_publishes_routes_and_pushes(acl_broker: AclBroker) -> None:
    """The service may publish any organisation's vehicle routes and a customer's push, and
    read nothing it does not ingest (a customer's push topic, routes)."""
    b = acl_broker
    service = b.service()
    spy = b.service()
    route = b.two("fleet/van-z/route")
    try:
        spy.subscribe("customers/+/updates", "+/fleet/+/route", "fleet/+/route")
        assert accepted(service.publish(route, b"r"))
        assert accepted(service.publish(PUSH_TOPIC.format(token="tok456"), b"p"))
        assert service.publish(b.two("fleet/van-z/position"), b"spoof") == NOT_AUTHORIZED
        assert service.publish("fleet/van-z/position", b"spoof") == NOT_AUTHORIZED
        assert service.publish("owntracks/x/y", b"spoof") == NOT_AUTHORIZED
        reader = b.device("dev-z")
        try:
            reader.subscribe(route)
            assert accepted(service.publish(route, b"r2"))
            reader.wait_for_message(route, b"r2")
        finally:
            reader.close()
        assert spy.messages == []
    finally:
        service.close()
        spy.close()

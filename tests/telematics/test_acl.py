"""The Mosquitto ACL export (ADR 0014): the ACL text itself, the command that writes it from
the store, and a real Mosquitto enforcing it: a device publishes only its own topics and reads
only its own route, the service account reads the device topics and publishes routes and
pushes, and wrong, missing or revoked credentials are refused at connect."""

from __future__ import annotations

import csv
import getpass
import json
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from lastmile.cli import app
from notify.channels.push import TOPIC as PUSH_TOPIC
from store.db import make_engine, session_factory, transaction, upgrade
from store.schema import DeviceRow, Organisation, PositionRow, VehicleRow
from store.secrets import check_device_password, hash_device_password
from telematics import acl
from telematics.acl import (
    DeviceEntry,
    MqttAccount,
    acl_text,
    device_account,
    mosquitto_hash,
    password_file_text,
    plan_accounts,
    service_account,
)
from telematics.broker import MOSQUITTO_FALLBACK_PATHS
from telematics.ingest import Ingester
from telematics.mqtt import TOPICS, BrokerAddress, MqttIngester
from tests.conftest import require_servers

pytestmark = pytest.mark.security

HASH = hash_device_password("x", salt=b"0123456789ab")
NOT_AUTHORIZED = 0x87  # MQTT 5 reason code on PUBACK and CONNACK


def accepted(code: int) -> bool:
    """A PUBACK reason below 0x80 is success (0x10: accepted, nobody subscribed)."""
    return code < 0x80


def _device(
    vehicle: str = "van-a",
    protocol: str = "fleet",
    *,
    username: str = "dev-a",
    external: str | None = None,
    organisation: str = "org1",
    device_id: str = "d-a",
) -> DeviceEntry:
    return DeviceEntry(device_id, organisation, vehicle, username, HASH, protocol, external)


def _service() -> MqttAccount:
    return service_account("lastmile", HASH)


# --- the ACL text -------------------------------------------------------------------------


def test_acl_text_grants_each_account_only_its_own_topics() -> None:
    """The whole file for a service and one device of each protocol, line by line."""
    devices = [
        _device(),
        _device("van-b", "owntracks", username="dev-b", external="anna/phone", device_id="d-b"),
        _device("van-c", "osmand", username="dev-c", external="4711", device_id="d-c"),
    ]
    accounts, skipped = plan_accounts(_service(), devices)
    assert skipped == []
    assert acl_text(accounts, "generated") == (
        "# generated\n"
        "\n"
        "# the service: ingests device topics, publishes routes and customer pushes\n"
        "user lastmile\n"
        "topic read fleet/+/position\n"
        "topic read fleet/+/gpsd\n"
        "topic read fleet/+/events\n"
        "topic read owntracks/+/+\n"
        "topic write fleet/+/route\n"
        "topic write customers/+/updates\n"
        "\n"
        "# device d-a: vehicle van-a, fleet\n"
        "user dev-a\n"
        "topic read fleet/van-a/route\n"
        "topic write fleet/van-a/position\n"
        "topic write fleet/van-a/gpsd\n"
        "topic write fleet/van-a/events\n"
        "\n"
        "# device d-b: vehicle van-b, owntracks\n"
        "user dev-b\n"
        "topic read fleet/van-b/route\n"
        "topic write owntracks/anna/phone\n"
        "\n"
        "# device d-c: vehicle van-c, osmand\n"
        "user dev-c\n"
        "topic read fleet/van-c/route\n"
    )
    assert password_file_text(accounts) == "".join(
        f"{name}:{HASH}\n" for name in ("lastmile", "dev-a", "dev-b", "dev-c")
    )


def test_service_topics_follow_the_ingester_and_the_push_channel() -> None:
    """The service reads exactly what the ingester subscribes to and writes the push topic, so
    a topic added there cannot be silently missing from the ACL."""
    service = _service()
    assert service.read == TOPICS
    assert PUSH_TOPIC.format(token="+") in service.write


@pytest.mark.parametrize(
    "vehicle", ["+", "#", "van/a", "van+", "a#", "", " van", "van ", "van\n1", "van\x00", "v\x7f"]
)
def test_vehicle_ids_that_would_widen_a_grant_are_left_out(vehicle: str) -> None:
    """A vehicle named ``+`` would be granted every vehicle's topics, ``a/b`` another level,
    a newline a line of its own choosing: such a device is left out, saying why."""
    accounts, skipped = plan_accounts(_service(), [_device(vehicle)])
    assert [a.username for a in accounts] == ["lastmile"]
    assert [s.username for s in skipped] == ["dev-a"]
    assert "vehicle id" in skipped[0].reason
    assert "dev-a" not in acl_text(accounts)


@pytest.mark.parametrize("external", ["anna", "anna/+", "+/phone", "anna/phone/x", "anna/#", "/"])
def test_owntracks_ids_that_are_not_user_and_device_are_left_out(external: str) -> None:
    accounts, skipped = plan_accounts(
        _service(), [_device(protocol="owntracks", external=external)]
    )
    assert len(accounts) == 1
    assert len(skipped) == 1


@given(st.text(max_size=12))
def test_no_vehicle_id_yields_a_wildcard_or_extra_level(vehicle: str) -> None:
    """Whatever the vehicle is called, a device's grants are literal three-level topics."""
    try:
        account = device_account(_device(vehicle))
    except acl.AclError:
        return
    for topic in (*account.read, *account.write):
        assert len(topic.split("/")) == 3
        assert not set(topic) & set("+#\n\r\x00")


def test_vehicle_ids_shared_by_organisations_are_left_out() -> None:
    """Topics are not per organisation: two tenants' "van-1" devices would read each other's
    routes, so neither is exported (the ingester refuses such a vehicle's fixes too)."""
    devices = [
        _device("van-1", organisation="org1", username="dev-1", device_id="d-1"),
        _device("van-1", organisation="org2", username="dev-2", device_id="d-2"),
        _device("van-2", organisation="org1", username="dev-3", device_id="d-3"),
    ]
    accounts, skipped = plan_accounts(_service(), devices, ambiguous_vehicles={"van-1"})
    assert [a.username for a in accounts] == ["lastmile", "dev-3"]
    assert {s.device_id for s in skipped} == {"d-1", "d-2"}


def test_two_devices_of_one_vehicle_share_its_topics() -> None:
    devices = [_device(), _device(username="dev-a2", device_id="d-a2")]
    accounts, skipped = plan_accounts(_service(), devices)
    assert skipped == []
    assert accounts[1].write == accounts[2].write


def test_an_owntracks_topic_claimed_by_two_vehicles_is_left_out() -> None:
    devices = [
        _device("van-a", "owntracks", username="dev-a", external="anna/phone"),
        _device("van-b", "owntracks", username="dev-b", external="anna/phone", device_id="d-b"),
    ]
    accounts, skipped = plan_accounts(_service(), devices)
    assert len(accounts) == 1
    assert {s.device_id for s in skipped} == {"d-a", "d-b"}


def test_a_device_named_like_the_service_is_left_out() -> None:
    accounts, skipped = plan_accounts(_service(), [_device(username="lastmile")])
    assert [a.username for a in accounts] == ["lastmile"]
    assert accounts[0].read == TOPICS
    assert "taken" in skipped[0].reason


@pytest.mark.parametrize("stored", ["plain", "$7$101$abc$de:f", "$7$101$abc\n$def", ""])
def test_a_password_hash_not_in_mosquitto_format_is_left_out(stored: str) -> None:
    """Only a Mosquitto hash reaches the password file (no second line smuggled in)."""
    device = DeviceEntry("d-a", "org1", "van-a", "dev-a", stored, "fleet", None)
    accounts, skipped = plan_accounts(_service(), [device])
    assert len(accounts) == 1
    assert "format" in skipped[0].reason


@pytest.mark.parametrize("username", ["a:b", "a b", "a\nuser root", ""])
def test_unsafe_usernames_are_refused(username: str) -> None:
    with pytest.raises(acl.AclError):
        service_account(username, HASH)
    assert plan_accounts(_service(), [_device(username=username)])[1]


# --- hashes -------------------------------------------------------------------------------


def _mosquitto_passwd() -> str | None:
    found = shutil.which("mosquitto_passwd")
    if found is None and require_servers():
        pytest.fail("mosquitto_passwd not installed")
    return found


def test_stored_device_hashes_are_what_mosquitto_passwd_writes(tmp_path: Path) -> None:
    """The store's device hashes go into the password file unchanged: the binary's own hash
    checks with the store's code, and has the same shape (algorithm, iterations, salt and
    digest lengths) as the store's. That the broker accepts the store's hashes is proven by
    the connections below."""
    binary = _mosquitto_passwd()
    if binary is None:
        pytest.skip("mosquitto_passwd not installed: cannot compare with it")
    target = tmp_path / "passwd"
    subprocess.run(
        [binary, "-c", str(target), "svc"],
        input="s3cret pass\ns3cret pass\n",
        text=True,
        capture_output=True,
        timeout=30,
        check=True,
    )
    theirs = target.read_text().strip().partition(":")[2]
    assert check_device_password("s3cret pass", theirs)
    assert not check_device_password("s3cret pasS", theirs)
    ours = hash_device_password("s3cret pass")
    shape = [(p if i < 3 else len(p)) for i, p in enumerate(ours.split("$"))]
    assert shape == [(p if i < 3 else len(p)) for i, p in enumerate(theirs.split("$"))]
    assert check_device_password("s3cret pass", mosquitto_hash("svc", "s3cret pass"))


def test_without_the_binary_the_hash_is_mosquittos_format(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(acl, "mosquitto_passwd_binary", lambda: None)
    hashed = mosquitto_hash("svc", "pw")
    assert hashed.startswith("$7$101$")
    assert check_device_password("pw", hashed)


# --- the command --------------------------------------------------------------------------

runner = CliRunner()


@dataclass
class Store:
    url: str
    engine: Engine
    sessions: sessionmaker[Session]
    org1: str
    org2: str
    #: username -> password of every device created
    passwords: dict[str, str]


def _vehicle(session: Session, org: str, external_id: str) -> VehicleRow:
    now = datetime.now(UTC)
    row = VehicleRow(
        organisation_id=org,
        external_id=external_id,
        start_lat=60.17,
        start_lon=24.94,
        shift_start=now - timedelta(hours=2),
        shift_end=now + timedelta(hours=8),
    )
    session.add(row)
    session.flush()
    return row


def _make_store(path: Path) -> Store:
    """Organisation 1: van-a (a fleet device, and a revoked one), van-b (fleet), van-c
    (OwnTracks anna/phone), van-x. Organisation 2: its own van-x (a clash) and van-z."""
    url = f"sqlite:///{path / 'lastmile.db'}"
    upgrade(url)
    engine = make_engine(url)
    sessions = session_factory(engine)
    passwords: dict[str, str] = {}
    with transaction(sessions) as session:
        org1, org2 = Organisation(name="One"), Organisation(name="Two")
        session.add_all([org1, org2])
        session.flush()
        vehicles = {
            (org, v): _vehicle(session, org.id, v)
            for org, names in ((org1, ("van-a", "van-b", "van-c", "van-x")), (org2, ("van-x",)))
            for v in names
        }
        vehicles[(org2, "van-z")] = _vehicle(session, org2.id, "van-z")
        for username, org, vehicle, protocol, external, revoked in (
            ("dev-a", org1, "van-a", "fleet", None, False),
            ("dev-a-old", org1, "van-a", "fleet", None, True),
            ("dev-b", org1, "van-b", "fleet", None, False),
            ("dev-c", org1, "van-c", "owntracks", "anna/phone", False),
            ("dev-x1", org1, "van-x", "fleet", None, False),
            ("dev-x2", org2, "van-x", "fleet", None, False),
            ("dev-z", org2, "van-z", "fleet", None, False),
        ):
            passwords[username] = f"pw-{username}-{uuid.uuid4().hex[:6]}"
            session.add(
                DeviceRow(
                    organisation_id=org.id,
                    vehicle_id=vehicles[(org, vehicle)].id,
                    mqtt_username=username,
                    password_hash=hash_device_password(passwords[username]),
                    protocol=protocol,
                    external_device_id=external,
                    revoked_at=datetime.now(UTC) if revoked else None,
                )
            )
        ids = org1.id, org2.id
    return Store(url, engine, sessions, ids[0], ids[1], passwords)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    made = _make_store(tmp_path)
    yield made
    made.engine.dispose()


def _export(
    store: Store, out: Path, monkeypatch: pytest.MonkeyPatch, *args: str, mqtt_url: str = ""
) -> dict[str, Any]:
    monkeypatch.setenv("LASTMILE_DATABASE_URL", store.url)
    if mqtt_url:
        monkeypatch.setenv("LASTMILE_MQTT_URL", mqtt_url)
    else:
        monkeypatch.delenv("LASTMILE_MQTT_URL", raising=False)
    result = runner.invoke(app, ["devices", "export-mosquitto", "--out", str(out), *args])
    assert result.exit_code == 0, result.output
    summary: dict[str, Any] = json.loads(result.stdout[result.stdout.index("{") :])
    return summary


def _password_lines(out: Path) -> dict[str, str]:
    lines = (out / "passwords").read_text().splitlines()
    return dict(line.split(":", 1) for line in lines)


def test_export_writes_every_usable_device_and_says_what_it_left_out(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """All organisations: the revoked device is absent, the clashing van-x devices are left out
    with a reason, the rest get their stored hashes; without LASTMILE_MQTT_URL the service's
    new password is in credentials.csv (0600) only, and it matches the password file."""
    out = tmp_path / "export"
    summary = _export(store, out, monkeypatch)
    assert summary["devices"] == 4
    assert summary["service_user"] == "lastmile"
    assert {s["username"] for s in summary["skipped"]} == {"dev-x1", "dev-x2"}
    assert all("more than one organisation" in s["reason"] for s in summary["skipped"])
    lines = _password_lines(out)
    assert set(lines) == {"lastmile", "dev-a", "dev-b", "dev-c", "dev-z"}
    for name in ("dev-a", "dev-b", "dev-c", "dev-z"):
        assert check_device_password(store.passwords[name], lines[name])
    assert "dev-a-old" not in (out / "acl").read_text()
    assert (out / "passwords").stat().st_mode & 0o777 == 0o600
    assert (out / "acl").stat().st_mode & 0o777 == 0o644
    credentials = out / "credentials.csv"
    assert credentials.stat().st_mode & 0o777 == 0o600
    [row] = list(csv.DictReader(credentials.read_text().splitlines()))
    assert row["username"] == "lastmile"
    assert check_device_password(row["password"], lines["lastmile"])
    config = (out / "mosquitto.conf").read_text()
    assert "allow_anonymous false" in config
    assert f"acl_file {(out / 'acl').resolve()}" in config


def test_export_uses_the_services_own_mqtt_credentials(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With LASTMILE_MQTT_URL carrying a user and password, that is the service account, and
    no plaintext file is written."""
    out = tmp_path / "export"
    summary = _export(store, out, monkeypatch, mqtt_url="mqtt://ingest:t0p-secret@broker:1883")
    assert summary["service_user"] == "ingest"
    assert summary["credentials"] is None
    assert not (out / "credentials.csv").exists()
    assert check_device_password("t0p-secret", _password_lines(out)["ingest"])
    assert "t0p-secret" not in (out / "passwords").read_text() + (out / "acl").read_text()


def test_export_of_one_organisation(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--organisation: only its devices; its van-x still clashes with the other tenant's."""
    out = tmp_path / "export"
    summary = _export(
        store, out, monkeypatch, "--organisation", store.org2, mqtt_url="mqtt://s:p@h"
    )
    assert summary["devices"] == 1
    assert set(_password_lines(out)) == {"s", "dev-z"}
    assert [s["username"] for s in summary["skipped"]] == ["dev-x2"]


def test_export_help() -> None:
    result = runner.invoke(app, ["devices", "export-mosquitto", "--help"])
    assert result.exit_code == 0
    assert "--organisation" in result.output


# --- a real Mosquitto enforcing the export ------------------------------------------------


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
    _export(store, out, monkeypatch, mqtt_url=f"mqtt://lastmile:{service_password}@127.0.0.1")
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


class Probe:
    """A paho client (MQTT 5 unless told) recording the broker's answers and what arrives."""

    def __init__(
        self, port: int, username: str | None, password: str | None, *, protocol: int = 5
    ) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.pubacks: dict[int, int] = {}
        self.subacks: dict[int, list[int]] = {}
        self.connack: int | None = None
        self._changed = threading.Condition()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"probe-{uuid.uuid4().hex[:10]}",
            protocol=mqtt.MQTTv5 if protocol == 5 else mqtt.MQTTv311,
        )
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.on_connect = self._on_connect
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        self.wait_for(lambda: self.connack is not None, "CONNACK")
        if self.connack != 0:
            self.close()  # refused: do not let paho keep reconnecting

    def _record(self, change: Callable[[], None]) -> None:
        with self._changed:
            change()
            self._changed.notify_all()

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self._record(lambda: setattr(self, "connack", reason.value))

    def _on_publish(self, _c: Any, _u: Any, mid: int, reason: Any, _p: Any) -> None:
        self._record(lambda: self.pubacks.__setitem__(mid, reason.value))

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, reasons: Any, _p: Any) -> None:
        self._record(lambda: self.subacks.__setitem__(mid, [r.value for r in reasons]))

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        self._record(lambda: self.messages.append((message.topic, bytes(message.payload))))

    def wait_for(self, done: Callable[[], bool], what: str, timeout_s: float = 10) -> None:
        with self._changed:
            if not self._changed.wait_for(done, timeout_s):
                raise AssertionError(f"no {what} within {timeout_s} s")

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> int:
        """Publish at QoS 1; the PUBACK's reason code (always 0 on MQTT 3.1.1)."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        self.wait_for(lambda: info.mid in self.pubacks, f"PUBACK for {topic}")
        return self.pubacks[info.mid]

    def subscribe(self, *topics: str) -> list[int]:
        _, mid = self.client.subscribe([(t, 1) for t in topics])
        assert mid is not None
        self.wait_for(lambda: mid in self.subacks, "SUBACK")
        return self.subacks[mid]

    def received(self, topic: str, payload: bytes) -> bool:
        with self._changed:
            return (topic, payload) in self.messages

    def wait_for_message(self, topic: str, payload: bytes) -> None:
        self.wait_for(lambda: self.received(topic, payload), f"{payload!r} on {topic}")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


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

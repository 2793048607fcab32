"""Issue 17: device credentials rotated and revoked through the API take effect on a real
Mosquitto without a restart. The service manages the broker's files
(LASTMILE_MOSQUITTO_ACL_DIR) and reloads it (LASTMILE_MOSQUITTO_RELOAD_COMMAND: here a SIGHUP
to the test's broker). The drivers' app's device keys too: a key created through the API
connects with its prefix and the key (as api/driver_mqtt.py offers), publishes only its
vehicle's position topic, and is refused once revoked. Plain TCP: what the broker checks is
the same on its WebSocket listener, which not every Mosquitto build has."""

from __future__ import annotations

import getpass
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from store.secrets import key_prefix
from tests.api.service import Service, running
from tests.api.test_service import SHIFT
from tests.telematics.acl_store import export, make_store
from tests.telematics.mqtt_probe import NOT_AUTHORIZED, Probe, accepted
from tests.telematics.test_acl_broker import _free_port, _mosquitto

pytestmark = [pytest.mark.security, pytest.mark.integration]


@dataclass
class Managed:
    service: Service
    port: int
    organisation_id: str
    service_password: str


def _until(done: Callable[[], bool], what: str, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        time.sleep(0.1)


@pytest.fixture
def managed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Managed]:
    """A Mosquitto started from an export of a store, and the service on that store managing
    the same files."""
    binary = _mosquitto()
    store = make_store(tmp_path)
    out = tmp_path / "export"
    password = f"svc-{uuid.uuid4().hex}"
    port = _free_port()
    mqtt_url = f"mqtt://lastmile:{password}@127.0.0.1:{port}"
    export(store, out, monkeypatch, mqtt_url=mqtt_url)
    config = tmp_path / "broker.conf"
    config.write_text(
        f"listener {port} 127.0.0.1\nuser {getpass.getuser()}\n"
        + (out / "mosquitto.conf").read_text()
    )
    log = tmp_path / "mosquitto.log"
    with log.open("wb") as log_out:
        broker = subprocess.Popen([binary, "-v", "-c", str(config)], stdout=log_out, stderr=log_out)
    try:
        _until(lambda: _connects(port, "lastmile", password), "the broker up")
        with running(
            store.url,
            tmp_path,
            mqtt_url=mqtt_url,
            mosquitto_acl_dir=out,
            mosquitto_reload_command=f"kill -HUP {broker.pid}",
        ) as service:
            org = service.client.get("/v1/organisation", headers=service.headers()).json()["id"]
            yield Managed(service, port, org, password)
    finally:
        broker.terminate()
        broker.wait(timeout=10)
        store.engine.dispose()


def _connects(port: int, username: str, password: str) -> bool:
    try:
        probe = Probe(port, username, password)
    except OSError:  # not listening yet
        return False
    ok = probe.connack == 0
    probe.close()
    return ok


def test_register_rotate_and_revoke_reach_the_broker_without_a_restart(managed: Managed) -> None:
    s, port = managed.service, managed.port
    body = {"id": "van-a", "start": {"lat": 60.17, "lon": 24.94}, "shift": SHIFT}
    assert s.client.post("/v1/vehicles", json=body, headers=s.headers()).status_code == 201
    r = s.client.post("/v1/vehicles/van-a/devices", json={}, headers=s.headers())
    assert r.status_code == 201, r.text
    device = r.json()
    assert device["broker_acl"] == "reloading"
    user, first = device["mqtt_username"], device["mqtt_password"]
    # Registered: the new account connects and publishes on its organisation's van-a only
    # (another organisation in the store has a van-a too).
    _until(lambda: _connects(port, user, first), "the new device connects")
    probe = Probe(port, user, first)
    assert accepted(probe.publish(device["publish_topic"], b"here"))
    assert probe.publish("fleet/van-a/position", b"spoof") == NOT_AUTHORIZED
    probe.close()

    # Rotated: the old password is refused, the new one connects.
    r = s.client.post(
        f"/v1/vehicles/van-a/devices/{device['device_id']}/rotate", headers=s.headers()
    )
    assert r.status_code == 200, r.text
    second = r.json()["mqtt_password"]
    _until(lambda: not _connects(port, user, first), "the old password refused")
    assert _connects(port, user, second)

    # Revoked: refused at connect, and a session still open is ended.
    open_session = Probe(port, user, second)
    assert accepted(open_session.publish(device["publish_topic"], b"still"))
    r = s.client.delete(f"/v1/vehicles/van-a/devices/{device['device_id']}", headers=s.headers())
    assert r.status_code == 200, r.text
    _until(lambda: not _connects(port, user, second), "the revoked device refused")
    # Mosquitto ends the sessions of an account it no longer has when it reloads.
    _until(lambda: not open_session.client.is_connected(), "the open session ended")
    open_session.close()
    metrics = s.client.get("/metrics").text
    assert 'lastmile_acl_reloads_total{result="reloaded"} 3.0' in metrics


def test_settings_that_would_lock_the_service_out_are_refused(tmp_path: Path) -> None:
    """Managing the files needs the service's own MQTT password (else the export writes a new
    one and the reload locks the service out) and a reload command: refused at start."""
    from api.app import create_app
    from api.settings import Settings

    for mqtt_url, command, named in (
        ("mqtt://127.0.0.1:1883", "true", "LASTMILE_MQTT_URL"),
        (None, "true", "LASTMILE_MQTT_URL"),
        ("mqtt://u:p@127.0.0.1:1883", None, "LASTMILE_MOSQUITTO_RELOAD_COMMAND"),
    ):
        settings = Settings(
            data_dir=tmp_path,
            mqtt=False,
            mqtt_url=mqtt_url,
            mosquitto_acl_dir=tmp_path / "acl",
            mosquitto_reload_command=command,
        )
        with pytest.raises(ValueError, match=named):
            create_app(settings)


def test_a_device_key_publishes_its_vehicles_positions_only_until_revoked(
    managed: Managed,
) -> None:
    s, port, org = managed.service, managed.port, managed.organisation_id
    for van in ("van-a", "van-b"):
        body = {"id": van, "start": {"lat": 60.17, "lon": 24.94}, "shift": SHIFT}
        assert s.client.post("/v1/vehicles", json=body, headers=s.headers()).status_code == 201
    # A key of another role changes nothing at the broker: no reload.
    r = s.client.post("/v1/keys", json={"role": "dispatcher"}, headers=s.headers())
    assert r.status_code == 201, r.text
    body = {"name": "phone", "role": "device", "vehicle_id": "van-a"}
    r = s.client.post("/v1/keys", json=body, headers=s.headers())
    assert r.status_code == 201, r.text
    key_id, key = r.json()["id"], r.json()["key"]
    user = key_prefix(key)  # the user name mqtt_offer gives the drivers' app
    assert user is not None
    _until(lambda: _connects(port, user, key), "the new device key connects")
    assert not _connects(port, user, key[:-1] + ("A" if key[-1] != "A" else "B"))
    assert not _connects(port, f"lm_{user}", key)

    own, other = f"{org}/fleet/van-a/position", f"{org}/fleet/van-b/position"
    # MQTT 5: the broker answers an unauthorised publish with 0x87.
    phone = Probe(port, user, key)
    assert accepted(phone.publish(own, b"here"))
    assert phone.publish(other, b"spoof") == NOT_AUTHORIZED
    assert phone.publish(f"{org}/fleet/van-a/events", b"spoof") == NOT_AUTHORIZED
    assert phone.publish("fleet/van-a/position", b"spoof") == NOT_AUTHORIZED
    phone.close()
    # MQTT 3.1.1: the broker acks and drops it; the service's subscription never sees it.
    service = Probe(port, "lastmile", managed.service_password)
    assert all(code < 0x80 for code in service.subscribe(f"{org}/fleet/+/position"))
    old_phone = Probe(port, user, key, protocol=4)
    old_phone.publish(other, b"spoof-311")
    old_phone.publish(own, b"here-311")
    service.wait_for_message(own, b"here-311")
    assert not service.received(other, b"spoof-311")
    old_phone.close()
    service.close()

    # Revoked: refused at connect, and a session still open is ended.
    open_session = Probe(port, user, key)
    r = s.client.delete(f"/v1/keys/{key_id}", headers=s.headers())
    assert r.status_code == 200, r.text
    _until(lambda: not _connects(port, user, key), "the revoked key refused")
    _until(lambda: not open_session.client.is_connected(), "the open session ended")
    open_session.close()
    metrics = s.client.get("/metrics").text
    assert 'lastmile_acl_reloads_total{result="reloaded"} 2.0' in metrics

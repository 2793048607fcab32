"""The drivers' app's device keys in the Mosquitto export (api/driver_mqtt.py, ADR 0014): a
live device key bound to a vehicle gets an account (user name its prefix, as ``mqtt_offer``
gives it; its stored ``$7$`` hash) that may publish its vehicle's position topic and nothing
else; revoked keys, keys with no vehicle and keys made before their hash was stored are left
out. A real Mosquitto enforcing it: test_acl_sync_broker.py."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from store.db import transaction
from store.schema import ApiKey, VehicleRow
from store.secrets import check_device_password, hash_device_password, key_prefix, new_api_key
from telematics.acl import (
    DeviceEntry,
    KeyEntry,
    MqttAccount,
    acl_text,
    password_file_text,
    plan_accounts,
    service_account,
)
from tests.api.service import running
from tests.api.test_service import SHIFT
from tests.telematics.acl_store import Store, export, make_store, password_lines

pytestmark = pytest.mark.security

HASH = hash_device_password("x", salt=b"0123456789ab")


def _service() -> MqttAccount:
    return service_account("lastmile", HASH)


def _key(vehicle: str = "van-a", username: str = "0123456789ab", key_id: str = "k-1") -> KeyEntry:
    return KeyEntry(key_id, "org1", vehicle, username, HASH)


# --- on paper -----------------------------------------------------------------------------


def test_a_device_key_may_write_its_vehicles_position_topic_and_nothing_else() -> None:
    """Its block in the ACL, line by line: no read line, no events or gpsd topic, no
    deprecated un-prefixed topic; its password line carries the stored hash as it is."""
    accounts, skipped = plan_accounts(_service(), [], keys=[_key()])
    assert skipped == []
    text = acl_text(accounts[1:])
    assert text == (
        "# device key k-1: vehicle van-a, the drivers' app\n"
        "user 0123456789ab\n"
        "topic write org1/fleet/van-a/position\n"
    )
    assert password_file_text(accounts[1:]) == f"0123456789ab:{HASH}\n"


def test_a_key_and_a_device_of_one_vehicle_both_get_accounts() -> None:
    """The phone and a tracker of the same van share its position topic: one vehicle, no
    clash."""
    device = DeviceEntry("d-a", "org1", "van-a", "dev-a", HASH, "fleet")
    accounts, skipped = plan_accounts(_service(), [device], keys=[_key()])
    assert skipped == []
    assert [a.username for a in accounts] == ["lastmile", "dev-a", "0123456789ab"]


def test_keys_that_cannot_be_written_exactly_are_left_out_and_say_so() -> None:
    """A vehicle id with a wildcard, and a user name taken by another account (both
    accounts then stay out, as for devices)."""
    device = DeviceEntry("d-a", "org1", "van-a", "0123456789ab", HASH, "fleet")
    keys = [_key("van+", "aaaaaaaaaaaa", "k-wild"), _key("van-b")]
    accounts, skipped = plan_accounts(_service(), [device], keys=keys)
    assert [a.username for a in accounts] == ["lastmile"]
    why = {s.device_id: (s.kind, s.reason) for s in skipped}
    assert why["k-wild"][0] == "api_key"
    assert "wildcard" in why["k-wild"][1]
    assert why["k-1"] == ("api_key", "username '0123456789ab' is taken by another account")
    assert why["d-a"][0] == "device"


# --- from the store -----------------------------------------------------------------------


@dataclass
class Keys:
    live: str
    revoked: str
    unbound: str
    no_hash: str


def _add_keys(store: Store) -> Keys:
    """Organisation 1's device keys: for van-a (live), for van-b (revoked), one with no
    vehicle (made before keys were bound) and one for van-b made before hashes were stored."""
    made: dict[str, str] = {}
    with transaction(store.sessions) as session:
        vehicles = {
            v.external_id: v.id
            for v in session.scalars(
                select(VehicleRow).where(VehicleRow.organisation_id == store.org1)
            )
        }
        for name, vehicle, revoked, hashed in (
            ("live", "van-a", False, True),
            ("revoked", "van-b", True, True),
            ("unbound", None, False, True),
            ("no_hash", "van-b", False, False),
        ):
            key, prefix, key_hash = new_api_key()
            made[name] = key
            session.add(
                ApiKey(
                    organisation_id=store.org1,
                    role="device",
                    prefix=prefix,
                    key_hash=key_hash,
                    vehicle_id=vehicles[vehicle] if vehicle else None,
                    mqtt_hash=hash_device_password(key) if hashed else None,
                    revoked_at=datetime.now(UTC) if revoked else None,
                )
            )
    return Keys(**made)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    made = make_store(tmp_path)
    yield made
    made.engine.dispose()


def test_export_holds_live_bound_device_keys_only(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = _add_keys(store)
    out = tmp_path / "export"
    summary = export(store, out, monkeypatch)
    assert summary["devices"] == 6
    assert summary["device_keys"] == 1
    assert summary["skipped"] == []
    lines = password_lines(out)
    user = key_prefix(keys.live)
    assert user is not None
    assert check_device_password(keys.live, lines[user])
    for left_out in (keys.revoked, keys.unbound, keys.no_hash):
        assert key_prefix(left_out) not in lines
    acl = (out / "acl").read_text()
    block = acl[acl.index(f"user {user}\n") :].split("\n\n")[0]
    assert block.splitlines() == [
        f"user {user}",
        f"topic write {store.org1}/fleet/van-a/position",
    ]
    for left_out in (keys.revoked, keys.unbound, keys.no_hash):
        assert f"user {key_prefix(left_out)}\n" not in acl
    # One organisation's export holds only its own keys.
    other = export(store, tmp_path / "two", monkeypatch, "--organisation", store.org2)
    assert other["device_keys"] == 0
    assert user not in password_lines(tmp_path / "two")


def test_keys_made_and_revoked_through_the_api_come_and_go(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``POST /v1/keys`` stores a device key's Mosquitto hash (never the key), other roles
    get none; after ``DELETE /v1/keys/{id}`` the next export leaves the key out."""
    with running(store.url, tmp_path / "service") as s:
        body = {"id": "van-k", "start": {"lat": 60.17, "lon": 24.94}, "shift": SHIFT}
        assert s.client.post("/v1/vehicles", json=body, headers=s.headers()).status_code == 201
        r = s.client.post(
            "/v1/keys", json={"role": "device", "vehicle_id": "van-k"}, headers=s.headers()
        )
        assert r.status_code == 201, r.text
        device = r.json()
        r = s.client.post("/v1/keys", json={"role": "dispatcher"}, headers=s.headers())
        assert r.status_code == 201, r.text
        dispatcher = r.json()
        with store.sessions() as session:
            row = session.get(ApiKey, device["id"])
            assert row is not None
            assert row.mqtt_hash is not None
            assert check_device_password(device["key"], row.mqtt_hash)
            assert device["key"] not in (row.mqtt_hash, row.key_hash, row.name, row.prefix)
            other = session.get(ApiKey, dispatcher["id"])
            assert other is not None
            assert other.mqtt_hash is None
        user = key_prefix(device["key"])
        assert user is not None
        out = tmp_path / "export"
        org = s.client.get("/v1/organisation", headers=s.headers()).json()["id"]
        export(store, out, monkeypatch)
        assert check_device_password(device["key"], password_lines(out)[user])
        assert f"user {user}\ntopic write {org}/fleet/van-k/position\n" in (out / "acl").read_text()
        assert key_prefix(dispatcher["key"]) not in password_lines(out)

        r = s.client.delete(f"/v1/keys/{device['id']}", headers=s.headers())
        assert r.status_code == 200, r.text
        export(store, out, monkeypatch)
        assert user not in password_lines(out)
        assert f"user {user}\n" not in (out / "acl").read_text()

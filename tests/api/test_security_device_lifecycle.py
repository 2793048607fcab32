"""Issue 17: device credentials bound to one vehicle of one organisation, rotated and revoked
without a restart; API keys revoked (and their dashboard sessions with them). On SQLite and
PostgreSQL; the broker's side is tests/telematics/test_acl_sync_broker.py."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.api.service import Service, running
from tests.api.test_security_tenancy import _other_tenant, _vehicle

pytestmark = pytest.mark.security


@pytest.fixture
def service(database_url: str, tmp_path: Path) -> Iterator[Service]:
    with running(database_url, tmp_path) as s:
        yield s


def _register(s: Service, key: str, vehicle_id: str, protocol: str = "osmand") -> Any:
    r = s.client.post(
        f"/v1/vehicles/{vehicle_id}/devices", json={"protocol": protocol}, headers=s.headers(key)
    )
    assert r.status_code == 201, r.text
    return r.json()


def _osmand(s: Service, device: str, ago_s: int = 30) -> Any:
    """A fix from ``ago_s`` seconds ago (later ones further east: never a duplicate)."""
    stamp = int(datetime.now(UTC).timestamp()) - ago_s
    fix = {"id": device, "lat": 60.17, "lon": 24.94 + (30 - ago_s) * 1e-4, "timestamp": stamp}
    r = s.client.get("/osmand", params=fix)
    return (r.status_code, r.json())


def test_rotating_an_osmand_device_refuses_the_old_identifier_at_once(service: Service) -> None:
    """The rotated device answers a new identifier and password (shown once); /osmand refuses
    the old identifier from the next request, exactly as an unknown one, and takes the new."""
    s = service
    _vehicle(s, s.admin, "van-1")
    device = _register(s, s.admin, "van-1")
    old = device["external_device_id"]
    assert _osmand(s, old)[1] == {"status": "applied", "reason": ""}
    r = s.client.post(
        f"/v1/vehicles/van-1/devices/{device['device_id']}/rotate", headers=s.headers()
    )
    assert r.status_code == 200, r.text
    rotated = r.json()
    assert rotated["device_id"] == device["device_id"]
    assert rotated["external_device_id"] != old
    assert rotated["mqtt_password"] != device["mqtt_password"]
    assert rotated["broker_acl"] == "not_managed"
    assert _osmand(s, old) == _osmand(s, "never-issued")
    # The same device under its new identifier: a later fix is applied to the same van.
    assert _osmand(s, rotated["external_device_id"], ago_s=10)[1] == {
        "status": "applied",
        "reason": "",
    }


def test_a_revoked_device_is_refused_and_listed_as_revoked(service: Service) -> None:
    s = service
    _vehicle(s, s.admin, "van-1")
    device = _register(s, s.admin, "van-1")
    ident = device["external_device_id"]
    r = s.client.delete(f"/v1/vehicles/van-1/devices/{device['device_id']}", headers=s.headers())
    assert r.status_code == 200, r.text
    assert r.json()["revoked_at"] is not None
    assert _osmand(s, ident) == _osmand(s, "never-issued")
    listed = s.client.get("/v1/vehicles/van-1/devices", headers=s.headers()).json()
    assert [(d["device_id"], d["revoked_at"] is not None) for d in listed] == [
        (device["device_id"], True)
    ]
    assert all("password" not in k for d in listed for k in d)
    # Revoked is final: rotating it is refused, revoking again changes nothing.
    again = s.client.post(
        f"/v1/vehicles/van-1/devices/{device['device_id']}/rotate", headers=s.headers()
    )
    assert again.status_code == 409
    twice = s.client.delete(
        f"/v1/vehicles/van-1/devices/{device['device_id']}", headers=s.headers()
    )
    assert twice.json()["revoked_at"] == r.json()["revoked_at"]
    actions = [e["action"] for e in s.client.get("/v1/audit", headers=s.headers()).json()]
    assert actions.count("device_revoked") == 1
    assert "device_registered" in actions


def test_another_organisation_cannot_see_rotate_or_revoke_a_device(service: Service) -> None:
    """Both organisations have a van-1; the other one's key reaches only its own van-1: our
    device is "not found" there, by id or by list, and stays working."""
    s, theirs = service, _other_tenant(service)
    _vehicle(s, s.admin, "van-1")
    _vehicle(s, theirs, "van-1")
    device = _register(s, s.admin, "van-1")
    path = f"/v1/vehicles/van-1/devices/{device['device_id']}"
    assert s.client.post(f"{path}/rotate", headers=s.headers(theirs)).status_code == 404
    assert s.client.delete(path, headers=s.headers(theirs)).status_code == 404
    assert s.client.get("/v1/vehicles/van-1/devices", headers=s.headers(theirs)).json() == []
    assert _osmand(s, device["external_device_id"])[1] == {"status": "applied", "reason": ""}


def test_device_management_is_for_dispatchers(service: Service) -> None:
    s = service
    _vehicle(s, s.admin, "van-1")
    device = _register(s, s.admin, "van-1")
    for role, vehicle in (("support", None), ("device", "van-1")):
        key = s.key(role, vehicle)
        path = f"/v1/vehicles/van-1/devices/{device['device_id']}"
        assert s.client.delete(path, headers=s.headers(key)).status_code == 403
        assert s.client.get("/v1/vehicles/van-1/devices", headers=s.headers(key)).status_code == 403


def test_a_revoked_api_key_is_refused_from_the_next_request(service: Service) -> None:
    """A device key revoked by the admin: its next position is 401; another organisation's
    admin cannot revoke it (404); the revocation is in the audit log."""
    s, theirs = service, _other_tenant(service)
    _vehicle(s, s.admin, "van-1")
    key = s.key("device", "van-1")
    sent = [0]

    def post() -> Any:
        sent[0] += 1  # a later fix each time: a repeated one is a duplicate
        at = datetime.now(UTC) - timedelta(seconds=60 - sent[0])
        fix = {"lat": 60.17, "lon": 24.94 + sent[0] * 1e-4, "time": at.isoformat()}
        return s.client.post("/v1/vehicles/van-1/positions", json=fix, headers=s.headers(key))

    assert post().status_code == 200
    (row,) = [
        k for k in s.client.get("/v1/keys", headers=s.headers()).json() if k["role"] == "device"
    ]
    assert s.client.delete(f"/v1/keys/{row['id']}", headers=s.headers(theirs)).status_code == 404
    assert post().status_code == 200
    r = s.client.delete(f"/v1/keys/{row['id']}", headers=s.headers())
    assert r.status_code == 200, r.text
    assert r.json()["revoked"] is True
    assert post().status_code == 401
    entries = s.client.get("/v1/audit", headers=s.headers()).json()
    assert [e["object_id"] for e in entries if e["action"] == "api_key_revoked"] == [row["id"]]

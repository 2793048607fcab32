"""Issue 21, items 1 and 2 (and issue 17's topics): one tenant's ids never reach another
tenant's vehicles or devices.

1. A fix lands on the caller's own vehicle: over HTTP by the vehicle's row (never a lookup by
   its id across organisations), over MQTT by an id that must be unique across organisations
   at the moment the fix arrives (an id a second tenant takes later is refused as ambiguous,
   never filed on the first tenant's vehicle from a remembered mapping).
2. OsmAnd devices are known by an identifier the server issues (128 random bits), not one a
   client picks; registering an id never tells whether another tenant holds it; and /osmand
   answers an unknown, a revoked and a shared identifier alike.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from store.db import make_engine, session_factory, transaction
from store.repo import create_organisation
from store.schema import DeadLetterRow, DeviceRow, PositionRow, VehicleRow
from store.secrets import hash_device_password
from telematics.ingest import Ingester
from tests.api.service import Service
from tests.api.test_service import SHIFT

pytestmark = pytest.mark.security

HOME = {"lat": 60.1699, "lon": 24.9384}


def _other_tenant(s: Service) -> str:
    """A second organisation in the same store: its admin key."""
    engine = make_engine(s.url)
    try:
        _, key = create_organisation(session_factory(engine), "Other carrier", "UTC")
    finally:
        engine.dispose()
    return key


def _vehicle(s: Service, key: str, vehicle_id: str) -> None:
    body = {"id": vehicle_id, "start": HOME, "shift": SHIFT}
    r = s.client.post("/v1/vehicles", json=body, headers=s.headers(key))
    assert r.status_code == 201, r.text


def _fix(lat: float, seconds_ago: float = 0) -> bytes:
    at = (datetime.now(UTC) - timedelta(seconds=seconds_ago)).isoformat()
    return json.dumps({"lat": lat, "lon": 24.9384, "time": at}).encode()


def _positions(s: Service) -> dict[str, list[float]]:
    """Organisation id -> the latitudes stored for its vehicles, in order."""
    engine = make_engine(s.url)
    try:
        with session_factory(engine)() as session:
            rows = session.execute(
                select(VehicleRow.organisation_id, PositionRow.lat)
                .join(VehicleRow, VehicleRow.id == PositionRow.vehicle_id)
                .order_by(PositionRow.id)
            ).all()
    finally:
        engine.dispose()
    out: dict[str, list[float]] = {}
    for organisation_id, lat in rows:
        out.setdefault(organisation_id, []).append(lat)
    return out


def _organisation_of(s: Service, key: str) -> str:
    r = s.client.get("/v1/organisation", headers=s.headers(key))
    assert r.status_code == 200, r.text
    org_id: str = r.json()["id"]
    return org_id


def _ingester(s: Service) -> Ingester:
    ingester: Ingester = s.client.app.state.ingester  # type: ignore[attr-defined]
    return ingester


# --- item 1: fixes by tenant ------------------------------------------------------------------


def test_a_fix_over_http_lands_on_the_callers_own_vehicle(service: Service) -> None:
    """Org A's van-1 reports over HTTP; org B then creates its own van-1 and reports: each
    fix is stored on its own organisation's vehicle (before the fix, B's fix went to A's
    van-1, the mapping the first fix had cached)."""
    s, a_key, b_key = service, service.admin, _other_tenant(service)
    _vehicle(s, a_key, "van-1")
    r = s.client.post(
        "/v1/vehicles/van-1/positions", content=_fix(60.1701, 60), headers=s.headers()
    )
    assert r.json() == {"status": "applied", "reason": ""}
    _vehicle(s, b_key, "van-1")
    r = s.client.post(
        "/v1/vehicles/van-1/positions", content=_fix(60.1702, 30), headers=s.headers(b_key)
    )
    assert r.json() == {"status": "applied", "reason": ""}
    # And A's next fix is still A's: the ids are the same, the vehicles are not.
    r = s.client.post("/v1/vehicles/van-1/positions", content=_fix(60.1703), headers=s.headers())
    assert r.json() == {"status": "applied", "reason": ""}
    stored = _positions(s)
    assert stored == {
        _organisation_of(s, a_key): [60.1701, 60.1703],
        _organisation_of(s, b_key): [60.1702],
    }
    for key, lat in ((a_key, 60.1703), (b_key, 60.1702)):
        progress = s.client.get("/v1/vehicles/van-1/progress", headers=s.headers(key)).json()
        assert progress["lat"] == lat


def test_an_mqtt_fix_for_an_id_a_second_tenant_took_is_refused_not_misfiled(
    service: Service,
) -> None:
    """fleet/{id}/position carries no organisation: a vehicle id held by one organisation is
    applied to it, one held by two is refused as ambiguous, in a batch (prefetch) or alone,
    however many fixes the first organisation's vehicle sent before."""
    s, b_key = service, _other_tenant(service)
    ingester = _ingester(s)
    _vehicle(s, s.admin, "van-1")
    assert ingester.fleet_message("fleet/van-1/position", _fix(60.1711, 20)).status == "applied"
    with ingester.batch():
        ingester.prefetch({"van-1"})
        assert ingester.fleet_message("fleet/van-1/position", _fix(60.1712, 10)).status == "applied"
    _vehicle(s, b_key, "van-1")
    alone = ingester.fleet_message("fleet/van-1/position", _fix(60.1713, 5))
    with ingester.batch():
        ingester.prefetch({"van-1"})
        batched = ingester.fleet_message("fleet/van-1/position", _fix(60.1714, 0))
    tpv = {"class": "TPV", "lat": 60.1715, "lon": 24.9384, "time": datetime.now(UTC).isoformat()}
    gpsd = ingester.gpsd_message("fleet/van-1/gpsd", json.dumps(tpv).encode())
    for result in (alone, batched, gpsd):
        assert (result.status, result.reason) == ("rejected", "ambiguous_vehicle")
    assert _positions(s) == {_organisation_of(s, s.admin): [60.1711, 60.1712]}
    # Over HTTP, each organisation still reaches its own van-1.
    for key, lat in ((s.admin, 60.1716), (b_key, 60.1717)):
        r = s.client.post("/v1/vehicles/van-1/positions", content=_fix(lat), headers=s.headers(key))
        assert r.json() == {"status": "applied", "reason": ""}


def test_topics_that_name_the_organisation_reach_its_own_vehicle(service: Service) -> None:
    """Issue 17: ``{organisation}/fleet/{vehicle}/...``. Two organisations both have van-1:
    each one's fixes, gpsd reports and driver events land on its own van-1, in a batch or
    alone; a topic naming an organisation that has no such vehicle (or no organisation at
    all, or one that does not exist) is refused, never filed elsewhere."""
    s, b_key = service, _other_tenant(service)
    a, b = _organisation_of(s, s.admin), _organisation_of(s, b_key)
    _vehicle(s, s.admin, "van-1")
    _vehicle(s, b_key, "van-1")
    _vehicle(s, b_key, "van-2")
    ingester = _ingester(s)
    assert ingester.fleet_message(f"{a}/fleet/van-1/position", _fix(60.1711, 20)).status == (
        "applied"
    )
    with ingester.batch():
        ingester.prefetch({(a, "van-1"), (b, "van-1")})
        assert ingester.fleet_message(f"{b}/fleet/van-1/position", _fix(60.1721, 15)).status == (
            "applied"
        )
        assert ingester.fleet_message(f"{a}/fleet/van-1/position", _fix(60.1712, 10)).status == (
            "applied"
        )
    tpv = {"class": "TPV", "lat": 60.1722, "lon": 24.9384, "time": datetime.now(UTC).isoformat()}
    assert ingester.gpsd_message(f"{b}/fleet/van-1/gpsd", json.dumps(tpv).encode()).status == (
        "applied"
    )
    refused = [
        ingester.fleet_message(f"{a}/fleet/van-2/position", _fix(60.1799)),
        ingester.fleet_message("no-such-org/fleet/van-1/position", _fix(60.1799)),
        ingester.fleet_message("fleet/van-1/position", _fix(60.1799)),
        ingester.driver_event_message(
            f"{a}/fleet/van-2/events", b'{"order_id": "o1", "kind": "delivered"}'
        ),
    ]
    assert [r.reason for r in refused] == [
        "unknown_vehicle",
        "unknown_vehicle",
        "ambiguous_vehicle",
        "unknown_vehicle",
    ]
    assert _positions(s) == {a: [60.1711, 60.1712], b: [60.1721, 60.1722]}


def test_a_device_learns_its_organisations_topics(service: Service) -> None:
    """Registering a device answers the topics it publishes and reads on, under its own
    organisation; an OwnTracks device named by its device alone gets the server-issued MQTT
    username as its user (OwnTracks' default topic), unique across organisations."""
    s = service
    a = _organisation_of(s, s.admin)
    _vehicle(s, s.admin, "van-1")
    fleet = _register(s, s.admin, "van-1", {"protocol": "fleet"}).json()
    assert fleet["publish_topic"] == f"{a}/fleet/van-1/position"
    assert fleet["route_topic"] == f"{a}/fleet/van-1/route"
    phone = _register(s, s.admin, "van-1", {"protocol": "owntracks", "external_device_id": "p"})
    assert phone.status_code == 201, phone.text
    body = phone.json()
    assert body["external_device_id"] == f"{body['mqtt_username']}/p"
    assert body["publish_topic"] == f"owntracks/{body['mqtt_username']}/p"
    osmand = _register(s, s.admin, "van-1", {"protocol": "osmand"}).json()
    assert osmand["publish_topic"] is None


# --- item 2: device identifiers -------------------------------------------------------------


def _register(s: Service, key: str, vehicle_id: str, body: dict[str, Any]) -> Any:
    return s.client.post(f"/v1/vehicles/{vehicle_id}/devices", json=body, headers=s.headers(key))


def _osmand(s: Service, device: str, lat: float = 60.1699) -> Any:
    stamp = int(datetime.now(UTC).timestamp())
    return s.client.get(
        "/osmand", params={"id": device, "lat": lat, "lon": 24.94, "timestamp": stamp}
    )


def test_osmand_devices_get_an_identifier_the_server_issues(service: Service) -> None:
    """Registering an OsmAnd device returns the identifier to type into Traccar Client:
    URL-safe, 128 random bits or more, a new one each time; a client-chosen id for an OsmAnd
    device is refused naming the field (an IMEI or "dev-1" is guessable)."""
    s = service
    _vehicle(s, s.admin, "van-1")
    issued = []
    for _ in range(2):
        r = _register(s, s.admin, "van-1", {"protocol": "osmand"})
        assert r.status_code == 201, r.text
        issued.append(r.json()["external_device_id"])
    for ident in issued:
        # token_urlsafe(16): 22 characters of base64url, 6 bits each: 132 >= 128 bits.
        assert re.fullmatch(r"[A-Za-z0-9_-]{22,}", ident), ident
    assert issued[0] != issued[1]
    assert _osmand(s, issued[0]).json() == {"status": "applied", "reason": ""}
    r = _register(s, s.admin, "van-1", {"protocol": "osmand", "external_device_id": "dev-1"})
    assert r.status_code == 422, r.text
    assert [p["field"] for p in r.json()["error"]["problems"]] == ["external_device_id"]


def test_registering_never_tells_whether_another_tenant_holds_an_id(service: Service) -> None:
    """Org A registers OwnTracks anna/phone; org B registering the same id gets the same 201
    as for a fresh one (before the fix: 409, an oracle for every other tenant's ids). Within
    one organisation a duplicate is still refused. Over MQTT the topic carries no
    organisation, so an id two organisations hold is refused as ambiguous, on neither."""
    s, b_key = service, _other_tenant(service)
    _vehicle(s, s.admin, "van-1")
    _vehicle(s, s.admin, "van-2")
    _vehicle(s, b_key, "truck-9")
    body = {"protocol": "owntracks", "external_device_id": "anna/phone"}
    first = _register(s, s.admin, "van-1", body)
    assert first.status_code == 201, first.text
    fresh = _register(s, b_key, "truck-9", {**body, "external_device_id": "bob/tablet"})
    taken_elsewhere = _register(s, b_key, "truck-9", body)
    assert (fresh.status_code, taken_elsewhere.status_code) == (201, 201), taken_elsewhere.text
    assert taken_elsewhere.json().keys() == fresh.json().keys()
    again = _register(s, s.admin, "van-2", body)
    assert again.status_code == 409, again.text
    stamp = int(datetime.now(UTC).timestamp())
    fix = json.dumps({"_type": "location", "lat": 60.17, "lon": 24.94, "tst": stamp}).encode()
    result = _ingester(s).owntracks_message("owntracks/anna/phone", fix)
    assert (result.status, result.reason) == ("rejected", "ambiguous_device")
    assert _positions(s) == {}


def test_unknown_revoked_and_shared_osmand_ids_get_one_answer(service: Service) -> None:
    """/osmand answers an identifier nobody holds, a revoked device's and one two
    organisations hold (registered with client-chosen ids before the fix) with the same
    status and body, GET or POST, query or JSON: nothing says whose an id is or was."""
    s, b_key = service, _other_tenant(service)
    _vehicle(s, s.admin, "van-1")
    _vehicle(s, b_key, "van-1")
    r = _register(s, s.admin, "van-1", {"protocol": "osmand"})
    assert r.status_code == 201, r.text
    revoked = r.json()["external_device_id"]
    assert _osmand(s, revoked).json()["status"] == "applied"
    engine = make_engine(s.url)
    try:
        with transaction(session_factory(engine)) as session:
            session.execute(
                update(DeviceRow)
                .where(DeviceRow.external_device_id == revoked)
                .values(revoked_at=datetime.now(UTC))
            )
            for vehicle in session.scalars(select(VehicleRow)):
                session.add(
                    DeviceRow(
                        organisation_id=vehicle.organisation_id,
                        vehicle_id=vehicle.id,
                        mqtt_username=f"legacy-{vehicle.id[:8]}",
                        password_hash=hash_device_password("x"),
                        protocol="osmand",
                        external_device_id="dev-1",
                    )
                )
    finally:
        engine.dispose()
    stamp = int(datetime.now(UTC).timestamp()) + 1

    def answers(device: str) -> list[tuple[int, str]]:
        query = {"id": device, "lat": "60.17", "lon": "24.94", "timestamp": str(stamp)}
        body = {
            "device_id": device,
            "location": {"timestamp": stamp, "coords": {"latitude": 60.17, "longitude": 24.94}},
        }
        got = [
            s.client.get("/osmand", params=query),
            s.client.post("/osmand", data=query),
            s.client.post("/osmand", content=json.dumps(body).encode()),
        ]
        return [(g.status_code, g.text) for g in got]

    unknown = answers("no-such-device-anywhere")
    assert unknown[0] == (400, '{"status":"rejected","reason":"unknown_device"}')
    assert answers(revoked) == unknown
    assert answers("dev-1") == unknown
    assert _positions(s) == {_organisation_of(s, s.admin): [60.1699]}
    with session_factory(engine)() as session:
        reasons = set(session.scalars(select(DeadLetterRow.reason)))
    engine.dispose()
    assert reasons == {"unknown_device"}

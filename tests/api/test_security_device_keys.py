"""Issue 21, item 6: a device key acts for its one vehicle, and a driver's event counts only
for an order on that vehicle's active route.

Device keys name their vehicle when created (stored on the key); one used for any other
vehicle gets 403, and a device key from before the binding (no vehicle) acts for none. A
driver event, over HTTP or MQTT, for an order that is not a stop of the vehicle's dispatched
route is refused (HTTP 409 ``order_not_on_route``; MQTT: dead letter with that reason) and
changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from store.db import make_engine, session_factory, transaction
from store.repo import create_organisation
from store.schema import ApiKey, DeadLetterRow, EventRow, Organisation, PositionRow
from store.secrets import new_api_key
from telematics.ingest import Ingester
from tests.api.service import Service, running
from tests.api.test_service import SHIFT

pytestmark = pytest.mark.security

DEPOT = {"lat": 60.1699, "lon": 24.9384}
STOPS = {"a": (60.1665, 24.9433), "b": (60.1700, 24.9500)}
FIX = json.dumps({"lat": 60.1699, "lon": 24.9384, "time": datetime.now(UTC).isoformat()})


def _post(s: Service, path: str, body: dict[str, Any], key: str | None = None) -> Any:
    return s.client.post(path, json=body, headers=s.headers(key))


def _vehicle(s: Service, vehicle_id: str, key: str | None = None) -> None:
    r = _post(s, "/v1/vehicles", {"id": vehicle_id, "start": DEPOT, "shift": SHIFT}, key)
    assert r.status_code == 201, r.text


def _order(s: Service, order_id: str, lat: float, lon: float) -> None:
    body = {"id": order_id, "location": {"lat": lat, "lon": lon}, "service_s": 60}
    assert _post(s, "/v1/orders", body).status_code == 201


def _device_key(s: Service, vehicle_id: str) -> str:
    r = _post(s, "/v1/keys", {"role": "device", "vehicle_id": vehicle_id})
    assert r.status_code == 201, r.text
    key: str = r.json()["key"]
    return key


@pytest.fixture
def routed(database_url: str, tmp_path: Path) -> Iterator[Service]:
    """van-1 dispatched on orders a and b; van-2 and order c exist but are on no route."""
    with running(database_url, tmp_path) as s:
        _vehicle(s, "van-1")
        for oid, (lat, lon) in STOPS.items():
            _order(s, oid, lat, lon)
        plan_id = _post(s, "/v1/plans", {"time_limit_s": 0.5}).json()["plan_id"]
        assert s.wait(plan_id)["status"] == "succeeded"
        assert s.client.post(f"/v1/plans/{plan_id}/dispatch", headers=s.headers()).is_success
        _vehicle(s, "van-2")
        _order(s, "c", 60.1680, 24.9440)
        yield s


def _status(s: Service, order_id: str) -> str:
    status: str = s.client.get(f"/v1/orders/{order_id}", headers=s.headers()).json()["status"]
    return status


def _problem_fields(response: Any) -> list[str]:
    return [p["field"] for p in response.json()["error"]["problems"]]


def test_a_device_key_must_name_its_vehicle(service: Service) -> None:
    """POST /v1/keys with role device and no vehicle_id, or one the organisation does not
    have: 422 naming vehicle_id. Other roles may not name one. The key created says (and the
    list shows) which vehicle it is for."""
    s = service
    _vehicle(s, "van-1")
    for body in ({"role": "device"}, {"role": "device", "vehicle_id": "nope"}):
        r = _post(s, "/v1/keys", body)
        assert r.status_code == 422, r.text
        assert _problem_fields(r) == ["vehicle_id"], r.text
    r = _post(s, "/v1/keys", {"role": "support", "vehicle_id": "van-1"})
    assert r.status_code == 422, r.text
    assert _problem_fields(r) == ["vehicle_id"]
    # Another organisation's vehicle of that id is not this organisation's.
    engine = make_engine(s.url)
    try:
        _, other = create_organisation(session_factory(engine), "Other carrier", "UTC")
    finally:
        engine.dispose()
    r = _post(s, "/v1/keys", {"role": "device", "vehicle_id": "van-1"}, other)
    assert r.status_code == 422, r.text
    r = _post(s, "/v1/keys", {"role": "device", "vehicle_id": "van-1", "name": "van 1 phone"})
    assert r.status_code == 201, r.text
    assert r.json()["vehicle_id"] == "van-1"
    listed = s.client.get("/v1/keys", headers=s.headers()).json()
    assert [k["vehicle_id"] for k in listed if k["role"] == "device"] == ["van-1"]
    assert {k["vehicle_id"] for k in listed if k["role"] != "device"} == {None}


def test_a_device_key_acts_for_its_own_vehicle_only(routed: Service) -> None:
    """van-1's key posts van-1's fixes and events; for van-2 (same organisation) both are 403
    and nothing is stored. A device key with no vehicle (made before keys were bound) acts for
    none."""
    s = routed
    van1 = _device_key(s, "van-1")
    r = s.client.post("/v1/vehicles/van-1/positions", content=FIX, headers=s.headers(van1))
    assert r.json() == {"status": "applied", "reason": ""}
    for path, extra in (
        ("/v1/vehicles/van-2/positions", {"content": FIX}),
        ("/v1/vehicles/van-2/events", {"json": {"order_id": "a", "kind": "delivered"}}),
        ("/v1/vehicles/nope/positions", {"content": FIX}),
    ):
        r = s.client.post(path, headers=s.headers(van1), **extra)
        assert r.status_code == 403, (path, r.text)
        assert r.json()["error"]["code"] == "forbidden"
    engine = make_engine(s.url)
    try:
        with transaction(session_factory(engine)) as session:
            org_id = session.scalars(select(Organisation.id)).one()
            key, prefix, key_hash = new_api_key()
            session.add(
                ApiKey(organisation_id=org_id, role="device", prefix=prefix, key_hash=key_hash)
            )
        with session_factory(engine)() as session:
            positions = session.scalar(select(func.count()).select_from(PositionRow))
            events = session.scalar(
                select(func.count())
                .select_from(EventRow)
                .where(EventRow.kind.in_(("delivered", "failed", "skipped")))
            )
    finally:
        engine.dispose()
    assert positions == 1
    assert events == 0
    r = s.client.post("/v1/vehicles/van-1/positions", content=FIX, headers=s.headers(key))
    assert r.status_code == 403, r.text
    assert _status(s, "a") == "dispatched"


def test_a_driver_event_needs_the_order_on_the_vehicles_route(routed: Service) -> None:
    """Over HTTP: an order of the organisation that is not on van-1's route (c), or any order
    for van-2 (no route at all): 409 order_not_on_route, the order's status unchanged. Over
    MQTT: the same refusal, dead-lettered with that reason. An order on the route: 201."""
    s = routed
    van1, van2 = _device_key(s, "van-1"), _device_key(s, "van-2")
    before = {order: _status(s, order) for order in ("a", "b", "c")}
    assert before == {"a": "dispatched", "b": "dispatched", "c": "open"}
    for vehicle, key, order in (("van-1", van1, "c"), ("van-2", van2, "a")):
        event = {"order_id": order, "kind": "delivered"}
        r = _post(s, f"/v1/vehicles/{vehicle}/events", event, key)
        assert r.status_code == 409, r.text
        assert r.json()["error"]["code"] == "order_not_on_route"
    ingester: Ingester = s.client.app.state.ingester  # type: ignore[attr-defined]
    for topic, order in (("fleet/van-1/events", "c"), ("fleet/van-2/events", "b")):
        payload = json.dumps({"order_id": order, "kind": "failed", "reason": "x"}).encode()
        result = ingester.driver_event_message(topic, payload)
        assert (result.status, result.reason) == ("rejected", "order_not_on_route")
    assert {order: _status(s, order) for order in ("a", "b", "c")} == before
    engine = make_engine(s.url)
    try:
        with session_factory(engine)() as session:
            letters = sorted(session.scalars(select(DeadLetterRow.reason)))
    finally:
        engine.dispose()
    assert letters == ["order_not_on_route", "order_not_on_route"]
    r = _post(s, "/v1/vehicles/van-1/events", {"order_id": "a", "kind": "delivered"}, van1)
    assert r.status_code == 201, r.text
    assert _status(s, "a") == "delivered"
    payload = json.dumps({"order_id": "b", "kind": "failed", "reason": "nobody home"}).encode()
    assert ingester.driver_event_message("fleet/van-1/events", payload).status == "applied"

"""The drivers' web app's API through the running service (issue 20), on SQLite and
PostgreSQL: a vehicle's stops with its own device key (and 404 to every other key), the
live route_version stream, and the driver's actions with proof of delivery, seen by the
customer on the tracking page and by support in the lookup."""

from __future__ import annotations

import base64
import json
import struct
import threading
import time
import uuid
import zlib
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from api.stream_caps import RETRY_AFTER_S, Slot, StreamCaps
from store.db import make_engine, session_factory
from store.repo import create_organisation
from store.schema import DeliveryProofRow, EventRow, OrderRow, OutboxRow
from tests.api.driver_fleet import ADDRESS_A, DEPOT, PLACES, Fleet, shift
from tests.api.live_state import tracking_token

pytestmark = pytest.mark.integration


def png(width: int = 2, height: int = 1) -> bytes:
    """A real (tiny, grey) PNG: the signature pad's kind of image."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


#: JPEG by its magic numbers (the service judges images by them; it never decodes them).
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01" + bytes(range(256)) * 4 + b"\xff\xd9"


def data_url(content_type: str, data: bytes) -> str:
    return f"data:{content_type};base64,{base64.b64encode(data).decode()}"


def _action(order_id: str, kind: str = "delivered", **fields: Any) -> dict[str, Any]:
    return {
        "action_id": str(uuid.uuid4()),
        "order_id": order_id,
        "kind": kind,
        "reason": None,
        "at": datetime.now(UTC).isoformat(),
        "lat": PLACES.get(order_id, (60.17, 24.94))[0],
        "lon": PLACES.get(order_id, (60.17, 24.94))[1],
        "accuracy_m": 8.5,
        "photo": None,
        "signature": None,
        **fields,
    }


def _count(url: str, model: Any, *where: Any) -> int:
    engine = make_engine(url)
    try:
        with session_factory(engine)() as session:
            return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)
    finally:
        engine.dispose()


def _order_row_id(url: str, order_id: str) -> str:
    engine = make_engine(url)
    try:
        with session_factory(engine)() as session:
            found = session.scalar(select(OrderRow.id).where(OrderRow.external_id == order_id))
    finally:
        engine.dispose()
    assert found is not None
    return found


def _fields(response: Any) -> list[str]:
    return [p["field"] for p in response.json()["error"]["problems"]]


def test_stops_in_route_order_with_what_the_driver_needs(fleet: Fleet) -> None:
    """The active route's stops in order, with address, window, instructions, the call link
    and the route's line; the ETag is the route_version and answers 304 when unchanged."""
    s = fleet.s
    token = tracking_token(s.url, "a")
    r = s.client.post(
        f"/t/{token}/instructions",
        data={"safe_place": "Behind the blue door", "access_code": "4321"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    r = fleet.get("/v1/vehicles/v1/stops")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["vehicle_id"] == "v1"
    assert body["plan_id"] is not None
    assert body["language"] == "en"
    assert body["support_phone"] is None
    assert body["geometry"]["type"] == "LineString"
    assert [stop["order_id"] for stop in body["stops"]] == fleet.route
    assert [stop["sequence"] for stop in body["stops"]] == [1, 2]
    a = next(stop for stop in body["stops"] if stop["order_id"] == "a")
    assert a["status"] == "pending"
    assert a["address"] == ADDRESS_A
    assert a["contact_name"] == "Customer a"
    assert a["call"] == "tel:+358401234567"
    assert (a["lat"], a["lon"]) == PLACES["a"]
    assert a["service_s"] == 120
    assert a["instructions"] == {"safe_place": "Behind the blue door", "access_code": "4321"}
    assert a["proof"] is None
    # The window the customer was told (the plan confirmation), else the order's own: inside it.
    window = a["window"]
    assert window is not None
    start, end = (datetime.fromisoformat(window[k]) for k in ("start", "end"))
    assert datetime.fromisoformat(fleet.window_a["start"]) <= start <= end
    assert end <= datetime.fromisoformat(fleet.window_a["end"])
    b = next(stop for stop in body["stops"] if stop["order_id"] == "b")
    assert b["instructions"] == {}

    etag = r.headers["etag"]
    assert etag == f'"{body["route_version"]}"'
    r = s.client.get(
        "/v1/vehicles/v1/stops", headers={**s.headers(fleet.key), "If-None-Match": etag}
    )
    assert r.status_code == 304
    assert r.headers["etag"] == etag
    # New instructions change the version: the same If-None-Match now gets the new list.
    s.client.post(f"/t/{token}/instructions", data={"notes": "Ring twice"})
    r = s.client.get(
        "/v1/vehicles/v1/stops", headers={**s.headers(fleet.key), "If-None-Match": etag}
    )
    assert r.status_code == 200
    assert r.headers["etag"] != etag
    a = next(stop for stop in r.json()["stops"] if stop["order_id"] == "a")
    assert a["instructions"] == {"notes": "Ring twice"}


def test_the_organisation_may_hide_customers_numbers(fleet: Fleet) -> None:
    """driver_sees_phone false: the call link is the support number (or none)."""
    s = fleet.s
    r = s.client.patch(
        "/v1/organisation",
        json={"branding": {"driver_sees_phone": False, "support_phone": "+358 9 123"}},
        headers=s.headers(),
    )
    assert r.status_code == 422, r.text
    assert _fields(r) == ["branding.support_phone"]
    r = s.client.patch(
        "/v1/organisation",
        json={"branding": {"driver_sees_phone": False, "support_phone": "+35891234567"}},
        headers=s.headers(),
    )
    assert r.status_code == 200, r.text
    assert r.json()["branding"]["driver_sees_phone"] is False
    body = fleet.get("/v1/vehicles/v1/stops").json()
    assert body["support_phone"] == "+35891234567"
    assert {stop["call"] for stop in body["stops"]} == {"tel:+35891234567"}
    assert "+358401234567" not in json.dumps(body)
    r = s.client.patch(
        "/v1/organisation", json={"branding": {"driver_sees_phone": False}}, headers=s.headers()
    )
    assert r.status_code == 200, r.text
    body = fleet.get("/v1/vehicles/v1/stops").json()
    assert body["support_phone"] is None
    assert {stop["call"] for stop in body["stops"]} == {None}


def test_other_keys_get_the_unknown_vehicles_404(fleet: Fleet) -> None:
    """Another vehicle's key, another organisation's key, an admin key: the 404 a vehicle
    that does not exist gets, and nothing of the route; a support key is refused by role."""
    s = fleet.s
    engine = make_engine(s.url)
    try:
        _, other_admin = create_organisation(session_factory(engine), "Other carrier", "UTC")
    finally:
        engine.dispose()
    # The other organisation has a vehicle named v1 too; its key is bound to that one.
    r = s.client.post(
        "/v1/vehicles",
        json={"id": "v1", "start": DEPOT, "shift": shift()},
        headers=s.headers(other_admin),
    )
    assert r.status_code == 201, r.text
    r = s.client.post(
        "/v1/keys", json={"role": "device", "vehicle_id": "v1"}, headers=s.headers(other_admin)
    )
    other_org_v1 = r.json()["key"]

    unknown = fleet.get("/v1/vehicles/ghost/stops")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["message"] == "no vehicle 'ghost'"
    nothing = {"error": {"code": "not_found", "message": "no vehicle 'v1'", "problems": []}}
    for key in (fleet.other_vehicle_key, s.admin):
        for method, path, body in (
            ("GET", "/v1/vehicles/v1/stops", None),
            ("GET", "/v1/vehicles/v1/stops/events", None),
            ("POST", "/v1/vehicles/v1/actions", _action(fleet.route[0])),
        ):
            r = s.client.request(method, path, json=body, headers=s.headers(key))
            assert (r.status_code, r.json()) == (404, nothing), (method, path)
    # Its own v1: an empty list, nothing of this organisation's route.
    r = fleet.get("/v1/vehicles/v1/stops", key=other_org_v1)
    assert r.status_code == 200
    assert r.json()["plan_id"] is None
    assert r.json()["stops"] == []
    r = s.client.post("/v1/vehicles/v1/actions", json=_action("a"), headers=s.headers(other_org_v1))
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "order_not_on_route"
    assert fleet.get("/v1/vehicles/v1/stops", key=s.key("support")).status_code == 403
    assert _count(s.url, DeliveryProofRow) == 0


def test_delivered_with_proof_once_whatever_the_retries(fleet: Fleet) -> None:
    """Delivered with photo and signature: 201; the customer sees the proof and its images on
    the tracking page, support in the lookup. The same action again: 200 and the same
    answer, one proof, one delivered message; the same id with another body: 409."""
    s = fleet.s
    signature = png(3, 2)
    action = _action(
        "a",
        recipient_name="Aino Virtanen",
        photo=data_url("image/jpeg", JPEG),
        signature=data_url("image/png", signature),
    )
    r = fleet.act(action)
    assert r.status_code == 201, r.text
    assert r.json() == {"action_id": action["action_id"], "order_id": "a", "status": "delivered"}
    first = r.json()
    r = fleet.act(action)
    assert r.status_code == 200, r.text
    assert r.json() == first
    order_a = _order_row_id(s.url, "a")
    assert _count(s.url, DeliveryProofRow) == 1
    assert _count(s.url, EventRow, EventRow.kind == "delivered", EventRow.order_id == order_a) == 1
    assert (
        _count(s.url, OutboxRow, OutboxRow.trigger == "delivered", OutboxRow.order_id == order_a)
        == 1
    )
    r = fleet.act({**action, "recipient_name": "Somebody else"})
    assert r.status_code == 409, r.text
    assert r.json()["error"]["code"] == "action_id_reused"
    assert _count(s.url, DeliveryProofRow) == 1

    assert s.client.get("/v1/orders/a", headers=s.headers()).json()["status"] == "delivered"
    stop = next(
        x for x in fleet.get("/v1/vehicles/v1/stops").json()["stops"] if x["order_id"] == "a"
    )
    assert stop["status"] == "delivered"
    assert stop["proof"]["recipient_name"] == "Aino Virtanen"
    assert stop["proof"]["has_photo"] is True
    assert stop["proof"]["has_signature"] is True

    token = tracking_token(s.url, "a")
    page = s.client.get(f"/t/{token}")
    assert page.status_code == 200
    assert "Proof of delivery" in page.text
    assert "Aino Virtanen" in page.text
    assert f'src="/t/{token}/proof/photo"' in page.text
    assert f'src="/t/{token}/proof/signature"' in page.text
    photo = s.client.get(f"/t/{token}/proof/photo")
    assert photo.status_code == 200
    assert photo.content == JPEG
    assert photo.headers["content-type"] == "image/jpeg"
    assert photo.headers["cache-control"] == "private"
    sig = s.client.get(f"/t/{token}/proof/signature")
    assert (sig.status_code, sig.content, sig.headers["content-type"]) == (
        200,
        signature,
        "image/png",
    )
    # Another order's token, a malformed one: the tracking page's 404.
    other = tracking_token(s.url, "b")
    assert s.client.get(f"/t/{other}/proof/photo").status_code == 404
    assert s.client.get("/t/nope/proof/photo").status_code == 404
    assert "Proof of delivery" not in s.client.get(f"/t/{other}").text

    support = s.key("support")
    [hit] = s.client.get(
        "/v1/support/lookup", params={"q": "a@example.com"}, headers=s.headers(support)
    ).json()
    proof = hit["proof"]
    assert proof["kind"] == "delivered"
    assert proof["recipient_name"] == "Aino Virtanen"
    assert proof["vehicle_id"] == "v1"
    assert (proof["lat"], proof["lon"], proof["accuracy_m"]) == (*PLACES["a"], 8.5)
    assert proof["photo_url"] == "/v1/orders/a/proof/photo"
    r = s.client.get(proof["photo_url"], headers=s.headers(support))
    assert (r.status_code, r.content, r.headers["cache-control"]) == (200, JPEG, "private")
    r = s.client.get(proof["signature_url"], headers=s.headers(support))
    assert (r.status_code, r.content) == (200, signature)
    assert s.client.get(proof["photo_url"], headers=s.headers(fleet.key)).status_code == 403
    assert s.client.get("/v1/orders/b/proof/photo", headers=s.headers(support)).status_code == 404


def test_failed_and_arrived(fleet: Fleet) -> None:
    """Arrived marks the stop arrived; failed needs its reason, which the customer reads."""
    b = fleet.route[1]
    r = fleet.act(_action(b, "arrived"))
    assert r.status_code == 201, r.text
    stop = next(x for x in fleet.get("/v1/vehicles/v1/stops").json()["stops"] if x["order_id"] == b)
    assert stop["status"] == "arrived"
    r = fleet.act(_action(b, "failed"))
    assert r.status_code == 422, r.text
    assert _fields(r) == ["reason"]
    r = fleet.act(_action(b, "delivered", reason="refused"))
    assert r.status_code == 422, r.text
    assert _fields(r) == ["reason"]
    r = fleet.act(_action(b, "failed", reason="not_home"))
    assert r.status_code == 201, r.text
    stop = next(x for x in fleet.get("/v1/vehicles/v1/stops").json()["stops"] if x["order_id"] == b)
    assert stop["status"] == "failed"
    assert stop["proof"]["reason"] == "not_home"
    assert stop["proof"]["has_photo"] is False
    page = fleet.s.client.get(f"/t/{tracking_token(fleet.s.url, b)}")
    assert "Nobody was at home" in page.text
    assert "/proof/photo" not in page.text


def test_bad_actions_are_refused_naming_the_field(fleet: Fleet) -> None:
    """A photo that is not an image, a signature that is no PNG, a body over 3 MB, an order
    not on the route: refused, nothing stored."""
    s = fleet.s
    html = b"<html><script>alert(1)</script></html>"
    r = fleet.act(_action("a", photo=data_url("image/jpeg", html)))
    assert r.status_code == 422, r.text
    assert _fields(r) == ["photo"]
    r = fleet.act(_action("a", photo="https://example.com/x.jpg"))
    assert _fields(r) == ["photo"]
    r = fleet.act(_action("a", signature=data_url("image/jpeg", JPEG)))
    assert _fields(r) == ["signature"]
    big = JPEG[:-2] + bytes(1600 * 1024)
    r = fleet.act(_action("a", photo=data_url("image/jpeg", big)))
    assert (r.status_code, _fields(r)) == (422, ["photo"])
    r = fleet.act(_action("a", action_id="short"))
    assert _fields(r) == ["action_id"]
    r = fleet.act(_action("a", at="2026-12-06T10:00:00"))
    assert _fields(r) == ["at"]
    huge = _action("a", photo=data_url("image/jpeg", JPEG + bytes(3 * 1024 * 1024)))
    r = fleet.act(huge)
    assert r.status_code == 413, r.text
    assert r.json()["error"]["code"] == "too_large"
    for order_id in ("c", "no-such-order"):
        r = fleet.act(_action(order_id))
        assert r.status_code == 409, r.text
        assert r.json()["error"]["code"] == "order_not_on_route"
    assert _count(s.url, DeliveryProofRow) == 0
    assert s.client.get("/v1/orders/a", headers=s.headers()).json()["status"] == "dispatched"


def test_the_stream_tells_the_route_version_and_its_changes(fleet: Fleet) -> None:
    """The first event carries the current route_version; an action changes it and the
    stream sends the new one."""
    s = fleet.s
    state: Any = s.client.app.state  # type: ignore[attr-defined]
    state.driver_poll_s = 0.05
    state.driver_stream_max_s = 2.0
    before = fleet.get("/v1/vehicles/v1/stops").json()["route_version"]

    def act_soon() -> None:
        time.sleep(0.6)
        assert fleet.act(_action(fleet.route[0], "arrived")).status_code == 201

    acting = threading.Thread(target=act_soon)
    acting.start()
    # The test client hands over the stream's body when the stream ends (after max_s).
    r = fleet.get("/v1/vehicles/v1/stops/events")
    acting.join()
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    events = [
        (block.split("\n")[0], block.split("data: ", 1)[1])
        for block in r.text.split("\n\n")
        if "event: route" in block
    ]
    versions = [json.loads(data)["route_version"] for _, data in events]
    after = fleet.get("/v1/vehicles/v1/stops").json()["route_version"]
    assert after != before
    assert versions == [before, after]


class _WatchedCaps(StreamCaps):
    """The service's caps (one stream per device key), saying when a slot is taken."""

    def __init__(self) -> None:
        super().__init__(per_ip=1, per_organisation=100)
        self.taken = threading.Event()

    def acquire(self, kind: str, ip: str, organisation: str) -> Slot | None:
        slot = super().acquire(kind, ip, organisation)
        if slot is not None:
            self.taken.set()
        return slot


def test_a_second_stream_on_one_device_key_gets_429(fleet: Fleet) -> None:
    """The drivers' streams count per device key: while one is open, a second on the same key
    is refused with 429 and Retry-After before it starts, another vehicle's key is not; once
    the first ends, its slot is free again."""
    s = fleet.s
    state: Any = s.client.app.state  # type: ignore[attr-defined]
    caps = _WatchedCaps()
    state.stream_caps = caps
    state.driver_poll_s = 0.05
    state.driver_stream_max_s = 1.5
    statuses: list[int] = []

    def hold() -> None:
        statuses.append(fleet.get("/v1/vehicles/v1/stops/events").status_code)

    holding = threading.Thread(target=hold)
    holding.start()
    assert caps.taken.wait(10)
    refused = fleet.get("/v1/vehicles/v1/stops/events")
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == str(RETRY_AFTER_S)
    assert refused.json()["error"]["code"] == "too_many_streams"
    # v2's phone has a key, and so a slot, of its own.
    other = fleet.get("/v1/vehicles/v2/stops/events", key=fleet.other_vehicle_key)
    assert other.status_code == 200
    holding.join()
    assert statuses == [200]
    assert fleet.get("/v1/vehicles/v1/stops/events").status_code == 200


def test_two_copies_of_one_action_at_once_are_stored_once(fleet: Fleet) -> None:
    """A phone that resends while the first copy is still in flight: one 201, one 200 with
    the same answer, one proof and one message to the customer."""
    s = fleet.s
    action = _action("a", photo=data_url("image/jpeg", JPEG))
    answers: list[Any] = []
    ready = threading.Barrier(2)

    def send() -> None:
        ready.wait()
        answers.append(fleet.act(action))

    senders = [threading.Thread(target=send) for _ in range(2)]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join()
    assert sorted(r.status_code for r in answers) == [200, 201], [r.text for r in answers]
    assert answers[0].json() == answers[1].json()
    order_a = _order_row_id(s.url, "a")
    assert _count(s.url, DeliveryProofRow) == 1
    assert (
        _count(s.url, OutboxRow, OutboxRow.trigger == "delivered", OutboxRow.order_id == order_a)
        == 1
    )

"""Issue 17: two shops on one service with the same depot, vehicle and order ids. Each plans,
dispatches and drives its own day; nothing of the other appears in any answer, page or event
stream of either (HTTP, the dashboard and its SSE, the support lookup, the audit log, the
tracking pages and their SSE), and fixes on one shop's MQTT topics never move the other's van.
The broker's side is tests/telematics/test_acl_broker.py; logs: test_security_no_pii_in_logs.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from store.db import make_engine, session_factory
from store.repo import create_organisation
from store.schema import OrderRow
from telematics.ingest import Ingester
from tests.api.service import Service, running

pytestmark = pytest.mark.security

DEPOT = {"id": "d1", "location": {"lat": 60.1699, "lon": 24.9384}}
PLACES = [(60.1665, 24.9433), (60.1700, 24.9500), (60.1620, 24.9400)]
#: What must never cross: each shop's customers' names, e-mails and references.
CUSTOMERS = {
    "A": ("Aino Aaltonen", "aino@shop-a.example", "REF-A"),
    "B": ("Bertil Berg", "bertil@shop-b.example", "REF-B"),
}


@dataclass
class Shop:
    name: str
    key: str
    organisation_id: str
    plan_id: str
    tokens: dict[str, str]


@pytest.fixture
def two(database_url: str, tmp_path: Path) -> Iterator[tuple[Service, Shop, Shop]]:
    with running(database_url, tmp_path) as s:
        engine = make_engine(s.url)
        try:
            _, b_key = create_organisation(session_factory(engine), "Shop B", "UTC")
        finally:
            engine.dispose()
        yield s, _open(s, "A", s.admin), _open(s, "B", b_key)


def _shift_from_now() -> dict[str, str]:
    """From five minutes from now: today's routes on the dashboard (unless run in the last
    five minutes of a UTC day), and no message stale before it is read."""
    start = datetime.now(UTC) + timedelta(minutes=5)
    return {"start": start.isoformat(), "end": (start + timedelta(hours=6)).isoformat()}


def _open(s: Service, name: str, key: str) -> Shop:
    """The same ids as the other shop: depot d1, van-1, orders o-1..o-3."""
    h = s.headers(key)
    person, email, ref = CUSTOMERS[name]
    assert s.client.post("/v1/depots", json=DEPOT, headers=h).status_code == 201
    vehicle = {"id": "van-1", "depot_id": "d1", "shift": _shift_from_now()}
    assert s.client.post("/v1/vehicles", json=vehicle, headers=h).status_code == 201
    tokens = {}
    for k, (lat, lon) in enumerate(PLACES, start=1):
        order = {
            "id": f"o-{k}",
            "location": {"lat": lat, "lon": lon},
            "customer_ref": f"{ref}-{k}",
            "contact": {"name": person, "email": email},
        }
        r = s.client.post("/v1/orders", json=order, headers=h)
        assert r.status_code == 201, r.text
        tokens[f"o-{k}"] = r.json()["tracking_token"]
    plan_id = s.client.post("/v1/plans", json={"time_limit_s": 0.5}, headers=h).json()["plan_id"]
    body = s.wait(plan_id, key=key)
    assert body["status"] == "succeeded", body
    assert s.client.post(f"/v1/plans/{plan_id}/dispatch", headers=h).status_code == 200
    organisation_id = s.client.get("/v1/organisation", headers=h).json()["id"]
    return Shop(name, key, organisation_id, plan_id, tokens)


def _device_key(s: Service, shop: Shop) -> str:
    body = {"role": "device", "vehicle_id": "van-1"}
    r = s.client.post("/v1/keys", json=body, headers=s.headers(shop.key))
    assert r.status_code == 201, r.text
    key: str = r.json()["key"]
    return key


def _others(me: Shop) -> tuple[str, ...]:
    """The other shop's customer data: none of it may reach ``me``."""
    other = "B" if me.name == "A" else "A"
    return CUSTOMERS[other]


def _clean(text: str, me: Shop, other: Shop) -> None:
    for secret in (*_others(me), other.plan_id, other.organisation_id, *other.tokens.values()):
        assert secret not in text, (me.name, secret)


def _first_event(s: Service, path: str, headers: dict[str, str]) -> str:
    with s.client.stream("GET", path, headers=headers, timeout=10) as r:
        assert r.status_code == 200, path
        for line in r.iter_lines():
            if line.startswith("data: "):
                return line
    raise AssertionError(f"no event on {path}")


def test_nothing_of_one_shop_reaches_the_other(two: tuple[Service, Shop, Shop]) -> None:
    s, a, b = two
    state: Any = s.client.app.state  # type: ignore[attr-defined]
    state.dashboard_poll_s = 0.05
    state.dashboard_stream_max_s = 0.3
    for k, shop in enumerate((a, b)):  # each van reports once, over HTTP with its own key
        device = s.headers(_device_key(s, shop))
        at = (datetime.now(UTC) - timedelta(seconds=5)).isoformat()
        fix = {"lat": 60.1699, "lon": 24.9390 + k * 1e-3, "time": at}
        r = s.client.post("/v1/vehicles/van-1/positions", json=fix, headers=device)
        assert r.json() == {"status": "applied", "reason": ""}
    for me, other in ((a, b), (b, a)):
        h = s.headers(me.key)
        answers = [
            s.client.get("/v1/orders", headers=h),
            s.client.get("/v1/orders/o-1", headers=h),
            s.client.get("/v1/vehicles", headers=h),
            s.client.get("/v1/vehicles/van-1/progress", headers=h),
            s.client.get(f"/v1/plans/{me.plan_id}", headers=h),
            s.client.get("/v1/orders/o-1/notifications", headers=h),
            s.client.get("/v1/audit", headers=h),
            s.client.get("/dashboard/state", headers=h),
            s.client.get("/v1/support/lookup", params={"q": "o-1"}, headers=h),
        ]
        for r in answers:
            assert r.status_code == 200, (r.url, r.text)
            _clean(r.text, me, other)
        # Its own data is there (the test would pass on empty answers otherwise).
        assert CUSTOMERS[me.name][2] in answers[1].text
        assert me.plan_id in answers[7].text
        # The other shop's plan, customer and reference: as unknown as anything else.
        assert s.client.get(f"/v1/plans/{other.plan_id}", headers=h).status_code == 404
        for q in (CUSTOMERS[other.name][1], f"{CUSTOMERS[other.name][2]}-1"):
            found = s.client.get("/v1/support/lookup", params={"q": q}, headers=h)
            assert found.json() == [], q
        _clean(_first_event(s, "/dashboard/events", h), me, other)
        # The customer's page and its stream (by token, no key): its own shop's only.
        page = s.client.get(f"/t/{me.tokens['o-1']}")
        assert page.status_code == 200
        _clean(page.text, me, other)
        _clean(_first_event(s, f"/t/{me.tokens['o-1']}/events", {}), me, other)


def test_fixes_on_one_shops_topics_move_only_its_van(two: tuple[Service, Shop, Shop]) -> None:
    """B's van-1 reports on B's topic: B's progress moves, A's van-1 has no position; a fix
    on the deprecated un-prefixed topic names both vans and moves neither."""
    s, a, b = two
    ingester: Ingester = s.client.app.state.ingester  # type: ignore[attr-defined]
    at = datetime.now(UTC) - timedelta(seconds=5)
    fix = json.dumps({"lat": 60.1699, "lon": 24.9390, "time": at.isoformat()}).encode()
    assert ingester.fleet_message(f"{b.organisation_id}/fleet/van-1/position", fix).status == (
        "applied"
    )
    legacy = ingester.fleet_message("fleet/van-1/position", fix)
    assert (legacy.status, legacy.reason) == ("rejected", "ambiguous_vehicle")
    progress_b = s.client.get("/v1/vehicles/van-1/progress", headers=s.headers(b.key)).json()
    progress_a = s.client.get("/v1/vehicles/van-1/progress", headers=s.headers(a.key)).json()
    assert progress_b["lon"] == pytest.approx(24.9390)
    assert progress_a.get("lon") is None
    # A driver event on B's topic for "o-1" closes B's o-1 only.
    event = b'{"order_id": "o-1", "kind": "delivered"}'
    topic = f"{b.organisation_id}/fleet/van-1/events"
    assert ingester.driver_event_message(topic, event).status == "applied"
    engine = make_engine(s.url)
    try:
        with session_factory(engine)() as session:
            rows = session.execute(
                select(OrderRow.organisation_id, OrderRow.status).where(
                    OrderRow.external_id == "o-1"
                )
            ).all()
    finally:
        engine.dispose()
    assert dict(rows) == {a.organisation_id: "dispatched", b.organisation_id: "delivered"}

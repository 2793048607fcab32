"""Support through the running service: lookup by reference, phone or e-mail with a ready
answer, WISMO contacts, the WISMO report and metric; on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from store.db import make_engine, session_factory
from store.repo import create_organisation
from tests.api.live_state import put_on_route
from tests.api.service import Service
from tests.api.test_service import SHIFT


def _order(s: Service, order_id: str, key: str | None = None, **fields: Any) -> None:
    body = {
        "id": order_id,
        "location": {"lat": 45.4642, "lon": 9.19},
        "customer_ref": fields.pop("customer_ref", f"REF-{order_id}"),
        "contact": {
            "name": "Anna",
            "phone": fields.pop("phone", ""),
            "email": fields.pop("email", ""),
        },
        **fields,
    }
    r = s.client.post("/v1/orders", json=body, headers=s.headers(key))
    assert r.status_code == 201, r.text


def _lookup(s: Service, q: str, key: str | None = None) -> list[dict[str, Any]]:
    r = s.client.get("/v1/support/lookup", params={"q": q}, headers=s.headers(key))
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = r.json()
    return found


@pytest.mark.integration
def test_lookup_by_reference_phone_and_email(service: Service) -> None:
    """An order is found by its id, its customer reference, its phone written otherwise and
    its e-mail in another case, by a support key."""
    s = service
    _order(s, "A-1", customer_ref="ORD-771", phone="+39 333 123-4567", email="Anna@Example.com")
    _order(s, "A-2", phone="+39 333 765 4321")
    support = s.key("support")
    for q in ("A-1", "ord-771", "0039 333 1234567", "+39-333-123 4567", "anna@EXAMPLE.com"):
        found = _lookup(s, q, support)
        assert [f["order_id"] for f in found] == ["A-1"], q
    [hit] = _lookup(s, "A-1", support)
    assert hit["customer_ref"] == "ORD-771"
    assert hit["status"] == "open"
    assert hit["window"] is None
    assert hit["notifications"] == []
    assert _lookup(s, "nobody@example.com", support) == []


@pytest.mark.integration
def test_other_tenant_never_found(service: Service) -> None:
    """The same phone, e-mail and id in another organisation are never returned."""
    s = service
    engine = make_engine(s.url)
    try:
        _, other = create_organisation(session_factory(engine), "Other carrier", "UTC")
    finally:
        engine.dispose()
    _order(s, "B-9", key=other, phone="+31 6 1234 5678", email="piet@example.nl")
    for q in ("B-9", "REF-B-9", "+31612345678", "piet@example.nl"):
        assert _lookup(s, q) == []
    assert [f["order_id"] for f in _lookup(s, "B-9", other)] == ["B-9"]


@pytest.mark.integration
def test_device_forbidden_and_short_query_refused(service: Service) -> None:
    """A device key gets 403; a query under three characters a 422 naming q."""
    s = service
    vehicle = {"id": "v1", "start": {"lat": 60.17, "lon": 24.94}, "shift": SHIFT}
    assert s.client.post("/v1/vehicles", json=vehicle, headers=s.headers()).status_code == 201
    device = s.key("device", "v1")
    r = s.client.get("/v1/support/lookup", params={"q": "A-1"}, headers=s.headers(device))
    assert r.status_code == 403
    for q in ("ab", "  ab  "):
        r = s.client.get("/v1/support/lookup", params={"q": q}, headers=s.headers())
        assert r.status_code == 422, r.text
        assert any("q" in p["field"] for p in r.json()["error"]["problems"])
    r = s.client.get("/v1/reports/wismo", headers=s.headers(device))
    assert r.status_code == 403


@pytest.mark.integration
def test_italian_customer_on_route_gets_italian_answer(service: Service) -> None:
    """An Italian customer on a live route: window, stops before, lateness and last fix, and
    the ready answer in Italian in Rome's time."""
    s = service
    now = datetime.now(UTC)
    _order(s, "IT-5", language="it", timezone="Europe/Rome", phone="+39 02 1234 5678")
    put_on_route(s.url, "IT-5", now, vehicle_id="van-7", delivered_event=True)
    [hit] = _lookup(s, "IT-5", s.key("support"))
    assert hit["stops_before"] == 2
    assert hit["late_minutes"] == 12
    assert hit["window"] is not None
    assert hit["eta"] is not None
    assert hit["last_fix_time"] is not None
    assert hit["answer"].startswith("Il tuo ordine è in viaggio: ancora 2 fermate prima della tua")
    assert "con circa 12 minuti di ritardo" in hit["answer"]
    assert "/t/" in hit["answer"]


@pytest.mark.integration
def test_contact_recorded_in_report_and_metric(service: Service) -> None:
    """A WISMO contact is 201, counted by channel in /metrics, and in the day's and the
    route's rate of the report; an unknown order is 404."""
    s = service
    now = datetime.now(UTC)
    _order(s, "C-3")
    put_on_route(s.url, "C-3", now, vehicle_id="van-1", delivered_event=True)
    support = s.key("support")
    r = s.client.post(
        "/v1/support/contacts",
        json={"order_id": "C-3", "channel": "phone", "note": "asked twice"},
        headers=s.headers(support),
    )
    assert r.status_code == 201, r.text
    assert r.json()["order_id"] == "C-3"
    assert r.json()["channel"] == "phone"
    r = s.client.post(
        "/v1/support/contacts",
        json={"order_id": "nope", "channel": "chat"},
        headers=s.headers(support),
    )
    assert r.status_code == 404
    metrics = s.client.get("/metrics").text
    assert 'lastmile_wismo_contacts_total{channel="phone"} 1.0' in metrics
    r = s.client.get("/v1/reports/wismo", params={"days": 3}, headers=s.headers())
    assert r.status_code == 200, r.text
    report = r.json()
    assert len(report["days"]) == 3
    assert report["days"][-1] == {
        "day": now.date().isoformat(),
        "orders": 1,
        "contacts": 1,
        "rate": 100.0,
        "answered_auto": 0,  # recorded by a person
    }
    assert report["answered_auto_share"] == 0.0
    assert report["routes"] == [{"vehicle_id": "van-1", "orders": 1, "contacts": 1, "rate": 100.0}]
    assert "window_broken" in report["policy"]["enabled"]

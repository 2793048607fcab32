"""A tracking token opens exactly one order: its page, its event stream and its instructions
form show and change that order only, and the token is no API key anywhere."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from store.db import make_engine, session_factory
from store.schema import OrderRow
from tests.api.live_state import put_on_route
from tests.api.service import Service

pytestmark = [pytest.mark.security, pytest.mark.integration]

#: Two customers whose every detail is distinct, so any leak of one into the other shows.
ORDERS: dict[str, dict[str, Any]] = {
    "ORD-ALPHA": {
        "location": {"lat": 45.46421, "lon": 9.18765},
        "customer_ref": "REF-ALPHA-7",
        "contact": {"name": "Alba Aliprandi", "phone": "+393331110001", "email": "alba@a.example"},
        "language": "it",
        "timezone": "Europe/Rome",
    },
    "ORD-BRAVO": {
        "location": {"lat": 45.47893, "lon": 9.21357},
        "customer_ref": "REF-BRAVO-9",
        "contact": {
            "name": "Bruno Bertolini",
            "phone": "+393332220002",
            "email": "bruno@b.example",
        },
        "language": "it",
        "timezone": "Europe/Rome",
    },
}


def _identifying(order_id: str, token: str) -> list[str]:
    """Strings that would show the order's data on a page or stream."""
    order = ORDERS[order_id]
    contact = order["contact"]
    return [
        order_id,
        order["customer_ref"],
        contact["name"].split()[1],
        contact["phone"],
        contact["email"],
        str(order["location"]["lat"]),
        str(order["location"]["lon"]),
        token,
    ]


def _setup(s: Service) -> dict[str, str]:
    """Both orders live on their own vans; {order id: tracking token}."""
    tokens: dict[str, str] = {}
    for order_id, fields in ORDERS.items():
        r = s.client.post("/v1/orders", json={"id": order_id, **fields}, headers=s.headers())
        assert r.status_code == 201, r.text
        tokens[order_id] = r.json()["tracking_token"]
    now = datetime.now(UTC)
    put_on_route(s.url, "ORD-ALPHA", now, vehicle_id="V-A", driver_first_name="Marco")
    put_on_route(s.url, "ORD-BRAVO", now, vehicle_id="V-B", driver_first_name="Luca")
    assert len(set(tokens.values())) == 2
    return tokens


def _other(order_id: str) -> str:
    return next(o for o in ORDERS if o != order_id)


def _first_event(s: Service, token: str) -> str:
    s.client.app.state.tracking_poll_s = 0.05  # type: ignore[attr-defined]
    s.client.app.state.tracking_stream_max_s = 0.2  # type: ignore[attr-defined]
    with s.client.stream("GET", f"/t/{token}/events", timeout=10) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data: "):
                return str(line)
    raise AssertionError("no event")


def _instructions(url: str) -> dict[str, Any]:
    engine = make_engine(url)
    try:
        with session_factory(engine)() as session:
            rows = session.scalars(select(OrderRow))
            return {row.external_id: row.delivery_instructions for row in rows}
    finally:
        engine.dispose()


def test_each_page_and_stream_shows_only_its_own_order(service: Service) -> None:
    """/t/{token} names its own order's reference and shows its stop, and holds nothing of
    the other order: no id, reference, name, phone, e-mail, coordinates or token. The live
    stream carries its own stop only. (The page shows none of the contact details of its own
    order either: a forwarded link gives away no phone number or e-mail.)"""
    s = service
    tokens = _setup(s)
    for order_id, token in tokens.items():
        page = s.client.get(f"/t/{token}")
        assert page.status_code == 200, page.text
        assert ORDERS[order_id]["customer_ref"] in page.text
        assert str(ORDERS[order_id]["location"]["lat"]) in page.text
        other = _other(order_id)
        leaked = [t for t in _identifying(other, tokens[other]) if t in page.text]
        assert leaked == [], f"{order_id}'s page shows {other}'s {leaked}"
        contact = ORDERS[order_id]["contact"]
        assert [v for v in contact.values() if v in page.text] == []

        event = _first_event(s, token)
        data = json.loads(event.removeprefix("data: "))
        assert data["map"]["stop"] == pytest.approx(
            [ORDERS[order_id]["location"]["lat"], ORDERS[order_id]["location"]["lon"]]
        )
        leaked = [t for t in _identifying(other, tokens[other]) if t in event]
        assert leaked == [], f"{order_id}'s stream carries {other}'s {leaked}"


def test_instructions_change_only_the_tokens_order(service: Service) -> None:
    s = service
    tokens = _setup(s)
    r = s.client.post(f"/t/{tokens['ORD-ALPHA']}/instructions", data={"notes": "Alpha gate"})
    assert r.status_code == 200, r.text  # the redirect to the page, followed
    assert _instructions(s.url) == {"ORD-ALPHA": {"notes": "Alpha gate"}, "ORD-BRAVO": None}
    r = s.client.post(f"/t/{tokens['ORD-BRAVO']}/instructions", data={"safe_place": "Porch"})
    assert r.status_code == 200, r.text
    assert _instructions(s.url) == {
        "ORD-ALPHA": {"notes": "Alpha gate"},
        "ORD-BRAVO": {"safe_place": "Porch"},
    }
    assert "Alpha gate" not in s.client.get(f"/t/{tokens['ORD-BRAVO']}").text


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/orders"),
        ("GET", "/v1/orders/ORD-ALPHA"),
        ("GET", "/v1/orders/ORD-ALPHA/notifications"),
        ("PUT", "/v1/orders/ORD-ALPHA/preferences"),
        ("POST", "/v1/orders/ORD-ALPHA/cancel"),
        ("GET", "/v1/support/lookup?q=REF-ALPHA-7"),
        ("POST", "/v1/vehicles/V-A/positions"),
        ("GET", "/v1/organisation"),
        ("GET", "/dashboard/state"),
    ],
)
def test_a_tracking_token_is_not_an_api_key(service: Service, method: str, path: str) -> None:
    """Sent as a bearer key (or as the dashboard's cookie), a tracking token gets 401."""
    s = service
    token = _setup(s)["ORD-ALPHA"]
    r = s.client.request(method, path, json={}, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401, r.text
    s.client.cookies.set("lastmile_dashboard", token, path="/dashboard")
    try:
        assert s.client.get("/dashboard/state").status_code == 401
        page = s.client.get("/dashboard")
        assert page.status_code == 401
        assert "REF-ALPHA-7" not in page.text
    finally:
        s.client.cookies.clear()

"""What the dashboard tests do through the service: post an order the live route keeps, log in
with a key (through the login form and its CSRF token), find one stop in the dashboard's
state."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from tests.api.service import Service


def post_order(
    s: Service, order_id: str, now: datetime, key: str | None = None, **extra: Any
) -> None:
    """An order whose window (now - 1 h, now + 4 h) the live ETA of put_on_route keeps."""
    body = {
        "id": order_id,
        "location": {"lat": 45.4642, "lon": 9.19},
        "windows": [
            {
                "start": (now - timedelta(hours=1)).isoformat(),
                "end": (now + timedelta(hours=4)).isoformat(),
            }
        ],
        **extra,
    }
    r = s.client.post("/v1/orders", json=body, headers=s.headers(key))
    assert r.status_code == 201, r.text


def csrf_in(html: str) -> str:
    """The CSRF token of the page's form (its hidden field)."""
    found = re.search(r'<input type="hidden" name="csrf" value="([^"]+)">', html)
    assert found is not None, html[:500]
    return found.group(1)


def login_csrf(s: Service) -> str:
    """The login form's CSRF token; the form's answer sets its pre-session cookie."""
    page = s.client.get("/dashboard")
    assert 'action="/dashboard/login"' in page.text, page.text[:500]
    return csrf_in(page.text)


def log_in(s: Service, key: str) -> None:
    data = {"key": key, "csrf": login_csrf(s)}
    r = s.client.post("/dashboard/login", data=data, follow_redirects=False)
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/dashboard"


def log_out(s: Service) -> None:
    """Sign out with the open dashboard's form."""
    data = {"csrf": csrf_in(s.client.get("/dashboard").text)}
    r = s.client.post("/dashboard/logout", data=data, follow_redirects=False)
    assert r.status_code == 303, r.text


def stop_in(state: dict[str, Any], order_id: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [
        s for v in state["vehicles"] for s in v["stops"] if s["order"] == order_id
    ]
    assert len(found) == 1, found
    return found[0]

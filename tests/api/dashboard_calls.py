"""What the dashboard tests do through the service: post an order the live route keeps, log in
with a key, find one stop in the dashboard's state."""

from __future__ import annotations

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


def log_in(s: Service, key: str) -> None:
    r = s.client.post("/dashboard/login", data={"key": key}, follow_redirects=False)
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/dashboard"


def stop_in(state: dict[str, Any], order_id: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [
        s for v in state["vehicles"] for s in v["stops"] if s["order"] == order_id
    ]
    assert len(found) == 1, found
    return found[0]

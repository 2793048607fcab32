"""A small fleet for the drivers' app's API tests: one van with a dispatched route of two
orders and its device key, and a second van of the same organisation on no route."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.api.service import Service

DEPOT = {"lat": 60.1699, "lon": 24.9384}
PLACES = {"a": (60.1665, 24.9433), "b": (60.1700, 24.9500)}
ADDRESS_A = "Mannerheimintie 1 A 5, 00100 Helsinki"


def shift() -> dict[str, str]:
    """Under way now (the delivered message must not be stale when it is queued)."""
    now = datetime.now(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    start = max(now - timedelta(hours=2), midnight)
    return {"start": start.isoformat(), "end": (now + timedelta(hours=8)).isoformat()}


@dataclass
class Fleet:
    s: Service
    #: v1's own device key; v1 drives orders a and b.
    key: str
    #: The device key of v2, a vehicle of the same organisation with no route.
    other_vehicle_key: str
    route: list[str]
    window_a: dict[str, str]

    def get(self, path: str, key: str | None = None, **kwargs: Any) -> Any:
        return self.s.client.get(path, headers=self.s.headers(key or self.key), **kwargs)

    def act(self, body: dict[str, Any], key: str | None = None) -> Any:
        return self.s.client.post(
            "/v1/vehicles/v1/actions", json=body, headers=self.s.headers(key or self.key)
        )


def _post(s: Service, path: str, body: dict[str, Any]) -> None:
    r = s.client.post(path, json=body, headers=s.headers())
    assert r.status_code in (200, 201), r.text


def driver_fleet(service: Service) -> Fleet:
    """v1 dispatched with orders a and b; v2 (and order c) on no route."""
    s = service
    now = datetime.now(UTC)
    window_a = {"start": now.isoformat(), "end": (now + timedelta(hours=7)).isoformat()}
    _post(s, "/v1/depots", {"id": "d1", "location": DEPOT})
    _post(s, "/v1/vehicles", {"id": "v1", "depot_id": "d1", "shift": shift()})
    for oid, (lat, lon) in PLACES.items():
        _post(
            s,
            "/v1/orders",
            {
                "id": oid,
                "location": {"lat": lat, "lon": lon},
                "service_s": 120,
                "windows": [window_a] if oid == "a" else [],
                "address": ADDRESS_A if oid == "a" else "",
                "contact": {
                    "name": f"Customer {oid}",
                    "phone": "+358 40 123 4567",
                    "email": f"{oid}@example.com",
                },
                "channels": ["email"],
            },
        )
    r = s.client.post("/v1/plans", json={"time_limit_s": 0.5}, headers=s.headers())
    plan = s.wait(r.json()["plan_id"])
    assert plan["status"] == "succeeded", plan
    r = s.client.post(f"/v1/plans/{plan['id']}/dispatch", headers=s.headers())
    assert r.status_code == 200, r.text
    [route] = plan["plan"]["routes"]
    # Made after the dispatch: on no route.
    _post(s, "/v1/vehicles", {"id": "v2", "depot_id": "d1", "shift": shift()})
    _post(s, "/v1/orders", {"id": "c", "location": {"lat": 60.168, "lon": 24.944}})
    return Fleet(
        s,
        s.key("device", "v1"),
        s.key("device", "v2"),
        [stop["order_id"] for stop in route["stops"]],
        window_a,
    )

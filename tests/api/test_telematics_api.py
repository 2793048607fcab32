"""Positions over HTTP into progress along a dispatched route, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from store.db import make_engine, session_factory
from store.schema import DeadLetterRow, EtaRow, EventRow
from tests.api.live_state import osmand_id
from tests.api.service import Service, running
from tests.api.test_service import SHIFT

STOPS = {"a": (60.1665, 24.9433), "b": (60.1700, 24.9500)}


@pytest.fixture
def live(database_url: str, tmp_path: Path) -> Service:
    with running(database_url, tmp_path) as s:
        h = s.headers()
        s.client.post(
            "/v1/depots", json={"id": "d1", "location": {"lat": 60.1699, "lon": 24.9384}}, headers=h
        )
        s.client.post(
            "/v1/vehicles", json={"id": "v1", "depot_id": "d1", "shift": SHIFT}, headers=h
        )
        for oid, (lat, lon) in STOPS.items():
            s.client.post(
                "/v1/orders",
                json={"id": oid, "location": {"lat": lat, "lon": lon}, "service_s": 60},
                headers=h,
            )
        plan_id = s.client.post("/v1/plans", json={"time_limit_s": 0.5}, headers=h).json()[
            "plan_id"
        ]
        assert s.wait(plan_id)["status"] == "succeeded"
        assert s.client.post(f"/v1/plans/{plan_id}/dispatch", headers=h).status_code == 200
        r = s.client.post("/v1/vehicles/v1/devices", json={"protocol": "osmand"}, headers=h)
        assert r.status_code == 201, r.text
        yield s  # type: ignore[misc]


def _fix(s: Service, lat: float, lon: float, t: datetime) -> dict[str, str]:
    device = osmand_id(s)  # the identifier the server issued at registration
    r = s.client.get(
        "/osmand", params={"id": device, "lat": lat, "lon": lon, "timestamp": int(t.timestamp())}
    )
    body: dict[str, str] = r.json()
    return body


def test_fixes_over_osmand_become_arrivals_and_departures(live: Service) -> None:
    """Dwelling at a stop is an arrival; driving on to the next is its departure."""
    h = live.headers()
    route = live.client.get("/v1/plans", headers=h).json()[0]
    plan = live.client.get(f"/v1/plans/{route['id']}", headers=h).json()["plan"]
    first, second = [s["order_id"] for s in plan["routes"][0]["stops"]]
    t = datetime.now(UTC) - timedelta(minutes=10)
    for k in range(5):  # 40 s at the first stop
        assert _fix(live, *STOPS[first], t + timedelta(seconds=10 * k))["status"] == "applied"
    for k in range(5):
        _fix(live, *STOPS[second], t + timedelta(seconds=300 + 10 * k))
    progress = live.client.get("/v1/vehicles/v1/progress", headers=h).json()
    by_order = {s["order_id"]: s for s in progress["stops"]}
    assert by_order[first]["arrived_at"] is not None
    assert by_order[first]["departed_at"] is not None
    assert by_order[second]["arrived_at"] is not None
    assert progress["along_m"] > 0
    engine = make_engine(live.url)
    with session_factory(engine)() as session:
        kinds = [e.kind for e in session.scalars(select(EventRow).order_by(EventRow.at))]
    engine.dispose()
    assert kinds[:3] == ["arrived", "departed", "arrived"]


def test_bad_fixes_are_refused_with_reasons_and_kept(live: Service) -> None:
    """Junk, unknown devices, old and duplicate fixes: 400 with a reason, dead-lettered."""
    t = datetime.now(UTC)
    junk = live.client.post(
        "/osmand", content=b"\x00\xff{{{", headers={"content-type": "application/octet-stream"}
    )
    assert junk.status_code == 400
    unknown = live.client.get(
        "/osmand",
        params={"id": "stranger", "lat": 60.1, "lon": 24.9, "timestamp": int(t.timestamp())},
    )
    assert unknown.json() == {"status": "rejected", "reason": "unknown_device"}
    assert _fix(live, 60.1665, 24.9433, t - timedelta(days=30))["reason"] == "too_old"
    assert _fix(live, 60.1665, 24.9433, t)["status"] == "applied"
    assert _fix(live, 60.1665, 24.9433, t)["reason"] == "duplicate"
    assert _fix(live, 60.1665, 24.9433, t - timedelta(seconds=30))["status"] == "history"
    engine = make_engine(live.url)
    with session_factory(engine)() as session:
        reasons = sorted(d.reason for d in session.scalars(select(DeadLetterRow)))
    engine.dispose()
    assert reasons == sorted(["missing_field", "unknown_device", "too_old", "duplicate"])


def test_our_json_over_http_and_driver_events(live: Service) -> None:
    """A device key posts our JSON; a driver's 'delivered' overrides the inferred status."""
    device = live.key("device", "v1")
    t = datetime.now(UTC).isoformat()
    r = live.client.post(
        "/v1/vehicles/v1/positions",
        content=f'{{"lat": 60.1665, "lon": 24.9433, "time": "{t}", "speed_mps": 0}}',
        headers=live.headers(device),
    )
    assert r.json() == {"status": "applied", "reason": ""}
    r = live.client.post(
        "/v1/vehicles/v1/events",
        json={"order_id": "a", "kind": "delivered"},
        headers=live.headers(device),
    )
    assert r.status_code == 201
    assert live.client.get("/v1/orders/a", headers=live.headers()).json()["status"] == "delivered"
    support = live.key("support")
    assert (
        live.client.post(
            "/v1/vehicles/v1/events",
            json={"order_id": "a", "kind": "failed"},
            headers=live.headers(support),
        ).status_code
        == 403
    )


def test_off_route_vehicle_gets_its_way_back(live: Service) -> None:
    """Far from the route for over a minute: off route, with the drive back to its next stop."""
    t = datetime.now(UTC) - timedelta(minutes=5)
    lat, lon = STOPS["a"]
    _fix(live, lat, lon, t)
    for k in range(1, 5):  # ~330 m north of the stop, 80 s in all
        _fix(live, lat + 0.003, lon, t + timedelta(seconds=20 * k))
    progress = live.client.get("/v1/vehicles/v1/progress", headers=live.headers()).json()
    assert progress["on_route"] is False
    back = progress["way_back"]
    assert back is not None
    assert back["duration_s"] > 0
    assert back["distance_m"] > 100
    assert back["geometry"]["type"] == "LineString"
    # The ETA of that stop counts the drive back, not the planned line it has left.
    eta = next(e for e in progress["etas"] if e["order_id"] == back["to_order_id"])
    last_fix = datetime.fromisoformat(progress["fix_time"])
    assert datetime.fromisoformat(eta["eta"]) >= last_fix + timedelta(
        seconds=0.5 * back["duration_s"]
    )


def test_a_fix_gives_every_stop_an_eta_window_kept_in_history(live: Service) -> None:
    """The first fix on the route: each stop gets an ETA window (in route order), stored in
    the ETA history, and its first window is told (a window_told event)."""
    h = live.headers()
    route = live.client.get("/v1/plans", headers=h).json()[0]
    plan = live.client.get(f"/v1/plans/{route['id']}", headers=h).json()["plan"]
    order_ids = [s["order_id"] for s in plan["routes"][0]["stops"]]
    now = datetime.now(UTC)
    assert _fix(live, 60.1699, 24.9384, now - timedelta(seconds=5))["status"] == "applied"
    progress = live.client.get("/v1/vehicles/v1/progress", headers=h).json()
    etas = progress["etas"]
    assert [e["order_id"] for e in etas] == order_ids
    for e in etas:
        eta = datetime.fromisoformat(e["eta"])
        assert datetime.fromisoformat(e["earliest"]) <= eta <= datetime.fromisoformat(e["latest"])
        assert eta >= now - timedelta(seconds=1)
    assert datetime.fromisoformat(etas[1]["eta"]) >= datetime.fromisoformat(etas[0]["eta"])
    engine = make_engine(live.url)
    with session_factory(engine)() as session:
        history = session.scalars(select(EtaRow)).all()
        told = session.scalars(select(EventRow).where(EventRow.kind == "window_told")).all()
    engine.dispose()
    assert len(history) == len(order_ids)
    assert len(told) == len(order_ids)

"""The dispatcher dashboard's state through the running service: the late stop and its
vehicle, only the caller's organisation, and the live stream's first event; on SQLite and
PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from store.db import make_engine, session_factory
from store.repo import create_organisation
from tests.api.dashboard_calls import log_in, post_order, stop_in
from tests.api.live_state import put_on_route
from tests.api.service import Service


@pytest.mark.integration
def test_state_lists_the_late_stop_and_the_vehicle(service: Service) -> None:
    s = service
    now = datetime.now(UTC)
    post_order(s, "O-7", now, customer_ref="ORD-7")
    start, end = put_on_route(s.url, "O-7", now, driver_first_name="Lucia")
    assert s.client.get("/dashboard/state").status_code == 401

    r = s.client.get("/dashboard/state", headers=s.headers(s.key("dispatcher")))
    assert r.status_code == 200, r.text
    state = r.json()
    stop = stop_in(state, "O-7")
    # 12 minutes later than first told (the window itself is kept: late against the promise).
    assert stop["late"] is True
    assert stop["late_min"] == 12
    assert stop["late_reasons"] == ["told"]
    assert stop["status"] == "next"
    assert stop["ref"] == "ORD-7"
    assert stop["eta_window"] == [
        start.isoformat(timespec="seconds"),
        end.isoformat(timespec="seconds"),
    ]
    (vehicle,) = state["vehicles"]
    assert vehicle["id"] == "V-1"
    assert vehicle["driver"] == "Lucia"
    assert (vehicle["lat"], vehicle["lon"]) == (45.46, 9.18)
    assert datetime.fromisoformat(vehicle["last_fix"]) > now - timedelta(minutes=1)
    assert state["counts"]["stops_late"] == 1
    assert state["counts"]["stops_total"] == 1
    assert state["timezone"] == "UTC"

    # The browser's way in: the cookie.
    log_in(s, s.key("dispatcher"))
    assert s.client.get("/dashboard/state").json() == state


@pytest.mark.integration
def test_another_organisations_data_is_not_visible(service: Service) -> None:
    s = service
    now = datetime.now(UTC)
    post_order(s, "MINE-1", now)
    put_on_route(s.url, "MINE-1", now, vehicle_id="V-MINE")
    engine = make_engine(s.url)
    try:
        _, other_admin = create_organisation(session_factory(engine), "Other carrier", "UTC")
    finally:
        engine.dispose()
    post_order(s, "THEIRS-1", now, key=other_admin)
    put_on_route(s.url, "THEIRS-1", now, vehicle_id="V-THEIRS")

    mine = s.client.get("/dashboard/state", headers=s.headers(s.key("dispatcher"))).json()
    theirs = s.client.get("/dashboard/state", headers=s.headers(other_admin)).json()
    assert [v["id"] for v in mine["vehicles"]] == ["V-MINE"]
    assert [v["id"] for v in theirs["vehicles"]] == ["V-THEIRS"]
    assert "THEIRS-1" not in json.dumps(mine)
    assert "MINE-1" not in json.dumps(theirs)


@pytest.mark.integration
def test_event_stream_first_event_carries_the_state(service: Service) -> None:
    s = service
    now = datetime.now(UTC)
    post_order(s, "O-7", now)
    put_on_route(s.url, "O-7", now)
    s.client.app.state.dashboard_poll_s = 0.05  # type: ignore[attr-defined]
    s.client.app.state.dashboard_stream_max_s = 0.3  # type: ignore[attr-defined]
    assert s.client.get("/dashboard/events").status_code == 401
    log_in(s, s.key("dispatcher"))
    with s.client.stream("GET", "/dashboard/events", timeout=10) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        lines: list[str] = []
        for line in r.iter_lines():
            lines.append(line)
            if line.startswith("data: "):
                break
    assert "event: update" in lines
    data = json.loads(lines[-1].removeprefix("data: "))
    assert stop_in(data, "O-7")["late_min"] == 12
    assert data["vehicles"][0]["id"] == "V-1"

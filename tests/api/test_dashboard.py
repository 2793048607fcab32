"""The dispatcher dashboard /dashboard through the running service: logging in with a key kept
in a cookie, the page, the state (late stops, vehicles, unassigned orders, the notification
feed, only the caller's organisation) and its live stream; on SQLite and PostgreSQL.
The state itself is also checked directly, on a day built row by row."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from api.routes.dashboard import COOKIE, dashboard_state, lateness
from store.db import make_engine, session_factory, transaction
from store.repo import create_organisation
from store.schema import (
    ApiKey,
    EventRow,
    OrderRow,
    Organisation,
    OutboxRow,
    PlanRouteRow,
    PlanRow,
    PlanStopRow,
    ProgressRow,
    VehicleRow,
)
from tests.api.live_state import put_on_route
from tests.api.service import Service

ROME = ZoneInfo("Europe/Rome")


def _order(s: Service, order_id: str, now: datetime, key: str | None = None, **extra: Any) -> None:
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


def _login(s: Service, key: str) -> None:
    r = s.client.post("/dashboard/login", data={"key": key}, follow_redirects=False)
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/dashboard"


def _stop(state: dict[str, Any], order_id: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [
        s for v in state["vehicles"] for s in v["stops"] if s["order"] == order_id
    ]
    assert len(found) == 1, found
    return found[0]


@pytest.mark.integration
def test_login_form_without_cookie(service: Service) -> None:
    r = service.client.get("/dashboard")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert '<label for="key">' in r.text
    assert 'action="/dashboard/login"' in r.text
    assert "dashboard-map" not in r.text
    assert "script-src 'self'" in r.headers["content-security-policy"]


@pytest.mark.integration
def test_wrong_key_is_401_with_the_form(service: Service) -> None:
    s = service
    for wrong in ("lm_000000000000_not-a-key", "hello", ""):
        r = s.client.post("/dashboard/login", data={"key": wrong}, follow_redirects=False)
        assert r.status_code == 401, wrong
        assert 'role="alert"' in r.text
        assert '<label for="key">' in r.text
        assert "set-cookie" not in r.headers
    assert "not accepted" in s.client.post("/dashboard/login", data={"key": "hello"}).text


@pytest.mark.integration
def test_support_and_device_keys_are_403(service: Service) -> None:
    s = service
    for role in ("support", "device"):
        r = s.client.post("/dashboard/login", data={"key": s.key(role)}, follow_redirects=False)
        assert r.status_code == 403
        assert "needs the dispatcher role" in r.text
        assert "set-cookie" not in r.headers
        headers = s.headers(s.key(role))
        assert s.client.get("/dashboard/state", headers=headers).status_code == 403


@pytest.mark.integration
def test_login_from_another_site_is_refused(service: Service) -> None:
    s = service
    key = s.key("dispatcher")
    for origin, proxied_host, status in (
        ("https://evil.example", None, 403),
        ("null", None, 403),
        ("http://testserver", None, 303),
        # Behind a proxy that rewrites Host, the browser's host arrives as X-Forwarded-Host.
        ("https://dispatch.example", "dispatch.example", 303),
    ):
        headers = {"Origin": origin}
        if proxied_host is not None:
            headers["X-Forwarded-Host"] = proxied_host
        r = s.client.post(
            "/dashboard/login", data={"key": key}, headers=headers, follow_redirects=False
        )
        assert r.status_code == status, origin
        assert ("set-cookie" in r.headers) == (status == 303)


@pytest.mark.integration
def test_dispatcher_key_sets_the_cookie_and_opens_the_page(service: Service) -> None:
    s = service
    now = datetime.now(UTC)
    _order(s, "O-7", now, customer_ref="</script><script>alert(1)</script>")
    put_on_route(s.url, "O-7", now, driver_first_name="Lucia")
    key = s.key("dispatcher")
    r = s.client.post("/dashboard/login", data={"key": key}, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/dashboard"
    cookie = r.headers["set-cookie"].lower()
    assert cookie.startswith(f"{COOKIE}=")
    for attribute in ("httponly", "samesite=strict", "path=/dashboard"):
        assert attribute in cookie
    assert "secure" not in cookie  # plain http (tests); https below

    page = s.client.get("/dashboard")
    assert page.status_code == 200, page.text
    html = page.text
    for needle in (
        'id="dashboard-map"',
        '<table id="stops">',
        "<caption>",
        '<th scope="col">Live ETA</th>',
        'id="unassigned"',
        'id="feed"',
        'id="counts"',
        "/static/vendor/leaflet/leaflet.js",
        "/static/dashboard.js",
    ):
        assert needle in html, needle
    # The customer's reference is data: escaped inside the embedded state, never markup.
    assert "<script>alert(1)" not in html
    start = html.index('id="initial-state">') + len('id="initial-state">')
    state = json.loads(html[start : html.index("</script>", start)])
    assert _stop(state, "O-7")["ref"] == "</script><script>alert(1)</script>"

    for path in ("/static/dashboard.js", "/static/dashboard.css"):
        assert s.client.get(path).status_code == 200, path


@pytest.mark.integration
def test_cookie_is_secure_over_https(service: Service) -> None:
    s = service
    r = s.client.post(
        "https://testserver/dashboard/login",
        data={"key": s.key("dispatcher")},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert "secure" in r.headers["set-cookie"].lower()


@pytest.mark.integration
def test_state_lists_the_late_stop_and_the_vehicle(service: Service) -> None:
    s = service
    now = datetime.now(UTC)
    _order(s, "O-7", now, customer_ref="ORD-7")
    start, end = put_on_route(s.url, "O-7", now, driver_first_name="Lucia")
    assert s.client.get("/dashboard/state").status_code == 401

    r = s.client.get("/dashboard/state", headers=s.headers(s.key("dispatcher")))
    assert r.status_code == 200, r.text
    state = r.json()
    stop = _stop(state, "O-7")
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
    _login(s, s.key("dispatcher"))
    assert s.client.get("/dashboard/state").json() == state


@pytest.mark.integration
def test_another_organisations_data_is_not_visible(service: Service) -> None:
    s = service
    now = datetime.now(UTC)
    _order(s, "MINE-1", now)
    put_on_route(s.url, "MINE-1", now, vehicle_id="V-MINE")
    engine = make_engine(s.url)
    try:
        _, other_admin = create_organisation(session_factory(engine), "Other carrier", "UTC")
    finally:
        engine.dispose()
    _order(s, "THEIRS-1", now, key=other_admin)
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
    _order(s, "O-7", now)
    put_on_route(s.url, "O-7", now)
    s.client.app.state.dashboard_poll_s = 0.05  # type: ignore[attr-defined]
    s.client.app.state.dashboard_stream_max_s = 0.3  # type: ignore[attr-defined]
    assert s.client.get("/dashboard/events").status_code == 401
    _login(s, s.key("dispatcher"))
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
    assert _stop(data, "O-7")["late_min"] == 12
    assert data["vehicles"][0]["id"] == "V-1"


@pytest.mark.integration
def test_logout_clears_the_cookie(service: Service) -> None:
    s = service
    _login(s, s.key("dispatcher"))
    assert s.client.get("/dashboard/state").status_code == 200
    r = s.client.post("/dashboard/logout", follow_redirects=False)
    assert r.status_code == 303
    cookie = r.headers["set-cookie"].lower()
    assert cookie.startswith(f'{COOKIE}=""') or cookie.startswith(f"{COOKIE}=;")
    assert "max-age=0" in cookie
    assert "path=/dashboard" in cookie
    assert s.client.get("/dashboard/state").status_code == 401
    assert '<label for="key">' in s.client.get("/dashboard").text


@pytest.mark.integration
def test_a_revoked_key_logs_the_browser_out(service: Service) -> None:
    s = service
    key = s.key("dispatcher")
    _login(s, key)
    engine = make_engine(s.url)
    try:
        with transaction(session_factory(engine)) as session:
            row = session.scalar(select(ApiKey).where(ApiKey.prefix == key.split("_")[1]))
            assert row is not None
            row.revoked_at = datetime.now(UTC)
    finally:
        engine.dispose()
    r = s.client.get("/dashboard")
    assert r.status_code == 401
    assert "not accepted" in r.text
    assert "max-age=0" in r.headers["set-cookie"].lower()


# --- the state, on a day built row by row -------------------------------------------------


def _at(hh_mm: str, day: str = "2030-06-15") -> datetime:
    """A Rome wall-clock time on the test day."""
    return datetime.fromisoformat(f"{day}T{hh_mm}").replace(tzinfo=ROME)


def _routes_geojson(lines: dict[str, list[tuple[float, float]]]) -> dict[str, Any]:
    """The plan's GeoJSON as the planner writes it: a feature per vehicle (your id for it),
    coordinates [lon, lat]."""
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": "LineString", "coordinates": [[lon, lat] for lat, lon in pts]},
                "properties": {"vehicle_id": vehicle_id},
            }
            for vehicle_id, pts in lines.items()
        ],
    }


def _build_day(url: str) -> str:
    """A Rome carrier on 15 June 2030, 09:00: yesterday's route, this morning's plan for V-A
    and V-B, a replan of V-A's rest at 08:00; outcomes, live ETAs, told windows and messages.
    Returns the organisation id."""
    engine = make_engine(url)
    try:
        with transaction(session_factory(engine)) as session:
            org = session.scalars(select(Organisation)).one()
            org.timezone = "Europe/Rome"
            oid = org.id

            def order(ext: str, status: str, window: tuple[str, str] | None = None) -> OrderRow:
                windows = []
                if window is not None:
                    windows = [
                        {"start": _at(window[0]).isoformat(), "end": _at(window[1]).isoformat()}
                    ]
                row = OrderRow(
                    organisation_id=oid,
                    external_id=ext,
                    lat=45.46,
                    lon=9.18,
                    windows=windows,
                    customer_ref=f"ref {ext}",
                    status=status,
                    tracking_token=f"token-{ext}-0123456789",
                    created_at=_at("06:00", "2030-06-10"),
                )
                session.add(row)
                return row

            orders = {
                "Y-1": order("Y-1", "delivered"),
                "A-1": order("A-1", "delivered", ("08:00", "10:00")),
                "A-2": order("A-2", "dispatched", ("08:00", "10:00")),
                "A-3": order("A-3", "dispatched", ("08:00", "12:00")),
                "A-4": order("A-4", "dispatched", ("09:00", "10:00")),
                "B-1": order("B-1", "dispatched", ("10:00", "12:00")),
                "U-1": order("U-1", "open", ("10:00", "11:00")),
                "U-2": order("U-2", "open", ("15:00", "16:00")),
                "U-3": order("U-3", "open", ("10:00", "11:00")),
                "U-4": order("U-4", "cancelled", ("10:00", "11:00")),
            }
            orders["U-3"].windows = [
                {
                    "start": _at("10:00", "2030-06-22").isoformat(),
                    "end": _at("11:00", "2030-06-22").isoformat(),
                }
            ]

            def vehicle(ext: str, driver: str) -> VehicleRow:
                row = VehicleRow(
                    organisation_id=oid,
                    external_id=ext,
                    driver_first_name=driver,
                    start_lat=45.46,
                    start_lon=9.18,
                    shift_start=_at("07:00"),
                    shift_end=_at("17:00"),
                )
                session.add(row)
                return row

            va, vb = vehicle("V-A", "Lucia"), vehicle("V-B", "Marco")

            def plan(dispatched: datetime, **kw: Any) -> PlanRow:
                row = PlanRow(organisation_id=oid, status="succeeded", dispatched_at=dispatched)
                for k, v in kw.items():
                    setattr(row, k, v)
                session.add(row)
                return row

            yesterday = plan(_at("06:00", "2030-06-14"))
            morning = plan(
                _at("06:30"),
                geojson=_routes_geojson(
                    {"V-A": [(45.0, 9.0), (45.1, 9.1)], "V-B": [(45.2, 9.2), (45.3, 9.3)]}
                ),
                result={
                    "routes": [],
                    "unassigned": [
                        {"order_id": "U-1", "reason": "older reason", "marginal_cost": None}
                    ],
                },
            )
            replan = plan(
                _at("08:00"),
                kind="replan",
                geojson=_routes_geojson({"V-A": [(45.4, 9.4), (45.5, 9.5)]}),
                result={
                    "routes": [],
                    "unassigned": [
                        {"order_id": "U-1", "reason": "window unreachable", "marginal_cost": None}
                    ],
                },
            )
            cancelled = plan(_at("08:30"), status="cancelled")
            session.flush()

            def route(p: PlanRow, v: VehicleRow, start: datetime, stops: list[str]) -> None:
                row = PlanRouteRow(
                    plan_id=p.id,
                    vehicle_id=v.id,
                    start=start,
                    end=start + timedelta(hours=4),
                    distance_m=10_000,
                    duration_s=14_400,
                )
                session.add(row)
                session.flush()
                for seq, ext in enumerate(stops, start=1):
                    arrival = start + timedelta(minutes=30 * seq)
                    session.add(
                        PlanStopRow(
                            route_id=row.id,
                            seq=seq,
                            order_id=orders[ext].id,
                            arrival=arrival,
                            service_start=arrival,
                            departure=arrival + timedelta(minutes=3),
                            wait_s=0,
                        )
                    )

            route(yesterday, va, _at("08:00", "2030-06-14"), ["Y-1"])
            route(morning, va, _at("07:30"), ["A-1", "A-2", "A-3", "A-4"])
            route(morning, vb, _at("09:30"), ["B-1"])
            route(replan, va, _at("08:00"), ["A-2", "A-3", "A-4"])
            route(cancelled, vb, _at("08:30"), ["U-2"])

            def eta(ext: str, hh_mm: str, arrived: bool = False) -> list[object]:
                t = _at(hh_mm).timestamp()
                return [ext, t, t - 300, t + 600, t + 180, arrived]

            session.add(
                ProgressRow(
                    vehicle_id=va.id,
                    organisation_id=oid,
                    plan_id=replan.id,
                    last_fix_time=_at("08:58"),
                    last_lat=45.47,
                    last_lon=9.19,
                    state={
                        "etas": [
                            eta("A-2", "08:55", arrived=True),
                            eta("A-3", "09:40"),
                            eta("A-4", "10:20"),
                        ],
                        "stops": [
                            {
                                "order_id": "A-2",
                                "arrived_at": _at("08:55").isoformat(),
                                "departed_at": None,
                            },
                        ],
                    },
                )
            )
            session.add_all(
                [
                    EventRow(
                        organisation_id=oid,
                        order_id=orders["A-3"].id,
                        kind="window_told",
                        at=_at("06:30", "2030-06-14"),
                        data={"eta": _at("07:00").isoformat()},  # an old promise
                    ),
                    EventRow(
                        organisation_id=oid,
                        order_id=orders["A-3"].id,
                        kind="window_told",
                        at=_at("06:30"),
                        data={"eta": _at("09:30").isoformat()},
                    ),
                ]
            )

            def message(ext: str, status: str, created: datetime, **kw: Any) -> None:
                session.add(
                    OutboxRow(
                        organisation_id=oid,
                        order_id=orders[ext].id,
                        channel="sms",
                        trigger="window_broken",
                        dedupe_key=f"{ext}:{created}:{status}",
                        status=status,
                        due_at=created,
                        created_at=created,
                        **kw,
                    )
                )

            message("A-1", "sent", _at("07:00"), sent_at=_at("07:01"))
            message("A-3", "dead", _at("08:40"), last_error="provider said no " * 40)
            yesterday_7 = _at("07:00", "2030-06-14")
            message("Y-1", "sent", yesterday_7, sent_at=yesterday_7)
    finally:
        engine.dispose()
    return oid


@pytest.mark.integration
def test_state_of_a_day(service: Service) -> None:
    """Statuses, lateness (window and told), the replan superseding the morning route, the
    Rome day (yesterday's route left out), unassigned orders with reasons and the feed."""
    organisation_id = _build_day(service.url)
    engine = make_engine(service.url)
    try:
        with session_factory(engine)() as session:
            state = dashboard_state(session, organisation_id, _at("09:00"))
            # 01:30 in Rome is already the 15th, though still the 14th in UTC.
            late_night = dashboard_state(session, organisation_id, _at("01:30"))
    finally:
        engine.dispose()
    assert state["day"] == late_night["day"] == "2030-06-15"
    assert state["timezone"] == "Europe/Rome"

    va, vb = state["vehicles"]
    assert (va["id"], va["driver"], va["lat"], va["lon"]) == ("V-A", "Lucia", 45.47, 9.19)
    assert va["last_fix"] == _at("08:58").astimezone(UTC).isoformat()
    assert va["line"] == [[45.4, 9.4], [45.5, 9.5]]  # the replan's, not the morning's
    assert [(s["order"], s["status"]) for s in va["stops"]] == [
        ("A-1", "delivered"),  # kept from the morning route: done before the replan
        ("A-2", "arrived"),
        ("A-3", "next"),
        ("A-4", "planned"),
    ]
    a3 = va["stops"][2]
    assert (a3["late"], a3["late_min"], a3["late_reasons"]) == (True, 10, ["told"])
    a4 = va["stops"][3]
    assert (a4["late"], a4["late_min"], a4["late_reasons"]) == (True, 20, ["window"])
    assert a4["eta"] == _at("10:20").astimezone(UTC).isoformat()
    assert a4["time_windows"] == [
        [_at("09:00").astimezone(UTC).isoformat(), _at("10:00").astimezone(UTC).isoformat()]
    ]
    assert not va["stops"][1]["late"]
    assert (va["stops_done"], va["stops_total"]) == (1, 4)

    # V-B reports no position yet: planned stop, no live ETA; its cancelled plan is ignored.
    assert (vb["id"], vb["lat"], vb["last_fix"]) == ("V-B", None, None)
    assert vb["line"] == [[45.2, 9.2], [45.3, 9.3]]
    (b1,) = vb["stops"]
    assert (b1["order"], b1["status"], b1["eta"], b1["late"]) == ("B-1", "planned", None, False)
    assert b1["planned_arrival"] == _at("10:00").astimezone(UTC).isoformat()

    assert [(u["order"], u["reason"]) for u in state["unassigned"]] == [
        ("U-1", "window unreachable"),  # the newest plan's reason
        ("U-2", "not planned yet"),
    ]  # U-3 is due next week, U-4 is cancelled

    feed = state["feed"]
    assert [(f["order"], f["status"]) for f in feed] == [
        ("A-3", "dead"),
        ("A-1", "sent"),
        ("Y-1", "sent"),
    ]
    assert len(feed[0]["last_error"]) == 300
    assert feed[0]["ref"] == "ref A-3"

    assert state["counts"] == {
        "vehicles": 2,
        "stops_total": 5,
        "stops_done": 1,
        "stops_delivered": 1,
        "stops_failed": 0,
        "stops_late": 2,
        "unassigned": 2,
        "messages_sent": 1,
        "messages_failed": 1,
    }


def test_lateness_rules() -> None:
    t = datetime(2030, 6, 15, 10, 0, tzinfo=UTC)
    window = [(t - timedelta(hours=1), t)]
    assert lateness(t.timestamp(), window, None) == (0, [])
    assert lateness(t.timestamp() + 20, window, None) == (0, [])  # under a minute
    assert lateness(t.timestamp() + 600, window, None) == (10, ["window"])
    # Between two windows the vehicle waits for the second: not late.
    two = [*window, (t + timedelta(hours=2), t + timedelta(hours=3))]
    assert lateness(t.timestamp() + 600, two, None) == (0, [])
    # Against what was told: from 5 minutes on, as the tracking page says.
    assert lateness(t.timestamp(), [], t - timedelta(minutes=4)) == (0, [])
    assert lateness(t.timestamp(), [], t - timedelta(minutes=5)) == (5, ["told"])
    assert lateness(t.timestamp() + 600, window, t - timedelta(minutes=30)) == (
        40,
        ["window", "told"],
    )

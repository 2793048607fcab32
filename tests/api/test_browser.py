"""The web pages in a real browser (headless Chromium driven by Playwright) against the
service on a real port: the tracking page's window, its live update without reload, the
map's privacy rule, the instructions form, and the dispatcher dashboard's late stop. Each
test saves screenshots (``test-artifacts/screenshots``). Run them alone: ``pytest -m
browser``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from api.routes.tracking import tracking_view
from store.db import make_engine, session_factory
from store.schema import OrderRow
from tests.api.browser import PHONE_SCREEN, LiveService, screenshot
from tests.api.live_state import SimClock, dispatch, osmand_id, read_order, tracking_token

pytestmark = [pytest.mark.browser, pytest.mark.integration]

DEPOT = (60.1699, 24.9384)
STOPS = {"B-a": (60.1665, 24.9433), "B-b": (60.1700, 24.9500)}


def _day(s: LiveService) -> list[str]:
    """Two English customers planned and dispatched from the Helsinki depot, route order."""
    orders = {
        oid: {
            "location": {"lat": lat, "lon": lon},
            "service_s": 60,
            "customer_ref": f"REF-{oid}",
            "contact": {"name": "Alex"},
            "language": "en",
            "timezone": "Europe/Helsinki",
        }
        for oid, (lat, lon) in STOPS.items()
    }
    return dispatch(s, orders, DEPOT)


def _fix(s: LiveService, at: datetime, where: tuple[float, float] = DEPOT) -> None:
    r = s.client.get(
        "/osmand",
        params={
            "id": osmand_id(s),
            "lat": where[0],
            "lon": where[1],
            "timestamp": int(at.timestamp()),
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "applied", r.text


def _token(s: LiveService, order_id: str) -> str:
    return tracking_token(s.url, order_id)


def _window_line(s: LiveService, order_id: str) -> str:
    """The window sentence the page should show now, read from the store."""
    return read_order(
        s.url,
        order_id,
        lambda session, order: tracking_view(session, order, datetime.now(UTC)).window,
    )


def _fits_the_phone(page: Any) -> bool:
    width: int = page.evaluate("document.documentElement.scrollWidth")
    return width <= PHONE_SCREEN["width"]


def test_tracking_page_shows_the_window(live: LiveService, phone: Any) -> None:
    """The page shows the live window in the customer's words, readable at 360 px."""
    s = live
    first, _ = _day(s)
    _fix(s, datetime.now(UTC) - timedelta(seconds=5))
    phone.goto(f"{s.base_url}/t/{_token(s, first)}")
    expected = _window_line(s, first)
    assert expected.startswith("Expected between ")
    assert phone.inner_text("#window") == expected
    assert phone.inner_text("#status") == "You are the next stop"
    assert phone.inner_text("#timeline li:last-child") == "Delivered"
    assert phone.get_attribute("html", "lang") == "en"
    assert _fits_the_phone(phone)
    screenshot(phone, "tracking-window")


def test_a_delaying_fix_changes_the_open_page_without_reload(live: LiveService, phone: Any) -> None:
    """The van stands at the depot, minute after minute of fixes: the stored window moves
    and the open page follows within seconds, over server-sent events, not by reloading."""
    s = live
    _, second = _day(s)
    clock = SimClock(datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=40))
    s.app.state.ingester.clock = clock
    _fix(s, clock.now)
    phone.goto(f"{s.base_url}/t/{_token(s, second)}")
    before = phone.inner_text("#window")
    assert before == _window_line(s, second)
    phone.evaluate("window.__loadedOnce = true")
    for _ in range(40):
        _fix(s, clock.advance(60))
        if _window_line(s, second) != before:
            break
    else:
        raise AssertionError("standing 40 minutes at the depot never moved the window")
    expected = _window_line(s, second)
    phone.wait_for_function(
        "text => document.getElementById('window').textContent === text",
        arg=expected,
        timeout=5_000,
    )
    assert phone.evaluate("window.__loadedOnce === true")  # the same page, not reloaded
    screenshot(phone, "tracking-window-moved")


def test_map_shows_the_van_only_when_the_stop_is_next(live: LiveService, chromium: Any) -> None:
    """First stop: the van and its road to the door on the map. Second stop: its own
    address on the streets, no van."""
    s = live
    first, second = _day(s)
    _fix(s, datetime.now(UTC) - timedelta(seconds=5))
    context = chromium.new_context(viewport=PHONE_SCREEN)
    try:
        page = context.new_page()
        page.goto(f"{s.base_url}/t/{_token(s, first)}")
        page.wait_for_selector("#map path.map-stop")
        assert page.get_attribute("#map", "data-vehicle") == "shown"
        assert page.locator("#map path.map-vehicle").count() == 1
        assert page.locator("#map path.map-leg").count() == 1
        assert page.is_visible("#map-vehicle-note")
        screenshot(page, "tracking-map-next")

        page.goto(f"{s.base_url}/t/{_token(s, second)}")
        page.wait_for_selector("#map path.map-stop")
        assert page.get_attribute("#map", "data-vehicle") == "hidden"
        assert page.locator("#map path.map-vehicle").count() == 0
        assert not page.is_visible("#map-vehicle-note")
        screenshot(page, "tracking-map-not-next")
    finally:
        context.close()


def test_instructions_form_saves(live: LiveService, phone: Any) -> None:
    """Typed into the labelled fields and saved: the page says so and keeps the values."""
    s = live
    first, _ = _day(s)
    phone.goto(f"{s.base_url}/t/{_token(s, first)}")
    phone.get_by_label("Safe place").fill("Behind the blue gate")
    phone.get_by_label("Notes for the driver").fill("Dog is friendly")
    phone.get_by_label("Access or door code").fill("4321")
    phone.get_by_role("button", name="Save instructions").click()
    phone.wait_for_selector("p.note")
    assert "your instructions were saved" in phone.inner_text("p.note")
    assert phone.input_value("#safe_place") == "Behind the blue gate"
    assert phone.input_value("#access_code") == "4321"
    engine = make_engine(s.url)
    try:
        with session_factory(engine)() as session:
            order = session.scalar(select(OrderRow).where(OrderRow.external_id == first))
            assert order is not None
            assert order.delivery_instructions == {
                "safe_place": "Behind the blue gate",
                "notes": "Dog is friendly",
                "access_code": "4321",
            }
    finally:
        engine.dispose()
    screenshot(phone, "tracking-instructions-saved")


def test_dashboard_lists_a_late_stop(live: LiveService, chromium: Any) -> None:
    """A dispatcher signs in with their key; the van stands at the depot until a stop runs
    late: the open dashboard marks that stop's row late, live, without a reload."""
    s = live
    _day(s)
    key = s.key("dispatcher")
    clock = SimClock(datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=40))
    s.app.state.ingester.clock = clock
    _fix(s, clock.now)
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        page.goto(f"{s.base_url}/dashboard")
        page.get_by_label("API key").fill(key)
        page.get_by_role("button").click()
        page.wait_for_selector("table#stops tr[data-order]")
        page.wait_for_selector("#connection.live")
        assert page.locator("table#stops tr[data-order]").count() == len(STOPS)
        page.evaluate("window.__loadedOnce = true")
        for _ in range(40):
            _fix(s, clock.advance(60))
            state = s.client.get("/dashboard/state", headers=s.headers(key)).json()
            late = [st["order"] for v in state["vehicles"] for st in v["stops"] if st["late"]]
            if late:
                break
        else:
            raise AssertionError("standing 40 minutes at the depot made no stop late")
        page.wait_for_selector(f'table#stops tr[data-order="{late[0]}"].late', timeout=5_000)
        assert page.evaluate("window.__loadedOnce === true")
        assert page.locator("#dashboard-map path").count() >= len(STOPS)
        screenshot(page, "dashboard-late-stop")
    finally:
        context.close()

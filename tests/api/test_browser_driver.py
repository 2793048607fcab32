"""The drivers' web app (issue 20) in a real browser, part one: signing in and what the phone
shows and sends. Headless Chromium, driven by Playwright, as a phone (a phone-sized viewport,
emulated GPS) against the service on a real port: signing in from the dispatcher's link, the
GPS reaching the service and the dispatcher's dashboard (over HTTP: this service has no
broker), another vehicle's stops out of reach, the app's languages, which fixes are sent, and
no other origin ever asked. Offline, proof and re-plans: test_browser_driver_offline.py; GPS
over MQTT: test_browser_driver_mqtt.py; the shared phone: driver_phone.py.

Screenshots go to ``test-artifacts/screenshots``; with ``LASTMILE_DOCS_SCREENSHOT=1`` the
sign-in test also refreshes ``docs/img/driver-app.png`` (the README's picture). Run them
alone: ``pytest -m browser tests/api/test_browser_driver*.py``.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.api.browser import LiveService, screenshot
from tests.api.driver_phone import (
    DEPOT,
    PHONE,
    PLACES,
    api_shift,
    day,
    drive,
    driver_service,
    phone,
    progress,
    shown_order,
    sign_in_by_link,
    until,
    worker_ready,
)

pytestmark = [pytest.mark.browser, pytest.mark.integration]

DOCS_IMAGE = Path(__file__).resolve().parents[2] / "docs" / "img" / "driver-app.png"


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveService]:
    with driver_service(tmp_path) as s:
        yield s


def _docs_image(png: bytes) -> None:
    """The README's picture: the phone's screen, in few colours (it is kept in git)."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    small = image.quantize(colors=64, method=Image.Quantize.MEDIANCUT)
    small.save(DOCS_IMAGE, optimize=True)


def test_sign_in_from_the_link_shows_the_days_stops(live: LiveService, chromium: Any) -> None:
    """The dispatcher's link signs the phone in and leaves the address bar; the stops show in
    route order with what the driver needs; the map draws the route and the van; the sign-in
    survives a restart of the app, and signing out forgets it."""
    s = live
    route, key = day(s)
    context = phone(chromium)
    try:
        page = context.new_page()
        sign_in_by_link(page, s, key)
        page.wait_for_selector("#stops li[data-order]")
        assert "key=" not in page.url
        assert "#" not in page.url
        assert shown_order(page) == route
        first = page.locator(f'#stops li[data-order="{route[0]}"]')
        assert "next" in (first.get_attribute("class") or "")
        assert first.locator("h3.address").inner_text() == PLACES[route[0]][2]
        assert first.locator(".contact").inner_text() == PLACES[route[0]][3]
        instructions = first.locator("dl.instructions").inner_text()
        for given in ("Behind the blue gate", "Ring twice", "4321"):
            assert given in instructions
        assert first.locator("a.call").get_attribute("href") == "tel:+358401234567"
        lat, lon = PLACES[route[0]][0], PLACES[route[0]][1]
        assert first.locator("a.navigate").get_attribute("href") == (
            f"https://www.google.com/maps/dir/?api=1&destination={lat:.6f},{lon:.6f}"
        )
        assert first.locator(".times").inner_text().count(":") >= 2  # the window, as times
        assert first.get_by_role("button", name="Arrived").is_visible()
        # The route's own roads, the stops, the van where the phone is.
        page.wait_for_selector("#map .van-icon")
        assert page.locator("#map path.map-next-stop").count() == 1
        assert page.locator("#map path").count() >= 1 + len(route)
        assert page.locator("#banner-location").is_hidden()
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        # Every control is thumb-sized: 48 px or more both ways.
        small = page.evaluate(
            """() => [...document.querySelectorAll(
                  'button, a.button, select, input, label.button, .leaflet-control-zoom a')]
              .filter(n => n.offsetParent !== null && !n.classList.contains('sr-only'))
              .map(n => [n.textContent.trim() || n.id, n.getBoundingClientRect()])
              .filter(([, r]) => r.height < 47.5 || r.width < 47.5)
              .map(([name]) => name)"""
        )
        assert small == []
        worker_ready(page)
        page.wait_for_selector("#connection.live")
        shot = screenshot(page, "driver-stops")
        if os.environ.get("LASTMILE_DOCS_SCREENSHOT") == "1":
            _docs_image(page.screenshot())
        assert shot.exists()

        page.reload()
        page.wait_for_selector("#stops li[data-order]")
        assert shown_order(page) == route
        page.get_by_role("button", name="Sign out").click()
        page.wait_for_selector("#signin-form")
        page.reload()
        page.wait_for_selector("#signin-form")
        assert page.locator("#app").is_hidden()
        assert page.input_value("#key") == ""
    finally:
        context.close()


def test_the_night_theme_darkens_the_map_too(live: LiveService, chromium: Any) -> None:
    """A phone in dark mode gets the dark theme, its map included: a dark ground and a light
    route line (no light box left in the middle of a dark screen at night)."""
    s = live
    _, key = day(s)
    context = phone(chromium)
    try:
        page = context.new_page()
        page.emulate_media(color_scheme="dark")
        sign_in_by_link(page, s, key)
        page.wait_for_selector("#map path.map-route")
        colours = page.evaluate(
            """() => [document.body, document.getElementById('map'),
                      document.querySelector('#map path.map-route')]
                 .map((n, i) => getComputedStyle(n)[i < 2 ? 'backgroundColor' : 'stroke'])"""
        )
        assert colours == ["rgb(13, 17, 23)", "rgb(28, 33, 40)", "rgb(138, 180, 255)"]
        page.emulate_media(color_scheme="light")
        light = page.evaluate(
            "() => getComputedStyle(document.querySelector('#map path.map-route')).stroke"
        )
        assert light == "rgb(29, 78, 216)"
        screenshot(page, "driver-night")
    finally:
        context.close()


def test_the_phones_gps_reaches_the_service_and_the_dashboard(
    live: LiveService, chromium: Any
) -> None:
    """The emulated phone drives towards its first stop: the vehicle's last fix follows it,
    a stop's ETA changes, and the dispatcher's dashboard shows the van where the phone is."""
    s = live
    route, key = day(s)
    dispatcher = s.key("dispatcher")
    context = phone(chromium)
    try:
        page = context.new_page()
        sign_in_by_link(page, s, key)
        page.wait_for_selector("#stops li[data-order]")
        # No broker here: the fixes go over HTTP, and the app says so.
        assert page.get_attribute("#positions-path", "data-path") == "http"
        assert page.inner_text("#positions-path") == "GPS via HTTP"
        first = until(
            lambda: (p := progress(s, dispatcher)).get("fix_time") and p,
            what="the phone's first fix",
        )
        assert abs(first["lat"] - DEPOT[0]) < 1e-4
        assert abs(first["lon"] - DEPOT[1]) < 1e-4
        etas_before = {e["order_id"]: e["eta"] for e in first["etas"]}
        target = PLACES[route[0]]
        at = drive(context, DEPOT, (target[0], target[1]))

        def moved() -> dict[str, Any] | None:
            p = progress(s, dispatcher)
            near = abs(p["lat"] - at[0]) < 1e-4 and abs(p["lon"] - at[1]) < 1e-4
            return p if near and p["fix_time"] != first["fix_time"] else None

        last = until(moved, what="the vehicle's last fix at the phone's position")
        etas_after = {e["order_id"]: e["eta"] for e in last["etas"]}
        changed = [o for o in etas_after if o in etas_before and etas_after[o] != etas_before[o]]
        assert changed, (etas_before, etas_after)

        state = s.client.get("/dashboard/state", headers=s.headers(dispatcher)).json()
        [van] = [v for v in state["vehicles"] if v["id"] == "v1"]
        assert abs(van["lat"] - at[0]) < 1e-4
        assert abs(van["lon"] - at[1]) < 1e-4
        assert van["last_fix"] is not None
        # The app shows the live ETA of its next stop.
        page.wait_for_function(
            "() => /\\d/.test(document.querySelector('#stops li.next .eta dd').textContent)"
        )
        screenshot(page, "driver-moving")
    finally:
        context.close()


def test_another_vehicles_stops_cannot_be_seen(live: LiveService, chromium: Any) -> None:
    """v1's key opens nothing of v2's, by the link or typed, and a wrong key is told apart;
    the app says so and shows no stops."""
    s = live
    _, key = day(s)
    r = s.client.post(
        "/v1/vehicles",
        json={"id": "v2", "depot_id": "d1", "shift": api_shift()},
        headers=s.headers(),
    )
    assert r.status_code == 201, r.text
    other = s.key("device", vehicle="v2")
    assert s.client.get("/v1/vehicles/v2/stops", headers=s.headers(key)).status_code == 404
    assert s.client.get("/v1/vehicles/v1/stops", headers=s.headers(other)).status_code == 404
    context = phone(chromium)
    try:
        page = context.new_page()
        sign_in_by_link(page, s, key, vehicle="v2")
        error = page.locator("#signin-error")
        error.wait_for()
        assert (
            error.inner_text()
            == "This key does not open vehicle v2: check the vehicle and the key."
        )
        assert "key=" not in page.url
        assert page.locator("#app").is_hidden()
        assert page.locator("#stops li").count() == 0

        page.fill("#vehicle", "v1")
        page.fill("#key", other)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_function(
            "() => document.getElementById('signin-error').textContent.includes('v1')"
        )
        assert page.locator("#app").is_hidden()

        page.fill("#key", "not-a-key")
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_function(
            "() => document.getElementById('signin-error').textContent.startsWith('That key')"
        )
        assert page.locator("#stops li").count() == 0
        screenshot(page, "driver-refused")
    finally:
        context.close()


@pytest.mark.parametrize(
    ("locale", "heading"), [("it-IT", "Le fermate di oggi"), ("fi-FI", "Today's stops")]
)
def test_the_app_speaks_the_phones_language_or_the_drivers_choice(
    live: LiveService, chromium: Any, locale: str, heading: str
) -> None:
    """The phone's language when the app has it (else the route's), and the driver's own
    choice above both, kept across restarts."""
    s = live
    _, key = day(s)
    context = phone(chromium, locale=locale)
    try:
        page = context.new_page()
        sign_in_by_link(page, s, key)
        page.wait_for_selector("#stops li[data-order]")
        assert page.inner_text("#stops-heading") == heading
        page.select_option("#language", "ru")
        page.wait_for_function(
            "() => document.getElementById('stops-heading').textContent === 'Остановки на сегодня'"
        )
        assert page.get_attribute("html", "lang") == "ru"
        assert page.locator("#stops li.next").get_by_role("button", name="Доставлено").count()
        page.reload()
        page.wait_for_selector("#stops li[data-order]")
        assert page.inner_text("#stops-heading") == "Остановки на сегодня"
    finally:
        context.close()


def test_gps_hygiene(live: LiveService, chromium: Any) -> None:
    """Which fixes the phone sends: none worse than 100 m, none older than the last sent,
    one every 5 s unless moved more than 30 m."""
    s = live
    context = phone(chromium)
    try:
        page = context.new_page()
        page.goto(f"{s.base_url}/driver")
        verdicts = page.evaluate(
            """() => {
              const last = {lat: 60.17, lon: 24.94, t: Date.parse('2026-01-01T10:00:00Z')};
              const fix = (s, dLat, acc) => ({lat: 60.17 + dLat, lon: 24.94, accuracy_m: acc,
                time: new Date(last.t + s * 1000).toISOString()});
              const ok = (f, l) => DriverGps.worthSending(f, l);
              return {
                first: ok(fix(0, 0, 10), null),
                vague: ok(fix(10, 0, 150), last),
                older: ok(fix(-1, 0.001, 10), last),
                same_time: ok(fix(0, 0.001, 10), last),
                soon_still: ok(fix(2, 0.0001, 10), last),
                soon_moved: ok(fix(2, 0.0005, 10), last),
                later_still: ok(fix(5, 0, 10), last),
              };
            }"""
        )
        assert verdicts == {
            "first": True,
            "vague": False,
            "older": False,
            "same_time": False,
            "soon_still": False,
            "soon_moved": True,
            "later_still": True,
        }
    finally:
        context.close()


def test_no_tile_server_or_other_origin_is_ever_asked(live: LiveService, chromium: Any) -> None:
    """Every request the app makes stays on the service's own origin (the map has no tiles)."""
    s = live
    _, key = day(s)
    context = phone(chromium)
    elsewhere: list[str] = []
    context.on(
        "request",
        lambda request: (
            None if request.url.startswith(s.base_url) else elsewhere.append(request.url)
        ),
    )
    try:
        page = context.new_page()
        sign_in_by_link(page, s, key)
        page.wait_for_selector("#map .van-icon")
        page.wait_for_selector("#connection.live")
        assert [u for u in elsewhere if not u.startswith(("data:", "blob:"))] == []
    finally:
        context.close()

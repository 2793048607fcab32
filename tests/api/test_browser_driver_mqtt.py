"""The drivers' web app sends its GPS over MQTT over WebSockets when the service offers a
broker for it, and over HTTP otherwise (issue 20), in a real browser: headless Chromium as a
phone with emulated GPS, against the service on a real port with its private broker.

- With the broker's WebSocket listener (Mosquitto's, and amqtt's when Mosquitto is not
  installed), the phone's fixes reach the ingester through the broker: the vehicle's last fix
  follows the phone, while the HTTP positions endpoint is not called once.
- With a broker that has no WebSocket listener, and with one the phone cannot reach, the
  same fixes arrive over HTTP: nothing is lost.

Mosquitto missing: the Mosquitto cases are skipped saying so (they fail in CI, where it must
be there). Run them alone: ``pytest -m browser tests/api/test_browser_driver_mqtt.py``.
"""

from __future__ import annotations

import functools
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from api.driver_mqtt import PhoneBroker
from store.db import make_engine, session_factory
from store.schema import VehicleRow
from telematics import broker as broker_module
from tests.api.browser import LiveService, screenshot
from tests.api.driver_phone import (
    DEPOT,
    PLACES,
    api_stops,
    day,
    drive,
    driver_service,
    phone,
    progress,
    sign_in_by_link,
    until,
)
from tests.conftest import require_servers

pytestmark = [pytest.mark.browser, pytest.mark.integration]

#: The positions endpoint, as the service's request counter names its route.
POSITIONS_ROUTE = "/v1/vehicles/{vehicle_id}/positions"


def _need_mosquitto() -> None:
    if broker_module._mosquitto_binary() is None:
        message = "mosquitto is not installed (Debian: apt-get install mosquitto)"
        if require_servers():
            pytest.fail(message)
        pytest.skip(message)


def _without_mosquitto(monkeypatch: pytest.MonkeyPatch) -> None:
    """As on a machine with nothing installed: the service starts the embedded amqtt."""
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    monkeypatch.setattr(broker_module, "MOSQUITTO_FALLBACK_PATHS", ())


@pytest.fixture(params=["mosquitto", "amqtt"])
def with_broker(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[LiveService]:
    """The service with its private broker, of either kind, and its WebSocket listener."""
    if request.param == "mosquitto":
        _need_mosquitto()
    else:
        _without_mosquitto(monkeypatch)
    with driver_service(tmp_path, mqtt=True) as s:
        assert s.app.state.mqtt.connected.wait(15), "the ingester did not subscribe"
        yield s


def _http_positions(s: LiveService) -> int:
    """How many requests the HTTP positions endpoint has answered (the service's counter)."""
    text = s.client.get("/metrics").text
    return int(
        sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "lastmile_http_requests_total"
            and sample.labels.get("route") == POSITIONS_ROUTE
        )
    )


def _organisation_of(s: LiveService, vehicle: str) -> str:
    engine = make_engine(s.url)
    try:
        with session_factory(engine)() as session:
            found = session.scalar(
                select(VehicleRow.organisation_id).where(VehicleRow.external_id == vehicle)
            )
            assert found is not None
            return found
    finally:
        engine.dispose()


def _drive_and_follow(s: LiveService, context: Any, route: list[str]) -> tuple[float, float]:
    """The phone's first fix reaches the service, then the phone drives towards its first
    stop and the vehicle's last fix follows it there; where it ended."""
    dispatcher = s.key("dispatcher")
    first = until(
        lambda: (p := progress(s, dispatcher)).get("fix_time") and p, what="the first fix"
    )
    assert abs(first["lat"] - DEPOT[0]) < 1e-4
    target = PLACES[route[0]]
    at = drive(context, DEPOT, (target[0], target[1]))

    def followed() -> bool:
        p = progress(s, dispatcher)
        near = abs(p["lat"] - at[0]) < 1e-4 and abs(p["lon"] - at[1]) < 1e-4
        return near and bool(p["fix_time"] != first["fix_time"])

    until(followed, what="the vehicle's last fix at the phone's position")
    return at


def test_the_phones_fixes_go_through_the_broker(with_broker: LiveService, chromium: Any) -> None:
    """The stops offer the private broker's WebSocket listener (no credentials: it checks
    none), the page may connect there, and every fix the phone sends arrives through it."""
    s = with_broker
    route, key = day(s)
    offer = api_stops(s, key)["mqtt"]
    organisation = _organisation_of(s, "v1")
    assert offer["url"].startswith("ws://127.0.0.1:")
    assert offer["url"].endswith("/mqtt")
    assert offer["username"] is None
    assert offer["topic"] == f"{organisation}/fleet/v1/position"
    assert offer["qos"] == 1
    ws_origin = offer["url"].removesuffix("/mqtt")
    csp = s.client.get("/driver").headers["content-security-policy"]
    assert f"connect-src 'self' {ws_origin};" in csp
    processed_before = s.app.state.mqtt.processed
    context = phone(chromium)
    try:
        page = context.new_page()
        sign_in_by_link(page, s, key)
        page.wait_for_selector("#positions-path[data-path='mqtt']")
        assert page.inner_text("#positions-path") == "GPS via MQTT"
        _drive_and_follow(s, context, route)
        screenshot(page, "driver-gps-over-mqtt")
    finally:
        context.close()
    assert s.app.state.mqtt.processed - processed_before >= 2
    assert _http_positions(s) == 0


def test_without_a_websocket_listener_the_fixes_go_over_http(
    tmp_path: Path, chromium: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A private Mosquitto without a WebSocket listener (as one built without them): the
    stops offer no broker, and the phone sends its fixes over HTTP."""
    _need_mosquitto()
    tcp_only = functools.partial(broker_module.start_mosquitto, websockets=False)
    monkeypatch.setattr(broker_module, "start_mosquitto", tcp_only)
    with driver_service(tmp_path, mqtt=True) as s:
        route, key = day(s)
        assert api_stops(s, key)["mqtt"] is None
        context = phone(chromium)
        try:
            page = context.new_page()
            sign_in_by_link(page, s, key)
            page.wait_for_selector("#stops li[data-order]")
            assert page.get_attribute("#positions-path", "data-path") == "http"
            _drive_and_follow(s, context, route)
        finally:
            context.close()
        assert _http_positions(s) >= 2


def test_a_broker_the_phone_cannot_reach_loses_nothing(tmp_path: Path, chromium: Any) -> None:
    """The service offers a WebSocket listener that is not there (gone, or out of the phone's
    reach): the app tries it, then sends every fix over HTTP."""
    with driver_service(tmp_path) as s:
        nothing_there = f"ws://127.0.0.1:{broker_module._free_port()}/mqtt"
        s.app.state.phone_broker = PhoneBroker(
            nothing_there, checks_credentials=False, loopback_only=True
        )
        route, key = day(s)
        assert api_stops(s, key)["mqtt"]["url"] == nothing_there
        context = phone(chromium)
        try:
            page = context.new_page()
            sign_in_by_link(page, s, key)
            page.wait_for_selector("#stops li[data-order]")
            _drive_and_follow(s, context, route)
            assert page.get_attribute("#positions-path", "data-path") == "http"
        finally:
            context.close()
        assert _http_positions(s) >= 2

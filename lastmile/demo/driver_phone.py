"""The drivers' app on a phone in the demo (``lastmile demo --driver-app``): one van's driver
uses the service's own web app (``/driver``) in a headless Chromium instead of a simulated
device.

The van still drives as the simulator says; its phone is what changes. Each GPS fix becomes
the phone's position (Chromium's emulated geolocation, read by the app's ``watchPosition``),
and each "delivered" or "failed" of the driver becomes taps in the app: the stop's button,
the recipient's name, a signature drawn on the screen (or the reason), then confirm. The app
sends all of it over HTTP with the vehicle's device key, as it would from a real phone.

The demo runs on a sped-up clock and the phone must live on it: the page gets a ``Date`` that
runs at the demo's speed from the demo's time (synchronised every half second), and the
positions it reads carry that time. Playwright and Chromium are the test tools' (the ``dev``
extra, Debian's ``chromium``); without them the demo says what to install.
"""

from __future__ import annotations

import logging
import os
import queue
import shutil
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx

from lastmile.demo.device_messages import DriverEvent, Fix

log = logging.getLogger(__name__)

#: Flags for a headless Chromium on a machine with no network beyond loopback: without the
#: background-networking ones it keeps trying Google's hosts (the browser tests use them too).
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: The failure reasons the app offers, by a word of the simulator's reason.
REASONS = (("home", "not_home"), ("refus", "refused"), ("address", "address_not_found"))
#: Longest wait for the app to show the stops, and for one tap's form (wall seconds).
READY_TIMEOUT_S = 60.0
TAP_TIMEOUT_MS = 15_000

#: The demo's clock in the page: ``Date`` runs at ``rate`` from ``sim`` (ms) at wall ``base``,
#: and the positions the app reads are stamped with it.
_PHONE_CLOCK = """
(() => {
  const Real = Date;
  let base = Real.now(), sim = %(sim_ms)f, rate = %(rate)f;
  const now = () => sim + (Real.now() - base) * rate;
  class DemoDate extends Real {
    constructor(...args) { if (args.length === 0) { super(now()); } else { super(...args); } }
    static now() { return now(); }
  }
  window.Date = DemoDate;
  window.__demoClock = (simMs, speed) => { base = Real.now(); sim = simMs; rate = speed; };
  const geo = navigator.geolocation;
  const stamp = (ok) => (p) => ok({ coords: p.coords, timestamp: now() });
  const watch = geo.watchPosition.bind(geo);
  const once = geo.getCurrentPosition.bind(geo);
  geo.watchPosition = (ok, err, options) => watch(stamp(ok), err, options);
  geo.getCurrentPosition = (ok, err, options) => once(stamp(ok), err, options);
})();
"""


def find_chromium() -> str | None:
    """The machine's Chromium (``LASTMILE_CHROMIUM``, else on PATH), if it has one."""
    return os.environ.get("LASTMILE_CHROMIUM") or next(
        (p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None
    )


def chromium() -> str:
    """The machine's Chromium, or a clear error naming the package."""
    found = find_chromium()
    if found is None:
        raise RuntimeError("--driver-app needs Chromium (Debian: apt-get install chromium)")
    return found


def device_key(client: httpx.Client, vehicle_id: str) -> str:
    """A device key bound to the van, made by the shop through the API (what the driver
    signs in with)."""
    r = client.post("/v1/keys", json={"role": "device", "vehicle_id": vehicle_id})
    r.raise_for_status()
    key: str = r.json()["key"]
    return key


class DriverPhone:
    """One driver's phone: the app in a page of its own thread (Playwright's sync API stays
    on the thread that made it); fixes and events are queued to it."""

    def __init__(
        self,
        base_url: str,
        vehicle_id: str,
        key: str,
        clock: Callable[[], datetime],
        speed: float,
        say: Callable[[str], None],
    ) -> None:
        self.base_url = base_url
        self.vehicle_id = vehicle_id
        self.key = key
        self.clock = clock
        self.speed = speed
        self.say = say
        self.taps = 0
        self.fixes = 0
        self._work: queue.Queue[Fix | DriverEvent] = queue.Queue()
        self._ready = threading.Event()
        self._stopping = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="demo-driver-app", daemon=True)

    def fix(self, fix: Fix) -> None:
        self._work.put(fix)

    def event(self, event: DriverEvent) -> None:
        self._work.put(event)

    def start(self) -> None:
        """Open the app and sign in; returns once it shows the van's stops."""
        try:
            from playwright.sync_api import sync_playwright  # noqa: F401 (checked here)
        except ImportError as exc:
            raise RuntimeError("--driver-app needs Playwright: pip install -e '.[dev]'") from exc
        chromium()
        self._thread.start()
        if not self._ready.wait(READY_TIMEOUT_S) or self._failure is not None:
            self.stop()
            raise RuntimeError(f"the drivers' app did not start: {self._failure}")

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        from playwright.sync_api import sync_playwright

        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
                try:
                    self._drive(browser)
                finally:
                    browser.close()
        except Exception as exc:  # the demo goes on; the screen says what broke
            self._failure = exc
            log.exception("the drivers' app stopped")
            self.say(f"{self.vehicle_id}: the drivers' app stopped: {type(exc).__name__}")
            self._ready.set()

    def _drive(self, browser: Any) -> None:
        context = browser.new_context(
            viewport={"width": 390, "height": 844},
            device_scale_factor=2,
            is_mobile=True,
            has_touch=True,
            locale="en-GB",
            permissions=["geolocation"],
        )
        context.add_init_script(
            _PHONE_CLOCK % {"sim_ms": self.clock().timestamp() * 1000, "rate": self.speed}
        )
        page = context.new_page()
        page.goto(f"{self.base_url}/driver#vehicle={self.vehicle_id}&key={self.key}")
        page.wait_for_selector("#stops li[data-order]", timeout=READY_TIMEOUT_S * 1000)
        self._sync_clock(page)
        self.say(f"{self.vehicle_id}: the driver signed in to the app on their phone")
        self._ready.set()
        while not self._stopping.is_set():
            try:
                item = self._work.get(timeout=0.5)
            except queue.Empty:
                self._sync_clock(page)
                continue
            self._sync_clock(page)
            if isinstance(item, Fix):
                context.set_geolocation(
                    {"latitude": item.lat, "longitude": item.lon, "accuracy": 8}
                )
                self.fixes += 1
            else:
                self._tap(page, item)

    def _sync_clock(self, page: Any) -> None:
        page.evaluate(
            "([sim, speed]) => window.__demoClock(sim, speed)",
            [self.clock().timestamp() * 1000, self.speed],
        )

    def _tap(self, page: Any, event: DriverEvent) -> None:
        """The driver's delivered (name and signature) or failed (the reason) in the app."""
        card = page.locator(f'#stops li[data-order="{event.order_id}"]')
        try:
            if event.kind == "delivered":
                card.get_by_role("button", name="Delivered").click(timeout=TAP_TIMEOUT_MS)
                page.get_by_label("Recipient's name").fill("Signed at the door")
                draw_signature(page)
                page.get_by_role("button", name="Confirm delivery").click()
            else:
                reason = next((r for word, r in REASONS if word in event.reason), "not_home")
                card.get_by_role("button", name="Failed").click(timeout=TAP_TIMEOUT_MS)
                page.locator(f'form.proof button[data-reason="{reason}"]').click()
                page.get_by_role("button", name="Confirm failed delivery").click()
            self.taps += 1
        except Exception as exc:
            # Said, not hidden: that stop stays open in the service.
            self.say(f"{self.vehicle_id}: the app did not take {event.kind} of {event.order_id}")
            log.warning("tap on %s failed: %s", event.order_id, exc)


def draw_signature(page: Any) -> bool:
    """A signature drawn on the app's pad, as a finger would (pointer events); False when the
    pad is not on screen."""
    pad = page.locator("canvas.signature")
    pad.scroll_into_view_if_needed()
    box = pad.bounding_box()
    if box is None:
        return False
    x, y = box["x"] + 20, box["y"] + box["height"] * 0.6
    page.mouse.move(x, y)
    page.mouse.down()
    for i in range(1, 12):
        page.mouse.move(x + i * 16, y - (20 if i % 2 else -8), steps=2)
    page.mouse.up()
    return True

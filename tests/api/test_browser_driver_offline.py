"""The drivers' web app (issue 20) in a real browser, part two: what the driver does when
the network is not there, and when the route changes. Headless Chromium as a phone against the
service on a real port: Delivered with photo and signature while offline and sent exactly once
when back online (with its answer lost once on the way), the service worker sending the outbox
with the app closed, a re-plan reordering the open list, refused and retried actions.
Part one (sign-in, stops, GPS): test_browser_driver.py; the shared phone: driver_phone.py.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from store.schema import DeliveryProofRow, EventRow
from tests.api.browser import LiveService, screenshot
from tests.api.driver_phone import (
    PLACES,
    api_stops,
    count,
    day,
    door_photo,
    driver_service,
    order_row_id,
    phone,
    shown_order,
    sign,
    sign_in_by_link,
    until,
    worker_ready,
)
from tests.api.live_state import tracking_token

pytestmark = [pytest.mark.browser, pytest.mark.integration]


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveService]:
    with driver_service(tmp_path) as s:
        yield s


def test_delivered_offline_with_proof_is_sent_exactly_once(
    live: LiveService, chromium: Any, tmp_path: Path
) -> None:
    """No signal at the door: Delivered with a photo, a signature and the recipient's name is
    kept on the phone (the app even reopens from its service worker's cache), shown as
    waiting to send; back online it goes out, and although its first answer is lost on the
    way (the phone sends it again), the service has one proof and one delivered event, and
    the customer's tracking page shows the proof."""
    s = live
    route, key = day(s)
    oid = route[0]
    order_row = order_row_id(s.url, oid)
    context = phone(chromium)
    answers: list[int] = []

    def lose_the_first_answer(route_: Any) -> None:
        # The request reaches the service; the phone never hears back the first time.
        response = route_.fetch()
        answers.append(response.status)
        if len(answers) == 1:
            route_.abort("connectionreset")
        else:
            route_.fulfill(response=response)

    try:
        page = context.new_page()
        sign_in_by_link(page, s, key)
        page.wait_for_selector("#stops li[data-order]")
        worker_ready(page)
        context.set_offline(True)
        page.wait_for_selector("#banner-offline:not([hidden])")
        card = page.locator(f'#stops li[data-order="{oid}"]')
        card.get_by_role("button", name="Delivered").click()
        page.get_by_label("Recipient's name").fill("Aino Virtanen")
        page.set_input_files("form.proof input[type=file]", door_photo(tmp_path / "door.jpg"))
        page.wait_for_selector("form.proof img.preview:not([hidden])")
        sign(page)
        page.get_by_role("button", name="Confirm delivery").click()
        card.locator(".waiting").wait_for()
        assert card.get_attribute("data-status") == "delivered"
        assert page.inner_text("#banner-pending") == "Waiting to send: 1"
        assert count(s.url, DeliveryProofRow, DeliveryProofRow.order_id == order_row) == 0

        # Closed and opened again with no signal: the shell from the worker's cache, the
        # stops and the queued action from the phone's own storage.
        [worker] = context.service_workers
        assert worker.evaluate("fetch('/driver').then(() => 'network', () => 'none')") == "none"
        page.reload()
        card.locator(".waiting").wait_for()
        screenshot(page, "driver-offline-waiting")

        context.route("**/v1/vehicles/v1/actions", lose_the_first_answer)
        context.set_offline(False)
        page.evaluate("window.dispatchEvent(new Event('online'))")
        page.wait_for_function(
            "oid => { const li = document.querySelector(`#stops li[data-order='${oid}']`);"
            " return li && li.dataset.status === 'delivered' && !li.querySelector('.waiting'); }",
            arg=oid,
            timeout=30_000,
        )
        assert answers[:2] == [201, 200], answers
        assert page.locator("#banner-pending").is_hidden()
        proofs = DeliveryProofRow.order_id == order_row
        assert count(s.url, DeliveryProofRow, proofs) == 1
        delivered = (EventRow.order_id == order_row, EventRow.kind == "delivered")
        assert count(s.url, EventRow, *delivered) == 1

        photo = s.client.get(f"/v1/orders/{oid}/proof/photo", headers=s.headers())
        assert photo.status_code == 200
        image = Image.open(io.BytesIO(photo.content))
        assert image.format == "JPEG"
        assert max(image.size) == 1280
        signature = s.client.get(f"/v1/orders/{oid}/proof/signature", headers=s.headers())
        assert signature.status_code == 200
        assert Image.open(io.BytesIO(signature.content)).format == "PNG"

        customer = context.new_page()
        customer.goto(f"{s.base_url}/t/{tracking_token(s.url, oid)}")
        assert customer.inner_text("#proof-recipient") == "Aino Virtanen"
        for image_id in ("#proof-photo", "#proof-signature"):
            customer.wait_for_function(
                "sel => { const i = document.querySelector(sel);"
                " return i && i.complete && i.naturalWidth > 0; }",
                arg=image_id,
            )
        screenshot(customer, "driver-proof-on-tracking-page")
        # Nothing left to send, nothing sent twice, however long the phone stays open.
        time.sleep(2)
        assert count(s.url, DeliveryProofRow, proofs) == 1
    finally:
        context.close()


def test_the_service_worker_sends_the_outbox_with_the_app_closed(
    live: LiveService, chromium: Any
) -> None:
    """Arrived pressed with no signal asks the browser for a background sync; with the app
    closed, the service worker sends the outbox itself (what its sync event runs)."""
    s = live
    route, key = day(s)
    oid = route[0]
    context = phone(chromium)
    try:
        page = context.new_page()
        sign_in_by_link(page, s, key)
        page.wait_for_selector("#stops li[data-order]")
        worker_ready(page)
        [worker] = context.service_workers
        context.set_offline(True)
        card = page.locator(f'#stops li[data-order="{oid}"]')
        card.get_by_role("button", name="Arrived").click()
        card.locator(".waiting").wait_for()
        until(
            lambda: "lastmile-outbox" in worker.evaluate("self.registration.sync.getTags()"),
            what="the background sync asked for",
        )
        page.close()
        context.set_offline(False)
        # The browser may fire the sync itself as the network returns; either way the worker
        # sends, with no page open, and the queue ends empty.
        result = worker.evaluate("DriverOutbox.flush()")
        assert result["halted"] is None
        assert worker.evaluate("DriverStore.queued('v1')") == []
        row = order_row_id(s.url, oid)
        assert count(s.url, DeliveryProofRow, DeliveryProofRow.order_id == row) == 1
        assert api_stops(s, key)["stops"][0]["status"] == "arrived"
    finally:
        context.close()


def test_a_replan_reorders_the_open_list_without_reload(live: LiveService, chromium: Any) -> None:
    """The dispatcher re-plans with the van heading to its last stop first and dispatches:
    the open app reorders its list live, keeping a half-filled form as it was."""
    s = live
    route, key = day(s)
    context = phone(chromium)
    try:
        page = context.new_page()
        sign_in_by_link(page, s, key)
        page.wait_for_selector("#connection.live")
        assert shown_order(page) == route
        page.evaluate("window.__loadedOnce = true")
        # A form open on the second stop, a name typed in it.
        page.locator(f'#stops li[data-order="{route[1]}"]').get_by_role(
            "button", name="Delivered"
        ).click()
        page.get_by_label("Recipient's name").fill("Half typed")

        plan_id = api_stops(s, key)["plan_id"]
        last = route[-1]
        lat, lon = PLACES[last][0], PLACES[last][1]
        body = {
            "vehicles": [
                {"vehicle_id": "v1", "position": {"lat": lat, "lon": lon}, "next_order_id": last}
            ],
            "time_limit_s": 0.5,
        }
        r = s.client.post(f"/v1/plans/{plan_id}/replan", json=body, headers=s.headers())
        assert r.status_code == 202, r.text
        replanned = s.wait(r.json()["plan_id"])
        assert replanned["status"] == "succeeded", replanned
        r = s.client.post(f"/v1/plans/{replanned['id']}/dispatch", headers=s.headers())
        assert r.status_code == 200, r.text
        new_order = [stop["order_id"] for stop in api_stops(s, key)["stops"]]
        assert new_order[0] == last
        assert new_order != route

        page.wait_for_function(
            "order => [...document.querySelectorAll('#stops li[data-order]')]"
            ".map(n => n.dataset.order).join() === order.join()",
            arg=new_order,
            timeout=10_000,
        )
        assert page.evaluate("window.__loadedOnce === true")  # the same page, not reloaded
        assert page.inner_text("#announce") == "Your route has changed."
        assert page.input_value("form.proof input[name=recipient_name]") == "Half typed"
        assert page.locator(f'#stops li[data-order="{route[1]}"] form.proof').count() == 1
        assert "next" in (
            page.locator(f'#stops li[data-order="{last}"]').get_attribute("class") or ""
        )
        screenshot(page, "driver-replanned")
    finally:
        context.close()


def test_refused_actions_are_dropped_and_failing_ones_retried(
    live: LiveService, chromium: Any
) -> None:
    """An action the service refuses for good (409) is dropped with the service's words on
    its stop; one that meets a broken service (503) waits and goes out once it is back."""
    s = live
    route, key = day(s)
    oid = route[0]
    context = phone(chromium)
    refused_once = {
        "error": {"code": "order_not_on_route", "message": "not your stop", "problems": []}
    }
    try:
        page = context.new_page()
        sign_in_by_link(page, s, key)
        page.wait_for_selector("#stops li[data-order]")
        card = page.locator(f'#stops li[data-order="{oid}"]')

        context.route(
            "**/v1/vehicles/v1/actions", lambda r: r.fulfill(status=409, json=refused_once)
        )
        card.get_by_role("button", name="Failed").click()
        page.get_by_role("button", name="Confirm failed delivery").click()
        assert page.inner_text("form.proof .form-error") == "Choose a reason."
        page.get_by_role("button", name="Not at home").click()
        page.get_by_role("button", name="Confirm failed delivery").click()
        card.locator(".refused").wait_for()
        assert "not your stop" in card.locator(".refused").inner_text()
        assert card.get_attribute("data-status") == "pending"
        assert card.locator(".waiting").count() == 0
        card.get_by_role("button", name="OK").click()
        card.locator(".refused").wait_for(state="detached")
        context.unroute("**/v1/vehicles/v1/actions")

        context.route("**/v1/vehicles/v1/actions", lambda r: r.fulfill(status=503))
        card.get_by_role("button", name="Arrived").click()
        card.locator(".waiting").wait_for()
        time.sleep(1)
        assert card.locator(".waiting").count() == 1
        context.unroute("**/v1/vehicles/v1/actions")
        card.locator(".waiting").wait_for(state="detached", timeout=20_000)
        assert card.get_attribute("data-status") == "arrived"
        row = order_row_id(s.url, oid)
        assert count(s.url, DeliveryProofRow, DeliveryProofRow.order_id == row) == 1
        screenshot(page, "driver-arrived")
    finally:
        context.close()

"""The tracking page's chat (issue 19) in a real browser (headless Chromium driven by
Playwright) against the service on a real port: a where-question answered in place without
a reload, a person's answer appearing by itself while the page is open, and the same form
working with JavaScript off. Each test saves screenshots (``test-artifacts/screenshots``).
Run them alone: ``pytest -m browser``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from api.routes.tracking import tracking_view
from tests.api.browser import PHONE_SCREEN, LiveService, screenshot
from tests.api.live_state import put_on_route, read_order

pytestmark = [pytest.mark.browser, pytest.mark.integration]


def _on_route(s: LiveService, order_id: str) -> str:
    """An English order on a driving van's route; its tracking token."""
    r = s.client.post(
        "/v1/orders",
        json={
            "id": order_id,
            "location": {"lat": 45.4642, "lon": 9.19},
            "customer_ref": f"REF-{order_id}",
            "contact": {"name": "Alex"},
            "language": "en",
            "timezone": "Europe/Rome",
        },
        headers=s.headers(),
    )
    assert r.status_code == 201, r.text
    put_on_route(s.url, order_id, datetime.now(UTC))
    token: str = r.json()["tracking_token"]
    return token


def _window_line(s: LiveService, order_id: str) -> str:
    """The page's "Expected between ..." sentence, without its first word: the answer's
    window is worded the same."""
    line = read_order(
        s.url,
        order_id,
        lambda session, order: tracking_view(session, order, datetime.now(UTC)).window,
    )
    return line.removeprefix("Expected ")


def _ask(page: Any, text: str) -> None:
    page.get_by_label("Your message").fill(text)
    page.get_by_role("button", name="Send").click()


def test_a_question_is_answered_in_place(live: LiveService, phone: Any) -> None:
    """Typed and sent: the live answer appears under the question, the page not reloaded."""
    s = live
    token = _on_route(s, "C-1")
    phone.goto(f"{s.base_url}/t/{token}")
    assert phone.inner_text("#chat-heading") == "Questions? Ask here"
    phone.evaluate("window.__loadedOnce = true")
    _ask(phone, "where is my parcel?")
    answer = phone.wait_for_selector('#chat-messages li[data-state="auto"] .chat-a', timeout=5_000)
    assert _window_line(s, "C-1") in answer.inner_text()
    assert "Automatic answer" in answer.inner_text()
    assert phone.inner_text("#chat-messages .chat-q") == "You\nwhere is my parcel?"
    assert phone.input_value("#chat-text") == ""
    assert phone.get_attribute("#chat-messages", "aria-live") == "polite"
    assert phone.evaluate("window.__loadedOnce === true")  # the same page, not reloaded
    width: int = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE_SCREEN["width"]
    screenshot(phone, "tracking-chat-answered")


def test_a_persons_answer_appears_while_the_page_is_open(live: LiveService, phone: Any) -> None:
    """Not for the service to answer: "a person will answer here"; the person answers
    through the support queue and the open page shows it by itself."""
    s = live
    s.app.state.tracking_chat_poll_s = 0.3
    token = _on_route(s, "C-2")
    phone.goto(f"{s.base_url}/t/{token}")
    phone.evaluate("window.__loadedOnce = true")
    _ask(phone, "the driver was rude")
    note = phone.wait_for_selector('#chat-messages li[data-state="waiting"] .chat-wait')
    assert note.inner_text() == "Thank you. A person will answer here soon."
    screenshot(phone, "tracking-chat-waiting")
    [queued] = s.client.get("/v1/support/queue", headers=s.headers()).json()
    r = s.client.post(
        f"/v1/support/queue/{queued['contact_id']}/answered",
        json={"answer": "We are sorry. We have spoken to the driver."},
        headers=s.headers(),
    )
    assert r.status_code == 200, r.text
    answer = phone.wait_for_selector(
        '#chat-messages li[data-state="person"] .chat-a', timeout=5_000
    )
    assert (
        answer.inner_text() == "Our customer service\nWe are sorry. We have spoken to the driver."
    )
    assert phone.locator("#chat-messages .chat-wait").count() == 0
    assert phone.evaluate("window.__loadedOnce === true")
    screenshot(phone, "tracking-chat-person")


def test_the_form_works_without_javascript(live: LiveService, chromium: Any) -> None:
    s = live
    token = _on_route(s, "C-3")
    context = chromium.new_context(viewport=PHONE_SCREEN, java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(f"{s.base_url}/t/{token}")
        _ask(page, "where is my parcel?")
        page.wait_for_selector('#chat-messages li[data-state="auto"]')
        assert page.url.endswith(f"/t/{token}#chat")
        assert _window_line(s, "C-3") in page.inner_text("#chat-messages .chat-a")
        screenshot(page, "tracking-chat-no-js")
    finally:
        context.close()

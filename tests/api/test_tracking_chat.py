"""The tracking page's chat (issue 19) through the running service: a where/when question in
each language answered at once with the live window; anything else waits for a person, shows
no suggestion, and shows the person's answer once given; one order's conversation never on
another's page; oversized, empty and unknown-token posts refused; the form without
JavaScript; every message a WISMO contact on channel ``chat``. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from babel import Locale
from sqlalchemy import select

from api.routes import tracking_chat
from api.routes.tracking_chat import MAX_BODY_BYTES, MAX_CHARS
from notify.render import catalogue, window_text
from notify.triggers import Window
from store.db import make_engine, session_factory, transaction
from store.schema import OrderRow
from tests.api.live_state import put_on_route
from tests.api.service import Service

pytestmark = pytest.mark.integration

ZONE = "Europe/Rome"
#: "Where is my parcel?" in each language the page speaks.
WHERE = {
    "en": "where is my parcel?",
    "it": "dov'è il mio pacco?",
    "es": "¿dónde está mi paquete?",
    "fr": "où est mon colis ?",
    "nl": "waar is mijn pakket?",
    "ru": "где моя посылка?",
}
COMPLAINT = "the driver was rude"


def _order(s: Service, order_id: str, language: str = "en") -> str:
    """An order of the test organisation; its tracking token."""
    r = s.client.post(
        "/v1/orders",
        json={
            "id": order_id,
            "location": {"lat": 45.4642, "lon": 9.19},
            "customer_ref": f"REF-{order_id}",
            "contact": {"name": "Anna", "phone": "+39 333 123 4567"},
            "language": language,
            "timezone": ZONE,
        },
        headers=s.headers(),
    )
    assert r.status_code == 201, r.text
    token: str = r.json()["tracking_token"]
    return token


def _ask(s: Service, token: str, text: str) -> dict[str, Any]:
    r = s.client.post(f"/t/{token}/messages", json={"text": text})
    assert r.status_code == 201, r.text
    assert r.headers["cache-control"] == "no-store"
    body: dict[str, Any] = r.json()
    return body


def _conversation(s: Service, token: str) -> list[dict[str, Any]]:
    r = s.client.get(f"/t/{token}/messages")
    assert r.status_code == 200, r.text
    messages: list[dict[str, Any]] = r.json()["messages"]
    return messages


def _window(language: str, start: datetime, end: datetime) -> str:
    """The live window as the answer words it."""
    return window_text(
        Window(start, end),
        datetime.now(UTC),
        ZoneInfo(ZONE),
        Locale.parse(language),
        catalogue(language),
        short=False,
    )


def _queue(s: Service) -> list[dict[str, Any]]:
    r = s.client.get("/v1/support/queue", headers=s.headers())
    assert r.status_code == 200, r.text
    queued: list[dict[str, Any]] = r.json()
    return queued


@pytest.mark.parametrize("language", sorted(WHERE))
def test_where_is_it_is_answered_at_once_with_the_live_window(
    service: Service, language: str
) -> None:
    s = service
    token = _order(s, f"{language}-1", language)
    start, end = put_on_route(s.url, f"{language}-1", datetime.now(UTC))
    got = _ask(s, token, WHERE[language])
    assert got["answered_by"] == "auto", got
    assert got["waiting"] is False
    assert _window(language, start, end) in got["answer"]
    [shown] = _conversation(s, token)
    assert shown["id"] == got["id"]
    assert shown["text"] == WHERE[language]
    assert shown["answered_by"] == "auto"
    assert shown["answer"] == got["answer"]
    assert shown["waiting"] is False
    assert _queue(s) == []
    # The page itself shows the conversation (what a browser without JavaScript sees).
    page = s.client.get(f"/t/{token}").text
    texts = catalogue(language)["tracking"]
    assert f'<label for="chat-text">{texts["chat_label"]}</label>' in page
    assert texts["chat_auto"] in page
    assert _window(language, start, end) in page


def test_a_complaint_waits_and_the_persons_answer_shows(service: Service) -> None:
    """Not a where/when question: waiting, nothing answered, the person's suggestion never
    shown; once the person answers through the queue, the conversation has it."""
    s = service
    token = _order(s, "C-1")
    put_on_route(s.url, "C-1", datetime.now(UTC))
    got = _ask(s, token, COMPLAINT)
    assert got["answered_by"] is None
    assert got["answer"] is None
    assert got["waiting"] is True
    [queued] = _queue(s)
    assert queued["channel"] == "chat"
    assert queued["order_id"] == "C-1"
    assert queued["message"] == COMPLAINT
    assert token[:8] not in queued["sender"]  # the queue never holds the page's secret
    suggestion = queued["suggested_answer"]
    assert "/t/" in suggestion
    [waiting] = _conversation(s, token)
    assert waiting == {**waiting, "answered_by": None, "answer": None, "waiting": True}
    for shown in (s.client.get(f"/t/{token}/messages").text, s.client.get(f"/t/{token}").text):
        assert suggestion not in shown
    page = s.client.get(f"/t/{token}").text
    assert '<p class="chat-wait">Thank you. A person will answer here soon.</p>' in page

    r = s.client.post(
        f"/v1/support/queue/{got['id']}/answered",
        json={"answer": "We are sorry. We have spoken to the driver."},
        headers=s.headers(s.key("support")),
    )
    assert r.status_code == 200, r.text
    [answered] = _conversation(s, token)
    assert answered["answered_by"] == "person"
    assert answered["answer"] == "We are sorry. We have spoken to the driver."
    assert answered["waiting"] is False
    page = s.client.get(f"/t/{token}").text
    assert "We are sorry. We have spoken to the driver." in page
    assert "Our customer service" in page
    assert '<p class="chat-wait">' not in page


def test_another_orders_page_never_shows_the_conversation(service: Service) -> None:
    s = service
    mine, theirs = _order(s, "A-1"), _order(s, "B-2")
    put_on_route(s.url, "A-1", datetime.now(UTC))
    _ask(s, mine, WHERE["en"])
    _ask(s, mine, "my neighbour Mario Rossi will take it")
    assert len(_conversation(s, mine)) == 2
    assert _conversation(s, theirs) == []
    page = s.client.get(f"/t/{theirs}").text
    assert "Mario Rossi" not in page
    assert "where is my parcel" not in page
    # Naming the other order on one's own page reveals nothing about it either.
    got = _ask(s, theirs, "where is order A-1?")
    assert got["answered_by"] is None
    assert got["answer"] is None


def test_a_cancelled_or_delivered_order_still_answers(service: Service) -> None:
    s = service
    cancelled, delivered = _order(s, "X-1"), _order(s, "X-2")
    r = s.client.post("/v1/orders/X-1/cancel", headers=s.headers())
    assert r.status_code == 200, r.text
    engine = make_engine(s.url)
    try:
        with transaction(session_factory(engine)) as session:
            order = session.scalar(select(OrderRow).where(OrderRow.external_id == "X-2"))
            assert order is not None
            order.status = "delivered"
    finally:
        engine.dispose()
    answer = catalogue("en")["answer"]
    got = _ask(s, cancelled, WHERE["en"])
    assert got["answered_by"] == "auto", got
    assert got["answer"] == answer["cancelled"]
    got = _ask(s, delivered, WHERE["en"])
    assert got["answered_by"] == "auto", got
    assert got["answer"].startswith(answer["delivered"])
    assert 'id="chat-form"' in s.client.get(f"/t/{delivered}").text


def test_oversized_empty_and_malformed_messages_are_refused(service: Service) -> None:
    s = service
    token = _order(s, "L-1", "it")
    url = f"/t/{token}/messages"
    r = s.client.post(url, json={"text": "x" * (MAX_CHARS + 1)})
    assert r.status_code == 422
    assert r.json()["error"]["message"] == (
        f"Troppo lungo: un messaggio può avere al massimo {MAX_CHARS} caratteri."
    )
    # Its length says so: refused unread.
    r = s.client.post(
        url,
        content=b"{" + b" " * MAX_BODY_BYTES + b"}",
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "too_large"
    # No length up front (chunked): read no further than the limit.
    chunks = (b"x" * 4096 for _ in range(16))
    r = s.client.post(url, content=chunks, headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    for body in ({"text": "   "}, {"text": 5}, {"text": "hi", "order": "B-2"}, ["hi"]):
        r = s.client.post(url, json=body)
        assert r.status_code == 422, body
    assert s.client.post(url, json={"text": "a\u0000b"}).status_code == 422
    # A full message in four-byte characters still fits, even as a form.
    r = s.client.post(url, data={"text": "\U0001f4e6" * MAX_CHARS}, follow_redirects=False)
    assert r.status_code == 303, r.text
    assert len(_conversation(s, token)) == 1
    # Without JavaScript: the page again, saying what was wrong, the text kept.
    r = s.client.post(url, data={"text": "y" * (MAX_CHARS + 5)})
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("text/html")
    assert "Troppo lungo: un messaggio può avere al massimo" in r.text
    assert f">{'y' * MAX_CHARS}</textarea>" in r.text
    r = s.client.post(url, data={"text": "z" * 20_000})
    assert r.status_code == 413
    assert 'role="alert"' in r.text
    assert len(_conversation(s, token)) == 1


def test_the_form_posts_without_javascript(service: Service) -> None:
    s = service
    token = _order(s, "F-1", "nl")
    put_on_route(s.url, "F-1", datetime.now(UTC))
    r = s.client.post(f"/t/{token}/messages", data={"text": WHERE["nl"]}, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == f"/t/{token}#chat"
    page = s.client.get(r.headers["location"]).text
    assert "waar is mijn pakket?</p>" in page
    assert "Automatisch antwoord" in page
    assert '<script src="/static/tracking_chat.js" defer></script>' in page
    for asset in ("/static/tracking_chat.js", "/static/tracking_chat.css"):
        assert s.client.get(asset).status_code == 200


def test_unknown_tokens_get_the_same_404(service: Service) -> None:
    s = service
    _order(s, "U-1")
    expected = s.client.get("/t/" + "A" * 27)
    assert expected.status_code == 404
    for token in ("A" * 27, "x", "%3Cscript%3E"):
        for r in (
            s.client.post(f"/t/{token}/messages", json={"text": "where is my parcel?"}),
            s.client.post(f"/t/{token}/messages", data={"text": "where is my parcel?"}),
            s.client.get(f"/t/{token}/messages"),
        ):
            assert r.status_code == 404
            assert r.text == expected.text
    assert _queue(s) == []


def test_chat_messages_count_in_the_wismo_report(service: Service) -> None:
    s = service
    token = _order(s, "W-1")
    put_on_route(s.url, "W-1", datetime.now(UTC))
    _ask(s, token, WHERE["en"])
    _ask(s, token, COMPLAINT)
    report = s.client.get("/v1/reports/wismo", headers=s.headers()).json()
    assert report["days"][-1]["contacts"] == 2
    assert report["days"][-1]["answered_auto"] == 1
    metrics = s.client.get("/metrics").text
    assert 'lastmile_wismo_contacts_total{channel="chat"} 2.0' in metrics


def test_chat_posts_count_against_the_rate_limit(service: Service) -> None:
    s = service
    token = _order(s, "R-1")
    statuses = [s.client.get(f"/t/{token}/messages").status_code for _ in range(60)]
    assert statuses == [200] * 60
    r = s.client.post(f"/t/{token}/messages", json={"text": WHERE["en"]})
    assert r.status_code == 429
    assert int(r.headers["Retry-After"]) >= 1
    report = s.client.get("/v1/reports/wismo", headers=s.headers()).json()
    assert report["days"][-1]["contacts"] == 0


def test_one_orders_chat_takes_a_days_worth_of_messages(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the day's cap the page says to try later: one link cannot flood the queue."""
    monkeypatch.setattr(tracking_chat, "MAX_PER_ORDER_PER_DAY", 2)
    s = service
    token = _order(s, "L-9", "en")
    for text in ("where is my parcel?", "when will it come?"):
        assert s.client.post(f"/t/{token}/messages", json={"text": text}).status_code == 201
    r = s.client.post(f"/t/{token}/messages", json={"text": "and now?"})
    assert r.status_code == 429
    assert len(_conversation(s, token)) == 2

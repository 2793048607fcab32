"""Customers' own messages through the running service (issue 19): answered by the service
when it is sure, in the order's language; handed to a person otherwise, revealing nothing
about any order to the sender; counted in the WISMO report with who answered."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from store.db import make_engine, session_factory
from store.repo import create_organisation
from tests.api.live_state import put_on_route
from tests.api.service import Service
from tests.api.test_support_api import _order

pytestmark = pytest.mark.integration

#: A where/when question in each language the templates speak, and how its answer begins.
QUESTIONS = {
    "en": ("hi, where is my parcel? thanks", "Your order is on its way"),
    "it": ("ciao, quando arriva il mio pacco?", "Il tuo ordine è in viaggio"),
    "es": ("hola, ¿cuándo llega mi pedido?", ""),
    "fr": ("bonjour, quand est-ce que mon colis arrive ?", ""),
    "nl": ("hoi, wanneer wordt mijn pakket bezorgd?", ""),
    "ru": ("здравствуйте, когда привезут мой заказ?", ""),
}


def _inbound(s: Service, sender: str, text: str, key: str | None = None) -> dict[str, Any]:
    r = s.client.post(
        "/v1/support/inbound",
        json={"channel": "sms", "sender": sender, "text": text},
        headers=s.headers(key),
    )
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def _queue(s: Service, key: str | None = None) -> list[dict[str, Any]]:
    r = s.client.get("/v1/support/queue", headers=s.headers(key))
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = r.json()
    return found


@pytest.mark.parametrize("lang", sorted(QUESTIONS))
def test_a_where_question_is_answered_by_itself_in_the_orders_language(
    service: Service, lang: str
) -> None:
    s = service
    _order(s, f"{lang}-1", language=lang, timezone="Europe/Rome", phone="+39 02 1234 5678")
    put_on_route(s.url, f"{lang}-1", datetime.now(UTC), vehicle_id="van-7")
    text, begins = QUESTIONS[lang]
    # The number as the SMS gateway writes it, not as the shop typed it.
    got = _inbound(s, "0039021234 5678", text, s.key("support"))
    assert got["answered_by"] == "auto", got
    assert got["intent"] == "where_when"
    assert "/t/" in got["answer"]
    assert got["answer"].startswith(begins)
    assert _queue(s) == []
    report = s.client.get("/v1/reports/wismo", headers=s.headers()).json()
    assert report["days"][-1]["contacts"] == 1
    assert report["days"][-1]["answered_auto"] == 1
    assert report["answered_auto_share"] == 1.0


def test_a_sender_with_no_order_learns_nothing(service: Service) -> None:
    """Unknown sender, and another organisation's customer: no answer, queued without an
    order; the message is a contact of the organisation it was posted to."""
    s = service
    engine = make_engine(s.url)
    try:
        _, other = create_organisation(session_factory(engine), "Other carrier", "UTC")
    finally:
        engine.dispose()
    _order(s, "B-9", key=other, phone="+31 6 1234 5678", email="piet@example.nl")
    put_on_route(s.url, "B-9", datetime.now(UTC))
    for sender in ("+31 6 1234 5678", "piet@example.nl", "+44 20 7946 0000"):
        got = _inbound(s, sender, "where is my order B-9?")
        assert got["answered_by"] is None
        assert got["answer"] is None
    queued = _queue(s)
    assert [q["order_id"] for q in queued] == [None, None, None]
    assert {q["handover"] for q in queued} == {"no_order"}
    assert all(q["suggested_answer"] == "" for q in queued)
    # The other organisation's queue has none of them.
    assert _queue(s, other) == []


def test_naming_another_customers_order_never_answers_about_it(service: Service) -> None:
    s = service
    _order(s, "A-1", phone="+39 333 111 1111")
    _order(s, "B-2", phone="+39 333 222 2222")
    now = datetime.now(UTC)
    put_on_route(s.url, "A-1", now, vehicle_id="van-1")
    got = _inbound(s, "+39 333 111 1111", "where is order B-2 ?")
    assert got["answered_by"] is None
    [queued] = _queue(s)
    assert queued["order_id"] is None
    assert queued["handover"] == "not_theirs"
    assert queued["suggested_answer"] == ""


def test_a_change_request_waits_for_a_person_with_the_order_and_an_answer(
    service: Service,
) -> None:
    s = service
    _order(s, "C-3", phone="+39 333 333 3333")
    put_on_route(s.url, "C-3", datetime.now(UTC))
    got = _inbound(s, "+39 333 333 3333", "can the driver leave it with my neighbour at no. 5?")
    assert got["answered_by"] is None
    assert got["intent"] == "change"
    [queued] = _queue(s)
    assert queued["order_id"] == "C-3"
    assert queued["handover"] == "not_sure"
    assert "/t/" in queued["suggested_answer"]
    support = s.key("support")
    r = s.client.post(
        f"/v1/support/queue/{queued['contact_id']}/answered",
        json={"answer": "Done, left with the neighbour."},
        headers=s.headers(support),
    )
    assert r.status_code == 200, r.text
    assert _queue(s) == []
    again = s.client.post(
        f"/v1/support/queue/{queued['contact_id']}/answered", json={}, headers=s.headers()
    )
    assert again.status_code == 409
    report = s.client.get("/v1/reports/wismo", headers=s.headers()).json()
    assert report["days"][-1]["contacts"] == 1
    assert report["days"][-1]["answered_auto"] == 0


def test_bad_input_names_the_field_and_devices_are_refused(service: Service) -> None:
    s = service
    r = s.client.post(
        "/v1/support/inbound",
        json={"channel": "pigeon", "sender": "+391234567", "text": ""},
        headers=s.headers(),
    )
    assert r.status_code == 422
    fields = {p["field"] for p in r.json()["error"]["problems"]}
    assert any("channel" in f for f in fields)
    assert any("text" in f for f in fields)
    assert s.client.post("/v1/support/inbound", json={}, headers={}).status_code == 401

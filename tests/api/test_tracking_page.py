"""The customer's tracking page /t/{token} through the running service: the window in the
customer's language, the same 404 for unknown and malformed tokens, delivery instructions,
the live event stream and the per-IP rate limit; on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from store.db import make_engine, session_factory
from store.schema import (
    OrderRow,
)
from tests.api.live_state import put_on_route
from tests.api.service import Service

ROME = ZoneInfo("Europe/Rome")


def _order(s: Service, order_id: str = "T-1") -> str:
    """An Italian order; its tracking token."""
    r = s.client.post(
        "/v1/orders",
        json={
            "id": order_id,
            "location": {"lat": 45.4642, "lon": 9.19},
            "customer_ref": "ORD-55",
            "contact": {"name": "Anna Bianchi"},
            "language": "it",
            "timezone": "Europe/Rome",
        },
        headers=s.headers(),
    )
    assert r.status_code == 201, r.text
    token: str = r.json()["tracking_token"]
    return token


def _window_it(start: datetime, end: datetime) -> str:
    return f"tra le {start.astimezone(ROME):%H:%M} e le {end.astimezone(ROME):%H:%M}"


def _instructions(url: str, order_id: str) -> object:
    engine = make_engine(url)
    try:
        with session_factory(engine)() as session:
            order = session.scalar(select(OrderRow).where(OrderRow.external_id == order_id))
            assert order is not None
            return order.delivery_instructions
    finally:
        engine.dispose()


@pytest.mark.integration
def test_page_in_italian_with_window_and_reason(service: Service) -> None:
    """An Italian order on a live route: Italian page, Rome-time window, why late, first name."""
    s = service
    token = _order(s)
    start, end = put_on_route(
        s.url, "T-1", datetime.now(UTC), driver_first_name="Marco Rossi", stops_before=6
    )
    r = s.client.get(f"/t/{token}")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/html")
    page = r.text
    assert '<html lang="it">' in page
    assert _window_it(start, end) in page
    assert "6 fermate prima della tua, con 12 minuti di ritardo" in page
    assert 'aria-current="step">6 fermate prima della tua</li>' in page
    assert "Marco" in page
    assert "Rossi" not in page
    assert '<label for="notes">' in page


@pytest.mark.integration
def test_unknown_and_malformed_tokens_same_404(service: Service) -> None:
    """A well-formed unknown token and malformed ones get byte-identical 404 pages."""
    s = service
    _order(s)
    answers = [
        s.client.get(f"/t/{token}")
        for token in ("A" * 27, "x", "not%20a%20token", "%3Cscript%3E", "a" * 200)
    ]
    assert {r.status_code for r in answers} == {404}
    assert len({r.text for r in answers}) == 1
    assert "<script" not in answers[0].text
    r = s.client.post("/t/xyz/instructions", data={"notes": "hi"})
    assert r.status_code == 404
    assert r.text == answers[0].text
    assert s.client.get("/t/xyz/events").text == answers[0].text


@pytest.mark.integration
def test_instructions_saved_and_shown(service: Service) -> None:
    """The form stores safe place, notes and code on the order and the page shows them back."""
    s = service
    token = _order(s)
    form = {"safe_place": "Portineria", "notes": "Citofono <Bianchi>", "access_code": "4711"}
    r = s.client.post(f"/t/{token}/instructions", data=form)
    assert r.status_code == 200, r.text
    assert "Grazie, le tue istruzioni sono state salvate." in r.text
    assert 'value="Portineria"' in r.text
    assert "Citofono &lt;Bianchi&gt;</textarea>" in r.text
    assert _instructions(s.url, "T-1") == form


@pytest.mark.integration
def test_oversized_instructions_refused(service: Service) -> None:
    """Too long a field, or too large a body, is refused with a clear message and not stored."""
    s = service
    token = _order(s)
    r = s.client.post(f"/t/{token}/instructions", data={"notes": "x" * 501})
    assert r.status_code == 422
    assert "Troppo lungo: «Note per il corriere» può avere al massimo 500 caratteri." in r.text
    r = s.client.post(f"/t/{token}/instructions", data={"notes": "y" * 10_000})
    assert r.status_code == 422
    assert "troppo lunghe per essere salvate" in r.text
    assert _instructions(s.url, "T-1") is None


@pytest.mark.integration
def test_event_stream_sends_the_window(service: Service) -> None:
    """The event stream's first event carries the status and the Italian window."""
    s = service
    token = _order(s)
    start, end = put_on_route(
        s.url, "T-1", datetime.now(UTC), driver_first_name="Marco Rossi", stops_before=6
    )
    s.client.app.state.tracking_poll_s = 0.05  # type: ignore[attr-defined]
    s.client.app.state.tracking_stream_max_s = 0.3  # type: ignore[attr-defined]
    with s.client.stream("GET", f"/t/{token}/events", timeout=10) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        lines: list[str] = []
        for line in r.iter_lines():
            if line.startswith("data: "):
                lines.append(line)
                break
    data = json.loads(lines[0].removeprefix("data: "))
    assert data["status"] == "6 fermate prima della tua"
    assert data["window"] == f"Arrivo previsto {_window_it(start, end)}"
    assert data["reason"] == "6 fermate prima della tua, con 12 minuti di ritardo"


@pytest.mark.integration
def test_rate_limit_answers_429(service: Service) -> None:
    """After 60 requests in a burst one IP gets 429 with Retry-After."""
    s = service
    statuses = [s.client.get("/t/nope").status_code for _ in range(70)]
    assert statuses[:60] == [404] * 60
    assert 429 in statuses[60:]
    r = s.client.get("/t/nope")
    assert r.status_code == 429
    assert int(r.headers["Retry-After"]) >= 1

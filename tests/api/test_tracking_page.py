"""The customer's tracking page /t/{token} through the running service: the window in the
customer's language, the same 404 for unknown and malformed tokens, delivery instructions,
the live event stream and the per-IP rate limit; on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from api.routes.tracking import browser_language
from tests.api.live_state import dispatch, osmand_id, put_on_route, read_order, tracking_token
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
    return read_order(url, order_id, lambda _session, order: order.delivery_instructions)


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
    # In the customer's zone the window may fall on another day than now (run late in the
    # evening): then the page names that day before the times.
    if start.astimezone(ROME).date() == datetime.now(ROME).date():
        assert data["window"] == f"Arrivo previsto {_window_it(start, end)}"
    else:
        assert data["window"].startswith("Arrivo previsto ")
        assert data["window"].endswith(_window_it(start, end))
        assert f" {start.astimezone(ROME).day} " in data["window"]
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


HELSINKI_DEPOT = (60.1699, 24.9384)
HELSINKI_STOPS = {"M-a": (60.1665, 24.9433), "M-b": (60.1700, 24.9500)}


def _map_data(html: str) -> dict[str, Any]:
    """The JSON the page hands its map script."""
    begin = html.index('<script type="application/json" id="map-data">') + len(
        '<script type="application/json" id="map-data">'
    )
    data: dict[str, Any] = json.loads(html[begin : html.index("</script>", begin)])
    return data


@pytest.mark.integration
def test_map_shows_the_van_only_to_the_next_stop(service: Service) -> None:
    """A planned, dispatched day on Helsinki's roads, the van reporting from the depot: the
    first stop's page shows the van and the road from it to the door; the second's shows its
    own address on the streets around it, and neither the van nor another customer's place."""
    s = service
    orders = {
        oid: {"location": {"lat": lat, "lon": lon}, "service_s": 60}
        for oid, (lat, lon) in HELSINKI_STOPS.items()
    }
    first, second = dispatch(s, orders, HELSINKI_DEPOT)
    r = s.client.get(
        "/osmand",
        params={
            "id": osmand_id(s),
            "lat": HELSINKI_DEPOT[0],
            "lon": HELSINKI_DEPOT[1],
            "timestamp": int(datetime.now(UTC).timestamp()),
        },
    )
    assert r.status_code == 200, r.text

    page = s.client.get(f"/t/{tracking_token(s.url, first)}")
    assert page.status_code == 200
    assert 'data-vehicle="shown"' in page.text
    assert "/static/vendor/leaflet/leaflet.js" in page.text
    data = _map_data(page.text)
    live = data["live"]
    assert live["vehicle"] == pytest.approx(list(HELSINKI_DEPOT), abs=1e-4)
    assert live["stop"] == pytest.approx(list(HELSINKI_STOPS[first]), abs=1e-4)
    leg = live["leg"]
    assert len(leg) >= 2
    # The line runs from near the van to near the door, on the roads.
    assert leg[0] == pytest.approx(list(HELSINKI_DEPOT), abs=2e-3)
    assert leg[-1] == pytest.approx(list(HELSINKI_STOPS[first]), abs=2e-3)
    assert len(data["roads"]) > 10

    page = s.client.get(f"/t/{tracking_token(s.url, second)}")
    assert 'data-vehicle="hidden"' in page.text
    live = _map_data(page.text)["live"]
    assert live["vehicle"] is None
    assert live["leg"] == []
    assert live["stop"] == pytest.approx(list(HELSINKI_STOPS[second]), abs=1e-4)


@pytest.mark.integration
def test_static_leaflet_is_served(service: Service) -> None:
    """The bundled map library is served by the service itself (no CDN)."""
    r = service.client.get("/static/vendor/leaflet/leaflet.js")
    assert r.status_code == 200
    assert "Leaflet" in r.text[:500]
    assert service.client.get("/static/vendor/leaflet/leaflet.css").status_code == 200


@pytest.mark.parametrize(
    ("header", "language"),
    [
        ("it-IT,it;q=0.9,en;q=0.8", "it"),
        ("de-DE,de;q=0.9,fr;q=0.5", "fr"),
        ("en;q=0.2, nl;q=0.9", "nl"),
        ("ru;q=0, es", "es"),
        ("de", "en"),
        ("", "en"),
        ("fr;q=abc, it", "it"),
    ],
)
def test_error_pages_speak_the_browsers_language(header: str, language: str) -> None:
    """An error page has no order to take a language from: the browser's own, by q."""
    assert browser_language(header) == language


@pytest.mark.integration
def test_not_found_page_in_the_browsers_language(service: Service) -> None:
    r = service.client.get("/t/not-a-token", headers={"Accept-Language": "fr-FR,fr;q=0.9"})
    assert r.status_code == 404
    assert '<html lang="fr">' in r.text
    assert "Lien de suivi introuvable" in r.text

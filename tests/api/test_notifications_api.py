"""Customer notifications through the running service: the outbox sender delivering to a real
SMTP server (aiosmtpd, started here), retries while it is down, and
``GET /v1/orders/{id}/notifications``; on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from notify.channels import SmtpChannel
from notify.outbox import Outbox
from notify.sender import OutboxSender
from notify.settings import Channel
from notify.triggers import DeliveryEvent, Trigger
from store.db import make_engine, session_factory, transaction
from store.repo import create_organisation
from store.schema import OrderRow
from tests.api.service import Service, running
from tests.api.smtp_server import SmtpServer

#: 12:00 in Rome: outside the default quiet hours.
T0 = datetime(2026, 6, 10, 10, 0, tzinfo=UTC)


def _order(s: Service, order_id: str = "A-17") -> None:
    r = s.client.post(
        "/v1/orders",
        json={
            "id": order_id,
            "location": {"lat": 60.1665, "lon": 24.9433},
            "customer_ref": "ORD-17",
            "contact": {"name": "Anna", "email": "anna@example.com"},
            "language": "it",
            "timezone": "Europe/Rome",
        },
        headers=s.headers(),
    )
    assert r.status_code == 201, r.text


def _enqueue(url: str, order_id: str, version: int, at: datetime, window_at: datetime) -> int:
    """A window-broken event for the order, through the outbox (as the ingester queues it)."""
    engine = make_engine(url)
    try:
        with transaction(session_factory(engine)) as session:
            row = session.scalar(select(OrderRow).where(OrderRow.external_id == order_id))
            assert row is not None
            event = DeliveryEvent(
                row.id,
                Trigger.WINDOW_BROKEN,
                at,
                version,
                window_at,
                window_at + timedelta(minutes=30),
            )
            return Outbox().enqueue(session, {row.id: [event]}, at)
    finally:
        engine.dispose()


def _notifications(s: Service, order_id: str = "A-17") -> list[dict[str, Any]]:
    r = s.client.get(f"/v1/orders/{order_id}/notifications", headers=s.headers())
    assert r.status_code == 200, r.text
    body: list[dict[str, Any]] = r.json()
    return body


@pytest.fixture
def service(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Service]:
    """The service with its own sender off: the test drives a sender on its own clock."""
    monkeypatch.setenv("LASTMILE_SENDER_ENABLED", "false")
    with running(database_url, tmp_path) as s:
        r = s.client.patch(
            "/v1/organisation",
            json={"branding": {"name": "Acme", "sender": "consegne@acme.example"}},
            headers=s.headers(),
        )
        assert r.status_code == 200, r.text
        yield s


@pytest.mark.integration
def test_email_sent_retried_while_smtp_down_and_listed(service: Service, smtp: SmtpServer) -> None:
    """One Italian e-mail per message; while SMTP is down the retry is recorded and the
    message goes out once after the backoff; the API lists both with their attempts."""
    s = service
    _order(s)
    channel = SmtpChannel("127.0.0.1", smtp.port, "none", timeout_s=5)
    engine = make_engine(s.url)
    sender = OutboxSender(
        session_factory(engine),
        {Channel.EMAIL: channel},
        Outbox(),
        tracking_url=lambda token: f"https://track.example/t/{token}",
        clock=lambda: T0,
    )
    try:
        assert _enqueue(s.url, "A-17", 1, T0, T0 + timedelta(hours=2)) == 1
        assert sender.run_once(T0) == 1
        [mail] = smtp.inbox.messages
        assert mail["To"] == "anna@example.com"
        assert "consegne@acme.example" in mail["From"]
        assert "in ritardo" in mail["Subject"]
        text = mail.get_body(preferencelist=("plain",))
        assert text is not None
        assert "tra le 14:00 e le 14:30" in text.get_content()
        [first] = _notifications(s)
        assert first["status"] == "sent"
        assert (first["channel"], first["trigger"], first["attempts"]) == (
            "email",
            "window_broken",
            1,
        )
        assert [a["status"] for a in first["attempts_detail"]] == ["sent"]

        smtp.stop()
        later = T0 + timedelta(minutes=20)
        assert _enqueue(s.url, "A-17", 2, later, T0 + timedelta(hours=3)) == 1
        assert sender.run_once(later) == 1
        newest = _notifications(s)[0]
        assert (newest["status"], newest["attempts"]) == ("pending", 1)
        assert newest["last_error"].startswith("smtp: cannot reach")
        assert datetime.fromisoformat(newest["due_at"]) == later + timedelta(seconds=30)
        assert [a["status"] for a in newest["attempts_detail"]] == ["retry"]

        smtp.start()
        assert sender.run_once(later + timedelta(seconds=29)) == 0
        assert sender.run_once(later + timedelta(seconds=30)) == 1
        assert sender.run_once(later + timedelta(hours=1)) == 0
        assert len(smtp.inbox.messages) == 2
        assert "tra le 15:00 e le 15:30" in str(smtp.inbox.messages[1].get_body(("plain",)))
        newest, oldest = _notifications(s)
        assert (newest["status"], newest["attempts"], newest["last_error"]) == ("sent", 2, "")
        assert [a["status"] for a in newest["attempts_detail"]] == ["retry", "sent"]
        assert oldest["status"] == "sent"
    finally:
        engine.dispose()


@pytest.mark.integration
def test_service_sender_delivers_on_its_own(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, smtp: SmtpServer
) -> None:
    """With SMTP configured, the service's own sender thread delivers a queued message."""
    monkeypatch.setenv("LASTMILE_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("LASTMILE_SMTP_PORT", str(smtp.port))
    monkeypatch.setenv("LASTMILE_SMTP_SECURITY", "none")
    monkeypatch.setenv("LASTMILE_SMTP_SENDER", "noreply@lastmile.example")
    with running(database_url, tmp_path) as s:
        # No quiet hours: the real clock may be at night in Rome.
        r = s.client.patch(
            "/v1/organisation",
            json={"notification_policy": {"quiet_start": None, "quiet_end": None}},
            headers=s.headers(),
        )
        assert r.status_code == 200, r.text
        _order(s)
        now = datetime.now(UTC)
        assert _enqueue(s.url, "A-17", 1, now, now + timedelta(hours=2)) == 1
        s.client.app.state.sender.poke()  # type: ignore[attr-defined]
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and _notifications(s)[0]["status"] != "sent":
            time.sleep(0.05)
        [row] = _notifications(s)
        assert row["status"] == "sent", row
        [mail] = smtp.inbox.messages
        assert "noreply@lastmile.example" in mail["From"]
        assert "/t/" in str(mail.get_body(("plain",)))


def test_unknown_or_foreign_order_is_404(service: Service) -> None:
    """Another tenant's order is as unknown as one that does not exist."""
    s = service
    _order(s)
    engine = make_engine(s.url)
    try:
        _, other_admin = create_organisation(session_factory(engine), "Other", "UTC")
    finally:
        engine.dispose()
    assert s.client.get("/v1/orders/A-17/notifications", headers=s.headers()).json() == []
    for key, order_id in ((s.admin, "nope"), (other_admin, "A-17")):
        r = s.client.get(f"/v1/orders/{order_id}/notifications", headers=s.headers(key))
        assert r.status_code == 404
        assert r.json()["error"]["code"] == "not_found"


def test_readers_only(service: Service) -> None:
    """Support reads notifications; a device key may not."""
    from tests.api.test_service import shift_tomorrow

    s = service
    _order(s)
    vehicle = {"id": "v1", "start": {"lat": 60.17, "lon": 24.94}, "shift": shift_tomorrow()}
    assert s.client.post("/v1/vehicles", json=vehicle, headers=s.headers()).status_code == 201
    support, device = s.key("support"), s.key("device", "v1")
    assert s.client.get("/v1/orders/A-17/notifications", headers=s.headers(support)).is_success
    r = s.client.get("/v1/orders/A-17/notifications", headers=s.headers(device))
    assert r.status_code == 403


def test_dispatch_confirms_the_plan_to_customers(service: Service) -> None:
    """Dispatching a plan queues one "plan confirmed" per customer and channel, carrying the
    planned window around the planned arrival."""
    from tests.api.test_service import shift_tomorrow

    h = service.headers()
    depot = {"id": "d1", "location": {"lat": 60.1699, "lon": 24.9384}}
    assert service.client.post("/v1/depots", json=depot, headers=h).status_code == 201
    vehicle = {"id": "v1", "depot_id": "d1", "shift": shift_tomorrow()}
    assert service.client.post("/v1/vehicles", json=vehicle, headers=h).status_code == 201
    _order(service)
    plan_id = service.client.post("/v1/plans", json={"time_limit_s": 0.5}, headers=h).json()[
        "plan_id"
    ]
    assert service.wait(plan_id)["status"] == "succeeded"
    assert service.client.post(f"/v1/plans/{plan_id}/dispatch", headers=h).status_code == 200
    rows = _notifications(service)
    assert [(n["trigger"], n["channel"]) for n in rows] == [("plan_confirmed", "email")]
    # Sent now, or held until the customer's quiet hours end: never dropped.
    assert rows[0]["status"] in ("pending", "deferred")


def test_a_failed_order_planned_again_is_rescheduled(service: Service) -> None:
    """After a failed attempt, dispatching the order again tells the customer "rescheduled"
    (a new attempt), not a second "plan confirmed"."""
    from tests.api.test_service import shift_tomorrow

    h = service.headers()
    depot = {"id": "d1", "location": {"lat": 60.1699, "lon": 24.9384}}
    assert service.client.post("/v1/depots", json=depot, headers=h).status_code == 201
    vehicle = {"id": "v1", "depot_id": "d1", "shift": shift_tomorrow()}
    assert service.client.post("/v1/vehicles", json=vehicle, headers=h).status_code == 201
    _order(service)

    def plan_and_dispatch() -> None:
        plan_id = service.client.post("/v1/plans", json={"time_limit_s": 0.5}, headers=h).json()[
            "plan_id"
        ]
        assert service.wait(plan_id)["status"] == "succeeded"
        assert service.client.post(f"/v1/plans/{plan_id}/dispatch", headers=h).status_code == 200

    plan_and_dispatch()
    failed = {"order_id": "A-17", "kind": "failed", "reason": "nobody home"}
    device = service.headers(service.key("device", "v1"))
    assert (
        service.client.post("/v1/vehicles/v1/events", json=failed, headers=device).status_code
        == 201
    )
    plan_and_dispatch()
    triggers = sorted(n["trigger"] for n in _notifications(service))
    assert triggers == ["failed", "plan_confirmed", "rescheduled"]


def test_an_opted_out_customer_is_told_nothing(service: Service) -> None:
    """Support records that the customer wants no messages: dispatching queues nothing for
    them; their channel preference ("mqtt", the older name of push) is kept as push."""
    from tests.api.test_service import shift_tomorrow

    h = service.headers()
    depot = {"id": "d1", "location": {"lat": 60.1699, "lon": 24.9384}}
    assert service.client.post("/v1/depots", json=depot, headers=h).status_code == 201
    vehicle = {"id": "v1", "depot_id": "d1", "shift": shift_tomorrow()}
    assert service.client.post("/v1/vehicles", json=vehicle, headers=h).status_code == 201
    _order(service)
    support = service.headers(service.key("support"))
    r = service.client.put(
        "/v1/orders/A-17/preferences",
        json={"opted_out": True, "channels": ["mqtt", "email"]},
        headers=support,
    )
    assert r.status_code == 200, r.text
    assert r.json()["channels"] == ["push", "email"]
    assert r.json()["opted_out"] is True
    plan_id = service.client.post("/v1/plans", json={"time_limit_s": 0.5}, headers=h).json()[
        "plan_id"
    ]
    assert service.wait(plan_id)["status"] == "succeeded"
    assert service.client.post(f"/v1/plans/{plan_id}/dispatch", headers=h).status_code == 200
    assert _notifications(service) == []
    bad = service.client.put("/v1/orders/A-17/preferences", json={"channels": ["fax"]}, headers=h)
    assert bad.status_code == 422

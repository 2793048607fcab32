"""From GPS positions to the customer's mailbox, through the running service: fixes over
``/osmand`` and driver events over HTTP move the ingester, which queues notifications in the
outbox; the service's own sender thread delivers them to a real SMTP server (aiosmtpd); on
SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from babel import Locale
from sqlalchemy import select

from notify.render import catalogue, window_text
from notify.triggers import Window
from store.db import make_engine, session_factory
from store.schema import EventRow, OrderRow
from tests.api.live_state import SimClock, dispatch, osmand_id
from tests.api.service import Service, running
from tests.api.smtp_server import SmtpServer

DEPOT = (60.1699, 24.9384)
STOPS = {"a": (60.1665, 24.9433), "b": (60.1700, 24.9500)}
#: No quiet hours: the real clock may be at night in the customers' zones.
AWAKE = {"quiet_start": None, "quiet_end": None}
#: Each test's sender has this long to deliver what it should.
MAIL_TIMEOUT_S = 15.0


@pytest.fixture
def mailing(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, smtp: SmtpServer
) -> Iterator[Service]:
    """The service with its own sender thread delivering e-mail to ``smtp``."""
    monkeypatch.setenv("LASTMILE_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("LASTMILE_SMTP_PORT", str(smtp.port))
    monkeypatch.setenv("LASTMILE_SMTP_SECURITY", "none")
    monkeypatch.setenv("LASTMILE_SMTP_SENDER", "noreply@lastmile.example")
    with running(database_url, tmp_path) as s:
        yield s


def _policy(s: Service, policy: dict[str, Any]) -> None:
    r = s.client.patch(
        "/v1/organisation",
        json={
            "branding": {"name": "Acme", "sender": "consegne@acme.example"},
            "notification_policy": policy,
        },
        headers=s.headers(),
    )
    assert r.status_code == 200, r.text


def _dispatch(s: Service, orders: dict[str, dict[str, Any]]) -> list[str]:
    return dispatch(s, orders, DEPOT)


def _order(
    stop: str, email: str, *, language: str = "it", timezone: str = "Europe/Rome"
) -> dict[str, Any]:
    lat, lon = STOPS[stop]
    return {
        "location": {"lat": lat, "lon": lon},
        "service_s": 60,
        "customer_ref": f"REF-{stop}",
        "contact": {"name": "Anna", "email": email},
        "language": language,
        "timezone": timezone,
    }


def _fix(s: Service, at: datetime, where: tuple[float, float] = DEPOT) -> dict[str, str]:
    r = s.client.get(
        "/osmand",
        params={
            "id": osmand_id(s),
            "lat": where[0],
            "lon": where[1],
            "timestamp": int(at.timestamp()),
        },
    )
    assert r.status_code in (200, 400), r.text
    body: dict[str, str] = r.json()
    s.client.app.state.sender.poke()  # type: ignore[attr-defined]
    return body


def _notifications(s: Service, order_id: str) -> list[dict[str, Any]]:
    r = s.client.get(f"/v1/orders/{order_id}/notifications", headers=s.headers())
    assert r.status_code == 200, r.text
    body: list[dict[str, Any]] = r.json()
    return body


def _wait_for(what: str, done: Callable[[], bool], timeout_s: float = MAIL_TIMEOUT_S) -> None:
    """Poll until ``done`` (the sender runs every second, sooner when poked)."""
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting after {timeout_s} s for {what}")
        time.sleep(0.05)


def _trigger(mail: EmailMessage) -> str:
    """The notification's trigger, from its idempotency key (order:trigger:version)."""
    return str(mail["X-Lastmile-Idempotency-Key"]).split(":")[1]


def _mails(smtp: SmtpServer, to: str, trigger: str) -> list[EmailMessage]:
    return [m for m in smtp.inbox.messages if m["To"] == to and _trigger(m) == trigger]


def _text(mail: EmailMessage) -> str:
    body = mail.get_body(preferencelist=("plain",))
    assert isinstance(body, EmailMessage)
    return str(body.get_content())


def _settled(s: Service, order_ids: list[str]) -> bool:
    """Nothing left for the sender to do now (no row pending, sending or due)."""
    now = datetime.now(UTC)
    for order_id in order_ids:
        for row in _notifications(s, order_id):
            if row["status"] in ("pending", "sending"):
                return False
            if row["status"] == "deferred" and datetime.fromisoformat(row["due_at"]) <= now:
                return False
    return True


def _broken_window(url: str, order_id: str) -> Window:
    """The new window of the order's window_broken event, as the ingester recorded it."""
    engine = make_engine(url)
    try:
        with session_factory(engine)() as session:
            order = session.scalar(select(OrderRow).where(OrderRow.external_id == order_id))
            assert order is not None
            [event] = session.scalars(
                select(EventRow).where(
                    EventRow.order_id == order.id, EventRow.kind == "window_broken"
                )
            ).all()
            data = dict(event.data)
    finally:
        engine.dispose()
    return Window(datetime.fromisoformat(data["earliest"]), datetime.fromisoformat(data["latest"]))


def _awake_pair(s: Service) -> tuple[dict[str, str], list[str]]:
    """Quiet hours off, two Italian customers planned and dispatched: (emails, stop order)."""
    _policy(s, AWAKE)
    emails = {"a": "anna@example.com", "b": "bruno@example.com"}
    return emails, _dispatch(s, {oid: _order(oid, email) for oid, email in emails.items()})


@pytest.mark.integration
def test_van_late_at_the_depot_is_one_italian_mail_with_the_new_window(
    mailing: Service, smtp: SmtpServer
) -> None:
    """A van standing at the depot breaks the told windows: one Italian mail per order."""
    s = mailing
    emails, stops = _awake_pair(s)
    second = stops[1]
    # Standing still for minutes of fix time within seconds of test: the ingester's clock
    # starts 40 minutes ago and moves with the fixes (which are never in its future).
    clock = SimClock(datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=40))
    s.client.app.state.ingester.clock = clock  # type: ignore[attr-defined]

    assert _fix(s, clock.now)["status"] == "applied"
    _wait_for(
        "the out_for_delivery mails",
        lambda: all(_mails(smtp, e, "out_for_delivery") for e in emails.values()),
    )
    for _ in range(40):  # at most 20 minutes at the depot, a fix every 30 s
        assert _fix(s, clock.advance(30))["status"] == "applied"
        if any(n["trigger"] == "window_broken" for n in _notifications(s, second)):
            break
    else:
        raise AssertionError(f"order {second}'s window never broke")
    _wait_for(
        "the window_broken mails",
        lambda: (
            all(_mails(smtp, e, "window_broken") for e in emails.values()) and _settled(s, stops)
        ),
    )

    for order_id, email in emails.items():
        assert len(_mails(smtp, email, "out_for_delivery")) == 1
        [mail] = _mails(smtp, email, "window_broken")
        assert "in ritardo" in mail["Subject"]
        assert "consegne@acme.example" in mail["From"]
        window = _broken_window(s.url, order_id)
        rome, italian = ZoneInfo("Europe/Rome"), Locale.parse("it")
        expected = window_text(window, window.start, rome, italian, catalogue("it"), short=False)
        assert expected.startswith("tra le ")
        assert expected in _text(mail), (expected, _text(mail))
        [row] = [n for n in _notifications(s, order_id) if n["trigger"] == "window_broken"]
        assert (row["channel"], row["status"]) == ("email", "sent"), row
        assert [a["status"] for a in row["attempts_detail"]] == ["sent"]


@pytest.mark.integration
def test_quiet_hours_defer_the_first_window_to_eight_in_the_customers_zone(
    mailing: Service, smtp: SmtpServer
) -> None:
    """At 07:xx local time (quiet until 08:00) the first-window mail waits, sending nothing."""
    s = mailing
    _policy(s, {})  # the defaults: quiet 21:00-08:00 in the customer's zone
    # The zones are chosen from the hour now: not in the last seconds of an hour.
    _wait_for("a new hour", lambda: datetime.now(UTC).minute < 59, timeout_s=61)
    now = datetime.now(UTC)
    quiet_zone = _zone_at_local_hour(now, 7)
    awake_zone = _zone_at_local_hour(now, 12)
    orders = {
        "a": _order("a", "quiet@example.com", timezone=quiet_zone),
        "b": _order("b", "awake@example.com", timezone=awake_zone),
    }
    _dispatch(s, orders)
    assert _fix(s, datetime.now(UTC) - timedelta(seconds=5))["status"] == "applied"
    # Both orders' messages were queued in the fix's transaction: once the awake customer's
    # mail is in, the sender has seen (and kept back) the quiet one's.
    _wait_for(
        "the awake customer's out_for_delivery mail",
        lambda: bool(_mails(smtp, "awake@example.com", "out_for_delivery")),
    )
    assert all(m["To"] != "quiet@example.com" for m in smtp.inbox.messages)
    rows = _notifications(s, "a")
    [first] = [n for n in rows if n["trigger"] == "out_for_delivery"]
    assert first["status"] == "deferred", first
    assert first["attempts"] == 0
    zone = ZoneInfo(quiet_zone)
    local = now.astimezone(zone)
    eight = local.replace(hour=8, minute=0, second=0, microsecond=0)
    assert datetime.fromisoformat(first["due_at"]) == eight
    # The plan confirmation queued at dispatch (also held by quiet hours) is superseded by
    # the first live window: cancelled, never sent; everything else waits for 08:00.
    assert all(
        n["status"] == "deferred"
        or (n["status"] == "cancelled" and n["last_error"] == "superseded by a newer ETA")
        for n in rows
    ), rows


def _zone_at_local_hour(now: datetime, hour: int) -> str:
    """A fixed-offset zone whose local time is ``hour``:mm now (``Etc/GMT-2`` is UTC+2)."""
    offset = (hour - now.hour + 12) % 24 - 12  # -12..+11
    name = "Etc/GMT" if offset == 0 else f"Etc/GMT{-offset:+d}"
    assert now.astimezone(ZoneInfo(name)).hour == hour
    return name


@pytest.mark.integration
def test_a_repeated_fix_and_a_repeated_delivery_send_nothing_new(
    mailing: Service, smtp: SmtpServer
) -> None:
    """The same fix twice and the same 'delivered' twice: one mail each, never a second."""
    s = mailing
    emails, stops = _awake_pair(s)
    first = stops[0]
    device = s.key("device", "v1")
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=30)
    assert _fix(s, at)["status"] == "applied"
    assert _fix(s, at) == {"status": "rejected", "reason": "duplicate"}
    delivered = {"order_id": first, "kind": "delivered", "at": at.isoformat()}
    for _ in range(2):
        r = s.client.post("/v1/vehicles/v1/events", json=delivered, headers=s.headers(device))
        assert r.status_code == 201, r.text
        s.client.app.state.sender.poke()  # type: ignore[attr-defined]
    _wait_for(
        "the delivered mail",
        lambda: bool(_mails(smtp, emails[first], "delivered")) and _settled(s, stops),
    )
    assert s.client.get(f"/v1/orders/{first}", headers=s.headers()).json()["status"] == "delivered"
    [mail] = _mails(smtp, emails[first], "delivered")
    assert "consegnato" in mail["Subject"]
    for email in emails.values():
        assert len(_mails(smtp, email, "out_for_delivery")) == 1
    [row] = [n for n in _notifications(s, first) if n["trigger"] == "delivered"]
    assert row["status"] == "sent", row
    other = stops[1]
    assert not _mails(smtp, emails[other], "delivered")

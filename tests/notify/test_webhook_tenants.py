"""Each tenant's webhooks are signed with that tenant's own secrets, picked by the sender from
the store: two tenants posting to one receiver can each verify only their own; rotation signs
with old and new until the old one expires or is revoked; a tenant without a secret gets
nothing sent. The real sender and webhook channel, a real local HTTP receiver, SQLite."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from notify.channels import WebhookChannel, verify_signature
from notify.outbox import Outbox
from notify.sender import OutboxSender
from notify.settings import Channel
from notify.triggers import DeliveryEvent, Trigger
from store.db import MIGRATIONS, make_engine, session_factory, transaction, upgrade
from store.schema import NotificationAttemptRow, OrderRow, Organisation, OutboxRow
from store.webhook_secrets import create_secret, signing_secrets
from tests.notify.test_channels_http import serve, stop

pytestmark = [pytest.mark.security, pytest.mark.integration]

#: 12:00 in Rome: outside quiet hours.
T0 = datetime(2026, 6, 10, 10, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


@dataclass
class Receiver:
    """A local endpoint keeping each request's order id, signature header and raw body."""

    url: str = ""
    got: list[tuple[str, str, bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def by_order(self) -> dict[str, tuple[str, bytes]]:
        with self.lock:
            return {order: (header, body) for order, header, body in self.got}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            header = self.headers.get("X-Lastmile-Signature", "")
            with found.lock:
                found.got.append((json.loads(body)["order_id"], header, body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            """Silence."""

    server, thread = serve(Handler)
    found.url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    yield found
    stop(server, thread)


@dataclass
class Tenants:
    sessions: sessionmaker[Session]
    #: Tenant name -> (organisation id, order row id); the order's external id is the name.
    ids: dict[str, tuple[str, str]]

    def secret(self, name: str, now: datetime = T0, rotation: timedelta = HOUR) -> str:
        with transaction(self.sessions) as session:
            return create_secret(session, self.ids[name][0], now, rotation).secret

    def notify(
        self, name: str, trigger: Trigger = Trigger.OUT_FOR_DELIVERY, at: datetime = T0
    ) -> None:
        order_id = self.ids[name][1]
        event = DeliveryEvent(order_id, trigger, at, 1, None, None)
        with transaction(self.sessions) as session:
            assert Outbox().enqueue(session, {order_id: [event]}, at) == 1

    def send(self, now: datetime = T0) -> None:
        channels = {Channel.WEBHOOK: WebhookChannel(allow_private=True, timeout_s=5)}
        OutboxSender(self.sessions, channels, Outbox(), clock=lambda: now).run_once(now)

    def last_error(self, name: str) -> str:
        with self.sessions() as session:
            row = session.scalar(select(OutboxRow).where(OutboxRow.order_id == self.ids[name][1]))
            assert row is not None
            return f"{row.status}: {row.last_error}"


@pytest.fixture
def tenants(tmp_path: Path, receiver: Receiver) -> Iterator[Tenants]:
    """Tenants "shop-a" and "shop-b", each with one order and the webhook channel only, both
    pointing at the same receiver (as two shops on one integration platform would)."""
    url = f"sqlite:///{tmp_path / 'lastmile.db'}"
    upgrade(url)
    engine = make_engine(url)
    sessions = session_factory(engine)
    ids: dict[str, tuple[str, str]] = {}
    policy = {"default_channels": ["webhook"], "webhook_url": receiver.url}
    with transaction(sessions) as session:
        for name in ("shop-a", "shop-b"):
            org = Organisation(name=name, notification_policy=policy)
            session.add(org)
            session.flush()
            order = OrderRow(
                organisation_id=org.id,
                external_id=name,
                lat=41.9,
                lon=12.5,
                language="it",
                timezone="Europe/Rome",
                tracking_token=f"tok-{name}",
            )
            session.add(order)
            session.flush()
            ids[name] = (org.id, order.id)
    yield Tenants(sessions, ids)
    engine.dispose()


def verifies(secret: str, sent: tuple[str, bytes]) -> bool:
    header, body = sent
    return verify_signature(secret, header, body, int(header.split(",")[0][2:]))


def test_each_tenant_can_verify_only_its_own_webhooks(tenants: Tenants, receiver: Receiver) -> None:
    """Shop A's secret verifies A's webhook and not B's, and the other way round: knowing
    one's own secret does not let a tenant forge another's webhooks."""
    secret_a, secret_b = tenants.secret("shop-a"), tenants.secret("shop-b")
    assert secret_a != secret_b
    tenants.notify("shop-a")
    tenants.notify("shop-b")
    tenants.send()
    sent = receiver.by_order()
    assert sorted(sent) == ["shop-a", "shop-b"]
    assert verifies(secret_a, sent["shop-a"])
    assert not verifies(secret_b, sent["shop-a"])
    assert verifies(secret_b, sent["shop-b"])
    assert not verifies(secret_a, sent["shop-b"])
    assert all(header.count("v1=") == 1 for header, _ in sent.values())


def test_a_rotation_signs_with_both_until_the_old_secret_expires(
    tenants: Tenants, receiver: Receiver
) -> None:
    """A new secret starts a rotation: webhooks carry a signature with the old and the new
    one until the old one's time is up, then with the new one only."""
    old = tenants.secret("shop-a", now=T0 - HOUR)
    new = tenants.secret("shop-a", now=T0, rotation=HOUR)
    tenants.notify("shop-a")
    tenants.send(T0 + HOUR / 2)
    during = receiver.by_order()["shop-a"]
    assert during[0].count("v1=") == 2
    assert verifies(old, during)
    assert verifies(new, during)

    receiver.got.clear()
    tenants.notify("shop-a", Trigger.DELIVERED, T0 + 2 * HOUR)  # after the rotation ended
    with tenants.sessions() as session:
        assert signing_secrets(session, tenants.ids["shop-a"][0], T0 + 2 * HOUR) == (new,)
    tenants.send(T0 + 2 * HOUR)
    [after] = [(header, body) for _, header, body in receiver.got]
    assert after[0].count("v1=") == 1
    assert verifies(new, after)
    assert not verifies(old, after)


def test_a_tenant_without_a_secret_gets_no_webhook(tenants: Tenants, receiver: Receiver) -> None:
    """No secret of its own (none created, or all revoked): nothing is sent, and the row says
    what to do. There is no shared secret to sign with instead."""
    tenants.secret("shop-b")
    tenants.notify("shop-a")
    tenants.send()
    assert receiver.got == []
    error = tenants.last_error("shop-a")
    assert error.startswith("dead: ")
    assert "POST /v1/organisation/webhook-secrets" in error
    with tenants.sessions() as session:
        attempts = session.scalars(select(NotificationAttemptRow.detail)).all()
    assert attempts
    assert all("signing secret" in a for a in attempts)


def test_the_migration_removes_receivers_answers_already_recorded(tmp_path: Path) -> None:
    """Errors recorded before revision 0007 quoted up to 300 characters of what the webhook
    URL answered; upgrading keeps their status codes and drops the quoted text (other
    channels' errors, whose provider is the operator's, are left as they are)."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url)
    command.upgrade(config, "0006")
    engine = make_engine(url)
    quoted = {
        "webhook": "gave up after 8 attempts: webhook: HTTP 500: root:x:0:0:root:/root:/bin/bash",
        "sms": "sms: HTTP 400: Twilio error 21211: The 'To' number is not valid.",
    }
    sessions = session_factory(engine)
    with transaction(sessions) as session:  # the tables 0007 reads are as the ORM has them
        org = Organisation(name="O")
        session.add(org)
        session.flush()
        # The orders table as it was at 0006 (the ORM's has columns added since).
        order = SimpleNamespace(id="order-x")
        session.execute(
            text(
                "INSERT INTO orders (id, organisation_id, external_id, lat, lon, windows, "
                "service_s, demand, skills, priority, optional, customer_ref, contact_name, "
                "contact_phone, contact_email, language, timezone, channels, status, "
                "tracking_token, created_at) VALUES (:id, :org, 'x', 0, 0, '[]', 0, '[]', "
                "'[]', 0, 0, '', '', '', '', 'en', 'UTC', '[]', 'open', 't', :at)"
            ),
            {"id": order.id, "org": org.id, "at": T0.isoformat()},
        )
        for channel, error in quoted.items():
            row = OutboxRow(
                organisation_id=org.id,
                order_id=order.id,
                channel=channel,
                trigger="delivered",
                dedupe_key=f"x:delivered:0:{channel}",
                status="dead",
                due_at=T0,
                attempts=8,
                last_error=error,
            )
            session.add(row)
            session.flush()
            detail = error.removeprefix("gave up after 8 attempts: ")
            session.add(NotificationAttemptRow(outbox_id=row.id, status="failed", detail=detail))
    command.upgrade(config, "head")
    with engine.connect() as db:
        errors = dict(db.execute(text("SELECT channel, last_error FROM notification_outbox")).all())
        details = [
            detail
            for (detail,) in db.execute(
                text("SELECT detail FROM notification_attempts ORDER BY detail DESC")
            )
        ]
    engine.dispose()
    assert errors == {
        "webhook": "gave up after 8 attempts: webhook: HTTP 500 (the receiver's answer is not "
        "recorded)",
        "sms": quoted["sms"],
    }
    assert details == [
        "webhook: HTTP 500 (the receiver's answer is not recorded)",
        quoted["sms"],
    ]

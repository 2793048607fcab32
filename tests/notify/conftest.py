"""Shared builders for the notification tests, and the private Dovecot the mailbox tests read
(tests/notify/dovecot_server.py)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from notify.settings import Branding, Recipient
from notify.triggers import DeliveryEvent, Trigger, Window
from store.db import make_engine, session_factory, transaction, upgrade
from store.schema import OrderRow, Organisation
from tests.notify.dovecot_server import Dovecot, dovecot_or_skip

#: 12:00 in Rome (CEST): well outside the default quiet hours (21:00-08:00).
T0 = datetime(2026, 6, 10, 10, 0, tzinfo=UTC)
ORDER = "o1"
ROME = Recipient(
    locale="it", timezone="Europe/Rome", email="anna@example.com", phone="+393331234567"
)
ACME = Branding("Acme", sender_email="consegne@acme.example", sms_sender="Acme")
URL = "https://lm.to/k3F9xQ"


def window(start_min: int, length_min: int = 30) -> Window:
    """A window starting ``start_min`` minutes after T0."""
    start = T0 + timedelta(minutes=start_min)
    return Window(start, start + timedelta(minutes=length_min))


def event(
    trigger: Trigger,
    at: datetime = T0,
    version: int = 1,
    win: Window | None = None,
    **extra: object,
) -> DeliveryEvent:
    """An event for the test order; ETA-carrying triggers default to a window at T0+2h."""
    if win is None and trigger not in {Trigger.ARRIVED, Trigger.DELIVERED, Trigger.FAILED}:
        win = window(120)
    return DeliveryEvent(
        ORDER,
        trigger,
        at,
        version,
        win.start if win else None,
        win.end if win else None,
        **extra,  # type: ignore[arg-type]
    )


@dataclass
class Store:
    sessions: sessionmaker[Session]
    order_id: str


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A SQLite store with one tenant and one Italian customer reachable by e-mail."""
    url = f"sqlite:///{tmp_path / 'lastmile.db'}"
    upgrade(url)
    engine = make_engine(url)
    sessions = session_factory(engine)
    with transaction(sessions) as session:
        org = Organisation(name="Acme", branding={"sender_email": "consegne@acme.example"})
        session.add(org)
        session.flush()
        order = OrderRow(
            organisation_id=org.id,
            external_id="A-17",
            lat=41.9,
            lon=12.5,
            customer_ref="ORD-17",
            contact_name="Anna",
            contact_email="anna@example.com",
            language="it",
            timezone="Europe/Rome",
            tracking_token="tok-17",
        )
        session.add(order)
        session.flush()
        order_id = order.id
    yield Store(sessions, order_id)
    engine.dispose()


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    """A running private Dovecot with an empty inbox, stopped and removed after the test."""
    server = Dovecot(dovecot_or_skip())
    try:
        server.start()
        yield server
    finally:
        server.stop()

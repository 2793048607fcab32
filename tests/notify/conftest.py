"""Shared builders for the notification tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from notify.settings import Branding, Recipient
from notify.triggers import DeliveryEvent, Trigger, Window

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

"""The outbox sender with fake channels on a SQLite store: delivery, retries with backoff, dead
messages, crashes between claim and record, deferred messages released when due."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from notify.channels.base import OutgoingMessage, SendResult
from notify.outbox import Outbox
from notify.sender import INTERRUPTED, OutboxSender
from notify.settings import Channel
from notify.triggers import DeliveryEvent, Trigger
from store.db import transaction
from store.schema import NotificationAttemptRow, OutboxRow
from tests.notify.conftest import Store

#: 12:00 in Rome: outside the default quiet hours.
T0 = datetime(2026, 6, 10, 10, 0, tzinfo=UTC)
WINDOW = (T0 + timedelta(hours=2), T0 + timedelta(hours=2, minutes=30))


@dataclass
class FakeChannel:
    """Answers with the queued results (then "sent"), keeping every message it was given."""

    results: list[SendResult] = field(default_factory=list)
    received: list[OutgoingMessage] = field(default_factory=list)

    def send(self, message: OutgoingMessage) -> SendResult:
        self.received.append(message)
        if self.results:
            return self.results.pop(0)
        return SendResult("sent", "fake: accepted", f"id-{len(self.received)}")


@dataclass
class DedupingProvider:
    """An HTTP-style provider honouring the idempotency key: a repeated key is not delivered."""

    delivered: dict[str, OutgoingMessage] = field(default_factory=dict)
    requests: int = 0

    def send(self, message: OutgoingMessage) -> SendResult:
        self.requests += 1
        self.delivered.setdefault(message.idempotency_key, message)
        return SendResult("sent", "provider: accepted", message.idempotency_key)


def enqueue(store: Store, trigger: Trigger, at: datetime, version: int = 1) -> int:
    """Run the policy on one event for the order; returns how many messages are due now."""
    windowed = trigger in {Trigger.WINDOW_BROKEN, Trigger.ETA_CHANGED}
    event = DeliveryEvent(
        store.order_id,
        trigger,
        at,
        version,
        WINDOW[0] if windowed else None,
        WINDOW[1] if windowed else None,
    )
    with transaction(store.sessions) as session:
        return Outbox().enqueue(session, {store.order_id: [event]}, at)


def sender(store: Store, channel: object, **kwargs: object) -> OutboxSender:
    return OutboxSender(
        store.sessions,
        {Channel.EMAIL: channel},  # type: ignore[dict-item]
        Outbox(),
        tracking_url=lambda token: f"https://track.example/t/{token}",
        clock=lambda: T0,
        **kwargs,  # type: ignore[arg-type]
    )


def rows(store: Store) -> list[OutboxRow]:
    with store.sessions() as session:
        return list(session.scalars(select(OutboxRow).order_by(OutboxRow.id)))


def attempts(store: Store) -> list[NotificationAttemptRow]:
    with store.sessions() as session:
        return list(
            session.scalars(select(NotificationAttemptRow).order_by(NotificationAttemptRow.id))
        )


def test_sent_once(store: Store) -> None:
    """A due message is rendered in the customer's language, sent once and recorded as sent."""
    assert enqueue(store, Trigger.WINDOW_BROKEN, T0) == 1
    fake = FakeChannel()
    s = sender(store, fake)
    assert s.run_once(T0) == 1
    assert s.run_once(T0 + timedelta(hours=1)) == 0
    assert len(fake.received) == 1
    message = fake.received[0]
    assert message.email == "anna@example.com"
    assert "in ritardo" in message.subject
    assert "tra le 14:00 e le 14:30" in message.text
    assert "https://track.example/t/tok-17" in message.text
    assert message.idempotency_key.endswith(":window_broken:1:email")
    [row] = rows(store)
    assert (row.status, row.sent_at, row.attempts, row.provider_id) == ("sent", T0, 1, "id-1")
    assert [(a.status, a.provider_id) for a in attempts(store)] == [("sent", "id-1")]


def test_retry_follows_backoff_schedule(store: Store) -> None:
    """Retries wait 30 s doubling; the message is dead after the last allowed attempt."""
    enqueue(store, Trigger.WINDOW_BROKEN, T0)
    fake = FakeChannel([SendResult("retry", f"smtp: 451 try {k}") for k in range(8)])
    s = sender(store, fake, max_attempts=8)
    now = T0
    waits = []
    for _ in range(7):
        assert s.run_once(now) == 1
        [row] = rows(store)
        assert row.status == "pending"
        waits.append((row.due_at - now).total_seconds())
        assert s.run_once(row.due_at - timedelta(seconds=1)) == 0
        now = row.due_at
    assert waits == [30, 60, 120, 240, 480, 960, 1920]
    assert s.run_once(now) == 1
    [row] = rows(store)
    assert row.status == "dead"
    assert row.attempts == 8
    assert row.last_error == "gave up after 8 attempts: smtp: 451 try 7"
    assert [a.status for a in attempts(store)] == ["retry"] * 8
    assert s.run_once(now + timedelta(days=1)) == 0
    assert len(fake.received) == 8


def test_backoff_capped_at_an_hour_and_retry_after_honoured(store: Store) -> None:
    """The wait never exceeds an hour, but a provider's Retry-After may ask for longer."""
    s = sender(store, FakeChannel())
    assert s.backoff(1) == timedelta(seconds=30)
    assert s.backoff(7) == timedelta(seconds=1920)
    assert s.backoff(8) == timedelta(hours=1)
    assert s.backoff(50) == timedelta(hours=1)
    enqueue(store, Trigger.WINDOW_BROKEN, T0)
    s = sender(store, FakeChannel([SendResult("retry", "sms: HTTP 429", None, 300.0)]))
    s.run_once(T0)
    [row] = rows(store)
    assert (row.status, row.due_at) == ("pending", T0 + timedelta(seconds=300))


def test_failed_is_dead_with_reason(store: Store) -> None:
    """A permanent failure is not retried: dead at once, with the provider's reason."""
    enqueue(store, Trigger.WINDOW_BROKEN, T0)
    fake = FakeChannel([SendResult("failed", "smtp: recipient refused: 550 no such user")])
    s = sender(store, fake)
    assert s.run_once(T0) == 1
    [row] = rows(store)
    assert (row.status, row.attempts) == ("dead", 1)
    assert row.last_error == "smtp: recipient refused: 550 no such user"
    assert s.run_once(T0 + timedelta(hours=2)) == 0
    assert len(fake.received) == 1


def test_missing_channel_is_dead(store: Store) -> None:
    """A message for a channel that is not configured is dead, saying what to configure."""
    enqueue(store, Trigger.WINDOW_BROKEN, T0)
    s = OutboxSender(store.sessions, {}, Outbox(), clock=lambda: T0)
    assert s.run_once(T0) == 1
    [row] = rows(store)
    assert row.status == "dead"
    assert "no email channel configured" in row.last_error
    assert "LASTMILE_SMTP_HOST" in row.last_error


def test_channel_raising_is_retried(store: Store) -> None:
    """A channel that raises (a bug) does not stop the sender: the message is retried."""

    class Broken:
        def send(self, _message: OutgoingMessage) -> SendResult:
            raise RuntimeError("boom")

    enqueue(store, Trigger.WINDOW_BROKEN, T0)
    s = sender(store, Broken())
    assert s.run_once(T0) == 1
    [row] = rows(store)
    assert row.status == "pending"
    assert "RuntimeError: boom" in row.last_error


class ProcessDiedError(Exception):
    """Stands in for the process dying."""


def crash_after_send(s: OutboxSender, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``s`` die after the channel accepted a message, before the outcome is stored."""

    def die(*_args: object) -> None:
        raise ProcessDiedError

    monkeypatch.setattr(s, "record", die)


def test_crash_before_send_sends_once_after_the_lease(store: Store) -> None:
    """A row claimed by a sender that died before sending is taken up after its lease."""
    enqueue(store, Trigger.WINDOW_BROKEN, T0)
    fake = FakeChannel()
    assert len(sender(store, fake).claim(T0)) == 1  # ... and the process dies
    again = sender(store, fake, lease_s=60)
    assert again.run_once(T0 + timedelta(seconds=59)) == 0  # still leased
    assert again.run_once(T0 + timedelta(seconds=61)) == 1
    assert len(fake.received) == 1
    [row] = rows(store)
    assert (row.status, row.attempts) == ("sent", 2)
    assert [a.status for a in attempts(store)] == [INTERRUPTED, "sent"]


def test_crash_after_send_resends_the_same_key(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SMTP-like channel: a crash between send and record sends again, with the same key
    (at-least-once); the row ends sent once."""
    enqueue(store, Trigger.WINDOW_BROKEN, T0)
    fake = FakeChannel()
    first = sender(store, fake)
    crash_after_send(first, monkeypatch)
    with pytest.raises(ProcessDiedError):
        first.run_once(T0)
    assert rows(store)[0].status == "sending"
    second = sender(store, fake, lease_s=60)
    assert second.run_once(T0 + timedelta(seconds=61)) == 1
    assert len(fake.received) == 2
    assert fake.received[0].idempotency_key == fake.received[1].idempotency_key
    [row] = rows(store)
    assert row.status == "sent"
    assert [a.status for a in attempts(store)] == [INTERRUPTED, "sent"]
    assert second.run_once(T0 + timedelta(hours=1)) == 0


def test_crash_after_send_deduplicated_by_http_provider(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTP-style channel: the re-send carries the same Idempotency-Key, delivered once."""
    enqueue(store, Trigger.WINDOW_BROKEN, T0)
    provider = DedupingProvider()
    first = sender(store, provider)
    crash_after_send(first, monkeypatch)
    with pytest.raises(ProcessDiedError):
        first.run_once(T0)
    second = sender(store, provider)
    assert second.run_once(T0 + timedelta(minutes=5)) == 1
    assert provider.requests == 2
    assert len(provider.delivered) == 1
    assert rows(store)[0].status == "sent"


def test_interrupted_last_attempt_is_dead(store: Store) -> None:
    """A row whose last allowed attempt was cut short is dead (outcome unknown), not retried."""
    enqueue(store, Trigger.WINDOW_BROKEN, T0)
    fake = FakeChannel()
    s = sender(store, fake, max_attempts=1)
    assert s.claim(T0) != []
    assert s.run_once(T0 + timedelta(minutes=5)) == 0
    [row] = rows(store)
    assert row.status == "dead"
    assert "may have been delivered" in row.last_error
    assert fake.received == []


def test_late_sent_outcome_wins_over_a_lost_lease(store: Store) -> None:
    """A sender whose lease expired still records "sent"; the row stays sent after that."""
    enqueue(store, Trigger.WINDOW_BROKEN, T0)
    s = sender(store, FakeChannel())
    [row_id] = s.claim(T0)
    old_lease = rows(store)[0].locked_until
    [again] = s.claim(T0 + timedelta(minutes=2))  # taken over by another sender
    assert again == row_id
    s.record(row_id, old_lease, SendResult("sent", "late", "p1"), T0 + timedelta(minutes=2))
    s.record(
        row_id,
        rows(store)[0].locked_until,
        SendResult("retry", "timeout"),
        T0 + timedelta(minutes=3),
    )
    [row] = rows(store)
    assert (row.status, row.provider_id) == ("sent", "p1")


def test_deferred_row_released_when_due(store: Store) -> None:
    """A message queued for quiet hours is sent when they end, not before."""
    night = datetime(2026, 6, 10, 20, 30, tzinfo=UTC)  # 22:30 in Rome
    assert enqueue(store, Trigger.DELIVERED, night) == 0
    [row] = rows(store)
    assert row.status == "deferred"
    morning = datetime(2026, 6, 11, 6, 0, tzinfo=UTC)  # 08:00 in Rome
    assert row.due_at == morning
    fake = FakeChannel()
    s = sender(store, fake)
    assert s.run_once(night + timedelta(hours=1)) == 0
    assert rows(store)[0].status == "deferred"
    assert s.run_once(morning) == 1
    [row] = rows(store)
    assert (row.status, row.sent_at) == ("sent", morning)
    assert len(fake.received) == 1


def test_thread_delivers_when_poked(store: Store) -> None:
    """The background loop picks up a new row when poked, and stops cleanly."""
    now = datetime.now(UTC).replace(hour=10, minute=0)  # noon in Rome: no quiet hours
    fake = FakeChannel()
    s = OutboxSender(
        store.sessions, {Channel.EMAIL: fake}, Outbox(), clock=lambda: now, poll_s=30.0
    )
    s.start()
    try:
        enqueue(store, Trigger.DELIVERED, now)
        s.poke()
        deadline = datetime.now(UTC) + timedelta(seconds=10)
        while not fake.received and datetime.now(UTC) < deadline:
            time.sleep(0.02)
    finally:
        s.stop()
    assert len(fake.received) == 1
    assert rows(store)[0].status == "sent"

"""The durable outbox: the policy's decisions become rows in the same transaction as the state
change that caused them (an ETA event, an arrival, a driver's delivery).

Row status: ``deferred`` (queued by the policy until ``due_at``: quiet hours, pacing),
``pending`` (to send now), then the sender's ``sending`` / ``sent`` / ``failed`` / ``dead``;
``cancelled`` when a newer ETA superseded it. ``dedupe_key`` (order:trigger:version:channel)
is unique: a notification can never be queued twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from domain.errors import ValidationError
from notify.answers import ANSWER_TRIGGER, REPLY_CHANNELS, AnswerDecision, decide_answer
from notify.codec import message_to_json, settings_from_json, state_from_json, state_to_json
from notify.policy import Decision, Message, decide
from notify.settings import Channel, NotifySettings, Recipient
from notify.triggers import DeliveryEvent
from store.schema import OrderRow, Organisation, OutboxRow


def recipient(order: OrderRow, webhook_url: str | None = None) -> Recipient:
    """Where and how to reach the customer of an order (push goes to its tracking token, the
    webhook channel to the tenant's endpoint)."""
    channels: tuple[Channel, ...] | None = None
    if order.channels:
        # "mqtt" is the API's older name of push.
        names = ["push" if c == "mqtt" else c for c in order.channels]
        channels = tuple(Channel(c) for c in names if c in set(Channel))
    return Recipient(
        locale=order.language or "en",
        timezone=order.timezone or "UTC",
        email=order.contact_email or None,
        phone=order.contact_phone or None,
        push_topic=order.tracking_token,
        webhook_url=webhook_url,
        channels=channels,
        opted_out=order.opted_out,
    )


@dataclass
class Outbox:
    """Writes decisions into the outbox through the caller's session (its transaction)."""

    #: Organisation id -> its policy (read once; a tenant whose stored policy is invalid gets
    #: the defaults, and the error is kept to report).
    _settings: dict[str, NotifySettings] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def forget(self, organisation_id: str) -> None:
        """The tenant's policy changed: read it again next time."""
        self._settings.pop(organisation_id, None)
        self.errors.pop(organisation_id, None)

    def settings(self, session: Session, organisation_id: str) -> NotifySettings:
        if organisation_id not in self._settings:
            org = session.get(Organisation, organisation_id)
            try:
                self._settings[organisation_id] = settings_from_json(
                    org.notification_policy if org is not None else {}
                )
            except ValidationError as exc:
                self.errors[organisation_id] = str(exc)
                self._settings[organisation_id] = NotifySettings()
        return self._settings[organisation_id]

    def enqueue(
        self, session: Session, events: Mapping[str, Sequence[DeliveryEvent]], now: datetime
    ) -> int:
        """Run the policy for each order (row id -> its new events) and write the outcome.
        Returns the number of messages queued to send now."""
        if not events:
            return 0
        orders = session.scalars(select(OrderRow).where(OrderRow.id.in_(list(events)))).all()
        queued = 0
        for order in orders:
            queued += self._apply(session, order, events[order.id], now)
        return queued

    def enqueue_answer(
        self,
        session: Session,
        order: OrderRow,
        contact_id: str,
        channel: str,
        address: str,
        text: str,
        subject: str,
        now: datetime,
        *,
        live: bool = True,
    ) -> AnswerDecision:
        """Queue the answer to one customer message on the channel it came by (one row per
        message: its key is the contact's), now or at the end of quiet hours; or say why a
        person must answer instead (``send_at`` None). ``live``: the service's own answer,
        made again when it leaves; a person's words (``live`` False) leave as written."""
        kind = REPLY_CHANNELS[channel]
        # The budget keeps the service from looping; a person's answer is never held by it.
        already = (
            0
            if not live
            else session.scalar(
                select(func.count())
                .select_from(OutboxRow)
                .where(
                    OutboxRow.order_id == order.id,
                    OutboxRow.trigger == ANSWER_TRIGGER,
                    OutboxRow.status != "cancelled",
                )
            )
        )
        settings = self.settings(session, order.organisation_id)
        decision = decide_answer(settings, order.timezone or "UTC", address, already or 0, now)
        if decision.send_at is None:
            return decision
        key = f"{order.id}:{ANSWER_TRIGGER}:{contact_id}:{kind}"
        session.add(
            OutboxRow(
                organisation_id=order.organisation_id,
                order_id=order.id,
                channel=str(kind),
                trigger=ANSWER_TRIGGER,
                dedupe_key=key,
                status="pending" if decision.send_at <= now else "deferred",
                due_at=decision.send_at,
                payload={
                    "answer": {
                        "contact_id": contact_id,
                        "to": address,
                        "text": text,
                        "subject": subject,
                        "live": live,
                    },
                    "idempotency_key": key,
                },
            )
        )
        return decision

    def release_due(self, session: Session, now: datetime, limit: int = 500) -> int:
        """Orders whose deferred messages are due: ask the policy again (with no new events)
        so they are sent, re-timed or dropped as it decides now. Answers held by quiet hours
        are simply due (the policy does not keep them: they are the customer's own asking)."""
        session.execute(
            update(OutboxRow)
            .where(
                OutboxRow.status == "deferred",
                OutboxRow.trigger == ANSWER_TRIGGER,
                OutboxRow.due_at <= now,
            )
            .values(status="pending")
        )
        order_ids = session.scalars(
            select(OutboxRow.order_id)
            .where(OutboxRow.status == "deferred", OutboxRow.due_at <= now)
            .distinct()
            .limit(limit)
        ).all()
        if not order_ids:
            return 0
        return self.enqueue(session, dict.fromkeys(order_ids, ()), now)

    def _apply(
        self, session: Session, order: OrderRow, events: Sequence[DeliveryEvent], now: datetime
    ) -> int:
        # Keyed by the order's row id: external ids repeat across tenants.
        state = state_from_json(order.id, order.notify_state or {})
        settings = self.settings(session, order.organisation_id)
        decision = decide(
            state,
            events,
            settings,
            recipient(order, settings.webhook_url),
            now,
        )
        self._write(session, order, decision, now)
        order.notify_state = state_to_json(decision.state)
        return len(decision.send)

    def _write(self, session: Session, order: OrderRow, decision: Decision, now: datetime) -> None:
        if decision.superseded:
            session.execute(
                update(OutboxRow)
                .where(
                    OutboxRow.dedupe_key.in_(decision.superseded),
                    OutboxRow.status.in_(("deferred", "pending")),
                )
                .values(status="cancelled", last_error="superseded by a newer ETA")
            )
        wanted: dict[str, tuple[Message, str, datetime]] = {}
        for message in decision.deferred:
            wanted[message.outbox_key] = (message, "deferred", message.not_before)
        for message in decision.send:
            wanted[message.outbox_key] = (message, "pending", now)
        if not wanted:
            return
        existing = {
            row.dedupe_key: row
            for row in session.scalars(
                select(OutboxRow).where(OutboxRow.dedupe_key.in_(list(wanted)))
            )
        }
        for key, (message, status, due) in wanted.items():
            payload = _payload(message)
            row = existing.get(key)
            if row is None:
                session.add(
                    OutboxRow(
                        organisation_id=order.organisation_id,
                        order_id=order.id,
                        channel=str(message.channel),
                        trigger=str(message.trigger),
                        dedupe_key=key,
                        status=status,
                        due_at=due,
                        payload=payload,
                    )
                )
            elif row.status == "deferred":  # re-timed, re-versioned or now due
                row.status, row.due_at, row.payload = status, due, payload


def _payload(message: Message) -> dict[str, Any]:
    return {"message": message_to_json(message), "idempotency_key": message.outbox_key}

"""The outbox sender: delivers ``pending`` outbox rows through their channels, with retries.

One pass (:meth:`OutboxSender.run_once`):

1. Deferred rows whose time has come go through the policy again (``Outbox.release_due``, in
   its own transaction): they become ``pending``, are re-timed or cancelled.
2. Claim a due row: ``pending`` with ``due_at <= now``, or ``sending`` whose ``locked_until``
   has passed (a sender that stopped mid-send). Claiming sets ``sending``, ``locked_until =
   now + lease`` and ``attempts += 1`` and commits (``SELECT ... FOR UPDATE SKIP LOCKED`` on
   PostgreSQL, so several senders share the work). Rows are claimed one at a time, so a lease
   only has to cover one send. A customer's messages on one channel go out in the order they
   were queued: a row waits while an earlier one of the same order and channel is still
   ``pending`` or ``sending`` (being retried), so after an outage "delivered" never arrives
   before "out for delivery". Deferred rows hold nothing back (the policy chose to send the
   later one first).
3. Render it (the order, its recipient, the tenant's branding; for a webhook, the tenant's
   valid signing secrets) and send it through its channel, outside any transaction.
4. Record a ``notification_attempts`` row and the outcome: ``sent`` (``sent_at``,
   ``provider_id``); ``retry`` -> back to ``pending`` with ``due_at = now + backoff`` (30 s
   doubling, capped at 1 h; longer if the provider's ``Retry-After`` says so), or ``dead``
   once ``max_attempts`` are used; ``failed`` -> ``dead``. ``last_error`` keeps the reason. A
   row whose channel is not configured, or that cannot be rendered, or a webhook of an
   organisation without a valid signing secret, is ``dead`` at once.

Crash windows (the process may die at any point; the row is never lost):

- Before the send (after the claim): the row stays ``sending`` until its lease expires, then
  any sender claims it again. Nothing was sent; it is sent once.
- After the provider accepted it, before the outcome is committed: the row is claimed again
  after the lease and **sent again**. The attempt that was cut short is recorded as
  ``interrupted``. HTTP channels (SMS, webhooks) send the same ``Idempotency-Key`` on every
  attempt, so a provider that honours it delivers the message once. SMTP and MQTT have no
  idempotency key: in this window (from the server's acceptance to our commit, one round trip
  plus one commit) an e-mail or a push can be delivered twice -- at-least-once. The e-mail's
  ``Message-ID`` is derived from the key, so it is the same on both copies and mail clients
  and providers can collapse them; push bodies carry ``idempotency_key`` for the app to drop
  the second. Outside that window nothing is ever sent twice.
- A row whose last allowed attempt was interrupted is ``dead`` (its outcome unknown), so a
  message that crashes the sender cannot crash it forever.

A ``sent`` outcome always wins: if a slow sender records ``sent`` after its lease expired and
another sender took the row, the row stays ``sent`` whatever the other one reports.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.orm import Session, aliased, sessionmaker

from domain.errors import ValidationError
from jobs.thread_loop import ThreadLoop
from notify.channels.base import Channel as ChannelImpl
from notify.channels.base import OutgoingMessage, SendResult, clip
from notify.channels.webhook import NO_SECRET
from notify.codec import branding_from_json, message_from_json
from notify.outbox import Outbox, recipient
from notify.render import OrderView, render
from notify.settings import Branding, Channel
from store.db import transaction
from store.schema import (
    InboundChannelRow,
    NotificationAttemptRow,
    OrderRow,
    Organisation,
    OutboxRow,
)
from store.webhook_secrets import signing_secrets

log = logging.getLogger(__name__)

#: What each channel needs configured (named in a dead row's reason).
CONFIGURE: dict[Channel, str] = {
    Channel.EMAIL: "LASTMILE_SMTP_HOST",
    Channel.SMS: "LASTMILE_SMS_TWILIO_ACCOUNT_SID or LASTMILE_SMS_URL",
    Channel.WEBHOOK: "nothing: the service builds it; this sender was given no WebhookChannel",
    Channel.PUSH: "an MQTT connection (LASTMILE_MQTT)",
    Channel.WHATSAPP: "nothing: the service builds it; this sender was given no WhatsAppChannel",
}
#: What a tenant sets up before WhatsApp can carry its messages.
NO_WHATSAPP = "no WhatsApp number set up for the organisation (PUT /v1/inbound/channels/whatsapp)"
#: Makes the answer to a customer's question again when it leaves (an answer held by quiet
#: hours tells what is true in the morning); empty means keep the stored text.
AnswerText = Callable[[Session, OrderRow, datetime], str]
#: Attempt status of an attempt cut short (the sender stopped before recording its outcome).
INTERRUPTED = "interrupted"
#: Longest wait a provider's Retry-After may impose.
MAX_RETRY_AFTER_S = 86_400.0


def utc_now() -> datetime:
    return datetime.now(UTC)


class OutboxSender(ThreadLoop):
    """Delivers outbox rows; see the module docstring for states and crash windows.

    ``channels`` holds the configured channel adapters (a row for any other channel is
    ``dead``); ``tracking_url`` makes the customer's tracking link from the order's token;
    ``clock`` is the time used by the thread loop (and to advance ``now`` while a pass runs).
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        channels: Mapping[Channel, ChannelImpl],
        outbox: Outbox | None = None,
        tracking_url: Callable[[str], str] = lambda token: f"http://127.0.0.1:8000/t/{token}",
        clock: Callable[[], datetime] = utc_now,
        *,
        answer_text: AnswerText | None = None,
        lease_s: float = 60.0,
        max_attempts: int = 8,
        backoff_s: float = 30.0,
        backoff_cap_s: float = 3_600.0,
        batch: int = 20,
        poll_s: float = 1.0,
    ) -> None:
        if lease_s <= 0 or max_attempts < 1 or backoff_s <= 0 or batch < 1:
            raise ValueError("lease_s, backoff_s > 0; max_attempts, batch >= 1")
        super().__init__("outbox-sender", poll_s)
        self.sessions = sessions
        self.channels = dict(channels)
        self.outbox = outbox if outbox is not None else Outbox()
        self.tracking_url = tracking_url
        self.clock = clock
        self.answer_text = answer_text
        self.lease = timedelta(seconds=lease_s)
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.backoff_cap_s = backoff_cap_s
        self.batch = batch

    # -- one pass -----------------------------------------------------------------------------

    def backoff(self, attempts: int) -> timedelta:
        """Wait before the next try after ``attempts`` tries: 30 s, 60 s, 120 s ... 1 h."""
        seconds = self.backoff_s * 2 ** max(0, min(attempts - 1, 30))
        return timedelta(seconds=min(seconds, self.backoff_cap_s))

    def run_once(self, now: datetime) -> int:
        """Release due deferred rows, then claim and deliver up to ``batch`` due rows.
        Returns how many rows were delivered or given up (sent, retried or dead)."""
        started = self.clock()

        def at() -> datetime:  # ``now`` advanced by the time this pass has taken
            return now + max(timedelta(0), self.clock() - started)

        try:
            with transaction(self.sessions) as session:
                self.outbox.release_due(session, now)
        except Exception:
            log.exception("releasing deferred notifications failed")
        done = 0
        while done < self.batch:
            claimed = self.claim(at(), limit=1)
            if not claimed:
                break
            for row_id in claimed:
                self.deliver(row_id, at)
                done += 1
        return done

    def claim(self, now: datetime, limit: int = 1) -> list[int]:
        """Take up to ``limit`` due rows (pending, or sending with an expired lease; none while
        an earlier row of its order and channel is unsent): mark them ``sending`` until ``now +
        lease`` and count the attempt. Returns their ids; rows whose last attempt was
        interrupted after ``max_attempts`` are made ``dead`` instead."""
        earlier = aliased(OutboxRow)
        held_back = exists().where(
            earlier.order_id == OutboxRow.order_id,
            earlier.channel == OutboxRow.channel,
            earlier.id < OutboxRow.id,
            earlier.status.in_(("pending", "sending")),
        )
        with transaction(self.sessions) as session:
            query = (
                select(OutboxRow)
                .where(
                    or_(
                        and_(OutboxRow.status == "pending", OutboxRow.due_at <= now),
                        and_(OutboxRow.status == "sending", OutboxRow.locked_until < now),
                    ),
                    ~held_back,
                )
                .order_by(OutboxRow.due_at, OutboxRow.id)
                .limit(limit)
            )
            if session.get_bind().dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            claimed: list[int] = []
            for row in session.scalars(query):
                if row.status == "sending":
                    why = "interrupted: the sender stopped before recording the outcome"
                    session.add(
                        NotificationAttemptRow(
                            outbox_id=row.id, at=now, status=INTERRUPTED, detail=why
                        )
                    )
                    if row.attempts >= self.max_attempts:
                        row.status, row.locked_until = "dead", None
                        row.last_error = (
                            f"gave up after {row.attempts} attempts; the last was {why} "
                            "(it may have been delivered)"
                        )
                        continue
                row.status = "sending"
                row.locked_until = now + self.lease
                row.attempts += 1
                claimed.append(row.id)
            return claimed

    def deliver(self, row_id: int, now: datetime | Callable[[], datetime]) -> None:
        """Render, send and record one claimed row (``now``: a time, or a clock to read)."""
        when: Callable[[], datetime] = now if callable(now) else (lambda: now)
        with self.sessions() as session:
            row = session.get(OutboxRow, row_id)
            if row is None or row.status != "sending":
                return
            lease = row.locked_until
            prepared = self._prepare(session, row, when())
        if isinstance(prepared, str):
            result = SendResult("failed", prepared)
        else:
            impl, outgoing = prepared
            try:
                result = impl.send(outgoing)
            except Exception as exc:  # a channel must not raise; if it does, try again later
                log.exception("channel %s raised on outbox row %d", outgoing.channel, row_id)
                result = SendResult("retry", f"{outgoing.channel}: {type(exc).__name__}: {exc}")
        self.record(row_id, lease, result, when())

    def _prepare(
        self, session: Session, row: OutboxRow, now: datetime
    ) -> tuple[ChannelImpl, OutgoingMessage] | str:
        """The channel and message for a row, or why it can never be sent. A webhook carries
        the secrets of the row's own organisation valid at ``now``, and only those."""
        try:
            kind = Channel(row.channel)
        except ValueError:
            return f"unknown channel {row.channel!r}"
        impl = self.channels.get(kind)
        if impl is None:
            return f"no {kind} channel configured (set {CONFIGURE[kind]})"
        order = session.get(OrderRow, row.order_id)
        org = session.get(Organisation, row.organisation_id)
        if order is None or org is None:
            return "the order or its organisation no longer exists"
        credentials: dict[str, str] = {}
        if kind is Channel.WHATSAPP:
            setup = session.scalars(
                select(InboundChannelRow).where(
                    InboundChannelRow.organisation_id == org.id,
                    InboundChannelRow.provider == "whatsapp",
                )
            ).one_or_none()
            if setup is None or not setup.config:
                return NO_WHATSAPP
            credentials = {str(k): str(v) for k, v in setup.config.items()}
        if isinstance(row.payload.get("answer"), dict):
            return impl, self._answer(session, row, kind, order, org, now, credentials)
        try:
            message = message_from_json(row.payload["message"])
            # The tenant's policy as the outbox read it (an invalid stored one: defaults).
            to = recipient(order, self.outbox.settings(session, org.id).webhook_url)
            view = OrderView(
                order_id=order.external_id,
                reference=order.customer_ref or order.external_id,
                customer_name=order.contact_name,
            )
            branding = _branding(org)
            rendered = render(message, view, to, branding, self.tracking_url(order.tracking_token))
            outgoing = OutgoingMessage.build(message, rendered, to, branding)
        except (KeyError, TypeError, ValueError, ValidationError) as exc:
            return f"cannot render the message: {type(exc).__name__}: {clip(str(exc))}"
        key = row.payload.get("idempotency_key")
        if isinstance(key, str) and key and key != outgoing.idempotency_key:
            outgoing = replace(outgoing, idempotency_key=key)
        if credentials:
            outgoing = replace(outgoing, credentials=credentials)
        if kind is Channel.WEBHOOK:
            secrets = signing_secrets(session, row.organisation_id, now)
            if not secrets:
                return NO_SECRET
            outgoing = replace(outgoing, signing_secrets=secrets)
        return impl, outgoing

    def _answer(
        self,
        session: Session,
        row: OutboxRow,
        kind: Channel,
        order: OrderRow,
        org: Organisation,
        now: datetime,
        credentials: dict[str, str],
    ) -> OutgoingMessage:
        """The answer to a customer's own message, to the address they wrote from, made
        again now when the service can (see :data:`AnswerText`)."""
        answer = row.payload["answer"]
        text = str(answer.get("text", ""))
        if self.answer_text is not None and answer.get("live", True):
            text = self.answer_text(session, order, now) or text
        to = str(answer.get("to", ""))
        branding = _branding(org)
        subject = str(answer.get("subject") or "")
        return OutgoingMessage(
            idempotency_key=str(row.payload.get("idempotency_key") or row.dedupe_key),
            channel=kind,
            email=to if kind is Channel.EMAIL else None,
            phone=to if kind is not Channel.EMAIL else None,
            subject=subject or branding.name,
            text=text,
            sms=text,
            payload={"trigger": row.trigger, "order_id": order.external_id},
            brand=branding.name,
            sender_email=branding.sender_email,
            sender_name=branding.sender_name or branding.name,
            sms_sender=branding.sms_sender,
            answer=True,
            credentials=credentials,
        )

    def record(
        self, row_id: int, lease: datetime | None, result: SendResult, now: datetime
    ) -> None:
        """Store one attempt's outcome (see the module docstring for the rules)."""
        with transaction(self.sessions) as session:
            query = select(OutboxRow).where(OutboxRow.id == row_id)
            if session.get_bind().dialect.name == "postgresql":
                query = query.with_for_update()
            row = session.scalar(query)
            if row is None:
                return
            session.add(
                NotificationAttemptRow(
                    outbox_id=row.id,
                    at=now,
                    status=result.status,
                    detail=result.detail,
                    provider_id=result.provider_id,
                )
            )
            if row.status == "sent":
                return  # another sender got there first; sent is final
            if result.status == "sent":
                row.status, row.sent_at, row.locked_until = "sent", now, None
                row.provider_id, row.last_error = result.provider_id, ""
                return
            if row.status != "sending" or row.locked_until != lease:
                return  # our lease expired and another sender holds the row now
            row.locked_until = None
            if result.status == "failed":
                row.status, row.last_error = "dead", result.detail
            elif row.attempts >= self.max_attempts:
                row.status = "dead"
                row.last_error = f"gave up after {row.attempts} attempts: {result.detail}"
            else:
                wait = self.backoff(row.attempts)
                if result.retry_after_s is not None:
                    asked = timedelta(seconds=min(result.retry_after_s, MAX_RETRY_AFTER_S))
                    wait = max(wait, asked)
                row.status, row.due_at, row.last_error = "pending", now + wait, result.detail

    # -- the thread (start, poke, stop: jobs.thread_loop) -------------------------------------

    def turn(self) -> bool:
        """One pass at the clock's time; a full batch means more may be due at once."""
        return self.run_once(self.clock()) >= self.batch


def _branding(org: Organisation) -> Branding:
    """The tenant's branding, from what the API stores (empty values mean unset; ``sender`` is
    the older name of ``sender_email``). Invalid stored branding falls back to the
    organisation's name."""
    data: dict[str, Any] = {k: v for k, v in (org.branding or {}).items() if v not in ("", None)}
    if "sender" in data and "sender_email" not in data:
        data["sender_email"] = data["sender"]
    try:
        return branding_from_json(data, name=org.name)
    except ValidationError as exc:
        log.warning("organisation %s: invalid branding, using defaults: %s", org.id, exc)
        return Branding(name=org.name or "lastmile")

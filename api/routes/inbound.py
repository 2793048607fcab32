"""Customers' own messages: "where is my order?" answered by the service itself when it is
sure, handed to a person otherwise (issue 19).

Messages arrive through a provider's signed webhook (Twilio, WhatsApp, Mailgun, a generic
SMS gateway), an IMAP mailbox, the tracking page's chat, or ``POST /v1/support/inbound`` for
any other gateway (with the organisation's API key). The sender's phone or e-mail is
matched to that organisation's open orders with that contact (never another organisation's,
never another customer's); the rules read the text (notify/intents.py) and find which of the
sender's orders it is about (notify/contact_match.py). Sure, and one order: the answer is
the support lookup's ready answer, returned to send on the same channel, in the order's
language. Otherwise the message waits in the support queue with the order attached (if one
is the sender's) and the suggested answer; the gateway learns nothing about any order.
Either way the contact counts in the WISMO report, with who answered it.

An answer to a message that came by SMS, WhatsApp or e-mail leaves through the outbox, on
that channel, to the address it came from: it respects the tenant's quiet hours and its own
budget (notify/answers.py), is retried like any notification, and is never sent twice. When
the budget is spent or the channel cannot carry it, the message goes to a person instead.
The generic API returns the answer to the gateway that asked; the chat shows it in place.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from api.deps import Reader, SessionDep, state_now
from api.errors import ApiError, not_found
from api.inbound_schemas import AnsweredIn, InboundIn, InboundOut, QueuedContactOut
from api.routes.support import normalise_phone, phone_matches, support_view
from api.schemas import ErrorBody
from notify.answers import REPLY_CHANNELS
from notify.contact_match import SenderOrder, order_asked_about, words_in
from notify.intents import read_message
from notify.outbox import Outbox
from store.schema import OrderRow, SupportContactRow

router = APIRouter(
    tags=["support"],
    responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody}},
)

#: Orders a customer may still be asking about.
OPEN_STATUSES = ("open", "planned", "dispatched")
#: Words of a message checked against the organisation's order ids and references.
MAX_WORDS = 200
#: The queue shows at most this many contacts, oldest first.
QUEUE_MAX = 100


def _sender_orders(session: Session, organisation_id: str, sender: str) -> list[OrderRow]:
    """The organisation's open orders whose customer has this phone or e-mail."""
    text = sender.strip()
    if "@" in text:
        match = func.lower(OrderRow.contact_email) == text.lower()
    else:
        match = phone_matches(normalise_phone(text))
    return list(
        session.scalars(
            select(OrderRow)
            .where(
                OrderRow.organisation_id == organisation_id,
                OrderRow.status.in_(OPEN_STATUSES),
                or_(match),
            )
            .order_by(OrderRow.created_at.desc(), OrderRow.external_id)
        )
    )


def _known_words(session: Session, organisation_id: str, text: str) -> list[str]:
    """Words of the text that are some order's id or customer reference in the organisation
    (whoever's: only used to tell that the text names an order, never shown)."""
    words = [w for w in words_in(text) if len(w) >= 2][:MAX_WORDS]
    if not words:
        return []
    lowered = {w.lower() for w in words}
    hits = session.execute(
        select(OrderRow.external_id, OrderRow.customer_ref).where(
            OrderRow.organisation_id == organisation_id,
            or_(
                func.lower(OrderRow.external_id).in_(lowered),
                func.lower(OrderRow.customer_ref).in_(lowered),
            ),
        )
    ).all()
    names = {n.lower() for row in hits for n in row if n}
    return [w for w in words if w.lower() in names]


def tracking_url(state: Any, order: OrderRow) -> str:
    """The customer's tracking link for an order (``state``: the app's)."""
    from api.app import TRACKING_PATH  # the app imports this module

    base: str = state.settings.tracking_base
    return base + TRACKING_PATH.format(token=order.tracking_token)


def answer_now(state: Any, session: Session, order: OrderRow, now: datetime) -> str:
    """The ready answer about an order as it stands at ``now``."""
    return support_view(session, order, tracking_url(state, order), now).answer


@router.post(
    "/v1/support/inbound",
    status_code=201,
    responses={422: {"model": ErrorBody}},
    summary="A customer's message: answered by the service when sure, else queued for a person.",
)
def inbound(body: InboundIn, caller: Reader, session: SessionDep, request: Request) -> InboundOut:
    # The gateway that asked sends the answer itself: nothing is queued here.
    row = handle_message(
        session,
        request.app.state,
        caller.organisation_id,
        body.channel,
        body.sender,
        body.text,
        reply=False,
    )
    auto = row.answered_by == "auto"
    return InboundOut(
        contact_id=row.id,
        answered_by="auto" if auto else None,
        answer=row.answer if auto else None,
        intent=row.intent or "other",
    )


def handle_message(
    session: Session,
    state: Any,
    organisation_id: str,
    channel: str,
    sender: str,
    text: str,
    *,
    provider_message_id: str | None = None,
    order: OrderRow | None = None,
    subject: str = "",
    reply: bool = True,
    automatic: bool = False,
) -> SupportContactRow:
    """Read, match and record a customer's message (once per provider message id).

    ``state`` is the app's. The sender's open orders are looked up by their phone or e-mail,
    unless ``order`` is given (the tracking page's chat: the page's order is the only one).
    ``subject`` (an e-mail's) is read with the text. The contact is answered by the service
    (``answered_by`` "auto", ``answer`` its text; with ``reply`` and a channel that carries
    answers, queued in the outbox to ``sender``) or waits for a person (``answer`` the
    suggestion, empty when no order of the sender's is named). An ``automatic`` message (an
    autoresponder's, a bounce) is never answered by the service: two robots would answer
    each other for ever; a person sees it."""
    if provider_message_id is not None:
        seen = session.scalars(
            select(SupportContactRow).where(
                SupportContactRow.organisation_id == organisation_id,
                SupportContactRow.provider_message_id == provider_message_id,
            )
        ).one_or_none()
        if seen is not None:
            return seen  # delivered again by the provider: the same contact, the same answer
    now = state_now(state)
    if order is not None:
        orders = [order] if order.organisation_id == organisation_id else []
    else:
        orders = _sender_orders(session, organisation_id, sender)
    by_id = {o.id: o for o in orders}
    language = orders[0].language if orders else "en"
    read = f"{subject}\n{text}" if subject.strip() else text
    reading = read_message(read, language or "en")
    match = order_asked_about(
        read,
        [SenderOrder(o.id, o.external_id, o.customer_ref, o.tracking_token) for o in orders],
        _known_words(session, organisation_id, read),
    )
    asked = by_id[match.order.order_id] if match.order is not None else None
    answer = answer_now(state, session, asked, now) if asked is not None else ""
    auto = reading.sure and asked is not None and not automatic
    row = SupportContactRow(
        organisation_id=organisation_id,
        order_id=asked.id if asked is not None else None,
        channel=channel,
        at=now,
        sender=sender.strip(),
        message=text if not subject.strip() else read,
        intent=reading.intent,
        answered_by="auto" if auto else None,
        answer=answer,
        handover=None if auto else ("automatic" if automatic else match.why or "not_sure"),
        provider_message_id=provider_message_id,
    )
    session.add(row)
    session.flush()
    if auto and reply and asked is not None and channel in REPLY_CHANNELS:
        outbox: Outbox = state.outbox
        decision = outbox.enqueue_answer(
            session, asked, row.id, channel, sender.strip(), answer, _reply_subject(subject), now
        )
        if decision.send_at is None:
            row.answered_by, row.handover = None, decision.handover
        else:
            sender_thread = getattr(state, "sender", None)
            if sender_thread is not None:
                sender_thread.poke()
    state.wismo_contacts.labels(channel).inc()
    return row


def _reply_subject(subject: str) -> str:
    subject = " ".join(subject.split())[:200]
    if not subject:
        return ""
    return subject if subject.lower().startswith("re:") else f"Re: {subject}"


@router.get(
    "/v1/support/queue",
    summary="Customers' messages waiting for a person, oldest first, each with its order and "
    "a suggested answer.",
)
def queue(caller: Reader, session: SessionDep) -> list[QueuedContactOut]:
    rows = session.execute(
        select(SupportContactRow, OrderRow.external_id)
        .outerjoin(OrderRow, OrderRow.id == SupportContactRow.order_id)
        .where(
            SupportContactRow.organisation_id == caller.organisation_id,
            SupportContactRow.answered_by.is_(None),
        )
        .order_by(SupportContactRow.at, SupportContactRow.id)
        .limit(QUEUE_MAX)
    ).all()
    return [_queued(contact, external_id) for contact, external_id in rows]


@router.post(
    "/v1/support/queue/{contact_id}/answered",
    responses={404: {"model": ErrorBody}, 422: {"model": ErrorBody}},
    summary="A person answered a queued message (it leaves the queue).",
)
def answered(
    contact_id: str, body: AnsweredIn, caller: Reader, session: SessionDep, request: Request
) -> QueuedContactOut:
    row = session.scalars(
        select(SupportContactRow).where(
            SupportContactRow.id == contact_id,
            SupportContactRow.organisation_id == caller.organisation_id,
        )
    ).one_or_none()
    if row is None:
        raise not_found("queued contact", contact_id)
    if row.answered_by is not None:
        raise ApiError(
            409, "conflict", f"contact {contact_id!r} was answered already ({row.answered_by})"
        )
    order = session.get(OrderRow, row.order_id) if row.order_id else None
    sent_at = None
    if body.send:
        sent_at = _send_persons_answer(session, request.app.state, row, order, body.answer)
    row.answered_by = "person"
    if body.answer:
        row.answer = body.answer
    session.flush()
    out = _queued(row, order.external_id if order is not None else None)
    out.sent_at = sent_at
    return out


def _send_persons_answer(
    session: Session, state: Any, row: SupportContactRow, order: OrderRow | None, text: str
) -> datetime:
    """Queue a person's answer to the customer on the channel they wrote on, or say why it
    cannot go (422 naming the field)."""
    problem = ""
    if not text.strip():
        problem = "answer: empty; nothing to send"
    elif row.channel not in REPLY_CHANNELS:
        problem = f"send: the {row.channel} channel carries no answers from here"
    elif order is None:
        problem = "send: the message is about no order of the sender's"
    if problem:
        field, message = problem.split(": ", 1)
        raise ApiError(422, "invalid", message, [{"field": field, "message": message}])
    assert order is not None
    now = state_now(state)
    outbox: Outbox = state.outbox
    decision = outbox.enqueue_answer(
        session, order, row.id, row.channel, row.sender, text, "", now, live=False
    )
    if decision.send_at is None:
        raise ApiError(
            422,
            "invalid",
            f"cannot send: {decision.handover}",
            [{"field": "send", "message": str(decision.handover)}],
        )
    sender_thread = getattr(state, "sender", None)
    if sender_thread is not None:
        sender_thread.poke()
    return decision.send_at


def _queued(contact: SupportContactRow, order_id: str | None) -> QueuedContactOut:
    return QueuedContactOut(
        contact_id=contact.id,
        channel=contact.channel,
        sender=contact.sender,
        message=contact.message,
        at=contact.at,
        intent=contact.intent,
        handover=contact.handover,
        order_id=order_id,
        suggested_answer=contact.answer,
    )

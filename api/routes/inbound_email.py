"""Customers' e-mails as an incoming channel (issue 19): Mailgun's inbound route, and the
glue that feeds a tenant's own IMAP mailbox (``notify/inbox_imap.py``) to the same handling.
Both read a message the same way (``notify/mail_text.py``).

Customers write "Where is my order 12345?" to the carrier's support address, often in the
subject, often as a reply to one of our notifications. Either way the message reaches
:func:`api.routes.inbound.handle_message` on channel ``email``: the sender's address matched
to their open orders, the subject read with their own words (quoted replies cut off), and
when the service is sure the answer leaves through the outbox as an e-mail to them ("Re:
<subject>"). The contact is recorded under ``email:<Message-ID>``, so an e-mail delivered
twice, or both posted by Mailgun and read from the mailbox, is one contact answered once.

Mailgun (``POST /v1/inbound/mailgun/{organisation id}/email``, the route's ``forward()``
target) signs each post: ``signature`` is the hex HMAC-SHA256 of ``timestamp`` + ``token``
under the tenant's webhook signing key. That is checked, with the timestamp within five
minutes of the service's clock, before any field is read; whatever fails (no signature, a
wrong or stale one, an unknown organisation, no Mailgun channel) gets the same 403. The
signature covers the token, not the message, so a token is bound to the first message it
came with (per process, for as long as the token is fresh): the same token with another
Message-ID is refused, Mailgun's retries of one post are not. Attachments (photos of a broken
parcel) are dropped as they stream by, unread and unstored, so a customer's e-mail with up to
Mailgun's 25 MB of them is read like any other (``api/mail_form.py``).

Auto-replies and bounces (``Auto-Submitted``, ``Precedence: bulk``...) are recorded but never
answered: two robots answering each other would never stop.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import threading
from collections import OrderedDict
from email.utils import parseaddr
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from api.deps import SessionDep, service_now
from api.errors import ApiError
from api.mail_form import TooLargeError, mail_form
from api.routes.inbound import handle_message
from api.routes.inbound_providers import channel_row, channel_rows, forbidden
from api.schemas import ErrorBody
from notify.inbox_imap import Mailbox, MailboxPoller
from notify.mail_text import (
    InboundMail,
    automatic,
    html_text,
    normalise_message_id,
    provider_message_id,
    strip_quoted,
)
from store.db import transaction

log = logging.getLogger(__name__)

router = APIRouter(tags=["support"])

#: Mailgun's timestamp may be this far from the service's clock, either way.
MAX_SKEW_S = 300.0
#: A customer's words kept for reading and for the person who may answer (a longer e-mail
#: is cut, not refused: Mailgun would retry a refusal for hours).
MAX_TEXT_CHARS = 4000
#: The store's sender column.
MAX_SENDER_CHARS = 200
#: Fresh tokens remembered per process (each a few dozen bytes).
MAX_TOKENS = 20_000


async def _form(request: Request) -> dict[str, str]:
    """Mailgun's text fields (the first of a repeated name kept), read here so that the route
    itself runs in the thread pool like every other that uses the store. 413 past the size
    limits; a body that is no form gets the same 403 as a bad signature (there is nothing to
    check a signature in)."""
    try:
        fields = await mail_form(request)
    except TooLargeError as exc:
        raise ApiError(413, "too_large", str(exc)) from None
    except ValueError:
        raise forbidden() from None
    form: dict[str, str] = {}
    for name, value in fields:
        # PostgreSQL's text cannot hold NUL (a form body's is refused earlier; multipart's not).
        form.setdefault(name, value.replace("\x00", ""))
    return form


def signed(key: str, timestamp: str, token: str, signature: str, now_s: float) -> bool:
    """Whether Mailgun signed this post: the HMAC over timestamp and token under the
    tenant's signing key, and a timestamp within :data:`MAX_SKEW_S` of ``now_s``."""
    try:
        at_s = float(timestamp)
    except ValueError:
        return False
    if not math.isfinite(at_s) or abs(now_s - at_s) > MAX_SKEW_S:
        return False
    expected = hmac.new(
        key.encode("utf-8"), (timestamp + token).encode("utf-8"), hashlib.sha256
    ).hexdigest()
    return hmac.compare_digest(expected.encode("ascii"), signature.encode("utf-8"))


class _FreshTokens:
    """The message each fresh token was first posted with, per organisation."""

    def __init__(self, max_entries: int = MAX_TOKENS) -> None:
        self.max_entries = max_entries
        self._seen: OrderedDict[tuple[str, str], tuple[str, float]] = OrderedDict()
        self._lock = threading.Lock()

    def _prune(self, now_s: float) -> None:
        while self._seen:
            _, (_, at_s) = next(iter(self._seen.items()))
            if abs(now_s - at_s) <= MAX_SKEW_S and len(self._seen) <= self.max_entries:
                break
            self._seen.popitem(last=False)

    def reused(self, organisation_id: str, token: str, message_id: str, now_s: float) -> bool:
        """Whether the token came before with another message."""
        with self._lock:
            self._prune(now_s)
            seen = self._seen.get((organisation_id, token))
            return seen is not None and seen[0] != message_id

    def remember(self, organisation_id: str, token: str, message_id: str, at_s: float) -> None:
        with self._lock:
            self._seen.setdefault((organisation_id, token), (message_id, at_s))


_TOKENS = _FreshTokens()


def _message_headers(form: dict[str, str]) -> list[tuple[str, str]]:
    """Mailgun's ``message-headers`` field (a JSON list of [name, value]), or none."""
    try:
        parsed = json.loads(form.get("message-headers") or "[]")
    except ValueError:
        return []
    if not isinstance(parsed, list):
        return []
    return [
        (str(item[0]), str(item[1])) for item in parsed if isinstance(item, list) and len(item) == 2
    ]


def _own_words(form: dict[str, str]) -> str:
    """What the customer wrote: Mailgun's ``stripped-text`` (quotes and signature already
    cut), else the plain body (or the HTML body's text) with the quotes cut here."""
    stripped = form.get("stripped-text", "").strip()
    if stripped:
        return stripped
    if form.get("body-plain", "").strip():
        return strip_quoted(form["body-plain"])
    return strip_quoted(html_text(form.get("body-html", "")))


@router.post(
    "/v1/inbound/mailgun/{organisation_id}/email",
    responses={403: {"model": ErrorBody}, 413: {"model": ErrorBody}, 422: {"model": ErrorBody}},
    summary="Mailgun's inbound e-mail route (signed); the answer leaves as an e-mail.",
)
def mailgun_email(
    organisation_id: str,
    request: Request,
    session: SessionDep,
    form: Annotated[dict[str, str], Depends(_form)],
) -> dict[str, bool]:
    now_s = service_now(request).timestamp()
    timestamp, token = form.get("timestamp", ""), form.get("token", "")
    signature = form.get("signature", "")
    channel = (
        channel_row(session, organisation_id, "mailgun") if len(organisation_id) <= 32 else None
    )
    if (
        channel is None
        or not (timestamp and token and signature)
        or not signed(channel.secret, timestamp, token, signature, now_s)
    ):
        raise forbidden()
    headers = _message_headers(form)
    message_id = normalise_message_id(
        form.get("Message-Id")
        or form.get("message-id")
        or next((v for k, v in headers if k.lower() == "message-id"), "")
    )
    message_id = message_id or f"mailgun-token:{token}"
    if _TOKENS.reused(organisation_id, token, message_id, now_s):
        raise forbidden()  # a fresh signature lifted onto another message
    problems: list[dict[str, str]] = []
    sender = parseaddr(form.get("from") or form.get("sender") or "")[1]
    if not (form.get("from") or form.get("sender")):
        problems.append({"field": "from", "message": "required"})
    elif "@" not in sender or len(sender) > MAX_SENDER_CHARS or any(c.isspace() for c in sender):
        problems.append({"field": "from", "message": "not an e-mail address"})
    if not any(name in form for name in ("body-plain", "stripped-text", "body-html")):
        problems.append({"field": "body-plain", "message": "required"})
    if problems:
        raise ApiError(422, "invalid", "not a Mailgun message", problems)
    subject = " ".join(form.get("subject", "").split())
    handle_message(
        session,
        request.app.state,
        organisation_id,
        "email",
        sender,
        _own_words(form)[:MAX_TEXT_CHARS],
        provider_message_id=provider_message_id(message_id),
        subject=subject,
        automatic=automatic(headers),
    )
    _TOKENS.remember(organisation_id, token, message_id, float(timestamp))
    return {"ok": True}


# -- a tenant's own mailbox, read by the poller -----------------------------------------------


def imap_mailboxes(sessions: sessionmaker[Session]) -> list[Mailbox]:
    """Every organisation's mailbox (inbound channels of provider ``imap``), read afresh on
    every poll so a changed password or host is used at once."""
    with transaction(sessions) as session:
        return [
            Mailbox(row.organisation_id, dict(row.config or {}), row.secret)
            for row in channel_rows(session, "imap")
        ]


def take_mail(state: Any, mailbox: Mailbox, mail: InboundMail) -> None:
    """Record (and, when sure, answer) one e-mail read from a tenant's mailbox, in its own
    transaction: it is committed before the poller marks the message seen."""
    if "@" not in mail.sender or len(mail.sender) > MAX_SENDER_CHARS:
        # No address to match or answer: the message stays in the mailbox for a person.
        log.warning(
            "organisation %s: an e-mail with no usable From address was left to the mailbox",
            mailbox.organisation_id,
        )
        return
    with transaction(state.sessions) as session:
        handle_message(
            session,
            state,
            mailbox.organisation_id,
            "email",
            mail.sender,
            mail.text[:MAX_TEXT_CHARS],
            provider_message_id=provider_message_id(mail.message_id),
            subject=mail.subject,
            automatic=mail.automatic,
        )
    sender = getattr(state, "sender", None)
    if sender is not None:
        sender.poke()  # committed now: the answer can go out at once


def start_mailbox_poller(
    state: Any, poll_s: float, *, allow_private: bool = False
) -> MailboxPoller | None:
    """The poller reading every tenant's mailbox every ``poll_s`` seconds, started; None when
    ``poll_s`` is 0 (off)."""
    if poll_s <= 0:
        return None
    poller = MailboxPoller(
        lambda: imap_mailboxes(state.sessions),
        lambda mailbox, mail: take_mail(state, mailbox, mail),
        poll_s=poll_s,
        allow_private=allow_private,
    )
    poller.start()
    return poller

"""The tracking page's chat (issue 19): the customer asks "where is it? when?" in their own
words on ``/t/{token}`` and sees the live answer at once when the service is sure, else "a
person will answer here" and, later, the person's answer in the same place.

The token is the secret, as for the page: the message is about the page's order and nothing
else is looked up (:func:`api.routes.inbound.handle_message` with ``order``), so no order but
this one is ever named. A message is a support contact on channel ``chat`` (it counts in the
WISMO report like any other); the conversation shown is this order's chat contacts only, and
a message still waiting shows no answer: the suggestion in its row is for the person, not the
customer.

Works without JavaScript (the form posts, the page is sent again with the conversation);
``/static/tracking_chat.js`` posts with fetch and polls while a message waits. The same per-IP
rate limit and the same 404 page as the rest of ``/t/*``; a body over
:data:`MAX_BODY_BYTES` is refused with 413 before it is read.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.deps import service_now
from api.limits import read_within
from api.proofs import proof_block
from api.routes.inbound import handle_message
from api.routes.tracking import (
    _not_found,
    _order,
    _page,
    _too_many,
    _tracks,
    tracking_view,
)
from api.tracking_map import roads_around
from notify.render import _say, catalogue, resolve_locale
from store.schema import OrderRow, SupportContactRow

router = APIRouter(include_in_schema=False)

#: The channel chat contacts are recorded on (and the conversation is read from).
CHANNEL = "chat"
#: The most characters a message may have (after surrounding spaces are dropped).
MAX_CHARS = 1000
#: A body larger than this is refused unread: 1000 characters of four UTF-8 bytes each,
#: percent-encoded in a form (12 bytes a character), still fit.
MAX_BODY_BYTES = 16 * 1024
#: The conversation shows this many of the latest messages, oldest first.
SHOWN = 50
#: How often the page asks for the person's answer while a message waits.
POLL_S = 15.0

#: Problem → HTTP status.
_STATUS = {"too_large": 413, "empty": 422, "too_long": 422, "invalid": 422, "too_many": 429}
#: Messages one order's chat takes in a day: past it the page says to try later, so one
#: visitor cannot fill the support queue (or the WISMO report) through one tracking link.
MAX_PER_ORDER_PER_DAY = 30


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """A customer's message and what the customer may see of its answer."""

    id: str
    at: datetime
    text: str
    #: auto | person | None (waiting for a person).
    answered_by: str | None
    #: None while waiting: the row's answer is then only a suggestion for the person.
    answer: str | None

    @property
    def waiting(self) -> bool:
        return self.answered_by is None

    @property
    def state(self) -> str:
        return self.answered_by or "waiting"

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "text": self.text,
            "answered_by": self.answered_by,
            "answer": self.answer,
            "waiting": self.waiting,
        }


@dataclass(frozen=True, slots=True)
class ChatView:
    """What the widget on the page shows: the conversation, and a refused message's problem
    with its text kept (the page without JavaScript)."""

    messages: tuple[ChatMessage, ...]
    poll_ms: int
    max_chars: int = MAX_CHARS
    error: str = ""
    text: str = ""


def conversation(session: Session, order: OrderRow) -> tuple[ChatMessage, ...]:
    """The order's chat messages (the latest :data:`SHOWN`, oldest first), each with its
    answer once answered, by the service or by a person."""
    rows = session.scalars(
        select(SupportContactRow)
        .where(
            SupportContactRow.organisation_id == order.organisation_id,
            SupportContactRow.order_id == order.id,
            SupportContactRow.channel == CHANNEL,
        )
        .order_by(SupportContactRow.at.desc(), SupportContactRow.id.desc())
        .limit(SHOWN)
    ).all()
    return tuple(
        ChatMessage(
            id=row.id,
            at=row.at,
            text=row.message,
            answered_by=row.answered_by,
            # A person who answered without a text of their own kept the suggestion.
            answer=(row.answer or None) if row.answered_by is not None else None,
        )
        for row in reversed(rows)
    )


def chat_view(
    request: Request, session: Session, order: OrderRow, *, error: str = "", text: str = ""
) -> ChatView:
    """The widget's content for the page of ``order``."""
    poll_s = float(getattr(request.app.state, "tracking_chat_poll_s", POLL_S))
    return ChatView(
        messages=conversation(session, order),
        poll_ms=max(100, round(poll_s * 1000)),
        error=error,
        text=text,
    )


def _sender(token: str) -> str:
    """Who the support queue says wrote: the page, and which one, without the token itself
    (the queue is no place for a secret, nor for the customer's phone or e-mail)."""
    return "tracking:" + hashlib.sha256(token.encode()).hexdigest()[:8]


def _wants_json(request: Request) -> bool:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return kind == "application/json"


async def _body(request: Request) -> bytes | None:
    """The body, or None when it is over :data:`MAX_BODY_BYTES` (unread when its length
    says so up front, else read no further than the limit)."""
    return await read_within(request, MAX_BODY_BYTES)


def _text(raw: bytes | None, as_json: bool) -> tuple[str, str]:
    """(the message, its problem: "" | too_large | empty | too_long | invalid)."""
    if raw is None:
        return "", "too_large"
    given: object = ""
    if as_json:
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            return "", "invalid"
        if not isinstance(body, dict) or set(body) != {"text"}:
            return "", "invalid"
        given = body["text"]
    else:
        given = (parse_qs(raw.decode("utf-8", errors="replace")).get("text") or [""])[0]
    if not isinstance(given, str) or "\x00" in given:
        return "", "invalid"
    text = given.strip()
    if not text:
        return "", "empty"
    if len(text) > MAX_CHARS:
        return text, "too_long"
    return text, ""


def _problem_text(texts: dict[str, str], problem: str) -> str:
    if problem == "too_long" or problem == "too_large":
        return _say(texts["chat_too_long"], max=MAX_CHARS)
    if problem == "empty":
        return texts["chat_empty"]
    return texts["chat_failed"]


def _error(status: int, problem: str, message: str) -> JSONResponse:
    """The API's error shape, its message in the customer's language (the page shows it)."""
    code = "too_large" if problem == "too_large" else "invalid"
    problems = [{"field": "text", "message": message}]
    return JSONResponse(
        {"error": {"code": code, "message": message, "problems": problems}},
        status_code=status,
        headers={"Cache-Control": "no-store"},
    )


def _page_with_chat(
    request: Request, session: Session, order: OrderRow, token: str, chat: ChatView, status: int
) -> HTMLResponse:
    """The tracking page again, its chat saying what was wrong (no JavaScript)."""
    view = tracking_view(session, order, service_now(request), _tracks(request))
    roads = roads_around(getattr(request.app.state, "snapper", None), order)
    return _page(
        view,
        token,
        order.delivery_instructions or {},
        status_code=status,
        roads=roads if view.map is not None else [],
        chat=chat,
        proof=proof_block(session, order, token),
    )


@router.post("/t/{token}/messages")
async def ask(token: str, request: Request) -> Response:
    """A customer's message from the tracking page: 201 with the answer when the service is
    sure (JSON), else waiting for a person; a form post is sent back to the page (303)."""
    refused = await run_in_threadpool(_too_many, request)
    if refused is not None:
        return refused
    as_json = _wants_json(request)
    text, problem = _text(await _body(request), as_json)
    return await run_in_threadpool(_ask, request, token, text, problem, as_json)


def _ask(request: Request, token: str, text: str, problem: str, as_json: bool) -> Response:
    state = request.app.state
    with state.sessions() as session, session.begin():
        order = _order(session, token)
        if order is None:
            return _not_found(request)
        texts: dict[str, str] = catalogue(resolve_locale(order.language)[0])["tracking"]
        if not problem and _asked_today(session, order, service_now(request)):
            problem = "too_many"
        if problem:
            message = _problem_text(texts, problem)
            if as_json:
                return _error(_STATUS[problem], problem, message)
            chat = chat_view(request, session, order, error=message, text=text[:MAX_CHARS])
            return _page_with_chat(request, session, order, token, chat, _STATUS[problem])
        row = handle_message(
            session,
            state,
            order.organisation_id,
            CHANNEL,
            _sender(token),
            text,
            order=order,
            reply=False,  # shown in place on the page, not sent anywhere
        )
        auto = row.answered_by == "auto"
        body = {
            "id": row.id,
            "answered_by": "auto" if auto else None,
            "answer": row.answer if auto else None,
            "waiting": not auto,
        }
    if as_json:
        return JSONResponse(body, status_code=201, headers={"Cache-Control": "no-store"})
    return Response(status_code=303, headers={"Location": f"/t/{token}#chat"})


def _asked_today(session: Session, order: OrderRow, now: datetime) -> bool:
    """Whether the order's chat took its day's messages already."""
    count = session.scalar(
        select(func.count())
        .select_from(SupportContactRow)
        .where(
            SupportContactRow.order_id == order.id,
            SupportContactRow.channel == CHANNEL,
            SupportContactRow.at > now - timedelta(days=1),
        )
    )
    return (count or 0) >= MAX_PER_ORDER_PER_DAY


@router.get("/t/{token}/messages")
def messages(token: str, request: Request) -> Response:
    """This order's chat, oldest first: each message with its answer once answered."""
    refused = _too_many(request)
    if refused is not None:
        return refused
    with request.app.state.sessions() as session:
        order = _order(session, token)
        if order is None:
            return _not_found(request)
        shown = [m.public() for m in conversation(session, order)]
    return JSONResponse({"messages": shown}, headers={"Cache-Control": "no-store"})

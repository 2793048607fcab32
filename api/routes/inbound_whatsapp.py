"""WhatsApp's incoming webhook (Cloud API, issue 19): customers' messages, and their taps on
the notification's "leave with a neighbour" button.

An admin sets the channel up once (``PUT /v1/inbound/channels/whatsapp``: the Meta app's
secret, and the verify token, phone number id and access token) and points the app's
webhook at ``{public base}/v1/inbound/whatsapp/{organisation id}`` with that verify token.

- ``GET``: Meta's verification. The challenge comes back as text only when ``hub.mode`` is
  ``subscribe`` and ``hub.verify_token`` is the organisation's; anything else, an unknown
  organisation and one without WhatsApp included, gets the same 403.
- ``POST``: Meta's updates. The body is read up to 64 KiB (413 beyond, the rest unread) and
  its ``X-Hub-Signature-256`` (HMAC-SHA256 of the raw body with the app secret) is checked
  before anything in it is read: a request not signed with this organisation's secret,
  or for an organisation without WhatsApp, gets 403 and learns nothing. A validly signed
  payload always gets 200, since Meta retries anything else for days, whatever it holds:
  status updates, message types the service does not read (images, voice notes,
  locations) and messages to another of the app's numbers are ignored. Only signed JSON
  that is not the Cloud API's shape gets 422, naming the field.

A text message goes through :func:`api.routes.inbound.handle_message`: answered by the
service when it is sure (the answer leaves through the outbox as a WhatsApp text, inside
the 24 hours the customer's message opened), otherwise waiting for a person. A tap on
"leave with a neighbour" (payload ``neighbour:<order row id>``, see
:mod:`notify.channels.whatsapp`) sets the order's safe place to the button's words, as the
tracking page's form would, and tells the driver; only for an open order of this
organisation whose customer's phone is the sender's, else it is an ordinary message for a
person. Either way it counts as a contact. Meta delivering a message twice (its ``id``)
changes nothing the second time.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import PlainTextResponse
from pywa.utils import webhook_updates_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.deps import SessionDep, state_now
from api.errors import ApiError
from api.limits import read_within
from api.routes.inbound import OPEN_STATUSES, handle_message
from api.routes.inbound_providers import channel_row
from api.routes.support import normalise_phone, phone_matches
from api.routes.tracking import LIMITS, set_instructions
from api.schemas import ErrorBody
from notify.channels.whatsapp import NEIGHBOUR_PREFIX
from notify.outbox import Outbox
from notify.render import catalogue, resolve_locale
from store.schema import OrderRow, SupportContactRow

router = APIRouter(tags=["support"])

PROVIDER = "whatsapp"
#: A body larger than this is refused unread (Meta batches at most a few messages per post).
MAX_BODY_BYTES = 65_536
#: WhatsApp's longest text message.
MAX_TEXT_CHARS = 4096
#: Stored as ``whatsapp:<id>`` in a 100-character column.
MAX_ID_CHARS = 100 - len("whatsapp:")
MAX_SENDER_CHARS = 200
#: The safe place a tap sets when the button's words did not come with it.
NEIGHBOUR_DEFAULT = "Leave with a neighbour"


@dataclass(frozen=True, slots=True)
class Incoming:
    """One customer message of a signed payload, in the parts the service reads."""

    message_id: str
    #: E.164 (``+`` and WhatsApp's digits) when WhatsApp gave a number.
    sender: str
    text: str
    #: A tapped button's payload (quick reply) or id (interactive reply); None for text.
    payload: str | None
    #: The business number the message was sent to (``metadata.phone_number_id``).
    phone_number_id: str | None


def _forbidden() -> ApiError:
    # One answer for every refusal: an unknown organisation, no channel, a bad signature.
    return ApiError(403, "forbidden", "request not signed by this organisation's provider")


@router.get(
    "/v1/inbound/whatsapp/{organisation_id}",
    response_class=PlainTextResponse,
    responses={403: {"model": ErrorBody}},
    summary="WhatsApp's webhook verification: echoes the challenge for the right verify token.",
)
def whatsapp_verify(
    organisation_id: Annotated[str, Path(max_length=32)],
    session: SessionDep,
    mode: Annotated[str, Query(alias="hub.mode")] = "",
    verify_token: Annotated[str, Query(alias="hub.verify_token")] = "",
    challenge: Annotated[str, Query(alias="hub.challenge")] = "",
) -> PlainTextResponse:
    channel = channel_row(session, organisation_id, PROVIDER)
    wanted = str((channel.config or {}).get("verify_token", "")) if channel is not None else ""
    if (
        not wanted
        or mode != "subscribe"
        or not challenge
        or len(challenge) > 200
        or not _same(verify_token, wanted)
    ):
        raise _forbidden()
    return PlainTextResponse(challenge)


async def _body(request: Request) -> bytes:
    """The body as sent (the signature covers its bytes), at most :data:`MAX_BODY_BYTES`:
    413 as soon as it is longer, without reading on. Read here so the route itself runs in
    the thread pool like every other that uses the store."""
    raw = await read_within(request, MAX_BODY_BYTES)
    if raw is None:
        raise _too_large()
    return raw


def _too_large() -> ApiError:
    return ApiError(413, "too_large", f"body over {MAX_BODY_BYTES} bytes")


@router.post(
    "/v1/inbound/whatsapp/{organisation_id}",
    responses={403: {"model": ErrorBody}, 413: {"model": ErrorBody}, 422: {"model": ErrorBody}},
    summary="WhatsApp's webhook (signed by the Meta app): customers' messages and button taps.",
)
def whatsapp_updates(
    organisation_id: Annotated[str, Path(max_length=32)],
    request: Request,
    session: SessionDep,
    raw: Annotated[bytes, Depends(_body)],
    signature: Annotated[str | None, Header(alias="X-Hub-Signature-256")] = None,
) -> dict[str, bool]:
    channel = channel_row(session, organisation_id, PROVIDER)
    if channel is None or not _signed(channel.secret, raw, signature):
        raise _forbidden()
    own_number = str((channel.config or {}).get("phone_number_id", "")).strip()
    state = request.app.state
    for message in parse_updates(raw):
        if own_number and message.phone_number_id not in (None, own_number):
            continue  # to another number of the same Meta app: not this organisation's
        if message.payload is not None and message.payload.startswith(NEIGHBOUR_PREFIX):
            _neighbour(session, state, organisation_id, message)
        elif message.text.strip():
            handle_message(
                session,
                state,
                organisation_id,
                PROVIDER,
                message.sender,
                message.text,
                provider_message_id=f"{PROVIDER}:{message.message_id}",
            )
    return {"ok": True}


def _same(given: str, wanted: str) -> bool:
    """Constant-time equality of two strings of any characters."""
    return hmac.compare_digest(given.encode("utf-8"), wanted.encode("utf-8"))


def _signed(secret: str, raw: bytes, header: str | None) -> bool:
    # compare_digest refuses non-ASCII text: such a header is simply not a signature.
    if not header or not header.isascii() or not header.startswith("sha256="):
        return False
    return webhook_updates_validator(secret, raw, header)


def _neighbour(session: Session, state: Any, organisation_id: str, message: Incoming) -> None:
    """The customer tapped "leave with a neighbour": their order's safe place becomes the
    button's words, once per message, for their own open order only."""
    provider_message_id = f"{PROVIDER}:{message.message_id}"
    seen = session.scalar(
        select(SupportContactRow.id).where(
            SupportContactRow.organisation_id == organisation_id,
            SupportContactRow.provider_message_id == provider_message_id,
        )
    )
    if seen is not None:
        return  # delivered again by Meta: done the first time
    words = (message.text.strip() or NEIGHBOUR_DEFAULT)[: LIMITS["safe_place"]]
    order_row_id = message.payload.removeprefix(NEIGHBOUR_PREFIX) if message.payload else ""
    order = session.scalar(
        select(OrderRow).where(
            OrderRow.id == order_row_id,
            OrderRow.organisation_id == organisation_id,
            OrderRow.status.in_(OPEN_STATUSES),
            phone_matches(normalise_phone(message.sender)),
        )
    )
    if order is None:
        # Not (or no longer) an open order of the sender's: a person reads the tap.
        handle_message(
            session,
            state,
            organisation_id,
            PROVIDER,
            message.sender,
            words,
            provider_message_id=provider_message_id,
        )
        return
    kept = {**(order.delivery_instructions or {}), "safe_place": words}
    set_instructions(state, session, order, {k: v for k, v in kept.items() if v})
    now = state_now(state)
    language, _ = resolve_locale(order.language or "en")
    noted = str(catalogue(language)["answer"]["neighbour_noted"])
    contact = SupportContactRow(
        organisation_id=organisation_id,
        order_id=order.id,
        channel=PROVIDER,
        at=now,
        sender=message.sender,
        message=words,
        intent="change",
        answered_by="auto",
        answer=noted,
        provider_message_id=provider_message_id,
    )
    session.add(contact)
    session.flush()
    # The customer hears that it is noted, in their language, by the same outbox (as written).
    outbox: Outbox = state.outbox
    outbox.enqueue_answer(
        session, order, contact.id, PROVIDER, message.sender, noted, "", now, live=False
    )
    state.wismo_contacts.labels(PROVIDER).inc()


# -- the Cloud API's payload ----------------------------------------------------------------------


class _ShapeError(Exception):
    """A field of the payload that is not as the Cloud API sends it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def parse_updates(raw: bytes) -> list[Incoming]:
    """The customer messages of a Cloud API payload (``entry[].changes[].value.messages[]``),
    in order; 422 naming the field when the JSON is not of that shape."""
    try:
        return _messages(raw)
    except _ShapeError as exc:
        raise ApiError(
            422,
            "invalid",
            "not a WhatsApp Cloud API update",
            [{"field": exc.field, "message": exc.message}],
        ) from None


def _messages(raw: bytes) -> list[Incoming]:
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise _ShapeError("body", "not JSON") from None
    root = _object(body, "body")
    found: list[Incoming] = []
    for i, entry in enumerate(_list(root, "entry", "", required=True)):
        where = f"entry[{i}]"
        for j, change in enumerate(_list(_object(entry, where), "changes", where)):
            here = f"{where}.changes[{j}]"
            value = _object(_object(change, here).get("value", {}), f"{here}.value")
            metadata = _object(value.get("metadata", {}), f"{here}.value.metadata")
            number = metadata.get("phone_number_id")
            phone_number_id = str(number) if number is not None else None
            for k, message in enumerate(_list(value, "messages", f"{here}.value")):
                path = f"{here}.value.messages[{k}]"
                incoming = _message(_object(message, path), path, phone_number_id)
                if incoming is not None:
                    found.append(incoming)
    return found


def _message(message: dict[str, Any], path: str, phone_number_id: str | None) -> Incoming | None:
    """One message, or None for a kind the service does not read."""
    message_id = _text(message, "id", path, MAX_ID_CHARS)
    sender = _text(message, "from", path, MAX_SENDER_CHARS - 1)
    kind = _text(message, "type", path, 40)
    # WhatsApp's ``from`` is the number's digits; anything else is kept as it came.
    sender = f"+{sender}" if sender.isdigit() else sender
    text, payload = "", None
    if kind == "text":
        body = _object(message.get("text"), f"{path}.text")
        text = _text(body, "body", f"{path}.text", MAX_TEXT_CHARS)
    elif kind == "button":  # a template's quick-reply button
        button = _object(message.get("button"), f"{path}.button")
        payload = _text(button, "payload", f"{path}.button", 256, required=False)
        text = _text(button, "text", f"{path}.button", 256, required=False)
    elif kind == "interactive":  # a reply button or list row of an interactive message
        interactive = _object(message.get("interactive"), f"{path}.interactive")
        reply_kind = interactive.get("type")
        if reply_kind not in ("button_reply", "list_reply"):
            return None
        where = f"{path}.interactive.{reply_kind}"
        reply = _object(interactive.get(reply_kind), where)
        payload = _text(reply, "id", where, 256)
        text = _text(reply, "title", where, 256, required=False)
    else:
        return None
    return Incoming(message_id, sender, text, payload, phone_number_id)


def _object(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _ShapeError(field, "must be an object")
    return value


def _list(parent: dict[str, Any], name: str, where: str, *, required: bool = False) -> list[Any]:
    field = f"{where}.{name}" if where else name
    if name not in parent:
        if required:
            raise _ShapeError(field, "required")
        return []
    value = parent[name]
    if not isinstance(value, list):
        raise _ShapeError(field, "must be a list")
    return value


def _text(
    parent: dict[str, Any], name: str, where: str, limit: int, *, required: bool = True
) -> str:
    field = f"{where}.{name}"
    value = parent.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise _ShapeError(field, "required text")
    if len(value) > limit:
        raise _ShapeError(field, f"at most {limit} characters")
    return value

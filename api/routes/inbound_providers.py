"""Customers' messages straight from a messaging provider (issue 19): the providers' set-up
(``PUT /v1/inbound/channels/{provider}``), Twilio's incoming SMS and a generic SMS gateway.

WhatsApp's webhook lives in ``inbound_whatsapp``, Mailgun's in ``inbound_email``; an IMAP
mailbox is polled (``notify/inbox_imap.py``). Each provider's secret is what it signs with
(or the mailbox's password); ``config`` holds what else it needs.

An admin gives the service the provider's signing secret (Twilio's auth token) once; Twilio
is then pointed at ``{public base}/v1/inbound/twilio/{organisation id}/sms``. Every request is
checked against Twilio's signature (``X-Twilio-Signature``, computed over the public URL and
the form fields with the tenant's auth token, by Twilio's own library) before anything is
read: a request that is not signed, signed with another secret, or for an organisation with
no Twilio channel gets 403 and learns nothing. A message Twilio delivers twice (its
``MessageSid``) is one contact and is answered once. The webhook's own reply is an empty
TwiML response: the service's answer leaves through the outbox as an SMS (quiet hours,
retries, never twice), and a person's answer comes from the support queue.

The generic SMS gateway posts JSON ``{"id", "from", "text"}`` signed like our own outgoing
webhooks (``X-Lastmile-Signature: t=<unix s>,v1=<hex HMAC-SHA256 of "t.body">``, at most
five minutes old: docs/webhooks.md), with the secret set for provider ``sms``.
"""

from __future__ import annotations

import json
from typing import Annotated, Literal
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Header, Path, Request, Response
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from api.deps import Admin, SessionDep, service_now
from api.errors import ApiError, not_found
from api.limits import read_within
from api.routes.inbound import handle_message
from api.schemas import ErrorBody, Strict
from notify.channels.webhook import SIGNATURE_HEADER, verify_signature
from store.schema import InboundChannelRow

router = APIRouter(tags=["support"], responses={401: {"model": ErrorBody}})

#: A form larger than this is refused unread (Twilio's longest SMS body is 1,600 characters).
MAX_FORM_BYTES = 16_384
MAX_TEXT_CHARS = 4000
Provider = Literal["twilio", "whatsapp", "mailgun", "imap", "sms"]
#: Each provider's settings besides its secret: required, then optional.
CONFIG: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "twilio": ((), ()),
    "whatsapp": (("verify_token", "phone_number_id", "access_token"), ()),
    "mailgun": ((), ()),
    "imap": (("host", "port", "username"), ("folder", "tls")),
    "sms": ((), ()),
}
#: Where each provider posts (``{org}`` the organisation's id); an IMAP mailbox is polled.
WEBHOOK_PATHS: dict[str, str | None] = {
    "twilio": "/v1/inbound/twilio/{org}/sms",
    "whatsapp": "/v1/inbound/whatsapp/{org}",
    "mailgun": "/v1/inbound/mailgun/{org}/email",
    "imap": None,
    "sms": "/v1/inbound/sms/{org}",
}


class ChannelIn(Strict):
    secret: str = Field(
        min_length=16,
        max_length=200,
        description="What the provider signs with: Twilio's auth token, WhatsApp's app "
        "secret, Mailgun's webhook signing key, the SMS gateway's shared secret; for IMAP "
        "the mailbox's password.",
    )
    config: dict[str, str | int] = Field(
        default_factory=dict,
        description="WhatsApp: verify_token, phone_number_id, access_token. IMAP: host, "
        "port, username, folder (INBOX), tls (ssl, starttls or none).",
    )


class ChannelOut(BaseModel):
    provider: str
    webhook_url: str | None = Field(
        description="Where to point the provider's incoming messages (none: polled)."
    )


def channel_row(session: Session, organisation_id: str, provider: str) -> InboundChannelRow | None:
    """The organisation's set-up of one provider, if any."""
    return session.scalars(
        select(InboundChannelRow).where(
            InboundChannelRow.organisation_id == organisation_id,
            InboundChannelRow.provider == provider,
        )
    ).one_or_none()


def channel_rows(session: Session, provider: str) -> list[InboundChannelRow]:
    """Every organisation's set-up of one provider (the mailbox poller's list)."""
    return list(
        session.scalars(
            select(InboundChannelRow)
            .where(InboundChannelRow.provider == provider)
            .order_by(InboundChannelRow.organisation_id)
        )
    )


def webhook_url(request: Request, organisation_id: str, provider: str) -> str | None:
    """The public address the provider posts to, as it signs it."""
    path = WEBHOOK_PATHS[provider]
    if path is None:
        return None
    base: str = request.app.state.settings.public_base_url.rstrip("/")
    return base + path.format(org=organisation_id)


def _config_problems(provider: str, config: dict[str, str | int]) -> list[dict[str, str]]:
    required, optional = CONFIG[provider]
    problems = [
        {"field": f"config.{name}", "message": f"required for {provider}"}
        for name in required
        if str(config.get(name, "")).strip() == ""
    ]
    problems += [
        {"field": f"config.{name}", "message": f"unknown for {provider}"}
        for name in sorted(set(config) - set(required) - set(optional))
    ]
    if provider == "imap":
        port = config.get("port")
        if not str(port).isdigit() or not 0 < int(str(port)) < 65536:
            problems.append({"field": "config.port", "message": "must be a port number"})
        if str(config.get("tls", "ssl")) not in ("ssl", "starttls", "none"):
            problems.append({"field": "config.tls", "message": "ssl, starttls or none"})
    return problems


@router.put(
    "/v1/inbound/channels/{provider}",
    responses={422: {"model": ErrorBody}},
    summary="Set the messaging provider's signing secret (admin); returns the webhook URL.",
)
def put_channel(
    provider: Provider, body: ChannelIn, caller: Admin, session: SessionDep, request: Request
) -> ChannelOut:
    problems = _config_problems(provider, body.config)
    if problems:
        raise ApiError(422, "invalid", f"{provider} channel settings", problems)
    row = channel_row(session, caller.organisation_id, provider)
    if row is None:
        row = InboundChannelRow(organisation_id=caller.organisation_id, provider=provider)
        session.add(row)
    row.secret = body.secret
    row.config = {k: str(v) for k, v in body.config.items()} or None
    row.created_at = service_now(request)
    session.flush()
    return ChannelOut(
        provider=provider, webhook_url=webhook_url(request, caller.organisation_id, provider)
    )


@router.delete(
    "/v1/inbound/channels/{provider}",
    status_code=204,
    responses={404: {"model": ErrorBody}},
    summary="Stop taking messages from the provider (admin).",
)
def delete_channel(provider: Provider, caller: Admin, session: SessionDep) -> Response:
    row = channel_row(session, caller.organisation_id, provider)
    if row is None:
        raise not_found("channel", provider)
    session.delete(row)
    return Response(status_code=204)


async def _raw_body(request: Request) -> bytes:
    """The request's body as sent (the signature covers the fields exactly as sent), read
    here so the route itself runs in the thread pool like every other that uses the store;
    read no further than ``MAX_FORM_BYTES`` (413 beyond)."""
    raw = await read_within(request, MAX_FORM_BYTES)
    if raw is None:
        raise ApiError(413, "too_large", f"body over {MAX_FORM_BYTES} bytes")
    return raw


def forbidden() -> ApiError:
    # One answer for every refusal: an unknown organisation, no channel, a bad signature.
    return ApiError(403, "forbidden", "request not signed by this organisation's provider")


@router.post(
    "/v1/inbound/twilio/{organisation_id}/sms",
    responses={403: {"model": ErrorBody}, 413: {"model": ErrorBody}, 422: {"model": ErrorBody}},
    response_class=Response,
    summary="Twilio's incoming SMS webhook (signed); answers in TwiML.",
)
def twilio_sms(
    organisation_id: Annotated[str, Path(max_length=32)],
    request: Request,
    session: SessionDep,
    raw: Annotated[bytes, Depends(_raw_body)],
    signature: Annotated[str | None, Header(alias="X-Twilio-Signature")] = None,
) -> Response:
    channel = channel_row(session, organisation_id, "twilio")
    if channel is None or not signature:
        raise forbidden()
    try:
        form = dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False))
    except UnicodeDecodeError:
        raise forbidden() from None
    url = webhook_url(request, organisation_id, "twilio") or ""
    if request.url.query:
        url += f"?{request.url.query}"
    if not RequestValidator(channel.secret).validate(url, form, signature):
        raise forbidden()
    problems = [
        {"field": name, "message": "required"}
        for name in ("From", "Body", "MessageSid")
        if not form.get(name)
    ]
    if len(form.get("Body", "")) > MAX_TEXT_CHARS:
        problems.append({"field": "Body", "message": f"at most {MAX_TEXT_CHARS} characters"})
    if problems:
        raise ApiError(422, "invalid", "not a Twilio message", problems)
    handle_message(
        session,
        request.app.state,
        organisation_id,
        "sms",
        form["From"],
        form["Body"],
        provider_message_id=f"twilio:{form['MessageSid']}",
    )
    # Nothing said in the webhook's reply: the answer leaves through the outbox.
    return Response(content=str(MessagingResponse()), media_type="application/xml")


class GatewaySmsIn(Strict):
    id: str = Field(min_length=1, max_length=80, description="The gateway's message id.")
    from_: str = Field(alias="from", min_length=3, max_length=40, description="Sender's number.")
    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)


@router.post(
    "/v1/inbound/sms/{organisation_id}",
    responses={403: {"model": ErrorBody}, 413: {"model": ErrorBody}, 422: {"model": ErrorBody}},
    summary="A generic SMS gateway's incoming message (JSON, signed like our webhooks).",
)
def gateway_sms(
    organisation_id: Annotated[str, Path(max_length=32)],
    request: Request,
    session: SessionDep,
    raw: Annotated[bytes, Depends(_raw_body)],
    signature: Annotated[str | None, Header(alias=SIGNATURE_HEADER)] = None,
) -> dict[str, bool]:
    channel = channel_row(session, organisation_id, "sms")
    now_s = service_now(request).timestamp()
    if (
        channel is None
        or not signature
        or not verify_signature(channel.secret, signature, raw, now_s)
    ):
        raise forbidden()
    try:
        body = GatewaySmsIn.model_validate(json.loads(raw))
    except (ValueError, ValidationError) as exc:
        problems = (
            [
                {"field": ".".join(str(p) for p in e["loc"]) or "body", "message": e["msg"]}
                for e in exc.errors()
            ]
            if isinstance(exc, ValidationError)
            else [{"field": "body", "message": "not JSON"}]
        )
        raise ApiError(422, "invalid", "not a gateway message", problems) from None
    handle_message(
        session,
        request.app.state,
        organisation_id,
        "sms",
        body.from_,
        body.text,
        provider_message_id=f"sms:{body.id}",
    )
    return {"ok": True}

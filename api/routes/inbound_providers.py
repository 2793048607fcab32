"""Customers' messages straight from a messaging provider's webhook (issue 19): Twilio SMS.

An admin gives the service the provider's signing secret (Twilio's auth token) once; Twilio
is then pointed at ``{public base}/v1/inbound/twilio/{organisation id}/sms``. Every request is
checked against Twilio's signature (``X-Twilio-Signature``, computed over the public URL and
the form fields with the tenant's auth token, by Twilio's own library) before anything is
read: a request that is not signed, signed with another secret, or for an organisation with
no Twilio channel gets 403 and learns nothing. A message Twilio delivers twice (its
``MessageSid``) is one contact and gets the same reply. The reply is TwiML: the answer when
the service answers by itself, an empty response when a person will (the message waits in
the support queue).
"""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Header, Path, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from api.deps import Admin, SessionDep, service_now
from api.errors import ApiError, not_found
from api.routes.inbound import handle_message
from api.schemas import ErrorBody, Strict
from store.schema import InboundChannelRow

router = APIRouter(tags=["support"], responses={401: {"model": ErrorBody}})

#: A form larger than this is refused unread (Twilio's longest SMS body is 1,600 characters).
MAX_FORM_BYTES = 16_384
MAX_TEXT_CHARS = 4000
Provider = Literal["twilio"]


class ChannelIn(Strict):
    secret: str = Field(
        min_length=16, max_length=200, description="Twilio: the account's auth token."
    )


class ChannelOut(BaseModel):
    provider: str
    webhook_url: str = Field(description="Where to point the provider's incoming messages.")


def _channel(session: Session, organisation_id: str, provider: str) -> InboundChannelRow | None:
    return session.scalars(
        select(InboundChannelRow).where(
            InboundChannelRow.organisation_id == organisation_id,
            InboundChannelRow.provider == provider,
        )
    ).one_or_none()


def _webhook_url(request: Request, organisation_id: str) -> str:
    base: str = request.app.state.settings.public_base_url.rstrip("/")
    return f"{base}/v1/inbound/twilio/{organisation_id}/sms"


@router.put(
    "/v1/inbound/channels/{provider}",
    responses={422: {"model": ErrorBody}},
    summary="Set the messaging provider's signing secret (admin); returns the webhook URL.",
)
def put_channel(
    provider: Provider, body: ChannelIn, caller: Admin, session: SessionDep, request: Request
) -> ChannelOut:
    row = _channel(session, caller.organisation_id, provider)
    if row is None:
        row = InboundChannelRow(organisation_id=caller.organisation_id, provider=provider)
        session.add(row)
    row.secret = body.secret
    row.created_at = service_now(request)
    session.flush()
    return ChannelOut(provider=provider, webhook_url=_webhook_url(request, caller.organisation_id))


@router.delete(
    "/v1/inbound/channels/{provider}",
    status_code=204,
    responses={404: {"model": ErrorBody}},
    summary="Stop taking messages from the provider (admin).",
)
def delete_channel(provider: Provider, caller: Admin, session: SessionDep) -> Response:
    row = _channel(session, caller.organisation_id, provider)
    if row is None:
        raise not_found("channel", provider)
    session.delete(row)
    return Response(status_code=204)


async def _raw_body(request: Request) -> bytes:
    """The request's body as sent (the signature covers the fields exactly as sent), read
    here so the route itself runs in the thread pool like every other that uses the store."""
    return await request.body()


def _forbidden() -> ApiError:
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
    if len(raw) > MAX_FORM_BYTES:
        raise ApiError(413, "too_large", f"form over {MAX_FORM_BYTES} bytes")
    channel = _channel(session, organisation_id, "twilio")
    if channel is None or not signature:
        raise _forbidden()
    try:
        form = dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False))
    except UnicodeDecodeError:
        raise _forbidden() from None
    url = _webhook_url(request, organisation_id)
    if request.url.query:
        url += f"?{request.url.query}"
    if not RequestValidator(channel.secret).validate(url, form, signature):
        raise _forbidden()
    problems = [
        {"field": name, "message": "required"}
        for name in ("From", "Body", "MessageSid")
        if not form.get(name)
    ]
    if len(form.get("Body", "")) > MAX_TEXT_CHARS:
        problems.append({"field": "Body", "message": f"at most {MAX_TEXT_CHARS} characters"})
    if problems:
        raise ApiError(422, "invalid", "not a Twilio message", problems)
    row = handle_message(
        session,
        request,
        organisation_id,
        "sms",
        form["From"],
        form["Body"],
        provider_message_id=f"twilio:{form['MessageSid']}",
    )
    reply = MessagingResponse()
    if row.answered_by == "auto":
        reply.message(row.answer)
    return Response(content=str(reply), media_type="application/xml")

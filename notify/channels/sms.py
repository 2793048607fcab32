"""SMS through a provider's HTTP API: one adapter in Twilio's request shape, one generic.

Both send the message's idempotency key as an ``Idempotency-Key`` header (and the generic one
in the body too), so a provider that honours it delivers a re-sent message once. A provider
that ignores it may deliver twice when a request times out after it was accepted: the result
is then ``"retry"`` and the outbox sends again.

The sender (``From``) is the tenant's branded SMS sender when it has one, else the number the
adapter was configured with. Numbers must be E.164 (``+393331234567``); anything else is
``"failed"`` without a request.
"""

from __future__ import annotations

from typing import Any

import httpx

from notify.channels.base import (
    E164,
    HttpChannel,
    OutgoingMessage,
    SendResult,
    clip,
    failed,
    http_post,
    http_status_result,
    sent,
)

USER_AGENT = "lastmile-notify/1"


def _check(message: OutgoingMessage, from_: str) -> SendResult | None:
    if not message.phone:
        return failed("sms: the recipient has no phone number")
    if not E164.match(message.phone):
        return failed(f"sms: {message.phone!r} is not an E.164 number (+<country><number>)")
    if not message.sms.strip():
        return failed("sms: the message has no SMS text")
    if not from_:
        return failed("sms: no sender (number or alphanumeric id) configured")
    return None


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


class _HttpSms(HttpChannel):
    what = "sms"

    def __init__(self, timeout_s: float, client: httpx.Client | None) -> None:
        super().__init__(timeout_s, client, USER_AGENT)


class TwilioSms(_HttpSms):
    """Twilio's Messages API (and providers that copy its shape).

    ``POST {base_url}/2010-04-01/Accounts/{sid}/Messages.json``, form-encoded ``To``, ``From``,
    ``Body``, HTTP basic auth (account sid, auth token). Success is 201 with the message ``sid``.
    """

    what = "twilio sms"

    def __init__(
        self,
        base_url: str,
        account_sid: str,
        auth_token: str,
        from_number: str,
        *,
        timeout_s: float = 10.0,
        client: httpx.Client | None = None,
    ) -> None:
        super().__init__(timeout_s, client)
        self.url = f"{base_url.rstrip('/')}/2010-04-01/Accounts/{account_sid}/Messages.json"
        self.auth = httpx.BasicAuth(account_sid, auth_token)
        self.from_number = from_number

    def send(self, message: OutgoingMessage) -> SendResult:
        from_ = message.sms_sender or self.from_number
        if (problem := _check(message, from_)) is not None:
            return problem
        response = http_post(
            self.client,
            self.what,
            self.url,
            data={"To": message.phone, "From": from_, "Body": message.sms},
            auth=self.auth,
            headers={"Idempotency-Key": message.idempotency_key},
        )
        if isinstance(response, SendResult):
            return response
        body = _json(response)
        # Twilio's error body: {"code": 21211, "message": "The 'To' number ... is not valid"}
        explain = (
            f"Twilio error {body['code']}: {clip(str(body.get('message', '')))}"
            if "code" in body
            else None
        )
        if (bad := http_status_result(response, self.what, explain)) is not None:
            return bad
        sid = body.get("sid")
        return sent(f"{self.what}: accepted ({response.status_code})", str(sid) if sid else None)


class GenericSms(_HttpSms):
    """A provider taking JSON ``{to, from, text, idempotency_key}`` with a bearer token.

    Any 2xx is success; the provider's id is read from ``id`` (or ``message_id``) if the
    response has a JSON body.
    """

    what = "sms"

    def __init__(
        self,
        url: str,
        token: str,
        from_: str,
        *,
        timeout_s: float = 10.0,
        client: httpx.Client | None = None,
    ) -> None:
        super().__init__(timeout_s, client)
        self.url = url
        self.token = token
        self.from_ = from_

    def send(self, message: OutgoingMessage) -> SendResult:
        from_ = message.sms_sender or self.from_
        if (problem := _check(message, from_)) is not None:
            return problem
        response = http_post(
            self.client,
            self.what,
            self.url,
            json={
                "to": message.phone,
                "from": from_,
                "text": message.sms,
                "idempotency_key": message.idempotency_key,
            },
            headers={
                "Authorization": f"Bearer {self.token}",
                "Idempotency-Key": message.idempotency_key,
            },
        )
        if isinstance(response, SendResult):
            return response
        if (bad := http_status_result(response, self.what)) is not None:
            return bad
        body = _json(response)
        provider_id = body.get("id", body.get("message_id"))
        return sent(
            f"{self.what}: accepted ({response.status_code})",
            str(provider_id) if provider_id is not None else None,
        )

"""Webhooks: the notification's JSON payload POSTed to the tenant's URL, signed with the
tenant's own secrets.

Headers (the scheme receivers verify is documented in ``docs/webhooks.md``):

- ``X-Lastmile-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>``, one
  ``v1`` per valid signing secret of the message's organisation (newest first: while a secret
  is rotated out, two or more), given with the message (``OutgoingMessage.signing_secrets``,
  filled in by the sender from the store). There is no service-wide secret.
- ``Idempotency-Key: <key>``: the same on every attempt of one notification; receivers
  dedupe on it (a retry after a timeout may deliver a notification the receiver already has).

Where it goes (``notify.channels.ssrf``): the URL's host is resolved once, every address is
checked (no loopback, private, link-local, ... unless ``allow_private``), and the request
connects to the checked address with the URL's ``Host`` header and TLS server name. Proxy
settings from the environment are not used (the proxy would do its own lookup); connections
are not kept alive between messages (each one is made to the address checked for it).

Any 2xx is success. 408, 429, 5xx, timeouts, network errors and a name that does not resolve
are ``"retry"`` (the outbox retries with backoff; ``SendResult.retry_after_s`` carries a
``Retry-After``); other 4xx, redirects and a refused address are ``"failed"``. The receiver's
answer is never read nor recorded: a result says the status code and a fixed reason (the URL
is the tenant's, and it must not be a way to read what the service can reach).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import time
from collections.abc import Callable, Sequence
from http import HTTPStatus
from typing import Any

import httpx

from notify.channels.base import (
    HttpChannel,
    OutgoingMessage,
    SendResult,
    failed,
    http_status_result,
    retry,
    sent,
)
from notify.channels.ssrf import (
    DestinationRefusedError,
    Resolver,
    UnresolvedError,
    parse_target,
    pinned_request,
    resolve_destination,
)

SIGNATURE_HEADER = "X-Lastmile-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
#: Receivers reject signatures whose timestamp is further than this from their clock.
DEFAULT_TOLERANCE_S = 300
USER_AGENT = "lastmile-webhooks/1"


def _key(secret: str | bytes) -> bytes:
    return secret.encode("utf-8") if isinstance(secret, str) else secret


def body_bytes(payload: dict[str, Any]) -> bytes:
    """The exact bytes sent (and signed): compact UTF-8 JSON with sorted keys."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


def signature(secret: str | bytes, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``"<timestamp>." + body``."""
    return hmac.new(_key(secret), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(secret: str | bytes, timestamp: int, body: bytes) -> str:
    """The ``X-Lastmile-Signature`` value: ``t=<timestamp>,v1=<signature>``."""
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"


def signatures_header(secrets: Sequence[str | bytes], timestamp: int, body: bytes) -> str:
    """``t=<timestamp>,v1=<signature>,v1=...``: one ``v1`` per secret, in the order given."""
    return ",".join([f"t={timestamp}", *(f"v1={signature(s, timestamp, body)}" for s in secrets)])


def verify_signature(
    secret: str | bytes,
    header: str,
    body: bytes,
    now: float,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` at a time within ``tolerance_s`` of
    ``now`` (unix seconds). Constant-time comparison; any ``v1`` in the header may match (there
    can be several while a secret is rotated); unknown schemes are ignored."""
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if name == "t":
            try:
                timestamp = int(value)
            except ValueError:
                return False
        elif name == "v1":
            candidates.append(value)
    if timestamp is None or not candidates or abs(now - timestamp) > tolerance_s:
        return False
    expected = signature(secret, timestamp, body)
    # Check every candidate (no early exit), each in constant time.
    matches = [hmac.compare_digest(expected, c) for c in candidates]
    return any(matches)


#: What a result says of an HTTP answer: the status code's standard phrase (and for some, what
#: to check), never anything the receiver sent.
HINTS = {
    401: "check that the receiver verifies with one of the organisation's signing secrets",
    403: "check that the receiver verifies with one of the organisation's signing secrets",
    404: "check webhook_url",
    410: "check webhook_url",
}
NO_SECRET = (
    "webhook: the organisation has no valid webhook signing secret (an admin creates one: "
    "POST /v1/organisation/webhook-secrets)"
)


def _reason(code: int) -> str:
    try:
        phrase = HTTPStatus(code).phrase
    except ValueError:
        phrase = "unknown status"
    hint = HINTS.get(code)
    return f"{phrase} ({hint})" if hint else phrase


def _send_unread(
    client: httpx.Client, build: Callable[[], httpx.Request]
) -> httpx.Response | SendResult:
    """Send, read the status and headers only (never the body), and close. Errors become
    ``retry``/``failed`` naming only their kind: a protocol error's text can quote what the
    other side sent (a banner, an error page)."""
    try:
        response = client.send(build(), stream=True)
    except httpx.TimeoutException as exc:
        return retry(f"webhook: timed out ({type(exc).__name__})")
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        return failed(f"webhook: the URL cannot be used ({type(exc).__name__})")
    except httpx.TransportError as exc:
        return retry(f"webhook: network error ({type(exc).__name__})")
    response.close()
    return response


class WebhookChannel(HttpChannel):
    """POSTs ``message.payload`` to ``message.webhook_url``, signed with every secret in
    ``message.signing_secrets`` (the organisation's; a message without one is not sent).

    ``allow_private`` lets webhooks go to loopback, private and other internal addresses
    (``LASTMILE_WEBHOOK_ALLOW_PRIVATE``: tests and the demo only). ``resolver`` is
    ``socket.getaddrinfo``-shaped (tests give their own)."""

    what = "webhook"

    def __init__(
        self,
        timeout_s: float = 10.0,
        *,
        allow_private: bool = False,
        client: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
        resolver: Resolver | None = None,
    ) -> None:
        super().__init__(
            timeout_s,
            client,
            USER_AGENT,
            trust_env=False,
            limits=httpx.Limits(max_keepalive_connections=0),
        )
        self.allow_private = allow_private
        self.clock = clock
        self.resolver = resolver

    def send(self, message: OutgoingMessage) -> SendResult:
        if not message.webhook_url:
            return failed("webhook: the recipient has no webhook URL")
        if not message.signing_secrets or not all(message.signing_secrets):
            return failed(NO_SECRET)
        try:
            target = parse_target(message.webhook_url)
        except ValueError as exc:
            return failed(f"webhook: webhook_url {exc}")
        try:
            address = resolve_destination(
                target,
                allow_private=self.allow_private,
                resolver=self.resolver or socket.getaddrinfo,
            )
        except DestinationRefusedError as exc:
            return failed(f"webhook: not sent: {exc}")
        except UnresolvedError as exc:
            return retry(f"webhook: {exc}")
        body = body_bytes(message.payload)
        timestamp = int(self.clock())
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signatures_header(message.signing_secrets, timestamp, body),
            IDEMPOTENCY_HEADER: message.idempotency_key,
        }
        response = _send_unread(
            self.client,
            lambda: pinned_request(self.client, target, address, content=body, headers=headers),
        )
        if isinstance(response, SendResult):
            return response
        code = response.status_code
        if (bad := http_status_result(response, self.what, _reason(code), quote=False)) is not None:
            return bad
        return sent(f"webhook: accepted ({code})")

"""Webhooks: the notification's JSON payload POSTed to the customer's (or tenant's) URL, signed.

Headers (the scheme receivers verify is documented in ``docs/webhooks.md``):

- ``X-Lastmile-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>``
- ``Idempotency-Key: <key>``: the same on every attempt of one notification; receivers
  dedupe on it (a retry after a timeout may deliver a notification the receiver already has).

Any 2xx is success. 408, 429, 5xx, timeouts and network errors are ``"retry"`` (the outbox
retries with backoff; ``SendResult.retry_after_s`` carries a ``Retry-After``); other 4xx and
redirects are ``"failed"``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx

from notify.channels.base import (
    HttpChannel,
    OutgoingMessage,
    SendResult,
    failed,
    http_post,
    http_status_result,
    sent,
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


class WebhookChannel(HttpChannel):
    """POSTs ``message.payload`` to ``message.webhook_url``, signed with the tenant's secret."""

    what = "webhook"

    def __init__(
        self,
        secret: str | bytes,
        timeout_s: float = 10.0,
        *,
        client: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not _key(secret):
            raise ValueError("a webhook secret must not be empty")
        super().__init__(timeout_s, client, USER_AGENT)
        self.secret = secret
        self.clock = clock

    def send(self, message: OutgoingMessage) -> SendResult:
        url = message.webhook_url
        if not url:
            return failed("webhook: the recipient has no webhook URL")
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            return failed(f"webhook: {url!r} is not an http(s) URL")
        body = body_bytes(message.payload)
        timestamp = int(self.clock())
        response = http_post(
            self.client,
            self.what,
            url,
            content=body,
            headers={
                "Content-Type": "application/json",
                SIGNATURE_HEADER: signature_header(self.secret, timestamp, body),
                IDEMPOTENCY_HEADER: message.idempotency_key,
            },
        )
        if isinstance(response, SendResult):
            return response
        if (bad := http_status_result(response, self.what)) is not None:
            return bad
        return sent(f"webhook: accepted ({response.status_code})")

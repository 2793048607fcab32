"""What every delivery channel takes and returns, and how delivery failures are classified.

A channel is a thin adapter: it gets one :class:`OutgoingMessage`, makes one attempt and says
what happened in a :class:`SendResult`. It never raises for a delivery problem (a refused
address, a provider error, a network failure); retrying with backoff is the outbox's job:

- ``"sent"``: the provider (SMTP server, SMS API, webhook receiver, MQTT broker) accepted it.
- ``"retry"``: it may work later: network errors, timeouts, HTTP 408/429/5xx, SMTP 4xx.
- ``"failed"``: it will not work as it is: HTTP 4xx, SMTP 5xx, a bad or missing address, a
  configuration the provider refuses (credentials, TLS).

Every message carries an idempotency key (the outbox's per-channel key, ``order:trigger:
version:channel``). Channels whose provider accepts one send it (``Idempotency-Key``), so a
re-send after a crash is not delivered twice; SMTP and MQTT have none (see each module).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Protocol, Self

import httpx

from notify.settings import Channel as ChannelKind

if TYPE_CHECKING:
    from notify.policy import Message
    from notify.render import Rendered
    from notify.settings import Branding, Recipient

Status = Literal["sent", "retry", "failed"]
#: Longest provider text quoted in a result's detail.
DETAIL_MAX = 300
E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


@dataclass(frozen=True, slots=True)
class SendResult:
    """The outcome of one delivery attempt."""

    status: Status
    detail: str
    #: The provider's id for the message (SMS sid, SMTP queue reply, MQTT mid), when it gave one.
    provider_id: str | None = None
    #: Seconds the provider asked us to wait before trying again (HTTP ``Retry-After``).
    retry_after_s: float | None = None

    @property
    def ok(self) -> bool:
        return self.status == "sent"


def sent(detail: str, provider_id: str | None = None) -> SendResult:
    return SendResult("sent", detail, provider_id)


def retry(detail: str, retry_after_s: float | None = None) -> SendResult:
    return SendResult("retry", detail, None, retry_after_s)


def failed(detail: str) -> SendResult:
    return SendResult("failed", detail)


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """One rendered notification for one channel and one recipient, ready to send."""

    #: Unique per notification and channel; the same on every attempt.
    idempotency_key: str
    channel: ChannelKind
    # Where to.
    email: str | None = None
    phone: str | None = None
    webhook_url: str | None = None
    #: The customer's tracking token: push goes to ``customers/{token}/updates``.
    push_token: str | None = None
    # What.
    subject: str = ""
    text: str = ""
    html: str = ""
    sms: str = ""
    payload: dict[str, Any] = field(default_factory=dict, hash=False)
    push: dict[str, Any] = field(default_factory=dict, hash=False)
    # From whom.
    brand: str = ""
    sender_email: str = ""
    sender_name: str = ""
    sms_sender: str = ""
    #: The tenant's valid webhook signing secrets, newest first (the sender adds them to
    #: webhook messages; each one signs). Kept out of the message's repr.
    signing_secrets: tuple[str | bytes, ...] = field(default=(), repr=False, compare=False)
    #: A reply to the customer's own message (``text`` is the answer): on WhatsApp a plain
    #: session message inside the customer's 24-hour window rather than a template.
    answer: bool = False
    #: The tenant's own provider settings where the provider is per tenant (WhatsApp:
    #: ``phone_number_id``, ``access_token``); filled by the sender, kept out of the repr.
    credentials: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def build(
        cls,
        message: Message,
        rendered: Rendered,
        recipient: Recipient,
        branding: Branding,
    ) -> OutgoingMessage:
        """The outgoing message for a policy message, its rendering and its recipient."""
        return cls(
            idempotency_key=message.outbox_key,
            channel=message.channel,
            email=recipient.email,
            phone=recipient.phone,
            webhook_url=recipient.webhook_url,
            push_token=recipient.push_topic,
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            sms=rendered.sms,
            payload=dict(rendered.payload),
            push=dict(rendered.push),
            brand=branding.name,
            sender_email=branding.sender_email,
            sender_name=branding.sender_name or branding.name,
            sms_sender=branding.sms_sender,
        )


class Channel(Protocol):
    """A delivery channel: one attempt per call, never raising for a delivery problem."""

    def send(self, message: OutgoingMessage) -> SendResult: ...


def clip(text: str, limit: int = DETAIL_MAX) -> str:
    """Provider text for a detail: one line, at most ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        at = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return max(0.0, (at - (now or datetime.now(UTC))).total_seconds())


def http_status_result(
    response: httpx.Response, what: str, explain: str | None = None, *, quote: bool = True
) -> SendResult | None:
    """``retry``/``failed`` for an unsuccessful HTTP response; None for a 2xx.

    The detail quotes ``explain`` if given, else the start of the response body; with
    ``quote=False`` nothing the other side sent (body, redirect target) is quoted."""
    code = response.status_code
    if 200 <= code < 300:
        return None
    if explain is not None:
        body = explain
    else:
        body = clip(response.text) if quote and response.content else ""
    detail = f"{what}: HTTP {code}" + (f": {body}" if body else "")
    if code in (408, 429) or code >= 500:
        return retry(detail, retry_after(response.headers.get("Retry-After")))
    if 300 <= code < 400:
        location = response.headers.get("Location", "?") if quote else "elsewhere"
        return failed(f"{detail} (redirect to {location} not followed: configure that URL)")
    return failed(detail)


def http_post(
    client: httpx.Client, what: str, url: str, **kwargs: Any
) -> httpx.Response | SendResult:
    """POST, turning timeouts and network errors into ``retry`` and a bad URL into ``failed``."""
    try:
        return client.post(url, **kwargs)
    except httpx.TimeoutException as exc:
        return retry(f"{what}: timed out ({type(exc).__name__})")
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        return failed(f"{what}: bad URL {url!r}: {exc}")
    except httpx.TransportError as exc:
        return retry(f"{what}: network error: {type(exc).__name__}: {clip(str(exc))}")


class HttpChannel:
    """An HTTP channel's client: its own (closed with the channel) unless one is given."""

    def __init__(
        self, timeout_s: float, client: httpx.Client | None, user_agent: str, **options: Any
    ) -> None:
        """``options``: more ``httpx.Client`` arguments for a client of its own."""
        self._own_client = client is None
        self.client = client or httpx.Client(
            timeout=timeout_s, headers={"User-Agent": user_agent}, **options
        )

    def close(self) -> None:
        if self._own_client:
            self.client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.close()

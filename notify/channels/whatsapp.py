"""WhatsApp Business (Cloud API) through pywa: notifications as an approved utility template,
the service's answers to the customer's own messages as plain text (issue 19).

WhatsApp lets a business open a conversation only with a template Meta approved; within 24
hours of the customer's last message any text may be sent (a session message). So:

- A notification (``answer`` False) is the template :data:`TEMPLATE` (category UTILITY) in
  the language of the customer's locale, its one body parameter ``{{1}}`` the notification's
  short text (what the SMS says). Where the customer can still act before the van comes
  (:data:`NEIGHBOUR_TRIGGERS`) it is :data:`TEMPLATE_NEIGHBOUR` instead: the same body and one
  quick-reply button ("Leave with a neighbour", in each language) whose payload,
  ``neighbour:<order row id>``, comes back with the customer's tap to the incoming webhook
  (``api/routes/inbound_whatsapp.py``). A template's buttons are fixed when Meta approves
  it, so "with the button" and "without" are two templates; a tenant has both approved in
  each language its customers speak.
- An answer (``answer`` True) is a text message: the customer wrote within the 24 hours.

Credentials are the tenant's (``credentials``: ``phone_number_id``, ``access_token``, stored
by ``PUT /v1/inbound/channels/whatsapp`` and added by the outbox sender); each (number,
token) gets its own pywa client, kept for the next message (pywa puts the token on its HTTP
client, so clients are never shared between tenants). pywa always talks to
graph.facebook.com; ``graph_url`` sends every request elsewhere (a proxy, a test double)
through the clients' transport, which rewrites each request's scheme, host and port.

Outcomes follow :mod:`notify.channels.base`: HTTP 408/429/5xx, Meta's throttling errors and
errors Meta marks transient, timeouts and network errors are ``retry``; other errors
(a template not approved in that language, an expired token, a number not on WhatsApp) are
``failed`` with Meta's code and message. The Cloud API takes no idempotency key: a message
whose acceptance is lost on the way back is sent again (at-least-once, like SMTP); the
outbox key rides along as ``biz_opaque_callback_data`` so Meta's status updates name it.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Self

import httpx
from pywa.client import WhatsApp
from pywa.errors import ThrottlingError, WhatsAppError
from pywa.types.templates import BaseParams, BodyText, QuickReplyButton, TemplateLanguage

from notify.channels.base import (
    E164,
    OutgoingMessage,
    SendResult,
    clip,
    failed,
    retry,
    retry_after,
    sent,
)

WHAT = "whatsapp"
#: The approved utility template of a notification: body ``{{1}}``, no buttons.
TEMPLATE = "delivery_update"
#: The same with one quick-reply button, "Leave with a neighbour" (index 0).
TEMPLATE_NEIGHBOUR = "delivery_update_neighbour"
#: Notifications sent while the van is still coming: the customer may say where to leave it.
NEIGHBOUR_TRIGGERS = frozenset(
    {"out_for_delivery", "stops_away", "minutes_away", "eta_changed", "window_broken"}
)
#: A quick-reply payload ``neighbour:<order row id>`` (the row id, unique across tenants).
NEIGHBOUR_PREFIX = "neighbour:"
#: What the tenant's WhatsApp set-up must give for a message to leave.
CREDENTIALS = ("phone_number_id", "access_token")
#: Tenants' clients kept at once (least recently used closed first).
MAX_CLIENTS = 64
_NOISE = str.maketrans("", "", " -./()\u00a0")
_LANGUAGES: dict[str, TemplateLanguage] = {str(m.value): m for m in TemplateLanguage}
#: pywa declares ``BodyText.params`` without ``self`` (it is called on the class or on an
#: instance); typed here as what it is when called on the class.
_body_params: Callable[..., BaseParams] = BodyText.params


def _no_debug(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.INFO


# pywa logs each request's body and each answer (numbers, texts) and the recipient at DEBUG:
# never kept, whatever level the service's loggers are set to (a filter, not a level).
for _name, _logger in list(logging.root.manager.loggerDict.items()):
    if (_name == "pywa" or _name.startswith("pywa.")) and isinstance(_logger, logging.Logger):
        _logger.addFilter(_no_debug)  # adding it again is a no-op


def neighbour_payload(order_row_id: str) -> str:
    """The quick-reply payload that names an order (its store row id)."""
    return NEIGHBOUR_PREFIX + order_row_id


def international(phone: str) -> str:
    """The number as the shop may have typed it (``+39 02 1234-5678``, ``0039...``) in E.164
    form when it is one: spaces, dashes, dots, slashes and brackets dropped, 00 as +."""
    digits = phone.strip().translate(_NOISE)
    return "+" + digits[2:] if digits.startswith("00") else digits


def template_language(locale: str) -> TemplateLanguage:
    """The template translation for a locale (``it``, ``en_GB``, ``pt-BR``): its language
    code, English when WhatsApp has none of that name."""
    code = locale.replace("-", "_").split("_")[0].lower()
    return _LANGUAGES.get(code, TemplateLanguage.ENGLISH)


def graph_target(graph_url: str) -> httpx.URL:
    """``graph_url`` parsed, or ValueError when it is no http(s) URL with a host."""
    try:
        target = httpx.URL(graph_url)
    except httpx.InvalidURL as exc:
        raise ValueError(f"graph_url is not a URL: {graph_url!r}: {exc}") from None
    if target.scheme not in ("http", "https") or not target.host:
        raise ValueError(f"graph_url must be an http(s) URL with a host: {graph_url!r}")
    return target


class GraphTransport(httpx.BaseTransport):
    """Sends each request to ``graph_url``'s scheme, host and port (its path, if any, before
    the request's own) instead of the host pywa wrote; with no ``graph_url``, as it is.

    ``inner`` carries the requests (default: a transport of its own, closed with this one; a
    given one is the caller's to close)."""

    def __init__(
        self, graph_url: str | None = None, inner: httpx.BaseTransport | None = None
    ) -> None:
        self._target = graph_target(graph_url) if graph_url is not None else None
        self._own_inner = inner is None
        self._inner = inner if inner is not None else httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        target = self._target
        if target is not None:
            request.url = request.url.copy_with(
                scheme=target.scheme,
                host=target.host,
                port=target.port,
                path=target.path.rstrip("/") + request.url.path,
            )
            # A proxy or a virtual host routes on Host, which httpx set for the old URL.
            request.headers["Host"] = request.url.netloc.decode("ascii")
        return self._inner.handle_request(request)

    def close(self) -> None:
        if self._own_inner:
            self._inner.close()


class WhatsAppChannel:
    """Sends one message per call with the tenant's credentials; see the module docstring.

    ``graph_url``: where the Graph API is (default Meta's); ``transport``: the HTTP transport
    under every tenant's client (tests; default httpx's, which honours proxy settings in
    the environment when there is no ``graph_url``)."""

    def __init__(
        self,
        graph_url: str | None = None,
        *,
        timeout_s: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        max_clients: int = MAX_CLIENTS,
    ) -> None:
        if timeout_s <= 0 or max_clients < 1:
            raise ValueError("timeout_s > 0, max_clients >= 1")
        if graph_url is not None:
            graph_target(graph_url)  # a wrong setting fails at start-up, not at each send
        self.graph_url = graph_url
        self.timeout_s = timeout_s
        self.max_clients = max_clients
        self._transport = transport
        self._clients: OrderedDict[tuple[str, str], tuple[WhatsApp, httpx.Client]] = OrderedDict()
        self._lock = threading.Lock()

    def send(self, message: OutgoingMessage) -> SendResult:
        if (problem := _check(message)) is not None:
            return problem
        phone_id = message.credentials["phone_number_id"].strip()
        wa = self._client(phone_id, message.credentials["access_token"].strip())
        to = international(message.phone or "").removeprefix("+")
        try:
            if message.answer:
                out = wa.send_message(to=to, text=message.text, tracker=message.idempotency_key)
                kind = "text"
            else:
                name, params = _template(message)
                locale = str(message.payload.get("locale") or "en")
                out = wa.send_template(
                    to=to,
                    name=name,
                    language=template_language(locale),
                    params=params,
                    tracker=message.idempotency_key,
                )
                kind = f"template {name}"
        except WhatsAppError as exc:
            return _error_result(exc)
        except httpx.TimeoutException as exc:
            return retry(f"{WHAT}: timed out ({type(exc).__name__})")
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            return failed(f"{WHAT}: bad Graph API URL: {clip(str(exc))}")
        except httpx.TransportError as exc:
            return retry(f"{WHAT}: network error: {type(exc).__name__}: {clip(str(exc))}")
        except (httpx.HTTPError, ValueError, KeyError, TypeError, IndexError) as exc:
            # An answer of an unexpected shape (or pywa refusing the request): the message may
            # have been accepted, and sending it again would not change what comes back.
            return failed(
                f"{WHAT}: unexpected Graph API answer: {type(exc).__name__}: {clip(str(exc))}"
            )
        return sent(f"{WHAT}: {kind} accepted", out.id or None)

    def _client(self, phone_id: str, token: str) -> WhatsApp:
        key = (phone_id, token)
        with self._lock:
            found = self._clients.get(key)
            if found is not None:
                self._clients.move_to_end(key)
                return found[0]
            transport: httpx.BaseTransport | None = None
            if self.graph_url is not None or self._transport is not None:
                transport = GraphTransport(self.graph_url, self._transport)
            session = httpx.Client(timeout=self.timeout_s, transport=transport)
            wa = WhatsApp(phone_id=phone_id, token=token, session=session)
            self._clients[key] = (wa, session)
            while len(self._clients) > self.max_clients:
                _, (_, oldest) = self._clients.popitem(last=False)
                oldest.close()
            return wa

    def close(self) -> None:
        """Close every tenant's client."""
        with self._lock:
            clients = [session for _, session in self._clients.values()]
            self._clients.clear()
        for session in clients:
            session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.close()


def _check(message: OutgoingMessage) -> SendResult | None:
    credentials: Mapping[str, str] = message.credentials or {}
    missing = [name for name in CREDENTIALS if not str(credentials.get(name, "")).strip()]
    if missing:
        return failed(
            f"{WHAT}: the organisation's WhatsApp set-up has no {' or '.join(missing)} "
            "(PUT /v1/inbound/channels/whatsapp)"
        )
    if not message.phone:
        return failed(f"{WHAT}: the recipient has no phone number")
    if not E164.match(international(message.phone)):
        return failed(f"{WHAT}: {message.phone!r} is not an E.164 number (+<country><number>)")
    text = message.text if message.answer else message.sms
    if not text.strip():
        what = "answer" if message.answer else "short (SMS) text"
        return failed(f"{WHAT}: the message has no {what}")
    return None


def _template(message: OutgoingMessage) -> tuple[str, list[BaseParams]]:
    """The template's name and parameters for a notification."""
    # Meta refuses a parameter with a newline, a tab or more than four spaces in a row.
    body = " ".join(message.sms.split())
    params: list[BaseParams] = [_body_params(body)]
    if str(message.payload.get("trigger", "")) not in NEIGHBOUR_TRIGGERS:
        return TEMPLATE, params
    # The key is ``<order row id>:<trigger>:<version>:<channel>``.
    order_row_id = message.idempotency_key.split(":", 1)[0]
    params.append(QuickReplyButton.params(callback_data=neighbour_payload(order_row_id), index=0))
    return TEMPLATE_NEIGHBOUR, params


def _error_result(exc: WhatsAppError) -> SendResult:
    """``retry`` or ``failed`` for an error the Graph API answered."""
    response = exc.raw_response
    status = response.status_code if response is not None else None
    detail = f"{WHAT}: " + (f"HTTP {status}: " if status is not None else "")
    detail += f"error {exc.code}: {clip(exc.message)}"
    if exc.details:
        detail += f" ({clip(str(exc.details))})"
    transient = isinstance(exc, ThrottlingError) or bool(exc.is_transient)
    if transient or status in (408, 429) or (status is not None and status >= 500):
        wait = retry_after(response.headers.get("Retry-After")) if response is not None else None
        return retry(clip(detail), wait)
    return failed(clip(detail))

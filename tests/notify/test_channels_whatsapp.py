"""The WhatsApp channel against a real local stand-in of the Graph API: a notification is the
approved template in the customer's language (with the "leave with a neighbour" button while
the van is still coming), an answer is a plain text message; each tenant's number and token
are used for its own messages only; Meta's errors are classified as retry or failed."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx
import pytest

from notify.channels.base import OutgoingMessage
from notify.channels.whatsapp import (
    TEMPLATE,
    TEMPLATE_NEIGHBOUR,
    GraphTransport,
    WhatsAppChannel,
    template_language,
)
from notify.settings import Channel
from tests.api.graph_api_server import GraphApiServer, graph_api
from tests.notify.test_channels_http import serve, stop

pytestmark = pytest.mark.integration

PHONE_ID = "106540352242922"
TOKEN = "EAAGm0PX4ZCpsBAtenant-one-token"
CREDENTIALS = {"phone_number_id": PHONE_ID, "access_token": TOKEN}
KEY = "0f3c9a7e5b2d4c1a8e6f7a9b0c1d2e3f:out_for_delivery:1:whatsapp"


@pytest.fixture
def graph() -> Iterator[GraphApiServer]:
    with graph_api() as server:
        server.allow(PHONE_ID, TOKEN)
        yield server


@pytest.fixture
def channel(graph: GraphApiServer) -> Iterator[WhatsAppChannel]:
    impl = WhatsAppChannel(graph.url, timeout_s=5)
    yield impl
    impl.close()


def notification(
    trigger: str = "out_for_delivery", locale: str = "it", **fields: Any
) -> OutgoingMessage:
    options: dict[str, Any] = {
        "idempotency_key": KEY.replace("out_for_delivery", trigger),
        "channel": Channel.WHATSAPP,
        "phone": "+393471234567",
        "sms": "Acme: il tuo ordine REF-7 è in consegna,\narrivo tra le 14:00 e le 14:30.",
        "payload": {"trigger": trigger, "locale": locale, "order_id": "A-7"},
        "credentials": CREDENTIALS,
        **fields,
    }
    return OutgoingMessage(**options)


def answer(text: str = "Your order is on its way: expected 14:00-14:30.") -> OutgoingMessage:
    return notification("answer", text=text, sms=text, answer=True)


def test_a_notification_is_the_template_with_the_neighbour_button(
    channel: WhatsAppChannel, graph: GraphApiServer
) -> None:
    result = channel.send(notification())
    assert result.status == "sent", result
    assert result.provider_id is not None
    assert result.provider_id.startswith("wamid.")
    [request] = graph.requests
    assert request.path.endswith(f"/{PHONE_ID}/messages")
    assert request.token == TOKEN
    body = request.body
    assert (body["messaging_product"], body["type"], body["to"]) == (
        "whatsapp",
        "template",
        "393471234567",
    )
    template = body["template"]
    assert template["name"] == TEMPLATE_NEIGHBOUR
    assert template["language"] == {"code": "it"}
    text, button = template["components"]
    # Meta refuses a parameter with a line break: the text is one line.
    assert text == {
        "type": "BODY",
        "parameters": [
            {
                "type": "text",
                "text": "Acme: il tuo ordine REF-7 è in consegna, arrivo tra le 14:00 e le 14:30.",
            }
        ],
    }
    assert button["sub_type"] == "QUICK_REPLY"
    assert button["index"] == 0
    assert button["parameters"] == [
        {"type": "payload", "payload": "neighbour:0f3c9a7e5b2d4c1a8e6f7a9b0c1d2e3f"}
    ]
    # Meta's status updates for the message name the outbox row.
    assert body["biz_opaque_callback_data"] == KEY


@pytest.mark.parametrize(
    ("trigger", "button"),
    [
        ("plan_confirmed", False),
        ("out_for_delivery", True),
        ("stops_away", True),
        ("minutes_away", True),
        ("eta_changed", True),
        ("window_broken", True),
        ("arrived", False),
        ("delivered", False),
        ("failed", False),
        ("rescheduled", False),
    ],
)
def test_the_button_only_while_the_van_is_still_coming(
    channel: WhatsAppChannel, graph: GraphApiServer, trigger: str, button: bool
) -> None:
    assert channel.send(notification(trigger, locale="en_GB")).ok
    [body] = graph.messages()
    template = body["template"]
    assert template["name"] == (TEMPLATE_NEIGHBOUR if button else TEMPLATE)
    assert template["language"] == {"code": "en"}
    assert len(template["components"]) == (2 if button else 1)


@pytest.mark.parametrize(
    ("locale", "code"),
    [
        ("en", "en"),
        ("en_GB", "en"),
        ("it", "it"),
        ("es", "es"),
        ("fr_BE", "fr"),
        ("nl", "nl"),
        ("ru", "ru"),
        ("pt-BR", "en"),  # WhatsApp has pt_BR and pt_PT, no plain "pt"
        ("", "en"),
        ("zz", "en"),
    ],
)
def test_template_language_is_the_locales_language(locale: str, code: str) -> None:
    assert template_language(locale).value == code


def test_an_answer_is_a_plain_text_message(channel: WhatsAppChannel, graph: GraphApiServer) -> None:
    result = channel.send(answer("Il tuo ordine è in viaggio: https://t.example/t/abc"))
    assert result.ok, result
    [body] = graph.messages()
    assert body["type"] == "text"
    assert body["to"] == "393471234567"
    assert body["text"]["body"] == "Il tuo ordine è in viaggio: https://t.example/t/abc"
    assert "template" not in body


@pytest.mark.parametrize(
    ("failure", "status", "expected", "code"),
    [
        ("throughput", 429, "retry", "130429"),
        ("server", 500, "retry", "131000"),
        ("pair_rate", 400, "retry", "131056"),  # Meta's throttling, though HTTP 400
        ("template", 400, "failed", "132001"),
    ],
)
def test_graph_api_errors_are_classified(
    channel: WhatsAppChannel,
    graph: GraphApiServer,
    failure: str,
    status: int,
    expected: str,
    code: str,
) -> None:
    graph.fail(failure, times=1)
    result = channel.send(notification())
    assert result.status == expected, result
    assert f"HTTP {status}" in result.detail
    assert code in result.detail
    assert result.provider_id is None
    # Once the Graph API takes it again, the same message goes.
    assert channel.send(notification()).ok


def test_retry_after_is_kept(channel: WhatsAppChannel, graph: GraphApiServer) -> None:
    graph.fail(429, retry_after="120")
    result = channel.send(notification())
    assert (result.status, result.retry_after_s) == ("retry", 120.0)


def test_a_wrong_token_fails(graph: GraphApiServer) -> None:
    with WhatsAppChannel(graph.url) as impl:
        wrong = {**CREDENTIALS, "access_token": "EAAexpired"}
        result = impl.send(notification(credentials=wrong))
    assert result.status == "failed"
    assert "HTTP 401" in result.detail
    assert "error 190" in result.detail
    assert "EAAexpired" not in result.detail


@pytest.mark.parametrize(
    ("credentials", "missing"),
    [
        ({}, "phone_number_id or access_token"),
        ({"phone_number_id": PHONE_ID}, "access_token"),
        ({"phone_number_id": " ", "access_token": TOKEN}, "phone_number_id"),
    ],
)
def test_missing_credentials_fail_without_a_request(
    channel: WhatsAppChannel, graph: GraphApiServer, credentials: dict[str, str], missing: str
) -> None:
    result = channel.send(notification(credentials=credentials))
    assert result.status == "failed"
    assert f"no {missing} " in result.detail
    assert "/v1/inbound/channels/whatsapp" in result.detail
    assert graph.requests == []


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"phone": None}, "no phone number"),
        ({"phone": "347 123 4567"}, "not an E.164 number"),
        ({"sms": "  "}, "no short (SMS) text"),
        ({"answer": True, "text": ""}, "no answer"),
    ],
)
def test_what_cannot_be_sent_fails_without_a_request(
    channel: WhatsAppChannel, graph: GraphApiServer, fields: dict[str, Any], why: str
) -> None:
    result = channel.send(notification(**fields))
    assert result.status == "failed"
    assert why in result.detail
    assert graph.requests == []


@pytest.mark.parametrize("phone", ["+39 347 123-4567", "0039 (347) 123.4567", "+393471234567"])
def test_the_number_as_the_shop_typed_it(
    channel: WhatsAppChannel, graph: GraphApiServer, phone: str
) -> None:
    assert channel.send(notification(phone=phone)).ok
    assert [m["to"] for m in graph.messages()] == ["393471234567"]


def test_each_tenant_sends_with_its_own_number_and_token(graph: GraphApiServer) -> None:
    other = {"phone_number_id": "998877665544", "access_token": "EAAtenant-two-token"}
    graph.allow(other["phone_number_id"], other["access_token"])
    with WhatsAppChannel(graph.url, max_clients=2) as impl:
        for credentials in (CREDENTIALS, other, CREDENTIALS, other):
            assert impl.send(notification(credentials=credentials)).ok
        assert len(impl._clients) == 2  # one client per tenant, kept
        third = {"phone_number_id": "112233", "access_token": "EAAtenant-three"}
        assert impl.send(notification(credentials=third)).ok
        assert len(impl._clients) == 2  # the least recently used was closed
    sent = [(r.path.split("/")[-2], r.token) for r in graph.requests]
    assert sent == [
        (PHONE_ID, TOKEN),
        ("998877665544", "EAAtenant-two-token"),
        (PHONE_ID, TOKEN),
        ("998877665544", "EAAtenant-two-token"),
        ("112233", "EAAtenant-three"),
    ]


def test_graph_url_with_a_path_and_the_host_header(graph: GraphApiServer) -> None:
    with WhatsAppChannel(graph.url + "/graph/") as impl:
        assert impl.send(answer()).ok
    [request] = graph.requests
    assert request.path.startswith("/graph/v")
    assert request.headers["host"] == graph.url.removeprefix("http://")


@pytest.mark.parametrize("url", ["ftp://graph.example", "graph.example/v1", "http://"])
def test_a_wrong_graph_url_fails_at_start(url: str) -> None:
    with pytest.raises(ValueError, match="graph_url"):
        WhatsAppChannel(url)


def test_the_transport_rewrites_only_the_host() -> None:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    transport = GraphTransport("https://proxy.internal:8443/meta", httpx.MockTransport(record))
    with httpx.Client(transport=transport) as client:
        client.post("https://graph.facebook.com/v26.0/123/messages?x=1", json={})
    [request] = seen
    assert str(request.url) == "https://proxy.internal:8443/meta/v26.0/123/messages?x=1"
    assert request.headers["host"] == "proxy.internal:8443"


def test_a_timeout_is_retry() -> None:
    release = threading.Event()

    class Slow(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            release.wait(5)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    server, thread = serve(Slow)
    try:
        host, port = server.server_address[:2]
        with WhatsAppChannel(f"http://{host!s}:{port}", timeout_s=0.3) as impl:
            result = impl.send(notification())
        assert result.status == "retry"
        assert "timed out" in result.detail
    finally:
        release.set()
        stop(server, thread)


def test_graph_api_unreachable_is_retry() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with WhatsAppChannel(f"http://127.0.0.1:{port}", timeout_s=2) as impl:
        result = impl.send(notification())
    assert result.status == "retry"
    assert "network error" in result.detail


@pytest.mark.security
def test_no_number_text_or_token_in_any_log(
    channel: WhatsAppChannel, graph: GraphApiServer, caplog: pytest.LogCaptureFixture
) -> None:
    """pywa logs request bodies and recipients at DEBUG: none of it is kept, even with every
    logger at DEBUG (as in tests/api/test_security_no_pii_in_logs.py)."""
    caplog.set_level(logging.DEBUG)
    for name in list(logging.root.manager.loggerDict):
        caplog.set_level(logging.DEBUG, logger=name)
    assert channel.send(notification()).ok
    graph.fail("template", times=1)
    assert channel.send(answer("Anna, il tuo ordine arriva alle 14:00")).status == "failed"
    logged = "\n".join(f"{r.name} {r.getMessage()}" for r in caplog.records)
    assert "httpx" in logged  # the requests were logged, without what they carried
    for secret in ("3471234567", "il tuo ordine", "Anna", TOKEN):
        assert secret not in logged


def test_credentials_stay_out_of_the_message_repr() -> None:
    assert TOKEN not in repr(notification())

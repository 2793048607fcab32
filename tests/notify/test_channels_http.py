"""The SMS adapters and the webhook channel against a real local HTTP server: request shape,
authentication, idempotency header, signature, and how each answer is classified."""

from __future__ import annotations

import base64
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest

from notify.channels import GenericSms, TwilioSms, WebhookChannel, verify_signature
from notify.channels.webhook import body_bytes
from notify.settings import Channel
from tests.notify.test_channels import NOW, SECRET, doc_code_blocks, outgoing

pytestmark = pytest.mark.integration


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeApi:
    """What the local server answers next, and every request it got."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    requests: list[Seen] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    url: str = ""

    def answer(self, status: int, body: Any = b"", **headers: str) -> None:
        self.status = status
        self.body = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.headers = headers


class _Quiet(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (the timeout test) is expected: no traceback."""


def serve(handler: type[BaseHTTPRequestHandler]) -> tuple[ThreadingHTTPServer, threading.Thread]:
    """``handler`` on a free loopback port, in a thread."""
    server = _Quiet(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    return server, thread


def stop(server: ThreadingHTTPServer, thread: threading.Thread) -> None:
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def api() -> Iterator[FakeApi]:
    """A local HTTP server that records requests and answers as told."""
    fake = FakeApi()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            fake.requests.append(Seen("POST", self.path, dict(self.headers.items()), body))
            if fake.delay_s:
                fake.release.wait(fake.delay_s)
            self.send_response(fake.status)
            for name, value in fake.headers.items():
                self.send_header(name.replace("_", "-"), value)
            self.send_header("Content-Length", str(len(fake.body)))
            self.end_headers()
            self.wfile.write(fake.body)

        def log_message(self, format: str, *args: Any) -> None:
            """Silence."""

    server, thread = serve(Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield fake
    fake.release.set()
    stop(server, thread)


def closed_port() -> int:
    """A loopback port nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def twilio(api: FakeApi, **kwargs: Any) -> TwilioSms:
    return TwilioSms(api.url, "AC123", "tok3n", "+15005550006", **kwargs)


def generic(api: FakeApi, **kwargs: Any) -> GenericSms:
    return GenericSms(f"{api.url}/v1/sms", "bearer-tok", "+15005550006", **kwargs)


def test_twilio_request_shape(api: FakeApi) -> None:
    """Form-encoded To/From/Body to the account's Messages.json, basic auth, idempotency key."""
    api.answer(201, {"sid": "SM0001", "status": "queued"})
    message = outgoing(Channel.SMS)
    with twilio(api) as channel:
        result = channel.send(message)
    assert (result.status, result.provider_id) == ("sent", "SM0001")
    (seen,) = api.requests
    assert seen.path == "/2010-04-01/Accounts/AC123/Messages.json"
    assert seen.headers["Content-Type"] == "application/x-www-form-urlencoded"
    form = parse_qs(seen.body.decode(), strict_parsing=True)
    assert form == {"To": ["+393331234567"], "From": ["Acme"], "Body": [message.sms]}
    credentials = base64.b64encode(b"AC123:tok3n").decode()
    assert seen.headers["Authorization"] == f"Basic {credentials}"
    assert seen.headers["Idempotency-Key"] == "o1:eta_changed:3:sms"


def test_twilio_sender_falls_back_to_the_account_number(api: FakeApi) -> None:
    """Without a branded SMS sender, From is the number the adapter was configured with."""
    api.answer(201, {"sid": "SM0002"})
    with twilio(api) as channel:
        assert channel.send(outgoing(Channel.SMS, sms_sender="")).ok
    assert parse_qs(api.requests[0].body.decode())["From"] == ["+15005550006"]


def test_twilio_error_body_in_detail(api: FakeApi) -> None:
    """A Twilio 400 is "failed" and the detail quotes Twilio's error code and message."""
    api.answer(400, {"code": 21211, "message": "The 'To' number is not valid.", "status": 400})
    with twilio(api) as channel:
        result = channel.send(outgoing(Channel.SMS))
    assert result.status == "failed"
    assert "HTTP 400" in result.detail
    assert "Twilio error 21211: The 'To' number is not valid." in result.detail


def test_generic_request_shape(api: FakeApi) -> None:
    """JSON {to, from, text, idempotency_key} with a bearer token and the idempotency header."""
    api.answer(202, {"id": "msg-77"})
    message = outgoing(Channel.SMS)
    with generic(api) as channel:
        result = channel.send(message)
    assert (result.status, result.provider_id) == ("sent", "msg-77")
    (seen,) = api.requests
    assert seen.path == "/v1/sms"
    assert seen.headers["Content-Type"] == "application/json"
    assert json.loads(seen.body) == {
        "to": "+393331234567",
        "from": "Acme",
        "text": message.sms,
        "idempotency_key": "o1:eta_changed:3:sms",
    }
    assert seen.headers["Authorization"] == "Bearer bearer-tok"
    assert seen.headers["Idempotency-Key"] == "o1:eta_changed:3:sms"


def test_generic_success_without_a_body(api: FakeApi) -> None:
    """A 204 with no body is sent, with no provider id."""
    api.answer(204)
    with generic(api) as channel:
        result = channel.send(outgoing(Channel.SMS))
    assert (result.status, result.provider_id) == ("sent", None)


@pytest.mark.parametrize("make", [twilio, generic])
@pytest.mark.parametrize(
    ("status", "expected"),
    [(500, "retry"), (503, "retry"), (429, "retry"), (408, "retry"), (400, "failed")],
)
def test_sms_answers_classified(api: FakeApi, make: Any, status: int, expected: str) -> None:
    """5xx, 429 and 408 are "retry", 400 is "failed", for both adapters."""
    api.answer(status, {"error": "x"}, Retry_After="30")
    with make(api) as channel:
        result = channel.send(outgoing(Channel.SMS))
    assert result.status == expected
    assert f"HTTP {status}" in result.detail
    if expected == "retry":
        assert result.retry_after_s == 30.0


@pytest.mark.parametrize("make", [twilio, generic])
def test_sms_timeout_is_retry(api: FakeApi, make: Any) -> None:
    """A provider slower than the timeout is "retry" (it may have taken the message)."""
    api.answer(201, {"sid": "late"})
    api.delay_s = 5.0
    with make(api, timeout_s=0.3) as channel:
        result = channel.send(outgoing(Channel.SMS))
    assert result.status == "retry"
    assert "timed out" in result.detail


def test_sms_provider_down_is_retry() -> None:
    """Nobody listening is a network error: "retry"."""
    with GenericSms(f"http://127.0.0.1:{closed_port()}/sms", "t", "Acme") as channel:
        result = channel.send(outgoing(Channel.SMS))
    assert result.status == "retry"
    assert "network error" in result.detail


def test_webhook_request_signed_with_idempotency_key(api: FakeApi) -> None:
    """The body is the payload's JSON, signed at the channel's clock, with the idempotency key."""
    api.answer(204)
    message = outgoing(Channel.WEBHOOK, webhook_url=f"{api.url}/hooks/lastmile")
    with WebhookChannel(SECRET, clock=lambda: NOW + 0.7) as channel:
        result = channel.send(message)
    assert result.status == "sent"
    (seen,) = api.requests
    assert seen.path == "/hooks/lastmile"
    assert seen.body == body_bytes(message.payload)
    assert json.loads(seen.body) == message.payload
    assert seen.headers["Content-Type"] == "application/json"
    assert seen.headers["Idempotency-Key"] == "o1:eta_changed:3:webhook"
    header = seen.headers["X-Lastmile-Signature"]
    assert header.startswith(f"t={NOW},v1=")
    assert verify_signature(SECRET, header, seen.body, now=NOW + 5)
    assert not verify_signature(SECRET, header, seen.body, now=NOW + 600)


@pytest.mark.parametrize(
    ("status", "expected"),
    [(500, "retry"), (502, "retry"), (429, "retry"), (400, "failed"), (404, "failed")],
)
def test_webhook_answers_classified(api: FakeApi, status: int, expected: str) -> None:
    """The receiver's 5xx and 429 are "retry"; 400 and 404 are "failed"."""
    api.answer(status, b"receiver says no")
    with WebhookChannel(SECRET) as channel:
        result = channel.send(outgoing(Channel.WEBHOOK, webhook_url=api.url))
    assert result.status == expected
    assert "receiver says no" in result.detail


def test_webhook_redirect_not_followed(api: FakeApi) -> None:
    """A redirect is "failed" and not followed (the signed request is not re-sent elsewhere)."""
    api.answer(302, Location="https://elsewhere.example/hook")
    with WebhookChannel(SECRET) as channel:
        result = channel.send(outgoing(Channel.WEBHOOK, webhook_url=api.url))
    assert result.status == "failed"
    assert "elsewhere.example" in result.detail
    assert len(api.requests) == 1


def test_webhook_timeout_is_retry(api: FakeApi) -> None:
    """A receiver slower than the timeout is "retry"."""
    api.answer(200)
    api.delay_s = 5.0
    with WebhookChannel(SECRET, timeout_s=0.3) as channel:
        result = channel.send(outgoing(Channel.WEBHOOK, webhook_url=api.url))
    assert result.status == "retry"


def test_webhook_receiver_down_is_retry() -> None:
    """Nobody listening at the URL is "retry"."""
    url = f"http://127.0.0.1:{closed_port()}/hook"
    with WebhookChannel(SECRET) as channel:
        result = channel.send(outgoing(Channel.WEBHOOK, webhook_url=url))
    assert result.status == "retry"


def test_documented_receiver_end_to_end() -> None:
    """The receiver in docs/webhooks.md accepts our requests once per key and refuses others."""
    namespace: dict[str, Any] = {}
    exec(doc_code_blocks()[0], namespace)
    handled: list[dict[str, Any]] = []
    namespace["handle_notification"] = handled.append
    handler = namespace["LastmileWebhook"]
    handler.secret = SECRET
    handler.log_message = lambda *_args: None
    server, thread = serve(handler)
    url = f"http://127.0.0.1:{server.server_address[1]}/webhook"
    try:
        message = outgoing(Channel.WEBHOOK, webhook_url=url)
        with WebhookChannel(SECRET) as channel:
            first, again = channel.send(message), channel.send(message)
        with WebhookChannel(b"not the tenant's secret") as impostor:
            forged = impostor.send(message)
    finally:
        stop(server, thread)
    assert (first.status, again.status) == ("sent", "sent")
    assert handled == [message.payload]
    assert forged.status == "failed"
    assert "HTTP 401" in forged.detail

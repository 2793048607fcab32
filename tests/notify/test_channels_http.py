"""The SMS adapters and the webhook channel against a real local HTTP server: request shape,
authentication, idempotency header, signature, and how each answer is classified. The webhook
channel may post to 127.0.0.1 only because these tests allow private addresses
(``allow_private=True``, as ``LASTMILE_WEBHOOK_ALLOW_PRIVATE`` does); what it refuses without
that is proven here and in test_ssrf.py."""

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

import httpx
import pytest

from notify.channels import (
    GenericSms,
    OutgoingMessage,
    TwilioSms,
    WebhookChannel,
    verify_signature,
)
from notify.channels.ssrf import check_saved_url
from notify.channels.webhook import body_bytes, signature
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


def hook(url: str, *secrets: str | bytes) -> OutgoingMessage:
    """The webhook message to ``url``, signed with ``secrets`` (the organisation's; default
    the test secret)."""
    return outgoing(Channel.WEBHOOK, webhook_url=url, signing_secrets=secrets or (SECRET,))


def local_webhooks(**kwargs: Any) -> WebhookChannel:
    """The webhook channel allowed to reach the loopback receivers of these tests."""
    return WebhookChannel(allow_private=True, **kwargs)


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
    message = hook(f"{api.url}/hooks/lastmile")
    with local_webhooks(clock=lambda: NOW + 0.7) as channel:
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
    with local_webhooks() as channel:
        result = channel.send(hook(api.url))
    assert result.status == expected
    assert f"HTTP {status}" in result.detail


@pytest.mark.security
@pytest.mark.parametrize("status", [200, 302, 400, 401, 404, 500, 503])
def test_webhook_results_quote_nothing_the_receiver_sent(api: FakeApi, status: int) -> None:
    """What goes into ``last_error`` and the attempt records (a result's detail) is the status
    code and a fixed reason: never the receiver's body or redirect target, which a tenant
    could otherwise use to read what the service's network serves."""
    leak = "internal-secret-Zq81 " * 40
    api.answer(status, leak.encode(), Location=f"http://10.0.0.7/{leak.strip()}")
    with local_webhooks() as channel:
        result = channel.send(hook(api.url))
    assert f"HTTP {status}" in result.detail or status == 200
    assert "internal-secret" not in result.detail
    assert "10.0.0.7" not in result.detail
    assert len(result.detail) < 200


def test_webhook_redirect_not_followed(api: FakeApi) -> None:
    """A redirect is "failed" and not followed (the signed request is not re-sent elsewhere)."""
    api.answer(302, Location="https://elsewhere.example/hook")
    with local_webhooks() as channel:
        result = channel.send(hook(api.url))
    assert result.status == "failed"
    assert "redirect" in result.detail
    assert len(api.requests) == 1


def test_webhook_timeout_is_retry(api: FakeApi) -> None:
    """A receiver slower than the timeout is "retry"."""
    api.answer(200)
    api.delay_s = 5.0
    with local_webhooks(timeout_s=0.3) as channel:
        result = channel.send(hook(api.url))
    assert result.status == "retry"


def test_webhook_receiver_down_is_retry() -> None:
    """Nobody listening at the URL is "retry"."""
    url = f"http://127.0.0.1:{closed_port()}/hook"
    with local_webhooks() as channel:
        result = channel.send(hook(url))
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
        message = hook(url)
        with local_webhooks() as channel:
            first, again = channel.send(message), channel.send(message)
            forged = channel.send(hook(url, b"not the tenant's secret"))
    finally:
        stop(server, thread)
    assert (first.status, again.status) == ("sent", "sent")
    assert handled == [message.payload]
    assert forged.status == "failed"
    assert "HTTP 401" in forged.detail


@pytest.mark.security
def test_webhook_carries_a_signature_per_secret_while_rotating(api: FakeApi) -> None:
    """During a rotation the organisation has two valid secrets: the webhook carries a ``v1``
    for each (newest first), so a receiver still on the old secret and one already on the
    new one both accept it, and a secret of neither is refused (docs/webhooks.md)."""
    api.answer(204)
    new, old = "whsec_new-one", "whsec_old-one"
    with local_webhooks(clock=lambda: NOW) as channel:
        assert channel.send(hook(api.url, new, old)).ok
    (seen,) = api.requests
    header = seen.headers["X-Lastmile-Signature"]
    assert header.count("v1=") == 2
    newest, older = (signature(secret, NOW, seen.body) for secret in (new, old))
    assert header == f"t={NOW},v1={newest},v1={older}"
    for secret in (new, old):
        assert verify_signature(secret, header, seen.body, now=NOW)
    assert not verify_signature("whsec_other-tenant", header, seen.body, now=NOW)


@pytest.mark.security
@pytest.mark.parametrize(
    "host", ["127.0.0.1", "[::ffff:127.0.0.1]", "localhost", "[::1]", "0.0.0.0", "2130706433"]
)
def test_webhook_to_an_internal_address_is_not_sent(api: FakeApi, host: str) -> None:
    """Without ``allow_private`` a URL on loopback (as an IP, an IPv4-mapped IPv6 address, a
    name or a decimal number) is "failed" and nothing reaches the server listening there."""
    port = api.url.rsplit(":", 1)[1]
    with WebhookChannel() as channel:
        result = channel.send(hook(f"http://{host}:{port}/hooks"))
    assert result.status == "failed", result.detail
    assert "public internet addresses" in result.detail
    assert api.requests == []


@pytest.mark.security
def test_webhook_name_now_resolving_inside_is_not_sent(api: FakeApi) -> None:
    """A name that passed the check when the policy was saved (public then) but resolves to
    loopback at send time (DNS changed, or rebinding) is refused at send time."""
    port = int(api.url.rsplit(":", 1)[1])
    answers = {"hooks.shop.test": "93.184.216.34"}

    def resolver(host: str, port: int, *_: Any) -> list[tuple[Any, ...]]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answers[host], port))]

    url = f"http://hooks.shop.test:{port}/hooks"
    assert check_saved_url(url, allow_private=False, resolver=resolver) is None
    answers["hooks.shop.test"] = "127.0.0.1"
    with WebhookChannel(resolver=resolver) as channel:
        result = channel.send(hook(url))
    assert result.status == "failed"
    assert api.requests == []


@pytest.mark.security
def test_webhook_connects_to_the_address_it_checked() -> None:
    """One lookup, then the request goes to that checked address (the URL's name in ``Host``
    and as TLS server name): a second lookup, which a hostile name server could answer with
    an internal address, never happens."""
    lookups: list[str] = []

    def rebinding(host: str, port: int, *_: Any) -> list[tuple[Any, ...]]:
        lookups.append(host)
        address = "93.184.216.34" if len(lookups) == 1 else "127.0.0.1"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    seen: list[httpx.Request] = []

    def receiver(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    client = httpx.Client(transport=httpx.MockTransport(receiver))
    with WebhookChannel(client=client, resolver=rebinding) as channel:
        assert channel.send(hook("https://hooks.shop.test:8443/in?x=1")).ok
    client.close()
    (request,) = seen
    assert lookups == ["hooks.shop.test"]
    assert (request.url.host, request.url.port) == ("93.184.216.34", 8443)
    assert (request.url.path, request.url.query) == ("/in", b"x=1")
    assert request.headers["Host"] == "hooks.shop.test:8443"
    assert request.extensions["sni_hostname"] == "hooks.shop.test"


@pytest.mark.security
def test_webhook_over_real_sockets_looks_the_name_up_once(
    api: FakeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the real HTTP stack: the name is resolved by the channel once; the connection
    goes to that answer (a later answer points nowhere) with the name in ``Host``."""
    real = socket.getaddrinfo
    lookups: list[str] = []

    def system_resolver(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "hooks.shop.test":
            lookups.append(host)
            address = "127.0.0.1" if len(lookups) == 1 else "192.0.2.1"  # TEST-NET: nowhere
            return real(address, port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", system_resolver)
    port = api.url.rsplit(":", 1)[1]
    api.answer(204)
    with local_webhooks(timeout_s=2.0) as channel:
        result = channel.send(hook(f"http://hooks.shop.test:{port}/hooks"))
    assert result.ok, result.detail
    assert lookups == ["hooks.shop.test"]
    assert api.requests[0].headers["Host"] == f"hooks.shop.test:{port}"

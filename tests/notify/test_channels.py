"""Delivery channels without a server: the outgoing message, failure classification, webhook
signatures (and the receiver documented in docs/webhooks.md), topics and addresses."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from notify.channels import OutgoingMessage, SmtpChannel, WebhookChannel, verify_signature
from notify.channels.base import http_status_result, retry_after
from notify.channels.email import message_id
from notify.channels.push import topic_for
from notify.channels.sms import GenericSms, TwilioSms
from notify.channels.webhook import body_bytes, signature, signature_header
from notify.policy import Message
from notify.render import OrderView, render
from notify.settings import Channel, Recipient
from notify.triggers import Trigger
from tests.notify.conftest import ACME, T0, URL, window

DOC = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"
SECRET = b"s3cret-for-tests"
NOW = 1_781_085_600


def outgoing(channel: Channel = Channel.EMAIL, **changes: Any) -> OutgoingMessage:
    """A rendered ETA-changed notification for Anna in Rome, on ``channel``."""
    message = Message(
        "o1", Trigger.ETA_CHANGED, 3, channel, "it", "Europe/Rome", T0, T0, window(120)
    )
    recipient = Recipient(
        locale="it",
        timezone="Europe/Rome",
        email="anna@example.com",
        phone="+393331234567",
        webhook_url="http://127.0.0.1:9/hooks",
        push_topic="k3F9xQ",
    )
    rendered = render(message, OrderView("o1", "A-1001", "Anna"), recipient, ACME, URL)
    base = OutgoingMessage.build(message, rendered, recipient, ACME)
    fields = {name: getattr(base, name) for name in OutgoingMessage.__dataclass_fields__}
    return OutgoingMessage(**{**fields, **changes})


def doc_code_blocks() -> list[str]:
    """The ```python blocks of docs/webhooks.md."""
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def test_outgoing_message_carries_rendering_recipient_and_sender() -> None:
    """build() takes the per-channel outbox key, every address, every rendering and the brand."""
    m = outgoing(Channel.SMS)
    assert m.idempotency_key == "o1:eta_changed:3:sms"
    assert m.channel is Channel.SMS
    assert (m.email, m.phone, m.push_token) == ("anna@example.com", "+393331234567", "k3F9xQ")
    assert all((m.subject, m.text, m.html, m.sms))
    assert m.payload["idempotency_key"] == "o1:eta_changed:3"
    assert m.push["url"] == URL
    assert (m.sender_email, m.sender_name, m.sms_sender) == (
        "consegne@acme.example",
        "Acme",
        "Acme",
    )


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (200, None),
        (201, None),
        (204, None),
        (301, "failed"),
        (400, "failed"),
        (401, "failed"),
        (404, "failed"),
        (408, "retry"),
        (410, "failed"),
        (422, "failed"),
        (429, "retry"),
        (500, "retry"),
        (502, "retry"),
        (503, "retry"),
    ],
)
def test_http_status_classification(code: int, status: str | None) -> None:
    """2xx is success; 408, 429 and 5xx may work later; redirects and other 4xx will not."""
    result = http_status_result(httpx.Response(code, text="nope"), "sms")
    assert (result.status if result else None) == status
    if result:
        assert f"HTTP {code}" in result.detail


def test_retry_after_seconds_and_http_date() -> None:
    """Retry-After is read as delta-seconds or as an HTTP date; junk is ignored."""
    now = datetime(2026, 6, 10, 10, 0, tzinfo=UTC)
    assert retry_after("120") == 120.0
    assert retry_after(format_datetime(now + timedelta(seconds=90), usegmt=True), now) == 90.0
    assert retry_after("soon") is None
    assert retry_after(None) is None
    response = httpx.Response(503, headers={"Retry-After": "7"})
    result = http_status_result(response, "webhook")
    assert result is not None
    assert result.retry_after_s == 7.0


def test_signature_round_trip() -> None:
    """A header made by the sender verifies with the same secret and body."""
    body = body_bytes({"b": 1, "a": "è"})
    assert body == '{"a":"è","b":1}'.encode()
    header = signature_header(SECRET, NOW, body)
    assert header == f"t={NOW},v1={signature(SECRET, NOW, body)}"
    assert verify_signature(SECRET, header, body, now=NOW + 10)
    assert verify_signature(SECRET.decode(), header, body, now=NOW - 10)


def test_signature_rejects_tampering_wrong_secret_and_staleness() -> None:
    """A changed body, another secret, an old or future timestamp, or a garbled header fail."""
    body = body_bytes({"order_id": "o1"})
    header = signature_header(SECRET, NOW, body)
    assert not verify_signature(SECRET, header, body.replace(b"o1", b"o2"), now=NOW)
    assert not verify_signature(b"another secret", header, body, now=NOW)
    assert not verify_signature(SECRET, header, body, now=NOW + 301)
    assert not verify_signature(SECRET, header, body, now=NOW - 301)
    assert verify_signature(SECRET, header, body, now=NOW + 3_600, tolerance_s=7_200)
    for garbled in ("", "v1=abc", f"t={NOW}", f"t=x,v1={signature(SECRET, NOW, body)}", "junk"):
        assert not verify_signature(SECRET, garbled, body, now=NOW)


def test_signature_accepts_any_v1_and_ignores_unknown_schemes() -> None:
    """During a secret rotation the header may carry several v1; one match is enough."""
    body = b"{}"
    good = signature(SECRET, NOW, body)
    header = f"t={NOW},v1={'0' * 64},v2=whatever,v1={good}"
    assert verify_signature(SECRET, header, body, now=NOW)


def test_doc_test_vector_matches_the_sender() -> None:
    """The test vector printed in docs/webhooks.md is what the sender computes."""
    text = DOC.read_text(encoding="utf-8")
    vector = re.search(r"body `(\{.*?\})`.*?```\n(t=\d+,v1=[0-9a-f]{64})\n```", text, flags=re.S)
    assert vector is not None
    body, header = vector.group(1).encode(), vector.group(2)
    timestamp = int(header.split(",")[0][2:])
    assert signature_header(b"whsec_test", timestamp, body) == header


def test_doc_receiver_verifies_like_the_sender() -> None:
    """The documented stdlib receiver accepts what the sender signs and rejects the rest."""
    namespace: dict[str, Any] = {}
    exec(doc_code_blocks()[0], namespace)
    verify = namespace["verify_lastmile_signature"]
    body = body_bytes(outgoing(Channel.WEBHOOK).payload)
    header = signature_header(SECRET, NOW, body)
    assert verify(SECRET, header, body, now=NOW + 60)
    assert not verify(SECRET, header, body + b" ", now=NOW)
    assert not verify(b"other", header, body, now=NOW)
    assert not verify(SECRET, header, body, now=NOW + 301)
    assert not verify(SECRET, f"t={NOW}", body, now=NOW)
    assert verify(SECRET, f"t={NOW},v1={'0' * 64},v1={signature(SECRET, NOW, body)}", body, NOW)


def test_message_id_is_deterministic_per_key() -> None:
    """Every attempt of one notification has the same Message-ID; another key another."""
    a = message_id("o1:eta_changed:3:email", "acme.example")
    assert a == message_id("o1:eta_changed:3:email", "acme.example")
    assert a != message_id("o1:eta_changed:4:email", "acme.example")
    assert re.fullmatch(r"<[0-9a-f]{32}\.lastmile@acme\.example>", a)


def test_email_built_as_text_plus_html() -> None:
    """The MIME message is multipart/alternative with text then HTML, From the brand."""
    m = outgoing()
    email = SmtpChannel("127.0.0.1", 25, "none").build(m)
    assert email.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in email.iter_parts()] == ["text/plain", "text/html"]
    assert email["From"] == "Acme <consegne@acme.example>"
    assert email["Subject"] == m.subject
    assert email["Auto-Submitted"] == "auto-generated"


def test_an_answer_to_the_customers_mail_is_marked_a_reply() -> None:
    """RFC 3834: the customer's autoresponder must not answer our answer back."""
    answer = replace(outgoing(), answer=True, html="", text="Your order arrives at noon.")
    email = SmtpChannel("127.0.0.1", 25, "none").build(answer)
    assert email["Auto-Submitted"] == "auto-replied"
    assert email.get_content_type() == "text/plain"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"email": None}, "no e-mail address"),
        ({"email": "anna"}, "not a single e-mail address"),
        ({"email": "anna@example.com, bob@example.com"}, "not a single e-mail address"),
        ({"email": "anna@example.com\r\nBcc: x@y.z"}, "not a single e-mail address"),
        ({"email": "anna@localhost"}, "is not an e-mail address"),
        ({"sender_email": ""}, "no sender address"),
        ({"text": ""}, "no text part"),
        ({"subject": "Hi\nBcc: x@y.z"}, "cannot build the message"),
    ],
)
def test_email_bad_address_fails_without_connecting(changes: dict[str, Any], expected: str) -> None:
    """A missing or malformed address is "failed" at once (port 9 is never dialled)."""
    result = SmtpChannel("127.0.0.1", 9, "none", timeout_s=0.5).send(outgoing(**changes))
    assert result.status == "failed"
    assert expected in result.detail


def test_smtp_credentials_need_tls() -> None:
    """Credentials over a plain connection are refused when the channel is configured."""
    with pytest.raises(ValueError, match="starttls"):
        SmtpChannel("127.0.0.1", 25, "none", "user", "pw")


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"phone": None}, "no phone number"),
        ({"phone": "3331234567"}, "not an E.164 number"),
        ({"phone": "+39 333 1234567"}, "not an E.164 number"),
        ({"sms": "  "}, "no SMS text"),
    ],
)
def test_sms_bad_number_fails_without_a_request(changes: dict[str, Any], expected: str) -> None:
    """A missing or non-E.164 number, or no text, is "failed" before any request is made."""
    m = outgoing(Channel.SMS, **changes)
    for channel in (
        TwilioSms("http://127.0.0.1:9", "AC1", "tok", "+15005550006"),
        GenericSms("http://127.0.0.1:9/sms", "tok", "Acme"),
    ):
        with channel:
            result = channel.send(m)
        assert result.status == "failed"
        assert expected in result.detail


@pytest.mark.parametrize(
    "url", [None, "", "ftp://example.com/hook", "example.com/hook", "https:///nohost"]
)
def test_webhook_bad_url_fails_without_a_request(url: str | None) -> None:
    """A missing or non-http(s) webhook URL is "failed"."""
    with WebhookChannel() as channel:
        result = channel.send(outgoing(Channel.WEBHOOK, webhook_url=url, signing_secrets=(SECRET,)))
    assert result.status == "failed"
    assert "webhook" in result.detail


@pytest.mark.security
@pytest.mark.parametrize("secrets", [(), ("",), (b"",)])
def test_webhook_needs_the_organisations_secret(secrets: tuple[str | bytes, ...]) -> None:
    """A webhook without a signing secret of its organisation (or with an empty one, which
    would sign nothing) is "failed" before any request: there is no service-wide secret to
    fall back on, whose signatures another tenant could make."""
    message = outgoing(Channel.WEBHOOK, signing_secrets=secrets)
    with WebhookChannel(allow_private=True) as channel:
        result = channel.send(message)
    assert result.status == "failed"
    assert "no valid webhook signing secret" in result.detail


def test_signing_secrets_stay_out_of_the_messages_repr() -> None:
    """A message logged or in a traceback does not show the secrets it carries."""
    message = outgoing(Channel.WEBHOOK, signing_secrets=("whsec_not-for-logs",))
    assert "whsec_not-for-logs" not in repr(message)


def test_push_topic_from_tracking_token() -> None:
    """Updates go to customers/{token}/updates; a token that would widen the topic is refused."""
    assert topic_for("k3F9xQ") == "customers/k3F9xQ/updates"
    for bad in ("", "a/b", "+", "#", "a b ", " a", "a\x00"):
        with pytest.raises(ValueError, match="tracking token"):
            topic_for(bad)

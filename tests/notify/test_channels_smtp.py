"""The SMTP channel against a real SMTP server (aiosmtpd, started here): the multipart message,
STARTTLS, implicit TLS, AUTH, and how refusals and outages are classified."""

from __future__ import annotations

import email
import email.policy
import ipaddress
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import pytest

from notify.channels import SmtpChannel
from notify.channels.email import message_id
from tests.conftest import require_servers
from tests.notify.test_channels import outgoing

pytestmark = pytest.mark.integration


def _need(module: str) -> Any:
    """Import a test dependency, or skip (fail in CI) saying which one is missing."""
    try:
        return __import__(module, fromlist=["_"])
    except ImportError as exc:
        message = f"{module} is not installed (pip install -e '.[dev]'): {exc}"
        if require_servers():
            pytest.fail(message)
        pytest.skip(message)


@dataclass
class Inbox:
    """An aiosmtpd handler keeping what it accepts; replies can be forced per command."""

    messages: list[tuple[EmailMessage, Any, Any]] = field(default_factory=list)
    rcpt_reply: str | None = None
    data_reply: str | None = None

    async def handle_RCPT(  # noqa: N802 (aiosmtpd's hook name)
        self, _server: Any, _session: Any, envelope: Any, address: str, _options: Any
    ) -> str:
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 (aiosmtpd's hook name)
        self, _server: Any, session: Any, envelope: Any
    ) -> str:
        if self.data_reply:
            return self.data_reply
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append((parsed, session, envelope))
        return "250 2.0.0 Ok: queued as 4F3A2"


@dataclass(frozen=True)
class Tls:
    server: ssl.SSLContext
    client: ssl.SSLContext


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    """A self-signed certificate for 127.0.0.1, and a client context that trusts only it."""
    _need("cryptography")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lastmile test SMTP")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cafile=str(cert_file))
    return Tls(server, client)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Smtpd:
    """Start aiosmtpd on a free loopback port; stopped by the fixture."""

    def __init__(self) -> None:
        self.controllers: list[Any] = []

    def __call__(self, inbox: Inbox, **kwargs: Any) -> int:
        controller_module = _need("aiosmtpd.controller")
        port = free_port()
        controller = controller_module.Controller(
            inbox, hostname="127.0.0.1", port=port, server_hostname="mx.test", **kwargs
        )
        controller.start()
        self.controllers.append(controller)
        return port

    def stop(self) -> None:
        for controller in self.controllers:
            controller.stop()


@pytest.fixture
def smtpd() -> Iterator[Smtpd]:
    """Starts SMTP servers for a test and stops them after it."""
    servers = Smtpd()
    yield servers
    servers.stop()


def channel(port: int, **kwargs: Any) -> SmtpChannel:
    kwargs.setdefault("security", "none")
    return SmtpChannel("127.0.0.1", port, timeout_s=5, local_hostname="lastmile.test", **kwargs)


def test_multipart_message_received(smtpd: Smtpd) -> None:
    """The server gets one text + HTML message with subject, From, To and the derived Message-ID."""
    inbox = Inbox()
    port = smtpd(inbox)
    m = outgoing()
    result = channel(port).send(m)
    assert result.status == "sent", result.detail
    ((received, _session, envelope),) = inbox.messages
    assert envelope.mail_from == "consegne@acme.example"
    assert envelope.rcpt_tos == ["anna@example.com"]
    assert received["Subject"] == m.subject
    assert received["From"] == "Acme <consegne@acme.example>"
    assert received["To"] == "anna@example.com"
    expected_id = message_id("o1:eta_changed:3:email", "acme.example")
    assert received["Message-ID"] == expected_id == result.provider_id
    assert received.get_content_type() == "multipart/alternative"
    text = received.get_body(("plain",))
    html = received.get_body(("html",))
    assert text is not None
    assert html is not None
    assert isinstance(text, EmailMessage)
    assert isinstance(html, EmailMessage)
    # Lines arrive with the wire's CRLF.
    assert text.get_content().replace("\r\n", "\n").strip() == m.text.strip()
    assert html.get_content().replace("\r\n", "\n").strip() == m.html.strip()
    assert "arriverà" in text.get_content()
    assert "https://lm.to/k3F9xQ" in text.get_content()


def test_resend_has_the_same_message_id(smtpd: Smtpd) -> None:
    """A re-send of one notification carries the same Message-ID, so receivers can dedupe."""
    inbox = Inbox()
    port = smtpd(inbox)
    for _ in range(2):
        assert channel(port).send(outgoing()).ok
    first, second = (m["Message-ID"] for m, _, _ in inbox.messages)
    assert first == second


def test_starttls_negotiated(smtpd: Smtpd, tls: Tls) -> None:
    """With security="starttls" the session is upgraded before MAIL (the server insists)."""
    inbox = Inbox()
    port = smtpd(inbox, tls_context=tls.server, require_starttls=True)
    result = channel(port, security="starttls", ssl_context=tls.client).send(outgoing())
    assert result.status == "sent", result.detail
    ((_received, session, _envelope),) = inbox.messages
    assert session.ssl is not None


def test_plain_refused_where_starttls_required(smtpd: Smtpd, tls: Tls) -> None:
    """A server that requires STARTTLS refuses a plain session: 5xx, "failed"."""
    port = smtpd(Inbox(), tls_context=tls.server, require_starttls=True)
    result = channel(port).send(outgoing())
    assert result.status == "failed"
    assert "530" in result.detail


def test_starttls_not_offered_is_failed(smtpd: Smtpd, tls: Tls) -> None:
    """Asked for STARTTLS, a server that does not offer it is "failed", never sent in clear."""
    inbox = Inbox()
    port = smtpd(inbox)
    result = channel(port, security="starttls", ssl_context=tls.client).send(outgoing())
    assert result.status == "failed"
    assert "STARTTLS" in result.detail
    assert inbox.messages == []


def test_starttls_untrusted_certificate_is_failed(smtpd: Smtpd, tls: Tls) -> None:
    """The system trust store does not trust the test certificate: "failed", with the reason."""
    port = smtpd(Inbox(), tls_context=tls.server, require_starttls=True)
    result = channel(port, security="starttls").send(outgoing())
    assert result.status == "failed"
    assert "not trusted" in result.detail


def test_implicit_tls(smtpd: Smtpd, tls: Tls) -> None:
    """With security="ssl" the connection is TLS from the first byte."""
    inbox = Inbox()
    port = smtpd(inbox, ssl_context=tls.server)
    result = channel(port, security="ssl", ssl_context=tls.client).send(outgoing())
    assert result.status == "sent", result.detail
    assert len(inbox.messages) == 1


def test_auth_over_starttls(smtpd: Smtpd, tls: Tls) -> None:
    """Credentials are sent after STARTTLS; wrong ones are 535, "failed"."""
    smtp = _need("aiosmtpd.smtp")

    def authenticator(*args: Any) -> Any:
        login = args[4]
        ok = (login.login, login.password) == (b"acme", b"right")
        return smtp.AuthResult(success=ok, handled=False)

    inbox = Inbox()
    port = smtpd(
        inbox,
        tls_context=tls.server,
        require_starttls=True,
        auth_required=True,
        authenticator=authenticator,
    )
    good = channel(
        port, security="starttls", ssl_context=tls.client, username="acme", password="right"
    )
    assert good.send(outgoing()).ok
    bad = channel(
        port, security="starttls", ssl_context=tls.client, username="acme", password="wrong"
    )
    result = bad.send(outgoing())
    assert result.status == "failed", result.detail
    assert "authentication refused: 535" in result.detail
    assert "wrong" not in result.detail
    assert len(inbox.messages) == 1


def test_recipient_refused_is_failed(smtpd: Smtpd) -> None:
    """550 to RCPT (no such mailbox) is "failed", with the server's words."""
    port = smtpd(Inbox(rcpt_reply="550 5.1.1 No such user here"))
    result = channel(port).send(outgoing())
    assert result.status == "failed"
    assert "recipient refused: 550 5.1.1 No such user here" in result.detail


def test_recipient_greylisted_is_retry(smtpd: Smtpd) -> None:
    """450 to RCPT (greylisting, mailbox busy) is "retry"."""
    port = smtpd(Inbox(rcpt_reply="450 4.2.0 Greylisted, try again later"))
    result = channel(port).send(outgoing())
    assert result.status == "retry"
    assert "450" in result.detail


def test_data_refusals(smtpd: Smtpd) -> None:
    """A 4xx reply to DATA is "retry", a 5xx "failed"."""
    temporary = smtpd(Inbox(data_reply="451 4.3.0 Local error in processing"))
    permanent = smtpd(Inbox(data_reply="554 5.7.1 Message rejected as spam"))
    assert channel(temporary).send(outgoing()).status == "retry"
    result = channel(permanent).send(outgoing())
    assert result.status == "failed"
    assert "554 5.7.1 Message rejected as spam" in result.detail


def test_server_down_is_retry() -> None:
    """Nobody listening on the port is "retry"."""
    result = channel(free_port()).send(outgoing())
    assert result.status == "retry"
    assert "cannot reach" in result.detail


def test_server_silent_is_retry() -> None:
    """A server that accepts the connection but never greets times out: "retry"."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        result = SmtpChannel("127.0.0.1", port, "none", timeout_s=0.3).send(outgoing())
    assert result.status == "retry"
    assert "timed out" in result.detail


def test_implicit_tls_untrusted_certificate_is_failed(smtpd: Smtpd, tls: Tls) -> None:
    """Implicit TLS to a server whose certificate is not trusted is "failed", nothing sent."""
    inbox = Inbox()
    port = smtpd(inbox, ssl_context=tls.server)
    result = channel(port, security="ssl").send(outgoing())
    assert result.status == "failed"
    assert "not trusted" in result.detail
    assert inbox.messages == []

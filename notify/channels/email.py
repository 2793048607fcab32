"""E-mail over SMTP (stdlib ``smtplib``): plain text plus HTML, STARTTLS or implicit TLS.

One connection per message: connect, (STARTTLS), (AUTH), MAIL/RCPT/DATA, QUIT. The message is
``multipart/alternative`` (text, then HTML), ``From`` is the tenant's sender, and its
``Message-ID`` is derived from the idempotency key, so every attempt of one notification carries
the same id.

Duplicates (the at-most-once window): SMTP has no idempotency key. A message counts as sent when
the server answers 250 to the end of DATA. If the connection drops or times out after the
server took the data but before that reply is read, or the process dies after the reply but
before the outbox records it, the result is ``"retry"`` (or nothing) and the outbox sends it
again: the recipient may get it twice, with the same ``Message-ID`` (which many mailbox
providers collapse, and which a receiving system can dedupe on). That window is one network
round trip plus the outbox's commit; outside it a notification is never sent twice. Failures
before DATA ends (connect, TLS, AUTH, MAIL, RCPT, or a 4xx/5xx reply to DATA) leave nothing
delivered.

Classification: SMTP 4xx, network errors and timeouts are ``"retry"``; SMTP 5xx (mailbox
unknown, sender refused, authentication failed), a bad address, a server without STARTTLS when
it was asked for and an untrusted TLS certificate are ``"failed"``.
"""

from __future__ import annotations

import hashlib
import smtplib
import ssl
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formataddr, formatdate
from typing import Literal

from notify.channels.base import OutgoingMessage, SendResult, clip, failed, retry, sent

Security = Literal["none", "starttls", "ssl"]


def message_id(idempotency_key: str, domain: str) -> str:
    """``<hash-of-key@domain>``: the same for every attempt of one notification."""
    digest = hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()[:32]
    return f"<{digest}.lastmile@{domain}>"


def _address_problem(address: str) -> str | None:
    if any(c.isspace() or c in "<>,;\"'" for c in address) or address.count("@") != 1:
        return "is not a single e-mail address"
    try:
        Address(addr_spec=address)
    except (ValueError, IndexError) as exc:
        return f"is not an e-mail address ({exc})"
    local, _, domain = address.partition("@")
    if not local or "." not in domain:
        return "is not an e-mail address"
    return None


def _text(reply: bytes | str) -> str:
    return clip(reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply)


def _by_code(step: str, code: int, reply: bytes | str) -> SendResult:
    detail = f"smtp: {step} refused: {code} {_text(reply)}"
    if 500 <= code < 600:
        return failed(detail)
    return retry(detail)


class SmtpChannel:
    """Sends ``message.text`` and ``message.html`` to ``message.email``.

    ``security``: ``"starttls"`` (submission port 587: upgrade, and fail if the server cannot),
    ``"ssl"`` (implicit TLS, port 465) or ``"none"`` (a local relay; no credentials then).
    ``ssl_context`` defaults to the system's trust store with host name checking.
    ``default_sender`` is used when the tenant's branding has no sender address.
    """

    def __init__(
        self,
        host: str,
        port: int = 587,
        security: Security = "starttls",
        username: str | None = None,
        password: str | None = None,
        timeout_s: float = 30.0,
        *,
        ssl_context: ssl.SSLContext | None = None,
        default_sender: str = "",
        local_hostname: str | None = None,
    ) -> None:
        if security not in ("none", "starttls", "ssl"):
            raise ValueError(f"security must be none, starttls or ssl, got {security!r}")
        if username and security == "none":
            raise ValueError("SMTP credentials need security='starttls' or 'ssl'")
        self.host = host
        self.port = port
        self.security = security
        self.username = username
        self.password = password
        self.timeout_s = timeout_s
        self.ssl_context = ssl_context
        self.default_sender = default_sender
        self.local_hostname = local_hostname

    def _context(self) -> ssl.SSLContext:
        return self.ssl_context or ssl.create_default_context()

    def build(self, message: OutgoingMessage) -> EmailMessage:
        """The MIME message (also useful to preview); assumes the addresses were checked."""
        sender = message.sender_email or self.default_sender
        email = EmailMessage()
        email["Subject"] = message.subject
        email["From"] = formataddr((message.sender_name or message.brand, sender))
        email["To"] = message.email or ""
        email["Date"] = formatdate(usegmt=True)
        email["Message-ID"] = message_id(message.idempotency_key, sender.rpartition("@")[2])
        # RFC 3834: an answer to the customer's own mail is a reply, so their autoresponder
        # (and ours) does not answer it back.
        email["Auto-Submitted"] = "auto-replied" if message.answer else "auto-generated"
        email["X-Lastmile-Idempotency-Key"] = message.idempotency_key
        email.set_content(message.text)
        if message.html:
            email.add_alternative(message.html, subtype="html")
        return email

    def _connect(self) -> smtplib.SMTP:
        if self.security == "ssl":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                self.host,
                self.port,
                local_hostname=self.local_hostname,
                timeout=self.timeout_s,
                context=self._context(),
            )
        else:
            smtp = smtplib.SMTP(
                self.host, self.port, local_hostname=self.local_hostname, timeout=self.timeout_s
            )
        try:
            if self.security == "starttls":
                smtp.ehlo()
                smtp.starttls(context=self._context())
                smtp.ehlo()
            if self.username:
                smtp.login(self.username, self.password or "")
        except BaseException:
            _close(smtp)
            raise
        return smtp

    def send(self, message: OutgoingMessage) -> SendResult:
        if not message.email:
            return failed("smtp: the recipient has no e-mail address")
        if (problem := _address_problem(message.email)) is not None:
            return failed(f"smtp: recipient {message.email!r} {problem}")
        sender = message.sender_email or self.default_sender
        if not sender:
            return failed("smtp: no sender address (branding.sender_email or default_sender)")
        if (problem := _address_problem(sender)) is not None:
            return failed(f"smtp: sender {sender!r} {problem}")
        if not message.text.strip():
            return failed("smtp: the message has no text part")
        try:
            email = self.build(message)
        except ValueError as exc:  # e.g. a line break in the subject: no header injection
            return failed(f"smtp: cannot build the message: {clip(str(exc))}")
        where = f"{self.host}:{self.port}"
        try:
            smtp = self._connect()
            try:
                smtp.send_message(email, sender, [message.email])
            finally:
                _close(smtp)
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = next(iter(exc.recipients.values()), (550, b"refused"))
            return _by_code("recipient", code, reply)
        except smtplib.SMTPAuthenticationError as exc:
            return _by_code("authentication", exc.smtp_code, exc.smtp_error)
        except smtplib.SMTPSenderRefused as exc:
            return _by_code("sender", exc.smtp_code, exc.smtp_error)
        except smtplib.SMTPDataError as exc:
            return _by_code("message", exc.smtp_code, exc.smtp_error)
        except smtplib.SMTPResponseException as exc:
            if exc.smtp_code < 400:
                return retry(f"smtp: unexpected reply from {where}: {exc.smtp_code}")
            return _by_code("session", exc.smtp_code, exc.smtp_error)
        except smtplib.SMTPNotSupportedError as exc:
            return failed(f"smtp: {where} does not support what was asked: {exc}")
        except smtplib.SMTPServerDisconnected as exc:
            return retry(f"smtp: {where} disconnected: {clip(str(exc))}")
        except smtplib.SMTPException as exc:
            return failed(f"smtp: {type(exc).__name__}: {clip(str(exc))}")
        except ssl.SSLCertVerificationError as exc:
            return failed(f"smtp: TLS certificate of {where} not trusted: {exc.verify_message}")
        except TimeoutError:
            return retry(f"smtp: {where} timed out after {self.timeout_s:g} s")
        except OSError as exc:
            return retry(f"smtp: cannot reach {where}: {type(exc).__name__}: {clip(str(exc))}")
        return sent(f"smtp: accepted by {where}", email["Message-ID"])


def _close(smtp: smtplib.SMTP) -> None:
    """QUIT politely; the message (if sent) is already the server's, whatever QUIT says."""
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()

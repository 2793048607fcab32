"""Customers' e-mails read from a tenant's own mailbox over IMAP (issue 19).

Some carriers have no inbound-parse provider: their customers write to a mailbox the carrier
already has. The service logs in to it every minute or so, reads the messages nobody has read
yet (``UNSEEN``, fetched with ``BODY.PEEK`` so that reading marks nothing), and hands each one
to a callback as an :class:`InboundMail`: who wrote, the subject and the customer's own words
(quoted replies, the "On ... wrote:" line above them and a signature cut off). A message is
marked ``\\Seen`` only after the callback returned, so a crash or an error in between leaves it
unseen and it is read again on the next poll: the callback must be idempotent by
``message_id`` (the service's is: a provider message id is one contact). A message a person
already opened in their mail client is seen, and the service leaves it to them.

Transport only: nothing here knows the store or the HTTP service. :class:`MailboxPoller` runs
:func:`poll_mailbox` on a thread for whatever mailboxes its caller lists, every ``poll_s``
seconds; a mailbox that fails (unreachable, wrong password, odd server) is logged and the
others are still read. Logs name the organisation and the mailbox, never a customer's
address or words (an exception's message may quote them, so only its type is logged). The
host is the tenant's choice and the service connects from inside the operator's network, so,
as for webhooks (ADR 0017), it must be and resolve to public addresses only, and the address
checked is the one connected to; certificates are verified against the host name.

Reading a message once fetched (its text, quotes cut, automatic mail flagged) is
``notify/mail_text.py``'s, shared with the Mailgun webhook.
"""

from __future__ import annotations

import contextlib
import hashlib
import imaplib
import logging
import socket
import ssl
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from jobs.thread_loop import ThreadLoop
from notify.channels.ssrf import (
    DestinationRefusedError,
    Resolver,
    UnresolvedError,
    refusal,
    resolve,
)
from notify.mail_text import InboundMail, parse_mail

log = logging.getLogger(__name__)

Tls = Literal["ssl", "starttls", "none"]
TLS_MODES: tuple[Tls, ...] = ("ssl", "starttls", "none")
#: What is fetched of a message: its headers and first part are all a customer's question
#: needs; a photo attached after them is cut off, not downloaded (the parser copes).
MAX_MESSAGE_BYTES = 256 * 1024
#: Messages read from one mailbox in one poll, oldest first (a backlog drains over polls
#: without keeping the other tenants' mailboxes waiting).
MAX_PER_POLL = 50
#: Why a mailbox cannot be read at all (``ssl.SSLError`` and timeouts are ``OSError``s).
UNREADABLE = (imaplib.IMAP4.error, OSError, DestinationRefusedError, UnresolvedError)


@dataclass(frozen=True, slots=True)
class ImapConfig:
    """Where a tenant's mailbox is (the password is kept apart, as the channel's secret)."""

    host: str
    username: str
    port: int = 993
    folder: str = "INBOX"
    tls: Tls = "ssl"

    @classmethod
    def from_json(cls, config: Mapping[str, Any]) -> ImapConfig:
        """From an inbound channel's ``config``; ValueError naming what is wrong."""
        host, username = config.get("host"), config.get("username")
        if not isinstance(host, str) or not host.strip():
            raise ValueError("imap config: host is required")
        if not isinstance(username, str) or not username:
            raise ValueError("imap config: username is required")
        tls = config.get("tls", "ssl")
        if tls not in TLS_MODES:
            raise ValueError(f"imap config: tls must be one of {', '.join(TLS_MODES)}")
        port = config.get("port", 993 if tls == "ssl" else 143)
        if isinstance(port, str) and port.strip().isdigit():
            port = int(port)  # the admin API keeps config values as it got them
        if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65_535:
            raise ValueError("imap config: port must be a number from 1 to 65535")
        folder = config.get("folder") or "INBOX"
        if not isinstance(folder, str) or not folder.isascii() or "\r" in folder or "\n" in folder:
            # Non-ASCII folder names need IMAP's modified UTF-7, which imaplib does not do.
            raise ValueError("imap config: folder must be an ASCII folder name")
        return cls(host=host.strip(), username=username, port=port, folder=folder, tls=tls)


@dataclass(frozen=True, slots=True)
class PollResult:
    """What one poll of a mailbox did."""

    uidvalidity: int
    #: The highest UID up to which every message was handled (``since_uid`` for the next
    #: poll, with the same ``uidvalidity``); the ``since_uid`` given (or 0) if none was.
    last_uid: int
    handled: int
    #: Messages whose callback raised: left unseen, read again next time.
    failed: int


# -- one poll of one mailbox ------------------------------------------------------------------


class _PinnedImap(imaplib.IMAP4):
    """IMAP to the address that was checked (no second lookup a name server could answer
    differently), the host name kept for the greeting and STARTTLS's certificate check."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        self._address = address  # read by _create_socket, which IMAP4's __init__ calls
        super().__init__(host, port, timeout)

    def _create_socket(self, timeout: float | None) -> socket.socket:
        return socket.create_connection((self._address, self.port), timeout)


class _PinnedImapSsl(imaplib.IMAP4_SSL):
    """:class:`_PinnedImap` over implicit TLS (port 993), the certificate checked against
    the host name."""

    def __init__(
        self, host: str, port: int, address: str, context: ssl.SSLContext, timeout: float
    ) -> None:
        self._address = address
        self._context = context
        super().__init__(host, port, ssl_context=context, timeout=timeout)

    def _create_socket(self, timeout: float | None) -> socket.socket:
        sock = socket.create_connection((self._address, self.port), timeout)
        return self._context.wrap_socket(sock, server_hostname=self.host)


def destination(
    config: ImapConfig, *, allow_private: bool, resolver: Resolver = socket.getaddrinfo
) -> str:
    """The address to connect to for the mailbox: a tenant chooses the host and the service
    connects from inside the operator's network, so, as for webhooks (ADR 0017), every
    address the host resolves to must be public (unless ``allow_private``: tests, the demo).
    Raises :class:`DestinationRefusedError` or :class:`UnresolvedError`."""
    addresses = resolve(config.host, config.port, resolver)
    if not allow_private:
        for address in addresses:
            if (why := refusal(address)) is not None:
                raise DestinationRefusedError(
                    f"the mailbox host is or resolves to {why} address: mailboxes are read "
                    "only at public internet addresses"
                )
    return str(addresses[0])


def _connect(
    config: ImapConfig,
    address: str,
    timeout_s: float,
    ssl_context: ssl.SSLContext | None,
) -> imaplib.IMAP4:
    context = ssl_context or ssl.create_default_context()
    if config.tls == "ssl":
        return _PinnedImapSsl(config.host, config.port, address, context, timeout_s)
    imap = _PinnedImap(config.host, config.port, address, timeout_s)
    if config.tls == "starttls":
        try:
            imap.starttls(ssl_context=context)
        except BaseException:
            with contextlib.suppress(OSError):  # the failed handshake may have closed it
                imap.shutdown()
            raise
    return imap


def _quoted(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _check(status: str, data: Any, what: str) -> None:
    if status != "OK":
        detail = data[0].decode("utf-8", "replace") if data and isinstance(data[0], bytes) else ""
        raise imaplib.IMAP4.error(f"{what}: {status} {detail}".strip())


def _literal(data: list[Any]) -> bytes | None:
    """The message bytes of a one-message FETCH answer."""
    for item in data:
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], bytes):
            return item[1]
    return None


def poll_mailbox(
    config: ImapConfig,
    password: str,
    on_message: Callable[[InboundMail], None],
    *,
    since_uid: int | None = None,
    uidvalidity: int | None = None,
    limit: int = MAX_PER_POLL,
    timeout_s: float = 30.0,
    max_message_bytes: int = MAX_MESSAGE_BYTES,
    ssl_context: ssl.SSLContext | None = None,
    allow_private: bool = False,
    resolver: Resolver = socket.getaddrinfo,
) -> PollResult:
    """Read the mailbox's unseen messages (oldest first, at most ``limit``), give each to
    ``on_message`` and mark it ``\\Seen`` once that returned. A callback that raises is
    logged and its message left unseen (read again next poll); the others go on. With
    ``since_uid``, only messages above that UID are read, unless the mailbox's UIDVALIDITY
    is not ``uidvalidity`` (then UIDs were renumbered and every unseen message is read).
    ``ssl_context`` defaults to the system's trust store (certificates verified); a host that
    is or resolves to a non-public address is refused unless ``allow_private``. Raises
    :data:`UNREADABLE` (a refused or unresolved host, a connection, TLS or IMAP error) when
    the mailbox cannot be read at all."""
    address = destination(config, allow_private=allow_private, resolver=resolver)
    imap = _connect(config, address, timeout_s, ssl_context)
    try:
        _check(*imap.login(config.username, password), "login")
        _check(*imap.select(_quoted(config.folder)), f"select {config.folder}")
        _, validity = imap.response("UIDVALIDITY")
        current = int(validity[0]) if validity and validity[0] else 0
        floor = since_uid or 0
        if uidvalidity is not None and uidvalidity != current:
            floor = 0
        status, found = imap.uid("SEARCH", "UNSEEN")
        _check(status, found, "search")
        uids = sorted(int(u) for u in (found[0] or b"").split() if int(u) > floor)[:limit]
        handled = failed = 0
        last = floor
        for uid in uids:
            status, data = imap.uid("FETCH", str(uid), f"(BODY.PEEK[]<0.{max_message_bytes}>)")
            _check(status, data, f"fetch {uid}")
            raw = _literal(data)
            if raw is None:  # expunged by someone else meanwhile
                continue
            fallback = f"imap:{config.username}@{config.host}/{config.folder}/{current}/{uid}"
            mail = parse_mail(raw, hashlib.sha256(fallback.encode()).hexdigest()[:40])
            try:
                on_message(mail)
            except Exception as exc:
                failed += 1
                log.warning(
                    "mailbox %s@%s: message UID %d not handled (%s); left unseen, read again "
                    "next poll",
                    config.username,
                    config.host,
                    uid,
                    type(exc).__name__,  # its message may quote the customer
                )
                log.debug("where it failed:\n%s", "".join(traceback.format_tb(exc.__traceback__)))
                continue
            _check(*imap.uid("STORE", str(uid), "+FLAGS.SILENT", "(\\Seen)"), f"store {uid}")
            handled += 1
            if failed == 0:
                last = uid
        return PollResult(current, last, handled, failed)
    finally:
        with contextlib.suppress(imaplib.IMAP4.error, OSError):
            imap.logout()


# -- every mailbox, every poll_s seconds ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Mailbox:
    """One tenant's mailbox as its inbound channel stores it (``config`` unchecked)."""

    organisation_id: str
    config: Mapping[str, Any]
    password: str = field(repr=False)


class MailboxPoller(ThreadLoop):
    """Reads every listed mailbox every ``poll_s`` seconds on a daemon thread.

    ``mailboxes`` is asked for the list on every pass (a tenant's new or changed channel is
    read from the next pass on); ``on_message`` gets each message with its mailbox. Nothing
    raises out of a pass: a mailbox that fails is logged and the others are read.
    """

    def __init__(
        self,
        mailboxes: Callable[[], Iterable[Mailbox]],
        on_message: Callable[[Mailbox, InboundMail], None],
        *,
        poll_s: float = 60.0,
        timeout_s: float = 30.0,
        limit: int = MAX_PER_POLL,
        ssl_context: ssl.SSLContext | None = None,
        allow_private: bool = False,
    ) -> None:
        if poll_s <= 0 or timeout_s <= 0 or limit < 1:
            raise ValueError("poll_s, timeout_s > 0; limit >= 1")
        super().__init__("mailbox-poller", poll_s)
        self.mailboxes = mailboxes
        self.on_message = on_message
        self.timeout_s = timeout_s
        self.limit = limit
        self.ssl_context = ssl_context
        self.allow_private = allow_private

    def run_once(self) -> int:
        """Poll every mailbox once; how many messages were handled."""
        try:
            boxes = list(self.mailboxes())
        except Exception:
            log.exception("listing the mailboxes to read failed")
            return 0
        handled = 0
        for box in boxes:
            if self.stopping:
                break
            handled += self._poll(box)
        return handled

    def _poll(self, box: Mailbox) -> int:
        try:
            config = ImapConfig.from_json(box.config)
        except ValueError as exc:
            log.warning("mailbox of organisation %s not read: %s", box.organisation_id, exc)
            return 0

        def deliver(mail: InboundMail) -> None:
            self.on_message(box, mail)

        try:
            result = poll_mailbox(
                config,
                box.password,
                deliver,
                limit=self.limit,
                timeout_s=self.timeout_s,
                ssl_context=self.ssl_context,
                allow_private=self.allow_private,
            )
        except UNREADABLE as exc:  # says nothing of any message: logged as it is
            log.warning(
                "mailbox %s@%s of organisation %s not read: %s: %s",
                config.username,
                config.host,
                box.organisation_id,
                type(exc).__name__,
                exc,
            )
            return 0
        except Exception as exc:
            log.warning(
                "mailbox %s@%s of organisation %s not read (%s)",
                config.username,
                config.host,
                box.organisation_id,
                type(exc).__name__,
            )
            log.debug("where it failed:\n%s", "".join(traceback.format_tb(exc.__traceback__)))
            return 0
        return result.handled

    def turn(self) -> bool:
        """One pass over the mailboxes, then the wait (``poke`` polls at once: a tenant just
        set up a mailbox). Stopping waits for the mailbox being read; a message handled but not
        yet marked seen is read again by the next start, and the callback is idempotent."""
        self.run_once()
        return False

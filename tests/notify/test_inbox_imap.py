"""Customers' e-mails read from a mailbox over IMAP (issue 19), against a real IMAP server (a
private Dovecot, tests/notify/dovecot_server.py). Unseen messages reach the callback once and
are marked seen only after it returned; a callback that raises leaves its message unseen for
the next poll; plain, STARTTLS and implicit TLS; a mailbox that fails is logged while the
others are read. How a message's text is read is tests/notify/test_mail_text.py's.

Without Dovecot installed (``apt-get install dovecot-imapd``) the server tests skip saying so,
except in CI (LASTMILE_REQUIRE_SERVERS=1), where they fail.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
import time
from email.message import EmailMessage

import pytest

from notify.channels.ssrf import DestinationRefusedError
from notify.inbox_imap import ImapConfig, Mailbox, MailboxPoller, poll_mailbox
from notify.mail_text import InboundMail
from tests.notify.dovecot_server import PASSWORD, USER, Dovecot, free_port, mail


def _id(message: EmailMessage) -> str:
    return str(message["Message-ID"]).strip("<>")


# -- against the real server ------------------------------------------------------------------


@pytest.mark.integration
def test_unseen_messages_reach_the_callback_once_and_are_then_seen(dovecot: Dovecot) -> None:
    reply = mail(
        "Anna Rossi <anna@example.com>",
        "Re: Il tuo ordine è in viaggio",
        "Quando arriva?\n\nIl giorno lun 1 giu 2026 alle 10:00 Acme <consegne@acme.example> "
        "ha scritto:\n> Il tuo ordine A-1 è in viaggio\n> https://lm.to/t/abcdef123\n",
    )
    both = mail(
        "bob@example.org",
        "Where is my order 12345?",
        "Hi, any news?\n-- \nBob\n+44 7700 900123",
        html="<p>Hi, any news?</p>",
    )
    already_read = mail("carl@example.net", "old", "a person read this one")
    dovecot.deliver(reply)
    dovecot.deliver(already_read, seen=True)
    dovecot.deliver(both)
    got: list[InboundMail] = []
    result = poll_mailbox(dovecot.imap_config(), PASSWORD, got.append, allow_private=True)
    assert [m.message_id for m in got] == [_id(reply), _id(both)]
    assert got[0] == InboundMail(
        _id(reply), "anna@example.com", "Re: Il tuo ordine è in viaggio", "Quando arriva?"
    )
    assert got[1].sender == "bob@example.org"
    assert got[1].subject == "Where is my order 12345?"
    assert got[1].text == "Hi, any news?"  # the signature is not the question
    assert (result.handled, result.failed) == (2, 0)
    assert dovecot.seen() == {_id(reply): True, _id(already_read): True, _id(both): True}
    # Nothing unseen is left: the next poll reads nothing.
    again: list[InboundMail] = []
    assert (
        poll_mailbox(dovecot.imap_config(), PASSWORD, again.append, allow_private=True).handled == 0
    )
    assert again == []


@pytest.mark.integration
def test_a_callback_that_raises_leaves_its_message_unseen_for_the_next_poll(
    dovecot: Dovecot,
) -> None:
    first = mail("anna@example.com", "where is my parcel?", "?")
    second = mail("bob@example.org", "wo ist mein Paket?", "?")
    dovecot.deliver(first)
    dovecot.deliver(second)
    calls: list[str] = []

    def crashing_on_first(m: InboundMail) -> None:
        calls.append(m.message_id)
        if m.message_id == _id(first):
            raise RuntimeError("the database went away")

    result = poll_mailbox(dovecot.imap_config(), PASSWORD, crashing_on_first, allow_private=True)
    assert calls == [_id(first), _id(second)]  # one failure does not stop the others
    assert (result.handled, result.failed) == (1, 1)
    assert result.last_uid == 0  # nothing below the failed one may be skipped next time
    assert dovecot.seen() == {_id(first): False, _id(second): True}
    # The next poll reads it again (the service's handling is idempotent by Message-ID).
    got: list[InboundMail] = []
    result = poll_mailbox(dovecot.imap_config(), PASSWORD, got.append, allow_private=True)
    assert [m.message_id for m in got] == [_id(first)]
    assert dovecot.seen() == {_id(first): True, _id(second): True}
    assert result.last_uid == 1


@pytest.mark.integration
def test_since_uid_skips_older_messages_unless_the_mailbox_was_renumbered(
    dovecot: Dovecot,
) -> None:
    old, new = mail("a@example.com", "one", "1"), mail("b@example.com", "two", "2")
    dovecot.deliver(old)
    dovecot.deliver(new)
    probe = poll_mailbox(
        dovecot.imap_config(), PASSWORD, lambda _m: None, limit=1, allow_private=True
    )
    assert probe.last_uid == 1
    dovecot.deliver(mail("c@example.com", "three", "3"))
    got: list[InboundMail] = []
    poll_mailbox(
        dovecot.imap_config(),
        PASSWORD,
        got.append,
        since_uid=2,
        uidvalidity=probe.uidvalidity,
        allow_private=True,
    )
    assert [m.subject for m in got] == ["three"]
    got.clear()
    poll_mailbox(
        dovecot.imap_config(),
        PASSWORD,
        got.append,
        since_uid=2,
        uidvalidity=probe.uidvalidity + 1,
        allow_private=True,
    )
    assert [m.subject for m in got] == ["two"]


@pytest.mark.integration
@pytest.mark.parametrize("tls", ["starttls", "ssl"])
def test_tls_mailboxes_are_read_and_their_certificates_checked(dovecot: Dovecot, tls: str) -> None:
    message = mail("anna@example.com", "where is my order?", "thanks")
    dovecot.deliver(message)
    with pytest.raises(ssl.SSLCertVerificationError):
        # The system's trust store does not know the test certificate.
        poll_mailbox(dovecot.imap_config(tls), PASSWORD, lambda _m: None, allow_private=True)
    assert dovecot.seen() == {_id(message): False}
    got: list[InboundMail] = []
    poll_mailbox(
        dovecot.imap_config(tls),
        PASSWORD,
        got.append,
        ssl_context=dovecot.client_tls,
        allow_private=True,
    )
    assert [m.message_id for m in got] == [_id(message)]
    assert dovecot.seen() == {_id(message): True}


@pytest.mark.integration
def test_a_big_attachment_is_cut_off_not_downloaded(dovecot: Dovecot) -> None:
    message = mail("anna@example.com", "Where is order 4411?", "Photo of the door attached.")
    message.add_attachment(os.urandom(1_000_000), maintype="image", subtype="jpeg")
    dovecot.deliver(message)
    got: list[InboundMail] = []
    poll_mailbox(
        dovecot.imap_config(), PASSWORD, got.append, max_message_bytes=16_384, allow_private=True
    )
    assert [(m.subject, m.text) for m in got] == [
        ("Where is order 4411?", "Photo of the door attached.")
    ]


@pytest.mark.integration
def test_the_poller_logs_a_failing_mailbox_and_reads_the_others(
    dovecot: Dovecot, caplog: pytest.LogCaptureFixture
) -> None:
    message = mail("anna@example.com", "where is my parcel?", "?")
    dovecot.deliver(message)
    good = {"host": "127.0.0.1", "port": str(dovecot.port), "username": USER, "tls": "none"}
    boxes = [
        Mailbox("org-wrong-password", good, "not-the-password"),
        Mailbox("org-no-server", {**good, "port": free_port()}, PASSWORD),
        Mailbox("org-bad-config", {"host": "127.0.0.1"}, PASSWORD),
        Mailbox("org-good", good, PASSWORD),
    ]
    got: list[tuple[str, str]] = []
    poller = MailboxPoller(
        lambda: boxes,
        lambda box, m: got.append((box.organisation_id, m.message_id)),
        timeout_s=5,
        allow_private=True,
    )
    with caplog.at_level(logging.WARNING, logger="notify.inbox_imap"):
        assert poller.run_once() == 1
    assert got == [("org-good", _id(message))]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for organisation in ("org-wrong-password", "org-no-server", "org-bad-config"):
        assert organisation in logged
    assert PASSWORD not in logged
    assert "not-the-password" not in logged


@pytest.mark.integration
def test_the_poller_thread_reads_new_mail_until_stopped(dovecot: Dovecot) -> None:
    config = {"host": "127.0.0.1", "port": dovecot.port, "username": USER, "tls": "none"}
    arrived = threading.Event()
    got: list[str] = []

    def take(_box: Mailbox, m: InboundMail) -> None:
        got.append(m.subject)
        arrived.set()

    poller = MailboxPoller(
        lambda: [Mailbox("org", config, PASSWORD)], take, poll_s=0.2, allow_private=True
    )
    poller.start()
    try:
        dovecot.deliver(mail("anna@example.com", "where is my parcel?", "?"))
        assert arrived.wait(10), "the poller read nothing in 10 s"
    finally:
        poller.stop()
    dovecot.deliver(mail("anna@example.com", "after the stop", "?"))
    time.sleep(0.5)
    assert got == ["where is my parcel?"]


# -- without a server -------------------------------------------------------------------------


def test_a_mailbox_at_a_private_address_is_refused_unless_allowed() -> None:
    for host in ("127.0.0.1", "10.0.0.7", "169.254.169.254"):
        config = ImapConfig(host=host, username=USER, port=993)
        with pytest.raises(DestinationRefusedError):
            poll_mailbox(config, PASSWORD, lambda _m: None)


def test_config_from_the_channel_row() -> None:
    config = ImapConfig.from_json({"host": "imap.example.com", "port": "993", "username": "u"})
    assert config == ImapConfig("imap.example.com", "u", 993, "INBOX", "ssl")
    assert ImapConfig.from_json({"host": "h", "username": "u", "tls": "starttls"}).port == 143
    for bad in (
        {"username": "u"},
        {"host": "h"},
        {"host": "h", "username": "u", "tls": "maybe"},
        {"host": "h", "username": "u", "port": "99999"},
        {"host": "h", "username": "u", "folder": "Posta in arrivo ✉"},
    ):
        with pytest.raises(ValueError, match="imap config"):
            ImapConfig.from_json(bad)

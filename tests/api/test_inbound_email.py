"""Customers' e-mails through the running service (issue 19): Mailgun's signed inbound route
and a tenant's own IMAP mailbox (a real Dovecot), answered by e-mail through the service's
own outbox sender to a real SMTP server, in the order's language; a bad, stale or foreign
signature learns nothing and records nothing; an e-mail delivered twice is one contact and
one answer; an oversized post is refused; a sender with no order waits for a person."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import func, select

from store.db import make_engine, session_factory
from store.repo import create_organisation
from store.schema import SupportContactRow
from tests.api.live_state import put_on_route
from tests.api.service import Service, running
from tests.api.smtp_server import SmtpServer
from tests.api.test_inbound_api import QUESTIONS, _queue
from tests.api.test_support_api import _order
from tests.notify.dovecot_server import PASSWORD, USER, Dovecot, dovecot_or_skip, mail

pytestmark = pytest.mark.integration

KEY = "mailgun-signing-key-0123456789abcdef"
#: The sender answers within a second (sooner when poked); this is how long a test waits.
MAIL_TIMEOUT_S = 15.0
#: How long a test watches for a second e-mail that must not come.
QUIET_S = 2.0


@pytest.fixture
def mailing(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, smtp: SmtpServer
) -> Iterator[Service]:
    """The service with its own sender thread delivering e-mail to ``smtp`` (no mailbox
    poller: these tests post Mailgun's webhook)."""
    _smtp_env(monkeypatch, smtp)
    with running(database_url, tmp_path, imap_poll_s=0) as s:
        _awake(s)
        yield s


def _smtp_env(monkeypatch: pytest.MonkeyPatch, smtp: SmtpServer) -> None:
    monkeypatch.setenv("LASTMILE_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("LASTMILE_SMTP_PORT", str(smtp.port))
    monkeypatch.setenv("LASTMILE_SMTP_SECURITY", "none")
    monkeypatch.setenv("LASTMILE_SMTP_SENDER", "noreply@lastmile.example")


def _awake(s: Service) -> None:
    """No quiet hours (the real clock may be at night in the customers' zones)."""
    r = s.client.patch(
        "/v1/organisation",
        json={
            "branding": {"name": "Acme", "sender": "consegne@acme.example"},
            "notification_policy": {"quiet_start": None, "quiet_end": None},
        },
        headers=s.headers(),
    )
    assert r.status_code == 200, r.text


def _channel(s: Service, key: str = KEY, admin: str | None = None) -> str:
    """Mailgun set up for the organisation; the webhook's path."""
    r = s.client.put("/v1/inbound/channels/mailgun", json={"secret": key}, headers=s.headers(admin))
    assert r.status_code == 200, r.text
    url: str = r.json()["webhook_url"]
    assert url.endswith("/email"), url
    return "/" + url.split("://", 1)[1].split("/", 1)[1]


def _signed(key: str = KEY, at_s: float | None = None, token: str | None = None) -> dict[str, str]:
    timestamp = str(int(time.time() if at_s is None else at_s))
    token = token or secrets.token_hex(25)
    digest = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    return {"timestamp": timestamp, "token": token, "signature": digest}


def _email(
    sender: str,
    subject: str,
    body: str,
    *,
    message_id: str | None = None,
    stripped: str | None = None,
    **signing: Any,
) -> dict[str, str]:
    """Mailgun's fields for one e-mail, signed."""
    fields = {
        "sender": sender.split("<")[-1].rstrip(">"),
        "from": sender,
        "recipient": "support@acme.example",
        "subject": subject,
        "body-plain": body,
        "Message-Id": f"<{message_id or uuid.uuid4().hex}@mail.example>",
        **_signed(**signing),
    }
    if stripped is not None:
        fields["stripped-text"] = stripped
    return fields


def _multipart(
    fields: dict[str, str], files: tuple[tuple[str, bytes], ...] = ()
) -> tuple[bytes, str]:
    """The fields as Mailgun posts them (multipart/form-data), with attachments."""
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n'
        "Content-Type: text/plain; charset=utf-8\r\n\r\n".encode()
        + value.encode()
        + b"\r\n"
        for name, value in fields.items()
    ]
    parts += [
        f'--{boundary}\r\nContent-Disposition: form-data; name="attachment-{i}"; '
        f'filename="{name}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
        + data
        + b"\r\n"
        for i, (name, data) in enumerate(files, 1)
    ]
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def _post(
    s: Service,
    path: str,
    fields: dict[str, str],
    *,
    form: str = "multipart",
    files: tuple[tuple[str, bytes], ...] = (),
) -> httpx.Response:
    if form == "multipart":
        body, content_type = _multipart(fields, files)
    else:
        body, content_type = urlencode(fields).encode(), "application/x-www-form-urlencoded"
    return s.client.post(path, content=body, headers={"Content-Type": content_type})


def _wait_for(what: str, done: Callable[[], bool], timeout_s: float = MAIL_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting after {timeout_s} s for {what}")
        time.sleep(0.05)


def _mails(smtp: SmtpServer, to: str) -> list[EmailMessage]:
    return [m for m in smtp.inbox.messages if to.lower() in str(m["To"]).lower()]


def _text(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert isinstance(body, EmailMessage)
    return str(body.get_content())


def _contacts(s: Service) -> int:
    engine = make_engine(s.url)
    try:
        with session_factory(engine)() as session:
            return int(session.scalar(select(func.count()).select_from(SupportContactRow)) or 0)
    finally:
        engine.dispose()


def _answered(s: Service, smtp: SmtpServer, to: str) -> EmailMessage:
    """The one e-mail the service sent to ``to`` (waiting for it, then for a second that
    must not come)."""
    s.client.app.state.sender.poke()  # type: ignore[attr-defined]
    _wait_for(f"the answer to {to}", lambda: bool(_mails(smtp, to)))
    time.sleep(QUIET_S)
    [answer] = _mails(smtp, to)
    return answer


# -- Mailgun's inbound route ------------------------------------------------------------------


@pytest.mark.parametrize("lang", sorted(QUESTIONS))
def test_a_signed_email_is_answered_by_email_in_the_orders_language(
    mailing: Service, smtp: SmtpServer, lang: str
) -> None:
    s = mailing
    path = _channel(s)
    address = f"anna.{lang}@example.com"
    _order(s, f"E-{lang}", language=lang, timezone="Europe/Rome", email=address)
    put_on_route(s.url, f"E-{lang}", datetime.now(UTC))
    question, begins = QUESTIONS[lang]
    # Half ask in the subject, with a quoted notification below; half in the body.
    in_subject = sorted(QUESTIONS).index(lang) % 2 == 0
    subject = question if in_subject else "Re: your order"
    body = (
        "\n\nOn Mon, 1 Jun 2026 at 10:00, Acme <consegne@acme.example> wrote:\n> Your order"
        if in_subject
        else f"{question}\n\n> Your order is planned"
    )
    r = _post(s, path, _email(f"Anna <{address.upper()}>", subject, body))
    assert r.status_code == 200, r.text
    assert r.json() == {"ok": True}
    answer = _answered(s, smtp, address)
    assert answer["Subject"] == (f"Re: {subject}" if in_subject else subject)
    text = _text(answer)
    assert "/t/" in text
    assert text.startswith(begins), text
    assert _queue(s) == []
    report = s.client.get("/v1/reports/wismo", headers=s.headers()).json()
    assert report["days"][-1]["contacts"] == 1
    assert report["days"][-1]["answered_auto"] == 1


def test_bad_stale_or_foreign_signatures_learn_nothing_and_record_nothing(
    mailing: Service, smtp: SmtpServer
) -> None:
    s = mailing
    path = _channel(s)
    address = "anna@example.com"
    _order(s, "E-2", email=address)
    put_on_route(s.url, "E-2", datetime.now(UTC))
    engine = make_engine(s.url)
    try:
        other_org, other_admin = create_organisation(
            session_factory(engine), "Other carrier", "UTC"
        )
        bare_org, _ = create_organisation(session_factory(engine), "No mail carrier", "UTC")
    finally:
        engine.dispose()
    other_path = _channel(s, "another-signing-key-0123456789", admin=other_admin)
    question = "where is my order E-2?"
    good = _email(address, question, "")
    unsigned = {k: v for k, v in good.items() if k not in ("timestamp", "token", "signature")}
    tampered = {**good, "timestamp": str(int(good["timestamp"]) + 1)}
    now_s = time.time()
    refusals = [
        _post(s, path, unsigned),
        _post(s, path, _email(address, question, "", key="another-signing-key-0123456789")),
        _post(s, path, tampered),
        _post(s, path, {**good, "signature": good["signature"].upper()[:-1] + "é"}),
        _post(s, path, _email(address, question, "", at_s=now_s - 600)),  # stale
        _post(s, path, _email(address, question, "", at_s=now_s + 600)),  # from the future
        _post(s, path.replace(path.split("/")[-2], "nosuchorganisation"), good),
        _post(s, path.replace(path.split("/")[-2], "x" * 300), good),
        _post(s, path.replace(path.split("/")[-2], str(bare_org)), good),  # no channel
        _post(s, other_path, good),  # another tenant's key
        s.client.post(path, content=json.dumps(good), headers={"Content-Type": "text/json"}),
    ]
    assert {r.status_code for r in refusals} == {403}, [r.text for r in refusals]
    assert len({r.text for r in refusals}) == 1  # the same answer, whatever failed
    assert "E-2" not in refusals[0].text
    assert _contacts(s) == 0
    assert str(other_org) not in refusals[0].text
    time.sleep(QUIET_S)
    assert smtp.inbox.messages == []


def test_an_email_delivered_twice_is_one_contact_and_one_answer(
    mailing: Service, smtp: SmtpServer
) -> None:
    s = mailing
    path = _channel(s)
    address = "anna@example.com"
    _order(s, "E-3", email=address)
    put_on_route(s.url, "E-3", datetime.now(UTC))
    first = _email(address, "Where is my parcel?", "", message_id="twice")
    assert _post(s, path, first).status_code == 200
    assert _post(s, path, first).status_code == 200  # Mailgun's retry of the same post
    # Posted again with a new signature (a second route, a retry signed anew), urlencoded.
    again = _email(address, "Where is my parcel?", "", message_id="twice")
    assert _post(s, path, again, form="urlencoded").status_code == 200
    # A fresh signature lifted onto another message: refused, recorded nowhere.
    lifted = {**_email(address, "Where is order E-3?", "", message_id="other")}
    lifted.update({k: first[k] for k in ("timestamp", "token", "signature")})
    assert _post(s, path, lifted).status_code == 403
    answer = _answered(s, smtp, address)
    assert answer["Subject"] == "Re: Where is my parcel?"
    assert _contacts(s) == 1


def test_photos_attached_are_dropped_unread_and_the_question_answered(
    mailing: Service, smtp: SmtpServer
) -> None:
    """A customer's e-mail with 6 MB of photos, streamed without a length: the attachments
    are dropped as they pass, the text read and answered; a text field sent base64-encoded
    is decoded."""
    s = mailing
    path = _channel(s)
    _order(s, "E-4", email="anna@example.com")
    put_on_route(s.url, "E-4", datetime.now(UTC))
    fields = _email("anna@example.com", "where is my order?", "photos attached")
    photos = tuple((f"door-{i}.jpg", b"\xff\xd8" + b"\x00" * 2_000_000) for i in range(3))
    body, content_type = _multipart(fields, photos)
    # The subject again, base64 (some gateways encode every part): decoded, the first kept.
    boundary = content_type.split("boundary=")[1]
    encoded = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="subject"\r\n'
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        "V2hlcmUgaXMgbXkgcGFyY2VsPw==\r\n"
    ).encode()
    body = encoded + body
    chunks = (body[i : i + 65_536] for i in range(0, len(body), 65_536))
    r = s.client.post(path, content=chunks, headers={"Content-Type": content_type})
    assert r.status_code == 200, r.text
    assert _contacts(s) == 1
    answer = _answered(s, smtp, "anna@example.com")
    assert answer["Subject"] == "Re: Where is my parcel?"


def test_a_post_over_mailguns_own_limit_is_refused_unread(mailing: Service) -> None:
    """Past 32 MB (Mailgun sends at most 25): refused up front when the length says so, as
    soon as the stream passes it otherwise; an urlencoded post (no files) past 256 KiB."""
    s = mailing
    path = _channel(s)
    _order(s, "E-5", email="bob@example.com")
    fields = _email("bob@example.com", "where is my order?", "")
    _, content_type = _multipart(fields)
    r = s.client.post(
        path,
        content=b"",
        headers={"Content-Type": content_type, "Content-Length": str(40 * 1024 * 1024)},
    )
    assert r.status_code == 413
    megabyte = b"\x00" * (1024 * 1024)
    boundary = content_type.split("boundary=")[1]
    part = f'--{boundary}\r\nContent-Disposition: form-data; name="a"; filename="big.bin"\r\n\r\n'

    def stream() -> Any:
        yield part.encode()
        for _ in range(33):
            yield megabyte

    r = s.client.post(path, content=stream(), headers={"Content-Type": content_type})
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "too_large"
    big = {**fields, "body-plain": "x" * 300_000}
    assert _post(s, path, big, form="urlencoded").status_code == 413
    assert _contacts(s) == 0


def test_a_sender_with_no_order_gets_no_answer_and_waits_for_a_person(
    mailing: Service, smtp: SmtpServer
) -> None:
    s = mailing
    path = _channel(s)
    _order(s, "E-5", email="anna@example.com")
    put_on_route(s.url, "E-5", datetime.now(UTC))
    r = _post(
        s,
        path,
        _email("Piet <piet@example.nl>", "Where is order E-5?", "", stripped="Thanks, Piet"),
        form="urlencoded",
    )
    assert r.status_code == 200, r.text
    [queued] = _queue(s)
    assert queued["handover"] == "no_order"
    assert queued["sender"] == "piet@example.nl"
    assert queued["order_id"] is None
    assert "Where is order E-5?" in queued["message"]
    s.client.app.state.sender.poke()  # type: ignore[attr-defined]
    time.sleep(QUIET_S)
    assert smtp.inbox.messages == []


def test_an_auto_reply_is_recorded_but_never_answered(mailing: Service, smtp: SmtpServer) -> None:
    s = mailing
    path = _channel(s)
    _order(s, "E-6", email="anna@example.com")
    put_on_route(s.url, "E-6", datetime.now(UTC))
    fields = _email("anna@example.com", "Where is my parcel? (out of office)", "Back Monday")
    fields["message-headers"] = json.dumps([["Auto-Submitted", "auto-replied"]])
    assert _post(s, path, fields).status_code == 200
    assert _contacts(s) == 1
    s.client.app.state.sender.poke()  # type: ignore[attr-defined]
    time.sleep(QUIET_S)
    assert smtp.inbox.messages == []


def test_incomplete_posts_name_the_missing_fields(mailing: Service) -> None:
    s = mailing
    path = _channel(s)
    r = _post(s, path, {"subject": "where is my order?", **_signed()})
    assert r.status_code == 422, r.text
    assert {p["field"] for p in r.json()["error"]["problems"]} == {"from", "body-plain"}
    r = _post(s, path, _email("not an address", "where?", ""))
    assert r.status_code == 422
    assert [p["field"] for p in r.json()["error"]["problems"]] == ["from"]
    assert _contacts(s) == 0


# -- a tenant's own mailbox, read by the service ----------------------------------------------


@pytest.fixture
def polling(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, smtp: SmtpServer
) -> Iterator[tuple[Service, Dovecot]]:
    """The service reading a private Dovecot's mailbox every 0.2 s, answering through
    ``smtp``."""
    server = Dovecot(dovecot_or_skip())
    try:
        server.start()
        _smtp_env(monkeypatch, smtp)
        with running(database_url, tmp_path, imap_poll_s=0.2, imap_allow_private=True) as s:
            _awake(s)
            yield s, server
    finally:
        server.stop()


def test_an_email_in_the_tenants_mailbox_is_answered_once(
    polling: tuple[Service, Dovecot], smtp: SmtpServer
) -> None:
    s, dovecot = polling
    r = s.client.put(
        "/v1/inbound/channels/imap",
        json={
            "secret": PASSWORD,
            "config": {"host": "127.0.0.1", "port": dovecot.port, "username": USER, "tls": "none"},
        },
        headers=s.headers(),
    )
    assert r.status_code == 200, r.text
    assert r.json()["webhook_url"] is None
    address = "anna@example.com"
    _order(s, "M-1", language="it", timezone="Europe/Rome", email=address)
    put_on_route(s.url, "M-1", datetime.now(UTC))
    question, begins = QUESTIONS["it"]
    message = mail(f"Anna <{address}>", question, "Grazie\n\n> Il tuo ordine")
    dovecot.deliver(message)
    answer = _answered(s, smtp, address)
    assert answer["Subject"] == f"Re: {question}"
    assert _text(answer).startswith(begins)
    message_id = str(message["Message-ID"]).strip("<>")
    _wait_for("the message marked seen", lambda: dovecot.seen() == {message_id: True})
    # A crash after the answer was recorded, before the message was marked seen: read again,
    # answered no more.
    dovecot.mark_unseen()
    _wait_for("the message read again", lambda: dovecot.seen() == {message_id: True})
    time.sleep(QUIET_S)
    assert len(_mails(smtp, address)) == 1
    assert _contacts(s) == 1

"""A customer's e-mail read into an :class:`InboundMail`: who wrote, the subject and their own
words, and whether a machine sent it (issue 19).

E-mails reach the service two ways, a tenant's own mailbox polled over IMAP
(``notify/inbox_imap.py``) and Mailgun's inbound webhook (``api/routes/inbound_email.py``),
and both must read a message the same way: the same text kept, the same automatic mail told
apart and the same id recorded, so that one e-mail arriving both ways is one contact. That
reading lives here, apart from either transport; nothing here knows IMAP, HTTP or the store.

A customer's words are the plain-text part (or the HTML part's text, quoted blocks left out)
with quoted replies, the "On ... wrote:" line above them, a signature and a forwarded or
"Original Message" block cut off. Automatic mail (auto-replies, bounces, mailing lists: RFC
3834's ``Auto-Submitted`` and its older cousins) is flagged ``automatic``: answering an
out-of-office reply with an answer would start a loop between two robots.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import parseaddr
from html.parser import HTMLParser
from typing import Any

#: The store keeps a provider's message id in at most this many characters.
PROVIDER_ID_MAX_CHARS = 100
#: The line a mail client writes above the text it quotes, in the languages customers write.
_ATTRIBUTION = re.compile(
    r"((wrote|a\s+écrit|ha\s+scritto|escribió|escreveu|skrev|kirjoitti|napisał|napisała|"
    r"пишет|написал|написала)\s*|\b(schrieb|schreef)\s.*):\s*$",  # "Am ... schrieb Anna:"
    re.IGNORECASE,
)
#: How such a line begins when the client wrapped it over two lines ("On Mon, ... <a@b>" /
#: "wrote:").
_ATTRIBUTION_START = re.compile(r"^(on|il|am|le|el|op|em|den|w dniu)\s", re.IGNORECASE)
#: Outlook's and forwarders' separator: everything below it is someone else's text.
_ORIGINAL = re.compile(
    r"^-{2,}\s*(original message|forwarded message|ursprüngliche nachricht|"
    r"messaggio originale|messaggio inoltrato|mensaje original|message d'origine|"
    r"message transféré|oorspronkelijk bericht|doorgestuurd bericht)\s*-{2,}$",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class InboundMail:
    """A customer's e-mail as the service reads it."""

    #: The Message-ID without its angle brackets (or a stand-in made from the mailbox and
    #: the message's UID when the message has none).
    message_id: str
    #: The address alone ("anna@example.com"), from the From header; "" when it has none.
    sender: str
    subject: str
    #: The customer's own words: the plain-text part (or the HTML part's text), quotes cut.
    text: str
    #: An auto-reply, a bounce or a list's mail: to record, never to answer.
    automatic: bool = False


def strip_quoted(text: str) -> str:
    """The writer's own words of a plain-text reply: lines quoted with ``>`` removed, with the
    "On ... wrote:" line that introduces them; a signature (below ``-- ``) and a forwarded
    or "Original Message" block cut off."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    kept: list[str] = []
    for index, line in enumerate(lines):
        stripped = line.strip()
        if line in ("-- ", "--") or _ORIGINAL.match(stripped):
            break
        if stripped.startswith(">"):
            continue
        if _ATTRIBUTION.search(stripped) and _quote_follows(lines, index):
            if len(stripped) < 40 and kept and _ATTRIBUTION_START.match(kept[-1].strip()):
                kept.pop()  # the first half of a wrapped "On ..., Anna <a@b>\nwrote:"
            continue
        kept.append(line)
    return "\n".join(kept).strip()


def _quote_follows(lines: list[str], index: int) -> bool:
    """Whether the next non-blank line after ``index`` is quoted (or there is none)."""
    for line in lines[index + 1 :]:
        if line.strip():
            return line.lstrip().startswith(">")
    return True


class _HtmlText(HTMLParser):
    """The text of an HTML body, without what it quotes (``<blockquote>``), styles or
    scripts: for a message with no plain-text part."""

    _SKIP = frozenset({"blockquote", "style", "script", "head", "title"})
    _BREAK = frozenset({"br", "p", "div", "li", "tr", "h1", "h2", "h3", "h4"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:  # noqa: ARG002
        if tag in self._SKIP:
            self.skipping += 1
        elif tag in self._BREAK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag in self._BREAK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def html_text(html: str) -> str:
    """The readable text of an HTML e-mail body, quoted blocks left out."""
    parser = _HtmlText()
    parser.feed(html)
    parser.close()
    text = "".join(parser.parts)
    return "\n".join(line.strip() for line in text.splitlines() if line.strip())


def automatic(headers: Iterable[tuple[str, str]]) -> bool:
    """Whether the headers mark the message as sent by a machine, not a person (RFC 3834's
    ``Auto-Submitted``, ``Precedence: bulk``, a list's or an auto-responder's headers, a
    bounce)."""
    for name, value in headers:
        key, val = name.strip().lower(), str(value).strip().lower()
        if key == "auto-submitted" and val and val != "no":
            return True
        if key == "precedence" and val in ("bulk", "junk", "list", "auto_reply"):
            return True
        if key in ("x-autoreply", "x-autorespond", "x-auto-response-suppress", "list-id"):
            return True
        if key == "return-path" and val in ("<>", ""):
            return True
        if key == "from" and parseaddr(val)[1].split("@")[0] in ("mailer-daemon", "postmaster"):
            return True
    return False


def normalise_message_id(value: str) -> str:
    """A Message-ID as both the webhook and the mailbox see it: no brackets, no spaces."""
    return value.strip().strip("<>").strip()


def provider_message_id(message_id: str) -> str:
    """The id a customer's e-mail is recorded under (``email:`` and its Message-ID): the same
    whichever way the e-mail came in, hashed when too long for the store."""
    plain = f"email:{normalise_message_id(message_id)}"
    if len(plain) <= PROVIDER_ID_MAX_CHARS:
        return plain
    return "email:sha256:" + hashlib.sha256(plain.encode("utf-8", "replace")).hexdigest()


def parse_mail(raw: bytes, fallback_id: str) -> InboundMail:
    """A message as fetched (maybe cut short, as the IMAP poller fetches only its first
    :data:`notify.inbox_imap.MAX_MESSAGE_BYTES`) read into an :class:`InboundMail`;
    ``fallback_id`` stands in for a missing Message-ID."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)  # what policy.default makes
    message_id = normalise_message_id(_header(message, "Message-ID")) or fallback_id
    sender = parseaddr(_header(message, "From"))[1]
    subject = " ".join(_header(message, "Subject").split())
    text = ""
    body = message.get_body(preferencelist=("plain", "html"))
    if isinstance(body, EmailMessage):
        try:
            content = str(body.get_content())
        except (LookupError, ValueError):  # an unknown charset, a broken encoding
            payload = body.get_payload(decode=True)
            content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
        text = strip_quoted(html_text(content) if body.get_content_subtype() == "html" else content)
    headers = [(name, _text(value)) for name, value in message.items()]
    return InboundMail(
        _no_nul(message_id), _no_nul(sender), _no_nul(subject), _no_nul(text), automatic(headers)
    )


def _no_nul(text: str) -> str:
    # PostgreSQL's text cannot hold NUL: a message carrying one would fail on every poll.
    return text.replace("\x00", "")


def _header(message: EmailMessage, name: str) -> str:
    try:
        value = message.get(name)
    except (ValueError, TypeError, IndexError):  # a header the parser cannot make sense of
        return ""
    return _text(value) if value is not None else ""


def _text(value: Any) -> str:
    try:
        return str(value)
    except (ValueError, TypeError, IndexError):
        return ""

"""Mailgun's inbound post, read as it streams (``POST /v1/inbound/mailgun/...``).

Mailgun posts a customer's e-mail as a form: its text fields (sender, subject, the body as
text and HTML, the signature's timestamp, token and signature) and, in multipart posts, every
attachment as a file part, up to 25 MB of photos of a broken parcel. Only the text is needed.
So a multipart body is parsed as it arrives (python-multipart's streaming parser): each text
field is kept up to :data:`MAX_FIELD_BYTES` (decoded by its charset and transfer encoding),
each file part is counted and dropped. Memory stays a few fields' worth and nothing goes to
disk, whatever the attachments weigh, up to :data:`MAX_BODY_BYTES` (past it: too large). An
urlencoded post carries no files: it is read whole, up to :data:`MAX_URLENCODED_BYTES`.
"""

from __future__ import annotations

import base64
import binascii
import quopri
from urllib.parse import parse_qsl

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from api.limits import read_within

#: Largest post read: Mailgun's own limit on a message (25 MB) and the form's framing.
MAX_BODY_BYTES = 32 * 1024 * 1024
#: Largest urlencoded post (text only: a question is a few KiB).
MAX_URLENCODED_BYTES = 256 * 1024
#: A text field is kept up to this many bytes (an HTML body can be long; the reading needs
#: its first few thousand characters).
MAX_FIELD_BYTES = 1024 * 1024
#: Text fields kept at most (Mailgun sends about thirty).
MAX_FIELDS = 200


class TooLargeError(Exception):
    """The post is longer than its limit."""


class _TextParts:
    """python-multipart's callbacks: text fields kept, file parts counted and dropped."""

    def __init__(self) -> None:
        self.fields: list[tuple[str, str]] = []
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._headers: dict[str, bytes] = {}
        self._data = bytearray()
        self._keep = False

    def part_begin(self) -> None:
        self._headers, self._data, self._keep = {}, bytearray(), False

    def header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def header_end(self) -> None:
        name = bytes(self._header_name).decode("latin-1").strip().lower()
        self._headers[name] = bytes(self._header_value).strip()
        self._header_name, self._header_value = bytearray(), bytearray()

    def headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get("content-disposition", b""))
        # A part with a file name is an attachment: never kept.
        self._keep = b"name" in options and b"filename" not in options
        self._keep = self._keep and len(self.fields) < MAX_FIELDS

    def part_data(self, data: bytes, start: int, end: int) -> None:
        if self._keep and len(self._data) < MAX_FIELD_BYTES:
            self._data += data[start : min(end, start + MAX_FIELD_BYTES - len(self._data))]

    def part_end(self) -> None:
        if not self._keep:
            return
        _, options = parse_options_header(self._headers.get("content-disposition", b""))
        kind, type_options = parse_options_header(self._headers.get("content-type", b""))
        raw = _decoded(bytes(self._data), self._headers.get("content-transfer-encoding", b""))
        charset = type_options.get(b"charset", b"utf-8").decode("latin-1") if kind else "utf-8"
        try:
            value = raw.decode(charset, "replace")
        except LookupError:
            value = raw.decode("utf-8", "replace")
        self.fields.append((options[b"name"].decode("utf-8", "replace"), value))


def _decoded(raw: bytes, encoding: bytes) -> bytes:
    """A part's bytes undone from its Content-Transfer-Encoding (as sent when unknown)."""
    kind = encoding.strip().lower()
    try:
        if kind == b"base64":
            return base64.b64decode(raw, validate=False)
        if kind == b"quoted-printable":
            return quopri.decodestring(raw)
    except (binascii.Error, ValueError):
        return raw
    return raw


async def mail_form(request: Request) -> list[tuple[str, str]]:
    """The post's text fields in order. :class:`TooLargeError` past the limits; ValueError
    when the body is neither form kind or its multipart framing is broken."""
    content_type = request.headers.get("content-type", "")
    kind, options = parse_options_header(content_type)
    if kind == b"application/x-www-form-urlencoded":
        raw = await read_within(request, MAX_URLENCODED_BYTES)
        if raw is None:
            raise TooLargeError(f"body over {MAX_URLENCODED_BYTES} bytes")
        return parse_qsl(raw.decode("utf-8"), keep_blank_values=True)
    if kind != b"multipart/form-data" or not options.get(b"boundary"):
        raise ValueError(f"unexpected content type {kind.decode('latin-1')!r}")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise TooLargeError(f"body over {MAX_BODY_BYTES} bytes")
    parts = _TextParts()
    parser = MultipartParser(
        options[b"boundary"],
        {
            "on_part_begin": parts.part_begin,
            "on_header_field": parts.header_field,
            "on_header_value": parts.header_value,
            "on_header_end": parts.header_end,
            "on_headers_finished": parts.headers_finished,
            "on_part_data": parts.part_data,
            "on_part_end": parts.part_end,
        },
    )
    read = 0
    async for chunk in request.stream():
        read += len(chunk)
        if read > MAX_BODY_BYTES:
            raise TooLargeError(f"body over {MAX_BODY_BYTES} bytes")
        parser.write(chunk)
    parser.finalize()
    return parts.fields

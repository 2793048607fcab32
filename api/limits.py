"""Limits on what a request may carry, checked before any route reads a byte.

Size: a body over its limit is refused with 413 and the usual error shape (code
``too_large``): up front when its ``Content-Length`` says so, else as soon as the streamed
bytes pass it (the route reading the body gets :class:`TooLargeError` raised into it,
answered the same). A query string over ``MAX_QUERY_BYTES`` (OsmAnd sends its fix in one) is
refused the same way. Routes may keep tighter limits of their own (positions: 16 KiB).

NUL: PostgreSQL text cannot hold U+0000, so an id or a field carrying one would fail in the
database (a 500). One in the path, the query string or a form body is refused here with 422
(code ``invalid``); JSON bodies are checked by the request models (``api.schemas.Strict``).
"""

from __future__ import annotations

import re

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Any request body (an order, a vehicle, a policy) is far smaller than this.
MAX_BODY_BYTES = 1024 * 1024
#: Larger bodies, by method and path: a VROOM problem inline in a planning job.
LARGER_BODIES: dict[tuple[str, str], int] = {("POST", "/v1/plans"): 32 * 1024 * 1024}
#: The same for paths with an id in them: a driver's action carries a photo and a signature.
LARGER_BODY_PATHS: tuple[tuple[str, re.Pattern[str], int], ...] = (
    ("POST", re.compile(r"/v1/vehicles/[^/]+/actions"), 3 * 1024 * 1024),
    # A customer's e-mail through Mailgun, attachments and all (they are dropped unread as
    # they stream: api/mail_form.py).
    ("POST", re.compile(r"/v1/inbound/mailgun/[^/]+/email"), 32 * 1024 * 1024),
)
#: A query string (OsmAnd's fields are a few hundred bytes).
MAX_QUERY_BYTES = 8 * 1024
NUL_MESSAGE = "NUL characters are not accepted"
_FORM = b"application/x-www-form-urlencoded"


class TooLargeError(HTTPException):
    """A body that passed its limit while being read (answered as a 413 by the handlers)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body over {limit} bytes")


class NulInFormError(HTTPException):
    """A form body with an encoded NUL, found while being read (answered as a 422)."""

    def __init__(self) -> None:
        super().__init__(422, NUL_MESSAGE)


def body_limit(method: str, path: str) -> int:
    """The largest body a request to ``path`` may carry."""
    path = path.rstrip("/") or "/"
    for larger_method, pattern, limit in LARGER_BODY_PATHS:
        if method == larger_method and pattern.fullmatch(path):
            return limit
    return LARGER_BODIES.get((method, path), MAX_BODY_BYTES)


async def read_within(request: Request, max_bytes: int) -> bytes | None:
    """The body as sent, or None when it is longer than ``max_bytes``: unread when its
    declared length says so, else read no further than the limit (for routes that must see
    the exact bytes, such as a provider's signed webhook, below the service-wide limit)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        return None
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > max_bytes:
            return None
    return bytes(raw)


def _error(status: int, code: str, message: str, where: str = "") -> JSONResponse:
    problems = [{"field": where, "message": message}] if where else []
    error = {"code": code, "message": message, "problems": problems}
    return JSONResponse({"error": error}, status_code=status)


class InputLimits:
    """Pure ASGI middleware (no buffering): counts and scans the body as it streams."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = _refusal(scope)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        limit = body_limit(scope["method"], scope["path"])
        form = _header(scope, b"content-type").split(b";")[0].strip().lower() == _FORM
        seen = 0
        tail = b""

        async def checked() -> Message:
            nonlocal seen, tail
            message = await receive()
            if message["type"] == "http.request":
                chunk: bytes = message.get("body", b"")
                seen += len(chunk)
                if seen > limit:
                    raise TooLargeError(limit)
                if form:
                    # "%00" may straddle two chunks: keep the last two bytes of each.
                    if b"%00" in tail + chunk:
                        raise NulInFormError()
                    tail = (tail + chunk)[-2:]
            return message

        await self.app(scope, checked, send)


def _refusal(scope: Scope) -> JSONResponse | None:
    """A response refusing the request from its head alone, or None."""
    query: bytes = scope.get("query_string", b"")
    if len(query) > MAX_QUERY_BYTES:
        return _error(413, "too_large", f"query string over {MAX_QUERY_BYTES} bytes")
    if "\x00" in scope.get("path", ""):
        return _error(422, "invalid", NUL_MESSAGE, "path")
    if b"%00" in query:
        return _error(422, "invalid", NUL_MESSAGE, "query")
    limit = body_limit(scope["method"], scope["path"])
    declared = _header(scope, b"content-length")
    if declared.isdigit() and int(declared) > limit:
        return _error(413, "too_large", f"request body over {limit} bytes")
    return None


def _header(scope: Scope, name: bytes) -> bytes:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value)
    return b""


async def _refused(_: Request, exc: Exception) -> Response:
    if isinstance(exc, NulInFormError):
        return _error(422, "invalid", NUL_MESSAGE, "body")
    message = str(exc.detail) if isinstance(exc, HTTPException) else "too large"
    return _error(413, "too_large", message)


def install(app: FastAPI) -> None:
    """Refuse oversized requests, and NUL characters, before the routes read them."""
    app.add_middleware(InputLimits)
    app.add_exception_handler(TooLargeError, _refused)
    app.add_exception_handler(NulInFormError, _refused)

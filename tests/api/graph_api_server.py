"""A stand-in for Meta's Graph API (the WhatsApp Cloud API's messages endpoint) for tests: a
real HTTP server on 127.0.0.1 in a thread, answering as the Cloud API does and keeping every
request it got.

``POST [/prefix]/v<version>/<phone number id>/messages`` with ``Authorization: Bearer
<token>`` answers 200 with the accepted message's ``wamid``; a token other than the one the
number was given (:meth:`GraphApiServer.allow`) answers 401 with Meta's error 190. While
:meth:`GraphApiServer.fail` is set, messages get Meta's error bodies instead: 429 (error
130429, throughput reached), 500 (131000, something went wrong), 400 (132001, the template
does not exist in that language) or 400 with 131056 (too many messages to one number)."""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_MESSAGES = re.compile(r"^(?:/[^?]*)?/v\d+\.\d+/(?P<phone_id>[^/]+)/messages$")

#: Meta's error bodies for the failures the server can be told to answer with.
ERRORS: dict[str, tuple[int, dict[str, Any]]] = {
    "throughput": (
        429,
        {
            "message": "(#130429) Rate limit hit",
            "type": "OAuthException",
            "code": 130429,
            "error_data": {
                "messaging_product": "whatsapp",
                "details": "Cloud API message throughput has been reached.",
            },
        },
    ),
    "server": (
        500,
        {
            "message": "(#131000) Something went wrong",
            "type": "OAuthException",
            "code": 131000,
            "error_data": {"messaging_product": "whatsapp", "details": "Something went wrong"},
        },
    ),
    "template": (
        400,
        {
            "message": "(#132001) Template name does not exist in the translation",
            "type": "OAuthException",
            "code": 132001,
            "error_data": {
                "messaging_product": "whatsapp",
                "details": "template name (delivery_update) does not exist in it",
            },
        },
    ),
    "pair_rate": (
        400,
        {
            "message": "(#131056) (Business Account, Consumer Account) pair rate limit hit",
            "type": "OAuthException",
            "code": 131056,
            "error_data": {
                "messaging_product": "whatsapp",
                "details": "Too many messages sent from this phone number to the same "
                "phone number in a short period of time",
            },
        },
    ),
}
#: HTTP status -> the failure answered with it, for :meth:`GraphApiServer.fail`.
BY_STATUS = {429: "throughput", 500: "server", 400: "template"}


@dataclass(frozen=True)
class GraphRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def token(self) -> str:
        return self.headers.get("authorization", "").removeprefix("Bearer ")


class GraphApiServer:
    """The server; ``url`` once started. Thread-safe: the service's sender thread and the
    test read and change it at once."""

    def __init__(self) -> None:
        #: Every request, accepted or not, oldest first.
        self.requests: list[GraphRequest] = []
        self._accepted: list[GraphRequest] = []
        self.tokens: dict[str, str] = {}
        self._failure: str | None = None
        self._failures_left: int | None = None
        self._retry_after: str | None = None
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    # -- what it answers ------------------------------------------------------------------------

    def allow(self, phone_number_id: str, token: str) -> None:
        """Messages from this number need this token (a number never allowed takes any)."""
        with self._lock:
            self.tokens[phone_number_id] = token

    def fail(
        self, failure: str | int | None, times: int | None = None, retry_after: str | None = None
    ) -> None:
        """Answer messages with ``failure`` (a key of :data:`ERRORS`, or an HTTP status of
        :data:`BY_STATUS`) ``times`` times (None: until told otherwise; None failure: never)."""
        with self._lock:
            self._failure = BY_STATUS[failure] if isinstance(failure, int) else failure
            self._failures_left = times
            self._retry_after = retry_after

    def messages(self) -> list[dict[str, Any]]:
        """The bodies of the messages accepted, oldest first."""
        with self._lock:
            return [r.body for r in self._accepted]

    def _answer(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> Any:
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {"unreadable": raw.decode("utf-8", "replace")}
        request = GraphRequest(method, path, headers, body)
        with self._lock:
            self.requests.append(request)
            match = _MESSAGES.match(path)
            if method != "POST" or match is None:
                return 400, _error(100, f"Unsupported {method.lower()} request."), {}
            wanted = self.tokens.get(match["phone_id"])
            if wanted is not None and request.token != wanted:
                return 401, _error(190, "Error validating access token."), {}
            if self._failure is not None and self._failures_left != 0:
                if self._failures_left is not None:
                    self._failures_left -= 1
                status, error = ERRORS[self._failure]
                extra = {"Retry-After": self._retry_after} if self._retry_after else {}
                return status, {"error": {**error, "fbtrace_id": "AbCdEf123"}}, extra
            self._accepted.append(request)
            to = str(body.get("to", ""))
            wamid = f"wamid.HBgM{to}FQIAERgS{next(self._ids):012d}"
            accepted: dict[str, Any] = {"id": wamid}
            if body.get("type") == "template":
                accepted["message_status"] = "accepted"
            return (
                200,
                {
                    "messaging_product": "whatsapp",
                    "contacts": [{"input": to, "wa_id": to.removeprefix("+")}],
                    "messages": [accepted],
                },
                {},
            )

    # -- running --------------------------------------------------------------------------------

    def start(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self._reply()

            def do_GET(self) -> None:
                self._reply()

            def _reply(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, body, extra = owner._answer(self.command, self.path, headers, raw)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                for name, value in extra.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the test reads ``requests``."""

        self._server = _Quiet(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="graph-api", daemon=True
        )
        self._thread.start()
        host, port = self._server.server_address[:2]
        self.url = f"http://{host!s}:{port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None


class _Quiet(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (a timeout test) is expected: no traceback."""


def _error(code: int, message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "OAuthException", "code": code}}


@contextmanager
def graph_api() -> Iterator[GraphApiServer]:
    """A running server, stopped afterwards."""
    server = GraphApiServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()

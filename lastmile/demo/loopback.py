"""The demo's stand-ins for the world outside (the shop's webhook endpoint, the customers'
phones) each listen on a free 127.0.0.1 port: one small HTTP server on a daemon thread that
reads a POST's body up to a limit and answers what its handler returns."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: A handler's answer: the HTTP status and a JSON body (None: no body).
Reply = tuple[int, dict[str, Any] | None]
#: A handler: the request's path, headers and body → its answer.
Handle = Callable[[str, Message, bytes], Reply]


class LoopbackServer:
    """Answers POSTs on 127.0.0.1 through ``handle``; a body over ``max_body_bytes`` is a 413,
    not read. ``url`` is known once made, before ``start``."""

    def __init__(self, name: str, handle: Handle, max_body_bytes: int = 65_536) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length > max_body_bytes:
                    self._reply(413, None)
                    return
                self._reply(*handle(self.path, self.headers, self.rfile.read(length)))

            def _reply(self, status: int, body: dict[str, Any] | None) -> None:
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                if body is not None:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_: Any) -> None:  # the demo's screen is the log
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name=name, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

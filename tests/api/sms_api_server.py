"""A Twilio-shaped SMS API on a loopback port, for tests that read what the service texts:
it keeps each accepted message (``To``, ``From``, ``Body``, the idempotency key) and answers
like Twilio (201 with a ``sid``)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl


@dataclass
class SmsApi:
    url: str
    account_sid: str = "AC0123456789abcdef0123456789abcdef"
    auth_token: str = "sms-api-auth-token-0123456789"
    messages: list[dict[str, str]] = field(default_factory=list)

    def bodies(self, to: str | None = None) -> list[str]:
        return [m["Body"] for m in list(self.messages) if to is None or m["To"] == to]


@contextmanager
def sms_api() -> Iterator[SmsApi]:
    """A running fake Twilio Messages API; its ``url`` is the base URL to configure."""
    api = SmsApi(url="")
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            form = dict(parse_qsl(self.rfile.read(length).decode("utf-8")))
            form["Idempotency-Key"] = self.headers.get("Idempotency-Key", "")
            with lock:
                api.messages.append(form)
                sid = f"SM{len(api.messages):032d}"
            body = json.dumps({"sid": sid, "status": "queued"}).encode()
            self.send_response(201)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    api.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()

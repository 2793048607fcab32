"""The demo's webhook receiver: the shop's endpoint, on a loopback port. Each delivery is
checked against its signature (as docs/webhooks.md tells receivers to) and appended to a
JSON-lines log. The secret is the shop's own, created through the API
(``POST /v1/organisation/webhook-secrets``) once the receiver is listening; until it is set,
every delivery is refused."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from notify.channels.webhook import verify_signature

#: Largest body the receiver reads (a delivery notification is a few kB).
MAX_BODY_BYTES = 65_536


class WebhookLog:
    """Receives signed webhooks on 127.0.0.1 and logs them to ``path`` (one JSON per line)."""

    def __init__(self, path: Path, secret: str | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.secret = secret
        self.count = 0
        self.bad_signatures = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY_BYTES:
                    self.send_response(413)
                    self.end_headers()
                    return
                body = self.rfile.read(length)
                secret = receiver.secret
                ok = secret is not None and verify_signature(
                    secret,
                    self.headers.get("X-Lastmile-Signature", ""),
                    body,
                    time.time(),
                )
                receiver.record(self.headers.get("Idempotency-Key", ""), body, ok)
                self.send_response(200 if ok else 401)
                self.end_headers()

            def log_message(self, *_: Any) -> None:  # the demo's screen is the log
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="demo-webhooks", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/lastmile"

    def record(self, key: str, body: bytes, signature_ok: bool) -> None:
        try:
            payload: Any = json.loads(body)
        except ValueError:
            payload = body.decode("utf-8", "replace")
        line = json.dumps(
            {"idempotency_key": key, "signature_ok": signature_ok, "body": payload},
            ensure_ascii=False,
        )
        with self._lock:
            if signature_ok:
                self.count += 1
            else:
                self.bad_signatures += 1
            with self.path.open("a", encoding="utf-8") as log:
                log.write(line + "\n")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

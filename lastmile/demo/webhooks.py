"""The demo's webhook receiver: the shop's endpoint, on a loopback port. Each delivery is
checked against its signature (as docs/webhooks.md tells receivers to) and appended to a
JSON-lines log. The secret is the shop's own, created through the API
(``POST /v1/organisation/webhook-secrets``) once the receiver is listening; until it is set,
every delivery is refused."""

from __future__ import annotations

import json
import threading
import time
from email.message import Message
from pathlib import Path
from typing import Any

from lastmile.demo.loopback import LoopbackServer, Reply
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
        self._server = LoopbackServer("demo-webhooks", self._receive, MAX_BODY_BYTES)
        self.port = self._server.port

    def _receive(self, _path: str, headers: Message, body: bytes) -> Reply:
        secret = self.secret
        ok = secret is not None and verify_signature(
            secret, headers.get("X-Lastmile-Signature", ""), body, time.time()
        )
        self.record(headers.get("Idempotency-Key", ""), body, ok)
        return (200 if ok else 401), None

    @property
    def url(self) -> str:
        return f"{self._server.url}/hooks/lastmile"

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
        self._server.start()

    def stop(self) -> None:
        self._server.stop()

"""The customers' phones in the demo: one loopback server standing in for the two providers
the service texts through, a Twilio-shaped SMS API and the WhatsApp Business Cloud API (its
Graph API ``/{version}/{phone number id}/messages``). Every message the service sends a
customer (notifications and answers alike) is appended to a JSON-lines log, and the answers
to customers who wrote are shown on the demo's screen as they arrive."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from lastmile.demo.loopback import LoopbackServer, Reply

#: Largest request the phones read (a message is a few kB).
MAX_BODY_BYTES = 65_536
ACCOUNT_SID = "ACdemo000000000000000000000000000"
AUTH_TOKEN = "demo-sms-api-token-0000000000"


class Phones:
    """Receives the service's SMS and WhatsApp messages on 127.0.0.1; logs them to ``path``."""

    def __init__(self, path: Path, on_message: Callable[[dict[str, Any]], None]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.on_message = on_message
        self.count = 0
        self._lock = threading.Lock()
        self._server = LoopbackServer("demo-phones", self._receive, MAX_BODY_BYTES)
        self.port = self._server.port

    def _receive(self, path: str, _headers: Message, raw: bytes) -> Reply:
        if path.endswith("/Messages.json"):
            form = dict(parse_qsl(raw.decode("utf-8", "replace")))
            number = self.record("sms", form.get("To", ""), form.get("Body", ""))
            return 201, {"sid": f"SMdemo{number:08d}", "status": "queued"}
        if path.endswith("/messages"):
            sent = _whatsapp(raw)
            to = sent.get("to", "")
            number = self.record("whatsapp", to, sent.get("text", ""), sent)
            return 200, {
                "messaging_product": "whatsapp",
                "contacts": [{"input": to, "wa_id": to.lstrip("+")}],
                "messages": [{"id": f"wamid.demo{number:08d}"}],
            }
        return 404, {"error": "unknown path"}

    @property
    def url(self) -> str:
        return self._server.url

    def settings(self) -> dict[str, Any]:
        """The service's settings that point its SMS and WhatsApp channels at these phones."""
        return {
            "sms_twilio_base_url": self.url,
            "sms_twilio_account_sid": ACCOUNT_SID,
            "sms_twilio_auth_token": AUTH_TOKEN,
            "sms_from": "+358400000000",
            "whatsapp_graph_url": self.url,
        }

    def record(self, channel: str, to: str, text: str, raw: dict[str, Any] | None = None) -> int:
        line = {"channel": channel, "to": to, "text": text}
        if raw is not None and raw.get("template"):
            line["template"] = raw["template"]
        with self._lock:
            self.count += 1
            number = self.count
            with self.path.open("a", encoding="utf-8") as log:
                log.write(json.dumps(line, ensure_ascii=False) + "\n")
        self.on_message(line)
        return number

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop()


def _whatsapp(raw: bytes) -> dict[str, Any]:
    """What a Cloud API ``messages`` request sends: to whom, the text (a session message's
    body, or a template's body parameters) and the template's name."""
    try:
        body: Any = json.loads(raw)
    except ValueError:
        return {}
    if not isinstance(body, dict):
        return {}
    to = str(body.get("to", ""))
    to = to if to.startswith("+") else f"+{to}"
    if body.get("type") == "text":
        return {"to": to, "text": str((body.get("text") or {}).get("body", ""))}
    template = body.get("template") or {}
    words = [
        str(p.get("text", ""))
        for part in template.get("components", [])
        if part.get("type") == "body"
        for p in part.get("parameters", [])
    ]
    return {"to": to, "text": " ".join(words), "template": template.get("name", "")}

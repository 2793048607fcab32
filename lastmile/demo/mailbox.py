"""The demo's customers' mailbox: a real SMTP server (aiosmtpd) on a loopback port that
writes every message it accepts as a ``.eml`` file, one per recipient, in a folder any mail
program or browser can open."""

from __future__ import annotations

import email
import email.policy
import re
import socket
import threading
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Writer:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.count = 0
        self.subjects: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    async def handle_DATA(  # noqa: N802 (aiosmtpd's hook name)
        self, _server: Any, _session: Any, envelope: Any
    ) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        with self._lock:
            for to in envelope.rcpt_tos:
                self.count += 1
                safe = re.sub(r"[^A-Za-z0-9@._-]", "_", to)[:80]
                path = self.folder / f"{self.count:05d}-{safe}.eml"
                path.write_bytes(envelope.content)
                self.subjects.append((to, str(parsed.get("Subject", ""))))
        return "250 2.0.0 Ok: queued"


class Mailbox:
    """An SMTP server on 127.0.0.1 writing ``.eml`` files into ``folder``."""

    def __init__(self, folder: Path, port: int | None = None) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.port = port or free_port()
        self._writer = _Writer(folder)
        self._controller = Controller(
            self._writer, hostname="127.0.0.1", port=self.port, server_hostname="mailbox.demo"
        )

    @property
    def count(self) -> int:
        return self._writer.count

    def recent(self, n: int) -> list[tuple[str, str]]:
        """The last ``n`` (recipient, subject) pairs."""
        with self._writer._lock:
            return list(self._writer.subjects[-n:])

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

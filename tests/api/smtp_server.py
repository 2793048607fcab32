"""A real SMTP server (aiosmtpd) on a loopback port for the service tests, and its fixture
(in tests/api/conftest.py)."""

from __future__ import annotations

import email
import email.policy
import socket
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import pytest

from tests.conftest import require_servers


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Inbox:
    """An aiosmtpd handler keeping every message it accepts."""

    messages: list[EmailMessage] = field(default_factory=list)

    async def handle_DATA(  # noqa: N802 (aiosmtpd's hook name)
        self, _server: Any, _session: Any, envelope: Any
    ) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 2.0.0 Ok: queued"


class SmtpServer:
    """aiosmtpd on a fixed loopback port, stopped and started again by the test."""

    def __init__(self) -> None:
        try:
            from aiosmtpd.controller import Controller
        except ImportError as exc:
            if require_servers():
                pytest.fail(f"aiosmtpd is not installed: {exc}")
            pytest.skip(f"aiosmtpd is not installed: {exc}")
        self._controller_class = Controller
        self.inbox = Inbox()
        self.port = _free_port()
        self.controller: Any = None

    def start(self) -> None:
        self.controller = self._controller_class(
            self.inbox, hostname="127.0.0.1", port=self.port, server_hostname="mx.test"
        )
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

"""Fixtures shared by the service tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.api.smtp_server import SmtpServer


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    """A running SMTP server, stopped after the test."""
    server = SmtpServer()
    server.start()
    yield server
    server.stop()

"""The servers several fault tests share: a Mosquitto and an SMTP server, each private to one
test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.smtp_server import SmtpServer
from tests.fault_procs import Mosquitto


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path / "broker")
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    """An SMTP server on a reserved port, not started: each test starts (and stops) it."""
    server = SmtpServer()
    yield server
    server.stop()

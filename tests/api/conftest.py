"""Fixtures shared by the service tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.browser import PHONE_SCREEN, LiveService, launched_chromium, live_service
from tests.api.driver_fleet import Fleet, driver_fleet
from tests.api.service import Service, running
from tests.api.smtp_server import SmtpServer


@pytest.fixture
def service(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Service]:
    """The service with its notification sender off (tests drive it, or do not need it).
    Modules that need another service fixture define their own."""
    monkeypatch.setenv("LASTMILE_SENDER_ENABLED", "false")
    with running(database_url, tmp_path) as s:
        yield s


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    """A running SMTP server, stopped after the test."""
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fleet(service: Service) -> Fleet:
    """The drivers' app's small fleet (tests/api/driver_fleet.py)."""
    return driver_fleet(service)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """One headless Chromium for a module's browser tests (skip, or fail in CI, without)."""
    with launched_chromium() as browser:
        yield browser


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveService]:
    """The service on a real port, for the browser."""
    with live_service(tmp_path) as s:
        yield s


@pytest.fixture
def phone(chromium: Any) -> Iterator[Any]:
    """A page on a phone-sized screen, in British English."""
    context = chromium.new_context(viewport=PHONE_SCREEN, locale="en-GB")
    page = context.new_page()
    yield page
    context.close()

"""Real browser tests' parts: the service on a real port (uvicorn in a thread), a headless
Chromium driven by Playwright (the machine's own Chromium, never a downloaded one), and a
folder for the screenshots each test saves as an artefact."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from api.app import create_app
from api.settings import Settings
from lastmile.demo.driver_phone import CHROMIUM_ARGS, find_chromium
from store.db import make_engine, session_factory
from store.repo import create_organisation
from tests.api.service import Service
from tests.conftest import require_servers

#: Where screenshots go (CI keeps the folder as the run's artefacts).
ARTIFACTS = Path(os.environ.get("LASTMILE_ARTIFACTS_DIR", "test-artifacts")) / "screenshots"

#: A phone's screen: pages must read on it without sideways scrolling.
PHONE_SCREEN = {"width": 360, "height": 740}


def chromium_path() -> str:
    """The machine's Chromium (LASTMILE_CHROMIUM, else on PATH), or skip (fail in CI)."""
    found = find_chromium()
    if found is None:
        message = "no Chromium on this machine (Debian: apt-get install chromium)"
        if require_servers():
            pytest.fail(message)
        pytest.skip(message)
    return found


@contextmanager
def launched_chromium() -> Iterator[Any]:
    """The machine's headless Chromium (skip, or fail in CI, without one)."""
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class LiveService(Service):
    """The service listening on a real port, with its app (for its state)."""

    app: FastAPI
    base_url: str


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def live_service(data_dir: Path, **overrides: Any) -> Iterator[LiveService]:
    """The service on SQLite, MQTT and sender off unless ``overrides`` (more settings) say
    otherwise, served by uvicorn on a free port."""
    url = f"sqlite:///{data_dir / 'lastmile.db'}"
    options: dict[str, Any] = {"mqtt": False, "sender_enabled": False, **overrides}
    settings = Settings(data_dir=data_dir, database_url=url, plan_time_limit_s=1.0, **options)
    app = create_app(settings)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="on",
            # Open event streams would hold the shutdown: cut them after a moment.
            timeout_graceful_shutdown=2,
        )
    )
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the service did not start")
        time.sleep(0.05)
    # Pages update fast in tests: the event streams poll the store often.
    app.state.tracking_poll_s = 0.2
    app.state.dashboard_poll_s = 0.2
    engine = make_engine(url)
    try:
        _, admin = create_organisation(session_factory(engine), "Test carrier", "UTC")
    finally:
        engine.dispose()
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            yield LiveService(client, admin, url, app, base)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def screenshot(page: Any, name: str) -> Path:
    """Save the whole page as ``<name>.png`` among the run's artefacts."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path

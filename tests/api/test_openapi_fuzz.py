"""schemathesis against the live service's OpenAPI: random valid and invalid requests to every
operation, with an admin key, never a 5xx. The example count is bounded for CI
(LASTMILE_FUZZ_EXAMPLES raises it for a longer run)."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings

from api.app import create_app
from api.settings import Settings
from store.db import make_engine, session_factory, upgrade
from store.repo import create_organisation

EXAMPLES = int(os.environ.get("LASTMILE_FUZZ_EXAMPLES", "12"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    data = tmp_path_factory.mktemp("fuzz")
    url = f"sqlite:///{Path(data) / 'lastmile.db'}"
    upgrade(url)
    engine = make_engine(url)
    _, key = create_organisation(session_factory(engine), "Fuzz", "UTC")
    engine.dispose()
    port = _free_port()
    app = create_app(Settings(data_dir=data, database_url=url, plan_time_limit_s=0.3, mqtt=False))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the service did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", key
    server.should_exit = True
    thread.join(timeout=30)


def test_no_server_errors(live: tuple[str, str]) -> None:
    """Whatever the input, to whatever operation, the service answers without a 5xx."""
    base, key = live
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    headers = {"Authorization": f"Bearer {key}"}
    failures: list[str] = []
    operations = 0
    calls = [0]
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        @given(case=operation.as_strategy())
        def call(case: schemathesis.Case) -> None:
            calls[0] += 1
            response = case.call(base_url=base, headers=headers, timeout=30)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path}: {response.text[:300]}")

        call()
    assert operations >= 15
    assert calls[0] >= operations
    print(f"{operations} operations, {calls[0]} calls, {len(failures)} server errors")
    assert not failures, "\n".join(failures[:20])

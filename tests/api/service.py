"""Helpers for service tests: a running app on a given database, keys, polling."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from store.db import make_engine, session_factory
from store.repo import create_organisation


@dataclass
class Service:
    #: In-process (TestClient) or, for browser tests, a real client of a listening service.
    client: httpx.Client
    admin: str
    url: str

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.admin}"}

    def key(self, role: str, vehicle: str | None = None) -> str:
        """A new key of ``role``; a device key is for ``vehicle`` (which must exist)."""
        body = {"role": role} if vehicle is None else {"role": role, "vehicle_id": vehicle}
        response = self.client.post("/v1/keys", json=body, headers=self.headers())
        assert response.status_code == 201, response.text
        key: str = response.json()["key"]
        return key

    def wait(self, plan_id: str, timeout_s: float = 60.0, key: str | None = None) -> dict[str, Any]:
        """The plan once finished, read with ``key`` (default: the admin's)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            body: dict[str, Any] = self.client.get(
                f"/v1/plans/{plan_id}", headers=self.headers(key)
            ).json()
            if body["status"] in ("succeeded", "failed", "cancelled"):
                return body
            time.sleep(0.1)
        raise AssertionError(f"plan {plan_id} still not finished after {timeout_s} s")


@contextmanager
def running(
    url: str, data_dir: Path, admin: str | None = None, **overrides: Any
) -> Iterator[Service]:
    """``overrides``: more settings (e.g. ``task_queue_url``)."""
    options: dict[str, Any] = {"plan_time_limit_s": 1.0, "mqtt": False, **overrides}
    settings = Settings(data_dir=data_dir, database_url=url, **options)
    with TestClient(create_app(settings)) as client:
        if admin is None:
            engine = make_engine(url)
            try:
                _, admin = create_organisation(session_factory(engine), "Test carrier", "UTC")
            finally:
                engine.dispose()
        yield Service(client, admin, url)

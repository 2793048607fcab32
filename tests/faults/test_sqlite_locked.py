"""SQLite locked by another process past the busy timeout: a clear 503, nothing half-written."""

from __future__ import annotations

import sqlite3
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.fault_procs import ServiceProcess
from tests.faults.figures import report
from tests.faults.service_day import (
    DEPOT,
    add_osmand_device,
    new_store,
    order_body,
    service_env,
    sqlite_url,
)
from tests.faults.store_reads import integrity, stored_count, stored_orders

pytestmark = pytest.mark.faults


#: The service's SQLite busy timeout in the lock test.
BUSY_S = 2.0


def test_sqlite_locked_longer_than_the_busy_timeout_is_a_clear_503(tmp_path: Path) -> None:
    """Another process holds SQLite's write lock (BEGIN EXCLUSIVE) past the service's busy
    timeout: writes over the API and over /osmand get a JSON 503 saying the database is busy,
    nothing is half-written, the service keeps answering, and once the lock is released the
    same writes succeed."""
    db = tmp_path / "lastmile.db"
    url = sqlite_url(tmp_path)
    admin = new_store(url, ("van-1",))
    service = ServiceProcess(
        tmp_path / "service",
        service_env(
            url,
            LASTMILE_MQTT="false",
            LASTMILE_SENDER_ENABLED="false",
            LASTMILE_SQLITE_BUSY_TIMEOUT_S=str(BUSY_S),
        ),
        admin,
    )
    locker = sqlite3.connect(db, isolation_level=None, timeout=10)
    try:
        service.start()
        device = add_osmand_device(service, "van-1")
        at = int(datetime.now(UTC).timestamp()) - 60
        fix: dict[str, str | float] = {
            "id": device,
            "lat": DEPOT[0],
            "lon": DEPOT[1],
            "timestamp": at,
        }

        locker.execute("BEGIN EXCLUSIVE")
        started = time.monotonic()
        r = service.client.post("/v1/orders", json=order_body("o-1"), headers=service.headers())
        order_s = time.monotonic() - started
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "database_busy", r.text
        assert "busy" in r.json()["error"]["message"], r.text
        # A fix waits for the lock too, while the service answers probes all along (the
        # wait is on a worker thread, not on the event loop).
        with httpx.Client(base_url=service.base_url, timeout=10) as other:
            answers: dict[str, httpx.Response] = {}
            fixer = threading.Thread(
                target=lambda: answers.setdefault("fix", other.get("/osmand", params=fix))
            )
            fixer.start()
            probes: list[float] = []
            while fixer.is_alive():
                probe_started = time.monotonic()
                assert service.client.get("/healthz").status_code == 200
                probes.append(time.monotonic() - probe_started)
            fixer.join()
        assert len(probes) >= 5, probes
        assert max(probes) < BUSY_S / 4, f"the service stalled {max(probes):.2f} s"
        assert answers["fix"].status_code == 503, answers["fix"].text
        assert answers["fix"].json()["error"]["code"] == "database_busy"
        locker.execute("ROLLBACK")

        assert "o-1" not in stored_orders(url)
        assert stored_count(url) == 0
        r = service.client.post("/v1/orders", json=order_body("o-1"), headers=service.headers())
        assert r.status_code == 201, r.text
        r = service.client.get("/osmand", params=fix)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "applied", r.text
        assert stored_count(url) == 1
        assert integrity(db) == "ok"
        report(
            f"SQLite locked: busy timeout {BUSY_S:.0f} s; the order write got 503 database_busy "
            f"after {order_s:.2f} s, the fix too; {len(probes)} /healthz probes meanwhile, the "
            f"slowest {max(probes) * 1000:.0f} ms; "
            f"nothing written; after the release both writes succeeded; integrity ok"
        )
    finally:
        locker.close()
        service.close()

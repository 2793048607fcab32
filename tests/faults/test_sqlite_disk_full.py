"""SQLite's disk full: a clear 503, the database intact."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fault_procs import ServiceProcess
from tests.faults.figures import report
from tests.faults.service_day import new_store, order_body, service_env
from tests.faults.store_reads import integrity, stored_orders

pytestmark = pytest.mark.faults


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MB tmpfs (mounting needs root; skipped otherwise)."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("simulating a full disk mounts a small tmpfs, which needs root")
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode(errors='replace')}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(disk: Path, leave_bytes: int) -> Path:
    """Fill the disk with a file, then give back ``leave_bytes`` of it."""
    filler = disk / "filler"
    full: OSError | None = None
    with filler.open("wb", buffering=0) as out:
        while full is None:
            try:
                out.write(b"\0" * 65_536)
            except OSError as exc:
                full = exc
        out.truncate(max(0, out.tell() - leave_bytes))
    assert full.errno == errno.ENOSPC, full
    return filler


def test_sqlite_disk_full_is_a_clear_503_and_leaves_the_database_intact(
    tmp_path: Path, small_disk: Path
) -> None:
    """The SQLite file on a disk that fills up: the write that does not fit gets a JSON 503
    saying the disk is full, the database stays intact (integrity_check ok) with every write
    answered 201 and none other; once there is room again writes succeed."""
    db = small_disk / "lastmile.db"
    url = f"sqlite:///{db}"
    admin = new_store(url)
    service = ServiceProcess(
        tmp_path / "service",
        service_env(url, LASTMILE_MQTT="false", LASTMILE_SENDER_ENABLED="false"),
        admin,
    )
    try:
        service.start()
        filler = _fill(small_disk, leave_bytes=256 * 1024)
        created: list[str] = []
        refused: httpx.Response | None = None
        for k in range(500):
            order = {**order_body(f"o-{k}"), "customer_ref": "x" * 200}
            r = service.client.post("/v1/orders", json=order, headers=service.headers())
            if r.status_code != 201:
                refused = r
                break
            created.append(f"o-{k}")
        assert refused is not None, "the disk never filled up"
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["code"] == "database_full", refused.text
        assert integrity(db) == "ok"
        assert stored_orders(url) == set(created), "an order half-written or lost"

        filler.unlink()
        r = service.client.post("/v1/orders", json=order_body("after"), headers=service.headers())
        assert r.status_code == 201, r.text
        assert stored_orders(url) == {*created, "after"}
        assert integrity(db) == "ok"
        report(
            f"SQLite disk full: {len(created)} orders written into the last 256 KB, the next "
            f"refused with 503 database_full; integrity ok; written again once there was room"
        )
    finally:
        service.close()

"""PostgreSQL restarted under load: every accepted fix kept, the refused ones a clear 503."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fault_procs import Postgres, ServiceProcess, wait_until
from tests.faults.figures import report
from tests.faults.fix_streams import OsmandStream
from tests.faults.service_day import add_osmand_device, new_store, service_env
from tests.faults.store_reads import stored_fixes

pytestmark = pytest.mark.faults


@pytest.fixture
def postgres() -> Iterator[Postgres]:
    server = Postgres()
    try:
        server.start()
        yield server
    finally:
        server.close()


def test_postgres_restart_under_load_keeps_every_accepted_fix(
    tmp_path: Path, postgres: Postgres
) -> None:
    """OsmAnd fixes over HTTP at a steady rate; PostgreSQL stops (fast) and starts again.
    While it is down /readyz says 503 and fixes are refused with a JSON 503 (the device keeps
    them and retries); then the service is ready again by itself, and every fix it answered
    200 to is in the store, once."""
    admin = new_store(postgres.url, ("van-1",))
    service = ServiceProcess(
        tmp_path / "service", service_env(postgres.url, LASTMILE_MQTT="false"), admin
    )
    stream: OsmandStream | None = None
    try:
        service.start()
        device = add_osmand_device(service, "van-1")
        stream = OsmandStream(service.base_url, device, rate_hz=50)
        stream.start()
        wait_until("fixes accepted before the restart", lambda: len(stream.accepted) >= 100, 30)

        stop_started = time.monotonic()
        postgres.stop("fast")
        down_at = time.monotonic()
        not_ready_s = wait_until("/readyz to say 503", lambda: service.ready() == 503, 10)
        refused_before = stream.refused
        # Down while 150 fixes (3 s) are refused.
        wait_until("fixes refused while it is down", lambda: stream.refused >= refused_before + 150)
        postgres.start()
        up_at = time.monotonic()
        ready_s = wait_until("/readyz to say 200 by itself", lambda: service.ready() == 200, 30)
        wait_until("a fix accepted again", lambda: stream.accepted_after(up_at) is not None, 30)
        accepted_again_s = stream.accepted_after(up_at)
        assert accepted_again_s is not None
        refusals = [at for at, status in stream.answers if status != 200]
        accepted_at_restart = len(stream.accepted)
        wait_until("more fixes after", lambda: len(stream.accepted) >= accepted_at_restart + 100)
        stream.stop()

        stored = stored_fixes(postgres.url)
        report(
            f"PostgreSQL restart: fast stop took {down_at - stop_started:.1f} s, down "
            f"{up_at - down_at:.1f} s; /readyz 503 {not_ready_s:.2f} s after the stop, 200 "
            f"{ready_s:.2f} s after the start, first fix accepted again {accepted_again_s:.2f} s "
            f"after it; fixes refused for {refusals[-1] - refusals[0]:.1f} s; "
            f"{sum(stream.statuses.values())} fixes sent at 50/s: "
            f"{dict(stream.statuses)}; {len(stream.accepted)} accepted, "
            f"{sum(stored.values())} position rows for {len(stored)} fixes"
        )
        assert set(stream.statuses) <= {200, 503}, stream.errors
        body = json.loads(stream.errors[503])
        assert body["error"]["code"] == "database_unavailable", body
        missing = stream.accepted - set(stored)
        assert not missing, f"{len(missing)} accepted fixes are not in the store"
        assert set(stored.values()) == {1}, "a fix stored twice"
    finally:
        if stream is not None:
            stream.stop()
        service.close()

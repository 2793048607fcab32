"""The ingester keeps a redelivered fix once (MQTT QoS 1 is at-least-once)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from store.db import make_engine, session_factory
from telematics.ingest import Ingester
from tests.faults.fix_streams import fix_message
from tests.faults.service_day import DEPOT, new_store, sqlite_url
from tests.faults.store_reads import stored_count, stored_fixes

pytestmark = pytest.mark.faults


def test_a_redelivered_older_fix_is_stored_once(tmp_path: Path) -> None:
    """MQTT QoS 1 is at-least-once: a batch committed whose acks were lost comes again after
    a reconnect. Each redelivered fix, older than the vehicle's last, is a duplicate, not a
    second history row."""
    url = sqlite_url(tmp_path)
    new_store(url, ("van-1",))
    engine = make_engine(url)
    try:
        ingester = Ingester(session_factory(engine))
        t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
        fixes = [fix_message("van-1", t0 + timedelta(seconds=k), *DEPOT) for k in range(5)]
        with ingester.batch():
            first = [ingester.fleet_message(m.topic, m.payload).status for m in fixes]
        with ingester.batch():
            again = [ingester.fleet_message(m.topic, m.payload) for m in fixes]
            # Within one batch too: an old fix twice in the same delivery.
            old = fix_message("van-1", t0 - timedelta(seconds=10), *DEPOT)
            twice = [ingester.fleet_message(old.topic, old.payload).status for _ in range(2)]
    finally:
        engine.dispose()
    assert first == ["applied"] * 5
    assert [(r.status, r.reason) for r in again] == [("rejected", "duplicate")] * 5
    assert twice == ["history", "rejected"]
    assert set(stored_fixes(url).values()) == {1}
    assert stored_count(url) == 6

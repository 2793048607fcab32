"""The broker restarted mid-stream: no fix lost, none stored twice."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.fault_procs import Mosquitto, ServiceProcess, wait_until
from tests.faults.figures import report
from tests.faults.fix_streams import MqttStream, steady_fixes
from tests.faults.service_day import new_store, service_env, sqlite_url
from tests.faults.store_reads import check_exactly_once, dead_letters, stored_count, stored_fixes

pytestmark = pytest.mark.faults


def test_broker_restart_mid_stream_loses_and_doubles_no_fix(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """QoS 1 fixes flow publisher -> Mosquitto -> the service. Mosquitto stops (cleanly, its
    state saved) while the publisher goes on into its own queue, then starts again: the
    ingester reconnects by itself and every fix published is stored exactly once."""
    vehicles = ("van-1", "van-2")
    url = sqlite_url(tmp_path)
    admin = new_store(url, vehicles)
    service = ServiceProcess(
        tmp_path / "service",
        service_env(
            url,
            LASTMILE_MQTT_URL=mosquitto.url,
            LASTMILE_MQTT_CLIENT_ID="ingester",
            # Every fix, exactly once: the overload rule may not coalesce the burst the
            # restart releases however slow this machine is (tests/faults/
            # test_overload_sheds_by_rule.py tests the rule).
            LASTMILE_MQTT_SHED_AFTER_S="60",
        ),
        admin,
    )
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    stream = MqttStream(mosquitto, steady_fixes(vehicles, t0), rate_hz=200)
    try:
        service.start()
        wait_until("the ingester's MQTT connection", lambda: service.ready() == 200, 20)
        stream.start()
        wait_until("fixes stored before the outage", lambda: stored_count(url) >= 200, 30)

        mosquitto.stop()
        down_at = time.monotonic()
        at_stop = stream.count
        wait_until("/readyz to see the broker gone", lambda: service.ready() == 503, 10)
        # The outage lasts while the publisher queues 600 more fixes (3 s) of its own.
        wait_until("fixes published into the outage", lambda: stream.count >= at_stop + 600, 30)
        mosquitto.start()
        up_at = time.monotonic()
        reconnect_s = wait_until(
            "the ingester to reconnect by itself", lambda: service.ready() == 200, 40
        )
        wait_until("fixes after the restart", lambda: stream.count >= at_stop + 1000, 30)
        stream.stop()
        acked_s = wait_until("every publish to be acknowledged", stream.all_acked, 60)
        total = stream.count
        stored_s = wait_until(f"all {total} fixes stored", lambda: stored_count(url) >= total, 30)

        stored = stored_fixes(url)
        report(
            f"broker restart: broker down {up_at - down_at:.1f} s; {total} fixes published at "
            f"200/s ({at_stop} before the stop; {stream.queued_offline} went into the "
            f"publisher's offline queue); the ingester reconnected {reconnect_s:.1f} s after "
            f"the broker was back (paho backoff 1 s doubling); all acked "
            f"{acked_s:.1f} s and all stored {acked_s + stored_s:.1f} s after publishing "
            f"ended; {sum(stored.values())} position rows for {len(stored)} fixes; "
            f"dead letters {dict(dead_letters(url))}"
        )
        check_exactly_once(stream.published, stored)
        assert stream.queued_offline > 0, "the publisher never queued a fix while offline"
    finally:
        stream.close()
        service.close()

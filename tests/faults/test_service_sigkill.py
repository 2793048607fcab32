"""The service SIGKILLed mid-stream and restarted: no fix lost, no mail sent twice."""

from __future__ import annotations

import itertools
import json
import math
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.api.smtp_server import SmtpServer
from tests.fault_procs import Mosquitto, ServiceProcess, wait_until
from tests.faults.figures import report
from tests.faults.fix_streams import Message, MqttStream, fix_message
from tests.faults.service_day import (
    STOPS,
    dispatched_day,
    new_store,
    service_env,
    smtp_env,
    sqlite_url,
)
from tests.faults.store_reads import (
    check_exactly_once,
    dead_letters,
    interrupted,
    mail_key,
    outbox,
    settled,
    stored_count,
    stored_fixes,
)

pytestmark = pytest.mark.faults


def _xy(origin: tuple[float, float], point: tuple[float, float]) -> tuple[float, float]:
    """Local metres east and north of ``origin`` (equirectangular; exact enough in a city)."""
    k = 6_371_000 * math.pi / 180
    return (
        (point[1] - origin[1]) * k * math.cos(math.radians(origin[0])),
        (point[0] - origin[0]) * k,
    )


def drive(
    line: list[tuple[float, float]], stops: list[tuple[str, tuple[float, float]]], step_m: float
) -> list[tuple[float, float] | str]:
    """Points every ``step_m`` along the road line (lat, lon), with 45 more at the place
    nearest to each stop (a dwell longer than the arrival's 30 s) followed by the stop's
    order id (its driver's "delivered")."""
    points: list[tuple[float, float]] = [line[0]]
    for (lat0, lon0), (lat1, lon1) in itertools.pairwise(line):
        dx, dy = _xy((lat0, lon0), (lat1, lon1))
        n = max(1, int(math.hypot(dx, dy) // step_m))
        points += [
            (lat0 + (lat1 - lat0) * i / n, lon0 + (lon1 - lon0) * i / n) for i in range(1, n + 1)
        ]
    route: list[tuple[float, float] | str] = []
    start = 0
    for order, place in stops:
        nearest = min(range(start, len(points)), key=lambda i: math.hypot(*_xy(place, points[i])))
        route += [*points[start:nearest], *[points[nearest]] * 45, order]
        start = nearest + 1
    return [*route, *points[start:]]


def test_service_sigkilled_mid_stream_loses_no_fix_and_mails_nothing_twice(
    tmp_path: Path, mosquitto: Mosquitto, smtp: SmtpServer
) -> None:
    """A van drives its dispatched route, its fixes and its driver's "delivered" events over
    MQTT; the service is SIGKILLed mid-route and started again with the same settings (same
    MQTT client id: its persistent session kept what arrived meanwhile). Every fix is stored
    exactly once, and each notification reaches the customer's mailbox once."""
    smtp.start()
    url = sqlite_url(tmp_path)
    admin = new_store(url)
    service = ServiceProcess(
        tmp_path / "service",
        service_env(
            url,
            LASTMILE_MQTT_URL=mosquitto.url,
            LASTMILE_MQTT_CLIENT_ID="ingester",
            # A send cut short by the kill is taken up again 2 s after its claim.
            LASTMILE_SENDER_LEASE_S="2",
            **smtp_env(smtp),
        ),
        admin,
    )
    stream: MqttStream | None = None
    try:
        service.start()
        order_ids = dispatched_day(service, url, ("a", "b"))
        [plan] = service.client.get("/v1/plans", headers=service.headers()).json()
        geojson = service.client.get(
            f"/v1/plans/{plan['id']}/geojson", headers=service.headers()
        ).json()
        [line] = [f["geometry"]["coordinates"] for f in geojson["features"]]
        path = drive(
            [(lat, lon) for lon, lat in line], [(o, STOPS[o]) for o in order_ids], step_m=10
        )
        t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=40)

        def messages() -> Iterator[Message]:
            at = t0
            for point in path:
                if isinstance(point, str):  # the driver's event at the stop
                    event = {"order_id": point, "kind": "delivered", "at": at.isoformat()}
                    yield Message("fleet/v1/events", json.dumps(event).encode())
                else:
                    at += timedelta(seconds=1)
                    yield fix_message("v1", at, *point)

        fixes = sum(1 for p in path if not isinstance(p, str))
        assert fixes < 40 * 60, "the drive must end before now"
        wait_until("the ingester's MQTT connection", lambda: service.ready() == 200, 20)
        stream = MqttStream(mosquitto, messages(), rate_hz=60)
        stream.start()
        wait_until("part of the route driven", lambda: stored_count(url) >= fixes * 0.45, 60)

        service.kill()
        killed_at = time.monotonic()
        sent_at_kill = stream.count
        stored_at_kill = stored_count(url)
        mails_at_kill = len(smtp.inbox.messages)
        rows_at_kill = outbox(url)
        restart_s = service.start()
        back_at = time.monotonic()
        sent_while_down = stream.count - sent_at_kill
        wait_until("the ingester back on the broker", lambda: service.ready() == 200, 20)
        assert stream.done.wait(60), "the stream did not end"
        wait_until("every publish acknowledged", stream.all_acked, 30)
        wait_until(f"all {fixes} fixes stored", lambda: stored_count(url) >= fixes, 30)
        caught_up_s = time.monotonic() - back_at
        wait_until("the sender to settle", lambda: settled(url), 30)

        stored = stored_fixes(url)
        rows = outbox(url)
        sent = {row.key: row for row in rows if row.status == "sent"}
        mails = Counter(mail_key(m) for m in smtp.inbox.messages)
        cut_short = interrupted(url)
        report(
            f"service SIGKILL: {fixes} fixes + {len(order_ids)} driver events at 60/s; killed "
            f"with {stored_at_kill} fixes stored, {len(rows_at_kill)} notifications queued "
            f"({mails_at_kill} mailed); down {back_at - killed_at:.1f} s (restart "
            f"{restart_s:.1f} s), {sent_while_down} messages published meanwhile waited in "
            f"its broker session; caught up {caught_up_s:.1f} s after it was back; "
            f"{sum(stored.values())} position rows for {len(stored)} fixes; "
            f"{len(rows)} notifications ({Counter(r.trigger for r in rows)}), "
            f"{len(sent)} sent, {sum(mails.values())} mails received; interrupted sends "
            f"{len(cut_short)}; dead letters {dict(dead_letters(url))}"
        )
        check_exactly_once(stream.published, stored)
        assert sent, "no notification was sent"
        assert all(row.status != "dead" for row in rows), [r for r in rows if r.status == "dead"]
        assert set(mails) == set(sent), "mails and sent notifications differ"
        by_id = {row.key: row.id for row in rows}
        for key, n in mails.items():
            # Twice only in the window the sender documents (SMTP accepted, the kill came
            # before the outcome was committed): then the outbox recorded it as interrupted.
            assert n == 1 or (n == 2 and by_id[key] in cut_short), (key, n)
    finally:
        if stream is not None:
            stream.close()
        service.close()

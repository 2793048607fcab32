"""Fault tests: the service, its broker, its database and its SMTP server are real processes
(tests/fault_procs.py), stopped, killed and restarted while fixes flow; every claim is checked
by counting what was published, accepted, stored and delivered.

Each test prints its measured figures as ``[faults] ...`` lines (``pytest -m faults -rA``).
"""

from __future__ import annotations

import errno
import itertools
import json
import math
import os
import sqlite3
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from sqlalchemy import func, select

from store.db import make_engine, session_factory, transaction, upgrade
from store.repo import create_organisation
from store.schema import (
    DeadLetterRow,
    NotificationAttemptRow,
    OrderRow,
    OutboxRow,
    PositionRow,
    VehicleRow,
)
from telematics.ingest import Ingester
from tests.api.live_state import dispatch
from tests.api.service import Service
from tests.api.smtp_server import SmtpServer
from tests.fault_procs import Mosquitto, Postgres, ServiceProcess, wait_until

pytestmark = pytest.mark.faults

#: Where the vans start (Helsinki centre: the default road network) and three customers.
DEPOT = (60.1699, 24.9384)
STOPS = {"a": (60.1665, 24.9433), "b": (60.1700, 24.9500), "c": (60.1720, 24.9450)}
#: No quiet hours: the real clock may be at night in the customers' zone.
AWAKE = {"quiet_start": None, "quiet_end": None}
#: Outbox states in which the sender has nothing more to do.
FINAL = ("sent", "dead", "cancelled", "failed")


def report(line: str) -> None:
    """A measured figure, printed for RELIABILITY.md (shown by ``-rA`` or ``-s``)."""
    print(f"[faults] {line}")


# -- the store, read from the test's side ---------------------------------------------------


def sqlite_url(directory: Path) -> str:
    return f"sqlite:///{directory / 'lastmile.db'}"


def new_store(url: str, vehicles: Iterable[str] = ()) -> str:
    """A migrated store with one organisation (and these vehicles); returns its admin key."""
    upgrade(url)
    engine = make_engine(url)
    try:
        sessions = session_factory(engine)
        organisation_id, key = create_organisation(sessions, "Fault carrier", "UTC")
        now = datetime.now(UTC)
        with transaction(sessions) as session:
            for vehicle in vehicles:
                session.add(
                    VehicleRow(
                        organisation_id=organisation_id,
                        external_id=vehicle,
                        start_lat=DEPOT[0],
                        start_lon=DEPOT[1],
                        shift_start=now - timedelta(hours=4),
                        shift_end=now + timedelta(hours=8),
                    )
                )
    finally:
        engine.dispose()
    return key


def read(url: str, statement: Any) -> list[Any]:
    engine = make_engine(url)
    try:
        with session_factory(engine)() as session:
            return list(session.execute(statement).all())
    finally:
        engine.dispose()


def stored_fixes(url: str) -> Counter[tuple[str, float]]:
    """(vehicle id, fix time in epoch seconds) -> how many position rows hold it."""
    rows = read(
        url,
        select(VehicleRow.external_id, PositionRow.fix_time).join(
            VehicleRow, VehicleRow.id == PositionRow.vehicle_id
        ),
    )
    return Counter((vehicle, fix_time.timestamp()) for vehicle, fix_time in rows)


def stored_count(url: str) -> int:
    [(count,)] = read(url, select(func.count()).select_from(PositionRow))
    return int(count)


def dead_letters(url: str) -> Counter[str]:
    return Counter(reason for (reason,) in read(url, select(DeadLetterRow.reason)))


def check_exactly_once(
    published: set[tuple[str, float]], stored: Counter[tuple[str, float]]
) -> None:
    missing = published - set(stored)
    twice = {fix: n for fix, n in stored.items() if n > 1}
    extra = set(stored) - published
    assert not missing, f"{len(missing)} of {len(published)} fixes lost, e.g. {sorted(missing)[:3]}"
    assert not twice, f"{len(twice)} fixes stored more than once, e.g. {sorted(twice)[:3]}"
    assert not extra, f"{len(extra)} fixes stored that were never sent"


@dataclass(frozen=True)
class Outboxed:
    id: int
    order: str
    trigger: str
    key: str
    status: str
    attempts: int
    due_at: datetime


def outbox(url: str) -> list[Outboxed]:
    """The outbox rows, oldest first (each with its order's external id)."""
    rows = read(
        url,
        select(OutboxRow, OrderRow.external_id)
        .join(OrderRow, OrderRow.id == OutboxRow.order_id)
        .order_by(OutboxRow.id),
    )
    return [
        Outboxed(r.id, order, r.trigger, r.dedupe_key, r.status, r.attempts, r.due_at)
        for r, order in rows
    ]


def interrupted(url: str) -> set[int]:
    """Outbox ids with an attempt cut short by a crash (the documented at-least-once window)."""
    rows = read(
        url,
        select(NotificationAttemptRow.outbox_id).where(
            NotificationAttemptRow.status == "interrupted"
        ),
    )
    return {outbox_id for (outbox_id,) in rows}


def settled(url: str) -> bool:
    """The sender has nothing left to do now."""
    now = datetime.now(UTC)
    return all(
        row.status in FINAL or (row.status == "deferred" and row.due_at > now)
        for row in outbox(url)
    )


def mail_key(mail: EmailMessage) -> str:
    return str(mail["X-Lastmile-Idempotency-Key"]).strip()


# -- MQTT: a publisher with its own offline queue -------------------------------------------


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    #: (vehicle id, fix time in epoch seconds) when the message is a position.
    fix: tuple[str, float] | None = None


def fix_message(vehicle: str, at: datetime, lat: float, lon: float) -> Message:
    """A fix in our JSON (telematics/decoders.py) on ``fleet/{vehicle}/position``."""
    payload = {"lat": lat, "lon": lon, "time": at.isoformat(), "speed_mps": 5.0}
    return Message(
        f"fleet/{vehicle}/position", json.dumps(payload).encode(), (vehicle, at.timestamp())
    )


def steady_fixes(vehicles: tuple[str, ...], t0: datetime) -> Iterator[Message]:
    """Fix k of every vehicle at t0 + k seconds, a metre north of the one before."""
    for k in itertools.count():
        for i, vehicle in enumerate(vehicles):
            at = t0 + timedelta(seconds=k)
            yield fix_message(vehicle, at, DEPOT[0] + k * 1e-5, DEPOT[1] + i * 1e-3)


@dataclass
class MqttStream:
    """QoS 1 messages published at a steady rate from a thread, through a paho client that
    keeps its own queue while the broker is away (``publish`` answers ``MQTT_ERR_NO_CONN``
    and paho sends the message once it has reconnected)."""

    broker: Mosquitto
    messages: Iterator[Message]
    rate_hz: float
    published: set[tuple[str, float]] = field(default_factory=set)
    count: int = 0
    queued_offline: int = 0
    done: threading.Event = field(default_factory=threading.Event)
    #: Packet ids of the messages sent, and of those the broker acknowledged (PUBACK).
    _mids: set[int] = field(default_factory=set)
    _acked: set[int] = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _client: mqtt.Client | None = None

    def __post_init__(self) -> None:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"fault-pub-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        client.reconnect_delay_set(min_delay=1, max_delay=2)
        client.max_inflight_messages_set(100)
        client.on_publish = self._on_publish
        client.connect(self.broker.address.host, self.broker.address.port)
        client.loop_start()
        self._client = client

    def _on_publish(self, _c: mqtt.Client, _u: object, mid: int, _r: object, _p: object) -> None:
        self._acked.add(mid)

    def _publish(self, message: Message) -> None:
        assert self._client is not None
        info = self._client.publish(message.topic, message.payload, qos=1)
        assert info.rc in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN), (
            mqtt.error_string(info.rc)
        )
        if info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN:
            self.queued_offline += 1
        assert info.mid not in self._mids, "packet ids wrapped: publish fewer messages"
        self._mids.add(info.mid)
        if message.fix is not None:
            self.published.add(message.fix)
        self.count += 1

    def _run(self) -> None:
        started = time.monotonic()
        for k, message in enumerate(self.messages):
            # Steady: message k leaves k / rate seconds after the start.
            if self._stop.wait(max(0.0, started + k / self.rate_hz - time.monotonic())):
                break
            self._publish(message)
        self.done.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="mqtt-stream", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def all_acked(self) -> bool:
        return self._mids <= self._acked

    def close(self) -> None:
        self.stop()
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path / "broker")
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    """An SMTP server on a reserved port, not started: each test starts (and stops) it."""
    server = SmtpServer()
    yield server
    server.stop()


def service_env(url: str, **env: str) -> dict[str, str]:
    return {"LASTMILE_DATABASE_URL": url, "LASTMILE_PLAN_TIME_LIMIT_S": "1", **env}


def smtp_env(smtp: SmtpServer) -> dict[str, str]:
    return {
        "LASTMILE_SMTP_HOST": "127.0.0.1",
        "LASTMILE_SMTP_PORT": str(smtp.port),
        "LASTMILE_SMTP_SECURITY": "none",
        "LASTMILE_SMTP_SENDER": "noreply@lastmile.example",
    }


def as_service(service: ServiceProcess, url: str) -> Service:
    """The API test helpers' view of the running process (httpx speaks as TestClient does)."""
    return Service(service.client, service.admin_key, url)  # type: ignore[arg-type]


def dispatched_day(service: ServiceProcess, url: str, orders: Iterable[str]) -> list[str]:
    """Quiet hours off; a depot, van v1 with OsmAnd device dev-1, and one customer with an
    e-mail address per stop, planned and dispatched. Returns the order ids in route order."""
    s = as_service(service, url)
    r = s.client.patch(
        "/v1/organisation",
        json={
            "branding": {"name": "Acme", "sender": "news@acme.example"},
            "notification_policy": AWAKE,
        },
        headers=s.headers(),
    )
    assert r.status_code == 200, r.text
    return dispatch(
        s,
        {
            order: {
                "location": {"lat": STOPS[order][0], "lon": STOPS[order][1]},
                "service_s": 60,
                "contact": {"name": "Anna", "email": f"{order}@example.com"},
            }
            for order in orders
        },
        DEPOT,
    )


# -- 0. The ingester keeps a redelivered fix once -------------------------------------------


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


# -- 1. Broker restart mid-stream ------------------------------------------------------------


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
        service_env(url, LASTMILE_MQTT_URL=mosquitto.url, LASTMILE_MQTT_CLIENT_ID="ingester"),
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


# -- 2. The service SIGKILLed mid-stream and restarted ---------------------------------------


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


# -- 3. SMTP down for a while, then back -----------------------------------------------------


def test_smtp_down_then_back_delivers_each_mail_once_in_order(
    tmp_path: Path, smtp: SmtpServer
) -> None:
    """Notifications queued while the SMTP server is down are retried with backoff, and all
    delivered once it is back: each exactly once, and each customer's in the order they
    were queued (out for delivery before delivered)."""
    url = sqlite_url(tmp_path)
    admin = new_store(url)
    service = ServiceProcess(
        tmp_path / "service",
        service_env(
            url,
            LASTMILE_MQTT="false",
            LASTMILE_SENDER_BACKOFF_S="0.1",
            LASTMILE_SENDER_MAX_ATTEMPTS="30",
            **smtp_env(smtp),
        ),
        admin,
    )
    try:
        service.start()
        orders = ("a", "b", "c")
        dispatched_day(service, url, orders)
        down_at = time.monotonic()  # the SMTP server has not started yet
        at = datetime.now(UTC) - timedelta(seconds=30)
        fix: dict[str, str | float] = {
            "id": "dev-1",
            "lat": DEPOT[0],
            "lon": DEPOT[1],
            "timestamp": int(at.timestamp()),
        }
        r = service.client.get("/osmand", params=fix)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "applied", r.text
        wait_until(
            "first messages for every order, retried while SMTP is down",
            lambda: {row.order for row in outbox(url) if row.attempts >= 5} == set(orders),
        )
        for order, kind in (("a", "delivered"), ("b", "failed"), ("c", "delivered")):
            r = service.client.post(
                "/v1/vehicles/v1/events",
                json={"order_id": order, "kind": kind, "reason": "not at home"},
                headers=service.headers(),
            )
            assert r.status_code == 201, r.text
        wait_until(
            "the outcomes queued",
            lambda: (
                {row.order for row in outbox(url) if row.trigger in ("delivered", "failed")}
                == set(orders)
            ),
        )
        queued = outbox(url)
        assert all(row.status in ("pending", "sending") for row in queued), queued
        assert not smtp.inbox.messages

        smtp.start()
        up_at = time.monotonic()
        delivered_s = wait_until(
            f"all {len(queued)} messages delivered",
            lambda: len(smtp.inbox.messages) >= len(queued) and settled(url),
            30,
        )
        rows = outbox(url)
        mails = [mail_key(m) for m in smtp.inbox.messages]
        report(
            f"SMTP down: {up_at - down_at:.1f} s; {len(queued)} messages for {len(orders)} "
            f"orders queued meanwhile, {sum(row.attempts for row in queued)} failed attempts "
            f"(backoff 0.1 s doubling); all delivered {delivered_s:.1f} s after it was back; "
            f"{len(mails)} mails received for {len(rows)} messages, "
            f"statuses {dict(Counter(row.status for row in rows))}"
        )
        assert all(row.status == "sent" for row in rows), rows
        assert sorted(mails) == sorted(row.key for row in rows), "not each message once"
        for order in orders:
            queued_order = [row.key for row in rows if row.order == order]
            mailed_order = [key for key in mails if key in queued_order]
            assert mailed_order == queued_order, (order, mailed_order, queued_order)
    finally:
        service.close()


# -- 4. PostgreSQL restarted under load ------------------------------------------------------


@dataclass
class OsmandStream:
    """OsmAnd fixes over HTTP (GET /osmand) at a steady rate from a thread; a fix counts as
    accepted only when the service answered 200."""

    base_url: str
    device: str
    rate_hz: float
    t0: datetime = field(
        default_factory=lambda: datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    )
    accepted: set[tuple[str, float]] = field(default_factory=set)
    statuses: Counter[int] = field(default_factory=Counter)
    #: The first answer seen with each status other than 200.
    errors: dict[int, str] = field(default_factory=dict)
    #: When (monotonic) each answer came, and its status.
    answers: list[tuple[float, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @property
    def refused(self) -> int:
        return sum(n for status, n in self.statuses.items() if status != 200)

    def accepted_after(self, t: float) -> float | None:
        """Seconds from ``t`` to the first fix accepted after it."""
        return next((at - t for at, status in self.answers if at > t and status == 200), None)

    def _run(self) -> None:
        started = time.monotonic()
        with httpx.Client(base_url=self.base_url, timeout=30) as client:
            for k in itertools.count():
                if self._stop.wait(max(0.0, started + k / self.rate_hz - time.monotonic())):
                    return
                at = self.t0 + timedelta(seconds=k)
                params: dict[str, str | float] = {
                    "id": self.device,
                    "lat": DEPOT[0] + k * 1e-5,
                    "lon": DEPOT[1],
                    "timestamp": int(at.timestamp()),
                }
                try:
                    r = client.get("/osmand", params=params)
                except httpx.TransportError as exc:
                    self.statuses[0] += 1
                    self.errors.setdefault(0, repr(exc))
                    continue
                self.statuses[r.status_code] += 1
                self.answers.append((time.monotonic(), r.status_code))
                if r.status_code == 200:
                    self.accepted.add(("van-1", at.timestamp()))
                else:
                    self.errors.setdefault(r.status_code, r.text[:300])

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="osmand-stream", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)


@pytest.fixture
def postgres() -> Iterator[Postgres]:
    server = Postgres()
    try:
        server.start()
        yield server
    finally:
        server.close()


def add_osmand_device(service: ServiceProcess, vehicle: str, device: str) -> None:
    r = service.client.post(
        f"/v1/vehicles/{vehicle}/devices",
        json={"protocol": "osmand", "external_device_id": device},
        headers=service.headers(),
    )
    assert r.status_code == 201, r.text


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
        add_osmand_device(service, "van-1", "dev-1")
        stream = OsmandStream(service.base_url, "dev-1", rate_hz=50)
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


# -- 5. SQLite locked, SQLite's disk full ----------------------------------------------------


def _order(order_id: str) -> dict[str, Any]:
    return {"id": order_id, "location": {"lat": STOPS["a"][0], "lon": STOPS["a"][1]}}


def _orders(url: str) -> set[str]:
    return {external_id for (external_id,) in read(url, select(OrderRow.external_id))}


def _integrity(db: Path) -> str:
    with sqlite3.connect(db) as connection:
        result: str = connection.execute("PRAGMA integrity_check").fetchone()[0]
    connection.close()
    return result


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
        add_osmand_device(service, "van-1", "dev-1")
        at = int(datetime.now(UTC).timestamp()) - 60
        fix: dict[str, str | float] = {
            "id": "dev-1",
            "lat": DEPOT[0],
            "lon": DEPOT[1],
            "timestamp": at,
        }

        locker.execute("BEGIN EXCLUSIVE")
        started = time.monotonic()
        r = service.client.post("/v1/orders", json=_order("o-1"), headers=service.headers())
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

        assert "o-1" not in _orders(url)
        assert stored_count(url) == 0
        r = service.client.post("/v1/orders", json=_order("o-1"), headers=service.headers())
        assert r.status_code == 201, r.text
        r = service.client.get("/osmand", params=fix)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "applied", r.text
        assert stored_count(url) == 1
        assert _integrity(db) == "ok"
        report(
            f"SQLite locked: busy timeout {BUSY_S:.0f} s; the order write got 503 database_busy "
            f"after {order_s:.2f} s, the fix too; {len(probes)} /healthz probes meanwhile, the "
            f"slowest {max(probes) * 1000:.0f} ms; "
            f"nothing written; after the release both writes succeeded; integrity ok"
        )
    finally:
        locker.close()
        service.close()


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
            order = {**_order(f"o-{k}"), "customer_ref": "x" * 200}
            r = service.client.post("/v1/orders", json=order, headers=service.headers())
            if r.status_code != 201:
                refused = r
                break
            created.append(f"o-{k}")
        assert refused is not None, "the disk never filled up"
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["code"] == "database_full", refused.text
        assert _integrity(db) == "ok"
        assert _orders(url) == set(created), "an order half-written or lost"

        filler.unlink()
        r = service.client.post("/v1/orders", json=_order("after"), headers=service.headers())
        assert r.status_code == 201, r.text
        assert _orders(url) == {*created, "after"}
        assert _integrity(db) == "ok"
        report(
            f"SQLite disk full: {len(created)} orders written into the last 256 KB, the next "
            f"refused with 503 database_full; integrity ok; written again once there was room"
        )
    finally:
        service.close()

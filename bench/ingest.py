"""MQTT ingestion benchmark: the real pipeline against a bare paho relay, same broker.

    python -m bench.ingest --vehicles V --seconds S [--rate R] [--broker private|URL]
                           [--database-url URL] [--reader process|thread] [--no-relay]

Each of V vehicles has an active route; fixes move along it, so every message goes through
decode → screen → store → place on the route → store progress. Two phases per side:
- flood: publish V x 100 fixes (QoS 1) as fast as they are consumed (at most 500 waiting, as
  Mosquitto's default queue is 1,000 per client); throughput = messages stored / time until
  the last one is handled;
- paced: publish at R msgs/s for S seconds; latency = from publish to effects committed.
The relay subscribes and counts, nothing else. ``--broker private`` (the default) starts
Mosquitto as the service's private broker is configured (queues by memory: ADR 0026).
``lost`` = published - stored - ``coalesced`` (older fixes the overloaded ingester acked
unstored, by its rule). Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import multiprocessing as mp
import statistics
import sys
import tempfile
import threading
import time
import uuid
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy.engine import Engine

from domain.geo import EARTH_RADIUS_M
from store.db import make_engine, session_factory, transaction, upgrade
from store.schema import OrderRow, Organisation, PlanRow, VehicleRow
from telematics.broker import start_mosquitto
from telematics.ingest import Ingester, IngestResult
from telematics.mqtt import BrokerAddress, MqttIngester, publish_checked
from telematics.mqtt_link import Reader

LAT0, LON0 = 60.17, 24.90


STOPS = 15


def _setup(url: str, vehicles: int) -> list[str]:
    """Vehicles with an active route of STOPS stops along a 3.3 km line, with a schedule, so
    each fix also recomputes STOPS ETAs."""
    upgrade(url)
    engine = make_engine(url)
    factory = session_factory(engine)
    ids = [f"bench-{uuid.uuid4().hex[:12]}-{k}" for k in range(vehicles)]
    line = [[LON0 + k * 0.001, LAT0] for k in range(0, 60)]  # ~3.3 km east
    t0 = datetime.now(UTC) - timedelta(hours=2)
    with transaction(factory) as session:
        org = Organisation(name="bench")
        session.add(org)
        session.flush()
        order_ids = [f"o{k}" for k in range(STOPS)]
        for k, oid in enumerate(order_ids):
            session.add(
                OrderRow(organisation_id=org.id, external_id=oid, lat=LAT0,
                         lon=LON0 + 0.002 * (k + 1), service_s=120,
                         tracking_token=uuid.uuid4().hex)
            )  # fmt: skip
        features = [
            {"type": "Feature", "geometry": {"type": "LineString", "coordinates": line},
             "properties": {"vehicle_id": vid, "order_ids": order_ids}}
            for vid in ids
        ]  # fmt: skip
        schedule = [
            {"order_id": oid, "arrival": (t0 + timedelta(seconds=140 * k + 20)).isoformat(),
             "service_start": (t0 + timedelta(seconds=140 * k + 20)).isoformat(),
             "departure": (t0 + timedelta(seconds=140 * k + 140)).isoformat(),
             "duration_from_previous_s": 20, "distance_from_previous_m": 111}
            for k, oid in enumerate(order_ids)
        ]  # fmt: skip
        routes = [
            {"vehicle_id": vid, "start": t0.isoformat(), "stops": schedule, "breaks": []}
            for vid in ids
        ]
        plan = PlanRow(organisation_id=org.id, status="succeeded", result={"routes": routes},
                       geojson={"type": "FeatureCollection", "features": features})  # fmt: skip
        session.add(plan)
        session.flush()
        for vid in ids:
            session.add(
                VehicleRow(
                    organisation_id=org.id, external_id=vid, start_lat=LAT0, start_lon=LON0,
                    shift_start=datetime(2026, 1, 1, tzinfo=UTC),
                    shift_end=datetime(2027, 1, 1, tzinfo=UTC), active_plan_id=plan.id,
                )
            )  # fmt: skip
    engine.dispose()
    return ids


class _Fixes:
    """Monotone fixes per vehicle moving along the line, stamped with their send time."""

    def __init__(self, ids: list[str]) -> None:
        self.ids = ids
        self.step = dict.fromkeys(ids, 0)
        self.t0 = datetime.now(UTC) - timedelta(hours=2)

    def next(self, k: int) -> tuple[str, bytes]:
        vid = self.ids[k % len(self.ids)]
        n = self.step[vid] = self.step[vid] + 1
        fix = {
            "lat": LAT0,
            "lon": LON0 + (n % 3000) * 1e-5,
            "time": (self.t0 + timedelta(seconds=n)).isoformat(),
            "speed_mps": 10.0,
            "sent": time.time(),
        }
        return f"fleet/{vid}/position", json.dumps(fix).encode()


#: Clock fixes (the soak's): each van drives back and forth along the first SHUTTLE_LEG_M of
#: its route at SHUTTLE_SPEED_MPS. Short of 300 m past any stop, so no stop is ever passed and
#: every batch recomputes all STOPS ETAs for the whole run; within the ingester's 100 m look
#: back, so the van never leaves its route when it turns.
SHUTTLE_SPEED_MPS = 8.0
SHUTTLE_LEG_M = 120.0
_M_PER_DEG_LON = math.radians(1.0) * EARTH_RADIUS_M * math.cos(math.radians(LAT0))
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def clock_fix(vehicle: str, seq: int, at: datetime) -> tuple[str, bytes]:
    """Vehicle ``vehicle``'s ``seq``-th fix, taken and published at ``at`` (its fix time and
    its send stamp): where the van is at that moment on its shuttle (its phase from its id),
    so two fixes of a vehicle are never farther apart than SHUTTLE_SPEED_MPS allows, however
    long the run. Pure: the topic and payload from the arguments alone."""
    t = at.timestamp()
    phase = zlib.crc32(vehicle.encode()) % 1000 / 1000 * 2 * SHUTTLE_LEG_M
    along = (phase + SHUTTLE_SPEED_MPS * t) % (2 * SHUTTLE_LEG_M)
    east = along < SHUTTLE_LEG_M
    x_m = along if east else 2 * SHUTTLE_LEG_M - along
    fix = {
        "lat": LAT0,
        "lon": LON0 + x_m / _M_PER_DEG_LON,
        "time": at.isoformat(),
        "speed_mps": SHUTTLE_SPEED_MPS,
        "heading_deg": 90.0 if east else 270.0,
        "seq": seq,
        "sent": t,
    }
    return f"fleet/{vehicle}/position", json.dumps(fix).encode()


class ClockFixes:
    """Fixes that follow the clock: vehicle ``k % V`` gets the ``k``-th message, stamped with
    the wall time at which it is made (just before it is published), in whole microseconds and
    increasing per vehicle (a clock stepping back holds a vehicle 1 µs past its last fix)."""

    def __init__(self, ids: list[str], clock: Callable[[], float] = time.time) -> None:
        self.ids = ids
        self.clock = clock
        self.seq = dict.fromkeys(ids, 0)
        self.last_us = dict.fromkeys(ids, -1)

    def next(self, k: int) -> tuple[str, bytes]:
        vid = self.ids[k % len(self.ids)]
        us = max(int(self.clock() * 1_000_000), self.last_us[vid] + 1)
        self.last_us[vid] = us
        n = self.seq[vid] = self.seq[vid] + 1
        return clock_fix(vid, n, _EPOCH + timedelta(microseconds=us))


def _publisher(broker: BrokerAddress) -> mqtt.Client:
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"bench-pub-{uuid.uuid4().hex[:6]}",
        protocol=mqtt.MQTTv5,
    )
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect(broker.host, broker.port)
    client.loop_start()
    return client


def _publish(client: mqtt.Client, topic: str, payload: bytes) -> None:
    while True:
        try:
            publish_checked(client, topic, payload, qos=1)
            return
        except Exception:
            time.sleep(0.001)  # paho's queue is full: wait, never drop


#: Mosquitto queues at most 1,000 QoS 1 messages per client by default and drops the rest, so
#: the flood keeps at most this many unprocessed (real devices never flood like this).
WINDOW = 500


@dataclass
class _Shared:
    """Between the consumer (this process) and the publisher (its own process, as devices
    are: it must not compete for the consumer's interpreter lock)."""

    processed: Any = field(default_factory=lambda: mp.get_context("spawn").Value("q", 0))
    #: Older fixes the overloaded ingester acknowledged unstored, by its rule
    #: (telematics/shedding.py): done with, as far as the publisher's window is concerned.
    coalesced: Any = field(default_factory=lambda: mp.get_context("spawn").Value("q", 0))
    flood_started: Any = field(default_factory=lambda: mp.get_context("spawn").Value("d", 0.0))
    paced_sent: Any = field(default_factory=lambda: mp.get_context("spawn").Value("q", -1))
    go_paced: Any = field(default_factory=lambda: mp.get_context("spawn").Event())


def _publisher_main(
    broker: BrokerAddress,
    ids: list[str],
    flood: int,
    rate: float,
    seconds: float,
    shared: _Shared,
    follow_clock: bool = False,
) -> None:
    client = _publisher(broker)
    fixes = ClockFixes(ids) if follow_clock else _Fixes(ids)
    shared.flood_started.value = time.time()
    for k in range(flood):
        while k - shared.processed.value - shared.coalesced.value >= WINDOW:
            time.sleep(0.0005)
        _publish(client, *fixes.next(k))
    if rate > 0:
        shared.go_paced.wait()
        sent = 0
        start = time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            due = int(elapsed * rate)
            while sent < due:
                _publish(client, *fixes.next(flood + sent))
                sent += 1
            time.sleep(0.001)
        shared.paced_sent.value = sent
    time.sleep(0.5)  # let the last PUBACKs arrive
    client.loop_stop()
    client.disconnect()


def _start_publisher(
    broker: BrokerAddress,
    ids: list[str],
    flood: int,
    rate: float,
    seconds: float,
    shared: _Shared,
    *,
    follow_clock: bool = False,
) -> Any:
    """The publisher in its own process; ``follow_clock``: :class:`ClockFixes` (fit for runs
    of any length) instead of ``_Fixes`` (fix times 1 s apart per fix from two hours ago, the
    longitude wrapping every 3,000 fixes of a vehicle: for short runs only)."""
    process = mp.get_context("spawn").Process(
        target=_publisher_main,
        args=(broker, ids, flood, rate, seconds, shared, follow_clock),
        daemon=True,
    )
    process.start()
    return process


def outcome(result: IngestResult) -> str:
    """A message's outcome as ``Ingester.counts`` keys it: "applied", "history", or the reason
    it was refused."""
    return result.reason if result.status == "rejected" else result.status


def timed_ingester(
    engine: Engine,
    broker: BrokerAddress,
    shared: _Shared,
    lock: threading.Lock,
    latencies: list[float],
    name: str,
    *,
    vehicles: set[str] | None = None,
    outcomes: Counter[str] | None = None,
    reader: Reader = "process",
) -> MqttIngester:
    """An MQTT ingester on ``engine`` that counts what it stores in ``shared`` and appends each
    fix's publish-to-stored time (ms) to ``latencies`` (under ``lock``).

    With ``vehicles``, only their messages are counted (others on a shared broker, e.g. a test
    run's, are handled but not counted), and ``outcomes`` (under ``lock``) counts theirs as
    ``Ingester.counts`` does: applied, history, or the reason each was refused."""
    ingester = MqttIngester(
        Ingester(session_factory(engine)),
        broker,
        client_id=f"{name}-{uuid.uuid4().hex[:6]}",
        reader=reader,
    )
    process = ingester._process
    handle = ingester.handle
    results: list[str] = []  # this batch's outcomes (the worker thread's only)

    def own(topic: str) -> bool:
        parts = topic.split("/")
        return vehicles is None or (len(parts) == 3 and parts[1] in vehicles)

    def counted(topic: str, payload: bytes) -> IngestResult:
        result = handle(topic, payload)
        if own(topic):
            results.append(outcome(result))
        return result

    def timed(batch: list[Any]) -> None:
        results.clear()
        process(batch)  # stores, commits, then acks
        stored = time.time()
        mine = [m for m in batch if own(m.topic)]
        sent = [json.loads(m.payload).get("sent") for m in mine]
        with lock:
            shared.processed.value += len(mine)
            if outcomes is not None:
                # A batch that failed is run again one message at a time: its last outcomes.
                outcomes.update(results[-len(mine) :] if mine else [])
            # Other publishers on a shared broker (a test run) have no send stamp.
            latencies.extend((stored - t) * 1000 for t in sent if isinstance(t, float))

    shed = ingester._shed

    def counted_shed(taken: list[Any]) -> None:
        before = ingester.coalesced
        shed(taken)  # the kept ones through timed(), then the coalesced acked
        with lock:
            shared.coalesced.value += ingester.coalesced - before

    ingester._process = timed  # type: ignore[method-assign]
    ingester.handle = counted  # type: ignore[method-assign]
    ingester._shed = counted_shed  # type: ignore[method-assign]
    return ingester


def run_pipeline(
    broker: BrokerAddress,
    url: str,
    vehicles: int,
    seconds: float,
    rate: float,
    reader: Reader = "process",
) -> dict[str, Any]:
    ids = _setup(url, vehicles)
    engine = make_engine(url)
    latencies: list[float] = []
    shared = _Shared()
    ingester = timed_ingester(
        engine, broker, shared, threading.Lock(), latencies, "bench", reader=reader
    )
    ingester.start()
    ingester.connected.wait(10)
    time.sleep(0.5)
    flood = vehicles * 100
    publisher = _start_publisher(broker, ids, flood, rate, seconds, shared)

    def done() -> int:
        return int(shared.processed.value + shared.coalesced.value)

    _wait_for(lambda: done() >= flood, 300)
    flood_s = time.time() - shared.flood_started.value
    # Stored, not coalesced: throughput is what reached the store.
    flood_stored = shared.processed.value
    latencies.clear()
    before = done()
    shared.go_paced.set()
    publisher.join(seconds + 120)
    sent = max(shared.paced_sent.value, 0)
    # The broker drops what its queue cannot hold (Mosquitto's default: 1,000 per client):
    # counted as lost below, not hidden.
    with contextlib.suppress(TimeoutError):
        _wait_for(lambda: done() - before >= sent, 60)
    ingester.stop()
    counts = dict(ingester.ingester.counts)
    engine.dispose()
    return {
        "msgs_per_s": flood_stored / flood_s,
        "p50_ms": statistics.median(latencies) if latencies else None,
        "p99_ms": statistics.quantiles(latencies, n=100)[98] if len(latencies) > 100 else None,
        "paced_sent": sent,
        # Neither stored nor coalesced by the overload rule: dropped on the way.
        "lost": flood + sent - done(),
        "coalesced": shared.coalesced.value,
        "outcomes": counts,
    }


def run_relay(broker: BrokerAddress, vehicles: int) -> float:
    shared = _Shared()
    ids = [f"relay-{k}" for k in range(vehicles)]
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"relay-{uuid.uuid4().hex[:6]}", protocol=mqtt.MQTTv5
    )
    ready = threading.Event()

    def on_connect(c: mqtt.Client, *_: Any) -> None:
        c.subscribe("fleet/+/position", qos=1)
        ready.set()

    def on_message(*_: Any) -> None:
        shared.processed.value += 1

    client.on_connect = on_connect
    client.on_message = on_message
    client.connect(broker.host, broker.port)
    client.loop_start()
    ready.wait(10)
    time.sleep(0.5)
    flood = vehicles * 100
    publisher = _start_publisher(broker, ids, flood, 0.0, 0.0, shared)
    _wait_for(lambda: shared.processed.value >= flood, 120)
    elapsed = time.time() - shared.flood_started.value
    publisher.join(30)
    client.loop_stop()
    client.disconnect()
    return float(flood / elapsed)


def _wait_for(predicate: Any, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark messages did not all arrive")
        time.sleep(0.005)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vehicles", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=2000.0, help="paced phase, msgs/s")
    parser.add_argument(
        "--broker",
        default="private",
        help="private (Mosquitto as the service runs it, the default) or a URL",
    )
    parser.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    parser.add_argument(
        "--reader",
        choices=["process", "thread"],
        default="process",
        help="where the ingester's MQTT network loop runs (telematics/mqtt_link.py)",
    )
    parser.add_argument("--no-relay", action="store_true", help="skip the bare relay")
    args = parser.parse_args(argv)
    url = args.database_url or f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench.db'}"
    private = start_mosquitto(Path(tempfile.mkdtemp())) if args.broker == "private" else None
    broker = private.address if private is not None else BrokerAddress.parse(args.broker)
    try:
        relay = math.nan if args.no_relay else run_relay(broker, args.vehicles)
        pipeline = run_pipeline(broker, url, args.vehicles, args.seconds, args.rate, args.reader)
    finally:
        if private is not None:
            private.stop()
    print(f"database {url.split('@')[-1]}; outcomes {pipeline['outcomes']}", file=sys.stderr)
    result = {
        "msgs_per_s": round(pipeline["msgs_per_s"], 1),
        "relay_msgs_per_s": None if math.isnan(relay) else round(relay, 1),
        "ratio": None if math.isnan(relay) else round(pipeline["msgs_per_s"] / relay, 3),
        "p50_ms": None if pipeline["p50_ms"] is None else round(pipeline["p50_ms"], 1),
        "p99_ms": None if pipeline["p99_ms"] is None else round(pipeline["p99_ms"], 1),
        "paced_rate": args.rate,
        "lost": pipeline["lost"],
        "coalesced": pipeline["coalesced"],
        "vehicles": args.vehicles,
        "reader": args.reader,
        "database": url.split(":")[0],
        "broker": "private mosquitto (ADR 0026)" if private is not None else args.broker,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Scale-out benchmark: N ingester processes on one MQTT 5 shared subscription, one PostgreSQL.

    python -m bench.scale_out --workers 1,2 --vehicles V --seconds S --rate R
                              [--broker mqtt://127.0.0.1:1883] [--database-url URL]

Each of V vehicles has a dispatched route (15 stops, with a schedule: every applied fix also
recomputes the ETAs), set up by ``bench.ingest``, in fleets of ``--fleet`` vehicles (one
organisation and one dispatched plan each: 100 fleets of 50 vans rather than one plan of
5,000, which no dispatcher makes). For each worker count N, N processes each
run the real ``MqttIngester`` + ``Ingester`` on the same database, in the same shared group
(``$share/{group}/...``) with distinct client ids; a publisher in its own process sends:

- a warm-up, untimed: two fixes per vehicle, at most 500 waiting (so the workers have read
  every vehicle's route once, as a long-running ingester has);
- the measured phase: R fixes/s (round robin over the vehicles) for S seconds, or with
  ``--rate 0`` as fast as the workers consume them (at most 500 waiting: Mosquitto queues at
  most 1,000 QoS 1 messages per client by default and drops the rest).

Mosquitto deals a shared subscription's messages round robin. ``--order shuffled`` (devices
reporting independently) so spreads each vehicle over the workers; ``--order sticky`` keeps
one order, which with V a multiple of N gives each vehicle one worker, as EMQX's
``hash_clientid`` dispatch does (``vehicles_on_several_workers`` says which happened).

Then, from the database: ``stored`` = distinct (vehicle, fix time) rows in ``positions``;
``coalesced`` = older fixes the overloaded workers acknowledged unstored by their rule
(telematics/shedding.py); ``lost`` = published - stored - coalesced; ``out_of_order`` = rows
applied (``applied`` true: they moved the vehicle's state) although an earlier-applied row of
the same vehicle had a later fix time; ``kept_as_history`` = rows that arrived out of order
and were kept as history only (``applied`` false), which is how the screening absorbs a
round-robin broker.
``fixes_per_s`` = measured-phase fixes stored / (last stored - phase start); latency is from
publish to committed. One JSON line per worker count, the last lines printed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import multiprocessing as mp
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import BindParameter, bindparam, create_engine, text
from sqlalchemy.engine import make_url

from bench.ingest import WINDOW, _Fixes, _publish, _publisher, _setup, _wait_for
from store.db import make_engine, session_factory
from telematics.broker import start_mosquitto
from telematics.ingest import Ingester
from telematics.mqtt import BrokerAddress, MqttIngester

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/lastmile_scale"
#: Warm-up fixes per vehicle before the measured phase.
WARMUP_ROUNDS = 2
_CTX = mp.get_context("spawn")


@dataclass
class _Shared:
    """Between this process, the publisher and the workers (each in its own process)."""

    run: str
    lock: Any = field(default_factory=_CTX.Lock)
    #: Our fixes committed and acked, by all workers.
    processed: Any = field(default_factory=lambda: _CTX.Value("q", 0, lock=False))
    #: Fixes the workers coalesced under overload (telematics/shedding.py): acked unstored.
    coalesced: Any = field(default_factory=lambda: _CTX.Value("q", 0, lock=False))
    #: Measured-phase fixes committed, and when the last one was (epoch seconds).
    measured: Any = field(default_factory=lambda: _CTX.Value("q", 0, lock=False))
    last_stored: Any = field(default_factory=lambda: _CTX.Value("d", 0.0, lock=False))
    #: When the measured phase started (epoch seconds; fixes sent before it are warm-up).
    phase_start: Any = field(default_factory=lambda: _CTX.Value("d", 1e18, lock=False))
    published: Any = field(default_factory=lambda: _CTX.Value("q", -1, lock=False))
    ready: Any = field(default_factory=lambda: _CTX.Semaphore(0))
    stop: Any = field(default_factory=_CTX.Event)


class _ErrorCount(logging.Handler):
    """Counts the ingester's logged failures (a batch that failed and was redone one by one,
    e.g. two workers inserting the same vehicle's first progress row)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += record.levelno >= logging.ERROR


def _worker_main(
    broker: BrokerAddress, url: str, group: str, client_id: str, shared: _Shared, results: Any
) -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    errors = _ErrorCount()
    logging.getLogger("telematics").addHandler(errors)
    engine = make_engine(url)
    ingester = MqttIngester(
        Ingester(session_factory(engine)),
        broker,
        client_id=client_id,
        shared_group=group,
        session_expiry_s=0,  # the broker forgets this benchmark's sessions when it ends
    )
    process = ingester._process
    latencies: list[float] = []
    mine = [0]
    seen: set[str] = set()

    def timed(batch: list[Any]) -> None:
        process(batch)  # stores, commits, then acks
        stored = time.time()
        ours = measured = 0
        start = shared.phase_start.value
        for message in batch:
            with contextlib.suppress(ValueError, AttributeError):
                data = json.loads(message.payload)
                if data.get("run") != shared.run:
                    continue  # another publisher on the same broker
                ours += 1
                seen.add(message.topic)
                if data["sent"] >= start:
                    measured += 1
                    latencies.append((stored - data["sent"]) * 1000)
        mine[0] += ours
        with shared.lock:
            shared.processed.value += ours
            if measured:
                shared.measured.value += measured
                shared.last_stored.value = max(shared.last_stored.value, stored)

    shed = ingester._shed

    def counted_shed(taken: list[Any]) -> None:
        before = ingester.coalesced
        shed(taken)
        with shared.lock:
            shared.coalesced.value += ingester.coalesced - before

    ingester._process = timed  # type: ignore[method-assign]
    ingester._shed = counted_shed  # type: ignore[method-assign]
    ingester.start()
    if not ingester.connected.wait(10):
        raise SystemExit(f"{client_id}: no connection to {broker.host}:{broker.port}")
    shared.ready.release()
    shared.stop.wait()
    ingester.stop()
    engine.dispose()
    results.put(
        {
            "client_id": client_id,
            "processed": mine[0],
            "latencies": latencies,
            "counts": dict(ingester.ingester.counts),
            "coalesced": ingester.coalesced,
            "errors": errors.count,
            "topics": sorted(seen),
        }
    )


class _TaggedFixes(_Fixes):
    """``bench.ingest``'s fixes, tagged with the run (other tests may share the broker), the
    vehicles in a new random order every round: devices report independently, so a broker
    that deals messages round robin sends one vehicle's fixes to different workers."""

    def __init__(self, ids: list[str], run: str, *, shuffle: bool = True) -> None:
        super().__init__(ids)
        self.run = run
        self.shuffle = shuffle
        self.random = random.Random(7)
        self.order = list(range(len(ids)))

    def next(self, k: int) -> tuple[str, bytes]:
        size = len(self.ids)
        if k % size == 0 and self.shuffle:
            self.random.shuffle(self.order)
        topic, payload = super().next(k - k % size + self.order[k % size])
        data = json.loads(payload)
        data["run"] = self.run
        data["sent"] = time.time()
        return topic, json.dumps(data).encode()


def _publisher_main(
    broker: BrokerAddress,
    ids: list[str],
    rate: float,
    seconds: float,
    shared: _Shared,
    shuffle: bool = True,
) -> None:
    client = _publisher(broker)
    fixes = _TaggedFixes(ids, shared.run, shuffle=shuffle)
    warmup = len(ids) * WARMUP_ROUNDS

    def done() -> int:
        # Stored or coalesced by the overload rule: no longer waiting.
        return int(shared.processed.value + shared.coalesced.value)

    for k in range(warmup):
        while k - done() >= WINDOW:
            time.sleep(0.0005)
        _publish(client, *fixes.next(k))
    _wait_for(lambda: done() >= warmup, 600)
    sent = 0
    shared.phase_start.value = time.time()
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        if rate > 0:
            due = int(elapsed * rate)
            while sent < due:
                _publish(client, *fixes.next(warmup + sent))
                sent += 1
            time.sleep(0.001)
        else:
            while warmup + sent - done() >= WINDOW:
                time.sleep(0.0005)
            _publish(client, *fixes.next(warmup + sent))
            sent += 1
    time.sleep(0.5)  # let the last PUBACKs arrive
    client.loop_stop()
    client.disconnect()
    shared.published.value = warmup + sent


def _database(url: str) -> None:
    """Create the benchmark's PostgreSQL database if it is not there yet."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("postgresql") or not parsed.database:
        raise SystemExit("several workers need PostgreSQL: give --database-url postgresql+...")
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            exists = connection.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": parsed.database}
            )
            if not exists:
                connection.execute(text(f'CREATE DATABASE "{parsed.database}"'))
    finally:
        admin.dispose()


def _check(url: str, ids: list[str]) -> dict[str, int]:
    """Stored, out-of-order, applied-twice and history-only rows of the run's vehicles."""
    orgs: BindParameter[str] = bindparam("orgs", expanding=True)
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            found = connection.scalars(
                text(
                    "SELECT DISTINCT organisation_id FROM vehicles WHERE external_id IN :ids"
                ).bindparams(bindparam("ids", expanding=True)),
                {"ids": ids},
            ).all()
            stored = connection.scalar(
                text(
                    "SELECT count(*) FROM (SELECT DISTINCT vehicle_id, fix_time FROM positions"
                    " WHERE organisation_id IN :orgs) AS d"
                ).bindparams(orgs),
                {"orgs": found},
            )
            # In the order rows were applied (ids come from one sequence, and a vehicle's
            # rows are written under its progress row's lock): the newest fix time before.
            late, twice = connection.execute(
                text(
                    "SELECT coalesce(sum(CASE WHEN a.before > a.fix_time THEN 1 ELSE 0 END), 0),"
                    " coalesce(sum(CASE WHEN a.before = a.fix_time THEN 1 ELSE 0 END), 0)"
                    " FROM (SELECT fix_time, max(fix_time) OVER (PARTITION BY vehicle_id"
                    " ORDER BY id ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS before"
                    " FROM positions WHERE organisation_id IN :orgs AND applied) AS a"
                ).bindparams(orgs),
                {"orgs": found},
            ).one()
            history = connection.scalar(
                text(
                    "SELECT count(*) FROM positions WHERE organisation_id IN :orgs AND NOT applied"
                ).bindparams(orgs),
                {"orgs": found},
            )
    finally:
        engine.dispose()
    return {
        "stored": int(stored or 0),
        "out_of_order": int(late),
        "applied_twice": int(twice),
        "history": int(history or 0),
    }


def _fleets(url: str, vehicles: int, fleet: int) -> list[str]:
    """``vehicles`` vehicles with routes, ``fleet`` per organisation and plan."""
    ids: list[str] = []
    while len(ids) < vehicles:
        ids += _setup(url, min(fleet, vehicles - len(ids)))
    return ids


def run(
    broker: BrokerAddress,
    url: str,
    workers: int,
    vehicles: int,
    seconds: float,
    rate: float,
    fleet: int = 50,
    order: str = "shuffled",
) -> dict[str, Any]:
    """One measured run with ``workers`` ingester processes; the figures as a dict."""
    ids = _fleets(url, vehicles, fleet)
    shared = _Shared(run=uuid.uuid4().hex[:8])
    group = f"scale-{shared.run}"
    results = _CTX.Queue()
    procs = [
        _CTX.Process(
            target=_worker_main,
            args=(broker, url, group, f"{group}-{k}", shared, results),
            # Not daemonic: each worker starts its own MQTT reader process (ADR 0027). The
            # workers are stopped below, and killed if they do not stop.
            daemon=False,
        )
        for k in range(workers)
    ]
    for proc in procs:
        proc.start()
    for _ in procs:
        if not shared.ready.acquire(timeout=60):
            raise SystemExit("a worker did not connect to the broker")
    time.sleep(1.0)  # the subscriptions are in place
    publisher = _CTX.Process(
        target=_publisher_main,
        args=(broker, ids, rate, seconds, shared, order == "shuffled"),
        daemon=True,
    )
    publisher.start()
    publisher.join(seconds + 900)
    published = shared.published.value
    if published < 0:
        raise SystemExit("the publisher did not finish")
    # What the broker dropped never arrives: counted as lost below, not waited for forever.
    with contextlib.suppress(TimeoutError):
        _wait_for(lambda: shared.processed.value + shared.coalesced.value >= published, 60)
    shared.stop.set()
    reports = [results.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(30)
        if proc.is_alive():
            proc.kill()
    checked = _check(url, ids)
    latencies = [x for r in reports for x in r["latencies"]]
    measured = shared.measured.value
    elapsed = shared.last_stored.value - shared.phase_start.value
    outcomes: dict[str, int] = {}
    for report in reports:
        for key, count in report["counts"].items():
            outcomes[key] = outcomes.get(key, 0) + count
    print(
        f"workers {workers}: outcomes {outcomes}; per worker "
        f"{[r['processed'] for r in reports]}; batches redone {sum(r['errors'] for r in reports)}",
        file=sys.stderr,
    )
    return {
        "workers": workers,
        "vehicles": vehicles,
        "rate": rate,
        "seconds": seconds,
        "published": published,
        "stored": checked["stored"],
        "coalesced": sum(r["coalesced"] for r in reports),
        # Neither stored nor coalesced by the overload rule: dropped on the way.
        "lost": published - checked["stored"] - sum(r["coalesced"] for r in reports),
        "out_of_order": checked["out_of_order"],
        "applied_twice": checked["applied_twice"],
        "kept_as_history": checked["history"],
        "fixes_per_s": round(measured / elapsed, 1) if elapsed > 0 else None,
        "p50_ms": round(statistics.median(latencies), 1) if latencies else None,
        "p99_ms": (
            round(statistics.quantiles(latencies, n=100)[98], 1) if len(latencies) > 100 else None
        ),
        "order": order,
        "per_worker": [r["processed"] for r in reports],
        "vehicles_on_several_workers": sum(
            n > 1 for n in Counter(t for r in reports for t in r["topics"]).values()
        ),
        "batches_redone": sum(r["errors"] for r in reports),
        "cores": os.cpu_count(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--workers", default="1,2", help="ingester processes; a comma list runs each in turn"
    )
    parser.add_argument("--vehicles", type=int, default=5000)
    parser.add_argument("--fleet", type=int, default=50, help="vehicles per organisation/plan")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=600.0, help="fixes/s; 0: as fast as consumed")
    parser.add_argument(
        "--order",
        choices=["shuffled", "sticky"],
        default="shuffled",
        help="shuffled: vehicles report in a new order every round, so a round-robin broker "
        "spreads a vehicle over the workers; sticky: one fixed order, which Mosquitto's strict "
        "round robin turns into one worker per vehicle when V is a multiple of N (what an EMQX "
        "hash-by-client-id dispatch does)",
    )
    parser.add_argument(
        "--broker",
        default="mqtt://127.0.0.1:1883",
        help="a URL, or private: Mosquitto as the service runs it (queues by memory, 2,000 "
        "in flight: ADR 0026)",
    )
    parser.add_argument("--database-url", default=DEFAULT_URL, help="PostgreSQL (created if new)")
    args = parser.parse_args(argv)
    private = start_mosquitto(Path(tempfile.mkdtemp())) if args.broker == "private" else None
    broker = private.address if private is not None else BrokerAddress.parse(args.broker)
    counts = [int(n) for n in str(args.workers).split(",") if n.strip()]
    _database(args.database_url)
    lines = []
    try:
        for workers in counts:
            result = run(
                broker,
                args.database_url,
                workers,
                args.vehicles,
                args.seconds,
                args.rate,
                args.fleet,
                args.order,
            )
            result["broker"] = "private mosquitto (ADR 0026)" if private else args.broker
            lines.append(json.dumps(result))
    finally:
        if private is not None:
            private.stop()
    for line in lines:
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

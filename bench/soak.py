"""Soak: one ingester (MQTT, store, ETA recompute on every batch) under a steady GPS stream for
a long time, watching that memory stays flat and the lag stays bounded.

The publisher runs in its own process at ``--rate`` fixes/s for ``--seconds`` (vehicles on
dispatched 15-stop routes, as in bench.ingest); every ``--every`` seconds the consumer samples
its resident memory, the fixes processed, the backlog (sent so far minus processed) and the
p99 publish-to-stored latency of that window. The last line is one JSON object:
``{"seconds", "rate", "processed_per_s", "lost", "rss_mb_first", "rss_mb_last", "rss_mb_max",
"rss_growth_mb_per_h" (fitted over the second half), "p99_ms_max_window",
"backlog_max", "samples"}``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.ingest import _setup, _Shared, _start_publisher, _wait_for, timed_ingester
from store.db import make_engine
from telematics.mqtt import BrokerAddress


def rss_mb() -> float:
    """This process's resident memory (Linux /proc), MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run(
    broker: BrokerAddress, url: str, vehicles: int, seconds: float, rate: float, every_s: float
) -> dict[str, Any]:
    ids = _setup(url, vehicles)
    engine = make_engine(url)
    shared = _Shared()
    lock = threading.Lock()
    window: list[float] = []
    ingester = timed_ingester(engine, broker, shared, lock, window, "soak")
    ingester.start()
    ingester.connected.wait(10)
    time.sleep(0.5)
    publisher = _start_publisher(broker, ids, 0, rate, seconds, shared)
    shared.go_paced.set()
    started = time.monotonic()
    samples: list[dict[str, float]] = []
    while publisher.is_alive() and time.monotonic() - started < seconds + 5:
        time.sleep(every_s)
        elapsed = time.monotonic() - started
        with lock:
            latencies, window[:] = list(window), []
            processed = shared.processed.value
        sample = {
            "t_s": round(elapsed, 1),
            "rss_mb": round(rss_mb(), 1),
            "processed": processed,
            "backlog": max(0, int(min(elapsed, seconds) * rate) - processed),
            "p99_ms": round(statistics.quantiles(latencies, n=100)[98], 1)
            if len(latencies) > 100
            else float("nan"),
        }
        samples.append(sample)
        print(json.dumps(sample), file=sys.stderr, flush=True)
    publisher.join(120)
    sent = max(shared.paced_sent.value, 0)
    with contextlib.suppress(TimeoutError):
        _wait_for(lambda: shared.processed.value >= sent, 120)
    ingester.stop()
    engine.dispose()
    half = [s for s in samples if s["t_s"] >= seconds / 2]
    slope = (
        float(np.polyfit([s["t_s"] for s in half], [s["rss_mb"] for s in half], 1)[0]) * 3600
        if len(half) >= 3
        else float("nan")
    )
    p99s = [s["p99_ms"] for s in samples if s["p99_ms"] == s["p99_ms"]]
    return {
        "seconds": seconds,
        "rate": rate,
        "vehicles": vehicles,
        "processed_per_s": round(shared.processed.value / seconds, 1),
        "sent": sent,
        "lost": sent - shared.processed.value,
        "rss_mb_first": samples[0]["rss_mb"] if samples else None,
        "rss_mb_last": samples[-1]["rss_mb"] if samples else None,
        "rss_mb_max": max(s["rss_mb"] for s in samples) if samples else None,
        "rss_growth_mb_per_h": round(slope, 1),
        "p99_ms_max_window": max(p99s) if p99s else None,
        "p99_ms_median_window": statistics.median(p99s) if p99s else None,
        "backlog_max": max(s["backlog"] for s in samples) if samples else None,
        "samples": len(samples),
        "database": url.split(":")[0],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vehicles", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=1200.0)
    parser.add_argument("--rate", type=float, default=2000.0, help="fixes/s")
    parser.add_argument("--every", type=float, default=10.0, help="sampling period, s")
    parser.add_argument("--broker", default="mqtt://127.0.0.1:1883")
    parser.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    args = parser.parse_args(argv)
    url = args.database_url or f"sqlite:///{Path(tempfile.mkdtemp()) / 'soak.db'}"
    result = run(
        BrokerAddress.parse(args.broker), url, args.vehicles, args.seconds, args.rate, args.every
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Soak: one ingester (MQTT, store, ETA recompute on every batch) under a steady GPS stream for
a long time, watching that memory stays flat and the lag stays bounded.

The publisher runs in its own process at ``--rate`` fixes/s for ``--seconds`` over
``--vehicles`` vans on dispatched 15-stop routes (as in bench.ingest). Each fix follows the
clock (``bench.ingest.ClockFixes``): it carries the wall time at which it is published, and
the van drives back and forth at 8 m/s on the first 120 m of its route, so however long the
run, the ingester's hygiene has no reason to refuse a fix (none from the future, no jump) and
every stop stays open (all 15 ETAs recomputed on every batch, from the first minute to the
last). Every ``--every`` seconds the consumer samples its resident memory, the fixes handled,
applied and refused so far, the backlog (sent so far minus handled) and the p99
publish-to-stored latency of that window. The last line is one JSON object:
``{"seconds", "rate", "vehicles", "processed_per_s", "applied_per_s", "sent", "coalesced"
(older fixes of a van acknowledged unstored by the overload rule, telematics/shedding.py),
"lost" (sent minus handled minus coalesced), "broker_dropped" (what the broker says it dropped,
``$SYS/broker/publish/messages/dropped``; None if it never said), "applied", "history" (kept
out of order), "refused",
"refused_by_reason", "rss_mb_first", "rss_mb_last", "rss_mb_max", "rss_growth_mb_per_h"
(fitted over the second half), "p99_ms_max_window", "p99_ms_median_window", "backlog_max",
"samples", "database", "broker"}``. Only this run's vehicles are counted: messages other
publishers send to the same broker are handled but not counted (``coalesced`` counts all: run
on the private broker, the default, for a clean count).

``--broker private`` (the default) starts Mosquitto as the service's private broker is
configured (telematics/broker.py: queues sized by memory, 2,000 messages in flight per
client; ADR 0026); ``--broker mqtt://host:port`` uses another.
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
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench.ingest import _setup, _Shared, _start_publisher, _wait_for, timed_ingester
from store.db import make_engine
from telematics.broker import start_mosquitto
from telematics.mqtt import BrokerAddress, MqttIngester


def rss_mb(pid: int | str = "self") -> float:
    """A process's resident memory (Linux /proc), MB; 0 for one that has gone."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return 0.0
    for line in lines:
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def ingester_rss_mb(ingester: MqttIngester) -> float:
    """The ingester's resident memory: this process and its MQTT reader process, if any."""
    reader = ingester.link.pid
    return rss_mb() + (rss_mb(reader) if reader is not None else 0.0)


def _refused(outcomes: Counter[str]) -> int:
    """Messages refused (dead letters), whatever the reason."""
    return sum(v for k, v in outcomes.items() if k not in ("applied", "history"))


class BrokerDrops:
    """What the broker reports it dropped (Mosquitto's ``$SYS/broker/publish/messages/
    dropped``, published every ``sys_interval`` when it has dropped any)."""

    TOPIC = "$SYS/broker/publish/messages/dropped"

    def __init__(self, broker: BrokerAddress) -> None:
        self.value: int | None = None
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        if broker.username:
            self.client.username_pw_set(broker.username, broker.password)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *_: c.subscribe(self.TOPIC)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        with contextlib.suppress(ValueError):
            self.value = int(message.payload)

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def run(
    broker: BrokerAddress, url: str, vehicles: int, seconds: float, rate: float, every_s: float
) -> dict[str, Any]:
    ids = _setup(url, vehicles)
    engine = make_engine(url)
    shared = _Shared()
    lock = threading.Lock()
    window: list[float] = []
    outcomes: Counter[str] = Counter()
    ingester = timed_ingester(
        engine, broker, shared, lock, window, "soak", vehicles=set(ids), outcomes=outcomes
    )
    ingester.start()
    ingester.connected.wait(10)
    drops = BrokerDrops(broker)
    time.sleep(0.5)
    publisher = _start_publisher(broker, ids, 0, rate, seconds, shared, follow_clock=True)
    shared.go_paced.set()
    started = time.monotonic()
    samples: list[dict[str, float]] = []
    while publisher.is_alive() and time.monotonic() - started < seconds + 5:
        time.sleep(every_s)
        elapsed = time.monotonic() - started
        with lock:
            latencies, window[:] = list(window), []
            processed = shared.processed.value
            counted = Counter(outcomes)
        sample = {
            "t_s": round(elapsed, 1),
            "rss_mb": round(ingester_rss_mb(ingester), 1),
            "processed": processed,
            "coalesced": ingester.coalesced,
            "mqtt_backlog": ingester.backlog,
            "lag_s": round(ingester.lag_s, 2),
            "applied": counted["applied"],
            "refused": _refused(counted),
            "backlog": max(0, int(min(elapsed, seconds) * rate) - processed - ingester.coalesced),
            "p99_ms": round(statistics.quantiles(latencies, n=100)[98], 1)
            if len(latencies) > 100
            else float("nan"),
        }
        samples.append(sample)
        print(json.dumps(sample), file=sys.stderr, flush=True)
    publisher.join(120)
    sent = max(shared.paced_sent.value, 0)
    with contextlib.suppress(TimeoutError):
        _wait_for(lambda: shared.processed.value + ingester.coalesced >= sent, 120)
    time.sleep(11)  # one more $SYS interval: the broker's last word on drops
    drops.stop()
    ingester.stop()
    engine.dispose()
    print(f"ingester counts (all publishers): {dict(ingester.ingester.counts)}", file=sys.stderr)
    with lock:
        handled, counted = shared.processed.value, Counter(outcomes)
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
        "processed_per_s": round(handled / seconds, 1),
        "applied_per_s": round(counted["applied"] / seconds, 1),
        "sent": sent,
        "coalesced": ingester.coalesced,
        "lost": sent - handled - ingester.coalesced,
        "broker_dropped": drops.value,
        "applied": counted["applied"],
        "history": counted["history"],
        "refused": _refused(counted),
        "refused_by_reason": {
            k: v for k, v in sorted(counted.items()) if k not in ("applied", "history")
        },
        "rss_mb_first": samples[0]["rss_mb"] if samples else None,
        "rss_mb_last": samples[-1]["rss_mb"] if samples else None,
        "rss_mb_max": max(s["rss_mb"] for s in samples) if samples else None,
        "rss_growth_mb_per_h": round(slope, 1),
        "p99_ms_max_window": max(p99s) if p99s else None,
        "p99_ms_median_window": statistics.median(p99s) if p99s else None,
        "backlog_max": max(s["backlog"] for s in samples) if samples else None,
        "samples": len(samples),
        "database": url.split(":")[0],
        "broker": f"{broker.host}:{broker.port}",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vehicles", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=1200.0)
    parser.add_argument("--rate", type=float, default=2000.0, help="fixes/s")
    parser.add_argument("--every", type=float, default=10.0, help="sampling period, s")
    parser.add_argument(
        "--broker", default="private", help="private (Mosquitto as the service runs it) or a URL"
    )
    parser.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    args = parser.parse_args(argv)
    url = args.database_url or f"sqlite:///{Path(tempfile.mkdtemp()) / 'soak.db'}"
    private = start_mosquitto(Path(tempfile.mkdtemp())) if args.broker == "private" else None
    address = private.address if private is not None else BrokerAddress.parse(args.broker)
    try:
        result = run(address, url, args.vehicles, args.seconds, args.rate, args.every)
    finally:
        if private is not None:
            private.stop()
    result["broker"] = "private mosquitto (ADR 0026)" if private is not None else args.broker
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

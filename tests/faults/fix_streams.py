"""Fixes sent at a steady rate from a thread while a fault happens: over MQTT through a paho
client with its own offline queue, and over HTTP (GET /osmand) counting what was accepted."""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from tests.fault_procs import Mosquitto
from tests.faults.service_day import DEPOT

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

"""The MQTT side of ingestion (paho-mqtt 2, MQTT 5; MQTT 3.1.1 for a broker that needs it).

- A fixed client id, ``clean_start=False`` and a session expiry: QoS 1 fixes published while
  the ingester is down wait in the broker and arrive when it returns.
- Manual acknowledgement: a message is acked only after the ingester has committed its
  effects (or its dead letter), so a crash mid-message means redelivery, never loss.
- One network thread delivers messages in order, so one vehicle's fixes keep their order.
  With ``shared_group`` several ingesters split the load (``$share/{group}/...``); the broker
  then spreads a vehicle's fixes over them, which the screening's out-of-order rule absorbs.
- Automatic reconnect with backoff (1 s doubling to 5 s: a broker back from a restart gets
  its fixes flowing again within seconds, and 5 s between tries is no load on it).
- Overload: with more than ``SHED_BACKLOG`` messages waiting for ``SHED_AFTER_S`` on end, the
  worker takes everything it holds and coalesces the older fixes of each device topic
  (telematics/shedding.py: every driver event and each topic's newest fix are stored),
  counting them (``coalesced``).
- ``BrokerAddress.protocol == 4`` (the embedded amqtt broker speaks only MQTT 3.1.1): the same
  fixed client id with ``clean_session=False`` keeps the session instead, its expiry is the
  broker's to set, and there are no shared subscriptions (``shared_group`` is refused).
"""

from __future__ import annotations

import logging
import math
import multiprocessing as mp
import queue
import threading
import time
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlparse

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

from telematics.ingest import Ingester, IngestResult
from telematics.mqtt_link import (
    Link,
    LinkConfig,
    ProcessLink,
    Reader,
    Received,
    ThreadLink,
    connect,
    make_client,
)
from telematics.shedding import coalesce
from telematics.topics import SUBSCRIPTIONS, parse_vehicle_topic, topic_kind

log = logging.getLogger(__name__)
MAX_PAYLOAD_BYTES = 16_384
#: Messages committed together: one transaction and one fsync for up to this many fixes.
BATCH_MAX = 200
#: Overloaded: more than this many messages received and not yet stored, for SHED_AFTER_S
#: without a break (a burst, e.g. the queue a broker restart releases, is worked off whole).
#: The worker then takes all it holds (up to SHED_DRAIN_MAX) and coalesces the older fixes of
#: each device topic (telematics/shedding.py, ADR 0026); None: never shed.
SHED_BACKLOG = 400
SHED_AFTER_S = 1.0
SHED_DRAIN_MAX = 5000
SHED_LOG_EVERY_S = 10.0
#: The device topics (telematics/topics.py): each organisation's, the deprecated un-prefixed
#: ones, OwnTracks.
TOPICS = SUBSCRIPTIONS


class PublishError(RuntimeError):
    """paho refused a publish (e.g. its in-flight queue is full): never ignore it."""


def publish_checked(
    client: mqtt.Client, topic: str, payload: bytes | str, *, qos: int = 1, retain: bool = False
) -> mqtt.MQTTMessageInfo:
    """Publish and raise if paho did not accept the message (it drops QoS 1 silently when its
    in-flight queue is full, reporting only through this return code)."""
    info = client.publish(topic, payload, qos=qos, retain=retain)
    if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
        raise PublishError(f"publish to {topic} refused: {mqtt.error_string(info.rc)}")
    return info


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    #: MQTT protocol level: 5, or 4 (3.1.1) for a broker that cannot speak 5.
    protocol: Literal[5, 4] = 5

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        """``mqtt://user:pass@host:port`` (port default 1883)."""
        parsed = urlparse(url if "://" in url else f"mqtt://{url}")
        if parsed.scheme not in ("mqtt", "tcp"):
            raise ValueError(f"LASTMILE_MQTT_URL must be mqtt://host:port, got {url!r}")
        return cls(
            parsed.hostname or "127.0.0.1", parsed.port or 1883, parsed.username, parsed.password
        )


class MqttIngester:
    """Subscribes to device topics and hands each message to an :class:`Ingester`."""

    def __init__(
        self,
        ingester: Ingester,
        broker: BrokerAddress,
        *,
        client_id: str = "lastmile-ingester",
        shared_group: str | None = None,
        session_expiry_s: int = 86_400,
        shed_backlog: int | None = SHED_BACKLOG,
        shed_after_s: float = SHED_AFTER_S,
        reader: Reader = "process",
    ) -> None:
        if shared_group and broker.protocol != 5:
            raise ValueError(
                f"shared_group {shared_group!r} needs MQTT 5 shared subscriptions; the broker at "
                f"{broker.host}:{broker.port} speaks MQTT 3.1.1 only"
            )
        self.ingester = ingester
        self.broker = broker
        self.shared_group = shared_group
        self.session_expiry_s = session_expiry_s
        self.connected = threading.Event()
        self.processed = 0
        self.shed_backlog = shed_backlog
        self.shed_after_s = shed_after_s
        #: Since when (monotonic) more than ``shed_backlog`` have been waiting, or None.
        self._over_since: float | None = None
        #: Fixes acknowledged without being stored, by the shedding rule (older fixes of a
        #: topic whose newer fix was stored in the same overloaded turn).
        self.coalesced = 0
        #: Seconds the oldest message waited between arrival and its turn, last turn.
        self.lag_s = 0.0
        self._shed_logged_at = -math.inf
        #: Messages received and not yet taken, or None to stop.
        self._queue: queue.Queue[Received | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        config = LinkConfig(
            broker.host,
            broker.port,
            broker.username,
            broker.password,
            broker.protocol,
            client_id,
            tuple(self._topic(t) for t in TOPICS),
            session_expiry_s,
        )
        self.link: Link
        if reader == "process" and mp.current_process().daemon:
            # A daemonic process may not start processes of its own.
            log.warning("MQTT reader in a thread: this process is daemonic")
            reader = "thread"
        if reader == "thread":
            thread_link = ThreadLink(config, self._queue.put, self._set_connected)
            self.link = thread_link
            #: What the service publishes with (routes, customer pushes).
            self.client = thread_link.client
            self._publisher = False
        else:
            self.link = ProcessLink(config, self._queue.put, self._set_connected)
            # The reader is in another process: publishing (a few messages a minute) gets a
            # client of its own, on a clean session.
            self.client = make_client(config, client_id=f"{client_id}-pub", persistent=False)
            self._publisher = True

    def start(self) -> None:
        self.link.start()
        if self._publisher:
            connect(self.client, self.link.config, persistent=False)
        self._worker = threading.Thread(target=self._work, name="mqtt-ingest", daemon=True)
        self._worker.start()

    def stop(self) -> None:
        """Disconnect; messages received but not yet committed stay unacked, so the broker
        delivers them again next time (the session persists)."""
        self.link.stop()
        if self._publisher:
            self.client.disconnect()
            self.client.loop_stop()
        self.connected.clear()
        self._queue.put(None)
        if self._worker is not None:
            self._worker.join(timeout=30)

    def _topic(self, topic: str) -> str:
        return f"$share/{self.shared_group}/{topic}" if self.shared_group else topic

    def _set_connected(self, up: bool) -> None:
        if up:
            self.connected.set()
        else:
            self.connected.clear()

    @property
    def backlog(self) -> int:
        """Messages received and not yet taken by the worker."""
        return self._queue.qsize()

    def _work(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            now = time.monotonic()
            self.lag_s = now - first.arrived
            overloaded = self._overloaded(now)
            batch = [first]
            while len(batch) < (SHED_DRAIN_MAX if overloaded else BATCH_MAX):
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)
                    break
                batch.append(item)
            if overloaded:
                self._shed(batch)
            else:
                self._process(batch)

    def _overloaded(self, now: float) -> bool:
        """More than ``shed_backlog`` waiting, and so for ``shed_after_s`` already."""
        if self.shed_backlog is None or self.backlog <= self.shed_backlog:
            self._over_since = None
            return False
        if self._over_since is None:
            self._over_since = now
        return now - self._over_since >= self.shed_after_s

    def _shed(self, taken: list[Received]) -> None:
        """Overloaded: store the kept messages (every driver event, the newest fix of each
        topic) in batches, then acknowledge the coalesced ones, which their topic's newer
        stored fix supersedes. A crash before that leaves them unacked: redelivered, never
        silently gone."""
        keep = coalesce([m.topic for m in taken])
        kept = [m for m, k in zip(taken, keep, strict=True) if k]
        for start in range(0, len(kept), BATCH_MAX):
            self._process(kept[start : start + BATCH_MAX])
        dropped = [m for m, k in zip(taken, keep, strict=True) if not k]
        self.link.ack([(m.mid, m.qos) for m in dropped])
        self.coalesced += len(dropped)
        now = time.monotonic()
        if dropped and now - self._shed_logged_at > SHED_LOG_EVERY_S:
            self._shed_logged_at = now
            log.warning(
                "overloaded (%d waiting): coalesced %d older fixes, stored %d messages "
                "(logged at most every %.0f s; the count is lastmile_mqtt_coalesced_total)",
                self.backlog,
                len(dropped),
                len(kept),
                SHED_LOG_EVERY_S,
            )

    def _process(self, batch: list[Received]) -> None:
        """One transaction for the batch, then the acks; on any failure, one at a time."""
        try:
            with self.ingester.batch():
                self.ingester.prefetch(
                    {t.ref for m in batch if (t := parse_vehicle_topic(m.topic)) is not None}
                )
                for message in batch:
                    self.handle(message.topic, message.payload)
            done = batch
        except Exception:
            log.exception("batch of %d failed; processing one by one", len(batch))
            done = []
            for message in batch:
                try:
                    self.handle(message.topic, message.payload)
                    done.append(message)
                except Exception:
                    # Not acked: the broker redelivers it after reconnect (or to a peer).
                    log.exception("could not process a message on %s", message.topic)
        self.link.ack([(m.mid, m.qos) for m in done])
        self.processed += len(done)

    def handle(self, topic: str, payload: bytes) -> IngestResult:
        """Route one message by topic; its effects are committed when this returns."""
        if len(payload) > MAX_PAYLOAD_BYTES:
            return self.ingester.reject(
                "mqtt", topic, payload, "too_large", f"{len(payload)} bytes"
            )
        kind = topic_kind(topic)
        if kind == "owntracks":
            return self.ingester.owntracks_message(topic, payload)
        if kind == "gpsd":
            return self.ingester.gpsd_message(topic, payload)
        if kind == "events":
            return self.ingester.driver_event_message(topic, payload)
        return self.ingester.fleet_message(topic, payload)

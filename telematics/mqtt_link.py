"""The ingester's connection to the broker: a paho client reading device topics, in this
process's own thread or in a process of its own (ADR 0027).

In its own process, paho's network loop (reading each packet, decoding it, MQTT 5's
properties) no longer shares this process's interpreter lock with storing and placing fixes:
the reader sends the messages it receives to this process in batches over a pipe, and sends
each acknowledgement this process returns, after its commit. The guarantees stay those of
ADR 0007: acked only after commit (the reader never acks on its own), the order received
(one pipe, one worker), the same fixed client id and persistent session. If this process
dies, the reader sees the pipe close and disconnects: what was not acked is redelivered.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

log = logging.getLogger(__name__)

#: Where paho's network loop runs: "process" (its own, the default) or "thread".
Reader = Literal["process", "thread"]
RECEIVE_MAXIMUM = 2000
#: The reader sends what it has received at least this often (seconds)...
FORWARD_EVERY_S = 0.002
#: ...and at most this many messages at once.
FORWARD_MAX = 500
#: A reader process that died is replaced after this long (seconds).
RESTART_AFTER_S = 1.0


@dataclass(frozen=True, slots=True)
class Received:
    """A message as the worker sees it: when it arrived (monotonic seconds, the same clock
    in every process of the machine), its topic and payload, and what acknowledges it."""

    arrived: float
    topic: str
    payload: bytes
    mid: int
    qos: int


@dataclass(frozen=True, slots=True)
class LinkConfig:
    host: str
    port: int
    username: str | None
    password: str | None
    protocol: Literal[5, 4]
    client_id: str
    topics: tuple[str, ...]
    session_expiry_s: int


def make_client(
    config: LinkConfig, *, client_id: str | None = None, persistent: bool = True
) -> mqtt.Client:
    """A paho client for ``config``: manual acks, reconnect with backoff (1 s doubling to
    5 s), MQTT 3.1.1 where the broker speaks only that (``clean_session=False`` keeps the
    session unless not ``persistent``: a publisher's)."""
    if config.protocol == 5:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or config.client_id,
            protocol=mqtt.MQTTv5,
        )
    else:
        # MQTT 3.1.1 has no clean_start or session expiry: clean_session=False is the
        # persistent session.
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or config.client_id,
            protocol=mqtt.MQTTv311,
            clean_session=not persistent,
        )
    client.manual_ack_set(True)
    client.reconnect_delay_set(min_delay=1, max_delay=5)
    if config.username:
        client.username_pw_set(config.username, config.password)
    return client


def connect(client: mqtt.Client, config: LinkConfig, *, persistent: bool = True) -> None:
    """Connect in the background (paho's loop thread): the persistent session with its
    expiry and receive maximum, or (``persistent`` False: a publisher) a clean one."""
    if config.protocol == 5:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        if persistent:
            properties.SessionExpiryInterval = config.session_expiry_s
            # Unacked messages the broker may send at once: the backlog the worker can see
            # (and, overloaded, shed from); the broker's own limit may be lower.
            properties.ReceiveMaximum = RECEIVE_MAXIMUM
        client.connect_async(
            config.host,
            config.port,
            keepalive=30,
            clean_start=not persistent,
            properties=properties,
        )
    else:
        client.connect_async(config.host, config.port, keepalive=30)
    client.loop_start()


def subscribed(codes: Any) -> bool:
    """Whether a SUBACK granted every subscription (paho: a reason code per topic)."""
    granted = all(not code.is_failure for code in codes)
    if not granted:
        log.error("MQTT subscriptions refused: %s", [str(code) for code in codes])
    return granted


class Link:
    """paho reading ``config.topics`` (QoS 1): each message goes to ``deliver`` (in the
    order received), ``connected`` is told True once the broker has granted the
    subscriptions and False when the connection goes, and :meth:`ack` acknowledges what the
    worker committed."""

    def __init__(
        self,
        config: LinkConfig,
        deliver: Callable[[Received], None],
        connected: Callable[[bool], None],
    ) -> None:
        self.config = config
        self.deliver = deliver
        self.connected = connected

    @property
    def pid(self) -> int | None:
        """The reader process's id (None: paho runs in this process)."""
        return None

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def ack(self, acks: Sequence[tuple[int, int]]) -> None:
        """Acknowledge (mid, qos) pairs, in order."""
        raise NotImplementedError


class ThreadLink(Link):
    """paho's network loop in a thread of this process."""

    def __init__(
        self,
        config: LinkConfig,
        deliver: Callable[[Received], None],
        connected: Callable[[bool], None],
    ) -> None:
        super().__init__(config, deliver, connected)
        self.client = make_client(config)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    def start(self) -> None:
        connect(self.client, self.config)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def ack(self, acks: Sequence[tuple[int, int]]) -> None:
        for mid, qos in acks:
            self.client.ack(mid, qos)

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.error("MQTT connection refused: %s", reason)
            return
        client.subscribe([(t, 1) for t in self.config.topics])

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, _mid: int, codes: Any, _p: Any) -> None:
        self.connected(subscribed(codes))

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.connected(False)
        if reason.is_failure:
            log.warning("MQTT disconnected (%s); reconnecting", reason)

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        self.deliver(
            Received(
                time.monotonic(), message.topic, bytes(message.payload), message.mid, message.qos
            )
        )


class ProcessLink(Link):
    """paho's network loop in a process of its own (see the module's docstring)."""

    def __init__(
        self,
        config: LinkConfig,
        deliver: Callable[[Received], None],
        connected: Callable[[bool], None],
    ) -> None:
        super().__init__(config, deliver, connected)
        self._conn: Connection | None = None
        self._process: Any = None
        self._listener: threading.Thread | None = None
        self._send_lock = threading.Lock()
        self._stopping = False

    @property
    def pid(self) -> int | None:
        return int(self._process.pid) if self._process is not None else None

    def start(self) -> None:
        self._stopping = False
        self._spawn()
        self._listener = threading.Thread(target=self._listen, name="mqtt-link", daemon=True)
        self._listener.start()

    def _spawn(self) -> None:
        context = mp.get_context("spawn")  # no copy of this process's threads and sockets
        ours, theirs = context.Pipe()
        process = context.Process(
            target=reader_main, args=(theirs, self.config), name="mqtt-reader", daemon=True
        )
        process.start()
        theirs.close()
        with self._send_lock:
            self._conn, self._process = ours, process

    def stop(self) -> None:
        if self._conn is None:
            return
        self._stopping = True
        self._send(("stop", None))
        if self._process is not None:
            self._process.join(timeout=10)
            if self._process.is_alive():
                self._process.kill()
        if self._listener is not None:
            self._listener.join(timeout=10)
        self._conn.close()
        self._conn = None
        self.connected(False)

    def ack(self, acks: Sequence[tuple[int, int]]) -> None:
        if acks:
            self._send(("ack", list(acks)))

    def _send(self, message: tuple[str, Any]) -> None:
        with self._send_lock:
            conn = self._conn
            if conn is None:
                return
            try:
                conn.send(message)
            except (BrokenPipeError, OSError):
                # The reader is gone: what was not acked is redelivered to the next session.
                log.warning("the MQTT reader process has gone; %s not sent", message[0])

    def _listen(self) -> None:
        deliver = self.deliver
        while True:
            conn = self._conn
            assert conn is not None
            try:
                kind, body = conn.recv()
            except (EOFError, OSError):
                self.connected(False)
                if self._stopping:
                    return
                # The reader died (killed, out of memory): start another on the same session.
                # The broker sends it again what was not acked, with the same packet ids, so
                # an ack still on its way for a message of the old connection acks that one.
                log.error(
                    "the MQTT reader process ended (exit code %s); starting another",
                    self._process.exitcode if self._process is not None else None,
                )
                time.sleep(RESTART_AFTER_S)
                if self._stopping:
                    return
                self._spawn()
                continue
            if kind == "messages":
                for arrived, topic, payload, mid, qos in body:
                    deliver(Received(arrived, topic, payload, mid, qos))
            elif kind == "connected":
                self.connected(bool(body))
            elif kind == "stopped":
                return


def reader_main(conn: Connection, config: LinkConfig) -> None:
    """The reader process: paho's loop receives, this forwards in batches and acks what the
    parent sends back. Ends when told to stop or when the parent's end of the pipe closes."""
    logging.basicConfig(level=logging.WARNING)
    pending: list[tuple[float, str, bytes, int, int]] = []
    lock = threading.Lock()
    have = threading.Event()
    send_lock = threading.Lock()
    done = threading.Event()

    def send(message: tuple[str, Any]) -> None:
        with send_lock:
            try:
                conn.send(message)
            except (BrokenPipeError, OSError):
                done.set()

    def on_connect(c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.error("MQTT connection refused: %s", reason)
            return
        c.subscribe([(t, 1) for t in config.topics])

    def on_subscribe(_c: mqtt.Client, _u: Any, _mid: int, codes: Any, _p: Any) -> None:
        send(("connected", subscribed(codes)))

    def on_disconnect(_c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        send(("connected", False))
        if reason.is_failure:
            log.warning("MQTT disconnected (%s); reconnecting", reason)

    def on_message(_c: mqtt.Client, _u: Any, m: mqtt.MQTTMessage) -> None:
        with lock:
            pending.append((time.monotonic(), m.topic, bytes(m.payload), m.mid, m.qos))
        have.set()

    def forward() -> None:
        while not done.is_set():
            have.wait(0.1)
            time.sleep(FORWARD_EVERY_S)  # let a burst gather: one pipe message for many
            with lock:
                taken = pending[:FORWARD_MAX]
                del pending[:FORWARD_MAX]
                if not pending:
                    have.clear()
            if taken:
                send(("messages", taken))

    client = make_client(config)
    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    forwarder = threading.Thread(target=forward, name="mqtt-forward", daemon=True)
    forwarder.start()
    connect(client, config)
    try:
        while not done.is_set():
            try:
                kind, body = conn.recv()
            except (EOFError, OSError):
                break  # the parent is gone: leave the rest unacked
            if kind == "ack":
                for mid, qos in body:
                    client.ack(mid, qos)
            elif kind == "stop":
                break
    finally:
        done.set()
        # Unacked messages stay in the session: the broker delivers them again next time.
        client.disconnect()
        client.loop_stop()
        send(("stopped", None))
        conn.close()

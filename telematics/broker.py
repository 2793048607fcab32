"""A private MQTT broker for a service with no broker configured (the demo, a laptop).

Mosquitto on a free loopback port when its binary exists; otherwise amqtt, a pure-Python
broker, embedded in this process on its own thread and event loop, so the demo works on a
machine with nothing installed. Both listen on 127.0.0.1 only and allow anonymous clients.

Each also has a WebSocket listener (MQTT over WebSockets, path ``/mqtt``), on a port of its
own, so the drivers' web app (issue 20) can publish fixes from the browser: a page cannot open
a TCP socket. Like the TCP listener it checks no credentials and enforces no ACL; it is for a
phone on this machine (the demo, the browser tests), not for phones on a network (docs/adr/0025).
A Mosquitto built without websockets still starts, with the TCP listener alone.

What the embedded broker (amqtt 0.12) cannot do that Mosquitto does:

- MQTT 3.1.1 only: it refuses a CONNECT at protocol level 5, so its address says
  ``protocol=4`` and the ingester keeps its session with ``clean_session=False`` instead of
  MQTT 5's ``clean_start=False`` and session expiry, and without shared subscriptions.
- Sessions live in memory. QoS 1 messages for a disconnected persistent session wait in the
  broker while the service runs (sessions expire after a day unused), but whatever it holds
  is gone when the service stops; Mosquitto persists them to ``data_dir``. Devices cannot
  publish while the service (and so the broker) is down, so only what was queued at the stop
  is at risk.
- It forgets a QoS 1 message it delivered once the client has not acked it within 5 s or
  has disconnected: an unacked message is not redelivered on reconnect. The ingester still
  stores what it received before a clean stop (its worker drains its queue), so only a crash
  of the ingester alone, with the broker up, loses those messages.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import subprocess
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from amqtt.broker import Broker as AmqttBroker
from amqtt.plugins.base import BaseAuthPlugin

from telematics.mqtt import BrokerAddress

log = logging.getLogger(__name__)

#: Debian installs mosquitto in /usr/sbin, which is not on a non-root PATH.
MOSQUITTO_FALLBACK_PATHS = (Path("/usr/sbin/mosquitto"),)
#: How long a disconnected persistent session keeps its queued messages in the embedded broker
#: (the ingester asks Mosquitto for the same through MQTT 5's session expiry).
EMBEDDED_SESSION_EXPIRY_S = 86_400
_START_TIMEOUT_S = 10.0


class BrokerUnavailableError(RuntimeError):
    """No broker could be started here; the message says why."""


class MqttBroker(Protocol):
    """A broker this process started and must stop."""

    @property
    def address(self) -> BrokerAddress: ...

    @property
    def kind(self) -> str: ...

    @property
    def ws_port(self) -> int | None:
        """The WebSocket listener's port (on the address's host), None when there is none."""
        ...

    def stop(self) -> None: ...


@dataclass
class PrivateBroker:
    """Mosquitto as a child process."""

    address: BrokerAddress
    process: subprocess.Popen[bytes]
    kind: str = "mosquitto"
    ws_port: int | None = None

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


class AcceptAnyClient(BaseAuthPlugin):  # type: ignore[misc]  # amqtt ships no type information
    """Lets every client in without marking its session anonymous: amqtt drops an anonymous
    session at disconnect and queues nothing for it, which would defeat the ingester's
    persistent session. The broker listens on loopback only, as the private Mosquitto does."""

    async def authenticate(self, *, session: Any) -> bool:  # noqa: ARG002
        return True


class _ClosingBroker(AmqttBroker):  # type: ignore[misc]  # amqtt ships no type information
    """amqtt, closing every client stream when its connection ends: amqtt 0.12 leaves the
    stream open when a client connects and sends nothing (a port probe such as /readyz), so
    each probe would hold a descriptor until garbage collection, which then warns."""

    async def stream_connected(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, listener_name: str
    ) -> None:
        try:
            await super().stream_connected(reader, writer, listener_name)
        finally:
            writer.close()


class _QuietProbes(logging.Filter):
    """amqtt logs a connection that sends no data (a port probe) as an error; for a loopback
    broker whose readiness is probed that way it is routine, not an error."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (
            message.startswith("No data from")
            or message.startswith("Failed to initialize client session: No data")
        )


_quiet_probes = _QuietProbes()


@dataclass
class EmbeddedBroker:
    """amqtt serving from its own thread and event loop, so it runs beside any caller (the
    service's own event loop included) and stops without touching theirs."""

    address: BrokerAddress
    _loop: asyncio.AbstractEventLoop
    _thread: threading.Thread
    _broker: Any  # amqtt.broker.Broker, untyped
    kind: str = "amqtt"
    ws_port: int | None = None

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        try:
            asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop).result(timeout=15)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=15)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _mosquitto_binary() -> str | None:
    found = shutil.which("mosquitto")
    if found is not None:
        return found
    return next((str(p) for p in MOSQUITTO_FALLBACK_PATHS if p.exists()), None)


def start_private_broker(
    data_dir: Path, *, prefer: Literal["auto", "mosquitto", "embedded"] = "auto"
) -> MqttBroker:
    """A broker on a free loopback port: Mosquitto if its binary exists (``auto`` or
    ``mosquitto``), else the embedded amqtt (``auto`` or ``embedded``). The address it returns
    says which MQTT version to speak. Raises BrokerUnavailableError if none could start."""
    reasons: list[str] = []
    if prefer in ("auto", "mosquitto"):
        try:
            return start_mosquitto(data_dir)
        except BrokerUnavailableError as exc:
            if prefer == "mosquitto":
                raise
            reasons.append(str(exc))
    try:
        return start_embedded_broker()
    except BrokerUnavailableError as exc:
        reasons.append(str(exc))
    raise BrokerUnavailableError("; ".join(reasons))


#: Per client: what a slow or absent ingester may have waiting in the broker (about 1.5 M
#: fixes of our JSON) before the broker drops.
MAX_QUEUED_BYTES = 256 * 1024 * 1024
#: Per client: QoS 1 messages sent and not yet acknowledged. The ingester acks after commit,
#: so this is the backlog it can see and shed from (more than its SHED_BACKLOG).
MAX_INFLIGHT_MESSAGES = 2000


def start_mosquitto(data_dir: Path, *, websockets: bool = True) -> PrivateBroker:
    """Mosquitto on a free loopback port, persisting to ``data_dir`` (so queued QoS 1
    messages survive its restart), with a WebSocket listener on another (``websockets``, when
    this Mosquitto was built with them). Raises BrokerUnavailableError if it cannot start."""
    binary = _mosquitto_binary()
    if binary is None:
        raise BrokerUnavailableError(
            "no mosquitto binary (install mosquitto or set LASTMILE_MQTT_URL)"
        )
    try:
        return _run_mosquitto(binary, data_dir, websockets)
    except BrokerUnavailableError as exc:
        # Debian's and the official builds have them; a build without says so and exits.
        if not websockets or "websockets support" not in str(exc).lower():
            raise
    log.warning("this mosquitto has no websockets: drivers' phones will send over HTTP")
    return _run_mosquitto(binary, data_dir, False)


def _run_mosquitto(binary: str, data_dir: Path, websockets: bool) -> PrivateBroker:
    data_dir.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    ws_port = _free_port() if websockets else None
    ws_listener = f"listener {ws_port} 127.0.0.1\nprotocol websockets\n" if ws_port else ""
    config = data_dir / "mosquitto.conf"
    # Started as root, Mosquitto switches to the mosquitto user, who cannot write its
    # persistence file into our data_dir: the messages it queued would die with it.
    run_as = "user root\n" if _is_root() else ""
    config.write_text(
        f"listener {port} 127.0.0.1\n"
        "allow_anonymous true\n"
        "persistence true\n"
        f"persistence_location {data_dir.resolve()}/\n"
        # Queues sized by memory, not by a count (Mosquitto's default drops silently past
        # 1,000 messages): ADR 0026. The ingester may hold many messages unacked at once, so
        # under overload it sheds by its own rule (telematics/shedding.py) before the broker
        # has to drop anything.
        "max_queued_messages 0\n"
        f"max_queued_bytes {MAX_QUEUED_BYTES}\n"
        f"max_inflight_messages {MAX_INFLIGHT_MESSAGES}\n"
        f"{run_as}"
        # Last: a listener's own options (protocol) follow its line.
        f"{ws_listener}"
    )
    log_file = data_dir / "mosquitto.log"
    with log_file.open("wb") as log_out:  # the child keeps its own descriptor
        process = subprocess.Popen(
            [binary, "-c", str(config)], stdout=log_out, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            error = log_file.read_text(errors="replace")
            raise BrokerUnavailableError(f"mosquitto exited: {error[-300:]}")
        try:
            for listening in (port, ws_port):
                if listening is not None:
                    socket.create_connection(("127.0.0.1", listening), timeout=0.2).close()
            return PrivateBroker(BrokerAddress("127.0.0.1", port), process, ws_port=ws_port)
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise BrokerUnavailableError("mosquitto did not open its port within 10 s")


def start_embedded_broker(*, attempts: int = 3) -> EmbeddedBroker:
    """amqtt on a free 127.0.0.1 port (MQTT 3.1.1), its WebSocket listener on another. A few
    attempts, since another process can take a free port between our probe and amqtt's bind."""
    error: Exception | None = None
    for _ in range(attempts):
        try:
            return _start_embedded_on(_free_port())
        except BrokerUnavailableError as exc:
            error = exc
    raise BrokerUnavailableError(f"embedded amqtt broker did not start: {error}")


def _amqtt_config(port: int, ws_port: int) -> dict[str, Any]:
    return {
        "listeners": {
            "default": {"type": "tcp", "bind": f"127.0.0.1:{port}"},
            "ws": {"type": "ws", "bind": f"127.0.0.1:{ws_port}"},
        },
        # Only our auth plugin: amqtt's defaults would add $SYS publishing and packet logging.
        "plugins": {f"{__name__}.{AcceptAnyClient.__name__}": {}},
        "session_expiry_interval": EMBEDDED_SESSION_EXPIRY_S,
    }


def _start_embedded_on(port: int) -> EmbeddedBroker:
    logging.getLogger("amqtt.broker").addFilter(_quiet_probes)  # adding it again is a no-op
    loop = asyncio.new_event_loop()
    started: Future[Any] = Future()
    ws_port = _free_port()

    async def start() -> Any:
        broker = _ClosingBroker(_amqtt_config(port, ws_port))  # binds to the running loop
        await broker.start()
        return broker

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            try:
                broker = loop.run_until_complete(start())
            except Exception as exc:
                started.set_exception(exc)
                return
            started.set_result(broker)
            loop.run_forever()
        finally:
            _close_loop(loop)

    thread = threading.Thread(target=run, name=f"amqtt-{port}", daemon=True)
    thread.start()
    try:
        broker = started.result(timeout=_START_TIMEOUT_S)
    except Exception as exc:
        if thread.is_alive():  # timed out: do not leave a half-started broker behind
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=_START_TIMEOUT_S)
        raise BrokerUnavailableError(str(exc) or type(exc).__name__) from exc
    address = BrokerAddress("127.0.0.1", port, protocol=4)
    return EmbeddedBroker(address, loop, thread, broker, ws_port=ws_port)


def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what amqtt left running (client handlers) so closing the loop warns of nothing."""
    pending = asyncio.all_tasks(loop)
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()

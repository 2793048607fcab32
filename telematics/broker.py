"""A private Mosquitto for a service with no broker configured (the demo, a laptop)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from telematics.mqtt import BrokerAddress


class BrokerUnavailableError(RuntimeError):
    """No broker could be started here; the message says why."""


@dataclass
class PrivateBroker:
    address: BrokerAddress
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_private_broker(data_dir: Path) -> PrivateBroker:
    """Mosquitto on a free loopback port, persisting to ``data_dir`` (so queued QoS 1
    messages survive its restart). Raises BrokerUnavailableError if it cannot start."""
    binary = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if binary is None:
        raise BrokerUnavailableError(
            "no mosquitto binary (install mosquitto or set LASTMILE_MQTT_URL)"
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    config = data_dir / "mosquitto.conf"
    config.write_text(
        f"listener {port} 127.0.0.1\n"
        "allow_anonymous true\n"
        "persistence true\n"
        f"persistence_location {data_dir.resolve()}/\n"
        "max_queued_messages 100000\n"
    )
    log_file = data_dir / "mosquitto.log"
    with log_file.open("wb") as log:  # the child keeps its own descriptor
        process = subprocess.Popen(
            [binary, "-c", str(config)], stdout=log, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            error = log_file.read_text(errors="replace")
            raise BrokerUnavailableError(f"mosquitto exited: {error[-300:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return PrivateBroker(BrokerAddress("127.0.0.1", port), process)
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise BrokerUnavailableError("mosquitto did not open its port within 10 s")

"""A paho MQTT client for proving what a broker allows: it records the broker's answers
(CONNACK, PUBACK and SUBACK reason codes) and every message that arrives."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

NOT_AUTHORIZED = 0x87  # MQTT 5 reason code on PUBACK and CONNACK


def accepted(code: int) -> bool:
    """A PUBACK reason below 0x80 is success (0x10: accepted, nobody subscribed)."""
    return code < 0x80


class Probe:
    """A paho client (MQTT 5 unless told) recording the broker's answers and what arrives."""

    def __init__(
        self, port: int, username: str | None, password: str | None, *, protocol: int = 5
    ) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.pubacks: dict[int, int] = {}
        self.subacks: dict[int, list[int]] = {}
        self.connack: int | None = None
        self._changed = threading.Condition()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"probe-{uuid.uuid4().hex[:10]}",
            protocol=mqtt.MQTTv5 if protocol == 5 else mqtt.MQTTv311,
        )
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.on_connect = self._on_connect
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        self.wait_for(lambda: self.connack is not None, "CONNACK")
        if self.connack != 0:
            self.close()  # refused: do not let paho keep reconnecting

    def _record(self, change: Callable[[], None]) -> None:
        with self._changed:
            change()
            self._changed.notify_all()

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self._record(lambda: setattr(self, "connack", reason.value))

    def _on_publish(self, _c: Any, _u: Any, mid: int, reason: Any, _p: Any) -> None:
        self._record(lambda: self.pubacks.__setitem__(mid, reason.value))

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, reasons: Any, _p: Any) -> None:
        self._record(lambda: self.subacks.__setitem__(mid, [r.value for r in reasons]))

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        self._record(lambda: self.messages.append((message.topic, bytes(message.payload))))

    def wait_for(self, done: Callable[[], bool], what: str, timeout_s: float = 10) -> None:
        with self._changed:
            if not self._changed.wait_for(done, timeout_s):
                raise AssertionError(f"no {what} within {timeout_s} s")

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> int:
        """Publish at QoS 1; the PUBACK's reason code (always 0 on MQTT 3.1.1)."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        self.wait_for(lambda: info.mid in self.pubacks, f"PUBACK for {topic}")
        return self.pubacks[info.mid]

    def subscribe(self, *topics: str) -> list[int]:
        _, mid = self.client.subscribe([(t, 1) for t in topics])
        assert mid is not None
        self.wait_for(lambda: mid in self.subacks, "SUBACK")
        return self.subacks[mid]

    def received(self, topic: str, payload: bytes) -> bool:
        with self._changed:
            return (topic, payload) in self.messages

    def wait_for_message(self, topic: str, payload: bytes) -> None:
        self.wait_for(lambda: self.received(topic, payload), f"{payload!r} on {topic}")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

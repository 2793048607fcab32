"""Push to the customer's app over MQTT: ``customers/{tracking_token}/updates``, QoS 1.

The app subscribes to its own topic (the tracking token is the unguessable part). Each update
is published with QoS 1, not retained, and counts as sent when the broker's PUBACK arrives.

MQTT has no idempotency key: when the PUBACK does not come in time the result is ``"retry"``,
but paho keeps the message in flight and may still deliver it after a reconnect, so the app
can receive an update twice. The published JSON therefore carries ``idempotency_key``, and
apps drop an update whose key they have already shown.
"""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from notify.channels.base import OutgoingMessage, SendResult, failed, retry, sent
from telematics.mqtt import BrokerAddress, PublishError, publish_checked

TOPIC = "customers/{token}/updates"
_NOT_IN_TOKEN = frozenset("/+#\x00")


def topic_for(token: str) -> str:
    """The topic a tracking token's updates go to; ValueError for a token that is not one."""
    if not token or any(c in _NOT_IN_TOKEN for c in token) or token != token.strip():
        raise ValueError(f"{token!r} is not a tracking token (no '/', '+', '#', blanks)")
    return TOPIC.format(token=token)


class MqttPushChannel:
    """Publishes ``message.push`` (plus its idempotency key) to the customer's topic.

    ``client`` is a connected paho client with its network loop running (see
    :func:`connect_push_client`); the channel does not own it.
    """

    what = "push"

    def __init__(self, client: mqtt.Client, *, timeout_s: float = 10.0) -> None:
        self.client = client
        self.timeout_s = timeout_s

    def send(self, message: OutgoingMessage) -> SendResult:
        if not message.push_token:
            return failed("push: the recipient has no tracking token")
        try:
            topic = topic_for(message.push_token)
        except ValueError as exc:
            return failed(f"push: {exc}")
        if not message.push:
            return failed("push: the message has no push body")
        if not self.client.is_connected():
            # Publishing now would only queue it in paho, to go out (maybe twice) on reconnect.
            return retry("push: not connected to the MQTT broker")
        body: dict[str, Any] = {**message.push, "idempotency_key": message.idempotency_key}
        payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        try:
            info = publish_checked(self.client, topic, payload, qos=1, retain=False)
            info.wait_for_publish(self.timeout_s)
        except (PublishError, ValueError, RuntimeError) as exc:
            return retry(f"push: {exc}")
        if not info.is_published():
            return retry(f"push: no PUBACK from the broker within {self.timeout_s:g} s")
        return sent(f"push: acknowledged on {topic}", str(info.mid))


def connect_push_client(
    broker: BrokerAddress,
    *,
    client_id: str | None = None,
    timeout_s: float = 10.0,
) -> mqtt.Client:
    """A paho client connected to ``broker`` with its network loop started.

    It reconnects by itself (1 s doubling to 30 s). Stop it with ``client.disconnect()`` and
    ``client.loop_stop()``. Raises ConnectionError when the broker refuses or does not answer
    within ``timeout_s``.
    """
    client_id = client_id or f"lastmile-push-{uuid.uuid4().hex[:12]}"
    if broker.protocol == 5:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    else:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311
        )
    if broker.username:
        client.username_pw_set(broker.username, broker.password)
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    answered = threading.Event()
    refused: list[str] = []

    def on_connect(_c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            refused.append(str(reason))
        answered.set()

    client.on_connect = on_connect
    where = f"{broker.host}:{broker.port}"
    try:
        client.connect(broker.host, broker.port, keepalive=30)
    except OSError as exc:
        raise ConnectionError(f"MQTT broker at {where} not reachable: {exc}") from exc
    client.loop_start()
    if not answered.wait(timeout_s) or refused:
        client.disconnect()
        client.loop_stop()
        why = refused[0] if refused else f"no CONNACK within {timeout_s:g} s"
        raise ConnectionError(f"MQTT broker at {where} refused the connection: {why}")
    return client

"""Where the drivers' web app publishes its fixes (issue 20): MQTT over WebSockets when the
broker the ingester reads has a WebSocket listener a phone can reach, else HTTP (the stops'
``mqtt`` is null and the app queues fixes for ``POST /v1/vehicles/{id}/positions``).

Why MQTT at all, when HTTP works: a fix is one small frame on a connection kept open, not a
request with its headers and TLS round trips each time, and it joins the other trackers' fixes
at the broker, with its QoS 1 queueing while the ingester is away (ADR 0007, 0026).

Which broker, and what it checks of a phone, is said honestly:

- **The private broker** (no ``mqtt_url``: Mosquitto or amqtt, telematics/broker.py) lets any
  client in and enforces no ACL (ADR 0025). It is offered only to a page that reached the
  service on a loopback address, since it listens on 127.0.0.1 and a phone elsewhere could
  not reach it; ``username`` is null and the app sends no credentials, as there is nothing
  to check them: anyone on this machine may publish any vehicle's topic there.
- **An external broker** (``mqtt_ws_url``, for the broker of ``mqtt_url``) recognises a
  phone by its device key: user name the key's prefix (the ``<prefix>`` of
  ``lm_<prefix>_...``, as the service looks keys up) and password the key. A device key
  bound to a vehicle is stored with its Mosquitto hash (``api_keys.mqtt_hash``, PBKDF2
  ``$7$``; never the key itself), so the password file of ``lastmile devices
  export-mosquitto`` (ADR 0014) holds an account for it that may publish its own vehicle's
  position topic and read nothing (telematics/acl.py). With ``LASTMILE_MOSQUITTO_ACL_DIR``
  the service exports the files again and reloads the broker when such a key is created or
  revoked; else the export is run by hand after it. A key made before that hash was stored
  has no account: the broker refuses it and the app keeps sending over HTTP, losing
  nothing (replace the key to publish over MQTT).

The topic is the vehicle's organisation-scoped position topic in our JSON
(telematics/topics.py), the one the ingester subscribes to.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from fastapi import Request
from pydantic import BaseModel, Field

from api.settings import Settings
from store.secrets import key_prefix
from telematics.topics import vehicle_topic

if TYPE_CHECKING:  # the response schema needs no broker code (amqtt) to load
    from telematics.broker import MqttBroker

#: Where a WebSocket listener of ours serves MQTT (Mosquitto and amqtt take any path).
WS_PATH = "/mqtt"


class MqttOut(BaseModel):
    """How the phone publishes its fixes over MQTT."""

    url: str = Field(description="ws:// or wss:// URL of the broker's WebSocket listener.")
    username: str | None = Field(
        description="Connect with this user name and the vehicle's device key as password. "
        "null: the broker checks no credentials (the service's private broker, on loopback), "
        "so none are sent."
    )
    client_id: str = Field(description="The phone's MQTT client id (a persistent session).")
    topic: str = Field(description="Publish each fix here, in our JSON position format.")
    qos: Literal[1] = 1


@dataclass(frozen=True, slots=True)
class PhoneBroker:
    """The broker's WebSocket listener as the service knows it."""

    url: str
    #: False: it lets anyone in (the private broker); the phone sends no credentials.
    checks_credentials: bool
    #: True: it listens on 127.0.0.1 (the private broker), so only a page on this machine
    #: can reach it.
    loopback_only: bool

    @property
    def origin(self) -> str:
        """scheme://host[:port], for the page's Content-Security-Policy."""
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}"


def phone_broker(settings: Settings, private: MqttBroker | None) -> PhoneBroker | None:
    """The WebSocket listener phones may publish to, or None (they send over HTTP): the
    external broker's ``mqtt_ws_url`` with ``mqtt_url``, else the private broker's own."""
    if not settings.mqtt:
        return None
    if settings.mqtt_url:
        if not settings.mqtt_ws_url:
            return None
        return PhoneBroker(settings.mqtt_ws_url, checks_credentials=True, loopback_only=False)
    if private is None or private.ws_port is None:
        return None
    url = f"ws://{private.address.host}:{private.ws_port}{WS_PATH}"
    return PhoneBroker(url, checks_credentials=False, loopback_only=True)


def _on_loopback(request: Request) -> bool:
    host = (request.url.hostname or "").strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def reachable_broker(request: Request) -> PhoneBroker | None:
    """The service's phone broker if the page making this request can reach it."""
    broker: PhoneBroker | None = getattr(request.app.state, "phone_broker", None)
    if broker is None or (broker.loopback_only and not _on_loopback(request)):
        return None
    return broker


def connect_source(request: Request) -> str | None:
    """What the page's ``connect-src`` must add for the broker (None: nothing)."""
    broker = reachable_broker(request)
    return broker.origin if broker is not None else None


def _bearer_prefix(request: Request) -> str | None:
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    return key_prefix(key.strip()) if scheme.lower() == "bearer" else None


def mqtt_offer(request: Request, organisation_id: str, vehicle_id: str) -> MqttOut | None:
    """The stops' ``mqtt``: how this vehicle's phone publishes its fixes, or None (HTTP)."""
    broker = reachable_broker(request)
    if broker is None:
        return None
    username = None
    if broker.checks_credentials:
        username = _bearer_prefix(request)
        if username is None:  # not a device key's request: nothing the broker could check
            return None
    return MqttOut(
        url=broker.url,
        username=username,
        client_id=f"driver-{organisation_id}-{vehicle_id}",
        topic=vehicle_topic(organisation_id, vehicle_id, "position"),
    )

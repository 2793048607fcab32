"""Which broker the drivers' web app is offered for its GPS (api/driver_mqtt.py, issue 20):
the stops' ``mqtt`` and the page's CSP. An external broker (``mqtt_ws_url``) is named with the
device key's id as user name; the private broker, which checks no one, with none, and only to
a page on this machine; no listener, no offer. The offer counts in the route_version, so a
phone whose copy names an old broker gets the new one. In a browser:
tests/api/test_browser_driver_mqtt.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from api.driver_mqtt import PhoneBroker, phone_broker
from api.settings import Settings
from store.secrets import key_prefix
from telematics.mqtt import BrokerAddress
from tests.api.service import Service, running

EXTERNAL = PhoneBroker("wss://broker.example/mqtt", checks_credentials=True, loopback_only=False)
PRIVATE = PhoneBroker("ws://127.0.0.1:41883/mqtt", checks_credentials=False, loopback_only=True)
#: As a browser on this machine names the service.
ON_THIS_MACHINE = {"Host": "127.0.0.1:8000"}


@dataclass
class _Private:
    """A private broker as the service sees one (telematics.broker.MqttBroker)."""

    address: BrokerAddress
    ws_port: int | None
    kind: str = "mosquitto"

    def stop(self) -> None:
        pass


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, str]]:
    """One service for the module, with vehicle v1 and its device key; MQTT off (each test
    sets the broker it offers)."""
    data = tmp_path_factory.mktemp("driver-mqtt")
    with running(f"sqlite:///{data / 'lastmile.db'}", data, sender_enabled=False) as s:
        now = datetime.now(UTC)
        shift = {"start": now.isoformat(), "end": (now + timedelta(hours=8)).isoformat()}
        depot = {"id": "d1", "location": {"lat": 60.1699, "lon": 24.9384}}
        assert s.client.post("/v1/depots", json=depot, headers=s.headers()).status_code == 201
        vehicle = {"id": "v1", "depot_id": "d1", "shift": shift}
        assert s.client.post("/v1/vehicles", json=vehicle, headers=s.headers()).status_code == 201
        yield s, s.key("device", "v1")


def _offering(s: Service, broker: PhoneBroker | None) -> Any:
    state: Any = s.client.app.state  # type: ignore[attr-defined]
    state.phone_broker = broker
    return state


def _stops(s: Service, key: str, **headers: str) -> Any:
    r = s.client.get("/v1/vehicles/v1/stops", headers={**s.headers(key), **headers})
    assert r.status_code == 200, r.text
    return r


def test_an_external_broker_is_offered_with_the_keys_id(service: tuple[Service, str]) -> None:
    s, key = service
    _offering(s, EXTERNAL)
    body = _stops(s, key).json()
    organisation = body["mqtt"]["topic"].split("/")[0]
    assert body["mqtt"] == {
        "url": "wss://broker.example/mqtt",
        "username": key_prefix(key),
        "client_id": f"driver-{organisation}-v1",
        "topic": f"{organisation}/fleet/v1/position",
        "qos": 1,
    }
    csp = s.client.get("/driver").headers["content-security-policy"]
    assert "connect-src 'self' wss://broker.example;" in csp


def test_the_private_broker_is_offered_without_credentials_on_this_machine_only(
    service: tuple[Service, str],
) -> None:
    """It listens on 127.0.0.1 and checks no one: a page from elsewhere could not reach it,
    and the phone is told to send no secret."""
    s, key = service
    _offering(s, PRIVATE)
    here = _stops(s, key, **ON_THIS_MACHINE).json()["mqtt"]
    assert here["url"] == "ws://127.0.0.1:41883/mqtt"
    assert here["username"] is None
    page = s.client.get("/driver", headers=ON_THIS_MACHINE)
    assert "connect-src 'self' ws://127.0.0.1:41883;" in page.headers["content-security-policy"]
    # The test client's own host name stands for a phone elsewhere on the network.
    assert _stops(s, key).json()["mqtt"] is None
    assert "connect-src 'self';" in s.client.get("/driver").headers["content-security-policy"]


def test_no_listener_no_offer(service: tuple[Service, str]) -> None:
    s, key = service
    _offering(s, None)
    assert _stops(s, key, **ON_THIS_MACHINE).json()["mqtt"] is None
    csp = s.client.get("/driver", headers=ON_THIS_MACHINE).headers["content-security-policy"]
    assert "connect-src 'self';" in csp


def test_a_new_broker_changes_the_route_version(service: tuple[Service, str]) -> None:
    """A phone holding the stops with an old broker (the private one moves to another port
    when the service restarts) gets the new offer, not a 304; the stream tells the same
    version as the stops."""
    s, key = service
    state = _offering(s, EXTERNAL)
    old = _stops(s, key)
    _offering(s, None)
    again = s.client.get(
        "/v1/vehicles/v1/stops",
        headers={**s.headers(key), "If-None-Match": old.headers["etag"]},
    )
    assert again.status_code == 200
    assert again.json()["route_version"] != old.json()["route_version"]
    _offering(s, EXTERNAL)
    state.driver_poll_s = 0.05
    state.driver_stream_max_s = 0.3
    r = s.client.get("/v1/vehicles/v1/stops/events", headers=s.headers(key))
    first = r.text.split("data: ", 1)[1].split("\n", 1)[0]
    assert json.loads(first)["route_version"] == old.json()["route_version"]


def test_which_listener_phones_may_use() -> None:
    """The external broker's URL with mqtt_url; else the private broker's WebSocket
    listener; none without MQTT, or without a listener."""
    private = _Private(BrokerAddress("127.0.0.1", 1883), ws_port=9001)
    external = Settings(mqtt_url="mqtt://broker:1883", mqtt_ws_url="wss://broker.example/mqtt")
    assert phone_broker(external, None) == EXTERNAL
    assert phone_broker(Settings(mqtt_url="mqtt://broker:1883"), None) is None
    assert phone_broker(Settings(), private) == PhoneBroker(
        "ws://127.0.0.1:9001/mqtt", checks_credentials=False, loopback_only=True
    )
    assert phone_broker(Settings(), _Private(private.address, ws_port=None)) is None
    assert phone_broker(Settings(mqtt=False), private) is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"mqtt_ws_url": "wss://broker.example/mqtt"}, "mqtt_ws_url needs mqtt_url"),
        (
            {"mqtt_url": "mqtt://broker:1883", "mqtt_ws_url": "https://broker.example/mqtt"},
            "must start with wss://",
        ),
    ],
)
def test_a_ws_url_that_cannot_work_is_refused(
    fields: dict[str, Any], message: str, tmp_path: Path
) -> None:
    """Phones publishing where the ingester does not read would lose every fix."""
    with pytest.raises(ValidationError, match=message):
        Settings(data_dir=tmp_path, **fields)

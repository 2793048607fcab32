"""The request and answer of device registration (``POST /v1/vehicles/{id}/devices``):
which protocol, and the credentials and topics the device is given (telematics/topics.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from api.schemas import Strict

#: Whether the broker's files follow the change: "reloading" (the service exports them and
#: reloads the broker right after this answer), "not_managed" (run `lastmile devices
#: export-mosquitto` and reload the broker yourself).
BrokerAcl = Literal["reloading", "not_managed"]


class DeviceCreate(Strict):
    protocol: Literal["fleet", "owntracks", "osmand"] = Field(
        "fleet",
        description="fleet: our JSON over MQTT on {organisation}/fleet/{vehicle_id}/position; "
        "owntracks: the "
        "OwnTracks app; osmand: Traccar Client over HTTP.",
    )
    external_device_id: str | None = Field(
        None,
        max_length=200,
        description="OwnTracks: the device name set in the app (its topic is then "
        "owntracks/{mqtt_username}/{device}, as OwnTracks publishes by default; user/device, "
        "unique within your organisation only, is deprecated). OsmAnd: leave it out: the "
        "server issues the identifier (external_device_id in the answer) to enter in Traccar "
        "Client. Fleet devices: none.",
        examples=["phone"],
    )


class DeviceCredentials(BaseModel):
    device_id: str
    vehicle_id: str
    external_device_id: str | None = Field(
        None,
        description="OsmAnd: the device identifier to enter in Traccar Client, issued now by "
        "the server (128 random bits: it is what /osmand knows the device by, keep it "
        "private). OwnTracks: the user/device registered. Fleet devices: none.",
    )
    mqtt_username: str
    mqtt_password: str = Field(description="Shown only now.")
    publish_topic: str | None = Field(
        description="Where the device publishes its positions: "
        "{organisation}/fleet/{vehicle}/position for a fleet device (its driver events go to "
        "…/events, a gpsd bridge's reports to …/gpsd), owntracks/{user}/{device} for "
        "OwnTracks; none for OsmAnd (it reports over HTTP to /osmand)."
    )
    broker_acl: BrokerAcl = Field(
        "not_managed",
        description="reloading: the service updates the broker's password and ACL files and "
        "reloads it right after this answer; not_managed: run `lastmile devices "
        "export-mosquitto` and reload the broker before the device connects.",
    )
    route_topic: str = Field(
        description="Where the vehicle's route is published (retained); the device may read it."
    )


class DevicePublic(BaseModel):
    device_id: str
    vehicle_id: str
    protocol: str
    external_device_id: str | None
    mqtt_username: str
    created_at: datetime
    revoked_at: datetime | None
    broker_acl: BrokerAcl | None = Field(
        None, description="After a change: whether the broker's files follow it by themselves."
    )

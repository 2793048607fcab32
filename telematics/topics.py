"""The MQTT topic scheme (ADR 0025): every vehicle topic names its organisation.

``{organisation}/fleet/{vehicle}/position``   a device's fix (our JSON)
``{organisation}/fleet/{vehicle}/gpsd``       a gpsd bridge's TPV report
``{organisation}/fleet/{vehicle}/events``     a driver's delivered / failed / skipped
``{organisation}/fleet/{vehicle}/route``      the vehicle's route (retained; the service's)
``owntracks/{user}/{device}``                 OwnTracks, known by its registered device

``{organisation}`` is the organisation's id (immutable; a display name can change) and
``{vehicle}`` the vehicle's own id in it, so two shops' ``van-1`` never share a topic.

Deprecated: the same topics without the organisation (``fleet/{vehicle}/position``), as
devices set up before this scheme publish them. They are still read where the vehicle id is
unique across organisations, and refused as ambiguous where it is not; nothing is published
on them.

Pure: names in, topics out, and the reverse.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

DeviceKind = Literal["position", "gpsd", "events"]
DEVICE_KINDS: tuple[DeviceKind, ...] = ("position", "gpsd", "events")
FLEET = "fleet"
ROUTE = "route"
OWNTRACKS = "owntracks"

#: What the ingester subscribes to: the organisation's topics, the deprecated ones, OwnTracks.
SUBSCRIPTIONS: tuple[str, ...] = (
    *(f"+/{FLEET}/+/{kind}" for kind in DEVICE_KINDS),
    *(f"{FLEET}/+/{kind}" for kind in DEVICE_KINDS),
    f"{OWNTRACKS}/+/+",
)
#: What the service publishes routes on (every organisation's vehicles).
ROUTES_WILDCARD = f"+/{FLEET}/+/{ROUTE}"


@dataclass(frozen=True, slots=True)
class VehicleTopic:
    """A device topic, parsed: whose vehicle it names, and what it carries."""

    #: None: the deprecated form, which names no organisation.
    organisation_id: str | None
    vehicle: str
    kind: str

    @property
    def ref(self) -> VehicleRef:
        return (self.organisation_id, self.vehicle)


#: (organisation id or None for the deprecated topics, the vehicle's own id).
VehicleRef = tuple[str | None, str]


def vehicle_topic(organisation_id: str, vehicle: str, kind: str) -> str:
    """``{organisation}/fleet/{vehicle}/{kind}``."""
    return f"{organisation_id}/{FLEET}/{vehicle}/{kind}"


def route_topic(organisation_id: str, vehicle: str) -> str:
    """Where the vehicle's route is published (retained)."""
    return vehicle_topic(organisation_id, vehicle, ROUTE)


def legacy_topic(vehicle: str, kind: str) -> str:
    """The deprecated ``fleet/{vehicle}/{kind}``."""
    return f"{FLEET}/{vehicle}/{kind}"


def parse_vehicle_topic(topic: str, kinds: tuple[str, ...] = DEVICE_KINDS) -> VehicleTopic | None:
    """A fleet topic of either form carrying one of ``kinds``, or None."""
    parts = topic.split("/")
    if len(parts) == 4 and parts[1] == FLEET and parts[0] and parts[0] != FLEET:
        organisation_id: str | None = parts[0]
        vehicle, kind = parts[2], parts[3]
    elif len(parts) == 3 and parts[0] == FLEET:
        organisation_id, vehicle, kind = None, parts[1], parts[2]
    else:
        return None
    if kind not in kinds or not vehicle:
        return None
    return VehicleTopic(organisation_id, vehicle, kind)


def topic_kind(topic: str) -> str | None:
    """``owntracks``, or the kind of a fleet topic (``position``, ``gpsd``, ``events``), or
    None for anything else."""
    if topic.split("/")[0] == OWNTRACKS:
        return OWNTRACKS
    parsed = parse_vehicle_topic(topic)
    return parsed.kind if parsed is not None else None

"""The demo's fleet: vans that drive their dispatched routes along the planned roads and
report like real devices, with the day's disruptions.

A van takes its route from the retained ``{organisation}/fleet/{vehicle}/route`` message, as a
driver's app would, and drives it: each leg at the planned pace give or take a little, waiting for a
time window to open, serving each stop for about the planned time. It publishes a GPS fix
every ``fix_interval_s`` of simulated time (with position noise), in our JSON or, for some
vans, as OwnTracks, and the driver's "delivered"/"failed" after each stop. A new route for a
van already on the road (an inserted order) is taken up from where the van is.

:func:`Van.step` is the whole behaviour and touches no network: the MQTT part is
:class:`FleetSimulator`.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from domain.geo import EARTH_RADIUS_M
from domain.route_track import RouteTrack, route_track
from lastmile.demo.device_messages import (
    DriverEvent,
    Fix,
    event_json,
    fleet_json,
    owntracks_json,
)
from telematics.mqtt import BrokerAddress, publish_checked
from telematics.topics import ROUTES_WILDCARD, parse_vehicle_topic, route_topic

log = logging.getLogger(__name__)

#: A van is never slower than this on a free road (m/s), whatever the plan's leg says.
MIN_SPEED_MPS = 2.0


@dataclass(frozen=True, slots=True)
class PlannedStop:
    order_id: str
    lat: float
    lon: float
    along_m: float
    arrival: datetime
    service_start: datetime
    departure: datetime
    #: The plan's drive from the previous stop (None: from the schedule).
    drive_s: float | None = None
    #: The customer's time windows (start, end).
    windows: tuple[tuple[datetime, datetime], ...] = ()

    def opens(self, now: datetime) -> datetime:
        """When the driver may ring: now, or the start of the next window still open."""
        for start, end in sorted(self.windows):
            if end >= now:
                return max(now, start)
        return now

    @property
    def service_s(self) -> float:
        return (self.departure - self.service_start).total_seconds()


@dataclass(frozen=True, slots=True)
class VanRoute:
    """A dispatched route as the van's device receives it."""

    vehicle_id: str
    plan_id: str
    start: datetime
    track: RouteTrack
    stops: tuple[PlannedStop, ...]
    #: The organisation the route's topic names (None: the deprecated un-prefixed topics).
    organisation_id: str | None = None

    @property
    def order_ids(self) -> tuple[str, ...]:
        return tuple(s.order_id for s in self.stops)


def route_from_message(payload: bytes | str, organisation_id: str | None = None) -> VanRoute:
    """Parse the retained route message the service publishes at dispatch (on
    ``{organisation_id}/fleet/{vehicle}/route``)."""
    data = json.loads(payload)
    coords = (data.get("geometry") or {}).get("coordinates") or []
    places = [(s["order_id"], float(s["lat"]), float(s["lon"])) for s in data["stops"]]
    track = route_track(data["vehicle_id"], data["plan_id"], coords, places)
    stops = tuple(
        PlannedStop(
            s["order_id"],
            float(s["lat"]),
            float(s["lon"]),
            float(at_m),
            datetime.fromisoformat(s["arrival"]),
            datetime.fromisoformat(s["service_start"]),
            datetime.fromisoformat(s["departure"]),
            float(s["drive_s"]) if s.get("drive_s") is not None else None,
            tuple(
                (datetime.fromisoformat(w["start"]), datetime.fromisoformat(w["end"]))
                for w in s.get("windows") or ()
            ),
        )
        for s, at_m in zip(data["stops"], track.stop_along_m, strict=True)
    )
    return VanRoute(
        data["vehicle_id"],
        data["plan_id"],
        datetime.fromisoformat(data["start"]),
        track,
        stops,
        organisation_id,
    )


@dataclass(frozen=True, slots=True)
class Jam:
    """Slow traffic on ``vehicle_id``'s way to ``order_id``: a queue ``length_m`` long that
    starts ``clear_of_stop_m`` after the stop before (a van still at a door is not in traffic)
    and ends at least ``end_before_m`` short of the jammed stop (the van is out of it before
    it can look arrived), on the van's own route. Once the van joins its tail the queue takes
    ``duration`` to crawl through; the rest of the leg is driven as usual."""

    vehicle_id: str
    order_id: str
    duration: timedelta
    length_m: float = 400.0
    clear_of_stop_m: float = 100.0
    end_before_m: float = 150.0


@dataclass(frozen=True, slots=True)
class Disruptions:
    jam: Jam | None = None
    #: Orders whose stop takes this much longer than planned (a customer who needs the
    #: order carried up four floors and unpacked).
    slow_stops: tuple[str, ...] = ()
    slow_extra: timedelta = timedelta(minutes=30)
    #: Orders the driver cannot deliver (nobody at home).
    failed_stops: tuple[str, ...] = ()


@dataclass
class Van:
    """One van's simulated state (mutable: the simulator owns it, one thread steps it)."""

    route: VanRoute
    rng: np.random.Generator
    along_m: float = 0.0
    #: Index of the stop it is driving to or serving; len(stops): driving back / done.
    index: int = 0
    phase: str = "waiting"  # waiting | driving | serving | returning | done
    busy_until: datetime | None = None
    pace: float = 1.0
    served: list[str] = field(default_factory=list)
    next_fix_at: datetime | None = None
    #: When the jam this van ran into clears (set when it reaches the jammed stretch).
    jam_until: datetime | None = None

    def take(self, route: VanRoute) -> None:
        """A new route while on the road: stops already served stay served, the van keeps its
        place (the re-plan kept the stops it had started and its next one)."""
        done = set(self.served)
        self.route = route
        self.index = next(
            (k for k, s in enumerate(route.stops) if s.order_id not in done), len(route.stops)
        )
        if self.phase == "returning" and self.index < len(route.stops):
            self.phase = "driving"

    @property
    def position(self) -> tuple[float, float]:
        return self.route.track.latlon_at(self.along_m)

    def _leg_speed_mps(self) -> float:
        """The plan's pace on the leg to the next stop (or back), scaled by this leg's luck."""
        stops = self.route.stops
        if self.index < len(stops):
            stop = stops[self.index]
            before = stops[self.index - 1] if self.index > 0 else None
            from_m = before.along_m if before is not None else 0.0
            leave = before.departure if before is not None else self.route.start
            # The plan's drive time: arrival - departure also holds any wait the solver put
            # before the arrival, and a van does not crawl through it.
            planned_s = max(1.0, stop.drive_s or (stop.arrival - leave).total_seconds())
            distance_m = stop.along_m - from_m
        else:
            distance_m = self.route.track.length_m - (stops[-1].along_m if stops else 0.0)
            planned_s = max(1.0, distance_m / 8.0)
        return max(MIN_SPEED_MPS, distance_m / planned_s / self.pace)

    def _jam_stretch(self, jam: Jam | None) -> tuple[float, float] | None:
        """Where the jam's queue lies on this van's route (metres along it), if the van is on
        its way to the jammed stop."""
        stops = self.route.stops
        if (
            jam is None
            or jam.vehicle_id != self.route.vehicle_id
            or self.phase != "driving"
            or stops[self.index].order_id != jam.order_id
        ):
            return None
        stop_m = stops[self.index].along_m
        leg_start_m = stops[self.index - 1].along_m if self.index > 0 else 0.0
        start_m = leg_start_m + jam.clear_of_stop_m
        end_m = min(start_m + jam.length_m, stop_m - jam.end_before_m)
        if end_m <= start_m:
            # A leg too short to keep the queue clear of both doors (trouble.py picks long
            # ones): the queue fills its middle half, and the van may look arrived early.
            quarter_m = (stop_m - leg_start_m) / 4.0
            start_m, end_m = leg_start_m + quarter_m, stop_m - quarter_m
        return (start_m, end_m) if end_m > start_m else None

    def _new_leg(self) -> None:
        # Some legs go better than planned, some worse (lights, parking, traffic).
        self.pace = float(np.clip(self.rng.normal(1.0, 0.12), 0.75, 1.4))

    def step(
        self, now: datetime, dt_s: float, disruptions: Disruptions
    ) -> tuple[float, list[DriverEvent]]:
        """Move the van ``dt_s`` simulated seconds up to ``now``. Returns its speed (m/s) and
        the driver's events of this step."""
        events: list[DriverEvent] = []
        stops = self.route.stops
        if self.phase == "waiting":
            if now < self.route.start:
                return 0.0, events
            self.phase = "driving" if stops else "done"
            self._new_leg()
        if self.phase == "serving":
            assert self.busy_until is not None
            if now < self.busy_until:
                return 0.0, events
            stop = stops[self.index]
            failed = stop.order_id in disruptions.failed_stops
            events.append(
                DriverEvent(
                    self.route.vehicle_id,
                    stop.order_id,
                    "failed" if failed else "delivered",
                    self.busy_until,
                    "nobody at home" if failed else "",
                    self.route.organisation_id,
                )
            )
            self.served.append(stop.order_id)
            self.index += 1
            self.phase = "driving" if self.index < len(stops) else "returning"
            self._new_leg()
        if self.phase not in ("driving", "returning"):
            return 0.0, events
        target_m = (
            stops[self.index].along_m if self.phase == "driving" else self.route.track.length_m
        )
        speed = self._leg_speed_mps()
        limit_m = target_m
        jam = disruptions.jam
        stretch = self._jam_stretch(jam)
        if jam is not None and stretch is not None:
            start_m, end_m = stretch
            if self.jam_until is None and self.along_m < start_m:
                # The van joins the queue at its tail, however long the step.
                limit_m = min(limit_m, start_m)
            elif start_m <= self.along_m < end_m:
                if self.jam_until is None:
                    self.jam_until = now + jam.duration
                if now < self.jam_until:
                    # The queue moves as it clears: the van reaches its head when it does.
                    left_s = max((self.jam_until - now).total_seconds(), dt_s)
                    speed = (end_m - self.along_m) / left_s
        self.along_m = min(limit_m, self.along_m + speed * dt_s)
        if self.along_m >= target_m - 0.5:
            if self.phase == "returning":
                self.phase = "done"
                return 0.0, events
            stop = stops[self.index]
            # A driver early for a window waits for it to open.
            begin = stop.opens(now)
            service_s = stop.service_s * float(np.exp(self.rng.normal(0.0, 0.2)))
            if stop.order_id in disruptions.slow_stops:
                service_s = stop.service_s + disruptions.slow_extra.total_seconds()
            self.busy_until = begin + timedelta(seconds=service_s)
            self.phase = "serving"
        return speed, events

    def fix(self, now: datetime, speed_mps: float, noise_m: float) -> Fix:
        """Where the device says the van is: the true place plus GPS error."""
        lat, lon = self.position
        k = 180.0 / math.pi / EARTH_RADIUS_M
        lat += float(self.rng.normal(0.0, noise_m)) * k
        lon += float(self.rng.normal(0.0, noise_m)) * k / math.cos(math.radians(lat))
        return Fix(self.route.vehicle_id, now, lat, lon, speed_mps, self.route.organisation_id)


class Device(Protocol):
    """A van's device other than the simulator's own MQTT messages (the drivers' app on a
    phone): it is handed the van's fixes and its driver's events."""

    def fix(self, fix: Fix) -> None: ...

    def event(self, event: DriverEvent) -> None: ...


@dataclass(frozen=True, slots=True)
class FleetConfig:
    fix_interval_s: float = 10.0
    noise_m: float = 6.0
    #: Vans whose devices speak OwnTracks: vehicle id -> (user, device).
    owntracks: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: Wall-clock seconds between simulation steps.
    tick_s: float = 0.1
    #: Vans whose driver reports through another device (vehicle id -> it), not over MQTT.
    devices: Mapping[str, Device] = field(default_factory=dict)


class FleetSimulator:
    """Drives every van whose route arrives on ``{organisation}/fleet/+/route``, publishing
    what its device and its driver would (on its organisation's topics), until stopped."""

    def __init__(
        self,
        broker: BrokerAddress,
        clock: Callable[[], datetime],
        disruptions: Disruptions,
        config: FleetConfig | None = None,
        seed: int = 1,
        on_event: Callable[[DriverEvent], None] | None = None,
        organisation_id: str | None = None,
    ) -> None:
        """``organisation_id``: drive only that organisation's vans (one simulator per shop:
        each has its own vehicle ids and disruptions)."""
        self.broker = broker
        self.organisation_id = organisation_id
        self.clock = clock
        self.disruptions = disruptions
        self.config = config or FleetConfig()
        self.rng = np.random.default_rng(seed)
        self.on_event = on_event
        self.vans: dict[str, Van] = {}
        self.published = 0
        self._routes: list[VanRoute] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"demo-fleet-{seed}-{(organisation_id or 'all')[:12]}",
            protocol=mqtt.MQTTv5 if broker.protocol == 5 else mqtt.MQTTv311,
        )
        self.client.max_queued_messages_set(0)
        self.client.on_message = self._on_message
        self.client.on_connect = self._on_connect

    def _on_connect(self, client: mqtt.Client, *_: Any) -> None:
        topic = ROUTES_WILDCARD
        if self.organisation_id is not None:
            topic = route_topic(self.organisation_id, "+")
        client.subscribe(topic, qos=1)

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        try:
            topic = parse_vehicle_topic(message.topic, ("route",))
            organisation_id = topic.organisation_id if topic is not None else None
            route = route_from_message(bytes(message.payload), organisation_id)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("route message on %s unusable: %s", message.topic, exc)
            return
        with self._lock:
            self._routes.append(route)

    def start(self) -> None:
        self.client.connect(self.broker.host, self.broker.port)
        self.client.loop_start()
        self._thread = threading.Thread(target=self._run, name="demo-fleet", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.client.loop_stop()
        self.client.disconnect()

    def done(self) -> bool:
        """Every van has served its route (driving back to the depot does not count)."""
        vans = list(self.vans.values())
        return bool(vans) and all(v.index >= len(v.route.stops) for v in vans)

    def _take_routes(self) -> None:
        with self._lock:
            routes, self._routes = self._routes, []
        for route in routes:
            van = self.vans.get(route.vehicle_id)
            if van is None:
                self.vans[route.vehicle_id] = Van(
                    route, np.random.default_rng(self.rng.integers(1 << 31))
                )
            elif van.route.plan_id != route.plan_id:
                van.take(route)

    def _publish(self, messages: Sequence[tuple[str, str]]) -> None:
        for topic, payload in messages:
            publish_checked(self.client, topic, payload, qos=1)
            self.published += 1

    def _run(self) -> None:
        last = self.clock()
        while not self._stop.wait(self.config.tick_s):
            try:
                self._take_routes()
                now = self.clock()
                dt_s = (now - last).total_seconds()
                last = now
                if dt_s <= 0:
                    continue
                self._tick(now, dt_s)
            except Exception:  # the demo goes on; the log says what broke
                log.exception("fleet simulator step failed")

    def _tick(self, now: datetime, dt_s: float) -> None:
        out: list[tuple[str, str]] = []
        for van in self.vans.values():
            if van.phase == "done":
                continue
            speed, events = van.step(now, dt_s, self.disruptions)
            other = self.config.devices.get(van.route.vehicle_id)
            for event in events:
                if other is not None:
                    other.event(event)
                else:
                    out.append(event_json(event))
                if self.on_event is not None:
                    self.on_event(event)
            if van.next_fix_at is None or now >= van.next_fix_at:
                van.next_fix_at = now + timedelta(seconds=self.config.fix_interval_s)
                fix = van.fix(now, speed, self.config.noise_m)
                owntracks = self.config.owntracks.get(van.route.vehicle_id)
                if other is not None:
                    other.fix(fix)
                else:
                    out.append(owntracks_json(fix, *owntracks) if owntracks else fleet_json(fix))
        self._publish(out)

"""Replaying a ground-truth scenario through the live pipeline on a simulated clock, and
scoring the ETAs against what really happened (``lastmile eval-eta``).

Each fix goes the way a live one goes: our fleet JSON → decoder → hygiene screen → progress
on the route → ETA core → delay events. Predictions are sampled once a minute per stop not yet
reached, and compared with the actual arrival.

Two baselines are sampled beside each prediction: the static plan (the plan's own arrival,
never updated) and the plan shifted by the vehicle's current delay (:func:`plan_delay_s`), the
estimate a dispatcher makes by hand from the plan and where the van is now.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import numpy as np

from domain.geo import LatLon
from domain.position import Position
from domain.route_track import RouteTrack, route_track
from domain.vehicle_progress import Progress
from eta.delay import DelayEvent, DelayParams, Told, WindowBroken, detect
from eta.history import fit_prior
from eta.live import recompute, route_from_track, route_progress
from eta.pace import Pace
from eta.params import EtaParams, FleetPrior
from eta.predict import StopEta, predict
from eta.progress import RouteProgress, not_started
from eta.promise import StopPromise, ToldWindow, told_stop
from eta.route import EtaRoute
from evaluation.noise import NoiseProfile, degrade
from evaluation.scenario import Scenario, ScenarioStop, ScenarioVehicle
from routing.geometry import route_geojson
from routing.road_graph import RoadGraph
from routing.snapping import Snapper
from telematics.decoders import decode_fleet_json
from telematics.hygiene import HygieneParams, Verdict, screen
from telematics.progress import ProgressParams, apply_fix, start
from telematics.way_back import way_back

SAMPLE_EVERY_S = 60.0


@dataclass(frozen=True, slots=True)
class Prediction:
    vehicle: str
    stop_id: str
    at: datetime
    eta: datetime
    earliest: datetime
    latest: datetime
    static_eta: datetime
    actual: datetime
    #: The static plan's arrival shifted by the vehicle's delay at ``at`` (see plan_delay_s).
    static_plus_delay_eta: datetime

    @property
    def horizon_s(self) -> float:
        return (self.actual - self.at).total_seconds()


@dataclass
class StopNotices:
    """What one stop's customer was told, and when the van really came."""

    first_earliest: datetime | None = None
    first_latest: datetime | None = None
    #: Late window-broken messages sent before the van came (``notify_recall``'s notices).
    late_notices_before_arrival: int = 0
    messages: int = 0
    #: The windows told after the first, in the order sent (eta.promise.told_stop finds the
    #: late notices among them).
    told: list[ToldWindow] = field(default_factory=list)
    actual: datetime | None = None

    def promise(self, stop_id: str) -> StopPromise:
        first = (
            None
            if self.first_earliest is None or self.first_latest is None
            else ToldWindow(0.0, self.first_earliest.timestamp(), self.first_latest.timestamp())
        )
        return told_stop(
            stop_id,
            first,
            self.told,
            None if self.actual is None else self.actual.timestamp(),
            self.messages,
        )


@dataclass
class ReplayResult:
    predictions: list[Prediction] = field(default_factory=list)
    #: (vehicle, stop id) -> what the customer was told.
    notices: dict[tuple[str, str], StopNotices] = field(default_factory=dict)
    fixes: int = 0
    fixes_applied: int = 0
    #: The same day told under each alternative DelayParams (``replay(alternatives=...)``):
    #: the predictions are the same, only what is told differs.
    alternative_notices: list[dict[tuple[str, str], StopNotices]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class VehicleRoute:
    track: RouteTrack
    route: EtaRoute
    #: The same with the plan's own service times (the static baseline's); None: ``route``.
    as_planned: EtaRoute | None = None


#: The service time to expect at a stop (seconds), e.g. the dispatcher's figure refined by
#: the address's history; None: the plan's.
ServiceOf = Callable[[ScenarioStop], float]


def vehicle_route(
    vehicle: ScenarioVehicle,
    graph: RoadGraph,
    snapper: Snapper,
    service_of: ServiceOf | None = None,
) -> VehicleRoute:
    """The planned road line (depot, stops in order, depot) and leg times on our network."""
    places = [
        LatLon(vehicle.depot_lat, vehicle.depot_lon),
        *(LatLon(s.lat, s.lon) for s in vehicle.stops),
        LatLon(vehicle.depot_lat, vehicle.depot_lon),
    ]
    feature = route_geojson(graph, snapper.snap(places, max_distance_m=math.inf))
    legs = feature["properties"]["legs"]
    track = route_track(
        vehicle.id,
        "scenario",
        feature["geometry"]["coordinates"],
        [(s.id, s.lat, s.lon) for s in vehicle.stops],
    )
    route = route_from_track(
        track,
        vehicle.shift_start,
        [leg["duration_s"] for leg in legs[: len(vehicle.stops)]],
        [s.service_s if service_of is None else service_of(s) for s in vehicle.stops],
        [s.windows for s in vehicle.stops],
    )
    if service_of is None:
        return VehicleRoute(track, route)
    as_planned = route_from_track(
        track,
        vehicle.shift_start,
        [leg["duration_s"] for leg in legs[: len(vehicle.stops)]],
        [s.service_s for s in vehicle.stops],
        [s.windows for s in vehicle.stops],
    )
    return VehicleRoute(track, route, as_planned)


def replay_vehicle(
    scenario: Scenario,
    vehicle: ScenarioVehicle,
    planned: VehicleRoute,
    profile: NoiseProfile,
    rng: np.random.Generator,
    *,
    params: EtaParams,
    delay: DelayParams,
    progress_params: ProgressParams,
    hygiene: HygieneParams,
    off_route_s: Callable[[float, float, int], float] | None,
    result: ReplayResult,
    alternatives: Sequence[DelayParams] = (),
) -> None:
    track, route = planned.track, planned.route
    gps = scenario.gps.get(vehicle.id)
    if gps is None or len(gps.timestamp) == 0:
        return
    noisy = degrade(gps, profile, rng)
    # The static plan: the schedule as planned (no history, no pace), never updated.
    as_planned = replace(params, prior=FleetPrior())
    static_route = planned.as_planned or route
    plan = predict(static_route, not_started(len(route.stops)), route.start, as_planned, Pace())
    static = {e.order_id: e.eta for e in plan}
    actual = {
        s.id: a.arrival
        for s in vehicle.stops
        if (a := scenario.actual.get((vehicle.id, s.id))) is not None and a.arrival is not None
    }
    while len(result.alternative_notices) < len(alternatives):
        result.alternative_notices.append({})
    for s in vehicle.stops:
        result.notices[(vehicle.id, s.id)] = StopNotices(actual=actual.get(s.id))
        for notices_of in result.alternative_notices:
            notices_of[(vehicle.id, s.id)] = StopNotices(actual=actual.get(s.id))
    alternative_told: list[dict[str, Told]] = [{} for _ in alternatives]
    progress = start(track)
    last: Position | None = None
    told: dict[str, Told] = {}
    topic = f"fleet/{vehicle.id}/position"
    first_t = datetime.fromtimestamp(float(noisy.timestamp[0]), UTC)
    next_sample = first_t.replace(second=0, microsecond=0) + timedelta(minutes=1)
    end = max(actual.values(), default=first_t)

    def sample(at: datetime) -> None:
        travel = _off_route(progress, track, off_route_s)
        now = route_progress(progress, travel)
        late_s = plan_delay_s(route, plan, now, at)
        for eta in predict(route, now, at, params):
            arrival = actual.get(eta.order_id)
            if arrival is None or arrival <= at:
                continue
            shifted_s = max(plan[eta.index].eta_s + late_s, at.timestamp())
            result.predictions.append(
                Prediction(
                    vehicle.id,
                    eta.order_id,
                    at,
                    eta.eta,
                    eta.earliest,
                    eta.latest,
                    static[eta.order_id],
                    arrival,
                    datetime.fromtimestamp(shifted_s, UTC),
                )
            )

    for i in range(len(noisy.timestamp)):
        now = datetime.fromtimestamp(float(noisy.timestamp[i]), UTC)
        while next_sample < now and next_sample <= end:
            sample(next_sample)
            next_sample += timedelta(seconds=SAMPLE_EVERY_S)
        payload = json.dumps(
            {
                "time": float(noisy.timestamp[i]),
                "lat": round(float(noisy.lat[i]), 7),
                "lon": round(float(noisy.lon[i]), 7),
                "speed_mps": float(noisy.speed_mps[i]),
                "heading_deg": float(noisy.heading_deg[i]) % 360.0,
            }
        )
        result.fixes += 1
        fix = decode_fleet_json(topic, payload)
        if screen(fix, last, now, hygiene).verdict is not Verdict.APPLY:
            continue
        result.fixes_applied += 1
        last = fix
        progress, _ = apply_fix(track, progress, fix, progress_params)
        travel = _off_route(progress, track, off_route_s)
        live = recompute(route, route_progress(progress, travel), told, now, params, delay)
        told = live.told
        _record(result.notices, vehicle.id, live.events)
        for alternative, told_alt, notices_of in zip(
            alternatives, alternative_told, result.alternative_notices, strict=False
        ):
            events: list[DelayEvent] = []
            for eta in live.etas:
                before = told_alt.get(eta.order_id)
                if before is None:
                    # The first window does not depend on the delay parameters: the one the
                    # primary just told (it starts on the same fix).
                    first = told.get(eta.order_id)
                    if first is not None:
                        told_alt[eta.order_id] = first
                    continue
                new_told, event = detect(before, eta, now, alternative)
                if new_told is not None:
                    told_alt[eta.order_id] = new_told
                if event is not None:
                    events.append(event)
            _record(notices_of, vehicle.id, events, first_told=False)
    while next_sample <= end:
        sample(next_sample)
        next_sample += timedelta(seconds=SAMPLE_EVERY_S)
    for notices_of in result.alternative_notices:
        for s in vehicle.stops:
            primary = result.notices[(vehicle.id, s.id)]
            mine = notices_of[(vehicle.id, s.id)]
            mine.first_earliest, mine.first_latest = primary.first_earliest, primary.first_latest


def _record(
    notices_of: dict[tuple[str, str], StopNotices],
    vehicle_id: str,
    events: Sequence[DelayEvent],
    *,
    first_told: bool = True,
) -> None:
    """What the customers were told: the first window (unless ``first_told`` is False: the
    caller copies it), then every message after it and the window it told."""
    for event in events:
        notices = notices_of[(vehicle_id, event.order_id)]
        if first_told and notices.first_latest is None:
            notices.first_earliest, notices.first_latest = event.earliest, event.latest
            continue
        notices.messages += 1
        notices.told.append(
            ToldWindow(event.at.timestamp(), event.earliest.timestamp(), event.latest.timestamp())
        )
        late = isinstance(event, WindowBroken) and event.late
        if late and notices.actual is not None and event.at < notices.actual:
            notices.late_notices_before_arrival += 1


def plan_delay_s(
    route: EtaRoute, plan: Sequence[StopEta], progress: RouteProgress, at: datetime
) -> float:
    """How late (seconds; negative: early) the vehicle runs against its plan at ``at``, as a
    dispatcher reads it off the plan and the map: the "plan + current delay" baseline adds
    this to the planned arrival of every stop still ahead.

    ``plan`` is the static schedule (``predict`` from the start, not started, index = stop).
    Still at the start: late by the time past the planned departure. At a stop: its arrival
    delay, or more once the planned departure has passed. Between stops: the time of the last
    fix against the planned time at that point of the leg (planned departure to planned
    arrival, in proportion to the distance along it; off the route, the drive back to the
    next stop counts instead); and at least the time past the next stop's planned arrival.
    """
    at_s = at.timestamp()
    k = progress.next_stop
    if k >= len(plan):
        return 0.0
    if progress.started_at is None or progress.fix_time is None:
        return max(at_s - route.start.timestamp(), 0.0)
    arrived = progress.visits[k].arrived_at
    if arrived is not None:
        return max(arrived.timestamp() - plan[k].eta_s, at_s - plan[k].departure_s)
    fix_s = progress.fix_time.timestamp()
    if progress.off_route_travel_s is not None:
        late_s = fix_s + progress.off_route_travel_s - plan[k].eta_s
    else:
        leave_s = plan[k - 1].departure_s if k > 0 else route.start.timestamp()
        begin_m = route.leg_start_m(k)
        leg_m = route.stops[k].along_m - begin_m
        share = min(max((progress.along_m - begin_m) / leg_m, 0.0), 1.0) if leg_m > 0 else 1.0
        late_s = fix_s - (leave_s + share * (plan[k].eta_s - leave_s))
    return max(late_s, at_s - plan[k].eta_s)


def _off_route(
    progress: Progress, track: RouteTrack, off_route_s: Callable[[float, float, int], float] | None
) -> float | None:
    if progress.on_route or off_route_s is None or progress.lat is None or progress.lon is None:
        return None
    k = progress.next_stop
    if k >= len(track.stop_ids):
        return None
    return off_route_s(progress.lat, progress.lon, k)


def replay(
    scenario: Scenario,
    graph: RoadGraph,
    profile: NoiseProfile,
    *,
    seed: int = 0,
    params: EtaParams | None = None,
    delay: DelayParams | None = None,
    service_of: ServiceOf | None = None,
    alternatives: Sequence[DelayParams] = (),
) -> ReplayResult:
    """``service_of``: the service time to expect per stop (learned from history); the static
    baseline keeps the plan's."""
    params = params or EtaParams()
    delay = delay or DelayParams()
    snapper = Snapper(graph)
    rng = np.random.default_rng(seed)
    result = ReplayResult()
    for vehicle in scenario.vehicles:
        planned = vehicle_route(vehicle, graph, snapper, service_of)

        def back_s(
            lat: float, lon: float, k: int, stops: tuple[ScenarioStop, ...] = vehicle.stops
        ) -> float:
            to = LatLon(stops[k].lat, stops[k].lon)
            return way_back(graph, snapper, LatLon(lat, lon), to).duration_s

        replay_vehicle(
            scenario,
            vehicle,
            planned,
            profile,
            rng,
            params=params,
            delay=delay,
            progress_params=ProgressParams(),
            hygiene=HygieneParams(),
            off_route_s=back_s,
            result=result,
            alternatives=alternatives,
        )
    return result


def scenario_history(
    scenario: Scenario, graph: RoadGraph
) -> tuple[list[tuple[float, float]], list[tuple[float, float]], list[float]]:
    """A completed day as history: (planned, actual) drive per leg, when each leg started,
    and (planned, actual) service per stop."""
    snapper = Snapper(graph)
    legs: list[tuple[float, float]] = []
    starts: list[float] = []
    services: list[tuple[float, float]] = []
    for vehicle in scenario.vehicles:
        route = vehicle_route(vehicle, graph, snapper).route
        left: datetime | None = vehicle.shift_start
        for stop, planned in zip(vehicle.stops, route.stops, strict=True):
            actual = scenario.actual.get((vehicle.id, stop.id))
            if actual is None or actual.arrival is None or actual.departure is None:
                left = None
                continue
            if left is not None:
                legs.append((planned.travel_s, (actual.arrival - left).total_seconds()))
                starts.append(left.timestamp())
            services.append((stop.service_s, (actual.departure - actual.arrival).total_seconds()))
            left = actual.departure
    return legs, services, starts


def merge(results: dict[str, ReplayResult]) -> ReplayResult:
    """Several scenarios' replays as one (vehicle ids prefixed with the scenario name)."""
    merged = ReplayResult()
    for name, result in results.items():
        merged.predictions += [
            replace(p, vehicle=f"{name}/{p.vehicle}") for p in result.predictions
        ]
        merged.notices |= {(f"{name}/{v}", s): n for (v, s), n in result.notices.items()}
        merged.fixes += result.fixes
        merged.fixes_applied += result.fixes_applied
        while len(merged.alternative_notices) < len(result.alternative_notices):
            merged.alternative_notices.append({})
        for into, notices_of in zip(
            merged.alternative_notices, result.alternative_notices, strict=False
        ):
            into |= {(f"{name}/{v}", s): n for (v, s), n in notices_of.items()}
    return merged


def history_prior(scenarios: list[Scenario], graph: RoadGraph) -> FleetPrior:
    """The fleet prior fitted on completed scenarios (their ground truth as history)."""
    legs: list[tuple[float, float]] = []
    services: list[tuple[float, float]] = []
    starts: list[float] = []
    for scenario in scenarios:
        more_legs, more_services, more_starts = scenario_history(scenario, graph)
        legs += more_legs
        services += more_services
        starts += more_starts
    return fit_prior(legs, services, departures_s=starts)

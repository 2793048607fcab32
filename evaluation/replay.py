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

import csv
import json
import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from domain.geo import LatLon
from domain.position import Position
from domain.route_track import RouteTrack, route_track
from domain.vehicle_progress import Progress
from eta.delay import DelayParams, Told, WindowBroken
from eta.history import fit_prior
from eta.live import recompute, route_from_track, route_progress
from eta.pace import Pace
from eta.params import EtaParams, FleetPrior
from eta.predict import StopEta, predict
from eta.progress import RouteProgress, not_started
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

HORIZONS_MIN = ((0, 10), (10, 30), (30, 60), (60, None))
SAMPLE_EVERY_S = 60.0


def horizon_label(lo: int, hi: int | None) -> str:
    return f"{lo}-{hi}" if hi is not None else f"{lo}+"


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
    first_latest: datetime | None = None
    late_notices_before_arrival: int = 0
    messages: int = 0


@dataclass
class ReplayResult:
    predictions: list[Prediction] = field(default_factory=list)
    #: (vehicle, stop id) -> what the customer was told.
    notices: dict[tuple[str, str], StopNotices] = field(default_factory=dict)
    fixes: int = 0
    fixes_applied: int = 0


@dataclass(frozen=True, slots=True)
class VehicleRoute:
    track: RouteTrack
    route: EtaRoute


def vehicle_route(vehicle: ScenarioVehicle, graph: RoadGraph, snapper: Snapper) -> VehicleRoute:
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
        [s.service_s for s in vehicle.stops],
        [s.windows for s in vehicle.stops],
    )
    return VehicleRoute(track, route)


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
) -> None:
    track, route = planned.track, planned.route
    gps = scenario.gps.get(vehicle.id)
    if gps is None or len(gps.timestamp) == 0:
        return
    noisy = degrade(gps, profile, rng)
    # The static plan: the schedule as planned (no history, no pace), never updated.
    as_planned = replace(params, prior=FleetPrior())
    plan = predict(route, not_started(len(route.stops)), route.start, as_planned, Pace())
    static = {e.order_id: e.eta for e in plan}
    actual = {
        s.id: a.arrival
        for s in vehicle.stops
        if (a := scenario.actual.get((vehicle.id, s.id))) is not None and a.arrival is not None
    }
    for s in vehicle.stops:
        result.notices[(vehicle.id, s.id)] = StopNotices()
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
        for event in live.events:
            notices = result.notices[(vehicle.id, event.order_id)]
            if notices.first_latest is None:
                notices.first_latest = event.latest
                continue
            notices.messages += 1
            arrival = actual.get(event.order_id)
            late = isinstance(event, WindowBroken) and event.late
            if late and arrival is not None and event.at < arrival:
                notices.late_notices_before_arrival += 1
    while next_sample <= end:
        sample(next_sample)
        next_sample += timedelta(seconds=SAMPLE_EVERY_S)


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
) -> ReplayResult:
    params = params or EtaParams()
    delay = delay or DelayParams()
    snapper = Snapper(graph)
    rng = np.random.default_rng(seed)
    result = ReplayResult()
    for vehicle in scenario.vehicles:
        planned = vehicle_route(vehicle, graph, snapper)

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


def _median(values: list[float]) -> float | None:
    return float(np.median(values)) if values else None


def score(result: ReplayResult) -> dict[str, object]:
    """The figures the accuracy goals are stated in (see the module doc of bench.eta_accuracy)."""
    by_horizon: dict[str, list[Prediction]] = defaultdict(list)
    for p in result.predictions:
        minutes = p.horizon_s / 60.0
        for lo, hi in HORIZONS_MIN:
            if minutes >= lo and (hi is None or minutes < hi):
                by_horizon[horizon_label(lo, hi)].append(p)
                break
    labels = [horizon_label(lo, hi) for lo, hi in HORIZONS_MIN]

    def abs_errors(
        ps: list[Prediction], which: Callable[[Prediction], datetime] = lambda p: p.eta
    ) -> list[float]:
        return [abs((which(p) - p.actual).total_seconds()) for p in ps]

    def rounded(x: float | None) -> float | None:
        return round(x, 1) if x is not None else None

    def widths_min(ps: list[Prediction]) -> list[float]:
        return [(p.latest - p.earliest).total_seconds() / 60.0 for p in ps]

    mae = {h: rounded(_mean(abs_errors(by_horizon[h]))) for h in labels}
    p90 = {h: rounded(_quantile(abs_errors(by_horizon[h]), 0.9)) for h in labels}
    baseline = {
        h: rounded(_mean(abs_errors(by_horizon[h], lambda p: p.static_eta))) for h in labels
    }
    plus_delay = {
        h: rounded(_mean(abs_errors(by_horizon[h], lambda p: p.static_plus_delay_eta)))
        for h in labels
    }
    ratio_plus_delay = {
        h: round(m / b, 3) if (m := mae[h]) is not None and (b := plus_delay[h]) else None
        for h in labels
    }
    width = {h: rounded(_median(widths_min(by_horizon[h]))) for h in labels}
    inside = [p.earliest <= p.actual <= p.latest for p in result.predictions]
    coverage_by = {
        h: None
        if (c := _mean([float(p.earliest <= p.actual <= p.latest) for p in by_horizon[h]])) is None
        else round(c, 3)
        for h in labels
    }
    delayed = notified = both = 0
    messages: list[float] = []
    actual_by_stop = {(p.vehicle, p.stop_id): p.actual for p in result.predictions}
    for key, notices in result.notices.items():
        arrival = actual_by_stop.get(key)
        if arrival is None or notices.first_latest is None:
            continue
        truly = arrival > notices.first_latest
        told = notices.late_notices_before_arrival > 0
        delayed += truly
        notified += told
        both += truly and told
        messages.append(float(notices.messages))
    return {
        "mae_s": mae,
        "p90_abs_s": p90,
        "baseline_mae_s": baseline,
        "static_plus_delay_mae_s": plus_delay,
        "ratio_to_static_plus_delay": ratio_plus_delay,
        "coverage": round(sum(inside) / len(inside), 3) if inside else None,
        "coverage_by_horizon": coverage_by,
        "window_width_min_by_horizon": width,
        "window_width_median_min": rounded(_median(widths_min(result.predictions))),
        "notify_precision": round(both / notified, 3) if notified else None,
        "notify_recall": round(both / delayed, 3) if delayed else None,
        "messages_per_stop": _median(messages),
        "messages_per_stop_mean": rounded(_mean(messages)),
        "stops": len(messages),
        "stops_delayed": delayed,
        "stops_notified": notified,
        "predictions": len(result.predictions),
        "fixes": result.fixes,
        "fixes_applied": result.fixes_applied,
    }


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _quantile(values: list[float], q: float) -> float | None:
    return float(np.quantile(values, q)) if values else None


def write_predictions(result: ReplayResult, path: Path) -> None:
    def iso(t: datetime) -> str:
        return t.isoformat()

    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "vehicle",
                "stop_id",
                "predicted_at",
                "horizon_s",
                "eta",
                "earliest",
                "latest",
                "static_eta",
                "actual_arrival",
                "error_s",
                "static_error_s",
                "static_plus_delay_eta",
                "static_plus_delay_error_s",
            ]
        )
        for p in result.predictions:
            w.writerow(
                [
                    p.vehicle,
                    p.stop_id,
                    iso(p.at),
                    round(p.horizon_s),
                    iso(p.eta),
                    iso(p.earliest),
                    iso(p.latest),
                    iso(p.static_eta),
                    iso(p.actual),
                    round((p.eta - p.actual).total_seconds()),
                    round((p.static_eta - p.actual).total_seconds()),
                    iso(p.static_plus_delay_eta),
                    round((p.static_plus_delay_eta - p.actual).total_seconds()),
                ]
            )

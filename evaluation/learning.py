"""What the fleet's history teaches, fitted from completed ground-truth days as the live
service fits it from its store: the fleet prior (leg overhead, travel factor, hourly factors
in the city's time zone), service times per customer, and the live window's calibration.

Only ever fitted on days *before* the day it is used on (``history_before``), so a scored day
never learns from itself.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from eta.calibration import WindowCalibration, fit_window_calibration
from eta.coverage import fit_widening
from eta.history import fit_prior
from eta.params import EtaParams, FleetPrior
from eta.service_time import ServiceObservation, ServiceTimes, address_key, fit_service_times
from evaluation.noise import NoiseProfile
from evaluation.replay import ServiceOf, replay, scenario_history
from evaluation.scenario import Scenario, ScenarioStop
from evaluation.scores import residual_samples
from routing.road_graph import RoadGraph


def scenario_timezone(scenario: Scenario) -> str:
    """The day's local time zone (plan.json's ``meta.timezone``; UTC when absent)."""
    try:
        meta = json.loads((scenario.folder / "plan.json").read_text()).get("meta", {})
    except (OSError, ValueError):
        return "UTC"
    zone = meta.get("timezone") if isinstance(meta, dict) else None
    return zone if isinstance(zone, str) and zone else "UTC"


def scenario_start(scenario: Scenario) -> datetime:
    """When the day began: its first shift start."""
    return min(v.shift_start for v in scenario.vehicles)


def history_before(day: Scenario, days: Sequence[Scenario]) -> list[Scenario]:
    """The days of the same fleet (same road network) that ended before ``day`` began."""
    begin = scenario_start(day)
    return [
        d for d in days if d.name != day.name and d.osm == day.osm and scenario_start(d) < begin
    ]


def stop_key(stop: ScenarioStop) -> str:
    """The customer a stop is for: the plan's customer id, else its address."""
    return address_key(stop.customer_id or "", stop.lat, stop.lon)


def service_observations(scenario: Scenario) -> list[ServiceObservation]:
    """Observed dwell (arrival to departure) per stop served, with the plan's figure."""
    out: list[ServiceObservation] = []
    for vehicle in scenario.vehicles:
        for stop in vehicle.stops:
            actual = scenario.actual.get((vehicle.id, stop.id))
            if actual is None or actual.arrival is None or actual.departure is None:
                continue
            dwell_s = (actual.departure - actual.arrival).total_seconds()
            out.append(ServiceObservation(stop_key(stop), float(stop.service_s), dwell_s))
    return out


@dataclass(frozen=True, slots=True)
class Learned:
    prior: FleetPrior
    service: ServiceTimes | None
    calibration: WindowCalibration | None = None

    def params(self, base: EtaParams | None = None) -> EtaParams:
        base = base or EtaParams()
        return replace(base, prior=self.prior, calibration=self.calibration)

    def service_of(self) -> ServiceOf | None:
        """Each stop's service as the planner would now plan it: the plan's figure times the
        customer's own factor (the fleet-wide factor is the prior's, applied by the ETA)."""
        service = self.service
        if service is None:
            return None

        def of(stop: ScenarioStop) -> float:
            return float(stop.service_s) * service.address_factor(stop_key(stop))

        return of


def learn(history: Sequence[Scenario], graph: RoadGraph, timezone: str) -> Learned:
    """Prior and service times from completed days (neutral with no history)."""
    legs: list[tuple[float, float]] = []
    services: list[tuple[float, float]] = []
    starts: list[float] = []
    observations: list[ServiceObservation] = []
    for scenario in history:
        more_legs, more_services, more_starts = scenario_history(scenario, graph)
        legs += more_legs
        services += more_services
        starts += more_starts
        observations += service_observations(scenario)
    prior = fit_prior(legs, services, departures_s=starts, timezone=timezone)
    service = fit_service_times(observations) if observations else None
    return Learned(prior, service)


def history_residuals(
    history: Sequence[Scenario], graph: RoadGraph, profile: NoiseProfile, *, seed: int = 0
) -> list[tuple[float, float]]:
    """(predicted horizon s, residual s) of every ETA sampled on the history days, each day
    replayed with what the days before it taught: what the live window is calibrated on."""
    out: list[tuple[float, float]] = []
    for k, day in enumerate(history):
        learned = learn(history_before(day, history), graph, scenario_timezone(day))
        result = replay(
            day,
            graph,
            profile,
            seed=seed + k,
            params=learned.params(),
            service_of=learned.service_of(),
        )
        out += residual_samples(result.predictions)
    return out


def learn_all(
    history: Sequence[Scenario], graph: RoadGraph, timezone: str, profile: NoiseProfile
) -> Learned:
    """Everything the history teaches, the window's calibration included (cold start: no
    history, or too little for a horizon, keeps the hand-set spread there)."""
    learned = learn(history, graph, timezone)
    if not history:
        return learned
    residuals = history_residuals(history, graph, profile)
    calibration = fit_widening(fit_window_calibration(residuals), residuals)
    return replace(learned, calibration=calibration)

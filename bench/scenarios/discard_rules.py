"""The discard rules: an attempt at a scenario is thrown away (and tried again with the next
seed) when the planner leaves an order out or loads a van too little or too much, a van
teleports, misses a stop or does not get home, or its track jumps or misses a stop."""

from __future__ import annotations

import itertools

from bench.scenarios.simulate import RunOutput, VanTrip
from bench.scenarios.specs import ScenarioSpec
from domain.geo import LatLon, haversine_m
from domain.plan import Plan

MAX_FIX_SPEED_MPS = 60.0
MAX_STOP_FIX_M = 60.0


class DiscardError(Exception):
    """This attempt broke a discard rule; the reason is the message."""


def check_plan(plan: Plan, spec: ScenarioSpec) -> None:
    if plan.unassigned:
        raise DiscardError(f"planner left out {len(plan.unassigned)} orders")
    counts = [len(r.stops) for r in plan.routes if r.stops]
    if len(counts) != spec.vans or not all(10 <= c <= 20 for c in counts):
        raise DiscardError(f"stops per van {counts} not 10-20 on each of {spec.vans} vans")


def check_run(run: RunOutput, vans: list[VanTrip]) -> None:
    if run.stats.van_teleport_warnings:
        raise DiscardError(f"van teleported: {run.stats.van_teleport_warnings[0]}")
    for van in vans:
        if van.vehicle_id not in run.stats.van_arrival_s:
            raise DiscardError(f"{van.vehicle_id} did not get back to the depot")
        events = run.stops.get(van.vehicle_id, [])
        lanes = [e.lane_id for e in events]
        if lanes != [s.site.lane_id for s in van.stops]:
            raise DiscardError(
                f"{van.vehicle_id} served {len(events)} of {len(van.stops)} stops in order"
            )
        if not run.fixes.get(van.vehicle_id):
            raise DiscardError(f"{van.vehicle_id} has no FCD")


def check_trajectories(run: RunOutput, vans: list[VanTrip]) -> None:
    """No jump faster than a car can drive, and each van at its stop when it says it halted."""
    for van in vans:
        fixes = run.fixes[van.vehicle_id]
        for a, b in itertools.pairwise(fixes):
            gap_s = b.time_s - a.time_s
            distance_m = haversine_m(LatLon(a.lat, a.lon), LatLon(b.lat, b.lon))
            if gap_s <= 0 or distance_m / gap_s > MAX_FIX_SPEED_MPS:
                raise DiscardError(f"{van.vehicle_id} jumps {distance_m:.0f} m at t={b.time_s}")
        at = {round(f.time_s): f for f in fixes}
        for stop, event in zip(van.stops, run.stops[van.vehicle_id], strict=True):
            fix = at.get(round(event.started_s))
            where = LatLon(stop.site.lat, stop.site.lon)
            if fix is None or haversine_m(LatLon(fix.lat, fix.lon), where) > MAX_STOP_FIX_M:
                raise DiscardError(f"{van.vehicle_id} not at {stop.stop_id} when it halted")

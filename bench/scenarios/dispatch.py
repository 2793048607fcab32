"""The dispatcher's day in a scenario: the vans' shifts, one parcel per stop, the delivery slots
customers would have booked, and our planner's routes."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from bench.scenarios.cities import CITIES
from bench.scenarios.specs import ScenarioSpec
from bench.scenarios.sumo_net import StopSite
from bench.scenarios.world import World
from domain.geo import LatLon
from domain.plan import Plan
from domain.problem import Depot, Order, PlanningProblem, TimeWindow, Vehicle, planning_problem
from routing.costs import SolverParams
from routing.planner import plan_routes

MONACO = ZoneInfo("Europe/Monaco")
SHIFT_S = 9 * 3600
#: Vans leave the depot a few minutes apart, as they would after loading one by one.
VAN_STAGGER_S = 240
PLANNER_TIME_LIMIT_S = 5.0


def zone_of(spec: ScenarioSpec) -> ZoneInfo:
    return ZoneInfo(CITIES[spec.city].timezone)


def shift_starts(spec: ScenarioSpec) -> list[datetime]:
    first = datetime.combine(spec.day, spec.shift_start, zone_of(spec))
    return [first + timedelta(seconds=VAN_STAGGER_S * k) for k in range(spec.vans)]


def build_problem(
    world: World,
    spec: ScenarioSpec,
    sites: Sequence[StopSite],
    planned_service_s: Sequence[int],
    windows: Sequence[TimeWindow | None],
) -> PlanningProblem:
    """The dispatcher's day: one depot, the vans, one parcel per stop.

    Capacity is the fair share plus one, so the planner (which prefers fewer vans) must use
    every van and none gets far more than the others.
    """
    depot = LatLon(world.depot.lat, world.depot.lon)
    capacity = math.ceil(len(sites) / spec.vans) + 1
    vans = [
        Vehicle(
            f"van-{k + 1}",
            depot,
            TimeWindow(start, start + timedelta(seconds=SHIFT_S)),
            end=depot,
            capacity=(capacity,),
        )
        for k, start in enumerate(shift_starts(spec))
    ]
    orders = [
        Order(
            id=f"s{k + 1:02d}",
            location=LatLon(site.lat, site.lon),
            windows=(window,) if window is not None else (),
            service_s=service_s,
            demand=(1,),
        )
        for k, (site, service_s, window) in enumerate(
            zip(sites, planned_service_s, windows, strict=True)
        )
    ]
    return planning_problem([Depot("depot", depot)], vans, orders)


def delivery_slot(
    service_start: datetime, rng: np.random.Generator, zone: ZoneInfo = MONACO
) -> TimeWindow | None:
    """The slot a customer would have booked around the planned visit: none, 2 h or 4 h.

    Slots sit on the local clock's grid (08-10, 10-12 or 08-12, 12-16), as web shops sell them.
    """
    draw = rng.random()
    if draw < 0.25:
        return None
    hours = 2 if draw < 0.7 else 4
    local = service_start.astimezone(zone)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    slot = (local.hour // hours) * hours
    start = midnight + timedelta(hours=slot)
    return TimeWindow(start, start + timedelta(hours=hours))


def plan_day(world: World, problem: PlanningProblem, seed: int) -> Plan:
    params = SolverParams(time_limit_s=PLANNER_TIME_LIMIT_S, seed=seed)
    return plan_routes(problem, world.graph, world.snapper, params)

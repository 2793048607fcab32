"""Placing an applied fix on the vehicle's dispatched route: the route (read once per plan and
vehicle), the vehicle's progress along it (telematics/progress.py) and the rows of its events
(arrived, departed, passed, left and rejoined the route)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from domain.position import Position
from domain.route_track import RouteTrack, route_track
from eta.live import route_from_plan
from eta.route import EtaRoute
from store.repo import order_windows
from store.schema import EventRow, OrderRow, PlanRow
from telematics.ingest.state import BatchState, VehicleState
from telematics.progress import (
    Arrived,
    Departed,
    Event,
    LeftRoute,
    Passed,
    ProgressParams,
    apply_fix,
    carry_over,
    start,
)
from telematics.stopping_points import Observation, address_key, learned_stands, stood_point


@dataclass(frozen=True, slots=True)
class RoutePlan:
    """A vehicle's dispatched route, ready for the hot path (cached per plan and vehicle)."""

    track: RouteTrack
    #: None when the plan carries no schedule for the route (then no ETAs, progress only).
    eta: EtaRoute | None
    #: External order id -> order row id.
    order_rows: dict[str, str]
    #: (lat, lon) of each stop, in route order.
    stop_points: tuple[tuple[float, float], ...] = ()


def route_key(live: VehicleState) -> str:
    """Where the vehicle's route is cached: per plan and vehicle."""
    return f"{live.plan_id}/{live.vehicle_id}"


@dataclass(frozen=True, slots=True)
class PlanRoutes:
    """A plan's routes by vehicle (external id): its GeoJSON feature and its result's route."""

    plan_id: str
    features: Mapping[str, dict[str, Any]]
    planned: Mapping[str, dict[str, Any]]


def plan_routes(session: Session, plan_id: str) -> PlanRoutes | None:
    """The plan's routes indexed by vehicle, read once (a plan's JSON holds every vehicle's
    route: read per vehicle, warming up a fleet of N vans cost N reads of N routes)."""
    row = session.execute(
        select(PlanRow.geojson, PlanRow.result).where(PlanRow.id == plan_id)
    ).one_or_none()
    if row is None:
        return None
    geojson, result = row
    features = {
        str(f["properties"].get("vehicle_id")): f for f in (geojson or {}).get("features", [])
    }
    routes = result.get("routes", []) if isinstance(result, dict) else []
    planned = {str(r.get("vehicle_id")): r for r in routes}
    return PlanRoutes(plan_id, features, planned)


def route_for(
    batch: BatchState, routes: dict[str, RoutePlan | None], live: VehicleState
) -> RoutePlan | None:
    """The vehicle's active route (cached per plan and vehicle; the plan read once a batch)."""
    if live.plan_id is None:
        return None
    key = route_key(live)
    if key in routes:
        return routes[key]
    if live.plan_id not in batch.plans:
        batch.plans[live.plan_id] = plan_routes(batch.session, live.plan_id)
    plan = batch.plans[live.plan_id]
    route = route_plan(batch.session, plan, live) if plan is not None else None
    routes[key] = route
    return route


def route_plan(session: Session, plan: PlanRoutes, live: VehicleState) -> RoutePlan | None:
    feature = plan.features.get(live.external_id)
    if feature is None:
        return None
    order_ids = list(feature["properties"]["order_ids"])
    rows = {
        o.external_id: o
        for o in session.scalars(
            select(OrderRow).where(
                OrderRow.organisation_id == live.organisation_id,
                OrderRow.external_id.in_(order_ids),
            )
        )
    }
    stops = [(oid, rows[oid].lat, rows[oid].lon) for oid in order_ids if oid in rows]
    track = route_track(
        live.external_id,
        plan.plan_id,
        feature["geometry"]["coordinates"],
        stops,
        stands=learned_stands_for(session, live.organisation_id, rows),
    )
    return RoutePlan(
        track,
        eta_route(plan.planned.get(live.external_id), track, rows),
        {k: r.id for k, r in rows.items()},
        tuple((lat, lon) for _, lat, lon in stops),
    )


#: Past deliveries read per route, newest first (plenty for the few stands kept per address).
STANDS_READ = 5000
#: Orders per statement when reading them (each adds a box of four bounds).
STANDS_CHUNK = 200


def learned_stands_for(
    session: Session, organisation_id: str, orders: Mapping[str, OrderRow]
) -> dict[str, tuple[float, float]]:
    """External order id -> where vans stand to serve its address, learned from the
    organisation's past deliveries there (``telematics/stopping_points.py``): the stands
    recorded with drivers' ``delivered`` events for orders at the same address (orders carry
    no address text, so the same point to 1e-4 degrees)."""
    keys = {oid: address_key(o.lat, o.lon) for oid, o in orders.items()}
    homes = {keys[oid]: (o.lat, o.lon) for oid, o in orders.items()}
    # Event id -> (when, the observation): an address on the route twice is read once.
    seen: dict[int, tuple[datetime, Observation]] = {}
    rows = list(orders.values())
    for first in range(0, len(rows), STANDS_CHUNK):
        # Orders within 1e-4 degrees of a route's order: the ones that can share its key.
        boxes = [
            and_(
                OrderRow.lat.between(o.lat - 1e-4, o.lat + 1e-4),
                OrderRow.lon.between(o.lon - 1e-4, o.lon + 1e-4),
            )
            for o in rows[first : first + STANDS_CHUNK]
        ]
        found = session.execute(
            select(EventRow.id, EventRow.at, EventRow.data, OrderRow.lat, OrderRow.lon)
            .join(OrderRow, OrderRow.id == EventRow.order_id)
            .where(
                EventRow.organisation_id == organisation_id,
                EventRow.kind == "delivered",
                OrderRow.organisation_id == organisation_id,
                or_(*boxes),
            )
            .order_by(EventRow.at.desc(), EventRow.id.desc())
            .limit(STANDS_READ)
        )
        for event_id, at, data, lat, lon in found:
            key, stood = address_key(lat, lon), stood_point(data)
            if key in homes and stood is not None:
                seen[event_id] = (at, (key, *stood))
    newest_first = sorted(seen.values(), key=lambda s: s[0], reverse=True)
    stands = learned_stands((observation for _, observation in newest_first), homes)
    return {oid: stands[key] for oid, key in keys.items() if key in stands}


def eta_route(
    planned: dict[str, Any] | None, track: RouteTrack, orders: Mapping[str, OrderRow]
) -> EtaRoute | None:
    """The route's schedule from the plan's result for the vehicle (leg drive times, service,
    breaks); None if the result has no route for it or its stops differ from the track's."""
    if planned is None or [s["order_id"] for s in planned["stops"]] != list(track.stop_ids):
        return None

    try:
        return route_from_plan(
            track.vehicle_id,
            track.plan_id,
            planned,
            order_windows(orders.values()),
            track.stop_along_m,
        )
    except (KeyError, ValueError, TypeError):
        return None


def place_fix(
    batch: BatchState,
    live: VehicleState,
    route: RoutePlan | None,
    position: Position,
    params: ProgressParams,
) -> list[Event]:
    """The fix becomes the vehicle's last one and, on a route, moves its progress: the
    events it caused, their rows queued in the batch."""
    live.last_fix_time, live.last_lat, live.last_lon = (
        position.fix_time,
        position.lat,
        position.lon,
    )
    live.dirty = True
    events: list[Event] = []
    if route is None:
        return events
    if live.progress is None or live.progress.plan_id != route.track.plan_id:
        # A new plan starts a new progress, but what each customer still on the
        # route was told stands: delays are judged against it and its versions go
        # on rising, so the policy never takes a new ETA for an old one.
        kept = set(route.track.stop_ids)
        live.told = {k: v for k, v in live.told.items() if k in kept}
        # Stops it shares with the old plan keep their arrivals, and the search
        # for its place starts where it had got to (not at the depot).
        fresh = (
            carry_over(route.track, live.progress)
            if live.progress is not None
            else start(route.track)
        )
        live.progress, live.eta_log = fresh, {}
    live.progress, events = apply_fix(route.track, live.progress, position, params)
    for event in events:
        batch.events.append(progress_event(live, route, event))
    # ETAs are recomputed from the vehicle's newest state when the batch ends: the
    # ones of earlier fixes in the same batch would be overwritten unread.
    live.stale_etas = route.eta is not None
    live.eta_due = live.eta_due or bool(events)
    return events


def progress_event(live: VehicleState, route: RoutePlan, event: Event) -> dict[str, Any]:
    order_id: str | None = None
    data: dict[str, Any]
    if isinstance(event, Arrived):
        kind, order_id, data = "arrived", event.order_id, {"inferred": event.inferred}
    elif isinstance(event, Departed):
        kind, order_id, data = "departed", event.order_id, {}
    elif isinstance(event, Passed):
        kind, order_id, data = "passed", event.order_id, {}
    elif isinstance(event, LeftRoute):
        kind, data = "left_route", {"distance_m": round(event.distance_m)}
    else:
        kind, data = "rejoined_route", {}
    return {
        "organisation_id": live.organisation_id,
        "order_id": route.order_rows.get(order_id) if order_id else None,
        "vehicle_id": live.vehicle_id,
        "kind": kind,
        "at": event.at,
        "data": data,
    }

"""The fleet prior fitted from the store's own history: how long the fleet's legs and stops
really took against what its dispatched plans said (:func:`eta.history.fit_prior`), so the
running service starts each day from what its vans usually do, not from the plan's word.

What is read, for the past ``days`` completed days (each organisation's own calendar: today's
legs are left to the live pace, which learns them within the day):

- the dispatched plans' results (not cancelled): per route and stop, the planned drive from
  the previous stop (``duration_from_previous_s``, what the ETA core scales), the planned
  service (``departure - service_start``) and the planned breaks;
- the ``events`` rows of the vehicles: ``arrived`` and ``departed`` per order and vehicle
  (from the geofences), a driver's ``delivered``/``failed``/``skipped`` counting as a
  departure when it comes first (as it does for the live progress).

A leg is the drive from stop k-1's departure to stop k's arrival on one route (the first leg,
from the depot, has no departure event and is left out), kept only when the plan was
dispatched before the leg began and no planned break falls in it; a replanned route's legs
count once (the newest plan that planned them). A stop's service runs from its arrival (or its
window's opening, if the van waited) to its departure. Each leg starts an hour of the day for
the time-of-day profile, in the organisations' time zone when they share one (several zones:
no profile).

Cold start: with fewer than ``min_legs`` legs the prior stays neutral (:class:`FleetPrior`).
Not per organisation: the service has one prior for every tenant's vans. The planner fits its
own on demand (:class:`PlanningPrior`), for the hour factors it plans with (docs/adr/0022).
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from time import monotonic
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from eta.history import MIN_LEGS as CORE_MIN_LEGS
from eta.history import fit_prior
from eta.params import FleetPrior
from eta.route import service_start
from store.repo import order_windows
from store.schema import EventRow, OrderRow, Organisation, PlanRow, VehicleRow

log = logging.getLogger(__name__)

#: Fewer observed legs than this: the prior stays neutral (the cold start; never fewer than
#: the ETA core's own floor, ``eta.history.MIN_LEGS``).
MIN_LEGS = 50
#: How many past days are read.
HISTORY_DAYS = 28
#: Events this long before a route's planned start or after its planned end still belong to it
#: (a van 30% slow over a long day ends hours late); the same stop on another day does not.
MATCH_SLACK = timedelta(hours=6)
#: When the van left a stop: the geofence's departure or the driver's outcome, whichever first.
DEPARTURES = ("departed", "delivered", "failed", "skipped")
#: Orders looked up per statement.
CHUNK = 500
#: The planner fits again after this long (seconds), as often as the service refits the ETAs'.
PLANNING_REFIT_S = 3600.0


@dataclass
class FleetHistory:
    #: (planned drive s, actual drive s) per leg, with when each leg began (epoch s).
    legs: list[tuple[float, float]] = field(default_factory=list)
    departures_s: list[float] = field(default_factory=list)
    #: (planned service s, actual service s) per stop.
    services: list[tuple[float, float]] = field(default_factory=list)
    #: Per stop in ``services``: its order's customer ref, lat, lon and the dispatcher's service
    #: s (the order's own figure, not the plan's), for service times learned per customer
    #: (telematics/service_history.py).
    stop_orders: list[tuple[str, float, float, float]] = field(default_factory=list)
    #: The time zones of the organisations whose legs these are.
    zones: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class FittedPrior:
    prior: FleetPrior
    legs: int
    services: int
    #: The history read: [since, until).
    since: datetime
    until: datetime
    #: False: too little history (fewer legs than ``needed``), the prior is neutral.
    fitted: bool
    needed: int = MIN_LEGS

    def describe(self) -> str:
        p = self.prior
        if not self.fitted:
            return (
                f"fleet prior neutral (cold start): {self.legs} legs observed since "
                f"{self.since:%Y-%m-%d}, fewer than the {self.needed} needed"
            )
        hours = (
            f"hour profile {min(p.hour_factors):.2f}-{max(p.hour_factors):.2f} ({p.timezone})"
            if p.hour_factors
            else "no hour profile"
        )
        return (
            f"fleet prior fitted from {self.legs} legs and {self.services} stops since "
            f"{self.since:%Y-%m-%d}: travel x{p.travel_factor:.3f} + {p.leg_overhead_s:.0f} s "
            f"per leg, service x{p.service_factor:.3f}, {hours}"
        )


def fit_fleet_prior(
    sessions: sessionmaker[Session],
    now: datetime,
    *,
    days: int = HISTORY_DAYS,
    min_legs: int = MIN_LEGS,
) -> FittedPrior:
    """The prior from the store's past ``days`` days before ``now``'s day (neutral with fewer
    than ``min_legs`` legs); logged at INFO."""
    with sessions() as session:
        since, until, history = read_history(session, now, days)
    needed = max(min_legs, CORE_MIN_LEGS)
    legs, services = len(history.legs), len(history.services)
    if legs < needed:
        result = FittedPrior(FleetPrior(), legs, services, since, until, False, needed)
    else:
        one_zone = next(iter(history.zones)) if len(history.zones) == 1 else None
        prior = fit_prior(
            history.legs,
            history.services,
            departures_s=history.departures_s if one_zone is not None else None,
            timezone=one_zone or "UTC",
        )
        result = FittedPrior(prior, legs, services, since, until, True, needed)
    log.info("%s", result.describe())
    return result


class PlanningPrior:
    """The fleet prior for planning (its hour factors: docs/adr/0022), fitted from the store
    on demand and kept ``max_age_s`` per UTC day planned. The planner may run in a queue
    worker, where no ingester fits one, and plans days other than today: the history it
    needs is the one before the day it plans. One fit at a time (it reads weeks of events);
    a fit that fails is logged and the last prior fitted for that day (neutral if none)
    stays."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        days: int = HISTORY_DAYS,
        min_legs: int = MIN_LEGS,
        max_age_s: float = PLANNING_REFIT_S,
        clock: Callable[[], float] = monotonic,
    ) -> None:
        self.sessions = sessions
        self.days = days
        self.min_legs = min_legs
        self.max_age_s = max_age_s
        self.clock = clock
        self._fits: dict[date, tuple[float, FleetPrior]] = {}
        self._lock = threading.Lock()

    def __call__(self, day: datetime) -> FleetPrior:
        """The prior from the history before ``day``'s day (see :func:`fit_fleet_prior`)."""
        key = day.astimezone(UTC).date()
        with self._lock:
            now = self.clock()
            cached = self._fits.get(key)
            if cached is not None and now - cached[0] < self.max_age_s:
                return cached[1]
            try:
                prior = fit_fleet_prior(
                    self.sessions, day, days=self.days, min_legs=self.min_legs
                ).prior
            except Exception:
                log.exception("fitting the fleet prior for planning failed; the last one stays")
                return cached[1] if cached is not None else FleetPrior()
            self._fits = {k: v for k, v in self._fits.items() if now - v[0] < self.max_age_s}
            self._fits[key] = (now, prior)
            return prior


def read_history(
    session: Session, now: datetime, days: int, *, organisation_id: str | None = None
) -> tuple[datetime, datetime, FleetHistory]:
    """(since, until, what the fleet did in between): see the module docstring. Given an
    ``organisation_id``, that organisation's fleet alone."""
    orgs = select(Organisation.id, Organisation.timezone)
    if organisation_id is not None:
        orgs = orgs.where(Organisation.id == organisation_id)
    zones = {org_id: zone or "UTC" for org_id, zone in session.execute(orgs)}
    cutoffs = {org_id: _day_start(now, zone) for org_id, zone in zones.items()}
    until = max(cutoffs.values(), default=now)
    since = min(cutoffs.values(), default=now) - timedelta(days=days)
    history = FleetHistory()
    query = (
        select(PlanRow.organisation_id, PlanRow.dispatched_at, PlanRow.result)
        .where(
            PlanRow.dispatched_at.is_not(None),
            PlanRow.dispatched_at >= since - MATCH_SLACK,
            PlanRow.dispatched_at < until,
            PlanRow.status != "cancelled",
        )
        .order_by(PlanRow.dispatched_at.desc(), PlanRow.id.desc())
    )
    if organisation_id is not None:
        query = query.where(PlanRow.organisation_id == organisation_id)
    plans = session.execute(query).all()
    if not plans:
        return since, until, history
    orders = _orders(session, plans)
    arrived, departed = _events(session, since - MATCH_SLACK, until + MATCH_SLACK, organisation_id)
    reader = _Reader(
        since,
        _vehicles(session, {org for org, _, _ in plans}),
        orders,
        {key: order_windows([row]).get(row.external_id, []) for key, row in orders.items()},
        arrived,
        departed,
        history,
    )
    for org_id, dispatched_at, result in plans:  # newest first: its legs win
        for route in (result or {}).get("routes", []):
            try:
                reader.route(
                    route, org_id, zones.get(org_id, "UTC"), dispatched_at, cutoffs[org_id]
                )
            except (KeyError, TypeError, ValueError):
                continue  # a malformed stored route teaches nothing
    return since, until, history


@dataclass
class _Reader:
    """What the routes are matched against, and what has been counted already."""

    since: datetime
    #: (organisation, your id) -> row id, for vehicles; the order rows and their windows.
    vehicles: Mapping[tuple[str, str], str]
    orders: Mapping[tuple[str, str], OrderRow]
    windows: Mapping[tuple[str, str], Sequence[tuple[datetime, datetime]]]
    #: (vehicle row id, order row id) -> times, in order.
    arrived: Mapping[tuple[str, str], list[datetime]]
    departed: Mapping[tuple[str, str], list[datetime]]
    history: FleetHistory
    legs_seen: set[tuple[str, str, str, datetime]] = field(default_factory=set)
    stops_seen: set[tuple[str, str, datetime]] = field(default_factory=set)

    def route(
        self,
        route: Mapping[str, Any],
        org_id: str,
        zone: str,
        dispatched_at: datetime,
        cutoff: datetime,
    ) -> None:
        """One planned route's legs and stops, as its vehicle really drove them (only what
        ended before ``cutoff``, began after ``dispatched_at`` and was not counted yet)."""
        vehicle = self.vehicles.get((org_id, route["vehicle_id"]))
        stops = route.get("stops") or []
        if vehicle is None or not stops:
            return
        lo = datetime.fromisoformat(route["start"]) - MATCH_SLACK
        hi = datetime.fromisoformat(stops[-1]["departure"]) + MATCH_SLACK
        breaks = [
            (datetime.fromisoformat(b["start"]), datetime.fromisoformat(b["end"]))
            for b in route.get("breaks") or []
        ]
        #: The previous stop: its order row id, when the van left it, when the plan said.
        previous: tuple[str, datetime, datetime] | None = None
        for stop in stops:
            order = self.orders.get((org_id, stop["order_id"]))
            if order is None:
                previous = None
                continue
            at = _first(self.arrived.get((vehicle, order.id), ()), lo, hi)
            left = _first(self.departed.get((vehicle, order.id), ()), at, hi) if at else None
            planned_left = datetime.fromisoformat(stop["departure"])
            if previous is not None and at is not None:
                planned = (
                    float(stop["duration_from_previous_s"]),
                    previous[2],
                    datetime.fromisoformat(stop["arrival"]),
                )
                if not _breaks_in(breaks, planned[1], planned[2]):
                    self.leg(vehicle, previous[:2], (order.id, at), planned[0], zone,
                             dispatched_at, cutoff)  # fmt: skip
            if at is not None and left is not None:
                planned_s = (
                    planned_left - datetime.fromisoformat(stop["service_start"])
                ).total_seconds()
                self.service(vehicle, order, (org_id, order.external_id), at, left, planned_s,
                             dispatched_at, cutoff)  # fmt: skip
            previous = (order.id, left, planned_left) if left is not None else None

    def leg(
        self,
        vehicle: str,
        origin: tuple[str, datetime],
        to: tuple[str, datetime],
        drive_s: float,
        zone: str,
        dispatched_at: datetime,
        cutoff: datetime,
    ) -> None:
        """A drive from ``origin`` (order row id, left at) to ``to`` (order row id, arrived
        at), planned at ``drive_s``."""
        (from_order, left), (to_order, at) = origin, to
        seen = (vehicle, from_order, to_order, left)
        if (
            drive_s <= 0
            or not self.since <= left < at < cutoff
            or left < dispatched_at
            or seen in self.legs_seen
        ):
            return
        self.legs_seen.add(seen)
        self.history.legs.append((drive_s, (at - left).total_seconds()))
        self.history.departures_s.append(left.timestamp())
        self.history.zones.add(zone)

    def service(
        self,
        vehicle: str,
        order: OrderRow,
        key: tuple[str, str],
        at: datetime,
        left: datetime,
        planned_s: float,
        dispatched_at: datetime,
        cutoff: datetime,
    ) -> None:
        """A stop's service: from its arrival (or its window's opening) to its departure."""
        seen = (vehicle, order.id, at)
        if (
            planned_s <= 0
            or not self.since <= at < left < cutoff
            or at < dispatched_at
            or seen in self.stops_seen
        ):
            return
        self.stops_seen.add(seen)
        spans = [(a.timestamp(), b.timestamp()) for a, b in self.windows.get(key, ())]
        begin = service_start(at.timestamp(), spans, wait=True)
        self.history.services.append((planned_s, max(left.timestamp() - begin, 0.0)))
        self.history.stop_orders.append(
            (order.customer_ref, order.lat, order.lon, float(order.service_s))
        )


def _first(times: Iterable[datetime], lo: datetime, hi: datetime) -> datetime | None:
    return next((t for t in times if lo <= t <= hi), None)


def _breaks_in(breaks: Sequence[tuple[datetime, datetime]], a: datetime, b: datetime) -> bool:
    return any(start < b and end > a for start, end in breaks)


def _day_start(now: datetime, zone: str) -> datetime:
    """Midnight at the start of ``now``'s day in ``zone`` (UTC if unknown)."""
    try:
        tz = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        tz = ZoneInfo("UTC")
    return datetime.combine(now.astimezone(tz).date(), time(0), tzinfo=tz)


def _vehicles(session: Session, org_ids: set[str]) -> dict[tuple[str, str], str]:
    """(organisation, your id for the vehicle) -> the vehicle's row id."""
    rows = session.execute(
        select(VehicleRow.organisation_id, VehicleRow.external_id, VehicleRow.id).where(
            VehicleRow.organisation_id.in_(sorted(org_ids))
        )
    )
    return {(org, ext): row_id for org, ext, row_id in rows}


def _orders(session: Session, plans: Sequence[Any]) -> dict[tuple[str, str], OrderRow]:
    """(organisation, your id for the order) -> the order's row, for every planned stop."""
    wanted: dict[str, set[str]] = defaultdict(set)
    for org_id, _, result in plans:
        for route in (result or {}).get("routes", []):
            for stop in route.get("stops") or []:
                if isinstance(stop, dict) and isinstance(stop.get("order_id"), str):
                    wanted[org_id].add(stop["order_id"])
    found: dict[tuple[str, str], OrderRow] = {}
    for org_id, ids in wanted.items():
        ordered = sorted(ids)
        for k in range(0, len(ordered), CHUNK):
            for row in session.scalars(
                select(OrderRow).where(
                    OrderRow.organisation_id == org_id,
                    OrderRow.external_id.in_(ordered[k : k + CHUNK]),
                )
            ):
                found[(org_id, row.external_id)] = row
    return found


def _events(
    session: Session, since: datetime, until: datetime, organisation_id: str | None = None
) -> tuple[dict[tuple[str, str], list[datetime]], dict[tuple[str, str], list[datetime]]]:
    """Arrivals and departures per (vehicle row id, order row id), in time order (of one
    organisation's vehicles when given)."""
    arrived: dict[tuple[str, str], list[datetime]] = defaultdict(list)
    departed: dict[tuple[str, str], list[datetime]] = defaultdict(list)
    query = (
        select(EventRow.vehicle_id, EventRow.order_id, EventRow.kind, EventRow.at)
        .where(
            EventRow.kind.in_(("arrived", *DEPARTURES)),
            EventRow.at >= since,
            EventRow.at < until,
            EventRow.vehicle_id.is_not(None),
            EventRow.order_id.is_not(None),
        )
        .order_by(EventRow.at)
    )
    if organisation_id is not None:
        query = query.where(EventRow.organisation_id == organisation_id)
    rows = session.execute(query)
    for vehicle_id, order_id, kind, at in rows:
        if vehicle_id is None or order_id is None:
            continue
        (arrived if kind == "arrived" else departed)[(vehicle_id, order_id)].append(at)
    return arrived, departed

"""Service times at the door learned from the store's own history (:mod:`eta.service_time`)
and planned with: an organisation's orders get the service their customer, or their address,
has really taken, the dispatcher's figure being the prior (docs/adr/0021).

What is read: the organisation's completed stops of the past ``days`` days, exactly as the
fleet prior reads them (:func:`telematics.fleet_prior.read_history`, one organisation's plans
and events): a stop's service runs from its arrival (or its window's opening, when the van
waited) to its departure, each stop counted once. It is set against the **order's own**
``service_s``, the dispatcher's figure, never the plan's: a plan made with learned times
would otherwise teach the next fit that the customer is as planned, and the learning would
undo itself.

Two fits over the same stops: one keyed by :func:`eta.service_time.address_key` (the
customer's reference, else the address), one by the address alone. An order is planned with
the customer's factor when that customer was seen, else its address's (a customer reference
that is really one per order, as many shops send, still learns the building), else the
fleet's factor alone.

Cold start: fewer than ``min_stops`` completed stops and the dispatcher's figures stand as
they are. A fit that fails is logged and plans with the dispatcher's figures.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from domain.problem import Order, PlanningProblem
from eta.service_time import (
    PRIOR_WEIGHT,
    ServiceObservation,
    ServiceTimes,
    address_key,
    fit_service_times,
)
from telematics.fleet_prior import HISTORY_DAYS, read_history

log = logging.getLogger(__name__)

#: Fewer completed stops than this say too little even for the fleet's factor: the
#: dispatcher's figures are planned with as they are.
MIN_STOPS = 20


@dataclass(frozen=True, slots=True)
class ObservedStop:
    """One completed stop: its order's customer reference and place, the dispatcher's service
    (the order's ``service_s``) and the service observed."""

    customer_ref: str
    lat: float
    lon: float
    dispatcher_s: float
    actual_s: float

    def observation(self, *, by_customer: bool) -> ServiceObservation:
        ref = self.customer_ref if by_customer else ""
        return ServiceObservation(
            address_key(ref, self.lat, self.lon), self.dispatcher_s, self.actual_s
        )


def observed_stops(
    session: Session, organisation_id: str, now: datetime, *, days: int = HISTORY_DAYS
) -> list[ObservedStop]:
    """The organisation's stops completed in the ``days`` days before ``now``'s day (its own
    calendar), with the observed service of each (module docstring)."""
    _, _, history = read_history(session, now, days, organisation_id=organisation_id)
    return [
        ObservedStop(ref, lat, lon, dispatcher_s, actual_s)
        for (_, actual_s), (ref, lat, lon, dispatcher_s) in zip(
            history.services, history.stop_orders, strict=True
        )
    ]


@dataclass(frozen=True, slots=True)
class LearnedService:
    """What an organisation's history says about its stops' service (neutral: none)."""

    by_customer: ServiceTimes = field(default_factory=ServiceTimes)
    by_address: ServiceTimes = field(default_factory=ServiceTimes)
    #: Completed stops read, and whether there were enough to use them.
    stops: int = 0
    fitted: bool = False
    needed: int = MIN_STOPS

    def service_s(self, order: Order) -> int:
        """The service to plan ``order`` with (its dispatcher's figure when not fitted)."""
        if not self.fitted:
            return order.service_s
        lat, lon = order.location.lat, order.location.lon
        if order.customer_ref.strip():
            customer = address_key(order.customer_ref, lat, lon)
            if self.by_customer.knows(customer):
                return round(self.by_customer.expected_s(customer, order.service_s))
        return round(self.by_address.expected_s(address_key("", lat, lon), order.service_s))

    def describe(self) -> str:
        if not self.fitted:
            return (
                f"service times as dispatched (cold start): {self.stops} completed stops, "
                f"fewer than the {self.needed} needed"
            )
        fleet = self.by_address.fleet_factor
        return (
            f"service times learned from {self.stops} stops: fleet x{fleet:.3f}, "
            f"{len(self.by_customer.factors)} customers (or places without one), "
            f"{len(self.by_address.factors)} places"
        )


def learn_service(
    session: Session,
    organisation_id: str,
    now: datetime,
    *,
    days: int = HISTORY_DAYS,
    min_stops: int = MIN_STOPS,
    prior_weight: float = PRIOR_WEIGHT,
) -> LearnedService:
    """The organisation's learned service times from its completed stops before ``now``'s
    day (neutral with fewer than ``min_stops``)."""
    stops = observed_stops(session, organisation_id, now, days=days)
    needed = max(min_stops, 1)
    if len(stops) < needed:
        return LearnedService(stops=len(stops), needed=needed)
    return LearnedService(
        fit_service_times(
            (s.observation(by_customer=True) for s in stops), prior_weight=prior_weight
        ),
        fit_service_times(
            (s.observation(by_customer=False) for s in stops), prior_weight=prior_weight
        ),
        len(stops),
        True,
        needed,
    )


@dataclass
class ServicePlan:
    """One planning job's service times: the orders it plans with, and what each order's
    dispatcher said, for the plan's result."""

    learned: LearnedService
    #: Order id -> (service planned with, the dispatcher's), for every order adjusted.
    used: dict[str, tuple[int, int]] = field(default_factory=dict)

    def order(self, order: Order) -> Order:
        service_s = self.learned.service_s(order)
        self.used[order.id] = (service_s, order.service_s)
        return order if service_s == order.service_s else replace(order, service_s=service_s)

    def problem(self, problem: PlanningProblem) -> PlanningProblem:
        return replace(problem, orders=tuple(self.order(o) for o in problem.orders))

    def annotate(self, result: dict[str, Any]) -> dict[str, Any]:
        """``result`` (a stored plan's) with each stop's ``service_s`` (planned with) and
        ``service_s_dispatcher`` (the order's own figure, the prior)."""
        for route in result.get("routes", []):
            for stop in route.get("stops", []):
                if stop.get("order_id") in self.used:
                    stop["service_s"], stop["service_s_dispatcher"] = self.used[stop["order_id"]]
        return result


def service_plan(
    sessions: sessionmaker[Session], organisation_id: str, now: datetime
) -> ServicePlan:
    """A planning job's service times, learned from the store in a session of their own (so a
    failure leaves the job's own session clean): logged at INFO; a failure is logged and the
    dispatcher's figures are planned with."""
    try:
        with sessions() as session:
            learned = learn_service(session, organisation_id, now)
    except Exception:
        log.exception("learning service times failed; planning with the dispatcher's")
        return ServicePlan(LearnedService())
    log.info("organisation %s: %s", organisation_id, learned.describe())
    return ServicePlan(learned)

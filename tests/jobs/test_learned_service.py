"""Service times learned from the store's history and planned with (issue 16): a customer
seen slow on earlier days is planned longer, a building seen slow under one-off order
references too, a new address gets the dispatcher's figure times the fleet's factor; the
stored plan carries the figure to the live ETA, and the dispatcher's figure stays beside it."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from domain.geo import LatLon
from domain.problem import Order
from eta.live import route_from_plan
from jobs.plan_runner import PlanRunner
from routing.road_graph import RoadGraph
from routing.snapping import Snapper
from store.db import make_engine, session_factory, transaction, upgrade
from store.repo import create_organisation
from store.schema import DepotRow, EventRow, OrderRow, PlanJobRow, PlanRow, VehicleRow
from telematics.service_history import (
    MIN_STOPS,
    LearnedService,
    ServicePlan,
    learn_service,
    observed_stops,
    service_plan,
)

DEPOT = (60.1699, 24.9384)
SLOW_SHOP = (60.1665, 24.9433)  # a customer with its own reference, 3x on every visit
SLOW_BUILDING = (60.1700, 24.9500)  # one-off order references, 3x on every visit
NEW_PLACE = (60.1620, 24.9400)  # never delivered to
DISPATCHER_S = 120


@dataclass(frozen=True)
class Visit:
    customer_ref: str
    lat: float
    lon: float
    actual_s: float
    service_s: int = DISPATCHER_S


def today() -> date:
    return datetime.now(UTC).date()


def van(org_id: str, shift_start: datetime) -> VehicleRow:
    return VehicleRow(
        organisation_id=org_id,
        external_id="van-0",
        start_lat=DEPOT[0],
        start_lon=DEPOT[1],
        shift_start=shift_start,
        shift_end=shift_start + timedelta(hours=10),
    )


@pytest.fixture
def store(database_url: str) -> Iterator[tuple[sessionmaker[Session], str]]:
    upgrade(database_url)
    engine = make_engine(database_url)
    sessions = session_factory(engine)
    org_id, _ = create_organisation(sessions, "Carrier", "UTC")
    with transaction(sessions) as session:
        session.add(DepotRow(organisation_id=org_id, external_id="d1", lat=DEPOT[0], lon=DEPOT[1]))
        session.add(van(org_id, datetime.combine(today() + timedelta(days=1), time(8), tzinfo=UTC)))
    yield sessions, org_id
    engine.dispose()


def add_day(sessions: sessionmaker[Session], org_id: str, day: date, visits: list[Visit]) -> None:
    """One dispatched route of ``van-0`` on ``day`` (08:00 UTC, 5-minute drives, each stop
    planned at its dispatcher's figure) and the van's arrived / departed events, each stop
    taking its ``actual_s``."""
    start = datetime.combine(day, time(8), tzinfo=UTC)
    with transaction(sessions) as session:
        vehicle = session.scalars(
            select(VehicleRow).where(VehicleRow.organisation_id == org_id)
        ).one()
        planned = actual = start
        stops: list[dict[str, Any]] = []
        for k, visit in enumerate(visits):
            order = OrderRow(
                organisation_id=org_id,
                external_id=f"{day}-{k}",
                lat=visit.lat,
                lon=visit.lon,
                service_s=visit.service_s,
                customer_ref=visit.customer_ref,
                status="delivered",
                tracking_token=f"{org_id}-{day}-{k}",
            )
            session.add(order)
            session.flush()
            arrival, planned = (
                planned + timedelta(seconds=300),
                planned + timedelta(seconds=300 + visit.service_s),
            )
            stops.append(
                {
                    "order_id": order.external_id,
                    "arrival": arrival.isoformat(),
                    "service_start": arrival.isoformat(),
                    "departure": planned.isoformat(),
                    "duration_from_previous_s": 300,
                    "distance_from_previous_m": 2000,
                }
            )
            arrived = actual + timedelta(seconds=300)
            actual = arrived + timedelta(seconds=visit.actual_s)
            for kind, at in (("arrived", arrived), ("departed", actual)):
                session.add(
                    EventRow(
                        organisation_id=org_id,
                        order_id=order.id,
                        vehicle_id=vehicle.id,
                        kind=kind,
                        at=at,
                    )
                )
        route = {
            "vehicle_id": "van-0",
            "start": start.isoformat(),
            "end": planned.isoformat(),
            "stops": stops,
            "breaks": [],
        }
        session.add(
            PlanRow(
                organisation_id=org_id,
                status="succeeded",
                result={"routes": [route], "unassigned": []},
                dispatched_at=start - timedelta(hours=1),
            )
        )


def ordinary(day: date, n: int) -> list[Visit]:
    """``n`` one-off customers, each at its own address, 1.2x the dispatcher's figure."""
    return [Visit(f"ORD-{day}-{k}", 60.10 + 0.001 * k, 24.80, 1.2 * DISPATCHER_S) for k in range(n)]


def slow_days(sessions: sessionmaker[Session], org_id: str) -> float:
    """Two past days: 22 ordinary stops a day, the slow shop and the slow building twice a
    day each. Returns the fleet's factor they make (no ratio is clipped)."""
    visits: list[Visit] = []
    for back in (1, 2):
        day = today() - timedelta(days=back)
        mine = [
            *ordinary(day, 22),
            *[Visit("SHOP-SLOW", *SLOW_SHOP, 3.0 * DISPATCHER_S) for _ in range(2)],
            *[Visit(f"WEB-{day}-{k}", *SLOW_BUILDING, 3.0 * DISPATCHER_S) for k in range(2)],
        ]
        add_day(sessions, org_id, day, mine)
        visits += mine
    return sum(v.actual_s for v in visits) / sum(v.service_s for v in visits)


def add_orders(sessions: sessionmaker[Session], org_id: str) -> None:
    """Tomorrow's orders: the slow shop again, a one-off order at the slow building and one at
    an address never seen."""
    with transaction(sessions) as session:
        for oid, ref, (lat, lon) in (
            ("shop", "SHOP-SLOW", SLOW_SHOP),
            ("building", "WEB-NEW", SLOW_BUILDING),
            ("new", "", NEW_PLACE),
        ):
            session.add(
                OrderRow(
                    organisation_id=org_id,
                    external_id=oid,
                    lat=lat,
                    lon=lon,
                    service_s=DISPATCHER_S,
                    customer_ref=ref,
                    tracking_token=f"{org_id}-{oid}",
                )
            )


def run_plan(
    sessions: sessionmaker[Session], org_id: str, graph: RoadGraph, snapper: Snapper
) -> dict[str, Any]:
    """A plan of tomorrow's three orders, run by the planning worker; its stored result."""
    with transaction(sessions) as session:
        request = {"order_ids": ["shop", "building", "new"], "vehicle_ids": ["van-0"]}
        plan = PlanRow(organisation_id=org_id, request={**request, "time_limit_s": 1})
        session.add(plan)
        session.flush()
        job = PlanJobRow(organisation_id=org_id, plan_id=plan.id)
        session.add(job)
        session.flush()
        plan_id, job_id = plan.id, job.id
    runner = PlanRunner(sessions, graph, snapper, default_time_limit_s=1.0)
    try:
        runner.run(job_id)
    finally:
        runner.shutdown()
    with sessions() as session:
        row = session.get(PlanRow, plan_id)
        assert row is not None
        assert row.status == "succeeded", row.error
        assert row.result is not None
        return row.result


def test_a_customer_seen_slow_is_planned_longer_and_a_new_address_at_the_fleet_pace(
    store: tuple[sessionmaker[Session], str], helsinki: RoadGraph, helsinki_snapper: Snapper
) -> None:
    sessions, org_id = store
    fleet = slow_days(sessions, org_id)
    add_orders(sessions, org_id)
    result = run_plan(sessions, org_id, helsinki, helsinki_snapper)
    [route] = [r for r in result["routes"] if r["stops"]]
    stops = {s["order_id"]: s for s in route["stops"]}
    assert set(stops) == {"shop", "building", "new"}
    planned = {oid: s["service_s"] for oid, s in stops.items()}
    # The dispatcher's figure stays beside the one planned with.
    assert {s["service_s_dispatcher"] for s in stops.values()} == {DISPATCHER_S}
    assert planned["new"] == round(DISPATCHER_S * fleet)
    assert planned["shop"] > 1.5 * planned["new"]
    assert planned["building"] > 1.5 * planned["new"]
    for oid, stop in stops.items():  # the schedule is made with it
        begin = datetime.fromisoformat(stop["service_start"])
        assert (datetime.fromisoformat(stop["departure"]) - begin).total_seconds() == planned[oid]
    # The live ETA reads each stop's service from the stored plan: the learned figure.
    eta = route_from_plan("van-0", "p", route, {})
    assert {s.order_id: s.service_s for s in eta.stops} == planned


def test_without_history_the_dispatcher_s_figures_are_planned_with(
    store: tuple[sessionmaker[Session], str], helsinki: RoadGraph, helsinki_snapper: Snapper
) -> None:
    sessions, org_id = store
    add_orders(sessions, org_id)
    result = run_plan(sessions, org_id, helsinki, helsinki_snapper)
    stops = [s for r in result["routes"] for s in r["stops"]]
    assert len(stops) == 3
    assert {(s["service_s"], s["service_s_dispatcher"]) for s in stops} == {
        (DISPATCHER_S, DISPATCHER_S)
    }


def test_only_the_organisation_s_own_completed_days_are_read(
    store: tuple[sessionmaker[Session], str],
) -> None:
    """Another carrier's stops, today's stops (the live pace's) and stops beyond ``days``
    teach nothing; each stop's dispatcher's figure is the order's, not the plan's."""
    sessions, org_id = store
    fleet = slow_days(sessions, org_id)
    other, _ = create_organisation(sessions, "Other carrier", "UTC")
    with transaction(sessions) as session:
        session.add(van(other, datetime(2026, 1, 1, tzinfo=UTC)))
    add_day(sessions, other, today() - timedelta(days=1), ordinary(today(), 30))
    add_day(sessions, org_id, today(), [Visit("SHOP-SLOW", *SLOW_SHOP, 40.0)] * 5)
    add_day(sessions, org_id, today() - timedelta(days=40), ordinary(today(), 30))
    now = datetime.now(UTC)
    with sessions() as session:
        stops = observed_stops(session, org_id, now, days=28)
        learned = learn_service(session, org_id, now, days=28)
    assert len(stops) == 2 * 26
    assert {s.dispatcher_s for s in stops} == {float(DISPATCHER_S)}
    assert learned.fitted
    assert learned.by_customer.fleet_factor == pytest.approx(fleet)
    assert learned.by_customer.visits["customer:SHOP-SLOW"] == 4
    # A customer who moved keeps its own factor; an unknown one at a seen building gets the
    # building's; an unknown one elsewhere, the fleet's.
    moved = Order("x", LatLon(*NEW_PLACE), service_s=DISPATCHER_S, customer_ref="SHOP-SLOW")
    stranger = Order("y", LatLon(*SLOW_BUILDING), service_s=DISPATCHER_S, customer_ref="Z-1")
    nobody = Order("z", LatLon(*NEW_PLACE), service_s=DISPATCHER_S)
    assert learned.service_s(moved) > 1.5 * learned.service_s(nobody)
    assert learned.service_s(stranger) > 1.5 * learned.service_s(nobody)
    assert learned.service_s(nobody) == round(DISPATCHER_S * fleet)


def test_too_little_history_plans_as_dispatched(
    store: tuple[sessionmaker[Session], str],
) -> None:
    sessions, org_id = store
    add_day(sessions, org_id, today() - timedelta(days=1), ordinary(today(), MIN_STOPS - 1))
    with sessions() as session:
        learned = learn_service(session, org_id, datetime.now(UTC))
    assert not learned.fitted
    assert learned.stops == MIN_STOPS - 1
    assert "cold start" in learned.describe()
    order = Order("o", LatLon(*NEW_PLACE), service_s=DISPATCHER_S)
    assert learned.service_s(order) == DISPATCHER_S


def test_a_failing_fit_plans_with_the_dispatcher_s_figures_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A store that cannot be read (no tables): the job still plans, as dispatched."""
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        with caplog.at_level(logging.ERROR, logger="telematics.service_history"):
            plan = service_plan(session_factory(engine), "org", datetime.now(UTC))
    finally:
        engine.dispose()
    assert plan.learned == LearnedService()
    assert "learning service times failed" in caplog.text
    order = Order("o", LatLon(*NEW_PLACE), service_s=DISPATCHER_S)
    assert plan.order(order) == order


def test_the_result_names_both_figures_for_each_stop_it_planned() -> None:
    plan = ServicePlan(LearnedService())
    plan.order(Order("a", LatLon(*NEW_PLACE), service_s=90))
    result = {"routes": [{"stops": [{"order_id": "a"}, {"order_id": "unknown"}]}]}
    assert plan.annotate(result)["routes"][0]["stops"] == [
        {"order_id": "a", "service_s": 90, "service_s_dispatcher": 90},
        {"order_id": "unknown"},
    ]

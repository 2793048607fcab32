"""Live delivery states for tests of what customers, support staff and dispatchers are shown:
an order put on a moving vehicle's route directly in the store (plan, stop, progress with
ETAs, the windows told), or a real day planned and dispatched through the API."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.db import make_engine, session_factory, transaction
from store.schema import (
    DeviceRow,
    EventRow,
    OrderRow,
    PlanRouteRow,
    PlanRow,
    PlanStopRow,
    ProgressRow,
    VehicleRow,
)
from tests.api.service import Service


def put_on_route(
    url: str,
    order_id: str,
    now: datetime,
    *,
    vehicle_id: str = "V-1",
    driver_first_name: str = "",
    stops_before: int = 2,
    delivered_event: bool = False,
) -> tuple[datetime, datetime]:
    """The order dispatched on a driving vehicle, ``stops_before`` stops before it, its ETA 75
    minutes away in a 30-minute window and 12 minutes later than first told. Returns the live
    window."""
    eta = now + timedelta(minutes=75)
    start, end = eta - timedelta(minutes=15), eta + timedelta(minutes=15)
    engine = make_engine(url)
    try:
        with transaction(session_factory(engine)) as session:
            order = session.scalar(select(OrderRow).where(OrderRow.external_id == order_id))
            assert order is not None
            order.status = "dispatched"
            vehicle = VehicleRow(
                organisation_id=order.organisation_id,
                external_id=vehicle_id,
                driver_first_name=driver_first_name,
                start_lat=45.46,
                start_lon=9.18,
                shift_start=now - timedelta(hours=2),
                shift_end=now + timedelta(hours=6),
            )
            plan = PlanRow(organisation_id=order.organisation_id, status="dispatched")
            plan.dispatched_at = now - timedelta(hours=1)
            session.add_all([vehicle, plan])
            session.flush()
            route = PlanRouteRow(
                plan_id=plan.id,
                vehicle_id=vehicle.id,
                start=now - timedelta(hours=1),
                end=now + timedelta(hours=3),
                distance_m=20_000,
                duration_s=14_400,
            )
            session.add(route)
            session.flush()
            before = [
                [f"X-{i}", now.timestamp() + 300 * i, 0, 0, 0, False]
                for i in range(1, stops_before + 1)
            ]
            mine = [order_id, eta.timestamp(), start.timestamp(), end.timestamp(), 0, False]
            rows: list[object] = [
                PlanStopRow(
                    route_id=route.id,
                    seq=stops_before + 1,
                    order_id=order.id,
                    arrival=eta,
                    service_start=eta,
                    departure=eta + timedelta(minutes=3),
                    wait_s=0,
                ),
                ProgressRow(
                    vehicle_id=vehicle.id,
                    organisation_id=order.organisation_id,
                    plan_id=plan.id,
                    last_fix_time=now - timedelta(seconds=20),
                    last_lat=45.46,
                    last_lon=9.18,
                    state={"etas": [*before, mine]},
                ),
                EventRow(
                    organisation_id=order.organisation_id,
                    order_id=order.id,
                    kind="window_told",
                    at=now - timedelta(hours=1),
                    data={"eta": (eta - timedelta(minutes=12)).isoformat()},
                ),
                EventRow(
                    organisation_id=order.organisation_id,
                    order_id=order.id,
                    kind="window_broken",
                    at=now - timedelta(minutes=5),
                    data={"eta": eta.isoformat()},
                ),
            ]
            if delivered_event:
                rows.append(
                    EventRow(
                        organisation_id=order.organisation_id,
                        order_id=order.id,
                        vehicle_id=vehicle.id,
                        kind="delivered",
                        at=now,
                        data={"by": "driver"},
                    )
                )
            session.add_all(rows)
    finally:
        engine.dispose()
    return start, end


def dispatch(
    s: Service, orders: dict[str, dict[str, Any]], depot: tuple[float, float]
) -> list[str]:
    """Depot, a van whose shift is under way, the orders; plan, dispatch, register the van's
    OsmAnd device (its identifier, issued by the server: :func:`osmand_id`). Returns the order
    ids in route order."""
    h = s.headers()
    now = datetime.now(UTC)
    # Under way, but not begun before midnight: the dashboard shows the routes of the
    # organisation's (UTC) day, and one run just after midnight planned yesterday's.
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    shift = {
        "start": max(now - timedelta(hours=2), midnight).isoformat(),
        "end": (now + timedelta(hours=8)).isoformat(),
    }
    r = s.client.post(
        "/v1/depots",
        json={"id": "d1", "location": {"lat": depot[0], "lon": depot[1]}},
        headers=h,
    )
    assert r.status_code == 201, r.text
    r = s.client.post(
        "/v1/vehicles", json={"id": "v1", "depot_id": "d1", "shift": shift}, headers=h
    )
    assert r.status_code == 201, r.text
    for order_id, fields in orders.items():
        r = s.client.post("/v1/orders", json={"id": order_id, **fields}, headers=h)
        assert r.status_code == 201, r.text
    plan_id = s.client.post("/v1/plans", json={"time_limit_s": 0.5}, headers=h).json()["plan_id"]
    body = s.wait(plan_id)
    assert body["status"] == "succeeded", body
    assert s.client.post(f"/v1/plans/{plan_id}/dispatch", headers=h).status_code == 200
    r = s.client.post("/v1/vehicles/v1/devices", json={"protocol": "osmand"}, headers=h)
    assert r.status_code == 201, r.text
    [route] = body["plan"]["routes"]
    stops: list[str] = [stop["order_id"] for stop in route["stops"]]
    assert sorted(stops) == sorted(orders)
    return stops


T = TypeVar("T")


def read_order(url: str, order_id: str, read: Callable[[Session, OrderRow], T]) -> T:
    """``read(session, order)`` of the stored order ``order_id``, on a connection of its own."""
    engine = make_engine(url)
    try:
        with session_factory(engine)() as session:
            order = session.scalar(select(OrderRow).where(OrderRow.external_id == order_id))
            assert order is not None
            return read(session, order)
    finally:
        engine.dispose()


def tracking_token(url: str, order_id: str) -> str:
    return read_order(url, order_id, lambda _session, order: order.tracking_token)


def osmand_id(s: Service, vehicle_id: str = "v1") -> str:
    """The identifier the server issued to the vehicle's OsmAnd device (what Traccar Client
    sends as ``id``), as registered by :func:`dispatch`."""
    engine = make_engine(s.url)
    try:
        with session_factory(engine)() as session:
            found = session.scalar(
                select(DeviceRow.external_device_id)
                .join(VehicleRow, VehicleRow.id == DeviceRow.vehicle_id)
                .where(
                    VehicleRow.external_id == vehicle_id,
                    DeviceRow.protocol == "osmand",
                    DeviceRow.revoked_at.is_(None),
                )
                .order_by(DeviceRow.created_at.desc())
            )
    finally:
        engine.dispose()
    assert found is not None, f"no OsmAnd device for {vehicle_id!r}"
    return found


class SimClock:
    """The ingester's clock, started in the recent past and moved on by the test: the van
    stands at the depot for minutes in a test that lasts seconds. Fixes carry its time, so
    they are never in the future."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now

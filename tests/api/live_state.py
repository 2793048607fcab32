"""An order put on a moving vehicle's route directly in the store (plan, stop, progress with
ETAs, the windows told), for tests of what customers and support staff are shown."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from store.db import make_engine, session_factory, transaction
from store.schema import (
    EventRow,
    OrderRow,
    PlanRouteRow,
    PlanRow,
    PlanStopRow,
    ProgressRow,
    VehicleRow,
)


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

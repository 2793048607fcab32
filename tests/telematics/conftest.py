"""A store with one organisation and one vehicle, for ingestion tests."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from store.db import make_engine, session_factory, transaction, upgrade
from store.schema import Organisation, VehicleRow


def store_with_vehicle(
    tmp_path: Path, vehicle_id: str
) -> tuple[sessionmaker[Session], str, Engine]:
    """(sessions, organisation id, engine) of a fresh SQLite store holding one vehicle."""
    url = f"sqlite:///{tmp_path / 'lastmile.db'}"
    upgrade(url)
    engine = make_engine(url)
    sessions = session_factory(engine)
    with transaction(sessions) as session:
        org = Organisation(name="Test")
        session.add(org)
        session.flush()
        session.add(
            VehicleRow(
                organisation_id=org.id,
                external_id=vehicle_id,
                start_lat=60.17,
                start_lon=24.94,
                shift_start=datetime(2026, 1, 1, tzinfo=UTC),
                shift_end=datetime(2027, 1, 1, tzinfo=UTC),
            )
        )
        org_id = org.id
    return sessions, org_id, engine


def put_on_route(session: Session, vehicle_id: str, order_ids: list[str]) -> None:
    """Make the orders the stops of the vehicle's active route (a plan dispatched to it, with
    no geometry: progress is not tracked): a driver's events count only for those."""
    from store.schema import PlanRow

    vehicle = session.scalars(select(VehicleRow).where(VehicleRow.external_id == vehicle_id)).one()
    stops = [{"order_id": order_id} for order_id in order_ids]
    plan = PlanRow(
        organisation_id=vehicle.organisation_id,
        status="succeeded",
        result={"routes": [{"vehicle_id": vehicle_id, "stops": stops}]},
    )
    session.add(plan)
    session.flush()
    vehicle.active_plan_id = plan.id


LINE_LAT, LINE_LON = 60.17, 24.90
#: Three stops on a straight street east of the start, 111 m apart.
ROUTE_STOPS = (("o1", 0.002), ("o2", 0.004), ("o3", 0.006))


def store_with_route(tmp_path: Path, t0: datetime) -> tuple[sessionmaker[Session], Engine]:
    """A store with vehicle "van-1" dispatched on a plan: three stops along a street, each leg
    planned at 20 s, each stop at 120 s, starting at ``t0``."""
    from datetime import timedelta

    from store.schema import OrderRow, PlanRow

    url = f"sqlite:///{tmp_path / 'lastmile.db'}"
    upgrade(url)
    engine = make_engine(url)
    sessions = session_factory(engine)
    line = [[LINE_LON + k * 0.001, LINE_LAT] for k in range(10)]
    with transaction(sessions) as session:
        org = Organisation(name="Test")
        session.add(org)
        session.flush()
        for oid, dlon in ROUTE_STOPS:
            session.add(
                OrderRow(
                    organisation_id=org.id,
                    external_id=oid,
                    lat=LINE_LAT,
                    lon=LINE_LON + dlon,
                    service_s=120,
                    tracking_token=f"token-{oid}",
                    contact_email=f"{oid}@example.com",
                )
            )
        schedule = []
        for k, (oid, _) in enumerate(ROUTE_STOPS):
            arrival = t0 + timedelta(seconds=140 * k + 20)
            schedule.append(
                {
                    "order_id": oid,
                    "arrival": arrival.isoformat(),
                    "service_start": arrival.isoformat(),
                    "departure": (arrival + timedelta(seconds=120)).isoformat(),
                    "duration_from_previous_s": 20,
                    "distance_from_previous_m": 111,
                }
            )
        feature = {
            "type": "Feature",
            "geometry": {"type": "LineString", "coordinates": line},
            "properties": {"vehicle_id": "van-1", "order_ids": [o for o, _ in ROUTE_STOPS]},
        }
        plan = PlanRow(
            organisation_id=org.id,
            status="succeeded",
            result={
                "routes": [{"vehicle_id": "van-1", "start": t0.isoformat(), "stops": schedule}]
            },
            geojson={"type": "FeatureCollection", "features": [feature]},
        )
        session.add(plan)
        session.flush()
        session.add(
            VehicleRow(
                organisation_id=org.id,
                external_id="van-1",
                start_lat=LINE_LAT,
                start_lon=LINE_LON,
                shift_start=datetime(2026, 1, 1, tzinfo=UTC),
                shift_end=datetime(2027, 1, 1, tzinfo=UTC),
                active_plan_id=plan.id,
            )
        )
    return sessions, engine

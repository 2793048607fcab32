"""Past days of a fleet in the store, as the service leaves them: dispatched plans (their
results: planned drive per leg, service per stop) and the vehicles' arrived / departed events,
every drive ``slow`` times its planned length."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from store.db import transaction
from store.schema import EventRow, OrderRow, PlanRow, VehicleRow

SERVICE_S = 120.0


def planned_drive_s(day: int, van: int, k: int) -> float:
    """Legs from 200 s to 740 s, different on every route."""
    return 200.0 + 60.0 * ((k + 3 * van + day) % 10)


def add_history(
    sessions: sessionmaker[Session],
    organisation_id: str,
    days: list[date],
    *,
    vans: int = 2,
    stops: int = 10,
    slow: float = 1.3,
    breaks: bool = False,
) -> list[dict[str, Any]]:
    """A route per van per day (08:00 UTC); returns the plans' routes as stored. ``breaks``:
    each route plans a break over the drive to its fourth stop."""
    routes: list[dict[str, Any]] = []
    with transaction(sessions) as session:
        vehicles = {}
        for v in range(vans):
            ext = f"van-{v}"
            row = session.scalar(
                select(VehicleRow).where(
                    VehicleRow.organisation_id == organisation_id, VehicleRow.external_id == ext
                )
            )
            if row is None:
                row = VehicleRow(
                    organisation_id=organisation_id,
                    external_id=ext,
                    start_lat=60.17,
                    start_lon=24.94,
                    shift_start=datetime(2026, 1, 1, tzinfo=UTC),
                    shift_end=datetime(2027, 1, 1, tzinfo=UTC),
                )
                session.add(row)
            vehicles[v] = row
        session.flush()
        for d, day in enumerate(days):
            start = datetime.combine(day, time(8), tzinfo=UTC)
            for v in range(vans):
                planned = actual = start
                schedule: list[dict[str, Any]] = []
                for k in range(stops):
                    drive = planned_drive_s(d, v, k)
                    order = OrderRow(
                        organisation_id=organisation_id,
                        external_id=f"{day}-v{v}-s{k}",
                        lat=60.17,
                        lon=24.94,
                        service_s=int(SERVICE_S),
                        status="delivered",
                        tracking_token=f"t-{organisation_id}-{day}-{v}-{k}",
                    )
                    session.add(order)
                    session.flush()
                    arrival = planned + timedelta(seconds=drive)
                    planned = arrival + timedelta(seconds=SERVICE_S)
                    schedule.append(
                        {
                            "order_id": order.external_id,
                            "arrival": arrival.isoformat(),
                            "service_start": arrival.isoformat(),
                            "departure": planned.isoformat(),
                            "duration_from_previous_s": int(drive),
                            "distance_from_previous_m": int(drive * 8),
                        }
                    )
                    arrived = actual + timedelta(seconds=slow * drive)
                    actual = arrived + timedelta(seconds=SERVICE_S)
                    for kind, at in (("arrived", arrived), ("departed", actual)):
                        session.add(
                            EventRow(
                                organisation_id=organisation_id,
                                order_id=order.id,
                                vehicle_id=vehicles[v].id,
                                kind=kind,
                                at=at,
                                data={},
                            )
                        )
                route: dict[str, Any] = {
                    "vehicle_id": f"van-{v}",
                    "start": start.isoformat(),
                    "end": planned.isoformat(),
                    "stops": schedule,
                    "breaks": [],
                }
                if breaks:
                    route["breaks"] = [
                        {"start": schedule[2]["departure"], "end": schedule[3]["arrival"]}
                    ]
                routes.append(route)
                session.add(
                    PlanRow(
                        organisation_id=organisation_id,
                        status="succeeded",
                        result={"routes": [route], "unassigned": []},
                        dispatched_at=start - timedelta(hours=1),
                    )
                )
    return routes

"""The drivers' app hears of a live ETA that moves by a minute (its route_version, hence its
ETag and its stream, change), not of one that moves by seconds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from store.db import make_engine, session_factory, transaction
from store.schema import ProgressRow, VehicleRow
from tests.api.driver_fleet import Fleet


def _set_eta(fleet: Fleet, order_id: str, eta: datetime) -> None:
    """The ingester's stored ETAs for v1's active route, as it writes them."""
    plan_id = fleet.get("/v1/vehicles/v1/stops").json()["plan_id"]
    at = eta.timestamp()
    engine = make_engine(fleet.s.url)
    try:
        with transaction(session_factory(engine)) as session:
            vehicle = session.scalars(
                select(VehicleRow).where(VehicleRow.external_id == "v1")
            ).one()
            row = session.get(ProgressRow, vehicle.id)
            if row is None:
                row = ProgressRow(vehicle_id=vehicle.id, organisation_id=vehicle.organisation_id)
                session.add(row)
            row.plan_id = plan_id
            row.state = {"etas": [[order_id, at, at - 600, at + 600, at + 120, False]]}
    finally:
        engine.dispose()


def _version(fleet: Fleet) -> tuple[str, str | None]:
    r = fleet.get("/v1/vehicles/v1/stops")
    assert r.status_code == 200, r.text
    body = r.json()
    eta = next(s["eta"] for s in body["stops"] if s["order_id"] == fleet.route[0])
    assert r.headers["ETag"] == f'"{body["route_version"]}"'
    return body["route_version"], eta


def test_a_minute_moves_the_version_seconds_do_not(fleet: Fleet) -> None:
    first = fleet.route[0]
    at = datetime.now(UTC).replace(second=5, microsecond=0) + timedelta(hours=1)
    _set_eta(fleet, first, at)
    version, eta = _version(fleet)
    assert eta is not None
    _set_eta(fleet, first, at + timedelta(seconds=20))  # same minute: no news
    again, _ = _version(fleet)
    assert again == version
    headers = {**fleet.s.headers(fleet.key), "If-None-Match": f'"{version}"'}
    r = fleet.s.client.get("/v1/vehicles/v1/stops", headers=headers)
    assert r.status_code == 304
    _set_eta(fleet, first, at + timedelta(minutes=3))
    moved, moved_eta = _version(fleet)
    assert moved != version
    assert moved_eta != eta

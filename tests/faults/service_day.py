"""The service under fault and its day: a fresh store, the service's settings, the day
dispatched through its API, an OsmAnd device, an order to post."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from store.db import make_engine, session_factory, transaction, upgrade
from store.repo import create_organisation
from store.schema import VehicleRow
from tests.api.live_state import dispatch
from tests.api.service import Service
from tests.api.smtp_server import SmtpServer
from tests.fault_procs import ServiceProcess

#: Where the vans start (Helsinki centre: the default road network) and three customers.
DEPOT = (60.1699, 24.9384)
STOPS = {"a": (60.1665, 24.9433), "b": (60.1700, 24.9500), "c": (60.1720, 24.9450)}
#: No quiet hours: the real clock may be at night in the customers' zone.
AWAKE = {"quiet_start": None, "quiet_end": None}


def sqlite_url(directory: Path) -> str:
    return f"sqlite:///{directory / 'lastmile.db'}"


def new_store(url: str, vehicles: Iterable[str] = ()) -> str:
    """A migrated store with one organisation (and these vehicles); returns its admin key."""
    upgrade(url)
    engine = make_engine(url)
    try:
        sessions = session_factory(engine)
        organisation_id, key = create_organisation(sessions, "Fault carrier", "UTC")
        now = datetime.now(UTC)
        with transaction(sessions) as session:
            for vehicle in vehicles:
                session.add(
                    VehicleRow(
                        organisation_id=organisation_id,
                        external_id=vehicle,
                        start_lat=DEPOT[0],
                        start_lon=DEPOT[1],
                        shift_start=now - timedelta(hours=4),
                        shift_end=now + timedelta(hours=8),
                    )
                )
    finally:
        engine.dispose()
    return key


def service_env(url: str, **env: str) -> dict[str, str]:
    return {"LASTMILE_DATABASE_URL": url, "LASTMILE_PLAN_TIME_LIMIT_S": "1", **env}


def smtp_env(smtp: SmtpServer) -> dict[str, str]:
    return {
        "LASTMILE_SMTP_HOST": "127.0.0.1",
        "LASTMILE_SMTP_PORT": str(smtp.port),
        "LASTMILE_SMTP_SECURITY": "none",
        "LASTMILE_SMTP_SENDER": "noreply@lastmile.example",
    }


def as_service(service: ServiceProcess, url: str) -> Service:
    """The API test helpers' view of the running process (httpx speaks as TestClient does)."""
    return Service(service.client, service.admin_key, url)  # type: ignore[arg-type]


def dispatched_day(service: ServiceProcess, url: str, orders: Iterable[str]) -> list[str]:
    """Quiet hours off; a depot, van v1 with an OsmAnd device (live_state.osmand_id), and one
    customer with an e-mail address per stop, planned and dispatched. Returns the order ids in
    route order."""
    s = as_service(service, url)
    r = s.client.patch(
        "/v1/organisation",
        json={
            "branding": {"name": "Acme", "sender": "news@acme.example"},
            "notification_policy": AWAKE,
        },
        headers=s.headers(),
    )
    assert r.status_code == 200, r.text
    return dispatch(
        s,
        {
            order: {
                "location": {"lat": STOPS[order][0], "lon": STOPS[order][1]},
                "service_s": 60,
                "contact": {"name": "Anna", "email": f"{order}@example.com"},
            }
            for order in orders
        },
        DEPOT,
    )


def add_osmand_device(service: ServiceProcess, vehicle: str) -> str:
    """Register an OsmAnd device for the vehicle: the identifier the server issued."""
    r = service.client.post(
        f"/v1/vehicles/{vehicle}/devices", json={"protocol": "osmand"}, headers=service.headers()
    )
    assert r.status_code == 201, r.text
    device: str = r.json()["external_device_id"]
    return device


def order_body(order_id: str) -> dict[str, Any]:
    return {"id": order_id, "location": {"lat": STOPS["a"][0], "lon": STOPS["a"][1]}}

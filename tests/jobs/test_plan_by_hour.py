"""Planning jobs plan by the hour of day (issue 16), SQLite: with rush hours fitted from the
store's own history the planned arrivals move later, each leg by the fitted factor of the
hour it leaves in; without history the plan is planned as before."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session, sessionmaker

from eta.live import plan_windows
from eta.params import EtaParams, FleetPrior
from jobs.plan_runner import PlanRunner
from routing.road_graph import RoadGraph
from routing.snapping import Snapper
from store.db import make_engine, session_factory, transaction, upgrade
from store.repo import create_organisation
from store.schema import EventRow, OrderRow, PlanJobRow, PlanRow, VehicleRow
from telematics.fleet_prior import fit_fleet_prior

ZONE = "Europe/Helsinki"
LOCAL = ZoneInfo(ZONE)
DAY = date(2026, 11, 26)
SHIFT_START = datetime.combine(DAY, time(8), tzinfo=LOCAL)
DEPOT = (60.1699, 24.9384)
PLACES = [(60.1665, 24.9433), (60.1700, 24.9500), (60.1620, 24.9400)]
#: Past drives leaving between 08:00 and 10:00 local took this much longer than planned.
RUSH_SLOW = 1.6
SERVICE_S = 120


def _store(tmp_path: Path, name: str) -> tuple[sessionmaker[Session], str]:
    """An organisation in Helsinki with van v1 (from 08:00 local, open route) and orders
    o0-o2 to plan."""
    url = f"sqlite:///{tmp_path / name}"
    upgrade(url)
    sessions = session_factory(make_engine(url))
    org, _ = create_organisation(sessions, "Carrier", ZONE)
    with transaction(sessions) as session:
        session.add(_van(org, "v1"))
        for i, (lat, lon) in enumerate(PLACES):
            session.add(
                OrderRow(
                    organisation_id=org,
                    external_id=f"o{i}",
                    lat=lat,
                    lon=lon,
                    service_s=SERVICE_S,
                    demand=[1],
                    tracking_token=f"{name}-o{i}",
                )
            )
    return sessions, org


def _van(org: str, external_id: str) -> VehicleRow:
    return VehicleRow(
        organisation_id=org,
        external_id=external_id,
        start_lat=DEPOT[0],
        start_lon=DEPOT[1],
        shift_start=SHIFT_START,
        shift_end=SHIFT_START + timedelta(hours=4),
        capacity=[10],
    )


def _rush_history(sessions: sessionmaker[Session], org: str, days: int = 6) -> None:
    """Two vans' dispatched routes from 08:00 local on each past day, twelve stops each, and
    their arrived / departed events: drives leaving 08:00-10:00 took 1.6x their plan."""
    with transaction(sessions) as session:
        for v in range(2):
            van = _van(org, f"past-{v}")
            session.add(van)
            session.flush()
            for d in range(1, days + 1):
                start = SHIFT_START - timedelta(days=d)
                planned = actual = start
                stops = []
                for k in range(12):
                    drive_s = 300.0 + 60.0 * ((k + 3 * v + d) % 10)
                    order = OrderRow(
                        organisation_id=org,
                        external_id=f"past-{d}-{v}-{k}",
                        lat=PLACES[0][0],
                        lon=PLACES[0][1],
                        service_s=SERVICE_S,
                        status="delivered",
                        tracking_token=f"past-{d}-{v}-{k}",
                    )
                    session.add(order)
                    session.flush()
                    arrival = planned + timedelta(seconds=drive_s)
                    planned = arrival + timedelta(seconds=SERVICE_S)
                    stops.append(
                        {
                            "order_id": order.external_id,
                            "arrival": arrival.isoformat(),
                            "service_start": arrival.isoformat(),
                            "departure": planned.isoformat(),
                            "duration_from_previous_s": int(drive_s),
                            "distance_from_previous_m": int(drive_s * 8),
                        }
                    )
                    slow = RUSH_SLOW if actual.astimezone(LOCAL).hour in (8, 9) else 1.0
                    arrived = actual + timedelta(seconds=slow * drive_s)
                    actual = arrived + timedelta(seconds=SERVICE_S)
                    for kind, at in (("arrived", arrived), ("departed", actual)):
                        session.add(
                            EventRow(
                                organisation_id=org,
                                order_id=order.id,
                                vehicle_id=van.id,
                                kind=kind,
                                at=at,
                                data={},
                            )
                        )
                route = {
                    "vehicle_id": van.external_id,
                    "start": start.isoformat(),
                    "end": planned.isoformat(),
                    "stops": stops,
                    "breaks": [],
                }
                session.add(
                    PlanRow(
                        organisation_id=org,
                        status="succeeded",
                        result={"routes": [route], "unassigned": []},
                        dispatched_at=start - timedelta(hours=1),
                    )
                )


def _plan(
    sessions: sessionmaker[Session], org: str, graph: RoadGraph, snapper: Snapper
) -> dict[str, Any]:
    """Plan o0-o2 on v1 through a planning job, as the service runs it; the stored result."""
    runner = PlanRunner(sessions, graph, snapper, default_time_limit_s=1.0)
    try:
        with transaction(sessions) as session:
            request = {"time_limit_s": 1, "order_ids": ["o0", "o1", "o2"], "vehicle_ids": ["v1"]}
            plan = PlanRow(organisation_id=org, kind="plan", request=request)
            session.add(plan)
            session.flush()
            job = PlanJobRow(organisation_id=org, plan_id=plan.id)
            session.add(job)
            session.flush()
            job_id, plan_id = job.id, plan.id
        runner.run(job_id)
    finally:
        runner.shutdown()
    with sessions() as session:
        row = session.get(PlanRow, plan_id)
        assert row is not None
        assert row.status == "succeeded", row.error
        assert row.result is not None
        return dict(row.result)


def _route(result: dict[str, Any]) -> dict[str, Any]:
    [route] = [r for r in result["routes"] if r["stops"]]
    return dict(route)


def test_rush_hours_fitted_from_the_store_move_planned_arrivals_later(
    tmp_path: Path, helsinki: RoadGraph, helsinki_snapper: Snapper
) -> None:
    cold_sessions, cold_org = _store(tmp_path, "cold.db")
    cold = _plan(cold_sessions, cold_org, helsinki, helsinki_snapper)
    assert cold["time_of_day"] == {
        "hour_factors": [],
        "timezone": "UTC",
        "solve_factor": 1.0,
        "violations": [],
    }

    sessions, org = _store(tmp_path, "fitted.db")
    _rush_history(sessions, org)
    fitted = fit_fleet_prior(sessions, SHIFT_START).prior
    assert fitted.timezone == ZONE
    assert fitted.hour_factors[8] > 1.1
    result = _plan(sessions, org, helsinki, helsinki_snapper)
    assert result["time_of_day"]["hour_factors"] == list(fitted.hour_factors)
    assert result["time_of_day"]["violations"] == []

    route, before = _route(result), _route(cold)
    t = datetime.fromisoformat
    assert route["start"] == before["start"]
    assert [s["order_id"] for s in route["stops"]] == [s["order_id"] for s in before["stops"]]
    for stop, was in zip(route["stops"], before["stops"], strict=True):
        assert stop["duration_from_previous_s"] == was["duration_from_previous_s"]  # the road's
        assert t(stop["arrival"]) > t(was["arrival"])
    # Leg by leg: the road's drive times the fitted factor of the local hour it left in.
    left = t(route["start"])
    for stop in route["stops"]:
        factor = fitted.hour_factors[left.astimezone(LOCAL).hour]
        drive_s = (t(stop["arrival"]) - left).total_seconds()
        assert drive_s == round(stop["duration_from_previous_s"] * factor)
        left = t(stop["departure"])

    # The window told at dispatch scales the same road drives by the same hours: it agrees
    # with the plan (were the plan's drives already scaled, the hour would count twice).
    hours_only = EtaParams(prior=FleetPrior(hour_factors=fitted.hour_factors, timezone=ZONE))
    etas = plan_windows("v1", "plan", route, {}, SHIFT_START - timedelta(hours=1), hours_only)
    for eta, stop in zip(etas, route["stops"], strict=True):
        assert abs(eta.eta_s - t(stop["arrival"]).timestamp()) <= 2.0

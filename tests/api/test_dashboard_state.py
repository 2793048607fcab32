"""The dispatcher dashboard's state (:func:`api.dashboard_state.dashboard_state`) checked
directly, on a day built row by row, and the lateness rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from api.dashboard_state import dashboard_state, lateness
from store.db import make_engine, session_factory, transaction
from store.schema import (
    EventRow,
    OrderRow,
    Organisation,
    OutboxRow,
    PlanRouteRow,
    PlanRow,
    PlanStopRow,
    ProgressRow,
    VehicleRow,
)
from tests.api.service import Service

ROME = ZoneInfo("Europe/Rome")


def _at(hh_mm: str, day: str = "2030-06-15") -> datetime:
    """A Rome wall-clock time on the test day."""
    return datetime.fromisoformat(f"{day}T{hh_mm}").replace(tzinfo=ROME)


def _routes_geojson(lines: dict[str, list[tuple[float, float]]]) -> dict[str, Any]:
    """The plan's GeoJSON as the planner writes it: a feature per vehicle (your id for it),
    coordinates [lon, lat]."""
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": "LineString", "coordinates": [[lon, lat] for lat, lon in pts]},
                "properties": {"vehicle_id": vehicle_id},
            }
            for vehicle_id, pts in lines.items()
        ],
    }


def _build_day(url: str) -> str:
    """A Rome carrier on 15 June 2030, 09:00: yesterday's route, this morning's plan for V-A
    and V-B, a replan of V-A's rest at 08:00; outcomes, live ETAs, told windows and messages.
    Returns the organisation id."""
    engine = make_engine(url)
    try:
        with transaction(session_factory(engine)) as session:
            org = session.scalars(select(Organisation)).one()
            org.timezone = "Europe/Rome"
            oid = org.id

            def order(ext: str, status: str, window: tuple[str, str] | None = None) -> OrderRow:
                windows = []
                if window is not None:
                    windows = [
                        {"start": _at(window[0]).isoformat(), "end": _at(window[1]).isoformat()}
                    ]
                row = OrderRow(
                    organisation_id=oid,
                    external_id=ext,
                    lat=45.46,
                    lon=9.18,
                    windows=windows,
                    customer_ref=f"ref {ext}",
                    status=status,
                    tracking_token=f"token-{ext}-0123456789",
                    created_at=_at("06:00", "2030-06-10"),
                )
                session.add(row)
                return row

            orders = {
                "Y-1": order("Y-1", "delivered"),
                "A-1": order("A-1", "delivered", ("08:00", "10:00")),
                "A-2": order("A-2", "dispatched", ("08:00", "10:00")),
                "A-3": order("A-3", "dispatched", ("08:00", "12:00")),
                "A-4": order("A-4", "dispatched", ("09:00", "10:00")),
                "B-1": order("B-1", "dispatched", ("10:00", "12:00")),
                "U-1": order("U-1", "open", ("10:00", "11:00")),
                "U-2": order("U-2", "open", ("15:00", "16:00")),
                "U-3": order("U-3", "open", ("10:00", "11:00")),
                "U-4": order("U-4", "cancelled", ("10:00", "11:00")),
            }
            orders["U-3"].windows = [
                {
                    "start": _at("10:00", "2030-06-22").isoformat(),
                    "end": _at("11:00", "2030-06-22").isoformat(),
                }
            ]

            def vehicle(ext: str, driver: str) -> VehicleRow:
                row = VehicleRow(
                    organisation_id=oid,
                    external_id=ext,
                    driver_first_name=driver,
                    start_lat=45.46,
                    start_lon=9.18,
                    shift_start=_at("07:00"),
                    shift_end=_at("17:00"),
                )
                session.add(row)
                return row

            va, vb = vehicle("V-A", "Lucia"), vehicle("V-B", "Marco")

            def plan(dispatched: datetime, **kw: Any) -> PlanRow:
                row = PlanRow(organisation_id=oid, status="succeeded", dispatched_at=dispatched)
                for k, v in kw.items():
                    setattr(row, k, v)
                session.add(row)
                return row

            yesterday = plan(_at("06:00", "2030-06-14"))
            morning = plan(
                _at("06:30"),
                geojson=_routes_geojson(
                    {"V-A": [(45.0, 9.0), (45.1, 9.1)], "V-B": [(45.2, 9.2), (45.3, 9.3)]}
                ),
                result={
                    "routes": [],
                    "unassigned": [
                        {"order_id": "U-1", "reason": "older reason", "marginal_cost": None}
                    ],
                },
            )
            replan = plan(
                _at("08:00"),
                kind="replan",
                geojson=_routes_geojson({"V-A": [(45.4, 9.4), (45.5, 9.5)]}),
                result={
                    "routes": [],
                    "unassigned": [
                        {"order_id": "U-1", "reason": "window unreachable", "marginal_cost": None}
                    ],
                },
            )
            cancelled = plan(_at("08:30"), status="cancelled")
            session.flush()

            def route(p: PlanRow, v: VehicleRow, start: datetime, stops: list[str]) -> None:
                row = PlanRouteRow(
                    plan_id=p.id,
                    vehicle_id=v.id,
                    start=start,
                    end=start + timedelta(hours=4),
                    distance_m=10_000,
                    duration_s=14_400,
                )
                session.add(row)
                session.flush()
                for seq, ext in enumerate(stops, start=1):
                    arrival = start + timedelta(minutes=30 * seq)
                    session.add(
                        PlanStopRow(
                            route_id=row.id,
                            seq=seq,
                            order_id=orders[ext].id,
                            arrival=arrival,
                            service_start=arrival,
                            departure=arrival + timedelta(minutes=3),
                            wait_s=0,
                        )
                    )

            route(yesterday, va, _at("08:00", "2030-06-14"), ["Y-1"])
            route(morning, va, _at("07:30"), ["A-1", "A-2", "A-3", "A-4"])
            route(morning, vb, _at("09:30"), ["B-1"])
            route(replan, va, _at("08:00"), ["A-2", "A-3", "A-4"])
            route(cancelled, vb, _at("08:30"), ["U-2"])

            def eta(ext: str, hh_mm: str, arrived: bool = False) -> list[object]:
                t = _at(hh_mm).timestamp()
                return [ext, t, t - 300, t + 600, t + 180, arrived]

            session.add(
                ProgressRow(
                    vehicle_id=va.id,
                    organisation_id=oid,
                    plan_id=replan.id,
                    last_fix_time=_at("08:58"),
                    last_lat=45.47,
                    last_lon=9.19,
                    state={
                        "etas": [
                            eta("A-2", "08:55", arrived=True),
                            eta("A-3", "09:40"),
                            eta("A-4", "10:20"),
                        ],
                        "stops": [
                            {
                                "order_id": "A-2",
                                "arrived_at": _at("08:55").isoformat(),
                                "departed_at": None,
                            },
                        ],
                    },
                )
            )
            session.add_all(
                [
                    EventRow(
                        organisation_id=oid,
                        order_id=orders["A-3"].id,
                        kind="window_told",
                        at=_at("06:30", "2030-06-14"),
                        data={"eta": _at("07:00").isoformat()},  # an old promise
                    ),
                    EventRow(
                        organisation_id=oid,
                        order_id=orders["A-3"].id,
                        kind="window_told",
                        at=_at("06:30"),
                        data={"eta": _at("09:30").isoformat()},
                    ),
                ]
            )

            def message(ext: str, status: str, created: datetime, **kw: Any) -> None:
                session.add(
                    OutboxRow(
                        organisation_id=oid,
                        order_id=orders[ext].id,
                        channel="sms",
                        trigger="window_broken",
                        dedupe_key=f"{ext}:{created}:{status}",
                        status=status,
                        due_at=created,
                        created_at=created,
                        **kw,
                    )
                )

            message("A-1", "sent", _at("07:00"), sent_at=_at("07:01"))
            message("A-3", "dead", _at("08:40"), last_error="provider said no " * 40)
            yesterday_7 = _at("07:00", "2030-06-14")
            message("Y-1", "sent", yesterday_7, sent_at=yesterday_7)
    finally:
        engine.dispose()
    return oid


@pytest.mark.integration
def test_state_of_a_day(service: Service) -> None:
    """Statuses, lateness (window and told), the replan superseding the morning route, the
    Rome day (yesterday's route left out), unassigned orders with reasons and the feed."""
    organisation_id = _build_day(service.url)
    engine = make_engine(service.url)
    try:
        with session_factory(engine)() as session:
            state = dashboard_state(session, organisation_id, _at("09:00"))
            # 01:30 in Rome is already the 15th, though still the 14th in UTC.
            late_night = dashboard_state(session, organisation_id, _at("01:30"))
    finally:
        engine.dispose()
    assert state["day"] == late_night["day"] == "2030-06-15"
    assert state["timezone"] == "Europe/Rome"

    va, vb = state["vehicles"]
    assert (va["id"], va["driver"], va["lat"], va["lon"]) == ("V-A", "Lucia", 45.47, 9.19)
    assert va["last_fix"] == _at("08:58").astimezone(UTC).isoformat()
    assert va["line"] == [[45.4, 9.4], [45.5, 9.5]]  # the replan's, not the morning's
    assert [(s["order"], s["status"]) for s in va["stops"]] == [
        ("A-1", "delivered"),  # kept from the morning route: done before the replan
        ("A-2", "arrived"),
        ("A-3", "next"),
        ("A-4", "planned"),
    ]
    a3 = va["stops"][2]
    assert (a3["late"], a3["late_min"], a3["late_reasons"]) == (True, 10, ["told"])
    a4 = va["stops"][3]
    assert (a4["late"], a4["late_min"], a4["late_reasons"]) == (True, 20, ["window"])
    assert a4["eta"] == _at("10:20").astimezone(UTC).isoformat()
    assert a4["time_windows"] == [
        [_at("09:00").astimezone(UTC).isoformat(), _at("10:00").astimezone(UTC).isoformat()]
    ]
    assert not va["stops"][1]["late"]
    assert (va["stops_done"], va["stops_total"]) == (1, 4)

    # V-B reports no position yet: planned stop, no live ETA; its cancelled plan is ignored.
    assert (vb["id"], vb["lat"], vb["last_fix"]) == ("V-B", None, None)
    assert vb["line"] == [[45.2, 9.2], [45.3, 9.3]]
    (b1,) = vb["stops"]
    assert (b1["order"], b1["status"], b1["eta"], b1["late"]) == ("B-1", "planned", None, False)
    assert b1["planned_arrival"] == _at("10:00").astimezone(UTC).isoformat()

    assert [(u["order"], u["reason"]) for u in state["unassigned"]] == [
        ("U-1", "window unreachable"),  # the newest plan's reason
        ("U-2", "not planned yet"),
    ]  # U-3 is due next week, U-4 is cancelled

    feed = state["feed"]
    assert [(f["order"], f["status"]) for f in feed] == [
        ("A-3", "dead"),
        ("A-1", "sent"),
        ("Y-1", "sent"),
    ]
    assert len(feed[0]["last_error"]) == 300
    assert feed[0]["ref"] == "ref A-3"

    assert state["counts"] == {
        "vehicles": 2,
        "stops_total": 5,
        "stops_done": 1,
        "stops_delivered": 1,
        "stops_failed": 0,
        "stops_late": 2,
        "unassigned": 2,
        "messages_sent": 1,
        "messages_failed": 1,
    }


def _add_night_route(url: str, organisation_id: str, vehicle: str, outcomes: list[str]) -> None:
    """A van sent out at 19:00 on the 14th (planned back by 23:00), its progress on that plan,
    its stops' orders in ``outcomes``; the last one's live ETA is 00:40 on the 15th."""
    engine = make_engine(url)
    try:
        with transaction(session_factory(engine)) as session:
            van = VehicleRow(
                organisation_id=organisation_id,
                external_id=vehicle,
                driver_first_name="Night",
                start_lat=45.46,
                start_lon=9.18,
                shift_start=_at("18:00", "2030-06-14"),
                shift_end=_at("23:30", "2030-06-14"),
            )
            night = PlanRow(
                organisation_id=organisation_id,
                status="succeeded",
                dispatched_at=_at("18:30", "2030-06-14"),
            )
            session.add_all([van, night])
            session.flush()
            start = _at("19:00", "2030-06-14")
            route = PlanRouteRow(
                plan_id=night.id,
                vehicle_id=van.id,
                start=start,
                end=start + timedelta(hours=4),
                distance_m=10_000,
                duration_s=14_400,
            )
            session.add(route)
            session.flush()
            for seq, status in enumerate(outcomes, start=1):
                order = OrderRow(
                    organisation_id=organisation_id,
                    external_id=f"{vehicle}-{seq}",
                    lat=45.46,
                    lon=9.18,
                    windows=[],
                    status=status,
                    tracking_token=f"token-{vehicle}-{seq}-0123456789",
                    created_at=_at("06:00", "2030-06-14"),
                )
                session.add(order)
                session.flush()
                arrival = start + timedelta(hours=seq)
                session.add(
                    PlanStopRow(
                        route_id=route.id,
                        seq=seq,
                        order_id=order.id,
                        arrival=arrival,
                        service_start=arrival,
                        departure=arrival + timedelta(minutes=3),
                        wait_s=0,
                    )
                )
            last = _at("00:40").timestamp()
            session.add(
                ProgressRow(
                    vehicle_id=van.id,
                    organisation_id=organisation_id,
                    plan_id=night.id,
                    last_fix_time=_at("00:25"),
                    last_lat=45.47,
                    last_lon=9.19,
                    state={"etas": [[f"{vehicle}-{len(outcomes)}", last, last, last, last, False]]},
                )
            )
    finally:
        engine.dispose()


@pytest.mark.integration
def test_a_van_late_past_midnight_stays_until_it_finishes(service: Service) -> None:
    """A route planned to end before midnight and still driven after it stays on the new day's
    dashboard while a stop is left; a night route already finished does not."""
    organisation_id = _build_day(service.url)
    _add_night_route(service.url, organisation_id, "V-N", ["delivered", "dispatched"])
    _add_night_route(service.url, organisation_id, "V-F", ["delivered", "failed"])
    engine = make_engine(service.url)
    try:
        with session_factory(engine)() as session:
            state = dashboard_state(session, organisation_id, _at("00:30"))
        assert state["day"] == "2030-06-15"
        by_id = {v["id"]: v for v in state["vehicles"]}
        assert sorted(by_id) == ["V-A", "V-B", "V-N"]
        van = by_id["V-N"]
        assert [(s["order"], s["status"]) for s in van["stops"]] == [
            ("V-N-1", "delivered"),
            ("V-N-2", "next"),
        ]
        assert van["stops"][1]["eta"] == _at("00:40").astimezone(UTC).isoformat()

        with transaction(session_factory(engine)) as session:
            last = session.scalars(select(OrderRow).where(OrderRow.external_id == "V-N-2")).one()
            last.status = "delivered"
        with session_factory(engine)() as session:
            done = dashboard_state(session, organisation_id, _at("00:45"))
        assert sorted(v["id"] for v in done["vehicles"]) == ["V-A", "V-B"]
    finally:
        engine.dispose()


def test_lateness_rules() -> None:
    t = datetime(2030, 6, 15, 10, 0, tzinfo=UTC)
    window = [(t - timedelta(hours=1), t)]
    assert lateness(t.timestamp(), window, None) == (0, [])
    assert lateness(t.timestamp() + 20, window, None) == (0, [])  # under a minute
    assert lateness(t.timestamp() + 600, window, None) == (10, ["window"])
    # Between two windows the vehicle waits for the second: not late.
    two = [*window, (t + timedelta(hours=2), t + timedelta(hours=3))]
    assert lateness(t.timestamp() + 600, two, None) == (0, [])
    # Against what was told: from 5 minutes on, as the tracking page says.
    assert lateness(t.timestamp(), [], t - timedelta(minutes=4)) == (0, [])
    assert lateness(t.timestamp(), [], t - timedelta(minutes=5)) == (5, ["told"])
    assert lateness(t.timestamp() + 600, window, t - timedelta(minutes=30)) == (
        40,
        ["window", "told"],
    )

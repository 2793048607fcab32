"""``lastmile report``: the numbers behind each plot, exactly, and PNG files that open."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from lastmile.cli import app
from lastmile.report import (
    HorizonError,
    arrival_delays,
    eta_error_by_horizon,
    messages_per_order,
    road_segments,
    select_plan,
    write_report,
)
from routing.road_graph import RoadGraph
from store.db import make_engine, session_factory, transaction, upgrade
from store.repo import create_organisation
from store.schema import (
    EtaRow,
    EventRow,
    OrderRow,
    OutboxRow,
    PlanRouteRow,
    PlanRow,
    PlanStopRow,
    VehicleRow,
)

runner = CliRunner()
T0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
#: Two vans in central Helsinki (the default network), their stops in sequence as (lat, lon).
ROUTES = {
    "V-1": [("A1", 60.1690, 24.9380), ("A2", 60.1660, 24.9450), ("A3", 60.1630, 24.9400)],
    "V-2": [("B1", 60.1710, 24.9460), ("B2", 60.1720, 24.9520)],
}
DEPOT = (60.1675, 24.9410)


@dataclass
class Day:
    url: str
    plan_id: str
    older_plan_id: str
    empty_plan_id: str


def _planned(seq: int) -> datetime:
    return T0 + timedelta(minutes=30 * (seq + 1))


def _plan(org: str, *, dispatched_at: datetime | None, created_at: datetime) -> PlanRow:
    features = [
        {
            "type": "Feature",
            "geometry": {
                "type": "LineString",
                "coordinates": [
                    [DEPOT[1], DEPOT[0]],
                    *([lon, lat] for _, lat, lon in stops),
                    [DEPOT[1], DEPOT[0]],
                ],
            },
            "properties": {"vehicle_id": vehicle, "order_ids": [o for o, _, _ in stops]},
        }
        for vehicle, stops in ROUTES.items()
    ]
    return PlanRow(
        organisation_id=org,
        status="succeeded",
        geojson={"type": "FeatureCollection", "features": features},
        created_at=created_at,
        dispatched_at=dispatched_at,
    )


def build_day(url: str) -> Day:
    """Two dispatched plans of the same orders (the later one is the default), a newer one
    solved but not dispatched, and one with nothing in it; arrivals, ETAs and messages for
    the later dispatched plan."""
    upgrade(url)
    engine = make_engine(url)
    try:
        org, _ = create_organisation(session_factory(engine), "Test carrier", "UTC")
        with transaction(session_factory(engine)) as session:
            orders = {
                order: OrderRow(
                    organisation_id=org,
                    external_id=order,
                    lat=lat,
                    lon=lon,
                    tracking_token=f"token-{order}",
                )
                for stops in ROUTES.values()
                for order, lat, lon in stops
            }
            vehicles = {
                name: VehicleRow(
                    organisation_id=org,
                    external_id=name,
                    start_lat=DEPOT[0],
                    start_lon=DEPOT[1],
                    shift_start=T0,
                    shift_end=T0 + timedelta(hours=8),
                )
                for name in ROUTES
            }
            older = _plan(org, dispatched_at=T0 - timedelta(hours=1), created_at=T0)
            plan = _plan(org, dispatched_at=T0, created_at=T0)
            newer = _plan(org, dispatched_at=None, created_at=T0 + timedelta(hours=1))
            empty = PlanRow(organisation_id=org, status="succeeded", created_at=T0)
            session.add_all([*orders.values(), *vehicles.values(), older, plan, newer, empty])
            session.flush()
            for row in (older, plan):
                for name, stops in ROUTES.items():
                    route = PlanRouteRow(
                        plan_id=row.id,
                        vehicle_id=vehicles[name].id,
                        start=T0,
                        end=T0 + timedelta(hours=3),
                        distance_m=10_000,
                        duration_s=10_800,
                    )
                    session.add(route)
                    session.flush()
                    session.add_all(
                        PlanStopRow(
                            route_id=route.id,
                            seq=seq,
                            order_id=orders[order].id,
                            arrival=_planned(seq),
                            service_start=_planned(seq),
                            departure=_planned(seq) + timedelta(minutes=3),
                            wait_s=0,
                        )
                        for seq, (order, _, _) in enumerate(stops)
                    )
            session.add_all(_live_rows(org, orders, vehicles))
        return Day(url, plan.id, older.id, empty.id)
    finally:
        engine.dispose()


def _live_rows(
    org: str, orders: dict[str, OrderRow], vehicles: dict[str, VehicleRow]
) -> list[object]:
    """A1 arrives 5 min late, A2 2 min early (and again later: the first counts), B1 on time;
    A3 and B2 not yet. ETAs for A1 in every horizon bin (and one after it arrived), one for A2
    and one for A3 (not arrived: no error yet). Messages: A1 two sent and one pending, A2 one
    sent, A3 one failed."""
    a1, a2, a3, b1 = (orders[o].id for o in ("A1", "A2", "A3", "B1"))
    a1_at = _planned(0) + timedelta(minutes=5)
    a2_at = _planned(1) - timedelta(minutes=2)

    def arrived(order: str, at: datetime, vehicle: str) -> EventRow:
        return EventRow(
            organisation_id=org,
            order_id=order,
            vehicle_id=vehicles[vehicle].id,
            kind="arrived",
            at=at,
            data={"inferred": False},
        )

    def eta(order: str, actual: datetime, before_min: float, error_s: float) -> EtaRow:
        value = actual + timedelta(seconds=error_s)
        return EtaRow(
            order_id=order,
            computed_at=actual - timedelta(minutes=before_min),
            eta=value,
            window_start=value - timedelta(minutes=15),
            window_end=value + timedelta(minutes=15),
        )

    def message(order: str, key: str, status: str) -> OutboxRow:
        return OutboxRow(
            organisation_id=org,
            order_id=order,
            channel="sms",
            trigger="eta",
            dedupe_key=key,
            status=status,
            due_at=T0,
        )

    return [
        arrived(a1, a1_at, "V-1"),
        arrived(a2, a2_at, "V-1"),
        arrived(a2, a2_at + timedelta(minutes=40), "V-1"),
        arrived(b1, _planned(0), "V-2"),
        EventRow(organisation_id=org, order_id=a3, kind="departed", at=T0),
        eta(a1, a1_at, 10, 60),
        eta(a1, a1_at, 20, -120),
        eta(a1, a1_at, 45, 300),
        eta(a1, a1_at, 90, 0),
        eta(a1, a1_at, 200, 600),
        eta(a1, a1_at, -1, 999),
        eta(a2, a2_at, 5, 180),
        eta(a3, _planned(2), 5, 700),
        message(a1, "a1-1", "sent"),
        message(a1, "a1-2", "sent"),
        message(a1, "a1-3", "pending"),
        message(a2, "a2-1", "sent"),
        message(a3, "a3-1", "failed"),
    ]


@pytest.fixture
def day(database_url: str) -> Day:
    return build_day(database_url)


@pytest.fixture
def session(day: Day) -> Iterator[Session]:
    engine = make_engine(day.url)
    with session_factory(engine)() as s:
        yield s
    engine.dispose()


def assert_png(path: Path, *, drawn: bool) -> None:
    """A valid PNG of a real size; ``drawn``: it has coloured marks (data plotted), else it is
    all grey (the "no data yet" figure)."""
    assert path.is_file(), path
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC), path
    assert len(data) > 3_000, (path, len(data))
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.width >= 300
        assert image.height >= 200
        rgb = np.asarray(image.convert("RGB"), dtype=np.int16)
    coloured = (rgb.max(axis=2) - rgb.min(axis=2) > 60).mean()
    if drawn:
        assert coloured > 0.005, (path, coloured)
    else:
        assert coloured == 0, (path, coloured)


def test_default_plan_is_the_latest_dispatched(session: Session, day: Day) -> None:
    """The latest dispatch wins over an older dispatch and a newer plan never dispatched; a
    plan asked for by id is that plan."""
    assert select_plan(session).id == day.plan_id
    assert select_plan(session, day.older_plan_id).id == day.older_plan_id


def test_arrival_delays_per_stop(session: Session, day: Day) -> None:
    """Actual minus planned, the first arrival of a stop reached twice, None before one."""
    delays = arrival_delays(session, day.plan_id)
    assert [(d.vehicle_id, d.seq, d.order_id, d.delay_s) for d in delays] == [
        ("V-1", 0, "A1", 300.0),
        ("V-1", 1, "A2", -120.0),
        ("V-1", 2, "A3", None),
        ("V-2", 0, "B1", 0.0),
        ("V-2", 1, "B2", None),
    ]
    assert delays[0].planned == _planned(0)


def test_eta_error_by_horizon(session: Session, day: Day) -> None:
    """Each ETA in its bin by minutes before the actual arrival; ETAs after the arrival and of
    orders not arrived are not scored; the plan's own error over the same ETAs beside it."""
    assert eta_error_by_horizon(session, day.plan_id) == [
        HorizonError("0-15", 120.0, 2, 210.0),
        HorizonError("15-30", 120.0, 1, 300.0),
        HorizonError("30-60", 300.0, 1, 300.0),
        HorizonError("60-120", 0.0, 1, 300.0),
        HorizonError("120+", 600.0, 1, 300.0),
    ]


def test_messages_per_order_counts_only_sent(session: Session, day: Day) -> None:
    assert messages_per_order(session, day.plan_id) == {"A1": 2, "A2": 1, "A3": 0, "B1": 0, "B2": 0}


def test_write_report_draws_every_png(
    session: Session, day: Day, tmp_path: Path, helsinki: RoadGraph
) -> None:
    plan = select_plan(session)
    report = write_report(session, plan, tmp_path / "out", helsinki)
    assert [p.name for p in report.paths] == [
        "routes.png",
        "arrival_delays.png",
        "eta_error_by_horizon.png",
        "messages_per_order.png",
        "first_window_hits.png",
        "late_notice_lead_times.png",
        "coverage_by_horizon.png",
    ]
    # This day's messages carry no window: the first-window and lead-time plots say so.
    for path in report.paths:
        no_window = path.name in ("first_window_hits.png", "late_notice_lead_times.png")
        assert_png(path, drawn=not no_window)
    assert report.summary == (
        f"plan {day.plan_id} (dispatched 2026-11-26 08:00 UTC): 2 routes, 5 stops, 3 arrived, "
        "median delay +0.0 min; 6 ETAs scored, ETA MAE 3.5 min; 3 messages sent to 2 of 5 orders"
    )


def test_road_segments_are_clipped_to_the_box(helsinki: RoadGraph) -> None:
    """Only edges near the routes are drawn, each two-way road once."""
    segments = road_segments(helsinki, (24.930, 60.160, 24.960, 60.175))
    assert 0 < len(segments) < helsinki.edge_count
    for coords in segments:
        lon, lat = coords[:, 0], coords[:, 1]
        assert ((lon >= 24.930) & (lon <= 24.960) & (lat >= 60.160) & (lat <= 60.175)).any()
    assert road_segments(helsinki, (9.0, 45.0, 9.1, 45.1)) == []


def test_a_plan_without_data_still_writes_every_plot(
    session: Session, day: Day, tmp_path: Path
) -> None:
    """Nothing planned, arrived or sent yet: each plot says so instead of failing."""
    plan = select_plan(session, day.empty_plan_id)
    report = write_report(session, plan, tmp_path, None)
    assert len(report.paths) == 7
    for path in report.paths:
        assert_png(path, drawn=False)
    assert "0 routes, 0 stops, 0 arrived; 0 ETAs scored" in report.summary


def test_cli_report_writes_the_plots_and_a_summary(day: Day, tmp_path: Path) -> None:
    out = tmp_path / "report"
    result = runner.invoke(app, ["report", "--database-url", day.url, "--out", str(out)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    names = ["routes", "arrival_delays", "eta_error_by_horizon", "messages_per_order"]
    assert lines[:4] == [str(out / f"{name}.png") for name in names]
    for name in names:
        assert_png(out / f"{name}.png", drawn=True)
    assert lines[7].startswith(f"plan {day.plan_id} (dispatched")
    assert len(lines) == 8


def test_cli_report_of_a_chosen_plan(day: Day, tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["report", "--database-url", day.url, "--plan", day.older_plan_id, "--out", str(tmp_path)],
    )
    assert result.exit_code == 0, result.output
    assert f"plan {day.older_plan_id} (dispatched 2026-11-26 07:00 UTC)" in result.stdout
    # Arrivals belong to orders, not plans: the same orders arrived whichever plan is shown.
    assert "3 arrived" in result.stdout


def test_cli_report_errors_are_one_line(day: Day, tmp_path: Path) -> None:
    """An unknown plan, an empty store and a missing SQLite file: exit 2, no traceback."""
    unknown = runner.invoke(app, ["report", "--database-url", day.url, "--plan", "nope"])
    assert unknown.exit_code == 2
    assert "no plan 'nope'" in unknown.output
    empty_url = f"sqlite:///{tmp_path / 'empty.db'}"
    upgrade(empty_url)
    empty = runner.invoke(app, ["report", "--database-url", empty_url, "--out", str(tmp_path)])
    assert empty.exit_code == 2
    assert "no dispatched or solved plan" in empty.output
    missing = tmp_path / "missing.db"
    gone = runner.invoke(app, ["report", "--database-url", f"sqlite:///{missing}"])
    assert gone.exit_code == 2
    assert "no database at" in gone.output
    assert not missing.exists()
    for result in (unknown, empty, gone):
        assert "Traceback" not in result.output


def test_report_has_help() -> None:
    result = runner.invoke(app, ["report", "--help"])
    assert result.exit_code == 0
    assert "--plan" in result.output

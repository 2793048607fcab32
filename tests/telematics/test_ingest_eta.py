"""The ingester on a dispatched route: ETAs once per batch, kept with history and delay
events; a driver's event in the middle of a batch, or from another writer, is never lost."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from store.db import transaction
from store.schema import EtaRow, EventRow, OrderRow, ProgressRow, VehicleRow
from telematics.ingest import Ingester, record_driver_event
from tests.telematics.conftest import LINE_LAT, LINE_LON, store_with_route

NOW = datetime.now(UTC).replace(microsecond=0)
T0 = NOW - timedelta(minutes=10)


def fix(ingester: Ingester, seconds: float, dlon: float) -> str:
    payload = {
        "time": (T0 + timedelta(seconds=seconds)).isoformat(),
        "lat": LINE_LAT,
        "lon": LINE_LON + dlon,
    }
    return ingester.fleet_message("fleet/van-1/position", json.dumps(payload).encode()).status


def state(ingester: Ingester) -> dict[str, object]:
    with ingester.sessions() as session:
        row = session.scalar(select(ProgressRow))
        assert row is not None
        return dict(row.state)


def test_a_batch_recomputes_etas_once_and_keeps_them(tmp_path: Path) -> None:
    """Ten fixes in one batch: every stop gets an ETA, each stop one history row (not ten)
    and one first-window event."""
    sessions, engine = store_with_route(tmp_path, T0)
    ingester = Ingester(sessions, clock=lambda: NOW)
    with ingester.batch():
        for k in range(10):
            assert fix(ingester, 2 * k, 0.00001 * k) == "applied"
    etas = state(ingester)["etas"]
    assert isinstance(etas, list)
    assert [e[0] for e in etas] == ["o1", "o2", "o3"]
    assert all(e[1] >= NOW.timestamp() for e in etas)
    with sessions() as session:
        assert len(session.scalars(select(EtaRow)).all()) == 3
        told = session.scalars(select(EventRow).where(EventRow.kind == "window_told")).all()
        assert len(told) == 3
    engine.dispose()


def test_driver_event_in_the_middle_of_a_batch(tmp_path: Path) -> None:
    """Fixes, a driver's "delivered" for the first stop, more fixes, one batch: the delivery
    stands and the ETAs skip that stop."""
    sessions, engine = store_with_route(tmp_path, T0)
    ingester = Ingester(sessions, clock=lambda: NOW)
    event = {"order_id": "o1", "kind": "delivered", "at": (T0 + timedelta(seconds=30)).isoformat()}
    with ingester.batch():
        fix(ingester, 0, 0.0)
        fix(ingester, 10, 0.0005)
        assert (
            ingester.driver_event_message("fleet/van-1/events", json.dumps(event).encode()).status
            == "applied"
        )
        fix(ingester, 40, 0.0025)
    stops = state(ingester)["stops"]
    assert isinstance(stops, list)
    assert stops[0]["departed_at"] is not None
    assert [e[0] for e in state(ingester)["etas"]] == ["o2", "o3"]  # type: ignore[union-attr]
    with sessions() as session:
        order = session.scalar(select(OrderRow).where(OrderRow.external_id == "o1"))
        assert order is not None
        assert order.status == "delivered"
    engine.dispose()


def test_another_writer_between_batches_is_seen(tmp_path: Path) -> None:
    """A driver event stored over HTTP between two batches: the ingester's cached state is
    stale, so it reads the row again instead of overwriting the event."""
    sessions, engine = store_with_route(tmp_path, T0)
    ingester = Ingester(sessions, clock=lambda: NOW)
    with ingester.batch():
        fix(ingester, 0, 0.0)
        fix(ingester, 10, 0.0005)
    with transaction(sessions) as session:
        vehicle = session.scalar(select(VehicleRow))
        order = session.scalar(select(OrderRow).where(OrderRow.external_id == "o1"))
        assert vehicle is not None
        assert order is not None
        record_driver_event(session, vehicle, order, "failed", "nobody home", NOW)
    with ingester.batch():
        fix(ingester, 20, 0.0015)
    stops = state(ingester)["stops"]
    assert isinstance(stops, list)
    assert stops[0]["departed_at"] is not None
    assert [e[0] for e in state(ingester)["etas"]] == ["o2", "o3"]  # type: ignore[union-attr]
    engine.dispose()


def test_delay_events_and_outcomes_reach_the_outbox(tmp_path: Path) -> None:
    """In the transaction that stores them: the first window goes out as "out for delivery",
    the stops within reach as "nearly there", a driver's delivery as "delivered" — each once,
    however often the same facts come again."""
    from notify.outbox import Outbox
    from store.schema import OutboxRow

    noon = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)  # outside the default quiet hours
    start = noon - timedelta(minutes=10)
    sessions, engine = store_with_route(tmp_path, start)
    ingester = Ingester(sessions, clock=lambda: noon, outbox=Outbox())

    def at(seconds: float, dlon: float) -> None:
        payload = {
            "time": (start + timedelta(seconds=seconds)).isoformat(),
            "lat": LINE_LAT,
            "lon": LINE_LON + dlon,
        }
        ingester.fleet_message("fleet/van-1/position", json.dumps(payload).encode())

    with ingester.batch():
        at(0, 0.0)
    with ingester.batch():
        at(5, 0.00001)
    delivered = {"order_id": "o1", "kind": "delivered", "at": noon.isoformat()}
    ingester.driver_event_message("fleet/van-1/events", json.dumps(delivered).encode())
    ingester.driver_event_message("fleet/van-1/events", json.dumps(delivered).encode())
    with sessions() as session:
        rows = session.scalars(select(OutboxRow)).all()
    triggers = sorted((r.trigger, r.channel, r.status) for r in rows)
    assert triggers.count(("out_for_delivery", "email", "pending")) == 3
    assert triggers.count(("delivered", "email", "pending")) == 1
    # Every stop is within three stops of the van: "nearly there" for each, once.
    assert triggers.count(("stops_away", "email", "pending")) == 3
    assert len(triggers) == 7
    engine.dispose()


def test_a_new_plan_keeps_what_customers_were_told(tmp_path: Path) -> None:
    """Re-dispatched on a new plan: progress starts again, but the windows told stand (no
    second first-window, versions keep rising)."""
    from store.schema import PlanRow

    sessions, engine = store_with_route(tmp_path, T0)
    ingester = Ingester(sessions, clock=lambda: NOW)
    with ingester.batch():
        fix(ingester, 0, 0.0)
    told_before = state(ingester)["told"]
    with transaction(sessions) as session:
        vehicle = session.scalar(select(VehicleRow))
        assert vehicle is not None
        old = session.get(PlanRow, vehicle.active_plan_id)
        assert old is not None
        again = PlanRow(
            organisation_id=old.organisation_id,
            status="succeeded",
            result=old.result,
            geojson=old.geojson,
        )
        session.add(again)
        session.flush()
        vehicle.active_plan_id = again.id
        new_plan = again.id
    with ingester.batch():
        fix(ingester, 10, 0.00001)
    after = state(ingester)
    assert after["plan_id"] == new_plan  # progress is the new plan's
    assert set(after["told"]) == set(told_before)  # type: ignore[arg-type]
    with sessions() as session:
        told = session.scalars(select(EventRow).where(EventRow.kind == "window_told")).all()
    assert len(told) == 3
    engine.dispose()

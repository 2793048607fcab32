"""A vehicle that goes quiet (a dead phone, a breakdown) no longer freezes its customers' ETAs:
the silence timer's tick recomputes them as time passes, the vehicle taken to stand where it
was last seen; a window that breaks is told as for a fix (a ``window_broken`` event, a
customer message), and the dispatcher sees "no signal" (issue 21, item 4)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from api.dashboard_state import dashboard_state
from eta.delay import DelayParams
from notify.outbox import Outbox
from store.db import transaction
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
from telematics.ingest import Ingester
from tests.telematics.conftest import LINE_LAT, LINE_LON, store_with_route

NOON = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)  # outside the default quiet hours
START = NOON - timedelta(minutes=1)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def dispatched_route(tmp_path: Path) -> tuple[sessionmaker[Session], Engine, str]:
    """The conftest's three-stop route, dispatched (a plan route and its stops, as the
    dashboard reads them). Returns (sessions, engine, organisation id)."""
    sessions, engine = store_with_route(tmp_path, START)
    with transaction(sessions) as session:
        plan = session.scalars(select(PlanRow)).one()
        vehicle = session.scalars(select(VehicleRow)).one()
        plan.dispatched_at = START - timedelta(minutes=5)
        route = PlanRouteRow(
            plan_id=plan.id,
            vehicle_id=vehicle.id,
            start=START,
            end=START + timedelta(minutes=10),
            distance_m=333,
            duration_s=600,
        )
        session.add(route)
        session.flush()
        assert plan.result is not None
        orders = {o.external_id: o.id for o in session.scalars(select(OrderRow))}
        for seq, stop in enumerate(plan.result["routes"][0]["stops"]):
            session.add(
                PlanStopRow(
                    route_id=route.id,
                    seq=seq,
                    order_id=orders[stop["order_id"]],
                    arrival=datetime.fromisoformat(stop["arrival"]),
                    service_start=datetime.fromisoformat(stop["service_start"]),
                    departure=datetime.fromisoformat(stop["departure"]),
                    wait_s=0,
                )
            )
        org_id = session.scalars(select(Organisation.id)).one()
    return sessions, engine, org_id


def fix(ingester: Ingester, at: datetime, dlon: float) -> str:
    payload = {"time": at.isoformat(), "lat": LINE_LAT, "lon": LINE_LON + dlon}
    return ingester.fleet_message("fleet/van-1/position", json.dumps(payload).encode()).status


def stored(sessions: sessionmaker[Session]) -> dict[str, Any]:
    with sessions() as session:
        row = session.scalars(select(ProgressRow)).one()
        return dict(row.state)


def etas(sessions: sessionmaker[Session]) -> dict[str, float]:
    return {e[0]: e[1] for e in stored(sessions)["etas"]}


def events(sessions: sessionmaker[Session], kind: str) -> list[EventRow]:
    with sessions() as session:
        return list(session.scalars(select(EventRow).where(EventRow.kind == kind)))


def outbox(sessions: sessionmaker[Session], trigger: str) -> list[OutboxRow]:
    with sessions() as session:
        return list(session.scalars(select(OutboxRow).where(OutboxRow.trigger == trigger)))


def vehicle_on_dashboard(
    sessions: sessionmaker[Session], org_id: str, now: datetime
) -> dict[str, Any]:
    with sessions() as session:
        [vehicle] = dashboard_state(session, org_id, now)["vehicles"]
    assert isinstance(vehicle, dict)
    return vehicle


def driving(tmp_path: Path) -> tuple[Ingester, Clock, sessionmaker[Session], Engine, str]:
    """The van drives off towards its first stop at noon, fixes every 10 s, its customers
    told their first windows."""
    sessions, engine, org_id = dispatched_route(tmp_path)
    clock = Clock(NOON)
    ingester = Ingester(sessions, clock=clock, outbox=Outbox())
    for k, dlon in enumerate((0.0002, 0.0006, 0.001)):
        clock.now = NOON + timedelta(seconds=10 * k)
        with ingester.batch():
            assert fix(ingester, clock.now, dlon) == "applied"
    assert len(events(sessions, "window_told")) == 3
    return ingester, clock, sessions, engine, org_id


def test_a_silent_vehicle_breaks_its_windows_on_the_timer(tmp_path: Path) -> None:
    """Silent past every told window: without a tick nothing moves (as before the timer);
    the tick makes every ETA later, breaks each window (a window_broken event and a queued
    message per customer) and the dashboard says "no signal"."""
    ingester, clock, sessions, engine, org_id = driving(tmp_path)
    last_fix = clock.now
    before = etas(sessions)
    told = stored(sessions)["told"]
    assert set(before) == {"o1", "o2", "o3"}
    assert not vehicle_on_dashboard(sessions, org_id, clock.now)["no_signal"]

    clock.now = last_fix + timedelta(minutes=30)  # past the end of every told window
    assert all(t[3] < clock.now.timestamp() for t in told.values())
    # No fix, no tick: nothing is recomputed (what happened before the silence timer).
    assert etas(sessions) == before
    assert events(sessions, "window_broken") == []
    vehicle = vehicle_on_dashboard(sessions, org_id, clock.now)
    assert vehicle["no_signal"] is True  # the dispatcher sees it at once
    assert vehicle["last_fix_at"] == last_fix.isoformat()

    assert ingester.tick_silent(clock.now) == 1
    after = etas(sessions)
    assert all(after[o] > before[o] + 25 * 60 for o in before)
    # The van is where it was last seen: what is left of the leg starts now (the clamp to
    # now alone would have put the first stop at now, as if the leg had been driven).
    assert after["o1"] > clock.now.timestamp() + 1
    # A break is told once it has held DelayParams.break_persist_s: at once when that is 0,
    # else on the first tick after it.
    persist_s = DelayParams().break_persist_s
    if persist_s > 0:
        assert events(sessions, "window_broken") == []
        clock.now += timedelta(seconds=persist_s + 1)
        assert ingester.tick_silent(clock.now) == 1
    broken = events(sessions, "window_broken")
    assert len(broken) == 3
    assert all(e.data["late"] for e in broken)
    messages = outbox(sessions, "window_broken")
    with sessions() as session:
        orders = {o.id: o.external_id for o in session.scalars(select(OrderRow))}
    assert sorted(orders[m.order_id] for m in messages) == ["o1", "o2", "o3"]
    assert all(m.channel == "email" and m.status != "cancelled" for m in messages)
    # Told once: the next tick moves the ETAs on but breaks nothing new for a while.
    clock.now += timedelta(seconds=30)
    assert ingester.tick_silent() == 1
    assert len(events(sessions, "window_broken")) == 3
    assert etas(sessions)["o1"] >= after["o1"] + 29
    engine.dispose()


def test_a_fix_ends_the_silence(tmp_path: Path) -> None:
    """A vehicle heard from again is no longer silent: no tick touches it, no "no signal"."""
    ingester, clock, sessions, engine, org_id = driving(tmp_path)
    clock.now += timedelta(minutes=5)
    assert ingester.tick_silent() == 1
    assert vehicle_on_dashboard(sessions, org_id, clock.now)["no_signal"] is True
    assert fix(ingester, clock.now, 0.0012) == "applied"
    clock.now += timedelta(seconds=60)
    assert ingester.tick_silent() == 0
    assert vehicle_on_dashboard(sessions, org_id, clock.now)["no_signal"] is False
    engine.dispose()


def test_the_tick_leaves_alone_what_is_not_silent_on_a_route(tmp_path: Path) -> None:
    """Not yet silent, never reported, off its active plan, done with its route, or silent
    for longer than a working day: the tick recomputes none of them."""
    sessions, engine, _ = dispatched_route(tmp_path)
    clock = Clock(NOON)
    ingester = Ingester(sessions, clock=clock, outbox=Outbox())
    assert ingester.tick_silent() == 0  # no fix yet: nothing to recompute from
    with ingester.batch():
        fix(ingester, NOON, 0.0006)
    clock.now = NOON + timedelta(seconds=119)
    assert ingester.tick_silent() == 0  # under the threshold
    clock.now = NOON + timedelta(hours=13)
    assert ingester.tick_silent() == 0  # given up on
    clock.now = NOON + timedelta(minutes=5)
    assert ingester.tick_silent() == 1
    ingester.silent_after_s = None
    assert ingester.tick_silent() == 0  # silence switched off
    ingester.silent_after_s = 120.0
    with transaction(sessions) as session:
        session.scalars(select(VehicleRow)).one().active_plan_id = None
    assert ingester.tick_silent() == 0  # no active plan
    engine.dispose()


def test_a_vehicle_done_with_its_route_is_not_no_signal(tmp_path: Path) -> None:
    """Every stop served, then the phone off: no recompute, no "no signal"."""
    ingester, clock, sessions, engine, org_id = driving(tmp_path)
    for order_id in ("o1", "o2", "o3"):
        done = {"order_id": order_id, "kind": "delivered", "at": clock.now.isoformat()}
        payload = json.dumps(done).encode()
        assert ingester.driver_event_message("fleet/van-1/events", payload).status == "applied"
    clock.now += timedelta(minutes=10)
    assert ingester.tick_silent() == 0
    assert vehicle_on_dashboard(sessions, org_id, clock.now)["no_signal"] is False
    engine.dispose()

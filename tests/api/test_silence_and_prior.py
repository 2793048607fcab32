"""The running service (issue 21, items 4 and 7): its silence timer recomputes a quiet van's
ETAs on the service clock (the van shows "no signal" on the dashboard and in its progress),
and its ingester's ETA prior is fitted from the store's history, on start and again later."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from api.app import create_app
from api.settings import Settings
from eta.delay import DelayParams
from eta.live import plan_windows
from eta.params import EtaParams, FleetPrior
from store.db import make_engine, session_factory, upgrade
from store.repo import create_organisation
from store.schema import EventRow, OutboxRow
from tests.api.live_state import SimClock
from tests.api.service import Service
from tests.telematics.fleet_history import add_history

DEPOT = (60.1699, 24.9384)
STOPS = {"a": (60.1665, 24.9433), "b": (60.1700, 24.9500)}


def _until(what: str, check: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not after {timeout_s} s")
        time.sleep(0.2)


@contextmanager
def service_on(
    url: str, data_dir: Path, clock: Callable[[], datetime] | None = None, **options: Any
) -> Iterator[Service]:
    """The service (no MQTT, no sender) on ``clock``, with an organisation made before it
    starts unless the store has one (then pass ``admin``)."""
    admin = options.pop("admin", None)
    if admin is None:
        upgrade(url)
        engine = make_engine(url)
        try:
            _, admin = create_organisation(session_factory(engine), "Test carrier", "UTC")
        finally:
            engine.dispose()
    settings = Settings(
        data_dir=data_dir,
        database_url=url,
        plan_time_limit_s=1.0,
        mqtt=False,
        sender_enabled=False,
        **options,
    )
    with TestClient(create_app(settings, clock=clock)) as client:
        yield Service(client, admin, url)


def _dispatched(s: Service, now: datetime | None = None) -> None:
    """A depot, a van whose shift is under way at ``now`` (default: the wall clock), two
    customers; planned and dispatched."""
    h = s.headers()
    now = now or datetime.now(UTC)
    shift = {
        "start": (now - timedelta(hours=1)).isoformat(),
        "end": (now + timedelta(hours=8)).isoformat(),
    }
    depot = {"id": "d1", "location": {"lat": DEPOT[0], "lon": DEPOT[1]}}
    assert s.client.post("/v1/depots", json=depot, headers=h).status_code == 201
    van = {"id": "v1", "depot_id": "d1", "shift": shift}
    assert s.client.post("/v1/vehicles", json=van, headers=h).status_code == 201
    for oid, (lat, lon) in STOPS.items():
        order = {
            "id": oid,
            "location": {"lat": lat, "lon": lon},
            "service_s": 60,
            "contact": {"email": f"{oid}@example.com"},
        }
        assert s.client.post("/v1/orders", json=order, headers=h).status_code == 201
    plan_id = s.client.post("/v1/plans", json={"time_limit_s": 0.5}, headers=h).json()["plan_id"]
    assert s.wait(plan_id)["status"] == "succeeded"
    assert s.client.post(f"/v1/plans/{plan_id}/dispatch", headers=h).status_code == 200


def _count(url: str, model: Any, *where: Any) -> int:
    engine = make_engine(url)
    try:
        with session_factory(engine)() as session:
            return len(session.scalars(select(model).where(*where)).all())
    finally:
        engine.dispose()


def test_the_timer_recomputes_a_silent_van_on_the_service_clock(
    database_url: str, tmp_path: Path
) -> None:
    """A van reports once, then nothing for three hours of service time: the service's timer
    (no request, no fix) makes its ETAs later, breaks its customers' windows (events and
    messages) and the van shows "no signal" in its progress and on the dashboard."""
    # The day must begin and three hours of silence end outside the customers' quiet hours
    # (21:00-08:00 UTC), or their messages wait for the morning (a run between 05:00 and
    # 08:00 UTC failed so): otherwise start tomorrow at 08:30.
    start = datetime.now(UTC).replace(microsecond=0)
    end = start + timedelta(hours=3, minutes=5)
    if not (start.hour >= 8 and end.date() == start.date() and end.hour < 21):
        start = (start + timedelta(days=1)).replace(hour=8, minute=30, second=0)
    clock = SimClock(start)
    with service_on(database_url, tmp_path, clock, silent_tick_s=30.0) as s:
        _dispatched(s, clock.now)
        h = s.headers()
        fix = {"lat": DEPOT[0], "lon": DEPOT[1], "time": clock.now.isoformat()}
        r = s.client.post("/v1/vehicles/v1/positions", json=fix, headers=h)
        assert r.json() == {"status": "applied", "reason": ""}, r.text
        before = s.client.get("/v1/vehicles/v1/progress", headers=h).json()
        assert (before["no_signal"], before["silent_s"]) == (False, 0.0)
        assert len(before["etas"]) == 2

        clock.advance(3 * 3600)

        def recomputed() -> bool:
            now = s.client.get("/v1/vehicles/v1/progress", headers=h).json()
            return bool(now["etas"] != before["etas"])

        _until("the silence timer's tick", recomputed)
        after = s.client.get("/v1/vehicles/v1/progress", headers=h).json()
        assert after["no_signal"] is True
        assert after["silent_s"] == 3 * 3600
        for old, new in zip(before["etas"], after["etas"], strict=True):
            assert datetime.fromisoformat(new["eta"]) > datetime.fromisoformat(old["eta"])
            assert datetime.fromisoformat(new["eta"]) >= clock.now
        # A break is told once it has held DelayParams.break_persist_s: on a later tick.
        clock.advance(DelayParams().break_persist_s + 1)
        _until(
            "the windows broken on a later tick",
            lambda: _count(s.url, EventRow, EventRow.kind == "window_broken") == 2,
        )
        _until(
            "the customers' messages queued",
            lambda: _count(s.url, OutboxRow, OutboxRow.trigger == "window_broken") == 2,
            timeout_s=10.0,
        )
        [van] = s.client.get("/dashboard/state", headers=h).json()["vehicles"]
        assert (van["id"], van["no_signal"]) == ("v1", True)
        last_fix = clock.now - timedelta(hours=3, seconds=DelayParams().break_persist_s + 1)
        assert datetime.fromisoformat(van["last_fix_at"]) == last_fix


def _past(n: int) -> list[date]:
    today = datetime.now(UTC).date()
    return [today - timedelta(days=k) for k in range(1, n + 1)]


def _history(url: str, days: int) -> str:
    """An organisation with ``days`` past days of two vans 30% slower than planned; returns
    its admin key."""
    upgrade(url)
    engine = make_engine(url)
    try:
        sessions = session_factory(engine)
        org_id, admin = create_organisation(sessions, "Test carrier", "UTC")
        add_history(sessions, org_id, _past(days))
    finally:
        engine.dispose()
    return admin


def _new_route(start: datetime) -> dict[str, Any]:
    """A route planned from ``start``: three 10-minute drives, 2-minute stops."""
    stops, t = [], start
    for k in range(3):
        arrival = t + timedelta(minutes=10)
        t = arrival + timedelta(minutes=2)
        stops.append(
            {
                "order_id": f"n{k}",
                "arrival": arrival.isoformat(),
                "service_start": arrival.isoformat(),
                "departure": t.isoformat(),
                "duration_from_previous_s": 600,
                "distance_from_previous_m": 5000,
            }
        )
    return {"vehicle_id": "van-0", "start": start.isoformat(), "stops": stops}


def _etas(params: EtaParams, start: datetime) -> list[tuple[datetime, datetime]]:
    """(forecast, planned arrival) of each stop of a new route, before it starts."""
    route = _new_route(start)
    etas = plan_windows("van-0", "new", route, {}, start, params)
    planned = [datetime.fromisoformat(s["arrival"]) for s in route["stops"]]
    return [(e.eta, p) for e, p in zip(etas, planned, strict=True)]


def test_the_service_starts_with_the_prior_of_its_history(
    database_url: str, tmp_path: Path
) -> None:
    """Past days of vans 30% slower than planned: the service's ingester starts with a prior
    that says so, and a new route's forecasts are later than its plan (as planned with the
    neutral prior)."""
    admin = _history(database_url, 3)
    with service_on(database_url, tmp_path, admin=admin) as s:
        params = s.client.app.state.ingester.eta_params  # type: ignore[attr-defined]
    assert params.prior.travel_factor > 1.25
    start = datetime.now(UTC).replace(microsecond=0)
    assert all(eta > planned for eta, planned in _etas(params, start))
    assert all(eta == planned for eta, planned in _etas(EtaParams(), start))
    late = _etas(params, start)[-1]
    assert (late[0] - late[1]).total_seconds() > 0.25 * 3 * 600


def test_too_little_history_starts_neutral_and_a_refit_picks_up_more(
    database_url: str, tmp_path: Path
) -> None:
    """One past day is too little: neutral. Two more days stored later are fitted in by the
    periodic refit (an hour of service time on)."""
    admin = _history(database_url, 1)
    clock = SimClock(datetime.now(UTC).replace(microsecond=0))
    with service_on(database_url, tmp_path, clock, admin=admin, prior_refit_s=3600.0) as s:
        ingester = s.client.app.state.ingester  # type: ignore[attr-defined]
        assert ingester.eta_params.prior == FleetPrior()
        engine = make_engine(database_url)
        try:
            sessions = session_factory(engine)
            with sessions() as session:
                org_id = session.scalar(select(EventRow.organisation_id).limit(1))
            assert org_id is not None
            add_history(sessions, org_id, _past(3)[1:])
        finally:
            engine.dispose()
        clock.advance(3601)
        _until("the refit", lambda: ingester.eta_params.prior.travel_factor > 1.25)

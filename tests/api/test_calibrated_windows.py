"""The running service's windows (issue 16): calibrated from the fleet's own ETA history,
refitted as it grows, and the first one told capped as the organisation promises."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from api.app import refit_prior
from api.settings import Settings
from eta.calibration import fit_window_calibration
from eta.live import plan_windows
from eta.params import EtaParams, FleetPrior
from store.db import make_engine, session_factory, upgrade
from store.repo import create_organisation
from store.schema import EventRow, OutboxRow
from telematics.ingest import Ingester
from tests.api.live_state import SimClock
from tests.api.service import Service
from tests.api.test_silence_and_prior import DEPOT, _new_route, service_on
from tests.telematics.eta_history_seed import RESIDUALS_S, add_eta_history

#: Three customers near the depot, an hour at each door: the hand-set window of the third,
#: two hours of service ahead of it, is over an hour wide.
CUSTOMERS = {"a": (60.1665, 24.9433), "b": (60.1700, 24.9500), "c": (60.1720, 24.9450)}
SERVICE_S = 3600


def _until(what: str, check: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not after {timeout_s} s")
        time.sleep(0.2)


def _past(now: datetime, n: int) -> list[date]:
    return [now.date() - timedelta(days=k) for k in range(1, n + 1)]


def _offsets(params: EtaParams, start: datetime) -> list[tuple[float, float]]:
    """(window start, window end) of each stop of a new route (ETAs 10, 22 and 34 minutes
    ahead), seconds from its ETA."""
    etas = plan_windows("van-0", "new", _new_route(start), {}, start, params)
    return [(e.earliest_s - e.eta_s, e.latest_s - e.eta_s) for e in etas]


def test_the_refit_calibrates_the_windows_from_the_eta_history(
    database_url: str, tmp_path: Path
) -> None:
    """No history on start: no calibration, the hand-set spread. Three past days of ETAs and
    arrivals stored later are fitted by the hourly refit, and a new route's windows are the
    P10-P90 of those days' residuals around each ETA."""
    clock = SimClock(datetime.now(UTC).replace(microsecond=0))
    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        sessions = session_factory(engine)
        org_id, admin = create_organisation(sessions, "Test carrier", "UTC")
        with service_on(database_url, tmp_path, clock, admin=admin, prior_refit_s=3600.0) as s:
            ingester = s.client.app.state.ingester  # type: ignore[attr-defined]
            assert ingester.eta_params.calibration is None
            add_eta_history(sessions, org_id, _past(clock.now, 3))
            clock.advance(3601)
            _until("the refit", lambda: ingester.eta_params.calibration is not None)
            params = ingester.eta_params
    finally:
        engine.dispose()
    cal = params.calibration
    assert cal is not None
    assert sum(cal.counts) == 3 * len(RESIDUALS_S) * 55
    start = clock.now
    p10, p50, p90 = np.quantile(np.repeat(RESIDUALS_S, 3), [0.1, 0.5, 0.9], method="weibull")
    # As fitted, the residuals' P10-P90; as told, widened about their median by one factor on
    # both sides (for coverage by the arrival's real horizon, eta/coverage.py).
    as_fitted = replace(params, calibration=replace(cal, widen=()))
    assert _offsets(as_fitted, start) == [pytest.approx((p10, p90))] * 3
    for lo, hi in _offsets(params, start):
        factor = (hi - p50) / (p90 - p50)
        assert factor > 0
        assert (lo - p50) / (p10 - p50) == pytest.approx(factor)
    assert all(w != pytest.approx((p10, p90)) for w in _offsets(EtaParams(), start))


def test_a_failing_fit_keeps_the_calibration_in_use(
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The calibration's fit fails: the one in use stays (and the failure is logged), while
    the prior's fit still goes in."""
    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        sessions = session_factory(engine)
        in_use = fit_window_calibration([(600.0, r) for r in RESIDUALS_S], min_per_bucket=10)
        start = EtaParams(prior=FleetPrior(travel_factor=2.0), calibration=in_use)
        ingester = Ingester(sessions, eta_params=start)

        def broken(*_: object, **__: object) -> None:
            raise RuntimeError("the store went away")

        monkeypatch.setattr("api.app.fit_window_history", broken)
        settings = Settings(data_dir=tmp_path, database_url=database_url)
        with caplog.at_level(logging.ERROR, logger="api.app"):
            refit_prior(settings, sessions, ingester)
    finally:
        engine.dispose()
    assert ingester.eta_params.calibration is in_use
    assert ingester.eta_params.prior == FleetPrior()  # no history: neutral, but refitted
    assert any("window calibration failed" in r.getMessage() for r in caplog.records)


def _dispatch(s: Service, now: datetime) -> None:
    """A depot, a van whose shift is under way, the customers; planned and dispatched."""
    h = s.headers()
    shift = {
        "start": (now - timedelta(hours=1)).isoformat(),
        "end": (now + timedelta(hours=10)).isoformat(),
    }
    depot = {"id": "d1", "location": {"lat": DEPOT[0], "lon": DEPOT[1]}}
    assert s.client.post("/v1/depots", json=depot, headers=h).status_code == 201
    van = {"id": "v1", "depot_id": "d1", "shift": shift}
    assert s.client.post("/v1/vehicles", json=van, headers=h).status_code == 201
    for oid, (lat, lon) in CUSTOMERS.items():
        order = {
            "id": oid,
            "location": {"lat": lat, "lon": lon},
            "service_s": SERVICE_S,
            "contact": {"email": f"{oid}@example.com"},
        }
        assert s.client.post("/v1/orders", json=order, headers=h).status_code == 201
    plan_id = s.client.post("/v1/plans", json={"time_limit_s": 0.5}, headers=h).json()["plan_id"]
    assert s.wait(plan_id)["status"] == "succeeded"
    r = s.client.post(f"/v1/plans/{plan_id}/dispatch", headers=h)
    assert r.status_code == 200, r.text


def _widths_min(windows: list[tuple[str, str]]) -> list[float]:
    return sorted(
        (datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds() / 60
        for a, b in windows
    )


def test_the_organisations_cap_narrows_the_first_windows(database_url: str, tmp_path: Path) -> None:
    """An organisation promising 30 minutes: the windows confirmed at dispatch and the first
    ones told on the van's first fix are at most 30 minutes wide, and the far stops' are cut
    to exactly that (the fleet's default, an hour, would leave the second one uncut)."""
    clock = SimClock(datetime.now(UTC).replace(microsecond=0))
    with service_on(database_url, tmp_path, clock) as s:
        policy = {"first_window_cap_min": 30, "quiet_start": None, "quiet_end": None}
        r = s.client.patch(
            "/v1/organisation", json={"notification_policy": policy}, headers=s.headers()
        )
        assert r.status_code == 200, r.text
        assert r.json()["notification_policy"]["first_window_cap_min"] == 30
        _dispatch(s, clock.now)
        fix = {"lat": DEPOT[0], "lon": DEPOT[1], "time": clock.now.isoformat()}
        r = s.client.post("/v1/vehicles/v1/positions", json=fix, headers=s.headers())
        assert r.json() == {"status": "applied", "reason": ""}, r.text
        engine = make_engine(s.url)
        try:
            with session_factory(engine)() as session:
                confirmed = [
                    tuple(p["message"]["window"])
                    for p in session.scalars(
                        select(OutboxRow.payload).where(OutboxRow.trigger == "plan_confirmed")
                    )
                ]
                told = [
                    (d["earliest"], d["latest"])
                    for d in session.scalars(
                        select(EventRow.data).where(EventRow.kind == "window_told")
                    )
                ]
        finally:
            engine.dispose()
    for windows in (confirmed, told):
        widths = _widths_min(windows)
        assert len(widths) == len(CUSTOMERS)
        assert widths[-2:] == [pytest.approx(30.0), pytest.approx(30.0)]
        assert widths[0] < 30.0


def test_a_cap_out_of_range_is_refused(service: Service) -> None:
    """15 to 240 whole minutes; anything else is a 422 naming the field, and the policy
    stored stays."""
    h = service.headers()
    ok = {"notification_policy": {"first_window_cap_min": 45}}
    assert service.client.patch("/v1/organisation", json=ok, headers=h).status_code == 200
    for bad in (10, 241, 30.5, "30", True):
        body = {"notification_policy": {"first_window_cap_min": bad}}
        r = service.client.patch("/v1/organisation", json=body, headers=h)
        assert r.status_code == 422, (bad, r.text)
        problems = r.json()["error"]["problems"]
        assert [p["field"] for p in problems] == ["notification_policy.first_window_cap_min"]
    got = service.client.get("/v1/organisation", headers=h).json()
    assert got["notification_policy"]["first_window_cap_min"] == 45

"""The live window's calibration from the store's own history (issue 16): the ETA history and
the arrivals turned into (predicted horizon, residual) samples, and fitted."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy.orm import Session, sessionmaker

from eta.calibration import interval_s
from store.db import make_engine, session_factory, transaction, upgrade
from store.schema import Organisation
from telematics.window_history import fit_window_history, read_window_history
from tests.telematics.eta_history_seed import (
    LAST_LEAD_MIN,
    LEAD_MIN,
    RESIDUALS_S,
    add_arrival,
    add_eta_history,
    add_etas,
    add_order,
)

NOW = datetime(2026, 5, 20, 6, 0, tzinfo=UTC)
YESTERDAY = datetime(2026, 5, 19, tzinfo=UTC)


def at(day: datetime, hhmmss: str) -> datetime:
    h, m, s = (int(x) for x in hhmmss.split(":"))
    return day + timedelta(hours=h, minutes=m, seconds=s)


def past(n: int) -> list[date]:
    return [NOW.date() - timedelta(days=k) for k in range(1, n + 1)]


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    upgrade(database_url)
    engine = make_engine(database_url)
    yield session_factory(engine)
    engine.dispose()


def organisation(sessions: sessionmaker[Session], zone: str = "UTC") -> str:
    with transaction(sessions) as session:
        org = Organisation(name=f"Carrier in {zone}", timezone=zone)
        session.add(org)
        session.flush()
        return org.id


def test_the_history_turns_into_one_sample_per_order_and_minute(
    sessions: sessionmaker[Session],
) -> None:
    """Each ETA kept before its order's arrival is (ETA - made, arrival - ETA); two in one
    minute count once (the later); ETAs of orders never reached, made after the arrival, made
    today (in the organisation's zone) or before the days read are not samples, nor is one
    whose order was reached only on another day's attempt. Fleet-wide unless one
    organisation is asked for."""
    here = organisation(sessions)
    # 18:00 in Auckland on NOW's day: its "today" began at 12:00 UTC yesterday.
    far = organisation(sessions, "Pacific/Auckland")
    day_before = YESTERDAY - timedelta(days=1)
    with transaction(sessions) as session:
        a1 = add_order(session, here, "a1")
        add_etas(
            session,
            a1,
            [
                (at(YESTERDAY, "10:00:00"), at(YESTERDAY, "10:30:00")),
                (at(YESTERDAY, "10:00:20"), at(YESTERDAY, "10:31:00")),  # same minute: wins
                (at(YESTERDAY, "10:01:10"), at(YESTERDAY, "10:31:00")),
                (at(YESTERDAY, "10:06:00"), at(YESTERDAY, "10:33:00")),
            ],
        )
        add_arrival(session, here, a1, at(YESTERDAY, "10:35:00"))
        add_arrival(session, here, a1, at(YESTERDAY, "10:50:00"))  # back again: not the one
        never = add_order(session, here, "never-reached")
        add_etas(session, never, [(at(YESTERDAY, "11:00:00"), at(YESTERDAY, "11:20:00"))])
        today = add_order(session, here, "today")
        early = NOW.replace(hour=0)  # 00:00 on NOW's day, 6 hours before it
        add_etas(session, today, [(at(early, "01:00:00"), at(early, "01:20:00"))])
        add_arrival(session, here, today, at(early, "01:30:00"))
        old = add_order(session, here, "old")
        old_day = YESTERDAY - timedelta(days=30)
        add_etas(session, old, [(at(old_day, "10:00:00"), at(old_day, "10:20:00"))])
        add_arrival(session, here, old, at(old_day, "10:25:00"))
        retried = add_order(session, here, "retried")
        add_etas(
            session,
            retried,
            [
                # Not reached that day; the next arrival is the next day's attempt.
                (at(day_before, "09:00:00"), at(day_before, "09:20:00")),
                (at(YESTERDAY, "08:50:00"), at(YESTERDAY, "09:05:00")),
            ],
        )
        add_arrival(session, here, retried, at(YESTERDAY, "09:10:00"))
        b0 = add_order(session, far, "b0")
        add_etas(
            session,
            b0,
            [
                (at(YESTERDAY, "11:00:00"), at(YESTERDAY, "11:10:00")),
                (at(YESTERDAY, "11:15:00"), at(YESTERDAY, "11:16:00")),  # after the arrival
            ],
        )
        add_arrival(session, far, b0, at(YESTERDAY, "11:12:00"))
        b1 = add_order(session, far, "b1")  # Auckland's today
        add_etas(session, b1, [(at(YESTERDAY, "12:00:00"), at(YESTERDAY, "12:10:00"))])
        add_arrival(session, far, b1, at(YESTERDAY, "12:12:00"))

    ours = [(1840.0, 240.0), (1790.0, 240.0), (1620.0, 120.0), (900.0, 300.0)]
    theirs = [(600.0, 120.0)]
    with sessions() as session:
        fleet = read_window_history(session, NOW, 28)
        only_here = read_window_history(session, NOW, 28, organisation_id=here)
        only_far = read_window_history(session, NOW, 28, organisation_id=far)
    assert sorted(fleet.samples) == sorted(ours + theirs)
    assert fleet.orders == 3
    assert fleet.until == NOW.replace(hour=0)  # the latest start of today: UTC's
    assert fleet.since == datetime(2026, 5, 19, 12, tzinfo=UTC) - timedelta(days=28)
    assert sorted(only_here.samples) == sorted(ours)
    assert only_here.orders == 2
    assert only_far.samples == theirs


def test_enough_history_fits_its_own_quantiles(
    sessions: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    """Three past days of 20 orders whose arrivals fall 5 min early to 14 min late: every
    bucket from 5 minutes to 90 is fitted with those residuals' quantiles, the first (no ETA
    made under 6 minutes ahead) is not; logged in one line."""
    org = organisation(sessions)
    add_eta_history(sessions, org, past(3))
    with caplog.at_level(logging.INFO, logger="telematics.window_history"):
        fitted = fit_window_history(sessions, NOW)
    cal = fitted.calibration
    assert cal is not None
    per_order = LEAD_MIN - LAST_LEAD_MIN + 1
    assert (fitted.samples, fitted.orders) == (3 * 20 * per_order, 60)
    minutes = [e / 60 for e in cal.edges_s]
    # Horizons m = 6..60 minutes: 6-9 in the 5-minute bucket, 60 in the 60-90 one.
    expected = {5: 4, 10: 10, 20: 10, 30: 15, 45: 15, 60: 1}
    assert {m: n // 60 for m, n in zip(minutes, cal.counts, strict=True) if n} == expected
    assert cal.quantiles_s[0] is None
    assert all(cal.quantiles_s[i] is not None for i in range(1, 7))
    assert all(q is None for q in cal.quantiles_s[7:])
    p10, p50, p90 = np.quantile(np.repeat(RESIDUALS_S, 3), [0.1, 0.5, 0.9], method="weibull")
    for horizon_min in (7, 15, 25, 40, 55):
        # As fitted: the residuals' own quantiles...
        window = interval_s(replace(cal, widen=()), horizon_min * 60.0)
        assert window == pytest.approx((p10, p90))
        # ...and as told: widened about the median for coverage by real horizon
        # (eta/coverage.py), by one factor on both sides.
        lo, hi = interval_s(cal, horizon_min * 60.0) or (0.0, 0.0)
        factor = (hi - p50) / (p90 - p50)
        assert factor > 0
        assert (lo - p50) / (p10 - p50) == pytest.approx(factor)
    [line] = [r.getMessage() for r in caplog.records if r.name == "telematics.window_history"]
    assert "6 of 10 horizon buckets fitted" in line
    assert f"{fitted.samples} samples of 60 orders" in line


def test_a_cold_start_fits_nothing(
    sessions: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    """One day of the same fleet: 20 samples in the 60-90 minute bucket (fitted with three
    days) are too few, that bucket stays unfitted; with ``min_per_bucket`` above every
    bucket's count there is no calibration, the hand-set spread everywhere, and the log says
    so."""
    org = organisation(sessions)
    add_eta_history(sessions, org, past(1))
    some = fit_window_history(sessions, NOW)
    assert some.calibration is not None
    cal = some.calibration
    fitted = [cal.edges_s[i] / 60 for i, q in enumerate(cal.quantiles_s) if q is not None]
    assert fitted == [5, 10, 20, 30, 45]
    assert cal.counts[cal.bucket(3600.0)] == 20
    with caplog.at_level(logging.INFO, logger="telematics.window_history"):
        none = fit_window_history(sessions, NOW, min_per_bucket=301)
    assert none.calibration is None
    assert none.samples == 20 * (LEAD_MIN - LAST_LEAD_MIN + 1)
    [line] = [r.getMessage() for r in caplog.records if r.name == "telematics.window_history"]
    assert "cold start" in line

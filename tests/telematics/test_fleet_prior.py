"""The fleet prior fitted from the store's own history (issue 21, item 7): legs as planned
against legs as driven, from the dispatched plans and the arrived / departed events."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from eta.params import FleetPrior
from store.db import make_engine, session_factory, transaction, upgrade
from store.schema import Organisation, PlanRow
from telematics.fleet_prior import fit_fleet_prior
from tests.telematics.fleet_history import add_history

NOW = datetime(2026, 5, 20, 6, 0, tzinfo=UTC)
TODAY = NOW.date()


def past(n: int) -> list[date]:
    return [TODAY - timedelta(days=k) for k in range(1, n + 1)]


@pytest.fixture
def store(tmp_path: Path) -> tuple[sessionmaker[Session], str]:
    url = f"sqlite:///{tmp_path / 'lastmile.db'}"
    upgrade(url)
    sessions = session_factory(make_engine(url))
    with transaction(sessions) as session:
        org = Organisation(name="Test")
        session.add(org)
        session.flush()
        org_id = org.id
    return sessions, org_id


def test_vans_thirty_percent_slow_fit_a_slow_prior(
    store: tuple[sessionmaker[Session], str], caplog: pytest.LogCaptureFixture
) -> None:
    """Three past days of two vans, every drive 1.3x its plan, stops as planned: 54 legs
    (the drive from the depot has no departure event), travel x1.3, service x1.0; logged."""
    sessions, org_id = store
    add_history(sessions, org_id, past(3))
    with caplog.at_level(logging.INFO, logger="telematics.fleet_prior"):
        fitted = fit_fleet_prior(sessions, NOW)
    assert fitted.fitted
    assert (fitted.legs, fitted.services) == (54, 60)
    assert fitted.prior.travel_factor == pytest.approx(1.3, abs=0.01)
    assert fitted.prior.leg_overhead_s < 5.0
    assert fitted.prior.service_factor == pytest.approx(1.0, abs=0.01)
    assert fitted.prior.hour_factors == ()  # as slow at every hour
    [record] = [r for r in caplog.records if r.name == "telematics.fleet_prior"]
    assert record.levelno == logging.INFO
    assert "54 legs" in record.getMessage()
    assert "travel x1.30" in record.getMessage()


def test_too_little_history_is_the_neutral_prior(
    store: tuple[sessionmaker[Session], str], caplog: pytest.LogCaptureFixture
) -> None:
    """One past day (18 legs) is under the 50 needed: neutral, and the log says why; a
    lower threshold (a setting) fits from less."""
    sessions, org_id = store
    add_history(sessions, org_id, past(1))
    with caplog.at_level(logging.INFO, logger="telematics.fleet_prior"):
        fitted = fit_fleet_prior(sessions, NOW)
    assert not fitted.fitted
    assert fitted.legs == 18
    assert fitted.prior == FleetPrior()
    assert "neutral" in caplog.text
    assert "18 legs" in caplog.text
    add_history(sessions, org_id, past(2)[1:])
    assert fit_fleet_prior(sessions, NOW, min_legs=30).prior.travel_factor > 1.2


def test_an_empty_store_is_the_neutral_prior(store: tuple[sessionmaker[Session], str]) -> None:
    sessions, _ = store
    assert fit_fleet_prior(sessions, NOW).prior == FleetPrior()


def test_only_past_days_within_reach_count(store: tuple[sessionmaker[Session], str]) -> None:
    """Today's legs are the live pace's, not the prior's; days beyond ``days`` are not read."""
    sessions, org_id = store
    add_history(sessions, org_id, [TODAY, TODAY - timedelta(days=40)], vans=4)
    fitted = fit_fleet_prior(sessions, NOW + timedelta(hours=14), days=28)
    assert fitted.legs == 0
    assert fit_fleet_prior(sessions, NOW + timedelta(days=1), days=28).legs == 36


def test_a_replanned_route_counts_each_leg_once(store: tuple[sessionmaker[Session], str]) -> None:
    """A replan at 09:30 of a route's last five stops: those legs were planned twice, driven
    once; the replan's own first stop has no previous stop in it."""
    sessions, org_id = store
    [route, *_] = add_history(sessions, org_id, past(3))
    rest = route["stops"][5:]
    replanned_at = datetime.fromisoformat(route["stops"][4]["departure"]) - timedelta(minutes=5)
    with transaction(sessions) as session:
        session.add(
            PlanRow(
                organisation_id=org_id,
                kind="replan",
                status="succeeded",
                result={"routes": [{**route, "stops": rest}]},
                dispatched_at=replanned_at,
            )
        )
    assert fit_fleet_prior(sessions, NOW).legs == 54
    with transaction(sessions) as session:
        for plan in session.scalars(select(PlanRow).where(PlanRow.kind == "plan")):
            plan.status = "cancelled"
    # The replan alone: its legs that began after it was dispatched, bar its first stop's.
    assert fit_fleet_prior(sessions, NOW, min_legs=1).legs == 4


def test_a_leg_with_a_planned_break_is_left_out(store: tuple[sessionmaker[Session], str]) -> None:
    """The driver's break is in the drive's actual time, not in its planned drive."""
    sessions, org_id = store
    add_history(sessions, org_id, past(3), breaks=True)
    assert fit_fleet_prior(sessions, NOW).legs == 48

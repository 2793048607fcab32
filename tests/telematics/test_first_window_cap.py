"""The organisation's cap on the first window told (issue 16): the ingester's ETA parameters
per organisation, from its notification policy, made again only when the policy or the
fleet's parameters change."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from notify.outbox import Outbox
from store.db import transaction
from store.schema import Organisation
from telematics.ingest import Ingester
from tests.telematics.conftest import store_with_vehicle


def _set_policy(sessions: sessionmaker[Session], org_id: str, policy: dict[str, object]) -> None:
    with transaction(sessions) as session:
        org = session.get(Organisation, org_id)
        assert org is not None
        org.notification_policy = policy


def test_the_cap_follows_the_policy_and_the_fleets_parameters(tmp_path: Path) -> None:
    """The default hour until the organisation sets its own; the same parameters while
    nothing changes; a changed policy (the outbox told to forget it, as the API does) and new
    fleet parameters (a refit) both reach the next call."""
    sessions, org_id, engine = store_with_vehicle(tmp_path, "van")
    try:
        outbox = Outbox()
        ingester = Ingester(sessions, outbox=outbox)
        with sessions() as session:
            first = ingester.eta_params_for(session, org_id)
            assert first.first_window_cap_s == 3600.0
            assert ingester.eta_params_for(session, org_id) is first
        _set_policy(sessions, org_id, {"first_window_cap_min": 20})
        outbox.forget(org_id)
        with sessions() as session:
            assert ingester.eta_params_for(session, org_id).first_window_cap_s == 1200.0
            ingester.eta_params = replace(ingester.eta_params, spread_base_s=42.0)
            refitted = ingester.eta_params_for(session, org_id)
        assert (refitted.first_window_cap_s, refitted.spread_base_s) == (1200.0, 42.0)
        assert ingester.eta_params.first_window_cap_s == 3600.0  # the fleet's own is kept
    finally:
        engine.dispose()


def test_without_an_outbox_the_policy_is_read_once_per_transaction(tmp_path: Path) -> None:
    """No outbox to keep the policy: the organisation's row, read once in a session however
    many vehicles ask; a stored policy that does not validate counts as the default hour."""
    sessions, org_id, engine = store_with_vehicle(tmp_path, "van")
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    try:
        _set_policy(sessions, org_id, {"first_window_cap_min": 45})
        ingester = Ingester(sessions)
        with sessions() as session:
            statements.clear()
            caps = {ingester.eta_params_for(session, org_id).first_window_cap_s for _ in range(5)}
            assert caps == {2700.0}
            assert len([s for s in statements if "organisations" in s]) == 1
        _set_policy(sessions, org_id, {"first_window_cap_min": 5})
        with sessions() as session:
            assert ingester.eta_params_for(session, org_id).first_window_cap_s == 3600.0
    finally:
        engine.dispose()

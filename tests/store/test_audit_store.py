"""The audit log in the store (store/audit.py): an entry copies the acting key's name and
role, refuses details named like secrets or contact data, and is read back newest first, per
organisation only; on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from store.audit import MAX_LIMIT, forbidden_fields, list_entries, record
from store.db import make_engine, session_factory, transaction, upgrade
from store.repo import create_organisation
from store.schema import ApiKey, AuditRow

NOW = datetime(2030, 6, 15, 9, 0, tzinfo=UTC)


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    upgrade(database_url)
    engine = make_engine(database_url)
    yield session_factory(engine)
    engine.dispose()


def _org(sessions: sessionmaker[Session], name: str) -> tuple[str, str]:
    """(organisation id, its admin key's id)"""
    org_id, _ = create_organisation(sessions, name, "UTC")
    with sessions() as session:
        key_id = session.scalars(select(ApiKey.id).where(ApiKey.organisation_id == org_id)).one()
    return org_id, key_id


def _record(session: Session, org_id: str, key_id: str | None, at: datetime, **kw: Any) -> int:
    return record(
        session,
        organisation_id=org_id,
        api_key_id=key_id,
        action=kw.pop("action", "dispatched"),
        object_type="plan",
        object_id=kw.pop("object_id", "p1"),
        at=at,
        **kw,
    ).id


def test_pure_forbidden_fields() -> None:
    assert forbidden_fields({"kind": "plan", "orders": 3, "fields": ["branding"]}) == []
    assert forbidden_fields(
        {
            "key": "lm_x",
            "webhook_secret": "s",
            "nested": {"contact_phone": "+39", "ok": [{"Email": "a@b"}]},
            "tracking_token": "t",
        }
    ) == ["key", "webhook_secret", "nested.contact_phone", "nested.ok[0].Email", "tracking_token"]


def test_an_entry_names_the_key_as_it_was(sessions: sessionmaker[Session]) -> None:
    org_id, key_id = _org(sessions, "Carrier")
    with transaction(sessions) as session:
        _record(session, org_id, key_id, NOW, detail={"orders": 3})
        _record(session, org_id, None, NOW, action="cancelled")
        key = session.get(ApiKey, key_id)
        assert key is not None
        key.name = "renamed later"
    with sessions() as session:
        dispatched, cancelled = sorted(session.scalars(select(AuditRow)), key=lambda r: r.id)
    assert (dispatched.actor_name, dispatched.actor_role) == ("first admin key", "admin")
    assert (dispatched.action, dispatched.object_id, dispatched.at) == ("dispatched", "p1", NOW)
    assert dispatched.detail == {"orders": 3}
    assert (cancelled.api_key_id, cancelled.actor_name, cancelled.actor_role) == (None, "", "")


@pytest.mark.security
def test_what_an_entry_refuses(sessions: sessionmaker[Session]) -> None:
    mine, _ = _org(sessions, "Mine")
    _, their_key = _org(sessions, "Theirs")
    with transaction(sessions) as session:
        with pytest.raises(ValueError, match="contact_email"):
            _record(session, mine, None, NOW, detail={"contact_email": "a@example.com"})
        with pytest.raises(ValueError, match="key"):
            _record(session, mine, None, NOW, detail={"key": "lm_abc"})
        with pytest.raises(ValueError, match="at most"):
            _record(session, mine, None, NOW, detail={"ids": ["x" * 40] * 100})
        with pytest.raises(ValueError, match="unknown audit action"):
            _record(session, mine, None, NOW, action="deleted_everything")
        with pytest.raises(ValueError, match="not one of the organisation's"):
            _record(session, mine, their_key, NOW)
        with pytest.raises(ValueError, match="not one of the organisation's"):
            _record(session, mine, "no-such-key", NOW)
    with sessions() as session:
        assert list(session.scalars(select(AuditRow))) == []


def test_newest_first_with_limit_and_since(sessions: sessionmaker[Session]) -> None:
    org_id, key_id = _org(sessions, "Carrier")
    with transaction(sessions) as session:
        ids = [
            _record(session, org_id, key_id, NOW + timedelta(minutes=m), object_id=f"p{m}")
            for m in (0, 2, 1)
        ]
        # Two at the same time: the later written first.
        tie = _record(session, org_id, key_id, NOW + timedelta(minutes=2), object_id="tie")
    with sessions() as session:
        got = [r.object_id for r in list_entries(session, org_id)]
        assert got == ["tie", "p2", "p1", "p0"]
        assert [r.id for r in list_entries(session, org_id, limit=1)] == [tie]
        since = [
            r.object_id for r in list_entries(session, org_id, since=NOW + timedelta(minutes=1))
        ]
        assert since == ["tie", "p2", "p1"]
        assert list_entries(session, org_id, since=NOW + timedelta(hours=1)) == []
        for bad in (0, -1, MAX_LIMIT + 1):
            with pytest.raises(ValueError, match="limit"):
                list_entries(session, org_id, limit=bad)
    assert len(ids) == 3


@pytest.mark.security
def test_never_another_organisations_entries(sessions: sessionmaker[Session]) -> None:
    mine, my_key = _org(sessions, "Mine")
    theirs, their_key = _org(sessions, "Theirs")
    with transaction(sessions) as session:
        _record(session, mine, my_key, NOW, object_id="mine")
        _record(session, theirs, their_key, NOW, object_id="theirs")
    with sessions() as session:
        assert [r.object_id for r in list_entries(session, mine, limit=MAX_LIMIT)] == ["mine"]
        assert [r.object_id for r in list_entries(session, theirs)] == ["theirs"]
        assert list_entries(session, "no-such-organisation") == []

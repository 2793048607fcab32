"""The dashboard's sessions in the store (store/dashboard_sessions.py): only the id's hash is
kept; a session is live until its expiry, its sign-out or its key's revocation; ended ones are
deleted after a while; on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from store.dashboard_sessions import (
    KEEP_ENDED,
    MAX_TOKEN_CHARS,
    create_session,
    hash_token,
    resolve_session,
    revoke_session,
)
from store.db import make_engine, session_factory, transaction, upgrade
from store.repo import create_organisation
from store.schema import ApiKey, DashboardSessionRow

NOW = datetime(2030, 6, 15, 9, 0, tzinfo=UTC)
DAY = timedelta(hours=12)


@dataclass
class Org:
    id: str
    key_id: str


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    upgrade(database_url)
    engine = make_engine(database_url)
    yield session_factory(engine)
    engine.dispose()


def _org(sessions: sessionmaker[Session], name: str) -> Org:
    org_id, _ = create_organisation(sessions, name, "UTC")
    with sessions() as session:
        key_id = session.scalars(select(ApiKey.id).where(ApiKey.organisation_id == org_id)).one()
    return Org(org_id, key_id)


def _start(sessions: sessionmaker[Session], org: Org, at: datetime = NOW) -> str:
    with transaction(sessions) as session:
        return create_session(session, org.id, org.key_id, at, DAY).token


def test_only_the_ids_hash_is_stored(sessions: sessionmaker[Session]) -> None:
    org = _org(sessions, "Carrier")
    token = _start(sessions, org)
    assert len(token) >= 43
    with sessions() as session:
        (row,) = session.scalars(select(DashboardSessionRow))
        assert row.token_hash == hash_token(token)
        assert token not in (row.id, row.token_hash)
        assert (row.organisation_id, row.api_key_id) == (org.id, org.key_id)
        assert (row.created_at, row.expires_at, row.revoked_at) == (NOW, NOW + DAY, None)
    assert _start(sessions, org) != token


def test_live_until_its_expiry(sessions: sessionmaker[Session]) -> None:
    org = _org(sessions, "Carrier")
    token = _start(sessions, org)
    with sessions() as session:
        live = resolve_session(session, token, NOW + DAY - timedelta(seconds=1))
        assert live is not None
        assert (live.organisation_id, live.api_key_id, live.role) == (org.id, org.key_id, "admin")
        assert live.expires_at == NOW + DAY
        assert resolve_session(session, token, NOW + DAY) is None
        for other in ("", "x", token + "x", token[:-1], "y" * (MAX_TOKEN_CHARS + 1)):
            assert resolve_session(session, other, NOW) is None


@pytest.mark.security
def test_sign_out_and_key_revocation_end_it(sessions: sessionmaker[Session]) -> None:
    org = _org(sessions, "Carrier")
    signed_out, other = _start(sessions, org), _start(sessions, org)
    with transaction(sessions) as session:
        assert revoke_session(session, signed_out, NOW) is True
        assert revoke_session(session, signed_out, NOW) is False
        assert revoke_session(session, "not-a-session", NOW) is False
    with sessions() as session:
        assert resolve_session(session, signed_out, NOW) is None
        assert resolve_session(session, other, NOW) is not None
    with transaction(sessions) as session:
        key = session.get(ApiKey, org.key_id)
        assert key is not None
        key.revoked_at = NOW
    with sessions() as session:
        assert resolve_session(session, other, NOW) is None


@pytest.mark.security
def test_a_session_bound_to_another_organisations_key_is_not_live(
    sessions: sessionmaker[Session],
) -> None:
    mine, theirs = _org(sessions, "Mine"), _org(sessions, "Theirs")
    with transaction(sessions) as session:
        token = create_session(session, mine.id, theirs.key_id, NOW, DAY).token
    with sessions() as session:
        assert resolve_session(session, token, NOW) is None


def test_ended_sessions_are_deleted_after_a_while(sessions: sessionmaker[Session]) -> None:
    mine, theirs = _org(sessions, "Mine"), _org(sessions, "Theirs")
    old = NOW - KEEP_ENDED - DAY - timedelta(minutes=1)
    _start(sessions, mine, old)
    _start(sessions, theirs, old)
    recent = _start(sessions, mine, NOW - DAY * 2)
    _start(sessions, mine)
    with sessions() as session:
        rows = list(session.scalars(select(DashboardSessionRow)))
    # Mine's old one went at its sign-in; the recent ended one stays; theirs is theirs.
    assert len(rows) == 3
    assert hash_token(recent) in {r.token_hash for r in rows}
    assert sum(r.organisation_id == theirs.id for r in rows) == 1


def test_a_lifetime_must_be_positive(sessions: sessionmaker[Session]) -> None:
    org = _org(sessions, "Carrier")
    with transaction(sessions) as session, pytest.raises(ValueError, match="lifetime"):
        create_session(session, org.id, org.key_id, NOW, timedelta(0))

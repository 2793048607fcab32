"""The dispatcher dashboard's server-side sessions: create, resolve, revoke (ADR 0023).

Signing in with an API key creates a session: a random id (256 bits) for the browser's
cookie, of which the store keeps only the SHA-256 hash, bound to the organisation and the
key's row, with an absolute expiry. A session is *live* at ``now`` while it is not revoked,
``expires_at`` is later than ``now`` and its API key is not revoked: the key's revocation is
read at every resolve (a join), so revoking a key ends its sessions with no bookkeeping.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from store.schema import ApiKey, DashboardSessionRow

#: Random bytes in a session id (``secrets.token_urlsafe``: 43 characters).
TOKEN_BYTES = 32
#: Longer than any id this module hands out: such a cookie is refused without a lookup.
MAX_TOKEN_CHARS = 100
#: Ended sessions are kept this long (who was signed in when), then deleted at a sign-in.
KEEP_ENDED = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class NewSession:
    row: DashboardSessionRow
    #: The id for the cookie: never stored, never shown again.
    token: str


@dataclass(frozen=True, slots=True)
class LiveSession:
    """A live session and the key it acts with."""

    id: str
    organisation_id: str
    api_key_id: str
    role: str
    expires_at: datetime


def hash_token(token: str) -> str:
    """What the store keeps of a session id: its SHA-256, hex (the id carries 256 random
    bits, so no stretching is needed, as for API keys)."""
    return hashlib.sha256(token.encode()).hexdigest()


def create_session(
    session: Session, organisation_id: str, api_key_id: str, now: datetime, lifetime: timedelta
) -> NewSession:
    """A new session for the key, live until ``now + lifetime``. The organisation's sessions
    that ended more than :data:`KEEP_ENDED` ago are deleted."""
    if lifetime <= timedelta(0):
        raise ValueError("a session's lifetime must be positive")
    session.execute(
        delete(DashboardSessionRow).where(
            DashboardSessionRow.organisation_id == organisation_id,
            DashboardSessionRow.expires_at < now - KEEP_ENDED,
        )
    )
    token = secrets.token_urlsafe(TOKEN_BYTES)
    row = DashboardSessionRow(
        token_hash=hash_token(token),
        organisation_id=organisation_id,
        api_key_id=api_key_id,
        created_at=now,
        expires_at=now + lifetime,
    )
    session.add(row)
    session.flush()
    return NewSession(row, token)


def resolve_session(session: Session, token: str, now: datetime) -> LiveSession | None:
    """The live session the cookie's id names at ``now``, or None (unknown, expired, signed
    out, or its key revoked or of another organisation)."""
    if not token or len(token) > MAX_TOKEN_CHARS:
        return None
    found = session.execute(
        select(DashboardSessionRow, ApiKey.role)
        .join(
            ApiKey,
            (ApiKey.id == DashboardSessionRow.api_key_id)
            & (ApiKey.organisation_id == DashboardSessionRow.organisation_id),
        )
        .where(
            DashboardSessionRow.token_hash == hash_token(token),
            DashboardSessionRow.revoked_at.is_(None),
            DashboardSessionRow.expires_at > now,
            ApiKey.revoked_at.is_(None),
        )
    ).first()
    if found is None:
        return None
    row, role = found
    return LiveSession(row.id, row.organisation_id, row.api_key_id, role, row.expires_at)


def revoke_session(session: Session, token: str, now: datetime) -> bool:
    """Sign the session out: the same id never resolves again. True if a session that was
    not yet revoked had this id (expired ones too)."""
    if not token or len(token) > MAX_TOKEN_CHARS:
        return False
    result = session.execute(
        update(DashboardSessionRow)
        .where(
            DashboardSessionRow.token_hash == hash_token(token),
            DashboardSessionRow.revoked_at.is_(None),
        )
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))

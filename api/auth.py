"""API keys with roles. Every route declares the role it needs; admin may do everything."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select

from api.errors import ApiError
from store.schema import ApiKey
from store.secrets import hash_api_key, key_prefix, same_hash

bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer lm_...`")


@dataclass(frozen=True, slots=True)
class Caller:
    organisation_id: str
    role: str
    key_id: str


def _caller(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)
) -> Caller:
    if credentials is None:
        raise ApiError(401, "unauthorized", "an API key is needed (Authorization: Bearer ...)")
    key = credentials.credentials
    prefix = key_prefix(key)
    if prefix is None:
        raise ApiError(401, "unauthorized", "not a lastmile API key")
    with request.app.state.sessions() as session:
        row = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    if row is None or row.revoked_at is not None or not same_hash(row.key_hash, hash_api_key(key)):
        raise ApiError(401, "unauthorized", "unknown or revoked API key")
    return Caller(row.organisation_id, row.role, row.id)


def require(*roles: str) -> Callable[..., Caller]:
    """A dependency admitting callers with one of ``roles`` (admin always)."""

    def check(caller: Caller = Depends(_caller)) -> Caller:
        if caller.role != "admin" and caller.role not in roles:
            raise ApiError(403, "forbidden", f"this needs the role {' or '.join(roles)}")
        return caller

    return check

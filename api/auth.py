"""API keys with roles. Every route declares the role it needs; admin may do everything."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select

from api.errors import ApiError
from store.schema import ApiKey, VehicleRow
from store.secrets import hash_api_key, key_prefix, same_hash

bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer lm_...`")


@dataclass(frozen=True, slots=True)
class Caller:
    organisation_id: str
    role: str
    key_id: str
    #: A device key's vehicle (its external id); None for other roles, and for a device key
    #: made before keys were bound, which then acts for no vehicle.
    vehicle: str | None = None


def caller_for_key(request: Request, key: str) -> Caller:
    """The caller a key string belongs to, or 401: one check for the bearer header and for the
    dashboard's cookie (browsers cannot send headers on navigation or EventSource)."""
    prefix = key_prefix(key)
    if prefix is None:
        raise ApiError(401, "unauthorized", "not a lastmile API key")
    with request.app.state.sessions() as session:
        found = session.execute(
            select(ApiKey, VehicleRow.external_id)
            .outerjoin(
                VehicleRow,
                (VehicleRow.id == ApiKey.vehicle_id)
                & (VehicleRow.organisation_id == ApiKey.organisation_id),
            )
            .where(ApiKey.prefix == prefix)
        ).first()
    row, vehicle = found if found is not None else (None, None)
    if row is None or row.revoked_at is not None or not same_hash(row.key_hash, hash_api_key(key)):
        raise ApiError(401, "unauthorized", "unknown or revoked API key")
    return Caller(row.organisation_id, row.role, row.id, vehicle)


def check_role(caller: Caller, *roles: str) -> Caller:
    """The caller if it has one of ``roles`` (admin always), else 403."""
    if caller.role != "admin" and caller.role not in roles:
        raise ApiError(403, "forbidden", f"this needs the role {' or '.join(roles)}")
    return caller


def _caller(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)
) -> Caller:
    if credentials is None:
        raise ApiError(401, "unauthorized", "an API key is needed (Authorization: Bearer ...)")
    return caller_for_key(request, credentials.credentials)


class RoleCheck:
    """A dependency admitting callers with one of ``roles`` (admin always). A class rather
    than a closure so that ``roles`` can be read back from each route's dependencies: the
    role tests take every route's rule from the app itself, not from a copy that can drift."""

    def __init__(self, roles: tuple[str, ...]) -> None:
        self.roles = roles

    def __call__(self, caller: Caller = Depends(_caller)) -> Caller:
        return check_role(caller, *self.roles)


def require(*roles: str) -> RoleCheck:
    """A dependency admitting callers with one of ``roles`` (admin always)."""
    return RoleCheck(roles)

"""The audit log: who did what in an organisation. Routes write an entry in the same
transaction as the action (so there is never an action without its entry, nor an entry for
an action that rolled back) and read the organisation's entries back, newest first.

An entry names the acting API key (its row id, and its name and role when it acted), the
action, the object it acted on and a small JSON detail. The detail never holds secrets or
customers' contact data: :func:`record` refuses fields named like them and large details.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal, get_args

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.schema import ApiKey, AuditRow

AuditAction = Literal[
    "dispatched",
    "replanned",
    "cancelled",
    "settings_changed",
    "api_key_created",
    "api_key_revoked",
    "device_registered",
    "device_rotated",
    "device_revoked",
]
ACTIONS: tuple[str, ...] = get_args(AuditAction)
#: Most entries one read returns.
MAX_LIMIT = 500
DEFAULT_LIMIT = 100
#: Longest detail, as JSON: a few ids and counts, not a copy of the object.
MAX_DETAIL_CHARS = 2000
#: A detail field whose name contains one of these is refused (secrets, customers' contact).
FORBIDDEN_IN_NAMES = (
    "secret",
    "token",
    "password",
    "hash",
    "contact",
    "phone",
    "email",
    "address",
)
#: And these names exactly (an API key itself).
FORBIDDEN_NAMES = frozenset({"key", "api_key"})


def forbidden_fields(detail: Any, at: str = "") -> list[str]:
    """The paths of the detail's fields named like a secret or contact data (empty: none)."""
    found: list[str] = []
    if isinstance(detail, dict):
        for name, value in detail.items():
            path = f"{at}.{name}" if at else str(name)
            lowered = str(name).lower()
            if lowered in FORBIDDEN_NAMES or any(w in lowered for w in FORBIDDEN_IN_NAMES):
                found.append(path)
            found.extend(forbidden_fields(value, path))
    elif isinstance(detail, list):
        for i, value in enumerate(detail):
            found.extend(forbidden_fields(value, f"{at}[{i}]"))
    return found


def record(
    session: Session,
    *,
    organisation_id: str,
    api_key_id: str | None,
    action: AuditAction,
    object_type: str,
    object_id: str,
    at: datetime,
    detail: dict[str, Any] | None = None,
) -> AuditRow:
    """Add an entry in the session's transaction (flushed, not committed). The key must be
    the organisation's; its name and role are copied into the entry. Raises ``ValueError``
    for an unknown action, another organisation's key, or a detail that is too large or has
    a field named like a secret or contact data."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    detail = dict(detail or {})
    bad = forbidden_fields(detail)
    if bad:
        raise ValueError(f"audit details hold no secrets or contact data: {', '.join(bad)}")
    if len(json.dumps(detail, default=str)) > MAX_DETAIL_CHARS:
        raise ValueError(f"an audit detail is at most {MAX_DETAIL_CHARS} characters of JSON")
    name = role = ""
    if api_key_id is not None:
        key = session.get(ApiKey, api_key_id)
        if key is None or key.organisation_id != organisation_id:
            raise ValueError("the acting key is not one of the organisation's")
        name, role = key.name, key.role
    row = AuditRow(
        organisation_id=organisation_id,
        api_key_id=api_key_id,
        actor_name=name,
        actor_role=role,
        action=action,
        object_type=object_type,
        object_id=object_id,
        at=at,
        detail=detail,
    )
    session.add(row)
    session.flush()
    return row


def list_entries(
    session: Session,
    organisation_id: str,
    *,
    limit: int = DEFAULT_LIMIT,
    since: datetime | None = None,
) -> list[AuditRow]:
    """The organisation's entries, newest first: at most ``limit`` (1 to :data:`MAX_LIMIT`),
    only those at or after ``since`` when given. Never another organisation's."""
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be 1 to {MAX_LIMIT}")
    query = select(AuditRow).where(AuditRow.organisation_id == organisation_id)
    if since is not None:
        query = query.where(AuditRow.at >= since)
    query = query.order_by(AuditRow.at.desc(), AuditRow.id.desc()).limit(limit)
    return list(session.scalars(query))

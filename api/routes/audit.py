"""The organisation's audit log: who did what (dispatched, re-planned or cancelled a plan,
changed the organisation's settings, created a key), newest first. Dispatchers and admins
read it; it is written by the routes themselves, in each action's own transaction
(:mod:`store.audit`). Only the caller's organisation's entries, ever."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import AwareDatetime, BaseModel, Field

from api.deps import Dispatcher, SessionDep
from api.schemas import ErrorBody
from store.audit import DEFAULT_LIMIT, MAX_LIMIT, AuditAction, list_entries

router = APIRouter(
    prefix="/v1/audit",
    tags=["audit"],
    responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody}, 422: {"model": ErrorBody}},
)


class AuditEntryPublic(BaseModel):
    id: int
    at: datetime = Field(description="When it was done (the service's wall clock, UTC).")
    action: AuditAction
    object_type: str = Field(description="What it was done to: plan, organisation, api_key.")
    object_id: str = Field(description="Its id: a plan's id, the organisation's, a key's.")
    api_key_id: str | None = Field(description="The acting API key's id (GET /v1/keys).")
    actor_name: str = Field(description="The acting key's name when it acted.")
    actor_role: str = Field(description="The acting key's role when it acted.")
    detail: dict[str, Any] = Field(
        description="A few ids and counts (never secrets, never customers' contact data)."
    )


@router.get("", summary="The organisation's audit log, newest first (dispatcher, admin).")
def list_audit(
    caller: Dispatcher,
    session: SessionDep,
    limit: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description=f"Most entries returned (1 to {MAX_LIMIT}).")
    ] = DEFAULT_LIMIT,
    since: Annotated[
        AwareDatetime | None,
        Query(description="Only entries at or after this time (ISO 8601 with a UTC offset)."),
    ] = None,
) -> list[AuditEntryPublic]:
    rows = list_entries(session, caller.organisation_id, limit=limit, since=since)
    return [
        AuditEntryPublic(
            id=row.id,
            at=row.at,
            action=row.action,
            object_type=row.object_type,
            object_id=row.object_id,
            api_key_id=row.api_key_id,
            actor_name=row.actor_name,
            actor_role=row.actor_role,
            detail=row.detail,
        )
        for row in rows
    ]

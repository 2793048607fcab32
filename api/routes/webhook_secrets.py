"""The organisation's webhook signing secrets (admin): create or rotate, list, revoke.

A secret is shown once, in the answer that creates it. Creating one while others are valid
starts a rotation: the older ones keep signing (every webhook carries a signature with each)
until ``previous_valid_for_s`` has passed or they are revoked (docs/webhooks.md, ADR 0017).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, Field
from sqlalchemy import select

from api.deps import Admin, Now, SessionDep
from api.errors import conflict, not_found
from api.routes.fleet import ERRORS
from api.schemas import ErrorBody, Strict
from store.schema import WebhookSecretRow
from store.webhook_secrets import (
    MAX_VALID,
    SecretState,
    TooManySecretsError,
    create_secret,
    state,
)

router = APIRouter(
    prefix="/v1/organisation/webhook-secrets",
    tags=["organisation"],
    responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody}},
)

#: Longest a replaced secret may keep signing: 30 days.
MAX_ROTATION_S = 30 * 86_400


class WebhookSecretCreate(Strict):
    previous_valid_for_s: int = Field(
        86_400,
        ge=0,
        le=MAX_ROTATION_S,
        description="How long the secrets this one replaces keep signing (each webhook "
        "carries a signature with each), for receivers to switch over; 0: they stop now.",
    )


class WebhookSecretPublic(BaseModel):
    id: str
    created_at: datetime
    expires_at: datetime | None = Field(
        description="When it stops signing (set once a newer secret replaced it)."
    )
    revoked_at: datetime | None
    status: SecretState = Field(
        description="active and rotating secrets sign every webhook; expired and revoked "
        "ones no longer do."
    )


class WebhookSecretCreated(WebhookSecretPublic):
    secret: str = Field(
        description="The signing secret itself, shown only now: give it to your webhook "
        "receiver (docs/webhooks.md)."
    )
    previous_expire_at: datetime | None = Field(
        description="When the secrets it replaces stop signing (null: there were none)."
    )


SecretId = Annotated[str, Path(description="The secret's id, as returned when it was created.")]


def _public(row: WebhookSecretRow, now: datetime) -> WebhookSecretPublic:
    return WebhookSecretPublic(
        id=row.id,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        status=state(row, now),
    )


@router.post(
    "",
    status_code=201,
    responses=ERRORS,
    summary="Create a webhook signing secret, rotating the current one out (admin); the "
    "secret is shown once.",
)
def create_webhook_secret(
    caller: Admin, session: SessionDep, now: Now, body: WebhookSecretCreate | None = None
) -> WebhookSecretCreated:
    body = body or WebhookSecretCreate()
    try:
        created = create_secret(
            session, caller.organisation_id, now, timedelta(seconds=body.previous_valid_for_s)
        )
    except TooManySecretsError as exc:
        raise conflict(f"{exc} (at most {MAX_VALID} sign at once)") from exc
    public = _public(created.row, now)
    return WebhookSecretCreated(
        **public.model_dump(),
        secret=created.secret,
        previous_expire_at=created.previous_expire_at,
    )


@router.get("", summary="The organisation's webhook signing secrets, newest first (admin).")
def list_webhook_secrets(caller: Admin, session: SessionDep, now: Now) -> list[WebhookSecretPublic]:
    rows = session.scalars(
        select(WebhookSecretRow)
        .where(WebhookSecretRow.organisation_id == caller.organisation_id)
        .order_by(WebhookSecretRow.created_at.desc(), WebhookSecretRow.id.desc())
    )
    return [_public(row, now) for row in rows]


@router.delete(
    "/{secret_id}",
    status_code=204,
    responses=ERRORS,
    summary="Revoke a webhook signing secret: it signs nothing from now on (admin).",
)
def revoke_webhook_secret(
    secret_id: SecretId, caller: Admin, session: SessionDep, now: Now
) -> Response:
    row = session.get(WebhookSecretRow, secret_id)
    if row is None or row.organisation_id != caller.organisation_id:
        raise not_found("webhook secret", secret_id)
    if row.revoked_at is None:
        row.revoked_at = now
    return Response(status_code=204)

"""Each organisation's webhook signing secrets: create (rotating the older ones out), revoke,
and the ones that sign now (docs/webhooks.md, ADR 0017).

A secret is *valid* at ``now`` while it is not revoked and ``expires_at`` is unset or later.
Creating one gives every older valid secret an expiry ``previous_valid_for`` from now (never
later than one it already has), so receivers can switch over while webhooks carry a signature
with each. At most :data:`MAX_VALID` are valid at once, which bounds the signature header.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from store.schema import WebhookSecretRow
from store.secrets import new_webhook_secret

SecretState = Literal["active", "rotating", "expired", "revoked"]
#: Valid secrets an organisation may hold at once (the current one and those rotating out).
MAX_VALID = 3


class TooManySecretsError(Exception):
    """Creating one more would make more than :data:`MAX_VALID` valid at once."""


@dataclass(frozen=True, slots=True)
class Created:
    row: WebhookSecretRow
    #: The secret itself: for the creation answer only, never shown again.
    secret: str
    #: When the secrets it replaced stop signing (None: there were none).
    previous_expire_at: datetime | None


def valid_secrets(session: Session, organisation_id: str, now: datetime) -> list[WebhookSecretRow]:
    """The organisation's valid secrets at ``now``, newest first."""
    query = (
        select(WebhookSecretRow)
        .where(
            WebhookSecretRow.organisation_id == organisation_id,
            WebhookSecretRow.revoked_at.is_(None),
            or_(WebhookSecretRow.expires_at.is_(None), WebhookSecretRow.expires_at > now),
        )
        .order_by(WebhookSecretRow.created_at.desc(), WebhookSecretRow.id.desc())
    )
    return list(session.scalars(query))


def signing_secrets(session: Session, organisation_id: str, now: datetime) -> tuple[str, ...]:
    """What signs the organisation's webhooks at ``now`` (newest first; empty: none)."""
    return tuple(row.secret for row in valid_secrets(session, organisation_id, now))


def create_secret(
    session: Session, organisation_id: str, now: datetime, previous_valid_for: timedelta
) -> Created:
    """A new secret for the organisation; older valid ones expire ``previous_valid_for`` from
    ``now`` (zero: at once). Raises :class:`TooManySecretsError` past :data:`MAX_VALID`."""
    older = valid_secrets(session, organisation_id, now)
    if len(older) >= MAX_VALID:
        raise TooManySecretsError(
            f"{len(older)} webhook secrets are valid already: revoke one first"
        )
    until = now + previous_valid_for
    for row in older:
        if row.expires_at is None or row.expires_at > until:
            row.expires_at = until
    secret = new_webhook_secret()
    row = WebhookSecretRow(organisation_id=organisation_id, secret=secret, created_at=now)
    session.add(row)
    session.flush()
    return Created(row, secret, until if older else None)


def state(row: WebhookSecretRow, now: datetime) -> SecretState:
    """``active`` (signs, no expiry), ``rotating`` (signs until ``expires_at``), ``expired``
    or ``revoked``."""
    if row.revoked_at is not None:
        return "revoked"
    if row.expires_at is None:
        return "active"
    return "rotating" if row.expires_at > now else "expired"

"""webhook secrets per organisation; no receivers' answers in delivery errors

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-10 09:00:00

Each organisation gets its own webhook signing secrets (``webhook_secrets``), replacing the
one ``LASTMILE_WEBHOOK_SECRET`` every tenant shared (ADR 0017). Webhook errors recorded before
this revision quoted the start of the receiver's answer (up to 300 characters of whatever the
URL returned); they are cut back to the status code, as the sender now records them.
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from alembic import op

import store.schema

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

#: "webhook: HTTP 502: <the receiver's body>" and "... (redirect to <Location> not followed...)"
_QUOTED = re.compile(r"(webhook: HTTP \d{3})\b.*", re.S)
_REMOVED = r"\1 (the receiver's answer is not recorded)"


def upgrade() -> None:
    op.create_table(
        "webhook_secrets",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("organisation_id", sa.String(length=32), nullable=False),
        sa.Column("secret", sa.String(length=100), nullable=False),
        sa.Column("created_at", store.schema.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", store.schema.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", store.schema.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("webhook_secrets", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_webhook_secrets_organisation_id"), ["organisation_id"], unique=False
        )
    _scrub_quoted_answers()


def _scrub_quoted_answers() -> None:
    """Webhook rows' errors and attempts keep the status code, not the receiver's text."""
    bind = op.get_bind()
    outbox = sa.table(
        "notification_outbox",
        sa.column("id", sa.Integer()),
        sa.column("channel", sa.String()),
        sa.column("last_error", sa.Text()),
    )
    attempts = sa.table(
        "notification_attempts",
        sa.column("id", sa.Integer()),
        sa.column("outbox_id", sa.Integer()),
        sa.column("detail", sa.Text()),
    )
    rows = bind.execute(
        sa.select(outbox.c.id, outbox.c.last_error).where(
            outbox.c.channel == "webhook", outbox.c.last_error.like("%webhook: HTTP %")
        )
    ).all()
    for row_id, text in rows:
        bind.execute(
            outbox.update()
            .where(outbox.c.id == row_id)
            .values(last_error=_QUOTED.sub(_REMOVED, text))
        )
    webhook_rows = sa.select(outbox.c.id).where(outbox.c.channel == "webhook")
    details = bind.execute(
        sa.select(attempts.c.id, attempts.c.detail).where(
            attempts.c.outbox_id.in_(webhook_rows), attempts.c.detail.like("%webhook: HTTP %")
        )
    ).all()
    for attempt_id, text in details:
        bind.execute(
            attempts.update()
            .where(attempts.c.id == attempt_id)
            .values(detail=_QUOTED.sub(_REMOVED, text))
        )


def downgrade() -> None:
    with op.batch_alter_table("webhook_secrets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_secrets_organisation_id"))

    op.drop_table("webhook_secrets")

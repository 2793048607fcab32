"""customers' messages through a provider's webhook

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-13 10:00:00

Issue 19. ``inbound_channels`` holds each organisation's messaging provider (Twilio) and the
secret it signs its webhooks with (stored as it is: the service computes the same signature).
``support_contacts.provider_message_id`` keeps the provider's id of each message, unique per
organisation, so a webhook delivered twice makes one contact.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import store.schema

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inbound_channels",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("organisation_id", sa.String(length=32), nullable=False),
        sa.Column("provider", sa.String(length=20), nullable=False),
        sa.Column("secret", sa.String(length=200), nullable=False),
        sa.Column("created_at", store.schema.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["organisation_id"], ["organisations.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("organisation_id", "provider", name="uq_inbound_channels_provider"),
    )
    with op.batch_alter_table("inbound_channels", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_inbound_channels_organisation_id"), ["organisation_id"], unique=False
        )
    with op.batch_alter_table("support_contacts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("provider_message_id", sa.String(length=100), nullable=True))
        batch_op.create_unique_constraint(
            "uq_support_contacts_provider_message", ["organisation_id", "provider_message_id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("support_contacts", schema=None) as batch_op:
        batch_op.drop_constraint("uq_support_contacts_provider_message", type_="unique")
        batch_op.drop_column("provider_message_id")
    with op.batch_alter_table("inbound_channels", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_inbound_channels_organisation_id"))
    op.drop_table("inbound_channels")

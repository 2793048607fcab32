"""the drivers' web app: order addresses, drivers' actions with proof of delivery

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-27 10:00:00

Issue 20. ``orders.address`` is the address as the shop wrote it, for the driver to read.
``delivery_proofs`` holds each action a driver took in the drivers' app (arrived, delivered,
failed) with its proof: recipient, reason, where the phone was, and the keys of the photo and
signature in the proof file store. ``action_id`` (made by the phone) is unique per
organisation, so an action the phone sends again is stored once; ``body_hash`` tells a retry
from a different action reusing the id.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import store.schema

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("address", sa.String(length=300), nullable=False, server_default="")
        )
    op.create_table(
        "delivery_proofs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("organisation_id", sa.String(length=32), nullable=False),
        sa.Column("order_id", sa.String(length=32), nullable=False),
        sa.Column("vehicle_id", sa.String(length=32), nullable=False),
        sa.Column("action_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("recipient_name", sa.String(length=120), nullable=False),
        sa.Column("at", store.schema.UTCDateTime(timezone=True), nullable=False),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("accuracy_m", sa.Float(), nullable=True),
        sa.Column("photo_key", sa.String(length=300), nullable=True),
        sa.Column("signature_key", sa.String(length=300), nullable=True),
        sa.Column("body_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", store.schema.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"]),
        sa.ForeignKeyConstraint(["organisation_id"], ["organisations.id"]),
        sa.ForeignKeyConstraint(["vehicle_id"], ["vehicles.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("organisation_id", "action_id", name="uq_delivery_proofs_action"),
    )
    with op.batch_alter_table("delivery_proofs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_delivery_proofs_organisation_id"), ["organisation_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_delivery_proofs_order_id"), ["order_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_delivery_proofs_vehicle_id"), ["vehicle_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("delivery_proofs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_delivery_proofs_vehicle_id"))
        batch_op.drop_index(batch_op.f("ix_delivery_proofs_order_id"))
        batch_op.drop_index(batch_op.f("ix_delivery_proofs_organisation_id"))
    op.drop_table("delivery_proofs")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_column("address")

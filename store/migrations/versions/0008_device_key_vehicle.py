"""device keys bound to one vehicle; vehicles found by their id across organisations

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-11 09:00:00

Issue 21. A ``device`` API key names the one vehicle it may report for
(``api_keys.vehicle_id``, the vehicle's row). Keys made before this revision have none and act
for no vehicle until replaced by a key that names one. ``vehicles.external_id`` gets an index
of its own: the MQTT ingester resolves a topic's vehicle id across organisations in every
batch (an id two organisations hold is refused), instead of remembering the mapping.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("vehicle_id", sa.String(length=32), nullable=True))
        batch_op.create_index(batch_op.f("ix_api_keys_vehicle_id"), ["vehicle_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_api_keys_vehicle_id_vehicles"), "vehicles", ["vehicle_id"], ["id"]
        )
    with op.batch_alter_table("vehicles", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_vehicles_external_id"), ["external_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("vehicles", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_vehicles_external_id"))
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_api_keys_vehicle_id_vehicles"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_api_keys_vehicle_id"))
        batch_op.drop_column("vehicle_id")

"""device keys' Mosquitto password hashes

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-28 09:00:00

The drivers' web app publishes its fixes over MQTT with its device key as password
(api/driver_mqtt.py). An external Mosquitto checks passwords against the exported password
file (ADR 0014), which needs each key's hash in Mosquitto's own ``$7$`` format: the lookup
hash (``key_hash``, SHA-256) is not one Mosquitto reads, and the key itself is never stored,
so the hash is made once, when the key is. Keys made before this revision have none and stay
out of the broker's files: replace them to publish over MQTT.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("mqtt_hash", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_column("mqtt_hash")

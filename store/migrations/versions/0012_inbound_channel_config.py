"""messaging providers' settings beyond the signing secret

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-20 10:00:00

Issue 19. WhatsApp (the Cloud API) needs more than a signing secret: the business phone
number's id, the access token that sends, the verify token of the webhook's challenge; an
IMAP mailbox needs its host and login. ``inbound_channels.config`` holds them per provider.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inbound_channels", schema=None) as batch_op:
        batch_op.add_column(sa.Column("config", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("inbound_channels", schema=None) as batch_op:
        batch_op.drop_column("config")

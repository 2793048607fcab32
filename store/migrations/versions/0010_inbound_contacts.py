"""customers' own messages as support contacts, answered by the service or by a person

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-13 09:00:00

Issue 19. A message a customer sends (SMS, WhatsApp, e-mail, chat) becomes a support contact
with the sender, the text, what the rules read in it and who answered: ``auto`` (the service,
by itself), ``person``, or nobody yet (waiting in the support queue with the suggested
answer). A contact that matched no order has no order, so ``order_id`` may be null. Contacts
recorded before this were recorded by a person: ``answered_by`` = ``person``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("support_contacts", schema=None) as batch_op:
        batch_op.alter_column("order_id", existing_type=sa.String(length=32), nullable=True)
        batch_op.add_column(
            sa.Column("sender", sa.String(length=200), nullable=False, server_default="")
        )
        batch_op.add_column(sa.Column("message", sa.Text(), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("intent", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("answered_by", sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column("answer", sa.Text(), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("handover", sa.String(length=20), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_support_contacts_answered_by"), ["answered_by"], unique=False
        )
    op.execute("UPDATE support_contacts SET answered_by = 'person'")


def downgrade() -> None:
    op.execute("DELETE FROM support_contacts WHERE order_id IS NULL")
    with op.batch_alter_table("support_contacts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_support_contacts_answered_by"))
        for column in ("handover", "answer", "answered_by", "intent", "message", "sender"):
            batch_op.drop_column(column)
        batch_op.alter_column("order_id", existing_type=sa.String(length=32), nullable=False)

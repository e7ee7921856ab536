"""The message as it was built for its first try, for a channel whose receiver drops a key it has had.

A webhook receiver processes an Idempotency-Key once and refuses the same key with another body (422):
a retry after a timeout the receiver had in fact processed must be the same bytes. Rebuilt when it goes
again, it was not when the policy changed in between (its plan_hash, a template) or a payment dated
before the decision came in. Kept before its first try, it goes again as it was.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("contacts") as table:
        table.add_column(sa.Column("message", sa.JSON))


def downgrade() -> None:
    with op.batch_alter_table("contacts") as table:
        table.drop_column("message")

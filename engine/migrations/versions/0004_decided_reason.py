"""The decision's own reason of a contact, kept while `reason` tells of a delivery retry.

A `sent` (or handed-off `escalated`) row's reason is the decision's: why it was deferred first, or
`channels exhausted`; a transient failure writes its retry note over `reason` meanwhile, so the
decision's reason needs a column of its own to come back when the delivery succeeds.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("contacts") as table:
        table.add_column(sa.Column("decided_reason", sa.Text))
    # a row's `reason` is the decision's until a retry writes its note over it: keep it before one does
    # (a row whose note already replaced it keeps NULL; its reason is lost)
    op.execute("UPDATE contacts SET decided_reason = reason WHERE reason IS NOT NULL "
               "AND reason NOT LIKE 'retrying from %'")


def downgrade() -> None:
    with op.batch_alter_table("contacts") as table:
        table.drop_column("decided_reason")

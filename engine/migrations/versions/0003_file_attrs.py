"""The extra columns of the payments, promises, disputes and events files, kept as text attributes.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TABLES = ("payments", "promises", "disputes", "provider_events")


def upgrade() -> None:
    for name in TABLES:
        with op.batch_alter_table(name) as table:
            # nullable: the rows imported before have none (their files' other columns were not kept)
            table.add_column(sa.Column("attrs", sa.JSON))


def downgrade() -> None:
    for name in reversed(TABLES):
        with op.batch_alter_table(name) as table:
            table.drop_column("attrs")

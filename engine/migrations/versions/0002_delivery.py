"""Delivery through providers: retries, fallback memory, costs, provider reports, consent.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

MONEY = sa.String(40)
TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("contacts") as table:
        table.add_column(sa.Column("next_attempt_at", TIME))  # a transient failure is retried from then
        table.add_column(sa.Column("error_code", sa.String(64)))  # the provider's code of the last failure
        table.add_column(sa.Column("cost", MONEY))  # channels.yaml `costs`, for the reports
        table.add_column(sa.Column("delivery", sa.String(16)))  # the provider's last report: delivered, read ...
        table.add_column(sa.Column("delivery_at", TIME))
        table.add_column(sa.Column("steps", sa.JSON))  # the step instances it settles (to reopen on failure)
    with op.batch_alter_table("steps") as table:
        table.add_column(sa.Column("failed", sa.JSON))  # channels that failed for good: the fallback goes on
    with op.batch_alter_table("customers") as table:
        table.add_column(sa.Column("consents", sa.JSON))  # NULL: no consent records kept
        table.add_column(sa.Column("legal_status", sa.String(32)))
    with op.batch_alter_table("provider_events") as table:
        table.add_column(sa.Column("detail", sa.Text))  # a reply's text, a bounce's reason


def downgrade() -> None:
    with op.batch_alter_table("provider_events") as table:
        table.drop_column("detail")
    with op.batch_alter_table("customers") as table:
        table.drop_column("legal_status")
        table.drop_column("consents")
    with op.batch_alter_table("steps") as table:
        table.drop_column("failed")
    with op.batch_alter_table("contacts") as table:
        for column in ("steps", "delivery_at", "delivery", "cost", "error_code", "next_attempt_at"):
            table.drop_column(column)

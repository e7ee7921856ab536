"""The initial schema (what stores created before Alembic hold as schema_version 1).

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Frozen copies of the column types of engine/store.py at this revision (a migration never follows
# later edits of the live tables): exact decimals as text, aware times.
MONEY = sa.String(40)
TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "customers",
        sa.Column("id", sa.String(100), primary_key=True),
        sa.Column("name", sa.Text), sa.Column("email", sa.Text), sa.Column("phone", sa.Text),
        sa.Column("whatsapp", sa.Text), sa.Column("timezone", sa.String(64)), sa.Column("country", sa.String(8)),
        sa.Column("language", sa.String(16)), sa.Column("do_not_contact", sa.Boolean, nullable=False),
        sa.Column("optouts", sa.JSON, nullable=False), sa.Column("attrs", sa.JSON, nullable=False),
        sa.Column("next_action_at", TIME))
    op.create_index("ix_customers_next_action", "customers", ["next_action_at"])
    op.create_table(
        "invoices",
        sa.Column("id", sa.String(100), primary_key=True),
        sa.Column("customer_id", sa.String(100), nullable=False),
        sa.Column("number", sa.Text), sa.Column("amount", MONEY, nullable=False),
        sa.Column("balance", MONEY, nullable=False), sa.Column("currency", sa.String(3)),
        sa.Column("issue_date", sa.Date), sa.Column("due_date", sa.Date, nullable=False),
        sa.Column("status", sa.String(16), nullable=False), sa.Column("attrs", sa.JSON, nullable=False))
    op.create_index("ix_invoices_customer_id", "invoices", ["customer_id"])
    op.create_table(
        "payments",
        sa.Column("payment_id", sa.String(200), primary_key=True),
        sa.Column("invoice_id", sa.String(100), nullable=False), sa.Column("amount", MONEY, nullable=False),
        sa.Column("paid_at", TIME, nullable=False), sa.Column("currency", sa.String(3)), sa.Column("method", sa.Text))
    op.create_index("ix_payments_invoice_id", "payments", ["invoice_id"])
    op.create_table(
        "promises",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("invoice_id", sa.String(100)), sa.Column("customer_id", sa.String(100)),
        sa.Column("amount", MONEY, nullable=False), sa.Column("promised_date", sa.Date, nullable=False),
        sa.Column("made_at", TIME, nullable=False), sa.Column("channel", sa.String(32)))
    op.create_index("ix_promises_invoice_id", "promises", ["invoice_id"])
    op.create_index("ix_promises_customer_id", "promises", ["customer_id"])
    op.create_table(
        "disputes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("invoice_id", sa.String(100), nullable=False), sa.Column("opened_at", TIME, nullable=False),
        sa.Column("reason", sa.Text), sa.Column("resolved_at", TIME))
    op.create_index("ix_disputes_invoice_id", "disputes", ["invoice_id"])
    op.create_table(
        "provider_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", TIME, nullable=False), sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("type", sa.String(32), nullable=False), sa.Column("contact_id", sa.String(300)),
        sa.Column("customer_id", sa.String(100)))
    op.create_index("ix_provider_events_customer_id", "provider_events", ["customer_id"])
    op.create_table(
        "contacts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(400), nullable=False, unique=True),
        sa.Column("policy", sa.String(100), nullable=False), sa.Column("plan_hash", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.String(100), nullable=False), sa.Column("invoice_ids", sa.Text, nullable=False),
        sa.Column("stage", sa.String(100)), sa.Column("step", sa.String(100)), sa.Column("channel", sa.String(32)),
        sa.Column("template", sa.String(100)), sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text), sa.Column("provider_id", sa.Text),
        sa.Column("attempts", sa.Integer, nullable=False), sa.Column("at", TIME, nullable=False),
        sa.Column("tz", sa.String(64), nullable=False), sa.Column("fallbacks", sa.JSON, nullable=False),
        sa.Column("queue", sa.String(100)), sa.Column("priority", sa.Text), sa.Column("webhook", sa.String(100)),
        sa.Column("tick_id", sa.Integer), sa.Column("updated_at", TIME, nullable=False))
    op.create_index("ix_contacts_customer_id", "contacts", ["customer_id"])
    op.create_index("ix_contacts_status", "contacts", ["status"])
    op.create_table(
        "steps",
        sa.Column("key", sa.String(400), primary_key=True),
        sa.Column("customer_id", sa.String(100), nullable=False), sa.Column("state", sa.String(16), nullable=False),
        sa.Column("status", sa.Text, nullable=False))
    op.create_index("ix_steps_customer_id", "steps", ["customer_id"])
    op.create_table(
        "stopped",
        sa.Column("invoice_id", sa.String(100), primary_key=True),
        sa.Column("customer_id", sa.String(100), nullable=False))
    op.create_index("ix_stopped_customer_id", "stopped", ["customer_id"])
    op.create_table(
        "agent_tasks",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("contact_key", sa.String(400), nullable=False, unique=True),
        sa.Column("queue", sa.String(100), nullable=False), sa.Column("priority", sa.Text),
        sa.Column("customer_id", sa.String(100), nullable=False), sa.Column("invoice_ids", sa.Text, nullable=False),
        sa.Column("step", sa.String(100)), sa.Column("reason", sa.Text), sa.Column("created_at", TIME, nullable=False),
        sa.Column("status", sa.String(16), nullable=False))
    op.create_table(
        "ticks",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("now", TIME, nullable=False), sa.Column("started_at", TIME, nullable=False),
        sa.Column("finished_at", TIME), sa.Column("plan_hash", sa.String(64), nullable=False),
        sa.Column("host", sa.String(255)), sa.Column("pid", sa.Integer), sa.Column("customers", sa.Integer),
        sa.Column("decisions", sa.Integer), sa.Column("sent", sa.Integer), sa.Column("failed", sa.Integer))


def downgrade() -> None:
    for table in ("ticks", "agent_tasks", "stopped", "steps", "contacts", "provider_events", "disputes", "promises",
                  "payments", "invoices", "customers"):
        op.drop_table(table)

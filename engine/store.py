"""The invoice store: SQLAlchemy 2 tables, connection, and versioned schema migrations.

SQLite by default (a file, WAL journal), PostgreSQL by URL. Times are stored in UTC; amounts as exact
decimal text (SQLite has no exact decimal type). Migrations are an ordered list of functions, each
applied once in its own transaction and recorded in `schema_version` (applied automatically when the
store opens, or by `collect db upgrade`).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from decimal import Decimal

from sqlalchemy import (JSON, Boolean, Column, Date, DateTime, Index, Integer, MetaData, String, Table, Text,
                        TypeDecorator, create_engine, event, text)
from sqlalchemy.engine import Engine

DEFAULT_URL = "sqlite:///collect.db"
UTC = dt.timezone.utc


class Money(TypeDecorator):
    """Exact decimals on every backend (stored as text)."""

    impl = String(40)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return None if value is None else str(Decimal(value))

    def process_result_value(self, value, dialect):
        return None if value is None else Decimal(value)


class UtcDateTime(TypeDecorator):
    """Aware datetimes in, aware UTC datetimes out (SQLite keeps no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData()

customers = Table(
    "customers", metadata,
    Column("id", String(100), primary_key=True),
    Column("name", Text), Column("email", Text), Column("phone", Text), Column("whatsapp", Text),
    Column("timezone", String(64)), Column("country", String(8)), Column("language", String(16)),
    Column("do_not_contact", Boolean, nullable=False, default=False),
    Column("optouts", JSON, nullable=False, default=list),
    Column("attrs", JSON, nullable=False, default=dict),
    Column("next_action_at", UtcDateTime),  # NULL: never decided yet, so due now
)
Index("ix_customers_next_action", customers.c.next_action_at)

invoices = Table(
    "invoices", metadata,
    Column("id", String(100), primary_key=True),
    Column("customer_id", String(100), nullable=False, index=True),
    Column("number", Text), Column("amount", Money, nullable=False), Column("balance", Money, nullable=False),
    Column("currency", String(3)), Column("issue_date", Date), Column("due_date", Date, nullable=False),
    Column("status", String(16), nullable=False, default="open"),
    Column("attrs", JSON, nullable=False, default=dict),
)

payments = Table(
    "payments", metadata,
    Column("payment_id", String(200), primary_key=True),
    Column("invoice_id", String(100), nullable=False, index=True),
    Column("amount", Money, nullable=False), Column("paid_at", UtcDateTime, nullable=False),
    Column("currency", String(3)), Column("method", Text),
)

promises = Table(
    "promises", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("invoice_id", String(100), index=True), Column("customer_id", String(100), index=True),
    Column("amount", Money, nullable=False), Column("promised_date", Date, nullable=False),
    Column("made_at", UtcDateTime, nullable=False), Column("channel", String(32)),
)

disputes = Table(
    "disputes", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("invoice_id", String(100), nullable=False, index=True),
    Column("opened_at", UtcDateTime, nullable=False), Column("reason", Text), Column("resolved_at", UtcDateTime),
)

provider_events = Table(
    "provider_events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime, nullable=False), Column("channel", String(32), nullable=False),
    Column("type", String(32), nullable=False), Column("contact_id", String(300)),
    Column("customer_id", String(100), index=True),
)

# The outbox and audit log: one row per contact attempt outcome, unique by key (exactly once).
contacts = Table(
    "contacts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(400), nullable=False, unique=True),
    Column("policy", String(100), nullable=False), Column("plan_hash", String(64), nullable=False),
    Column("customer_id", String(100), nullable=False, index=True),
    Column("invoice_ids", Text, nullable=False), Column("stage", String(100)), Column("step", String(100)),
    Column("channel", String(32)), Column("template", String(100)),
    Column("status", String(16), nullable=False),  # sending -> sent | failed; deferred, skipped, escalated
    Column("reason", Text), Column("provider_id", Text), Column("attempts", Integer, nullable=False, default=0),
    Column("at", UtcDateTime, nullable=False),  # the decision's moment
    Column("tz", String(64), nullable=False),  # the customer's zone, to show `at` in local time
    Column("fallbacks", JSON, nullable=False, default=list),
    Column("queue", String(100)), Column("priority", Text), Column("webhook", String(100)),
    Column("tick_id", Integer),  # the tick that owns a `sending` row while it delivers it
    Column("updated_at", UtcDateTime, nullable=False),
)
Index("ix_contacts_status", contacts.c.status)

# Step instances settled or deferred: the decision core's memory of what already happened.
steps = Table(
    "steps", metadata,
    Column("key", String(400), primary_key=True),
    Column("customer_id", String(100), nullable=False, index=True),
    Column("state", String(16), nullable=False),  # done | pending
    Column("status", Text, nullable=False),  # the final status, or the deferral reason
)

stopped = Table("stopped", metadata, Column("invoice_id", String(100), primary_key=True),
                Column("customer_id", String(100), nullable=False, index=True))

agent_tasks = Table(
    "agent_tasks", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("contact_key", String(400), nullable=False, unique=True),
    Column("queue", String(100), nullable=False), Column("priority", Text),
    Column("customer_id", String(100), nullable=False), Column("invoice_ids", Text, nullable=False),
    Column("step", String(100)), Column("reason", Text),
    Column("created_at", UtcDateTime, nullable=False), Column("status", String(16), nullable=False, default="open"),
)

ticks = Table(
    "ticks", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("now", UtcDateTime, nullable=False), Column("started_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime), Column("plan_hash", String(64), nullable=False),
    Column("host", String(255)), Column("pid", Integer),  # to tell a live tick from a crashed one
    Column("customers", Integer, default=0), Column("decisions", Integer, default=0),
    Column("sent", Integer, default=0), Column("failed", Integer, default=0),
)

schema_version = Table("schema_version", metadata, Column("version", Integer, primary_key=True),
                       Column("applied_at", UtcDateTime, nullable=False))


def _v1(conn) -> None:
    """The initial schema."""
    metadata.create_all(conn, tables=[t for t in metadata.sorted_tables if t.name != "schema_version"])


MIGRATIONS = [_v1]  # append, never edit: each function moves the schema one version forward


def url_from(option: str | None) -> str:
    return option or os.environ.get("COLLECT_DB") or DEFAULT_URL


def connect(url: str | None = None, upgrade: bool = True) -> Engine:
    """Open the store; apply pending migrations unless told not to."""
    url = url_from(url)
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    engine = create_engine(url, future=True, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    if upgrade:
        migrate(engine)
    return engine


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")  # a second tick waits for the first instead of failing
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def current_version(engine: Engine) -> int:
    with engine.connect() as conn:
        schema_version.create(conn, checkfirst=True)
        conn.commit()
        row = conn.execute(text("SELECT max(version) FROM schema_version")).scalar()
    return row or 0


def migrate(engine: Engine) -> list[int]:
    """Apply the migrations not yet applied, each in its own transaction. Returns the versions applied."""
    applied = []
    version = current_version(engine)
    for number, migration in enumerate(MIGRATIONS[version:], start=version + 1):
        with engine.begin() as conn:
            migration(conn)
            conn.execute(schema_version.insert().values(version=number, applied_at=dt.datetime.now(UTC)))
        applied.append(number)
    return applied


def dumps(value) -> str:
    return json.dumps(value, sort_keys=True, default=str)

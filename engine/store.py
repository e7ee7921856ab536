"""The invoice store: SQLAlchemy 2 tables, connection, and versioned schema migrations.

SQLite by default (a file, WAL journal), PostgreSQL by URL. Times are stored in UTC; amounts as exact
decimal text (SQLite has no exact decimal type). The tables below are the live shape the code queries;
the schema itself is made by Alembic revisions (engine/migrations/versions, frozen once applied),
applied automatically when the store opens or by `collect db upgrade`, under a lock so that two
processes opening a new store at once do not both migrate it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from decimal import Decimal

from pathlib import Path

from sqlalchemy import (JSON, Boolean, Column, Date, DateTime, Index, Integer, MetaData, String, Table, Text,
                        TypeDecorator, create_engine, event, inspect, text)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.pool import NullPool

from .portfolio import money

DEFAULT_URL = "sqlite:///collect.db"
UTC = dt.timezone.utc


class Money(TypeDecorator):
    """Exact decimals on every backend (stored as text). More than MONEY_PLACES decimal places (a float's
    0.30000000000000004 from an export) are rounded half-even (portfolio.money, as the CSV reader does),
    so that the text fits the column: with at most 15 digits before the point (the CSV reader's limit)
    it is at most 22 characters."""

    impl = String(40)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        return str(money(Decimal(value)))

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
    Column("consents", JSON),  # channels the customer explicitly agreed to; NULL: no records kept
    Column("legal_status", String(32)),  # sued, insolvent ...: some laws stop all contact then
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
    Column("attrs", JSON),  # the file's other columns, as text; NULL: imported before they were kept (0003)
)

promises = Table(
    "promises", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("invoice_id", String(100), index=True), Column("customer_id", String(100), index=True),
    Column("amount", Money, nullable=False), Column("promised_date", Date, nullable=False),
    Column("made_at", UtcDateTime, nullable=False), Column("channel", String(32)),
    Column("attrs", JSON),  # as payments.attrs
)

disputes = Table(
    "disputes", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("invoice_id", String(100), nullable=False, index=True),
    Column("opened_at", UtcDateTime, nullable=False), Column("reason", Text), Column("resolved_at", UtcDateTime),
    Column("attrs", JSON),  # as payments.attrs
)

provider_events = Table(
    "provider_events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime, nullable=False), Column("channel", String(32), nullable=False),
    Column("type", String(32), nullable=False), Column("contact_id", String(300)),
    Column("customer_id", String(100), index=True),
    Column("detail", Text),  # a reply's text, a bounce's reason
    Column("attrs", JSON),  # as payments.attrs
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
    Column("reason", Text),  # of a `sending` row waiting for a retry: the retry's note
    Column("decided_reason", Text),  # the decision's reason, `reason` again once delivered; NULL: before 0004
    Column("provider_id", Text), Column("attempts", Integer, nullable=False, default=0),
    Column("at", UtcDateTime, nullable=False),  # the decision's moment
    Column("tz", String(64), nullable=False),  # the customer's zone, to show `at` in local time
    Column("fallbacks", JSON, nullable=False, default=list),
    Column("queue", String(100)), Column("priority", Text), Column("webhook", String(100)),
    Column("tick_id", Integer),  # the tick that owns a `sending` row while it delivers it
    Column("updated_at", UtcDateTime, nullable=False),
    Column("next_attempt_at", UtcDateTime),  # a transient failure is retried from then
    Column("error_code", String(64)),  # the provider's code of the last failure
    Column("cost", Money),  # channels.yaml `costs` of a delivered message
    Column("delivery", String(16)),  # the provider's last report: delivered, read, bounced ...
    Column("delivery_at", UtcDateTime),
    Column("steps", JSON),  # the step instances it settles: reopened when the delivery fails for good
    # the message as first tried on a channel whose receiver drops a key it has had: sent again as it was
    Column("message", JSON),
)
Index("ix_contacts_status", contacts.c.status)

# Step instances settled or deferred: the decision core's memory of what already happened.
steps = Table(
    "steps", metadata,
    Column("key", String(400), primary_key=True),
    Column("customer_id", String(100), nullable=False, index=True),
    Column("state", String(16), nullable=False),  # done | pending
    Column("status", Text, nullable=False),  # the final status, or the deferral reason
    Column("failed", JSON),  # channels that failed for good for this step: the fallback goes on
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

def url_from(option: str | None) -> str:
    return option or os.environ.get("COLLECT_DB") or DEFAULT_URL


class StoreError(Exception):
    """The store cannot be opened: not there, not reachable, or its driver is missing."""


def one_line(exc: BaseException) -> str:
    """A failure as one line for an operator: a database error without its SQL, parameters and links
    (`database is locked`, `connection refused`), anything else as it reads."""
    from sqlalchemy.exc import DBAPIError

    text = str(exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc)
    return (text.strip().splitlines() or [type(exc).__name__])[0]


class StoreUrlError(StoreError):
    """The store URL is not a database URL, or names an unknown dialect."""


def _at_in_password(url: str) -> bool:
    """Does a server URL's password hold an unencoded '@' (user:pass@word@host)? Every parser splits it at
    the wrong place, and part of the password becomes the host. An '@' in the user name before the
    password (Azure's myadmin@server:pw@host) parses fine."""
    if url.startswith("sqlite") or "://" not in url:
        return False
    head = url.split("://", 1)[1].split("?", 1)[0]
    if head.count("@") < 2:
        return False
    userinfo = head.rsplit("@", 1)[0]
    return ":" in userinfo and "@" in userinfo.split(":", 1)[1]


def shown_url(url: str) -> str:
    """The URL as it may be printed: its password as ***, also one given as a query parameter
    (libpq takes ?password=, ?sslpassword=)."""
    if _at_in_password(url):  # mask up to the last '@' of user:PASSWORD@host, which no parser finds
        scheme, rest = url.split("://", 1)
        head, query = rest.split("?", 1) if "?" in rest else (rest, None)
        user, host = head.split(":", 1)[0], head.rsplit("@", 1)[1]
        return f"{scheme}://{user}:***@{host}" + (f"?{query}" if query is not None else "")
    try:
        parsed = make_url(url)
        hidden = {k: "***" for k in parsed.query if any(w in k.lower() for w in ("pass", "secret", "token"))}
        shown = parsed.update_query_dict(hidden).render_as_string(hide_password=True)
        return shown.replace("%2A%2A%2A", "***")
    except (ArgumentError, ValueError):  # unparsable, so mask by hand whatever sits in user:PASSWORD@
        return re.sub(r"(//[^/@:]*:)[^/@]*@", r"\1***@", url)


SUPPORTED = ("sqlite", "sqlite+pysqlite", "postgresql+psycopg")  # the databases and drivers the store is tested on


# what SQLAlchemy's SQLite driver reads from a URL's query without uri=true (anything else it ignores)
_SQLITE_ARGS = {"timeout", "isolation_level", "detect_types", "check_same_thread", "cached_statements"}


def engine_url(url: str | None = None) -> str:
    """The URL SQLAlchemy is given for a `--db` (else $COLLECT_DB, else the default); StoreUrlError when it
    is no database URL, names a database or driver the store does not use, or a SQLite database in memory.
    Reads no file and opens no connection: commands check it before they do anything else."""
    given = url = url_from(url)
    if _at_in_password(url):
        raise StoreUrlError(f"{shown_url(url)}: the store URL's password holds an '@'; write it as %40")
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    try:
        kind = make_url(url)
    except (ArgumentError, ValueError) as exc:
        # a bare file name (`--db collect.db`) is the usual slip: say the URL it would be
        hint = f"; for a SQLite file, give sqlite:///{given}" if re.fullmatch(r"[\w./~-]+", given) else ""
        raise StoreUrlError(f"{shown_url(given)} is not a database URL: {exc}{hint}") from exc
    if kind.drivername not in SUPPORTED:
        # another database (mysql://), or another driver: SQLAlchemy would ask for a module to install
        raise StoreUrlError(f"{shown_url(given)} is not a database URL collect can use ({kind.drivername}): "
                            "give sqlite:///FILE or postgresql://USER@HOST/DATABASE")
    if kind.get_backend_name() == "postgresql" and not kind.database:  # `postgresql://` of unset variables
        raise StoreUrlError(f"{shown_url(given)} names no database: give postgresql://USER@HOST/DATABASE")
    ignored = set(kind.query) - _SQLITE_ARGS if kind.get_backend_name() == "sqlite" and "uri" not in kind.query else ()
    if ignored:  # the driver would drop them with a warning: ?mode=ro would open the store read-write
        raise StoreUrlError(f"{shown_url(given)}: the SQLite driver would ignore {', '.join(sorted(ignored))} in a file "
                            "URL; options such as mode=ro need a URI: sqlite:///file:collect.db?mode=ro&uri=true")
    if kind.get_backend_name() == "sqlite" and _in_memory(kind):
        shown = given if kind.password is None else shown_url(given)  # as typed: sqlite:///:memory:
        raise StoreUrlError(f"{shown} is a database in memory, which every command would see empty; "
                            "give a file, e.g. sqlite:///collect.db")
    return url


def connect(url: str | None = None, upgrade: bool = True, create: bool = True) -> Engine:
    """Open the store; apply pending migrations unless told not to. `create`: a SQLite file that does not
    exist yet is made (an import, a tick); else (the commands that only read it) it is a StoreError, not
    an empty store left behind in its place.

    Raises StoreError (StoreUrlError for a bad URL, or a SQLite database in memory) when the store cannot
    be opened or is newer than this code; other errors after the first connection (migrations, queries)
    are the database's own and propagate unchanged."""
    given = url_from(url)
    url = engine_url(given)
    if not create and (missing := _missing_file(url)):
        raise StoreError(f"cannot open the store {shown_url(given)}: there is no {missing} (collect import and "
                         "collect run create a store; --db or $COLLECT_DB says which)")
    try:
        engine = create_engine(url, future=True, pool_pre_ping=True)
    except (ArgumentError, ValueError) as exc:
        raise StoreUrlError(f"{shown_url(given)} is not a database URL: {exc}") from exc
    except ImportError as exc:  # a known dialect whose driver is not installed
        hint = "; install the PostgreSQL driver: pip install -e '.[postgres]'" if "psycopg" in str(exc) else ""
        raise StoreError(f"cannot open the store {shown_url(given)}: {exc}{hint}") from exc
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    try:
        with engine.connect():  # connect now, so that an unreachable store is told apart from a failing query
            pass
    except DBAPIError as exc:
        reason = (str(exc.orig).strip() or type(exc.orig).__name__).splitlines()[0]  # the driver's own words
        raise StoreError(f"cannot open the store {shown_url(given)}: {reason}{_file_hint(url)}") from exc
    _check_ours(engine, given, create)
    if upgrade:
        migrate(engine)
    return engine


def _check_ours(engine: Engine, given: str, create: bool) -> None:
    """Refuse a database that holds tables but no collect schema: another application's (or a file given
    by mistake). Migrating it failed with a traceback where a table name clashed ('table customers already
    exists'), and otherwise added collect's tables to it, even for a command that only reads. A store
    whose creation will make the tables (`create`) may share a server's database with other tables,
    but not with tables of collect's names."""
    # one look at the table names: a first open migrating meanwhile commits its tables and alembic_version
    # together, so reading the version first and the tables after could see the tables without it
    tables = set(inspect(engine).get_table_names())
    clash = sorted(tables & set(metadata.tables))
    if "alembic_version" in tables and not clash:
        # another application's Alembic schema: its revision, unknown here, would read as a newer collect's
        raise StoreError(f"{shown_url(given)} is not a collect store: it holds another application's Alembic "
                         f"schema ({', '.join(sorted(tables)[:5])}{', ...' if len(tables) > 5 else ''}) and no "
                         "collect tables (--db or $COLLECT_DB says which store)")
    if not tables or tables & {"alembic_version", "schema_version"}:  # empty, ours, or a collect 0.1 store
        return
    if clash or not create:
        raise StoreError(f"{shown_url(given)} is not a collect store: it holds other tables "
                         f"({', '.join(sorted(clash or tables)[:5])}{', ...' if len(clash or tables) > 5 else ''}) and no "
                         "collect schema (--db or $COLLECT_DB says which store)")


def _sqlite_file(url: str) -> str | None:
    """The file a SQLite URL names (None: the store is no file)."""
    kind = make_url(url)
    if kind.get_backend_name() != "sqlite" or not kind.database:
        return None
    return kind.database.removeprefix("file:").split("?", 1)[0] if kind.query.get("uri") else kind.database


def _missing_file(url: str) -> str | None:
    """The file a SQLite URL names when it does not exist (None: it does, or the store is no file)."""
    path = _sqlite_file(url)
    return None if path is None or os.path.exists(path) else path


def _file_hint(url: str) -> str:
    """Why SQLite could not open its file, where the driver only says 'unable to open database file'."""
    path = _sqlite_file(url)
    if path is None:
        return ""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        return f" ({path} is a folder)"
    if not os.path.isdir(folder):
        return f" (there is no folder {folder})"
    # SQLite writes its journal beside the file, so even a store that is only read needs the folder
    if not os.access(folder, os.W_OK):
        return f" (the folder {folder} cannot be written: SQLite keeps its journal beside the store)"
    if os.path.exists(path) and not os.access(path, os.R_OK | os.W_OK):
        return f" ({path} cannot be read and written)"
    return ""


def _in_memory(url) -> bool:
    """Is this SQLite URL a database in memory (sqlite://, sqlite:///:memory:, a URI's mode=memory)? Each
    process, even each connection, would get an empty one of its own: useless for a store that one
    command fills and the next reads."""
    database = url.database or ""  # sqlite:// and sqlite:/// are :memory: to the driver
    return (database in ("", ":memory:") or database.startswith("file::memory:")
            or url.query.get("mode") == "memory")


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")  # a second tick waits for the first instead of failing
    _wal(cursor)
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _wal(cursor, wait_s: float = 30.0) -> None:
    """Switch the store to WAL once (the mode is a property of the file). The switch needs an exclusive
    lock, which a concurrent first open (a migration) may hold for longer than the busy timeout the
    driver starts with, and SQLite does not always call the busy handler for it: wait for it here."""
    import sqlite3
    import time

    deadline = time.monotonic() + wait_s
    while (mode := cursor.execute("PRAGMA journal_mode").fetchone()[0].lower()) != "wal":
        try:
            if cursor.execute("PRAGMA journal_mode=WAL").fetchone()[0].lower() == "wal":
                return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        else:  # the mode unchanged without an error (a database in memory always answers so): the deadline
            if time.monotonic() > deadline:  # holds here too, or the loop would spin forever
                raise sqlite3.OperationalError(f"cannot switch the store to WAL: its journal mode stays {mode}")
        time.sleep(0.05)


MIGRATIONS = Path(__file__).with_name("migrations")
LEGACY_V1 = "0001"  # stores made before Alembic recorded `schema_version` 1: the same tables as 0001
MIGRATION_LOCK = 7_240_112  # PostgreSQL advisory lock held while migrating


def _alembic_config(conn):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = conn
    return config


def current_version(engine: Engine) -> str | None:
    """The store's schema revision (None: an empty store)."""
    from alembic.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_version() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(MIGRATIONS)).get_current_head()


def migrate(engine: Engine) -> list[str]:
    """Bring the schema to the newest revision; returns the revisions applied (oldest first).

    The whole upgrade is one transaction under a lock (SQLite: BEGIN IMMEDIATE; PostgreSQL: an
    advisory lock), so concurrent first opens of a store wait for one another instead of colliding."""
    from alembic import command
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory

    head = head_version()
    current = current_version(engine)
    if current == head:
        return []  # the common case, without taking a write lock
    _check_known(current, head)  # before the lock: a newer collect may be ticking on this store
    if engine.dialect.name == "sqlite":  # an engine of its own: the caller's reads stay unlocked
        engine = create_engine(engine.url, poolclass=NullPool)
        event.listen(engine, "connect", _sqlite_pragmas)
        immediate(engine)
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK})
        config = _alembic_config(conn)
        before = MigrationContext.configure(conn).get_current_revision()
        _check_known(before, head)  # again under the lock: a newer collect may have migrated it meanwhile
        if before is None and inspect(conn).has_table("schema_version"):
            command.stamp(config, LEGACY_V1)
            conn.execute(text("DROP TABLE schema_version"))  # Alembic's version table replaces it
            before = LEGACY_V1
        command.upgrade(config, "head")
    script = ScriptDirectory(str(MIGRATIONS))
    return [r.revision for r in reversed(list(script.iterate_revisions(head, before or "base")))
            if r.revision != before]


def _check_known(revision: str | None, head: str) -> None:
    """Refuse a store at a revision missing here, in words, before Alembic fails on it with a traceback
    ("Can't locate revision"): an older collect can neither read the newer schema nor migrate it back."""
    from alembic.script import ScriptDirectory

    if revision is None:
        return
    if revision not in {r.revision for r in ScriptDirectory(str(MIGRATIONS)).walk_revisions()}:
        raise StoreError(f"the store is at revision {revision}, newer than this collect (latest {head}): "
                         "upgrade collect")


def immediate(engine: Engine) -> None:
    """Make every SQLite transaction of this engine BEGIN IMMEDIATE: the write lock is taken before
    reading, so two processes cannot decide (or migrate) from the same snapshot."""
    if engine.dialect.name != "sqlite" or getattr(engine, "_collect_immediate", False):
        return

    @event.listens_for(engine, "connect")
    def _no_autobegin(dbapi_conn, _record):
        dbapi_conn.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    engine._collect_immediate = True  # type: ignore[attr-defined]


def dumps(value) -> str:
    return json.dumps(value, sort_keys=True, default=str)

"""Schema migrations (Alembic): a fresh store gets exactly the live tables, an old store is upgraded in
place, and several processes opening a new store at once do not collide."""

from __future__ import annotations

import datetime as dt
import multiprocessing

from sqlalchemy import create_engine, inspect, text

from collect.engine import store


def _no_drift(engine) -> list:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), store.metadata)
    # SQLite reports no server defaults or exact types; only structure counts here
    return [d for d in diffs if not (isinstance(d, list) and d and d[0][0] in ("modify_type", "modify_default"))]


def test_a_fresh_store_has_exactly_the_live_tables(db_url):
    engine = store.connect(db_url)
    assert store.current_version(engine) == store.head_version()
    assert _no_drift(engine) == []


def test_opening_an_up_to_date_store_applies_nothing(db_url):
    engine = store.connect(db_url)
    assert store.migrate(engine) == []


def test_a_store_made_before_alembic_is_upgraded_keeping_its_data(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    _legacy_v1(engine)
    applied = store.migrate(engine)
    assert applied == [r for r in _revisions() if r != store.LEGACY_V1]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT id FROM customers")).scalar() == "c1"
        assert conn.execute(text("SELECT consents FROM customers")).scalar() is None
    assert _no_drift(engine) == []


def test_concurrent_first_opens_migrate_once(db_url):
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(6) as pool:
        results = pool.map(_open, [db_url] * 6)
    assert all(r == store.head_version() for r in results), results


def _open(url: str) -> str:
    from collect.engine import store as s

    return s.current_version(s.connect(url))


def _revisions() -> list[str]:
    from alembic.script import ScriptDirectory

    return [r.revision for r in reversed(list(ScriptDirectory(str(store.MIGRATIONS)).walk_revisions()))]


def _legacy_v1(engine) -> None:
    """What the store looked like before Alembic: revision 0001's tables plus `schema_version`."""
    import importlib.util

    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    spec = importlib.util.spec_from_file_location("m0001", store.MIGRATIONS / "versions" / "0001_initial.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with engine.begin() as conn:
        with Operations.context(MigrationContext.configure(conn)):
            module.upgrade()
        conn.execute(text("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at DATETIME)"))
        conn.execute(text("INSERT INTO schema_version VALUES (1, :t)"), {"t": dt.datetime(2026, 11, 1)})
        conn.execute(text("INSERT INTO customers (id, do_not_contact, optouts, attrs) VALUES ('c1', 0, '[]', '{}')"))
    assert inspect(engine).has_table("contacts")


def test_opening_a_new_store_waits_for_a_lock_held_by_another_open(tmp_path):
    """Switching a new SQLite store to WAL needs an exclusive lock: an open that meets another process's
    migration (slow on a loaded machine: longer than the driver's default 5 s) must wait, not fail."""
    import sqlite3
    import threading

    path = tmp_path / "collect.db"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("CREATE TABLE t(x)")
    holder.execute("BEGIN EXCLUSIVE")
    threading.Timer(6, lambda: holder.execute("COMMIT")).start()
    engine = store.connect(f"sqlite:///{path}")  # would raise 'database is locked' without waiting
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    holder.close()

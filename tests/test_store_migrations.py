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


def test_the_contacts_of_a_store_made_before_0002_get_the_step_instances_they_settle(tmp_path):
    """0002 left `contacts.steps` empty on the contacts already there, so a failure report on one of them
    reopened nothing: its step stayed done, with no fallback. 0006 reads them from the contact."""
    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    _legacy_v1(engine)
    settled = {"od-5|I1": "fired", "od-5|I2": "fired", "rec|I1|promise-a": "fired", "inc|I1|promise-a": "fired",
               "inc|I1|promise-b": "fired"}
    contacts = [("od-5", "I1;I2"), ("rec", "I1"), ("inc", "I1"), ("gone", "I1"), (None, "I1")]
    with engine.begin() as conn:
        for key, state in settled.items():
            conn.execute(text("INSERT INTO steps VALUES (:k, 'c1', :s, 'sent')"), {"k": key, "s": state})
        for n, (step, ids) in enumerate(contacts):
            conn.execute(text(
                "INSERT INTO contacts (key, policy, plan_hash, customer_id, invoice_ids, step, channel, status, "
                "attempts, at, tz, fallbacks, updated_at) VALUES (:key, 'p', 'h', 'c1', :ids, :step, 'sms', "
                "'sent', 1, :at, 'UTC', '[]', :at)"), {"key": f"k{n}", "ids": ids, "step": step,
                                                       "at": dt.datetime(2026, 11, 1)})
    store.migrate(engine)
    with engine.connect() as conn:
        found = {r.key: r.steps for r in conn.execute(text("SELECT key, steps FROM contacts"))}
    assert found == {"k0": '["od-5|I1", "od-5|I2"]', "k1": '["rec|I1|promise-a"]',
                     "k2": None,  # two occurrences of the event step: the contact does not say which
                     "k3": None, "k4": None}

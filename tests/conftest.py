"""Store fixtures: every store test runs on SQLite and on a real PostgreSQL (skipped when none answers)."""

from __future__ import annotations

import os
import uuid

import pytest

PG_ADMIN = os.environ.get("COLLECT_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _pg_admin_engine():
    try:
        import psycopg  # noqa: F401
        from sqlalchemy import create_engine, text
    except ImportError as exc:
        pytest.skip(f"PostgreSQL tests need psycopg: {exc}")
    engine = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any connection failure means: no server here
        pytest.skip(f"no PostgreSQL server answers at {PG_ADMIN}: {str(exc).splitlines()[0]}")
    return engine


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """A fresh, empty store URL: a SQLite file, or a new PostgreSQL database dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'collect.db'}"
        return
    from sqlalchemy import text

    admin = _pg_admin_engine()
    name = f"collect_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()

"""Command line failures a review found: a store in memory, a store newer than the code, `init` into a
file, and `serve` schedules that are too long or empty. Each is one `error:` line with the documented
exit code (docs/cli.md), never a traceback nor a hang."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import threading

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from collect.cli import app
from collect.engine import store
from collect.engine.serve import parse_every, serve

runner = CliRunner()


def one_error_line(result) -> str:
    """The single line a clean error prints on stderr (no traceback)."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


# -- a SQLite database in memory -----------------------------------------------------------------------


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "sqlite:///file:x?mode=memory&uri=true"])
def test_a_store_in_memory_is_a_usage_error(tmp_path, url):
    # in a process of its own, with a timeout: before the fix it spun forever in _wal
    try:
        done = subprocess.run([sys.executable, "-m", "collect", "tasks", "--db", url], cwd=tmp_path,
                              capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"collect tasks --db {url} still running after 30 s")
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: ") and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "in memory" in done.stderr


class _StuckJournal:
    """A cursor whose journal mode never becomes WAL and that raises no error, as a database in memory
    answers; it gives up (an AssertionError) after many calls, so that a loop without a deadline fails
    instead of hanging the test."""

    def __init__(self):
        self.calls = 0

    def execute(self, _sql):
        self.calls += 1
        assert self.calls < 10_000, "the WAL loop ignores its deadline"
        return self

    def fetchone(self):
        return ("memory",)


def test_the_wal_switch_gives_up_at_its_deadline_without_an_error_from_sqlite():
    with pytest.raises(sqlite3.OperationalError, match="WAL"):
        store._wal(_StuckJournal(), wait_s=0.1)


# -- a store newer than the code -----------------------------------------------------------------------


def _newer(url: str) -> None:
    """The store as a later collect leaves it: at a revision this code does not ship."""
    engine = store.connect(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    engine.dispose()


@pytest.mark.parametrize("command", [["db", "upgrade"], ["tasks"], ["history"]])
def test_a_store_newer_than_the_code_is_one_line_and_exit_3(db_url, command):
    _newer(db_url)
    result = runner.invoke(app, [*command, "--db", db_url])
    assert result.exit_code == 3, (result.exit_code, repr(result.exception))
    line = one_error_line(result)
    assert f"revision 0099, newer than this collect (latest {store.head_version()})" in line, line


def test_a_newer_store_is_not_migrated(db_url):
    _newer(db_url)
    with pytest.raises(store.StoreError, match="upgrade collect"):
        store.connect(db_url)
    assert store.current_version(store.connect(db_url, upgrade=False)) == "0099"


# -- init where the files cannot be written ------------------------------------------------------------


@pytest.mark.parametrize("target", ["notes.txt", "notes.txt/project"])
def test_init_into_a_file_is_one_error_line_and_exit_3(tmp_path, monkeypatch, target):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("mine\n")
    result = runner.invoke(app, ["init", target])
    assert result.exit_code == 3, (result.exit_code, repr(result.exception))
    assert "cannot write the starter project" in one_error_line(result)
    assert (tmp_path / "notes.txt").read_text() == "mine\n"


def test_init_on_a_full_disk_leaves_nothing_and_names_the_file_it_was_writing(tmp_path, monkeypatch):
    """It left README.md and channels.yaml whole and policy.yaml cut short, named the package's own copy of
    policy.yaml in its message, and the next `collect init` refused to overwrite the half-written project."""
    import errno
    import os

    from collect.engine import scaffold

    real, calls = os.fdopen, []

    class Full:  # the third file's write fails as a full disk does
        def __init__(self, fd, mode):
            self.handle = real(fd, mode)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def write(self, data):
            calls.append(data)
            if len(calls) == 3:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return self.handle.write(data)
    monkeypatch.setattr(scaffold.os, "fdopen", Full)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["init", "work/project"])
    assert result.exit_code == 3
    assert one_error_line(result) == ("error: cannot write the starter project: work/project/policy.yaml: "
                                      "No space left on device")
    assert list(tmp_path.iterdir()) == []  # nor the folders it made
    monkeypatch.setattr(scaffold.os, "fdopen", real)  # space again: the retry works
    assert runner.invoke(app, ["init", "work/project"]).exit_code == 0
    assert len(list((tmp_path / "work" / "project").iterdir())) == 4


# -- serve: an interval too long, an empty schedule ----------------------------------------------------


@pytest.mark.parametrize("every", ["367d", "8785h", "3000000d", "999999999d"])
def test_an_interval_over_a_year_is_a_usage_error_before_anything_runs(tmp_path, monkeypatch, every):
    # the schedule is checked first: a missing policy file (exit 1) is not reached, no store is made
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["serve", "missing.yaml", "--every", every, "--db", f"sqlite:///{tmp_path / 'c.db'}"])
    assert result.exit_code == 2, (result.exit_code, repr(result.exception))
    assert "too long" in one_error_line(result)
    assert not (tmp_path / "c.db").exists()


def test_a_year_is_the_longest_interval():
    assert parse_every("366d") == parse_every("8784h") == 366 * 86400
    with pytest.raises(ValueError, match="at most 366d"):
        parse_every("31622401s")


@pytest.mark.parametrize("option", ["--cron", "--every"])
@pytest.mark.parametrize("value", ["", "  "])
def test_an_empty_schedule_is_a_usage_error(tmp_path, monkeypatch, option, value):
    # `--cron "$SCHEDULE"` with the variable unset must not become the default --every 15m
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["serve", "missing.yaml", option, value, "--db", f"sqlite:///{tmp_path / 'c.db'}"])
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert f"{option} is empty" in one_error_line(result)
    assert not (tmp_path / "c.db").exists()


@pytest.mark.parametrize("option", ["cron", "every"])
def test_serve_refuses_an_empty_schedule_instead_of_ticking(option):
    ticks = []

    def tick(now):  # before the fix: the default 15m ticked at once; stop it there
        ticks.append(now)
        signal.pthread_kill(threading.main_thread().ident, signal.SIGTERM)

    with pytest.raises(ValueError, match="empty"):
        serve(tick, log=lambda line: None, **{option: ""})
    assert ticks == []


# -- a store that is not there -------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["history"], ["tasks"], ["report"],
                                     ["explain", "POLICY", "--invoice", "F001-00001", "--now", "2026-11-20T15:00:00Z"]])
def test_a_reading_command_on_a_store_that_is_not_there_says_so_and_creates_nothing(tmp_path, monkeypatch, command):
    """A mistyped --db used to leave an empty store behind and show nothing, as if nothing had happened."""
    from pathlib import Path

    monkeypatch.chdir(tmp_path)
    policy = Path(__file__).resolve().parent.parent / "examples" / "pe-b2b" / "policy.yaml"
    args = [str(policy) if a == "POLICY" else a for a in command]
    result = runner.invoke(app, [*args, "--db", "sqlite:///nope.db"])
    assert result.exit_code == 3
    assert one_error_line(result) == ("error: cannot open the store sqlite:///nope.db: there is no nope.db (collect "
                                      "import and collect run create a store; --db or $COLLECT_DB says which)")
    assert not (tmp_path / "nope.db").exists()
    assert runner.invoke(app, ["import", "invoices", str(policy.parent / "portfolio.csv"), "--db", "sqlite:///nope.db",
                               "--timezone", "America/Lima"]).exit_code == 0
    assert runner.invoke(app, [*args, "--db", "sqlite:///nope.db"]).exit_code == 0

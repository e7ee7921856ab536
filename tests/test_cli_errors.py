"""The command line's error paths (SPEC 6): usage errors exit 2, a store that cannot be opened exits 3,
each as one line on stderr, never a traceback; and `history --since` on the customer's local date."""

from __future__ import annotations

import contextlib
import csv
import io
import os
import sqlite3
import subprocess
import textwrap
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError
from typer.testing import CliRunner

from collect.cli import app

runner = CliRunner()

POLICY = textwrap.dedent("""\
    policy: t
    timezone: UTC
    currency: USD
    windows:
      default: { mon-sun: "00:00-24:00" }
    stages:
      s:
        when: invoice.days_past_due >= -1000
        steps:
          - { id: od-1, at: due+1d, send: email, template: t }
    templates:
      t:
        email: { subject: "x", body: "y {{ customer.name }}" }
    """)


def invoke(*args: str, **kwargs):
    return runner.invoke(app, list(args), **kwargs)


def one_error_line(result) -> str:
    """The single line a clean error prints on stderr (no traceback)."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


@pytest.fixture
def store(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'collect.db'}"


def import_invoices(tmp_path: Path, db: str, rows: str) -> None:
    path = tmp_path / "inv.csv"
    path.write_text("invoice_id,customer_id,amount,due_date,email,timezone\n" + rows)
    result = invoke("import", "invoices", str(path), "--db", db)
    assert result.exit_code == 0, result.output


# --- history --since: the customer's local date, the one `at` shows ------------------------------------

def test_history_since_is_the_customers_local_date(tmp_path: Path, store: str, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # `collect run` without channels.yaml writes outbox/ where it runs
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    import_invoices(tmp_path, store, "I1,C1,100,2026-01-01,a@example.com,Asia/Tokyo\n"
                                     "I2,C2,100,2025-12-31,b@example.com,America/Lima\n")
    # the step is due at local midnight after the due date: at 2026-01-01T16:00Z that moment has come
    # in Tokyo, where it is 2026-01-02 01:00, and in Lima (due a day earlier), where it is 2026-01-01 11:00
    assert invoke("run", str(policy), "--db", store, "--now", "2026-01-01T16:00:00Z", "-q").exit_code == 0
    import_invoices(tmp_path, store, "I3,C3,100,2025-12-31,c@example.com,America/Lima\n")
    # 2026-01-02T03:00Z: still 2026-01-01 (22:00) in Lima
    assert invoke("run", str(policy), "--db", store, "--now", "2026-01-02T03:00:00Z", "-q").exit_code == 0

    everything = invoke("history", "--db", store)
    assert {r["customer_id"] for r in csv.DictReader(io.StringIO(everything.stdout))} == {"C1", "C2", "C3"}
    result = invoke("history", "--db", store, "--since", "2026-01-02")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert rows and {r["customer_id"] for r in rows} == {"C1"}
    assert all(r["at"].startswith("2026-01-02") for r in rows)
    assert rows[0]["at"] == "2026-01-02T01:00:00+09:00"


# --- --timezone: a usage error, the same for import and report -----------------------------------------

@pytest.mark.parametrize("kind", ["payments", "invoices", "customers"])
def test_import_bad_timezone_is_a_usage_error(tmp_path: Path, store: str, kind: str) -> None:
    path = tmp_path / "file.csv"
    path.write_text({"payments": "payment_id,invoice_id,amount,paid_at\nP1,I1,10,2026-01-05\n",
                     "invoices": "invoice_id,customer_id,amount,due_date\nI1,C1,100,2026-01-01\n",
                     "customers": "customer_id,name\nC1,Ana\n"}[kind])
    result = invoke("import", kind, str(path), "--db", store, "--timezone", "Mars/Base")
    assert result.exit_code == 2, result.output
    assert one_error_line(result) == "error: --timezone 'Mars/Base' is not a time zone"
    assert not (tmp_path / "collect.db").exists()  # refused before the store is even opened


@pytest.mark.parametrize("zone", ["Mars/Base", "America", "", "../etc/passwd"])
def test_report_bad_timezone_is_a_usage_error(store: str, zone: str) -> None:
    # "America" is a folder of the zone database: an OSError, not a KeyError
    result = invoke("report", "--db", store, "--timezone", zone)
    assert result.exit_code == 2, result.output
    assert one_error_line(result) == f"error: --timezone {zone!r} is not a time zone"


# --- a store that cannot be opened: one line naming the URL and why ------------------------------------

MISSING = "sqlite:////nonexistent/dir/x.db"


def commands(tmp_path: Path) -> dict[str, list[str]]:
    """Every command taking --db, without its --db."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    invoices = tmp_path / "inv.csv"
    invoices.write_text("invoice_id,customer_id,amount,due_date\nI1,C1,100,2026-01-01\n")
    return {"history": ["history"], "run": ["run", str(policy), "--now", "2026-01-02T00:00:00Z"],
            "import": ["import", "invoices", str(invoices)], "tasks": ["tasks"], "report": ["report"],
            "explain": ["explain", str(policy), "--invoice", "I1"], "db upgrade": ["db", "upgrade"],
            "serve": ["serve", str(policy), "--every", "1h"]}


@pytest.mark.parametrize("command", ["history", "run", "import", "tasks", "report", "explain", "db upgrade",
                                     "serve"])
def test_store_that_cannot_be_opened_exits_3(tmp_path: Path, command: str) -> None:
    result = invoke(*commands(tmp_path)[command], "--db", MISSING)
    assert result.exit_code == 3, result.output
    reason = "unable to open database file (there is no folder /nonexistent/dir)"
    if command in ("history", "tasks", "report", "explain"):  # they only read the store: no file is made
        reason = f"there is no {MISSING.removeprefix('sqlite:///')} (collect import and collect run create a " \
                 "store; --db or $COLLECT_DB says which)"
    assert one_error_line(result) == f"error: cannot open the store {MISSING}: {reason}"


def test_a_store_sqlite_cannot_open_says_why_not_just_the_driver_s_words(tmp_path: Path) -> None:
    """SQLite says only 'unable to open database file' for a folder, a missing folder, or a folder it
    cannot write its journal in: the error says which."""
    (tmp_path / "store").mkdir()
    result = invoke(*commands(tmp_path)["import"], "--db", f"sqlite:///{tmp_path}/store")
    assert result.exit_code == 3
    assert one_error_line(result).endswith(f"unable to open database file ({tmp_path}/store is a folder)")
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    with read_only(readonly):
        result = invoke(*commands(tmp_path)["import"], "--db", f"sqlite:///{readonly}/c.db")
        assert result.exit_code == 3
        assert one_error_line(result).endswith(f"(the folder {readonly} cannot be written: SQLite keeps its "
                                               "journal beside the store)")
        assert not list(readonly.iterdir())


def test_an_output_in_a_folder_that_cannot_be_written_is_named_not_its_temporary_file(tmp_path):
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    with read_only(readonly):
        result = invoke("compile", str(EXAMPLE / "policy.yaml"), "-o", str(readonly / "plan.json"))
    assert result.exit_code == 3
    line = one_error_line(result)
    assert line.startswith(f"error: cannot write {readonly / 'plan.json'}: ") and ".tmp" not in line, line


def test_an_empty_queue_is_a_usage_error_not_every_queue(tmp_path):
    """`collect tasks --queue "$QUEUE"` with the variable unset listed every queue's tasks."""
    result = invoke("tasks", "--queue", "", "--db", f"sqlite:///{tmp_path / 'c.db'}")
    assert (result.exit_code, one_error_line(result)) == (
        2, "error: --queue is empty; give a queue name, or leave --queue out for every queue")


@contextlib.contextmanager
def read_only(folder: Path):
    """`folder` made read-only for the block: by its mode, or for root (who writes any folder) by mounting
    a read-only tmpfs on it."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield
        folder.chmod(0o755)
        return
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode:
        pytest.skip(f"root writes any folder, and this machine cannot mount a read-only one: {mounted.stderr!r}")
    try:
        yield
    finally:
        subprocess.run(["umount", str(folder)], check=True)


@pytest.mark.parametrize("command", ["history", "run", "import", "db upgrade"])
@pytest.mark.parametrize("url, why", [
    ("foo://x", "collect can use (foo): give sqlite:///FILE or postgresql://USER@HOST/DATABASE"),
    ("not a url", ": Could not parse SQLAlchemy URL"),
    ("collect.db", ": Could not parse SQLAlchemy URL from given URL string; for a SQLite file, give sqlite:///collect.db"),
    # databases and drivers the store does not use: not a module to install (No module named 'MySQLdb')
    ("mysql://u@h/collect", "collect can use (mysql): give sqlite:///FILE or postgresql://USER@HOST/DATABASE"),
    ("postgresql+asyncpg://u@h/db", "collect can use (postgresql+asyncpg)"),
])
def test_store_url_that_is_not_a_database_url_exits_2(tmp_path: Path, command: str, url: str, why: str) -> None:
    result = invoke(*commands(tmp_path)[command], "--db", url)
    assert result.exit_code == 2, result.output
    line = one_error_line(result)
    assert line.startswith(f"error: {url} is not a database URL") and why in line


@pytest.mark.parametrize("command", ["history", "run", "import", "db upgrade"])
@pytest.mark.parametrize("url, why", [
    # unset variables: libpq connected to its default database and collect made a store there
    ("postgresql://", "names no database: give postgresql://USER@HOST/DATABASE"),
    # ignored by the driver, with a warning naming collect's source: the store opened read-write
    ("sqlite:///s.db?mode=ro", ": the SQLite driver would ignore mode in a file URL; options such as mode=ro need a "
                               "URI: sqlite:///file:collect.db?mode=ro&uri=true"),
])
def test_a_store_url_that_would_not_mean_what_it_says_exits_2(tmp_path: Path, command: str, url: str, why: str) -> None:
    result = invoke(*commands(tmp_path)[command], "--db", url)
    assert result.exit_code == 2, result.output
    assert one_error_line(result) == f"error: {url}{'' if why.startswith(':') else ' '}{why}"


def test_store_from_collect_db_is_reported_too(tmp_path: Path) -> None:
    result = invoke("history", env={"COLLECT_DB": MISSING})
    assert result.exit_code == 3
    assert MISSING in one_error_line(result)


@pytest.mark.parametrize("url, code", [("postgresql://collect:s3cret@127.0.0.1:1/db", 3),  # nothing listens
                                       ("postgresql://collect:s3cret@db.internal:port/db", 2),  # not a port
                                       ("postgresql://collect:s3cret@Zq9x@127.0.0.1:1/db", 2)])  # '@' unencoded
def test_store_error_masks_the_password(url: str, code: int) -> None:
    result = invoke("history", "--db", url)
    assert result.exit_code == code, result.output
    line = one_error_line(result)
    assert "s3cret" not in line and "Zq9x" not in line and "collect:***@" in line


def test_database_error_after_opening_is_not_taken_for_an_unopenable_store(tmp_path: Path, store: str) -> None:
    import_invoices(tmp_path, store, "I1,C1,100,2026-01-01,a@example.com,UTC\n")
    with sqlite3.connect(tmp_path / "collect.db") as conn:
        conn.execute("DROP TABLE contacts")  # the store opens; its query fails
    result = invoke("history", "--db", store)
    assert isinstance(result.exception, OperationalError) and "no such table" in str(result.exception)
    assert "cannot open the store" not in result.stderr


# -- output files and side files: a folder for a file, an unreadable channels.yaml ---------------------

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "pe-b2b"


@pytest.mark.parametrize("command", [
    ["compile", str(EXAMPLE / "policy.yaml"), "-o"],
    ["simulate", str(EXAMPLE / "policy.yaml"), "--portfolio", str(EXAMPLE / "portfolio.csv"), "-q", "--out"],
    ["history", "--out"],
])
def test_an_output_path_that_is_a_folder_is_a_usage_error(tmp_path, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out.csv").mkdir()
    result = invoke(*command, "out.csv")
    assert result.exit_code == 2, result.output
    assert "error: out.csv is a folder" in result.stderr and "Traceback" not in result.output
    assert not [p for p in (tmp_path / "out.csv").iterdir()]  # nothing left behind


@pytest.mark.parametrize("command, named", [
    (["compile", "policy.yaml", "-o", "policy.yaml"], "-o policy.yaml is the policy"),
    (["simulate", "policy.yaml", "--portfolio", "portfolio.csv", "-q", "--out", "portfolio.csv"],
     "--out portfolio.csv is the --portfolio file"),
    (["simulate", "policy.yaml", "--portfolio", "portfolio.csv", "-q", "--out", "./sub/../promises.csv",
      "--promises", "promises.csv"], "is the --promises file"),  # the same file by another name
    # through a folder that does not exist yet (and would be made): it passed, and the policy was replaced
    (["compile", "policy.yaml", "-o", "new/../policy.yaml"], "-o new/../policy.yaml is the policy"),
    (["history", "--db", "sqlite:///store.csv", "--out", "store.csv"], "--out store.csv is the store"),
])
def test_an_output_that_is_an_input_is_refused_and_the_input_kept(tmp_path, monkeypatch, command, named):
    """`--out portfolio.csv` replaced the portfolio with the contacts, `compile p.yaml -o p.yaml` the policy
    with its plan, exit 0."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    for name in ("policy.yaml", "portfolio.csv", "promises.csv"):
        (tmp_path / name).write_bytes((EXAMPLE / name).read_bytes())
    (tmp_path / "store.csv").write_bytes(b"")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    result = invoke(*command)
    assert result.exit_code == 2 and named in result.stderr, result.output
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before


@pytest.mark.parametrize("table, command", [(t, c) for t in ("customers", "notes") for c in (["history"], ["report"],
                                                                                          ["tasks"])]
                         + [("customers", ["db", "upgrade"])])  # on `notes` alone it makes a store beside them
def test_a_database_that_is_not_a_collect_store_is_one_line_and_left_as_it_was(tmp_path, table, command):
    """A SQLite file of another application: a table named like one of collect's gave a traceback ('table
    customers already exists'); otherwise even `collect report` added collect's tables to it."""
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute(f"create table {table} (id int)")
    result = invoke(*command, "--db", f"sqlite:///{path}")
    assert result.exit_code == 3, result.output
    assert one_error_line(result) == (f"error: sqlite:///{path} is not a collect store: it holds other tables "
                                      f"({table}) and no collect schema (--db or $COLLECT_DB says which store)")
    with sqlite3.connect(path) as conn:
        assert [r[0] for r in conn.execute("select name from sqlite_master")] == [table]


def test_another_application_s_alembic_database_is_not_taken_for_a_newer_collect_store(tmp_path):
    """Its alembic_version made the migration stop at an unknown revision, 'newer than this collect'."""
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("create table alembic_version (version_num varchar(32) primary key)")
        conn.execute("insert into alembic_version values ('3f2a9c1d7e44')")
        conn.execute("create table users (id int)")
    for command in (["report"], ["db", "upgrade"], ["import", "invoices", str(EXAMPLE / "portfolio.csv")]):
        result = invoke(*command, "--db", f"sqlite:///{path}")
        assert result.exit_code == 3, result.output
        assert one_error_line(result) == (f"error: sqlite:///{path} is not a collect store: it holds another "
                                          "application's Alembic schema (alembic_version, users) and no collect "
                                          "tables (--db or $COLLECT_DB says which store)")
    with sqlite3.connect(path) as conn:
        assert sorted(r[0] for r in conn.execute("select name from sqlite_master where type = 'table'")) == [
            "alembic_version", "users"]


def test_simulate_creates_the_folder_of_its_output(tmp_path):
    out = tmp_path / "new" / "contacts.csv"
    result = invoke("simulate", str(EXAMPLE / "policy.yaml"), "--portfolio", str(EXAMPLE / "portfolio.csv"),
                    "--start", "2026-11-15", "-q", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert out.read_text().startswith("at,")


def test_an_output_that_cannot_be_written_exits_3(tmp_path):
    (tmp_path / "afile").write_text("")  # a file where the output's folder should be (works as root too)
    result = invoke("compile", str(EXAMPLE / "policy.yaml"), "-o", str(tmp_path / "afile" / "x" / "plan.json"))
    assert result.exit_code == 3, result.output
    # not '[Errno 17] File exists: afile'
    assert one_error_line(result) == (f"error: cannot write {tmp_path / 'afile' / 'x' / 'plan.json'}: "
                                      f"{tmp_path / 'afile'} is a file, not a folder")


@pytest.mark.parametrize("text, message", [
    ("costs: [\n", "channels.yaml:2:1: YAML syntax error"),
    ("costs: 5\n", "channels.yaml:1:8: costs: expected a mapping of channel -> cost per message"),
    ("- a\n", "channels.yaml:1:1: expected a mapping with `channels:` and `costs:`"),
    ("costs: { emial: 0.001 }\n", "channels.yaml:1:10: costs.emial: unknown channel 'emial' (available: email, "
                                  "sms, whatsapp, voice, letter, webhook) (did you mean 'email'?)"),
    (None, "No such file or directory"),
])
def test_simulate_with_a_bad_channels_file_says_why(tmp_path, text, message):
    channels = tmp_path / "channels.yaml"
    if text is not None:
        channels.write_text(text)
    result = invoke("simulate", str(EXAMPLE / "policy.yaml"), "--portfolio", str(EXAMPLE / "portfolio.csv"), "-q",
                    "--channels", str(channels))
    assert result.exit_code == 1 and message in result.stderr and "Traceback" not in result.output


def test_a_bad_behavior_model_is_one_line_with_a_suggestion(tmp_path):
    model = tmp_path / "model.yaml"
    model.write_text("pay_probabilty: 0.1\n")
    result = invoke("simulate", str(EXAMPLE / "policy.yaml"), "--portfolio", str(EXAMPLE / "portfolio.csv"), "-q",
                    "--behavior", str(model))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "pay_probabilty: unknown key (did you mean 'pay_probability'?)" in result.stderr


def test_history_out_names_its_format_like_simulate(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("history", "--out", "audit.txt")
    assert result.exit_code == 2 and "--out must end in .csv or .jsonl" in result.stderr
    assert not (tmp_path / "audit.txt").exists()


def test_import_currency_that_is_not_an_iso_code_is_a_usage_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("import", "invoices", str(EXAMPLE / "portfolio.csv"), "--currency", "XYZW")
    assert result.exit_code == 2 and "--currency 'XYZW' is not an ISO 4217 currency code" in result.stderr
    assert not (tmp_path / "collect.db").exists()


def test_output_files_are_as_readable_as_any_file_the_user_writes(tmp_path, monkeypatch):
    import os
    import stat

    monkeypatch.chdir(tmp_path)
    old = os.umask(0o022)
    try:
        assert invoke("compile", str(EXAMPLE / "policy.yaml"), "-o", "plan.json").exit_code == 0
        assert invoke("simulate", str(EXAMPLE / "policy.yaml"), "--portfolio", str(EXAMPLE / "portfolio.csv"),
                      "-q", "--out", "contacts.csv").exit_code == 0
    finally:
        os.umask(old)
    modes = {name: stat.S_IMODE((tmp_path / name).stat().st_mode) for name in ("plan.json", "contacts.csv")}
    assert modes == {"plan.json": 0o644, "contacts.csv": 0o644}


def test_store_error_masks_a_password_given_as_a_query_parameter():
    result = invoke("history", "--db", "postgresql://collect@127.0.0.1:1/collections?password=pg-s3cret&sslmode=disable")
    assert result.exit_code == 3, result.output
    line = one_error_line(result)
    assert "pg-s3cret" not in line and "password=***" in line and "sslmode=disable" in line


def test_a_store_that_fails_during_a_tick_is_one_line_and_exit_3(tmp_path, monkeypatch):
    """A store locked past its busy timeout (a backup, a long import) must not page cron with a
    traceback and exit 1 ('the input is wrong'): one line, exit 3 (a runtime failure); serve the same."""
    from collect.engine.runner import Runner
    from collect.engine.serve import Ticks

    locked = OperationalError("BEGIN IMMEDIATE", {}, sqlite3.OperationalError("database is locked"))

    def tick(self, now, dry_run=False):
        raise locked
    monkeypatch.setattr(Runner, "tick", tick)
    result = runner.invoke(app, ["run", str(EXAMPLE / "policy.yaml"), "--db", f"sqlite:///{tmp_path / 'c.db'}",
                                 "--now", "2026-11-16T14:00:00Z", "--quiet"])
    assert result.exit_code == 3
    assert result.output.strip() == "error: the store failed during the tick: database is locked"
    lines = []
    Ticks(lambda now: tick(None, now), log=lines.append)._tick()
    assert len(lines) == 1 and lines[0].endswith("failed: database is locked")


def test_a_missing_postgresql_driver_says_how_to_install_it(monkeypatch):
    from collect.engine import store

    def no_driver(*args, **kwargs):
        raise ModuleNotFoundError("No module named 'psycopg'")
    monkeypatch.setattr(store, "create_engine", no_driver)
    with pytest.raises(store.StoreError, match=r"No module named 'psycopg'; install the PostgreSQL driver: "
                                               r"pip install -e '\.\[postgres\]'"):
        store.connect("postgresql://collect@db.internal/collect")


def test_an_at_sign_in_the_user_name_is_no_password_problem():
    """Azure's user@server:password@host form parses fine: it is not refused as an '@' in the password."""
    from collect.engine.store import StoreError, StoreUrlError, connect, shown_url

    assert shown_url("postgresql://myadmin@mydemoserver:s3cret@127.0.0.1:1/db") == \
        "postgresql://myadmin%40mydemoserver:***@127.0.0.1:1/db"  # as SQLAlchemy writes the user
    with pytest.raises(StoreError) as info:  # nothing listens there: refused by the network, not the URL check
        connect("postgresql://myadmin@mydemoserver:s3cret@127.0.0.1:1/db")
    assert not isinstance(info.value, StoreUrlError) and "s3cret" not in str(info.value)


@pytest.mark.parametrize("args, message", [
    (["report", "--days", "1000000"], "--days"),
    (["report", "--date", "0001-01-05"], "error: --date 0001-01-05 is out of range (years 1900 to 2199)"),
    (["report", "--date", "9999-12-31"], "error: --date 9999-12-31 is out of range (years 1900 to 2199)"),
    (["history", "--since", "0001-01-01"], "error: --since 0001-01-01 is out of range (years 1900 to 2199)"),
    (["simulate", str(EXAMPLE / "policy.yaml"), "--portfolio", str(EXAMPLE / "portfolio.csv"), "--start", "9999-12-01"],
     "error: --start 9999-12-01 is out of range (years 1900 to 2199)"),
    (["run", str(EXAMPLE / "policy.yaml"), "--now", "9999-12-31T23:00:00Z"],
     "error: --now 9999-12-31 is out of range (years 1900 to 2199)"),
])
def test_a_date_or_period_no_calendar_can_hold_is_a_usage_error(tmp_path: Path, store: str, args, message) -> None:
    result = invoke(*args, *(["--db", store] if args[0] != "simulate" else []))
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


WARNED = """
policy: us-test
timezone: America/Chicago
compliance: [us-reg-f]
windows:
  default: { mon-fri: "08:00-20:00" }
templates:
  t:
    sms: "Pay now {{ pay_link }}"
stages:
  s:
    when: invoice.days_past_due > 0
    steps:
      - { id: b, at: due+2d 07:00, send: sms, template: t }
"""  # compiles, with warnings (an SMS at 07:00, before Regulation F's 08:00; no opt-out notice)


@pytest.mark.parametrize("args, said", [
    (["run", "--now", "2026-13-01T00:00"], "--now '2026-13-01T00:00' is not an ISO date-time"),
    (["explain", "--invoice", "X", "--now", "yesterday"], "--now 'yesterday' is not an ISO date-time"),
    (["run", "--db", "sqlite://"], "sqlite:// is a database in memory"),
    (["explain", "--invoice", "X", "--db", "mysql://u@h/c"], "is not a database URL collect can use (mysql)"),
    (["serve", "--every", "1h", "--db", "sqlite://"], "sqlite:// is a database in memory"),
])
def test_a_bad_option_is_the_only_line_not_after_the_policys_warnings(tmp_path, args, said):
    (tmp_path / "p.yaml").write_text(WARNED, encoding="utf-8")
    assert invoke("validate", str(tmp_path / "p.yaml")).stderr.count("warning") >= 1
    result = invoke(args[0], str(tmp_path / "p.yaml"), *args[1:], env={"COLLECT_DB": f"sqlite:///{tmp_path / 'c.db'}"})
    assert result.exit_code == 2 and said in one_error_line(result)


@pytest.mark.parametrize("value", ["", "20261101", "2026-W45-1", "2026-11-1"])
def test_a_date_option_is_yyyy_mm_dd_only(tmp_path, value):
    """`--start ''` silently meant today, and 20261101 or 2026-W45-1 were taken (Python reads them), while
    the message and the files say YYYY-MM-DD."""
    result = invoke("simulate", str(EXAMPLE / "policy.yaml"), "--portfolio", str(EXAMPLE / "portfolio.csv"),
                    "--start", value, "-q")
    assert result.exit_code == 2 and one_error_line(result) == f"error: --start {value!r} is not a date (YYYY-MM-DD)"


def test_an_out_that_is_a_folder_says_it_is_a_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "reports").mkdir()
    result = invoke("simulate", str(EXAMPLE / "policy.yaml"), "--portfolio", str(EXAMPLE / "portfolio.csv"), "-q",
                    "--out", "reports")
    assert result.exit_code == 2
    assert result.stderr.strip() == ("error: --out must end in .csv or .jsonl (got reports, a folder: give a file "
                                     "in it, such as reports/contacts.csv)")


def test_a_file_that_is_not_named_as_a_policy_is_refused_before_it_is_read(tmp_path):
    """The portfolio given where the policy goes (`collect simulate portfolio.csv`) was read as YAML and
    said "a policy file is a mapping of keys"; a .collect policy renamed .txt was read as YAML too."""
    (tmp_path / "portfolio.csv").write_text("invoice_id,customer_id\nA,C\n")
    (tmp_path / "policy.txt").write_text((EXAMPLE / "policy.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    for name in ("portfolio.csv", "policy.txt"):
        result = invoke("validate", str(tmp_path / name))
        assert result.exit_code == 1
        assert result.output.strip() == (f"{tmp_path / name}:1:1: error: a policy file is named *.yaml or *.yml "
                                         f"(YAML) or *.collect (the text DSL), not {name} [not-a-policy]")


def test_a_dry_run_creates_no_store_and_a_failed_import_writes_nothing(tmp_path, monkeypatch):
    """`run --dry-run` ("write nothing") made an empty store. A failed import keeps the store it opened (a
    second import may be filling it at the same moment: removing it lost that import's rows)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.csv").write_text("invoice_id,customer_id\nA,C\n")
    result = invoke("run", str(EXAMPLE / "policy.yaml"), "--db", "sqlite:///dry.db", "--dry-run", "-q")
    assert result.exit_code == 3 and "there is no dry.db" in result.stderr
    assert not (tmp_path / "dry.db").exists()
    (tmp_path / "good.csv").write_text("invoice_id,customer_id,amount,due_date\nA,C,10,2026-12-01\n")
    assert invoke("import", "invoices", "good.csv", "--db", "sqlite:///kept.db").exit_code == 0
    assert invoke("import", "invoices", "bad.csv", "--db", "sqlite:///kept.db").exit_code == 1
    with contextlib.closing(sqlite3.connect(tmp_path / "kept.db")) as conn:
        assert conn.execute("select id from invoices").fetchall() == [("A",)]
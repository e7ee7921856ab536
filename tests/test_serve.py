"""`collect serve` (engine/serve.py) and what it needs of the tick: a failed tick's contacts go out in
the same process, a second signal while stopping, coalesced ticks, when the first tick runs, crontab
weekdays. The scheduled tests run serve() in this process with second-long intervals; the stopping
signal is sent to the main thread, where serve() installs its handlers."""

from __future__ import annotations

import datetime as dt
import json
import os
import logging
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.exc import OperationalError

from collect.engine import runner as runner_module
from collect.engine import store as s
from collect.engine.channels import Channels
from collect.engine.compiler import compile_policy
from collect.engine.portfolio import ColumnMap
from collect.engine.runner import Runner
from collect.engine.serve import Ticks, cron_trigger, serve
from collect.engine.storeio import import_file

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "pe-b2b"
NOW = dt.datetime(2026, 11, 16, 14, tzinfo=dt.timezone.utc)


def send_to_main(signum: int) -> None:
    signal.pthread_kill(threading.main_thread().ident, signum)


# -- a failed tick -------------------------------------------------------------------------------------


@pytest.fixture
def worker(db_url, tmp_path):
    plan = compile_policy(EXAMPLE / "policy.yaml").plan
    engine = s.connect(db_url)
    import_file(engine, "invoices", EXAMPLE / "portfolio.csv", fields=dict(plan["fields"]), colmap=ColumnMap(),
                default_tz="America/Lima", default_currency="PEN")
    names = ("email", "sms", "whatsapp", "voice", "letter", "webhook", "agent")
    channels = Channels({n: {"adapter": "file", "path": str(tmp_path / "outbox" / f"{n}.jsonl")} for n in names})
    return Runner(engine, plan, channels)


def fail_recording_once(monkeypatch, then=lambda: None) -> None:
    """The first record of provider outcomes fails, as with a store locked past its busy timeout: the
    messages went out, their contacts stay `sending`."""
    calls = []

    def record(conn, *args):
        calls.append(1)
        if len(calls) == 1:
            then()
            raise OperationalError("UPDATE contacts", {}, Exception("database is locked"))
        return real(conn, *args)

    real = runner_module.record
    monkeypatch.setattr(runner_module, "record", record)


def contacts_sending(engine) -> int:
    with engine.connect() as conn:
        return len(list(conn.execute(select(s.contacts.c.key).where(s.contacts.c.status == "sending"))))


def outbox_keys(folder: Path) -> Counter:
    return Counter(json.loads(line)["key"] for path in (folder / "outbox").glob("*.jsonl")
                   for line in path.read_text(encoding="utf-8").splitlines())


def tick_finished(engine, tick_id: int):
    with engine.connect() as conn:
        return conn.execute(select(s.ticks.c.finished_at).where(s.ticks.c.id == tick_id)).scalar()


def test_failed_tick_is_finished_so_the_same_process_delivers_its_sending_rows(worker, monkeypatch, tmp_path):
    fail_recording_once(monkeypatch)
    with pytest.raises(OperationalError):
        worker.tick(NOW)
    failed = worker.tick_id
    assert contacts_sending(worker.engine) > 0
    worker.tick(NOW + dt.timedelta(minutes=15))  # the next tick of the same process (same pid)
    keys = outbox_keys(tmp_path)
    assert contacts_sending(worker.engine) == 0 and keys and max(keys.values()) == 1
    assert tick_finished(worker.engine, failed) is not None  # what tells any process the rows are free


def test_failed_tick_the_store_cannot_finish_raises_its_own_error_and_the_next_tick_finishes_it(
        worker, monkeypatch):
    store = worker.engine

    def lose_the_store():
        worker.engine = create_engine("sqlite:////nonexistent/dir/collect.db")

    fail_recording_once(monkeypatch, then=lose_the_store)
    with pytest.raises(OperationalError, match="database is locked"):  # not 'unable to open database file'
        worker.tick(NOW)
    failed = worker.tick_id
    assert tick_finished(store, failed) is None
    worker.engine = store
    worker.tick(NOW + dt.timedelta(minutes=15))
    assert tick_finished(store, failed) is not None and contacts_sending(store) == 0


# -- stopping ------------------------------------------------------------------------------------------


def test_second_sigint_while_stopping_lets_the_tick_finish():
    lines, ticks = [], []

    def tick(now):
        send_to_main(signal.SIGINT)
        time.sleep(0.3)
        send_to_main(signal.SIGINT)  # Ctrl-C again
        send_to_main(signal.SIGTERM)  # and systemd's stop
        time.sleep(0.3)
        ticks.append(now)

    before = signal.getsignal(signal.SIGINT)
    serve(tick, every="1h", log=lines.append)  # returns: no SchedulerNotRunningError
    assert len(ticks) == 1
    assert lines == ["received SIGINT: stopping after the current tick",
                     "received SIGINT: already stopping after the current tick",
                     "received SIGTERM: already stopping after the current tick"]
    assert signal.getsignal(signal.SIGINT) is before


# -- coalescing and the first tick ---------------------------------------------------------------------


def test_runs_due_during_a_tick_are_coalesced_into_one_tick_after_it(caplog):
    """--every 1s, a first tick of 2.2 s: the runs due at 1 s and 2 s make one tick as soon as it ends,
    the next one comes at 3 s as scheduled, and APScheduler warns about nothing."""
    caplog.set_level(logging.WARNING, logger="apscheduler")
    t0 = time.monotonic()
    spans = []

    def tick(now):
        start = time.monotonic() - t0
        time.sleep(2.2 if not spans else 0)
        spans.append((start, time.monotonic() - t0))
        if len(spans) == 3:
            send_to_main(signal.SIGTERM)

    serve(tick, every="1s", log=lambda line: None)
    (first, first_end), (coalesced, _), (scheduled, _) = spans
    assert first < 0.5  # --every ticks at start
    assert coalesced - first_end < 0.4  # not at the next scheduled time (3 s)
    assert scheduled - coalesced > 0.4  # one tick for both missed runs, not two
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_ticks_coalesce_however_many_runs_came_due():
    count, second = [], threading.Event()

    def tick(now):
        count.append(now)
        if len(count) == 1:
            for _ in range(3):
                ticks.fire()  # three scheduled runs come due during this tick
        else:
            second.set()

    ticks = Ticks(tick, log=lambda line: None)
    ticks.fire()
    loop = threading.Thread(target=ticks.run)
    loop.start()
    assert second.wait(5)
    time.sleep(0.1)
    ticks.stop()
    loop.join(5)
    assert len(count) == 2 and not loop.is_alive()


def test_cron_does_not_tick_at_start():
    ticks = []
    threading.Timer(0.5, send_to_main, [signal.SIGTERM]).start()
    serve(ticks.append, cron="0 0 1 1 *", log=lambda line: None)
    assert ticks == []


@pytest.mark.parametrize("expr, days", [("1-5", "mon,tue,wed,thu,fri"), ("0", "sun"), ("7", "sun"),
                                        ("0,6", "sun,sat"), ("*/2", "sun,tue,thu,sat"), ("mon-sat", "mon,tue,wed,thu,fri,sat"),
                                        ("*", "*"), ("01", "mon"), ("1-05", "mon,tue,wed,thu,fri"),
                                        ("sun-tue", "sun,mon,tue"), ("Sun-Tue/2", "sun,tue"), ("sat-sun", "sat-sun")])
def test_cron_weekday_numbers_are_crontab_ones(expr, days):
    """APScheduler 3 counts weekdays from Monday: '1-5' was Tuesday to Saturday."""
    trigger = cron_trigger(f"0 9 * * {expr}")
    assert str(trigger.fields[4]) == days


def test_a_tz_that_names_no_zone_is_one_error_line_before_anything_runs(monkeypatch):
    """The scheduler read it and raised a traceback, also for --every, where local time plays no part."""
    from typer.testing import CliRunner

    from collect.cli import app

    import tzlocal.unix

    monkeypatch.setenv("TZ", "Europe/Lisbn")
    monkeypatch.setattr(tzlocal.unix, "_cache_tz", None)  # read once per process: as a new process reads it
    for schedule in (["--every", "15m"], ["--cron", "0 8 * * 1-5"]):
        result = CliRunner().invoke(app, ["serve", "missing.yaml", *schedule])
        assert result.exit_code == 2 and result.stderr.splitlines() == [
            "error: TZ='Europe/Lisbn' is not a time zone: set it to an IANA name such as America/Lima, or unset it "
            "for the system's"], result.output


def test_the_cli_accepts_7_as_sunday_like_crontab():
    from typer.testing import CliRunner

    from collect.cli import app

    # the schedule is checked first: a good one gets as far as the (missing) policy file, exit 1
    accepted = CliRunner().invoke(app, ["serve", "missing.yaml", "--cron", "0 8 * * 7"])
    refused = CliRunner().invoke(app, ["serve", "missing.yaml", "--cron", "0 8 * * 9"])
    assert (accepted.exit_code, refused.exit_code) == (1, 2), (accepted.output, refused.output)


@pytest.mark.parametrize("expr, said", [
    ("* * 31 2 *", "error: --cron '* * 31 2 *' never fires: no date matches it"),  # served nothing, forever
    ("a b c d e", "error: --cron 'a b c d e' is not a crontab expression (minute hour day month weekday): "),
])
def test_a_cron_schedule_that_cannot_tick_is_a_usage_error_naming_the_option(expr, said):
    from typer.testing import CliRunner

    from collect.cli import app

    result = CliRunner().invoke(app, ["serve", "missing.yaml", "--cron", expr])
    assert result.exit_code == 2 and result.stderr.startswith(said), result.output


def test_a_tick_line_says_what_was_decided_and_delivered():
    from collections import Counter

    from collect.engine.runner import TickSummary
    from collect.views import tick_line

    summary = TickSummary(15, Counter({"sent": 9, "skipped": 24, "deferred": 2}), Counter({"sms": 4, "email": 5}),
                          delivery=Counter({"sent": 9, "retry": 1}))
    assert tick_line(summary) == "15 customers decided: 2 deferred, 9 sent, 24 skipped; delivered 9, not delivered 1"
    assert tick_line(TickSummary()) == "0 customers decided: nothing due"


def test_the_command_exits_0_when_sigterm_follows_ctrl_c_after_the_tick_ended(tmp_path):
    """`collect serve`, idle, got SIGINT then SIGTERM 20 ms later: the service had stopped and put the
    default handlers back before exiting, and the SIGTERM killed it (exit 143)."""
    import subprocess
    import sys

    env = {**os.environ, "COLLECT_DB": f"sqlite:///{tmp_path / 'c.db'}"}
    assert subprocess.run([sys.executable, "-m", "collect", "init", str(tmp_path / "p")], env=env,
                          capture_output=True).returncode == 0
    service = subprocess.Popen([sys.executable, "-m", "collect", "serve", "policy.yaml", "--every", "1h"],
                               cwd=tmp_path / "p", env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while "customers decided" not in (line := service.stderr.readline()) and time.monotonic() < deadline:
            assert line, "serve ended before its first tick"
        service.send_signal(signal.SIGINT)
        time.sleep(0.02)
        service.send_signal(signal.SIGTERM)
        assert service.wait(timeout=30) == 0
    finally:
        service.kill()

"""Recovery of `sending` rows: which tick owns one (alive or dead), and taking them over in bounded
chunks, so that a long provider outage cannot wedge every later tick."""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import socket
from zoneinfo import ZoneInfo

import pytest
from runtools import DOWN, SIMPLE, sms_store
from sqlalchemy import select, update

from collect.engine import runner as runner_module
from collect.engine import store as s
from collect.engine.portfolio import ColumnMap
from collect.engine.runner import Runner
from collect.engine.storeio import import_file

LIMA = ZoneInfo("America/Lima")
def waiting_rows(url: str, tmp_path, customers: int):
    """A store whose `customers` contacts are `sending` after an outage, and a runner whose provider is up."""
    rows = "".join(f"F{i},C{i},100,2026-11-02,+5198765432{i}\n" for i in range(customers))
    engine, plan, channels, provider, tick = sms_store(url, tmp_path, SIMPLE, rows)
    tick(3, 10)
    provider.down = None
    return engine, plan, channels, provider


def test_waiting_contacts_are_taken_over_a_chunk_at_a_time(db_url, tmp_path, monkeypatch):
    engine, plan, channels, provider = waiting_rows(db_url, tmp_path, 5)
    assert provider.placed == []
    monkeypatch.setattr(runner_module, "RECOVER_CHUNK", 2)
    sizes = []
    recover_rows = Runner._recover_rows

    def spy(self, rows, now, summary):
        sizes.append(len(rows))
        return recover_rows(self, rows, now, summary)
    monkeypatch.setattr(Runner, "_recover_rows", spy)
    Runner(engine, plan, channels).tick(dt.datetime(2026, 11, 3, 11, 0, tzinfo=LIMA))
    assert sizes == [2, 2, 1] and len({m.key for m in provider.placed}) == 5


def test_a_provider_still_down_is_tried_three_times_a_tick_however_many_chunks_wait(db_url, tmp_path, monkeypatch):
    engine, plan, channels, provider = waiting_rows(db_url, tmp_path, 7)
    provider.down, provider.calls = DOWN, 0
    monkeypatch.setattr(runner_module, "RECOVER_CHUNK", 2)
    Runner(engine, plan, channels).tick(dt.datetime(2026, 11, 3, 11, 0, tzinfo=LIMA))
    assert provider.calls == 3  # the breaker holds for the tick, not per chunk: the others wait, no attempt used
    with engine.connect() as conn:
        attempts = sorted(conn.execute(select(s.contacts.c.attempts)).scalars())
    assert attempts == [0] * 4 + [2] * 3  # tried in both ticks, or waiting behind the breaker twice


@pytest.fixture
def sqlite_store(tmp_path):
    return f"sqlite:///{tmp_path / 'collect.db'}"


def orphan(engine, tmp_path) -> int:
    """Give the waiting rows to an unfinished tick of this very process (as a container's tick is pid 1
    in every container): only its lock file can tell whether it lives."""
    with engine.begin() as conn:
        tick_id = conn.execute(s.ticks.insert().values(
            now=dt.datetime(2026, 11, 3, 15, tzinfo=dt.timezone.utc), started_at=dt.datetime.now(dt.timezone.utc),
            plan_hash="x", host=socket.gethostname(), pid=os.getpid())).inserted_primary_key[0]
        conn.execute(update(s.contacts).values(tick_id=tick_id, next_attempt_at=None))
    (tmp_path / f"collect.db.tick-{tick_id}.lock").touch()
    return tick_id


def test_a_killed_tick_s_rows_are_delivered_though_its_pid_lives_on(sqlite_store, tmp_path):
    engine, plan, channels, provider = waiting_rows(sqlite_store, tmp_path, 2)
    tick_id = orphan(engine, tmp_path)
    Runner(engine, plan, channels).tick(dt.datetime(2026, 11, 3, 11, 0, tzinfo=LIMA))
    assert len(provider.placed) == 2
    assert not (tmp_path / f"collect.db.tick-{tick_id}.lock").exists()  # the dead tick's file is cleaned up


def test_a_live_tick_s_rows_are_left_to_it(sqlite_store, tmp_path):
    engine, plan, channels, provider = waiting_rows(sqlite_store, tmp_path, 2)
    tick_id = orphan(engine, tmp_path)
    with open(tmp_path / f"collect.db.tick-{tick_id}.lock") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # the owner is alive and delivering
        Runner(engine, plan, channels).tick(dt.datetime(2026, 11, 3, 11, 0, tzinfo=LIMA))
    assert provider.placed == []
    with engine.connect() as conn:
        assert set(conn.execute(select(s.contacts.c.tick_id)).scalars()) == {tick_id}


def test_a_tick_leaves_no_lock_file_behind(sqlite_store, tmp_path):
    engine, plan, channels, provider = waiting_rows(sqlite_store, tmp_path, 1)
    Runner(engine, plan, channels).tick(dt.datetime(2026, 11, 3, 11, 0, tzinfo=LIMA))
    assert list(tmp_path.glob("*.lock")) == []


def test_a_customer_the_core_cannot_decide_for_does_not_stop_the_others(db_url, tmp_path, monkeypatch):
    """Deciding is pure, so what it raises is about that customer's data: the tick goes on with the
    others, says which customer failed and why (exit 3 from `collect run`), and tries it again next time."""
    engine, plan, channels, provider = waiting_rows(db_url, tmp_path, 0)
    csv = tmp_path / "more.csv"
    csv.write_text("invoice_id,customer_id,amount,due_date,phone\n"
                   "G1,D1,100,2026-11-02,+51987654301\nG2,D2,100,2026-11-02,+51987654302\n")
    import_file(engine, "invoices", csv, fields={}, colmap=ColumnMap(), default_tz="America/Lima")
    real = runner_module.decide

    def decide(rt, state, now):
        if state.customer.id == "D1":
            raise OverflowError("date value out of range")
        return real(rt, state, now)
    monkeypatch.setattr(runner_module, "decide", decide)
    summary = Runner(engine, plan, channels).tick(dt.datetime(2026, 11, 3, 11, 0, tzinfo=LIMA))
    assert summary.errors == ["customer D1: deciding failed (OverflowError: date value out of range); nothing "
                              "was decided for it, and the next tick tries again"]
    assert [m.key.split("|")[2] for m in provider.placed] == ["G2"]
    monkeypatch.setattr(runner_module, "decide", real)
    Runner(engine, plan, channels).tick(dt.datetime(2026, 11, 3, 12, 0, tzinfo=LIMA))
    assert sorted(m.key.split("|")[2] for m in provider.placed) == ["G1", "G2"]


def test_a_failed_tick_whose_end_the_store_did_not_take_is_told_dead_by_its_lock_file(sqlite_store, tmp_path,
                                                                                      monkeypatch):
    """The store fails while the tick records an outcome, and again while it records its own end: the
    tick's lock file stays (its lock released), so the next tick knows its `sending` rows are orphans."""
    from sqlalchemy.exc import OperationalError

    engine, plan, channels, provider = waiting_rows(sqlite_store, tmp_path, 0)
    csv = tmp_path / "one.csv"
    csv.write_text("invoice_id,customer_id,amount,due_date,phone\nH1,E1,100,2026-11-02,+51987654300\n")
    import_file(engine, "invoices", csv, fields={}, colmap=ColumnMap(), default_tz="America/Lima")

    def locked(*args, **kwargs):
        raise OperationalError("UPDATE", {}, Exception("database is locked"))
    monkeypatch.setattr(runner_module, "record", locked)
    monkeypatch.setattr(Runner, "_finish", locked)
    with pytest.raises(OperationalError):
        Runner(engine, plan, channels).tick(dt.datetime(2026, 11, 3, 10, 0, tzinfo=LIMA))
    monkeypatch.undo()
    assert len(list(tmp_path.glob("collect.db.tick-*.lock"))) == 1
    with engine.begin() as conn:  # the failed tick's pid lives on (pid 1 in the next container)
        conn.execute(update(s.ticks).values(pid=os.getpid(), host=socket.gethostname()))
    provider.placed.clear()
    Runner(engine, plan, channels).tick(dt.datetime(2026, 11, 3, 11, 0, tzinfo=LIMA))
    assert len(provider.placed) == 1 and list(tmp_path.glob("*.lock")) == []


def test_the_lock_files_of_dead_ticks_are_swept_once_their_rows_are_taken_over(sqlite_store, tmp_path, monkeypatch):
    """A failed tick keeps its file (it may own rows); a killed one leaves it. The next tick removes those
    whose lock is free once it has taken their rows over, and never a live tick's."""
    engine, plan, channels, provider = waiting_rows(sqlite_store, tmp_path, 1)
    dead, live = tmp_path / "collect.db.tick-97.lock", tmp_path / "collect.db.tick-98.lock"
    dead.touch()
    live.touch()
    with open(live) as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        Runner(engine, plan, channels).tick(dt.datetime(2026, 11, 3, 11, 0, tzinfo=LIMA))
        assert sorted(p.name for p in tmp_path.glob("*.lock")) == [live.name]


def test_a_tick_that_dies_while_taking_over_a_dead_tick_s_rows_leaves_the_rest_to_the_next(sqlite_store, tmp_path,
                                                                                             monkeypatch):
    """Rows are taken over a chunk at a time, each delivered before the next is taken. A tick killed
    after its first chunk leaves the dead tick's other rows to that tick still: its lock file must still
    tell it is dead (it was removed when it was first found dead, and the rows waited for ever)."""
    engine, plan, channels, provider = waiting_rows(sqlite_store, tmp_path, 3)
    dead = orphan(engine, tmp_path)
    monkeypatch.setattr(runner_module, "RECOVER_CHUNK", 1)
    recover_rows = Runner._recover_rows

    def killed_after_one_chunk(self, rows, now, summary):
        recover_rows(self, rows, now, summary)
        raise KeyboardInterrupt  # as SIGKILL would: no later chunk
    monkeypatch.setattr(Runner, "_recover_rows", killed_after_one_chunk)
    with pytest.raises(KeyboardInterrupt):
        Runner(engine, plan, channels).tick(dt.datetime(2026, 11, 3, 11, 0, tzinfo=LIMA))
    assert len(provider.placed) == 1
    with engine.connect() as conn:
        assert list(conn.execute(select(s.contacts.c.tick_id).where(s.contacts.c.status == "sending")).scalars()) \
            == [dead, dead]
    monkeypatch.setattr(Runner, "_recover_rows", recover_rows)
    Runner(engine, plan, channels).tick(dt.datetime(2026, 11, 3, 12, 0, tzinfo=LIMA))
    assert len({m.key for m in provider.placed}) == 3  # each once
    with engine.connect() as conn:
        assert conn.execute(select(s.ticks.c.finished_at).where(s.ticks.c.id == dead)).scalar() is not None
    assert list(tmp_path.glob("*.lock")) == []  # swept once the store says the dead tick is over

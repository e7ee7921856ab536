"""Rules of the run path (engine/runner.py, delivery.py, storeio.py) and of the reports that no test
caught, found by mutation testing: each test here fails on a small change of the code it names."""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
import textwrap
import time
from zoneinfo import ZoneInfo

import pytest
from runtools import ONE_A_DAY, SIMPLE, Provider, sms_store
from sqlalchemy import select, update

from collect.adapters.base import DeliveryResult
from collect.engine import store as s
from collect.engine.channels import Channels
from collect.engine.compiler import compile_policy
from collect.engine.portfolio import ColumnMap
from collect.engine.runner import Runner
from collect.engine.storeio import import_file

LIMA = ZoneInfo("America/Lima")
UTC = dt.timezone.utc

def contact_rows(engine) -> list:
    with engine.connect() as conn:
        return list(conn.execute(select(s.contacts).order_by(s.contacts.c.id)))


# -- runner.py -------------------------------------------------------------------------------------------

def test_two_waiting_contacts_recovered_in_one_chunk_are_released_within_the_caps(db_url, tmp_path):
    """A late contact that goes counts at once for the caps of the rows after it in the same chunk."""
    engine, _, _, provider, tick = sms_store(db_url, tmp_path, ONE_A_DAY)
    tick(3, 10)  # z1 decided, the provider is down: it waits
    tick(5, 10)  # a3 decided (z1, on the 3rd, is out of the cap's day), waits too
    assert [r.status for r in contact_rows(engine)] == ["sending", "sending"]
    provider.down = None
    tick(7, 9)  # both are recovered in one chunk: the first that goes holds the other
    assert len(provider.placed) == 1
    assert sorted(r.status for r in contact_rows(engine)) == ["sending", "sent"]


def given_to(engine, host: str, pid: int, finished: bool) -> None:
    """Give the waiting rows to a tick that left no lock file (a version before the lock files, or a store
    without a file): only its ticks row, host and pid tell whether it lives."""
    with engine.begin() as conn:
        tick_id = conn.execute(s.ticks.insert().values(
            now=dt.datetime(2026, 11, 3, 15, tzinfo=UTC), started_at=dt.datetime.now(UTC), plan_hash="x",
            host=host, pid=pid, finished_at=dt.datetime.now(UTC) if finished else None)).inserted_primary_key[0]
        conn.execute(update(s.contacts).values(tick_id=tick_id, next_attempt_at=None))


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'collect.db'}"


def test_the_rows_of_a_finished_tick_are_recovered_though_its_process_lives(sqlite_url, tmp_path):
    """A finished tick (a failed one in `collect serve` too) is over: its `sending` rows are free."""
    engine, _, _, provider, tick = sms_store(sqlite_url, tmp_path, SIMPLE)
    tick(3, 10)
    given_to(engine, socket.gethostname(), os.getpid(), finished=True)
    provider.down = None
    tick(3, 11)
    assert len(provider.placed) == 1 and [r.status for r in contact_rows(engine)] == ["sent"]


def test_the_rows_of_a_tick_on_another_machine_are_left_to_it(sqlite_url, tmp_path):
    """Without a lock file, a tick on another host cannot be told dead: its rows are not delivered twice."""
    engine, _, _, provider, tick = sms_store(sqlite_url, tmp_path, SIMPLE)
    tick(3, 10)
    given_to(engine, "another-host.invalid", 1, finished=False)
    provider.down = None
    tick(3, 11)
    assert provider.placed == [] and [r.status for r in contact_rows(engine)] == ["sending"]


def test_the_rows_of_a_tick_whose_process_is_gone_are_recovered(sqlite_url, tmp_path):
    """Without a lock file, a tick of this host whose process no longer exists is dead: its rows go."""
    engine, _, _, provider, tick = sms_store(sqlite_url, tmp_path, SIMPLE)
    tick(3, 10)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    given_to(engine, socket.gethostname(), gone.pid, finished=False)
    provider.down = None
    tick(3, 11)
    assert len(provider.placed) == 1 and [r.status for r in contact_rows(engine)] == ["sent"]


def test_a_retry_whose_template_the_policy_dropped_is_withdrawn_not_sent_empty(db_url, tmp_path):
    """A waiting message whose template has no body for its channel any more is withdrawn, never sent blank."""
    engine, _, channels, provider, tick = sms_store(db_url, tmp_path, SIMPLE)
    tick(3, 10)
    path = tmp_path / "policy.yaml"
    path.write_text(textwrap.dedent(SIMPLE).replace('{ m: { sms: "Hola" } }', '{ m2: { email: { subject: "s", body: "b" } } }')
                    .replace("send: sms, template: m }", "send: email, template: m2 }"))
    plan = compile_policy(path).plan
    assert plan is not None
    provider.down = None
    Runner(engine, plan, channels).tick(dt.datetime(2026, 11, 3, 11, tzinfo=LIMA))
    assert provider.placed == []
    sms = contact_rows(engine)[0]
    assert (sms.channel, sms.status) == ("sms", "skipped")
    assert sms.reason == "withdrawn before delivery: the policy no longer has template 'm' for sms"


def test_a_row_stored_before_decided_reason_goes_out_without_its_retry_note(sqlite_url, tmp_path):
    """A recovered row without `decided_reason` (schema 0004) takes its reason, not the retry's note, once sent."""
    engine, _, _, provider, tick = sms_store(sqlite_url, tmp_path, SIMPLE)
    tick(3, 10)
    (row,) = contact_rows(engine)
    assert row.reason.startswith("retrying from ")
    with engine.begin() as conn:
        conn.execute(update(s.contacts).values(decided_reason=None, next_attempt_at=None))
    provider.down = None
    tick(3, 11)
    (row,) = contact_rows(engine)
    assert (row.status, row.reason, row.decided_reason) == ("sent", "", "")


# -- delivery.py -----------------------------------------------------------------------------------------

def test_the_breaker_counts_transient_failures_in_a_row_a_success_resets_it(db_url, tmp_path):
    """Three transient failures each followed by a success do not stop a channel: only three in a row do."""
    rows = "".join(f"F{i},C{i},100,2026-11-02,+5198765432{i}\n" for i in range(8))
    engine, _, _, provider, tick = sms_store(db_url, tmp_path, SIMPLE, rows)
    answers = [DeliveryResult.transient("503", "unavailable"), DeliveryResult.sent("ok")] * 4

    def send(message):
        provider.calls += 1
        return answers.pop(0)
    provider.send = send
    summary = tick(3, 10)
    assert provider.calls == 8 and summary.delivery == {"retry": 4, "sent": 4}


def test_a_contact_the_provider_refused_has_no_cost(db_url, tmp_path):
    """Only a contact the provider took costs money: a refused one, or one waiting for a retry, costs nothing."""
    from decimal import Decimal

    from collect.engine.report import report

    rows = "F0,C0,100,2026-11-02,+51987654320\nF1,C1,100,2026-11-02,+51987654321\nF2,C2,100,2026-11-02,+51987654322\n"
    engine, _, _, provider, tick = sms_store(db_url, tmp_path, SIMPLE, rows, costs={"sms": Decimal("0.05")})
    answers = [DeliveryResult.sent("ok"), DeliveryResult.permanent("21211", "invalid number"),
               DeliveryResult.transient("503", "unavailable")]
    provider.send = lambda message: answers.pop(0)
    tick(3, 10)
    assert sorted((r.status, r.attempts, r.cost) for r in contact_rows(engine)) == [  # and the core's fallback
        ("failed", 0, None), ("failed", 1, None), ("sending", 1, None), ("sent", 1, Decimal("0.05"))]
    sms = report(engine, dt.date(2026, 11, 3))["contacts"]["sms"]
    assert (sms["cost"], sms["cost_per_contact"]) == ("0.05", "0.0500")


def test_an_outcome_is_not_written_over_a_row_another_tick_has_taken_over(db_url, tmp_path):
    """A tick that lost its row to another tick (TickLost) must not record its outcome over that tick's."""
    from collect.engine.delivery import Delivery, Result, record

    engine, _, channels, provider, tick = sms_store(db_url, tmp_path, SIMPLE)
    tick(3, 10)
    (row,) = contact_rows(engine)
    with engine.begin() as conn:  # another tick took the waiting row over and is delivering it
        other = conn.execute(s.ticks.insert().values(now=dt.datetime(2026, 11, 3, 16, tzinfo=UTC),
                                                     started_at=dt.datetime.now(UTC), plan_hash="x",
                                                     host="h", pid=1)).inserted_primary_key[0]
        conn.execute(update(s.contacts).values(tick_id=other))
    late = Delivery(row.key, "sms", "C1", ("s1|A",), row.attempts, build=None)
    with engine.begin() as conn:  # the tick that lost it records what its provider answered meanwhile
        record(conn, [Result(late, "sent", provider_id="p-9")], channels, dt.datetime(2026, 11, 3, 16, tzinfo=UTC),
               tick_id=other + 1)
    (after,) = contact_rows(engine)
    assert (after.status, after.tick_id, after.provider_id) == ("sending", other, None)


def test_once_an_outcome_cannot_be_stored_no_channel_sends_anything_more(db_url, tmp_path, monkeypatch):
    """What could not be stored would be sent again: after a store failure the other channels stop too."""
    import threading

    from sqlalchemy.exc import OperationalError

    from collect.engine import runner as runner_module

    policy = SIMPLE.replace('{ m: { sms: "Hola" } }', '{ m: { sms: "Hola", email: { subject: "s", body: "b" } } }') \
        .replace("send: sms, template: m }", "send: sms, template: m }\n          - { id: e1, at: due+1d 10:00, send: email, template: m }")
    rows = "A,C1,100,2026-11-02,+51987654321\nB,C2,100,2026-11-02,+51987654322\n"
    engine, _, channels, sms, tick = sms_store(db_url, tmp_path, policy, rows)
    with engine.begin() as conn:
        conn.execute(update(s.customers).values(email="x@example.pe"))
    sms.down = None
    failed = threading.Event()

    class Waits(Provider):
        def send(self, message):  # the first email is in flight while the SMS outcome fails to be stored
            assert failed.wait(10)
            time.sleep(0.5)  # the failing thread stops the tick meanwhile (a wide margin on a loaded machine)
            return super().send(message)
    email = channels.instances["email"] = Waits(down=None)
    real = runner_module.record

    def record(conn, results, *args, **kwargs):
        if results and results[0].delivery.channel == "sms":
            failed.set()
            raise OperationalError("UPDATE contacts", {}, Exception("database is locked"))
        return real(conn, results, *args, **kwargs)
    monkeypatch.setattr(runner_module, "record", record)
    with pytest.raises(OperationalError):
        tick(3, 10)
    assert len(sms.placed) == 1 and len(email.placed) == 1  # the second email waits for the next tick


def test_a_failure_after_the_invoice_moved_makes_its_new_owner_fall_back(db_url, tmp_path):
    """A contact that fails for good reopens its step for the invoice's owner now, who is due at once."""
    policy = SIMPLE.replace('{ m: { sms: "Hola" } }', '{ m: { sms: "Hola", email: { subject: "s", body: "b" } } }') \
        .replace("send: sms, template: m }", "send: [sms, email], template: m }")
    engine, _, channels, sms, tick = sms_store(db_url, tmp_path, policy, "A,C1,100,2026-11-02,+51987654321\n")
    email = channels.instances["email"] = Provider(down=None)
    tick(3, 10)  # C1's SMS about A waits for a retry
    (tmp_path / "moved.csv").write_text("invoice_id,customer_id,amount,due_date,email\nA,C2,100,2026-11-02,c2@example.pe\n")
    import_file(engine, "invoices", tmp_path / "moved.csv", fields={}, colmap=ColumnMap(), default_tz="America/Lima")
    tick(3, 10, 0)  # both customers decided again: A's step was taken, nothing new
    sms.down = DeliveryResult.permanent("21211", "invalid number")
    tick(3, 11)  # the retry fails for good: A's step falls back to email, for C2
    assert [(m.customer_id, m.channel) for m in email.placed] == [("C2", "email")]


def test_a_batch_of_outcomes_is_not_written_over_rows_another_tick_has_taken_over(db_url, tmp_path):
    """Outcomes recorded together (a deduping receiver's) skip the rows the tick no longer owns."""
    from collect.engine.delivery import Delivery, Result, record

    rows = "A,C1,100,2026-11-02,+51987654321\nB,C2,100,2026-11-02,+51987654322\n"
    engine, _, channels, provider, tick = sms_store(db_url, tmp_path, SIMPLE, rows)
    tick(3, 10)
    mine, theirs = contact_rows(engine)
    with engine.begin() as conn:
        ids = [conn.execute(s.ticks.insert().values(now=dt.datetime(2026, 11, 3, 16, tzinfo=UTC), started_at=dt.datetime.now(UTC),
                                                    plan_hash="x", host="h", pid=1)).inserted_primary_key[0] for _ in range(2)]
        conn.execute(update(s.contacts).where(s.contacts.c.key == mine.key).values(tick_id=ids[0]))
        conn.execute(update(s.contacts).where(s.contacts.c.key == theirs.key).values(tick_id=ids[1]))
    results = [Result(Delivery(r.key, "sms", r.customer_id, (), r.attempts, build=None), "sent", provider_id="p")
               for r in (mine, theirs)]
    with engine.begin() as conn:
        record(conn, results, channels, dt.datetime(2026, 11, 3, 16, tzinfo=UTC), tick_id=ids[0])
    assert [(r.status, r.tick_id) for r in contact_rows(engine)] == [("sent", None), ("sending", ids[1])]


def test_a_tick_that_lost_its_lock_sends_nothing_more(monkeypatch):
    """Before each message the tick asks whether it may still send (runner.TickLost): then none goes."""
    from collect.engine.delivery import Delivery, deliver_all
    from collect.engine.runner import TickLost

    channels = Channels()
    provider = channels.instances["sms"] = Provider(down=None)

    def lost():
        raise TickLost("tick 1 lost the session that holds its lock")
    with pytest.raises(TickLost):
        deliver_all([Delivery("k1", "sms", "C1", (), 0, build=lambda: object())], channels, alive=lost)
    assert provider.calls == 0


# -- storeio.py ------------------------------------------------------------------------------------------

def consents_after(url: str, tmp_path, *files: str) -> list | None:
    engine = s.connect(url)
    for n, text in enumerate(files):
        path = tmp_path / f"c{n}.csv"
        path.write_text(text)
        import_file(engine, "customers", path, fields={}, colmap=ColumnMap(), default_tz="America/Lima")
    with engine.connect() as conn:
        return conn.execute(select(s.customers.c.consents).where(s.customers.c.id == "C1")).scalar()


def test_an_import_that_says_false_withdraws_a_stored_consent(db_url, tmp_path):
    """docs/files.md, Consent: a stored customer's consent changes for the channels whose cell says false."""
    assert consents_after(db_url, tmp_path, "customer_id,consent_email,consent_sms\nC1,true,true\n",
                          "customer_id,consent_email\nC1,false\n") == ["sms"]


def test_an_import_changes_only_the_consents_its_cells_answer(db_url, tmp_path):
    """docs/files.md, Consent: an empty cell leaves a stored customer's consent for that channel as it was."""
    assert consents_after(db_url, tmp_path, "customer_id,consent_email,consent_sms\nC1,true,\n",
                          "customer_id,consent_email,consent_sms\nC1,,true\n") == ["email", "sms"]


@pytest.mark.parametrize("kind, text", [
    ("customers", "customer_id,phone\nC1,+51987654329\n"),
    ("payments", "payment_id,invoice_id,amount,paid_at\nP1,A,40,2026-11-03\n"),
    ("promises", "invoice_id,amount,promised_date\nA,100,2026-11-10\n"),
    ("invoices", "invoice_id,customer_id,amount,due_date\nA,C2,100,2026-11-02\n"),  # its former owner too
], ids=["customers", "payments", "promises", "invoices"])
def test_an_import_makes_the_customers_it_touches_due(db_url, tmp_path, kind, text):
    """engine/storeio.py: every import marks its customers due, so the next tick decides them with the new facts."""
    engine, _, _, _, tick = sms_store(db_url, tmp_path, SIMPLE)
    tick(3, 10)
    with engine.connect() as conn:
        assert conn.execute(select(s.customers.c.next_action_at)).scalar() is not None
    (tmp_path / "more.csv").write_text(text)
    import_file(engine, kind, tmp_path / "more.csv", fields={}, colmap=ColumnMap(), default_tz="America/Lima")
    with engine.connect() as conn:
        assert conn.execute(select(s.customers.c.next_action_at).where(s.customers.c.id == "C1")).scalar() is None


def test_a_delivery_report_after_a_bounce_does_not_undo_it(db_url, tmp_path):
    """A bounce is final: a later `delivered` report of the same contact leaves it failed and bounced."""
    engine, _, _, provider, tick = sms_store(db_url, tmp_path, SIMPLE)
    provider.down = None
    tick(3, 10)
    (row,) = contact_rows(engine)
    (tmp_path / "e.csv").write_text("at,channel,type,contact_id\n"
                                    f"2026-11-03T10:05:00-05:00,sms,bounced,{row.key}\n"
                                    f"2026-11-03T10:06:00-05:00,sms,delivered,{row.key}\n")
    import_file(engine, "events", tmp_path / "e.csv", fields={}, colmap=ColumnMap(), default_tz="America/Lima")
    bounced = next(r for r in contact_rows(engine) if r.key == row.key)
    assert (bounced.status, bounced.delivery) == ("failed", "bounced")

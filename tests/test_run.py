"""The store and `collect run` on SQLite and PostgreSQL: imports, exactly once, crashes, parallel ticks,
and run == simulate."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import subprocess
import sys
import textwrap
from collections import Counter
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from collect.cli import app
from collect.engine import store as s
from collect.engine.channels import Channels
from collect.engine.compiler import compile_policy
from collect.engine.portfolio import ColumnMap, CsvError
from collect.engine.runner import Runner
from collect.engine.simrun import load_portfolio, run_simulation
from collect.engine.storeio import import_file

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "pe-b2b"
UTC = dt.timezone.utc
runner = CliRunner()


@pytest.fixture
def plan():
    return compile_policy(EXAMPLE / "policy.yaml").plan


def load_example(url: str, plan) -> None:
    engine = s.connect(url)
    import_file(engine, "invoices", EXAMPLE / "portfolio.csv", fields=dict(plan["fields"]), colmap=ColumnMap(),
                default_tz="America/Lima", default_currency="PEN")


def import_text(engine, kind: str, path: Path, text: str) -> None:
    """Write a CSV of `kind` and import it, its times in Lima."""
    path.write_text(text)
    import_file(engine, kind, path, fields={}, colmap=ColumnMap(), default_tz="America/Lima")


def outbox_keys(folder: Path) -> Counter:
    keys = Counter()
    for path in (folder / "outbox").glob("*.jsonl"):
        for line in path.read_text(encoding="utf-8").splitlines():
            keys[json.loads(line)["key"]] += 1
    return keys


def file_channels(folder: Path) -> Channels:
    """Every channel to <folder>/outbox/<channel>.jsonl."""
    names = ("email", "sms", "whatsapp", "voice", "letter", "webhook", "agent")
    return Channels({n: {"adapter": "file", "path": str(folder / "outbox" / f"{n}.jsonl")} for n in names})


def ticks(url, plan, start: dt.datetime, hours: int, folder: Path):
    run = Runner(s.connect(url), plan, file_channels(folder))
    for hour in range(hours):
        run.tick(start + dt.timedelta(hours=hour))
    return run


def test_import_is_all_or_nothing_and_payments_are_idempotent(db_url, tmp_path, plan):
    load_example(db_url, plan)
    engine = s.connect(db_url)
    bad = tmp_path / "pay.csv"
    bad.write_text("payment_id,invoice_id,amount,paid_at\nP1,F001-00001,10,2026-11-20\nP2,NOPE,5,2026-11-20\n")
    with pytest.raises(CsvError) as info:
        import_file(engine, "payments", bad, fields={}, colmap=ColumnMap())
    assert [str(p) for p in info.value.problems] == [
        f"{bad}:3: column invoice_id: unknown invoice 'NOPE' (not in the store: import the invoices first)"]
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(s.payments)).scalar() == 0
    good = tmp_path / "good.csv"
    good.write_text("payment_id,invoice_id,amount,paid_at\nP1,F001-00001,10,2026-11-20\n")
    for _ in range(2):
        import_file(engine, "payments", good, fields={}, colmap=ColumnMap())
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(s.payments)).scalar() == 1


def test_reimport_upserts_a_changed_due_date(db_url, tmp_path, plan):
    load_example(db_url, plan)
    engine = s.connect(db_url)
    changed = tmp_path / "p.csv"
    changed.write_text("invoice_id,customer_id,amount,due_date\nF001-00001,C001,778.77,2027-01-15\n")
    import_file(engine, "invoices", changed, fields={}, colmap=ColumnMap())
    with engine.connect() as conn:
        row = conn.execute(select(s.invoices).where(s.invoices.c.id == "F001-00001")).one()
        customer = conn.execute(select(s.customers).where(s.customers.c.id == "C001")).one()
    assert row.due_date == dt.date(2027, 1, 15) and customer.name == "Inversiones Andinas S.A.C."


def test_a_repeated_tick_sends_nothing_new(db_url, tmp_path, plan):
    load_example(db_url, plan)
    now = dt.datetime(2026, 11, 16, 14, tzinfo=UTC)
    run = ticks(db_url, plan, now, 1, tmp_path)
    first = outbox_keys(tmp_path)
    assert first and max(first.values()) == 1
    again = run.tick(now)
    assert again.statuses == Counter() and outbox_keys(tmp_path) == first


def test_the_outbox_is_on_disk_before_the_store_says_sent(tmp_path, plan, monkeypatch):
    """The file adapter's lines are synced (fsync) once per tick, before their outcomes are stored: a
    power cut cannot leave a letter recorded as sent that is not in the file."""
    from collect.adapters.file import FileChannel

    url = f"sqlite:///{tmp_path / 'collect.db'}"
    load_example(url, plan)
    statuses_at_sync = []
    real_sync = FileChannel.sync

    def sync(self):
        with s.connect(url).connect() as conn:
            statuses_at_sync.append(set(conn.execute(select(s.contacts.c.status).where(
                s.contacts.c.channel == self.channel)).scalars()))
        return real_sync(self)
    monkeypatch.setattr(FileChannel, "sync", sync)
    ticks(url, plan, dt.datetime(2026, 11, 16, 14, tzinfo=UTC), 1, tmp_path)
    assert statuses_at_sync and all(seen == {"sending"} for seen in statuses_at_sync)
    with s.connect(url).connect() as conn:
        assert "sending" not in set(conn.execute(select(s.contacts.c.status)).scalars())


def test_run_every_hour_equals_simulate(db_url, tmp_path, plan):
    load_example(db_url, plan)
    start = dt.date(2026, 11, 16)
    begin = dt.datetime.combine(start, dt.time(), dt.timezone(dt.timedelta(hours=-5)))  # Lima midnight
    ticks(db_url, plan, begin, 24 * 14, tmp_path)
    with s.connect(db_url).connect() as conn:
        ran = sorted((r.customer_id, r.step, r.channel, r.at.astimezone(begin.tzinfo).date().isoformat())
                     for r in conn.execute(select(s.contacts).where(s.contacts.c.status == "sent")))
    book = load_portfolio(plan, EXAMPLE / "portfolio.csv")
    simulated = run_simulation(plan, book, start=start, days=14)
    expected = sorted((d.customer_id, d.step, d.channel, d.at.date().isoformat())
                      for d in simulated.decisions if d.status == "sent")
    assert len(expected) > 20 and ran == expected


def test_payment_stops_and_dispute_pauses_in_the_store(db_url, tmp_path, plan):
    load_example(db_url, plan)
    engine = s.connect(db_url)
    import_text(engine, "payments", tmp_path / "pay.csv",
                "payment_id,invoice_id,amount,paid_at\nP1,F001-00017,10585.48,2026-11-10\n")
    import_text(engine, "disputes", tmp_path / "disp.csv", "invoice_id,opened_at\nF001-00014,2026-11-01\n")
    ticks(db_url, plan, dt.datetime(2026, 11, 16, 5, tzinfo=UTC), 24 * 10, tmp_path)
    with engine.connect() as conn:
        touched = {i for r in conn.execute(select(s.contacts.c.invoice_ids).where(s.contacts.c.status == "sent"))
                   for i in r.invoice_ids.split(";")}
    assert "F001-00017" not in touched and "F001-00014" not in touched and touched


def test_a_promise_pauses_the_cadence_in_the_store(db_url, tmp_path, plan):
    load_example(db_url, plan)
    engine = s.connect(db_url)
    begin = dt.datetime(2026, 11, 16, 5, tzinfo=UTC)
    without = run_simulation(plan, load_portfolio(plan, EXAMPLE / "portfolio.csv"), start=dt.date(2026, 11, 16), days=10)
    cadence = {d.customer_id for d in without.decisions if d.status == "sent" and d.stage in ("preventiva", "temprana")}
    customer = sorted(cadence)[0]  # someone the due-date cadence would contact in these ten days
    import_text(engine, "promises", tmp_path / "prom.csv",
                f"customer_id,amount,promised_date,made_at\n{customer},1,2026-12-31,2026-11-15T09:00:00\n")
    ticks(db_url, plan, begin, 24 * 10, tmp_path)
    with engine.connect() as conn:
        steps = {r.step for r in conn.execute(select(s.contacts).where(s.contacts.c.customer_id == customer,
                                                                       s.contacts.c.status == "sent"))}
    assert not steps - {"prom-rec", "prom-inc", "parcial"}  # only event steps, no due-date cadence


CRASHING_TICK = textwrap.dedent("""
    import datetime as dt, os, signal, sys
    from collect.engine import store as s
    from collect.engine.channels import Channels
    from collect.engine.compiler import compile_policy
    from collect.engine.runner import Runner
    from collect.adapters.file import FileChannel

    count = 0
    class Dying(FileChannel):
        def send(self, message):
            global count
            count += 1
            if count == int(sys.argv[3]):
                if sys.argv[4] == "after":
                    super().send(message)
                os.kill(os.getpid(), signal.SIGKILL)   # kill -9 in the middle of the tick
            return super().send(message)

    channels = Channels()
    channels.classes["file"] = Dying  # writes to ./outbox (the test runs it in its own folder)
    plan = compile_policy(sys.argv[1]).plan
    Runner(s.connect(sys.argv[2]), plan, channels, batch=3).tick(dt.datetime(2026, 11, 16, 14, tzinfo=dt.timezone.utc))
""")


@pytest.mark.parametrize("when", ["before", "after"])
def test_kill_9_mid_tick_loses_nothing_and_duplicates_nothing(db_url, tmp_path, plan, when):
    load_example(db_url, plan)
    script = tmp_path / "crash.py"
    script.write_text(CRASHING_TICK)
    proc = subprocess.run([sys.executable, str(script), str(EXAMPLE / "policy.yaml"), db_url, "3", when],
                          cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr
    ticks(db_url, plan, dt.datetime(2026, 11, 16, 14, tzinfo=UTC), 1, tmp_path)
    keys = outbox_keys(tmp_path)
    with s.connect(db_url).connect() as conn:
        rows = list(conn.execute(select(s.contacts.c.key, s.contacts.c.status).where(s.contacts.c.channel != "")))
    sent = {r.key for r in rows if r.status in ("sent", "escalated")}  # escalations go out on `agent`
    assert max(keys.values()) == 1 and set(keys) == sent and not [r for r in rows if r.status == "sending"]

    # a clean run from scratch makes exactly the same contacts
    clean = tmp_path / "clean"
    clean.mkdir()
    other = f"sqlite:///{clean / 'c.db'}"
    load_example(other, plan)
    ticks(other, plan, dt.datetime(2026, 11, 16, 14, tzinfo=UTC), 1, clean)
    assert set(outbox_keys(clean)) == set(keys)


def test_parallel_ticks_from_several_processes(db_url, tmp_path, plan):
    load_example(db_url, plan)
    command = [sys.executable, "-m", "collect", "run", str(EXAMPLE / "policy.yaml"), "--db", db_url,
               "--now", "2026-11-16T14:00:00+00:00", "--quiet"]
    procs = [subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(4)]
    assert all(p.wait(timeout=120) == 0 for p in procs), [p.stderr.read() for p in procs]
    keys = outbox_keys(tmp_path)
    assert keys and max(keys.values()) == 1
    with s.connect(db_url).connect() as conn:
        statuses = Counter(r.status for r in conn.execute(select(s.contacts.c.status)))
    assert statuses["sent"] + statuses["escalated"] == len(keys) and statuses["sending"] == 0


def test_cli_import_run_history(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    db = f"sqlite:///{tmp_path / 'c.db'}"
    result = runner.invoke(app, ["import", "invoices", str(EXAMPLE / "portfolio.csv"), "--db", db,
                                 "--policy", str(EXAMPLE / "policy.yaml"), "--timezone", "America/Lima"])
    assert result.exit_code == 0 and "imported 43 invoices" in result.output
    dry = runner.invoke(app, ["run", str(EXAMPLE / "policy.yaml"), "--db", db, "--now", "2026-11-16T14:00:00", "--dry-run"])
    assert dry.exit_code == 0 and "dry run" in dry.output and not (tmp_path / "outbox").exists()
    assert runner.invoke(app, ["run", str(EXAMPLE / "policy.yaml"), "--db", db, "--now", "2026-11-16T14:00:00"]).exit_code == 0
    out = tmp_path / "h.jsonl"
    assert runner.invoke(app, ["history", "--db", db, "--out", str(out)]).exit_code == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows and {r["status"] for r in rows} >= {"sent", "skipped"}
    sent = next(r for r in rows if r["status"] == "sent" and r["channel"] == "email")
    assert sent["provider_id"] and sent["attempts"] == 1 and sent["contact_id"]  # the audit columns
    bad = tmp_path / "bad.csv"
    bad.write_text("invoice_id,customer_id,amount,due_date\nX,c,-1,2026-01-01\n")
    result = runner.invoke(app, ["import", "invoices", str(bad), "--db", db])
    assert result.exit_code == 1 and "nothing imported" in result.output
    assert runner.invoke(app, ["db", "upgrade", "--db", db]).output.startswith("schema revision")


def test_explain_tasks_report(tmp_path):
    db = f"sqlite:///{tmp_path / 'c.db'}"
    plan = compile_policy(EXAMPLE / "policy.yaml").plan
    load_example(db, plan)
    ticks(db, plan, dt.datetime(2026, 11, 16, 14, tzinfo=UTC), 1, tmp_path)
    from collect.engine.explain import explain
    from collect.engine.report import report, tasks

    header, lines = explain(s.connect(db), plan, "F001-00001", dt.datetime(2026, 11, 16, 14, tzinfo=UTC))
    states = {line.step: (line.state, line.why) for line in lines}
    assert header["stage"] == "temprana" and header["days_past_due"] == 19
    assert states["tem-1"] == ("skipped", "superseded")
    assert states["tem-15"][0] == "escalated" and "cuentas-clave" in states["tem-15"][1]
    assert states["pre-7"][0] == "not due" and states["tem-21"][0] == "scheduled"
    queue = tasks(s.connect(db))
    assert queue and [float(t["priority"]) for t in queue] == sorted((float(t["priority"]) for t in queue), reverse=True)
    data = report(s.connect(db), dt.date(2026, 11, 16))
    assert sum(Decimal(v) for v in data["aging"].values()) == Decimal(data["receivables"]) > 0
    assert data["contacts"]["email"]["sent"] >= 1 and data["tasks_by_queue"]["cuentas-clave"] == len(queue)
    result = runner.invoke(app, ["explain", str(EXAMPLE / "policy.yaml"), "--db", db, "--invoice", "NOPE"])
    assert result.exit_code == 1 and "no invoice 'NOPE'" in result.output


def test_serve_ticks_on_schedule_and_stops_cleanly_on_sigterm(tmp_path):
    import signal
    import time

    db = f"sqlite:///{tmp_path / 'c.db'}"
    load_example(db, compile_policy(EXAMPLE / "policy.yaml").plan)
    proc = subprocess.Popen([sys.executable, "-m", "collect", "serve", str(EXAMPLE / "policy.yaml"), "--db", db,
                             "--every", "1s"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    engine = s.connect(db)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            if conn.execute(select(func.count()).select_from(s.ticks)).scalar() >= 3:
                break
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "stopping after the current tick" in err
    with engine.connect() as conn:
        rows = list(conn.execute(select(s.ticks)))
    assert len(rows) >= 3 and all(r.finished_at is not None for r in rows)  # no tick cut in the middle


from hypothesis import HealthCheck, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@st.composite
def small_portfolio(draw):
    lines = ["invoice_id,customer_id,amount,due_date,customer_name,email,phone,timezone,risk_score,tier,sector"]
    zones = ["America/Lima", "America/Bogota", "America/New_York", "Europe/Madrid"]
    for c in range(draw(st.integers(1, 4))):
        zone, phone = draw(st.sampled_from(zones)), draw(st.sampled_from(["+51987654321", ""]))
        risk, tier = draw(st.sampled_from(["0.1", "0.5", "0.9"])), draw(st.sampled_from(["gold", "bronze"]))
        for i in range(draw(st.integers(1, 3))):
            due = dt.date(2026, 11, 10) + dt.timedelta(days=draw(st.integers(0, 25)))
            amount = draw(st.sampled_from(["500", "1500", "60000"]))
            lines.append(f"F{c}-{i},C{c},{amount},{due},Cliente {c},c{c}@example.pe,{phone},{zone},{risk},{tier},comercio")
    return "\n".join(lines) + "\n"


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(small_portfolio(), st.integers(0, 6))
def test_run_equals_simulate_property(tmp_path_factory, portfolio, offset):
    """Hourly ticks of `collect run` over a week send what `collect simulate` says (customer, step,
    channel, local date, and the reason: why it was deferred first), for random small portfolios and
    start days."""
    folder = tmp_path_factory.mktemp("r")
    (folder / "p.csv").write_text(portfolio, encoding="utf-8")
    plan = compile_policy(EXAMPLE / "policy.yaml").plan
    url = f"sqlite:///{folder / 'c.db'}"
    import_file(s.connect(url), "invoices", folder / "p.csv", fields=dict(plan["fields"]), colmap=ColumnMap(),
                default_tz="America/Lima", default_currency="PEN")
    start = dt.date(2026, 11, 16) + dt.timedelta(days=offset)
    begin = dt.datetime.combine(start, dt.time(), dt.timezone(dt.timedelta(hours=-5)))
    ticks(url, plan, begin, 24 * 7, folder)
    with s.connect(url).connect() as conn:
        ran = sorted((r.customer_id, r.step, r.channel, r.at.astimezone(ZoneInfo(r.tz)).date(), r.reason)
                     for r in conn.execute(select(s.contacts).where(s.contacts.c.status == "sent")))
    simulated = run_simulation(plan, load_portfolio(plan, folder / "p.csv"), start=start, days=7)
    expected = sorted((d.customer_id, d.step, d.channel, d.at.date(), d.reason) for d in simulated.decisions
                      if d.status == "sent")
    assert ran == expected


def test_payments_without_an_id_from_tomorrows_export_are_not_lost(db_url, tmp_path, plan):
    load_example(db_url, plan)
    engine = s.connect(db_url)
    day1 = tmp_path / "pagos.csv"
    day1.write_text("invoice_id,amount,paid_at\nF001-00001,10,2026-11-20\n")
    import_file(engine, "payments", day1, fields={}, colmap=ColumnMap())
    day1.write_text("invoice_id,amount,paid_at\nF001-00001,10,2026-11-20\nF001-00005,500,2026-11-21\n")  # same name
    import_file(engine, "payments", day1, fields={}, colmap=ColumnMap())
    with engine.connect() as conn:
        amounts = sorted(r.amount for r in conn.execute(select(s.payments)))
    assert amounts == [Decimal("10"), Decimal("500")]


def test_reimporting_invoices_without_a_currency_keeps_the_stored_one(db_url, tmp_path, plan):
    engine = s.connect(db_url)
    first = tmp_path / "a.csv"
    first.write_text("invoice_id,customer_id,amount,due_date,currency\nF1,C1,100,2026-12-01,PEN\n")
    import_file(engine, "invoices", first, fields={}, colmap=ColumnMap(), default_currency="USD")
    again = tmp_path / "b.csv"
    again.write_text("invoice_id,customer_id,amount,due_date\nF1,C1,90,2026-12-01\nF2,C1,5,2026-12-02\n")
    import_file(engine, "invoices", again, fields={}, colmap=ColumnMap(), default_currency="USD")
    with engine.connect() as conn:
        found = {r.id: (r.currency, r.amount) for r in conn.execute(select(s.invoices))}
    assert found == {"F1": ("PEN", Decimal("90")), "F2": ("USD", Decimal("5"))}


def test_importing_custom_columns_without_a_policy_warns_which(tmp_path):
    db = f"sqlite:///{tmp_path / 'c.db'}"
    result = runner.invoke(app, ["import", "invoices", str(EXAMPLE / "portfolio.csv"), "--db", db])
    assert result.exit_code == 0
    assert "warning: columns risk_score, tier, sector were kept as text invoice attributes" in result.output
    typed = runner.invoke(app, ["import", "invoices", str(EXAMPLE / "portfolio.csv"), "--db", db,
                                "--policy", str(EXAMPLE / "policy.yaml")])
    assert typed.exit_code == 0 and "warning" not in typed.output


def test_a_promise_without_made_at_means_the_same_in_run_and_simulate(db_url, tmp_path, plan):
    """SPEC 7: run and simulate agree. A promise row without `made_at` counts as made a week before
    its promised date in both (the store once took the promised date itself)."""
    load_example(db_url, plan)
    start = dt.date(2026, 11, 16)
    without = run_simulation(plan, load_portfolio(plan, EXAMPLE / "portfolio.csv"), start=start, days=10)
    contacted = sorted({d.customer_id for d in without.decisions if d.status == "sent" and d.stage == "temprana"})
    promises = tmp_path / "prom.csv"
    import_text(s.connect(db_url), "promises", promises,
                "customer_id,amount,promised_date\n" + "".join(f"{c},1,2026-11-21\n" for c in contacted[:3]))
    begin = dt.datetime.combine(start, dt.time(), dt.timezone(dt.timedelta(hours=-5)))  # Lima midnight
    ticks(db_url, plan, begin, 24 * 10, tmp_path)
    with s.connect(db_url).connect() as conn:
        ran = sorted((r.customer_id, r.step, r.at.astimezone(begin.tzinfo).date().isoformat())
                     for r in conn.execute(select(s.contacts).where(s.contacts.c.status == "sent")))
    simulated = run_simulation(plan, load_portfolio(plan, EXAMPLE / "portfolio.csv", promises=promises), start=start,
                               days=10)
    expected = sorted((d.customer_id, d.step, d.at.date().isoformat()) for d in simulated.decisions
                      if d.status == "sent")
    assert ran == expected
    assert any(step == "prom-rec" for _, step, _ in expected)  # the promises were live in both


def test_explain_says_what_the_next_tick_does_with_a_left_stage_and_a_kept_promise(tmp_path):
    db = f"sqlite:///{tmp_path / 'c.db'}"
    plan = compile_policy(EXAMPLE / "policy.yaml").plan
    load_example(db, plan)
    engine = s.connect(db)
    import_text(engine, "promises", tmp_path / "prom.csv",
                "invoice_id,amount,promised_date,made_at\nF001-00001,100,2026-11-25,2026-11-16T09:00\n")
    import_text(engine, "payments", tmp_path / "pay.csv",
                "payment_id,invoice_id,amount,paid_at\nP1,F001-00001,100,2026-11-17T10:00\n")
    with engine.begin() as conn:  # a reminder deferred while the invoice was still preventive
        conn.execute(s.steps.insert().values(key="pre-2|F001-00001", customer_id="C001", state="pending",
                                             status="window"))
    from collect.engine.explain import explain

    _, lines = explain(engine, plan, "F001-00001", dt.datetime(2026, 11, 20, 14, tzinfo=UTC))
    states = {line.step: (line.state, line.why) for line in lines}
    assert states["pre-2"] == ("skips now", "stage ended")
    assert states["prom-rec"] == ("not applicable", "the promise was kept before it")


def test_explain_says_what_a_promise_pauses(tmp_path):
    """A step deferred (window) before the promise was made said `waiting: window`, and a step due before
    the promised date `scheduled`, as if the promise held back nothing; the header did not name it."""
    db = f"sqlite:///{tmp_path / 'c.db'}"
    plan = compile_policy(EXAMPLE / "policy.yaml").plan
    load_example(db, plan)
    engine = s.connect(db)
    import_text(engine, "promises", tmp_path / "prom.csv",
                "invoice_id,amount,promised_date,made_at\nF001-00001,100,2026-12-05,2026-11-19T09:00\n")
    with engine.begin() as conn:  # due 2026-10-28: tem-21 (due+21d) deferred before the promise
        conn.execute(s.steps.insert().values(key="tem-21|F001-00001", customer_id="C001", state="pending",
                                             status="window"))
    from collect.engine.explain import explain

    header, lines = explain(engine, plan, "F001-00001", dt.datetime(2026, 11, 20, 14, tzinfo=UTC))
    states = {line.step: (line.state, line.why) for line in lines}
    assert header["paused"] == "promise to pay by 2026-12-05"
    assert states["tem-21"] == ("deferred", "paused: promise to pay by 2026-12-05 (deferred before: window)")
    # tar-31 is due 2026-11-28, within the promise; tar-45 on 2026-12-12, after it
    assert states["tar-31"][1].endswith(", and no longer paused (promise to pay by 2026-12-05)")
    assert states["tar-45"] == ("scheduled", "if the invoice is then in stage 'tardia'")


def test_explain_says_a_replaced_promise_is_not_reminded(tmp_path):
    db = f"sqlite:///{tmp_path / 'c.db'}"
    plan = compile_policy(EXAMPLE / "policy.yaml").plan
    load_example(db, plan)
    engine = s.connect(db)
    import_text(engine, "promises", tmp_path / "prom.csv", "invoice_id,amount,promised_date,made_at\n"
                "F001-00001,100,2026-11-25,2026-11-16T09:00\nF001-00001,100,2026-11-30,2026-11-18T09:00\n")
    from collect.engine.explain import explain

    _, lines = explain(engine, plan, "F001-00001", dt.datetime(2026, 11, 26, 14, tzinfo=UTC))
    reminders = [(line.state, line.why) for line in lines if line.step == "prom-rec"]
    assert ("not applicable", "a newer promise replaced it: closed without a contact") in reminders  # by the next tick


STOPPED_AND_KEPT = """
policy: r3
timezone: America/Lima
currency: USD
windows:
  default: { mon-sun: "08:00-20:00" }
templates:
  t:
    email: { subject: "s", body: "b {{ customer.name }}" }
stages:
  due:
    when: invoice.days_past_due >= 0
    steps:
      - { id: d0, at: due 09:00, send: email, template: t }
      - { id: end, at: due+1d 10:00, stop: true }
      - { id: d2, at: due+2d 09:00, send: email, template: t }
events:
  promise_made: [ { id: remind, at: promise-1d 09:00, send: email, template: t } ]
"""


def test_explain_after_the_ticks_says_why_a_step_closed_without_a_contact(tmp_path):
    """After the tick that closed it, a kept promise's reminder read 'its for/if condition was false',
    and the steps after a `stop` step 'stopped: the invoice is open'."""
    from collect.engine.explain import explain

    (tmp_path / "policy.yaml").write_text(STOPPED_AND_KEPT)
    plan = compile_policy(tmp_path / "policy.yaml").plan
    db = f"sqlite:///{tmp_path / 'c.db'}"
    engine = s.connect(db)
    import_text(engine, "invoices", tmp_path / "i.csv", "invoice_id,customer_id,amount,due_date,email\n"
                "X1,Q1,1000,2026-11-25,q1@example.com\nX2,Q2,1000,2026-11-17,q2@example.com\n")
    import_text(engine, "promises", tmp_path / "pr.csv",
                "invoice_id,amount,promised_date,made_at\nX1,400,2026-11-20,2026-11-16T10:00:00\n")
    import_text(engine, "payments", tmp_path / "pay.csv", "invoice_id,amount,paid_at\nX1,400,2026-11-17T15:00:00\n")
    ticks(db, plan, dt.datetime(2026, 11, 16, 5, tzinfo=UTC), 24 * 5, tmp_path)
    now = dt.datetime(2026, 11, 21, 5, tzinfo=UTC)
    why = {(line.step, line.state): line.why for invoice in ("X1", "X2") for line in explain(engine, plan, invoice, now)[1]}
    assert why[("remind", "not applicable")] == "the promise was kept before it"
    assert why[("d2", "stopped")] == "a stop step ended it"


def test_explain_gives_the_for_if_reason_of_a_step_closed_before_a_new_promise(tmp_path):
    """Both steps were closed on time because their `if` was false; explained after a newer promise (made
    the day after) and past the promised date, they read 'the promised date was over' and 'a newer
    promise replaced it'."""
    from collect.engine.explain import explain

    (tmp_path / "policy.yaml").write_text(textwrap.dedent("""
        policy: ex
        timezone: America/Lima
        currency: PEN
        windows:
          default: { mon-fri: "08:00-19:00" }
        templates:
          m: { email: { subject: "s", body: "b" } }
        stages:
          s:
            when: invoice.days_past_due >= 100
            steps:
              - { id: far, at: due+100d, send: email, template: m }
        events:
          promise_made:
            - { id: big-rem, at: promise-0d 09:00, if: invoice.balance > 5000, send: email, template: m }
          promise_broken:
            - { id: pb-big, at: event 10:00, if: invoice.balance > 5000, send: email, template: m }
        """))
    plan = compile_policy(tmp_path / "policy.yaml").plan
    db = f"sqlite:///{tmp_path / 'c.db'}"
    engine = s.connect(db)
    import_text(engine, "invoices", tmp_path / "i.csv", "invoice_id,customer_id,amount,due_date,email\n"
                "F1,C1,1000,2026-11-02,c1@example.pe\n")
    import_text(engine, "promises", tmp_path / "pr.csv", "invoice_id,amount,promised_date,made_at\n"
                "F1,1000,2026-11-10,2026-11-05T10:00:00\nF1,1000,2026-11-20,2026-11-12T10:00:00\n")
    run = Runner(engine, plan, file_channels(tmp_path))
    for hour in (dt.datetime(2026, 11, 10, 14), dt.datetime(2026, 11, 10, 15), dt.datetime(2026, 11, 11, 16)):
        run.tick(hour.replace(tzinfo=UTC))
    lines = explain(engine, plan, "F1", dt.datetime(2026, 11, 13, 15, tzinfo=UTC))[1]
    closed = {(line.step, line.why) for line in lines if line.state == "not applicable"}
    assert closed == {("big-rem", "its for/if condition was false when it was due"),
                      ("pb-big", "its for/if condition was false when it was due")}
    # the same steps with an `if` that holds, closed because the promise had nothing to say: not for/if
    (tmp_path / "policy.yaml").write_text((tmp_path / "policy.yaml").read_text().replace("> 5000", "> 0"))
    plan = compile_policy(tmp_path / "policy.yaml").plan
    engine = s.connect(f"sqlite:///{tmp_path / 'd.db'}")
    import_text(engine, "invoices", tmp_path / "i.csv", "invoice_id,customer_id,amount,due_date,email\n"
                "F1,C1,1000,2026-06-02,c1@example.pe\n")
    import_text(engine, "promises", tmp_path / "pr.csv", "invoice_id,amount,promised_date,made_at\n"
                "F1,1000,2026-07-15,2026-07-10T10:00:00\nF1,1000,2026-08-20,2026-08-10T10:00:00\n")
    Runner(engine, plan, file_channels(tmp_path)).tick(dt.datetime(2026, 11, 2, 15, tzinfo=UTC))
    lines = explain(engine, plan, "F1", dt.datetime(2026, 11, 2, 16, tzinfo=UTC))[1]
    assert sorted((line.step, line.why) for line in lines if line.state == "not applicable") == [
        ("big-rem", "the promised date was over when it came due"),
        ("big-rem", "the promised date was over when it came due"), ("pb-big", "a newer promise replaced it")]


def example_store(folder: Path, catch_up: str = "latest"):
    """pe-b2b (under `catch_up`) in a SQLite store with its payments and promises, and a dispute."""
    policy = folder / "policy.yaml"
    policy.write_text((EXAMPLE / "policy.yaml").read_text().replace("catch_up: latest", f"catch_up: {catch_up}"))
    plan = compile_policy(policy).plan
    url = f"sqlite:///{folder / 'c.db'}"
    load_example(url, plan)
    engine = s.connect(url)
    for kind in ("payments", "promises"):
        import_file(engine, kind, EXAMPLE / f"{kind}.csv", fields={}, colmap=ColumnMap(), default_tz="America/Lima")
    import_text(engine, "disputes", folder / "d.csv",
                "invoice_id,opened_at,reason,resolved_at\nF001-00014,2026-11-01T09:00,precio,2026-11-20T12:00\n")
    return engine, plan


@pytest.mark.parametrize("catch_up, now, said, did", [
    ("latest", dt.datetime(2026, 10, 22, 17, tzinfo=UTC), ("sends now", "on email"), ("sent", "email", "")),
    ("none", dt.datetime(2026, 10, 26, 15, tzinfo=UTC), ("skips now", "missed"), ("skipped", "", "missed"))])
def test_explain_says_what_the_tick_does_with_an_event_step_whose_trigger_passed(tmp_path, catch_up, now, said, did):
    """A partial payment (2026-10-22 11:30 Lima) makes `parcial` due: explain called it `scheduled` with a
    past trigger, while the tick at that --now sent it (under catch_up: none, four days on, skipped it)."""
    engine, plan = example_store(tmp_path, catch_up)
    from collect.engine.explain import explain

    line = next(line for line in explain(engine, plan, "F001-00003", now)[1] if line.step == "parcial")
    summary = Runner(engine, plan, file_channels(tmp_path)).tick(now)
    assert (line.state, line.why) == said
    assert [(d.status, d.channel, d.reason) for d in summary.decisions if d.step == "parcial"] == [did]


@pytest.mark.parametrize("now, invoice, step, reason", [
    (dt.datetime(2026, 10, 26, 15, tzinfo=UTC), "F001-00002", "tem-1", "superseded"),
    (dt.datetime(2026, 10, 26, 15, tzinfo=UTC), "F001-00024", "tem-10", "do_not_contact"),
    (dt.datetime(2026, 10, 14, 12, tzinfo=UTC), "F001-00038", "pre-7", "holdout")])
def test_explain_says_skips_now_for_a_step_the_next_tick_skips(tmp_path, plan, now, invoice, step, reason):
    """explain said `due` ("due now: the next tick decides it") for steps the tick at that --now skips:
    superseded (catch_up: latest), a do_not_contact customer (C008), a holdout customer."""
    db = f"sqlite:///{tmp_path / 'c.db'}"
    load_example(db, plan)
    from collect.engine.explain import explain

    line = next(line for line in explain(s.connect(db), plan, invoice, now)[1] if line.step == step)
    summary = Runner(s.connect(db), plan, file_channels(tmp_path)).tick(now)
    assert (line.state, line.why) == ("skips now", reason)
    assert [(d.status, d.reason) for d in summary.decisions if d.step == step and invoice in d.invoice_ids] == [
        ("skipped", reason)]


def closed_silently(engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(select(s.steps.c.key).where(s.steps.c.status == "not applicable")).scalars())


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(st.sampled_from(["latest", "none"]), st.integers(0, 24 * 80),
       st.lists(st.sampled_from([1, 2, 5, 24, 24 * 6]), min_size=2, max_size=6))
@example("latest", 24 * 32 + 12, [24 * 3 + 22, 24 * 21 - 1])  # the partial payment, C001 and C008 caught up
@example("latest", 948, [24, 1])  # tem-21 held by a cap at its trigger earlier in the tick: a deferred row too
def test_explain_now_is_what_the_tick_decides_property(tmp_path_factory, catch_up, start, gaps):
    """At any --now, the step instances explain says the next tick sends, defers, skips, escalates, fails
    (or closes silently: not applicable) are exactly those the real tick at that moment decides so, for
    every invoice of pe-b2b with its payments, promises and a dispute, ticks apart by hours or days."""
    folder = tmp_path_factory.mktemp("x")
    engine, plan = example_store(folder, catch_up)
    from collect.engine.explain import NOW, explain

    with engine.connect() as conn:
        invoices = list(conn.execute(select(s.invoices.c.id)).scalars())
    run, status = Runner(engine, plan, file_channels(folder)), {v: k for k, v in NOW.items()}
    now = dt.datetime(2026, 9, 20, 5, tzinfo=UTC) + dt.timedelta(hours=start)
    for gap in gaps:
        said = Counter((invoice, line.step, status.get(line.state, line.state)) for invoice in invoices
                       for line in explain(engine, plan, invoice, now)[1]
                       if line.state in status or "closed without a contact" in line.why)
        before = closed_silently(engine)
        summary = run.tick(now)
        # what each instance ends as: a contact held at its trigger earlier in the tick and sent now has a
        # deferred row first (as a tick at the trigger would have written), which explain tells in its
        # "sends now ... after deferral (REASON)"
        last = {key: d for d in summary.decisions for key in d.keys}
        did = Counter((key.split("|")[1], d.step, d.status) for key, d in last.items())
        did.update((key.split("|")[1], key.split("|")[0], "not applicable") for key in closed_silently(engine) - before)
        assert said == did, now
        now += dt.timedelta(hours=gap)


def test_reimport_without_do_not_contact_keeps_it(db_url, tmp_path):
    engine = s.connect(db_url)
    path = tmp_path / "x.csv"

    def dnc():
        with engine.connect() as conn:
            return conn.execute(select(s.customers.c.do_not_contact)).scalar()

    import_text(engine, "invoices", path, "invoice_id,customer_id,amount,due_date,do_not_contact\nI1,C1,100,2026-01-01,true\n")
    import_text(engine, "invoices", path, "invoice_id,customer_id,amount,due_date\nI1,C1,100,2026-01-01\n")
    import_text(engine, "customers", path, "customer_id,phone\nC1,+51911111111\n")
    import_text(engine, "invoices", path, "invoice_id,customer_id,amount,due_date,do_not_contact\nI1,C1,100,2026-01-01,\n")
    assert dnc() is True
    import_text(engine, "customers", path, "customer_id,do_not_contact\nC1,false\n")
    assert dnc() is False


def test_an_import_adds_optouts_and_never_lifts_one(db_url, tmp_path):
    """An optout_* column speaks for its own channel only, and `false` does not undo a stored opt-out
    (an ERP export with false everywhere must not undo a STOP, SPEC 4.6)."""
    engine = s.connect(db_url)
    path = tmp_path / "c.csv"

    def optouts():
        with engine.connect() as conn:
            return conn.execute(select(s.customers.c.optouts)).scalar()

    import_text(engine, "customers", path, "customer_id,optout_sms\nC1,true\n")
    import_text(engine, "customers", path, "customer_id,optout_email,optout_sms\nC1,yes,\n")
    assert optouts() == ["email", "sms"]
    import_text(engine, "customers", path, "customer_id,optout_sms,optout_email\nC1,no,false\n")
    assert optouts() == ["email", "sms"]


def test_reimporting_promises_and_disputes_adds_nothing(db_url, tmp_path):
    engine = s.connect(db_url)
    import_text(engine, "invoices", tmp_path / "i.csv", "invoice_id,customer_id,amount,due_date\nI1,C1,100,2026-01-01\n")
    for _ in range(2):
        import_text(engine, "promises", tmp_path / "p.csv", "invoice_id,amount,promised_date,made_at\n"
                    "I1,100,2026-01-10,2026-01-03T10:00:00\n")
        import_text(engine, "disputes", tmp_path / "d.csv", "invoice_id,opened_at\nI1,2026-01-02\n")
    import_text(engine, "disputes", tmp_path / "d.csv", "invoice_id,opened_at,resolved_at\nI1,2026-01-02,2026-01-04\n")
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(s.promises)).scalar() == 1
        (dispute,) = conn.execute(select(s.disputes)).all()
    assert dispute.resolved_at == dt.datetime(2026, 1, 4, 5, tzinfo=UTC)  # Lima midnight


def test_an_offset_in_paid_at_keeps_its_instant_in_run_and_simulate(db_url, tmp_path, plan):
    from collect.engine.runtime import Runtime
    from collect.engine.simrun import states_from_portfolio
    from collect.engine.storeio import load_states

    engine = s.connect(db_url)
    invoices, payments = tmp_path / "i.csv", tmp_path / "pay.csv"
    import_text(engine, "invoices", invoices,
                "invoice_id,customer_id,amount,due_date,timezone\nI1,C1,100,2026-01-01,Asia/Tokyo\n")
    import_text(engine, "payments", payments,
                "payment_id,invoice_id,amount,paid_at\nP1,I1,10,2026-01-05T20:00:00+00:00\n")
    with engine.connect() as conn:
        (stored,) = load_states(conn, ["C1"])["C1"].payments
    (simulated,) = states_from_portfolio(load_portfolio(plan, invoices, payments=payments), Runtime(plan),
                                         historic=True)["C1"].payments
    assert stored.at == simulated.at == dt.datetime(2026, 1, 5, 20, tzinfo=UTC)


def test_an_invoice_moved_to_another_customer_keeps_its_step_memory(db_url, tmp_path):
    from collect.engine.storeio import load_states

    engine = s.connect(db_url)
    path = tmp_path / "i.csv"
    import_text(engine, "invoices", path,
                "invoice_id,customer_id,amount,due_date\nI1,C1,100,2026-01-01\nI10,C1,5,2026-01-01\n")
    with engine.begin() as conn:
        conn.execute(s.steps.insert(), [{"key": k, "customer_id": "C1", "state": "done", "status": "sent"}
                                        for k in ("od-1|I1", "rem|I1|promise-1", "od-1|I10")])
        conn.execute(s.stopped.insert().values(invoice_id="I1", customer_id="C1"))
    import_text(engine, "invoices", path, "invoice_id,customer_id,amount,due_date\nI1,C2,100,2026-01-01\n")
    with engine.connect() as conn:
        states = load_states(conn, ["C1", "C2"])
    assert set(states["C2"].done) == {"od-1|I1", "rem|I1|promise-1"} and states["C2"].stopped == {"I1"}
    assert set(states["C1"].done) == {"od-1|I10"} and not states["C1"].stopped


def test_a_conversation_blocks_calls_about_its_own_debts_only(db_url, tmp_path):
    """Reg F 1006.14(b)(2)(i)(B) counts per debt: a conversation reported against the call about invoice
    A must not hold back the call about invoice B (one reported without a contact still blocks all)."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(textwrap.dedent("""\
        policy: regf
        timezone: America/New_York
        currency: USD
        calendar: { country: US }
        compliance: [us-reg-f]
        windows:
          default: { mon-sun: "09:00-20:00" }
          holidays: open
        group_by: invoice
        templates:
          m:
            voice: "Please call us about invoice {{ invoice.number }}."
        stages:
          s:
            when: true
            steps:
              - { id: call-1, at: due+1d 10:00, send: voice, template: m }
        """))
    plan = compile_policy(policy).plan
    engine = s.connect(db_url)
    import_text(engine, "invoices", tmp_path / "i.csv", "invoice_id,customer_id,amount,due_date,phone,timezone,country\n"
                "A,C1,100,2026-11-02,+12125550123,America/New_York,US\nB,C1,200,2026-11-04,+12125550123,America/New_York,US\n")
    tick = Runner(engine, plan, file_channels(tmp_path)).tick
    tick(dt.datetime(2026, 11, 3, 15, 30, tzinfo=UTC))
    with engine.connect() as conn:
        call_a = conn.execute(select(s.contacts.c.key).where(s.contacts.c.status == "sent")).scalar_one()
    import_text(engine, "events", tmp_path / "e.csv", f"at,channel,type,contact_id\n2026-11-03T10:45:00-05:00,voice,"
                f"conversation,{call_a}\n")
    decided = tick(dt.datetime(2026, 11, 5, 15, 30, tzinfo=UTC)).decisions
    assert [(d.invoice_ids, d.status) for d in decided] == [(("B",), "sent")]


def test_history_csv_never_starts_a_cell_with_a_spreadsheet_formula(db_url, tmp_path, plan):
    """The audit log is what finance opens in Excel; ids from the ERP and a provider's answers must not
    become formulas there."""
    from collect.engine.history import history_text

    engine = s.connect(db_url)
    import_text(engine, "invoices", tmp_path / "i.csv", "invoice_id,customer_id,amount,due_date,email\n"
                "+F1,=HYPERLINK(1),100,2026-11-10,a@example.com\n")
    Runner(engine, plan, file_channels(tmp_path)).tick(dt.datetime(2026, 11, 16, 15, tzinfo=UTC))
    rows = list(csv.reader(io.StringIO(history_text(engine, None, "csv"))))[1:]
    assert rows and all((r[1], r[2]) == ("'=HYPERLINK(1)", "'+F1") for r in rows)
    assert json.loads(history_text(engine, None, "jsonl").splitlines()[0])["customer_id"] == "=HYPERLINK(1)"


def test_explain_shows_each_occurrence_of_an_event_step_with_its_own_contact(tmp_path, plan):
    """Two partial payments of I1: two `parcial` thank-yous on two days; each explain line is its own."""
    from collect.engine.explain import explain

    url = f"sqlite:///{tmp_path / 'collect.db'}"
    engine = s.connect(url)
    import_text(engine, "invoices", tmp_path / "i.csv",
                "invoice_id,customer_id,amount,issue_date,due_date,customer_name,email,phone,country,risk_score,"
                "tier,sector\nI1,C1,1000.00,2026-11-01,2026-12-01,Uno SAC,a@x.example,+51911111111,PE,0.5,silver,"
                "retail\n")
    import_text(engine, "payments", tmp_path / "p.csv", "payment_id,invoice_id,amount,paid_at\n"
                "P1,I1,200.00,2026-12-02T10:00:00\nP2,I1,300.00,2026-12-03T10:00:00\n")
    run = Runner(engine, plan, file_channels(tmp_path))
    for day in (2, 3):
        run.tick(dt.datetime(2026, 12, day, 16, tzinfo=UTC))
    _, lines = explain(engine, plan, "I1", dt.datetime(2026, 12, 4, 14, tzinfo=UTC))
    assert sorted(line.when for line in lines if line.step == "parcial") == ["2026-12-02T11:00-05:00",
                                                                            "2026-12-03T11:00-05:00"]


def test_explain_says_an_invoice_not_issued_yet_is_not_due(tmp_path):
    """Issued on the 13th: on the 11th its due-10d step (the 10th) waits for the invoice, not for a
    dispute that does not exist (explain said `paused: the invoice is disputed`)."""
    policy = tmp_path / "p.yaml"
    policy.write_text(STOPPED_AND_KEPT.replace("invoice.days_past_due >= 0", "true")
                      .replace("at: due 09:00", "at: due-10d 09:00"), encoding="utf-8")
    plan = compile_policy(policy).plan
    engine = s.connect(f"sqlite:///{tmp_path / 'c.db'}")
    import_text(engine, "invoices", tmp_path / "i.csv", "invoice_id,customer_id,amount,issue_date,due_date,email\n"
                "F1,C1,100,2026-11-13,2026-11-20,a@acme.pe\n")
    from collect.engine.explain import explain

    _, lines = explain(engine, plan, "F1", dt.datetime(2026, 11, 11, 15, tzinfo=UTC))
    assert [(line.state, line.why) for line in lines if line.step == "d0"] == [
        ("not due", "the invoice is issued on 2026-11-13")]


def test_run_warns_once_when_a_step_of_the_earlier_plan_is_gone(tmp_path, monkeypatch):
    """A step moved under a new id (od-7 to od-4) went again to the invoices that got it, without a word."""
    monkeypatch.chdir(tmp_path)
    policy = textwrap.dedent("""\
        policy: moved
        timezone: America/Lima
        windows: { default: { mon-sun: "09:00-18:00" } }
        templates: { m: { sms: "Hola" } }
        stages:
          s: { when: true, steps: [{ id: od-7, at: due+7d 10:00, send: sms, template: m }] }
        """)
    (tmp_path / "policy.yaml").write_text(policy)
    (tmp_path / "i.csv").write_text("invoice_id,customer_id,amount,due_date,phone\nA,C1,100,2026-11-02,+51987654321\n")
    assert runner.invoke(app, ["import", "invoices", "i.csv"]).exit_code == 0

    def tick(now):
        result = runner.invoke(app, ["run", "policy.yaml", "--now", now])
        assert result.exit_code == 0, result.output
        return [line for line in result.stderr.splitlines() if "warning: steps" in line]
    assert tick("2026-11-09T15:00:00Z") == []  # od-7 sent
    (tmp_path / "policy.yaml").write_text(policy.replace("id: od-7, at: due+7d", "id: od-4, at: due+4d"))
    assert tick("2026-11-09T16:00:00Z") == [
        "policy.yaml: warning: steps od-7 of the policy's earlier version are gone: a step is known by its id, so a "
        "step moved or renamed under a new id goes again to the invoices that got the old one (keep the id to "
        "move a step)"]
    assert tick("2026-11-09T17:00:00Z") == []  # said once, at the first tick of the new plan


def test_explain_tells_when_a_step_fired_for_an_invoice_since_moved_to_another_customer(tmp_path, monkeypatch):
    """An invoice given to another customer keeps its step history; explain showed its steps `fired` with
    no time nor channel, as it read only the new customer's contacts."""
    from collect.engine.explain import explain

    monkeypatch.chdir(tmp_path)
    db = f"sqlite:///{tmp_path / 'c.db'}"
    plan = compile_policy(EXAMPLE / "policy.yaml").plan
    engine = s.connect(db)
    import_text(engine, "invoices", tmp_path / "i.csv", "invoice_id,customer_id,amount,due_date,email\n"
                "X1,A,100,2026-11-02,a@example.pe\nX2,B,100,2026-11-20,b@example.pe\n")
    Runner(engine, plan, Channels()).tick(dt.datetime(2026, 11, 4, 15, tzinfo=UTC))
    (before,) = [line for line in explain(engine, plan, "X1", dt.datetime(2026, 11, 4, 16, tzinfo=UTC))[1]
                 if line.state == "fired"]
    import_text(engine, "invoices", tmp_path / "moved.csv", "invoice_id,customer_id,amount,due_date\nX1,B,100,2026-11-02\n")
    (after,) = [line for line in explain(engine, plan, "X1", dt.datetime(2026, 11, 4, 16, tzinfo=UTC))[1]
                if line.state == "fired"]
    assert (after.step, after.when, after.why) == (before.step, before.when, before.why) and after.when

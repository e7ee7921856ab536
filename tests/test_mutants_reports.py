"""Rules of `collect report`, `collect tasks`, `collect history` and of the messages (engine/report.py,
kpis.py, history.py, messages.py) that no test caught, found by mutation testing: each test here fails on
a small change of the code it names."""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal
from zoneinfo import ZoneInfo

from coretools import BASE, customer, invoice, run, runtime

from collect.engine import store as s
from collect.engine.history import history_text
from collect.engine.messages import build_message
from collect.engine.portfolio import ColumnMap
from collect.engine.report import report, tasks
from collect.engine.state import PaymentInfo, PromiseInfo
from collect.engine.storeio import import_file

UTC = dt.timezone.utc
LIMA = ZoneInfo("America/Lima")
DAY = dt.date(2026, 3, 31)  # the report's day D; with --days 30 the period is 03-02 .. 03-31, opening as of 03-01


def store(tmp_path, **files: str):
    """A SQLite store with the CSVs `kind=text` imported, in that order, their times in Lima."""
    engine = s.connect(f"sqlite:///{tmp_path / 'c.db'}")
    for kind, text in files.items():
        path = tmp_path / f"{kind}.csv"
        path.write_text(text)
        import_file(engine, kind, path, fields={}, colmap=ColumnMap(), default_tz="America/Lima")
    return engine


def test_aging_buckets_end_on_30_60_and_90_days_past_due(tmp_path):
    """Aging (SPEC 8): current is 0 days past due or less, then 1-30, 31-60, 61-90, 90+, each bound
    in the lower bucket."""
    rows = "".join(f"I{n},C1,{10 ** n},2025-01-01,{DAY - dt.timedelta(days=late)}\n"
                   for n, late in enumerate([0, 1, 30, 31, 60, 61, 90, 91]))
    engine = store(tmp_path, invoices="invoice_id,customer_id,amount,issue_date,due_date\n" + rows)
    assert report(engine, DAY)["aging"] == {"current": "1", "1-30": "110", "31-60": "11000",
                                           "61-90": "1100000", "90+": "10000000"}


def test_an_invoice_issued_on_the_report_day_is_owed_and_invoiced_one_issued_on_the_opening_day_is_opening(tmp_path):
    """The period is D-N+1 .. D and opens as of the end of D-N: an invoice issued on D is in the
    receivables, in CEI's `invoiced` and in DSO's 90 days; one issued on D-N is in the opening balance,
    not in what the period invoiced."""
    engine = store(tmp_path, invoices="invoice_id,customer_id,amount,issue_date,due_date\n"
                                      "OPEN,C1,300,2026-03-01,2026-04-30\nNEW,C1,600,2026-03-31,2026-04-30\n")
    data = report(engine, DAY)
    assert data["receivables"] == "900"
    assert data["dso_days"] == "90.0"  # 900 / (300 + 600) x 90
    assert (data["cei"]["opening_receivables"], data["cei"]["invoiced"]) == ("300", "600")


def test_recovery_counts_what_was_past_due_when_the_period_opened_and_the_payments_of_its_last_day(tmp_path):
    """Recovery rate: past due = invoices due before D-N (one due on D-N is 0 days late then, current);
    collected = their payments in D-N+1 .. D, the report's own day included."""
    engine = store(tmp_path,
                   invoices="invoice_id,customer_id,amount,issue_date,due_date\n"
                            "LATE,C1,400,2026-01-01,2026-02-28\nONTIME,C1,500,2026-01-01,2026-03-01\n",
                   payments="invoice_id,amount,paid_at\nLATE,100,2026-03-31T18:00\nONTIME,500,2026-03-20T10:00\n")
    assert report(engine, DAY)["recovery"] == {"past_due_at_start": "400", "collected": "100",
                                               "recovery_rate_pct": "25.0"}


def test_promises_count_in_the_period_by_the_customers_days(tmp_path):
    """Promises (SPEC 8): made = made in D-N+1 .. D on the customer's clock (21:00 in Lima on D-N is
    D-N+1 in UTC, still before the period; midnight after D is after it); due = promised for a day of
    the period (D-N is not, D is)."""
    engine = store(tmp_path,
                   invoices="invoice_id,customer_id,amount,issue_date,due_date,timezone\n"
                            "X,C1,100,2026-01-01,2026-02-01,America/Lima\nY,C1,100,2026-01-01,2026-02-01,\n"
                            "Z,C1,100,2026-01-01,2026-02-01,\n",
                   promises="invoice_id,amount,promised_date,made_at\n"
                            "X,100,2026-03-31,2026-03-01T21:00\n"  # due on D, made the day before the period
                            "Y,100,2026-03-01,2026-02-20T10:00\n"  # promised for D-N: not due in the period
                            "Z,100,2026-04-05,2026-04-01T00:00\n",  # made after D: no promise yet
                   payments="invoice_id,amount,paid_at\nX,100,2026-03-31T10:00\n")
    assert report(engine, DAY)["promises"] == {"made": 0, "due": 1, "kept": 1, "broken": 0, "kept_rate_pct": "100.0"}


def test_deferrals_count_the_deferred_contacts_by_reason(tmp_path):
    """Deferrals by reason (SPEC 8): the `deferred` contacts, grouped by their reason; skipped ones are
    not deferrals."""
    engine = store(tmp_path)
    at = dt.datetime(2026, 3, 20, 15, tzinfo=UTC)
    with engine.begin() as conn:
        for n, (status, reason) in enumerate([("deferred", "window"), ("deferred", "window"),
                                              ("deferred", "cap:any"), ("skipped", "superseded")]):
            conn.execute(s.contacts.insert().values(
                key=f"k{n}", policy="p", plan_hash="h", customer_id="C1", invoice_ids="A", step="s", channel="email",
                status=status, reason=reason, at=at, tz="America/Lima", updated_at=at))
    assert report(engine, DAY)["deferrals"] == {"window": 2, "cap:any": 1}


def add_task(engine, n: int, queue: str, priority: str | None, invoice: str = "A", status: str = "open") -> None:
    with engine.begin() as conn:
        conn.execute(s.agent_tasks.insert().values(
            contact_key=f"t{n}", queue=queue, priority=priority, customer_id="C1", invoice_ids=invoice, status=status,
            created_at=dt.datetime(2026, 3, 20, n, tzinfo=UTC)))


def test_tasks_lists_the_open_tasks_of_the_queue_asked_highest_priority_first(tmp_path):
    """`collect tasks --queue Q`: only Q's tasks, only the open ones (one an agent closed is done), highest
    priority first and a task without a priority after those with one."""
    engine = store(tmp_path, invoices="invoice_id,customer_id,amount,due_date\nA,C1,100,2026-03-01\n")
    add_task(engine, 0, "legal", None)
    add_task(engine, 1, "legal", "50")
    add_task(engine, 2, "legal", "900", status="done")
    add_task(engine, 3, "calls", "1000")
    add_task(engine, 4, "legal", "70.5")
    assert [(t["queue"], t["priority"]) for t in tasks(engine, "legal")] == [
        ("legal", "70.5"), ("legal", "50"), ("legal", None)]


def test_a_task_whose_invoice_is_paid_but_for_half_a_cent_leaves_the_queue(tmp_path):
    """SPEC 4.6: an invoice with a balance of 0.005 or less is paid, so its task has nothing to collect."""
    engine = store(tmp_path, invoices="invoice_id,customer_id,amount,due_date\nA,C1,100,2026-03-01\n"
                                      "B,C1,100,2026-03-01\n",
                   payments="invoice_id,amount,paid_at\nA,99.996,2026-03-10\nB,99.99,2026-03-10\n")
    add_task(engine, 0, "q", "1", invoice="A")
    add_task(engine, 1, "q", "1", invoice="B")
    assert [t["invoice_ids"] for t in tasks(engine)] == ["B"]


def add_contact(engine, key: str, at: dt.datetime, **values) -> None:
    row = dict(key=key, policy="p", plan_hash="h" * 64, customer_id="C1", invoice_ids="A", stage="early", step="od-1",
               channel="email", template="t", status="sent", attempts=1, at=at, tz="America/Lima", updated_at=at)
    with engine.begin() as conn:
        conn.execute(s.contacts.insert().values(**{**row, **values}))


def test_history_lists_the_contacts_in_time_order_to_the_second(tmp_path):
    """`collect history`: the contacts in the order they happened (a deferred contact stored first but
    due later comes after), `at` in the customer's time to the second, as in the contacts file."""
    engine = store(tmp_path)
    add_contact(engine, "late", dt.datetime(2026, 3, 20, 15, 0, 7, 123456, tzinfo=UTC))
    add_contact(engine, "early", dt.datetime(2026, 3, 20, 14, tzinfo=UTC))
    rows = list(csv.DictReader(io.StringIO(history_text(engine, None, "csv"))))
    assert [(r["contact_id"], r["at"]) for r in rows] == [("early", "2026-03-20T09:00:00-05:00"),
                                                           ("late", "2026-03-20T10:00:07-05:00")]


def test_history_carries_each_contacts_audit_columns(tmp_path):
    """The audit log (docs/cli.md `collect history`): stage, step, plan_hash, the provider's error code
    and last report, the cost (empty when none is known, not `None`), and a contact_id that `collect
    import events` accepts."""
    engine = store(tmp_path, invoices="invoice_id,customer_id,amount,due_date\nA,C1,100,2026-03-01\n")
    add_contact(engine, "c-1", dt.datetime(2026, 3, 20, 14, tzinfo=UTC), cost=Decimal("0.045"))
    add_contact(engine, "c-2", dt.datetime(2026, 3, 20, 15, tzinfo=UTC), status="failed", error_code="21610")
    (tmp_path / "e.csv").write_text("at,channel,type,contact_id\n2026-03-20T10:30,email,read,c-1\n")
    import_file(engine, "events", tmp_path / "e.csv", fields={}, colmap=ColumnMap(), default_tz="America/Lima")
    sent, failed = csv.DictReader(io.StringIO(history_text(engine, None, "csv")))
    assert (sent["stage"], sent["step"], sent["plan_hash"]) == ("early", "od-1", "h" * 64)
    assert (sent["contact_id"], sent["delivery"], sent["cost"]) == ("c-1", "read", "0.045")
    assert (failed["error_code"], failed["cost"], failed["delivery"]) == ("21610", "", "")


# --- messages -----------------------------------------------------------------------------------------

SAYS_PROMISE = BASE.replace('    sms: "sms {{ customer.name }}"\n',
                            '    sms: "{% if promise.active %}{{ promise.amount }} by {{ promise.date }}{% endif %}"\n')
GROUPED = """
pause_when: []
stages:
  overdue:
    when: invoice.days_past_due >= 1
    steps:
      - { id: s1, at: due+3d, send: sms, template: m }
"""


def test_a_message_about_several_promised_invoices_cites_the_newest_promise(tmp_path):
    """docs/language.md, Templates: a cadence message's `promise` is the newest active promise about its
    invoices."""
    c = customer()
    for iid, amount, made in (("A", "100", 3), ("B", "200", 4)):
        invoice(c, iid, "2026-11-02")
        c.promises.append(PromiseInfo(f"p{iid}", Decimal(amount), dt.date(2026, 11, 20 + made),
                                      dt.datetime(2026, 11, made, 10, tzinfo=LIMA), iid))
    rt = runtime(GROUPED, tmp_path, base=SAYS_PROMISE)
    [sent] = [d for d in run(rt, [c], "2026-11-02", 5).decisions if d.status == "sent"]
    assert sent.invoice_ids == ("A", "B")
    assert build_message(rt, rt.plan, sent, c, "https://pay/{customer_id}").body == "200 by 2026-11-24"


def test_a_message_reads_today_and_days_to_due_on_the_customers_clock(tmp_path):
    """SPEC 4.1: every time is the customer's. At 08:00 on 11-10 in Tokyo it is still 11-09 in Lima (the
    policy's zone) and in UTC: the message says 11-10, two days before the due date."""
    says_today = BASE.replace('    sms: "sms {{ customer.name }}"\n',
                              '    sms: "{{ today }} {{ invoice.days_to_due }}"\n')
    rt = runtime("""
stages:
  before:
    when: invoice.days_to_due >= 0
    steps:
      - { id: pre, at: due-2d 08:00, send: sms, template: m }
""", tmp_path, base=says_today)
    c = customer(timezone="Asia/Tokyo")
    invoice(c, "A", "2026-11-12")
    [sent] = [d for d in run(rt, [c], "2026-11-08", 4).decisions if d.status == "sent"]
    assert build_message(rt, rt.plan, sent, c, "https://pay/{customer_id}").body == "2026-11-10 2"


def test_a_messages_open_balance_is_net_of_the_payments_received(tmp_path):
    """SPEC 4.6 / `state.balance_at`: the customer's open balance a message cites is the stored balance
    minus the payments made so far."""
    says_owed = BASE.replace('    sms: "sms {{ customer.name }}"\n', '    sms: "{{ customer.open_balance | money }}"\n')
    c = customer()
    invoice(c, "A", "2026-11-02")
    c.payments.append(PaymentInfo("pay1", "A", Decimal("400"), dt.datetime(2026, 11, 3, 12, tzinfo=LIMA)))
    rt = runtime(GROUPED, tmp_path, base=says_owed)
    [sent] = [d for d in run(rt, [c], "2026-11-02", 5).decisions if d.status == "sent"]
    body = build_message(rt, rt.plan, sent, c, "https://pay/{customer_id}").body
    assert body == "S/ 600.00"  # an SMS writes plain spaces

"""`collect report` (SPEC section 8): CEI, recovery rate, promises kept and delivery rates computed by hand
on a small store; ratios without a denominator are n/a, not 0; the HTML page escapes names from the store."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from collect import views
from collect.cli import app
from collect.engine import store as s
from collect.engine.portfolio import ColumnMap
from collect.engine.report import report
from collect.engine.storeio import import_file

UTC = dt.timezone.utc
DAY = dt.date(2026, 3, 31)  # the period is 2026-03-02 .. 2026-03-31; it opens as of 2026-03-01
runner = CliRunner()

INVOICES = """invoice_id,customer_id,amount,issue_date,due_date,status,timezone
A,C1,1000,2026-01-01,2026-01-31,open,America/Lima
B,C1,500,2026-02-01,2026-04-15,open,America/Lima
N,C2,200,2026-03-05,2026-03-20,open,
W,C2,800,2025-11-01,2025-12-01,written_off,
E,C2,100,2026-04-05,2026-05-05,open,
F,C2,600,2026-01-10,2026-02-10,open,
"""
# 21:00 in Lima on 03-01 is 03-02 in UTC: C1 is in Lima, so the payment is on its 03-01, before the period
PAYMENTS = """invoice_id,amount,paid_at
A,300,2026-03-01T21:00
A,400,2026-03-10
B,100,2026-03-20
N,50,2026-03-25
F,700,2026-03-05
A,100,2026-04-02
"""
PROMISES = """invoice_id,customer_id,amount,promised_date,made_at
A,,400,2026-03-10,2026-03-05
B,,200,2026-03-25,2026-03-15
,C2,50,2026-03-26,2026-03-21
A,,300,2026-04-10,2026-03-28
B,,500,2026-02-20,2026-02-01
"""


def import_text(engine, kind: str, path: Path, text: str) -> None:
    """Write a CSV of `kind` and import it, its times in Lima."""
    path.write_text(text)
    import_file(engine, kind, path, fields={}, colmap=ColumnMap(), default_tz="America/Lima")


@pytest.fixture
def book(db_url, tmp_path):
    """The store of the hand computations below."""
    engine = s.connect(db_url)
    for kind, text in (("invoices", INVOICES), ("payments", PAYMENTS), ("promises", PROMISES)):
        import_text(engine, kind, tmp_path / f"{kind}.csv", text)
    return engine


def add_contact(engine, n: int, channel: str, status: str, delivery: str | None = None, cost=None,
                at=dt.datetime(2026, 3, 20, 15, tzinfo=UTC), tz="America/Lima", **extra) -> None:
    with engine.begin() as conn:
        conn.execute(s.contacts.insert().values(
            key=f"k{n}", policy="p", plan_hash="h", customer_id="C1", invoice_ids="A", step="s", channel=channel,
            status=status, at=at, tz=tz, updated_at=at, delivery=delivery, cost=cost, **extra))


def add_task(engine, n: int, queue: str, at=dt.datetime(2026, 3, 20, tzinfo=UTC)) -> None:
    with engine.begin() as conn:
        conn.execute(s.agent_tasks.insert().values(contact_key=f"t{n}", queue=queue, customer_id="C1",
                                                   invoice_ids="A", created_at=at))


def test_a_task_is_dated_on_the_clock_of_the_decision_that_opened_it_as_its_contact_is(book):
    """The contact of an escalation is counted on the zone it was decided in; its task was counted on the
    customer's zone now, so after a change of the customer's zone the two fell on different days."""
    at = dt.datetime(2026, 4, 1, 2, tzinfo=UTC)  # 04-01 in Tokyo, where it was decided; 03-31 in Lima, C1's zone now
    add_contact(book, 9, "agent", "escalated", attempts=1, at=at, tz="Asia/Tokyo")
    with book.begin() as conn:
        conn.execute(s.agent_tasks.insert().values(contact_key="k9", queue="q", customer_id="C1", invoice_ids="A",
                                                   created_at=at))
    data = report(book, DAY, timezone="America/Lima")
    assert ("agent" in data["contacts"], data["tasks_by_queue"]) == (False, {})
    data = report(book, DAY + dt.timedelta(days=1), timezone="America/Lima")
    assert (data["contacts"]["agent"]["sent"], data["tasks_by_queue"]) == (1, {"q": 1})


def test_a_report_as_of_a_past_day_leaves_out_the_contacts_deferrals_and_tasks_decided_after_it(book):
    """The money was as of D, but the contacts, deferrals and tasks were the whole store's: a report of
    March counted April's sends. C1 is in Lima: 04:00 UTC on 04-01 is still its 03-31; 06:00 is not."""
    for n, (hour, status) in enumerate([(4, "sent"), (6, "sent"), (4, "deferred"), (6, "deferred")]):
        add_contact(book, n, "sms", status, reason="window" if status == "deferred" else None, attempts=1,
                    at=dt.datetime(2026, 4, 1, hour, tzinfo=UTC))
        add_task(book, n, "collections", at=dt.datetime(2026, 4, 1, hour, tzinfo=UTC))
    march = report(book, DAY, timezone="America/Lima")
    assert (march["contacts"]["sms"]["sent"], march["deferrals"], march["tasks_by_queue"]) == (
        1, {"window": 1}, {"collections": 2})
    april = report(book, DAY + dt.timedelta(days=1), timezone="America/Lima")
    assert (april["contacts"]["sms"]["sent"], april["deferrals"], april["tasks_by_queue"]) == (
        2, {"window": 2}, {"collections": 4})


def test_balances_at_past_days_are_rebuilt_from_dated_payments(book):
    """A: 1000 - 300 (03-01 in Lima) - 400; the 04-02 payment is after the report; E is issued after it;
    W is written off; F was overpaid."""
    data = report(book, DAY)
    assert data["period"] == {"first_day": "2026-03-02", "last_day": "2026-03-31", "days": 30}
    assert data["aging"] == {"current": "400", "1-30": "150", "31-60": "300", "61-90": "0", "90+": "0"}
    assert data["receivables"] == "850"
    assert data["dso_days"] == "33.3"  # 850 / (1000 + 500 + 200 + 600) x 90


def test_cei_by_hand(book):
    cei = report(book, DAY)["cei"]
    # opening as of 03-01: A 700 + B 500 + F 600; invoiced in the period: N; closing: A 300 + B 400 + N 150
    assert cei == {"opening_receivables": "1800", "invoiced": "200", "closing_receivables": "850",
                   "closing_current": "400", "cei_pct": "71.9"}  # (1800 + 200 - 850) / (1800 + 200 - 400)


def test_recovery_rate_counts_past_due_invoices_up_to_their_balance(book):
    recovery = report(book, DAY)["recovery"]
    # past due at the start: A 700, F 600 (B was not due); collected: A 400, F 700 counted as 600
    assert recovery == {"past_due_at_start": "1300", "collected": "1000", "recovery_rate_pct": "76.9"}


def test_promises_kept_by_the_decision_cores_rule(book):
    promises = report(book, DAY)["promises"]
    # due in the period: A 400 (paid 03-10: kept), B 200 (100 paid: broken), C2-wide 50 (N paid 50: kept);
    # made in the period: those three and A's for 04-10
    assert promises == {"made": 4, "due": 3, "kept": 2, "broken": 1, "kept_rate_pct": "66.7"}


def test_a_renegotiated_promise_is_neither_kept_nor_broken(tmp_path):
    """P1 (for 03-20) is replaced on 03-15 by P2 (for 03-28), which is kept: one promise due and kept,
    not a broken one beside it (the core sends no 'promise broken' for P1 either)."""
    engine = s.connect(f"sqlite:///{tmp_path / 'c.db'}")
    import_text(engine, "invoices", tmp_path / "i.csv",
                "invoice_id,customer_id,amount,issue_date,due_date\nX,C1,500,2026-02-01,2026-03-01\n")
    import_text(engine, "promises", tmp_path / "pr.csv", "invoice_id,amount,promised_date,made_at\n"
                "X,500,2026-03-20,2026-03-10T10:00\nX,500,2026-03-28,2026-03-15T10:00\n")
    import_text(engine, "payments", tmp_path / "pay.csv", "invoice_id,amount,paid_at\nX,500,2026-03-27T10:00\n")
    assert report(engine, DAY)["promises"] == {"made": 2, "due": 1, "kept": 1, "broken": 0, "kept_rate_pct": "100.0"}


def test_a_promise_kept_before_the_next_one_is_made_stays_kept(tmp_path):
    """An instalment plan: 300 by 03-10, kept on 03-05; 300 by 03-20, made on 03-08, kept on 03-19. The
    first was not renegotiated: two due, two kept."""
    engine = s.connect(f"sqlite:///{tmp_path / 'c.db'}")
    import_text(engine, "invoices", tmp_path / "i.csv",
                "invoice_id,customer_id,amount,issue_date,due_date\nX,C1,600,2026-02-01,2026-03-01\n")
    import_text(engine, "promises", tmp_path / "pr.csv", "invoice_id,amount,promised_date,made_at\n"
                "X,300,2026-03-10,2026-03-02T10:00\nX,300,2026-03-20,2026-03-08T10:00\n")
    import_text(engine, "payments", tmp_path / "pay.csv", "payment_id,invoice_id,amount,paid_at\n"
                "P1,X,300,2026-03-05T10:00\nP2,X,300,2026-03-19T10:00\n")
    assert report(engine, DAY)["promises"] == {"made": 2, "due": 2, "kept": 2, "broken": 0, "kept_rate_pct": "100.0"}


def test_a_customer_wide_promise_is_not_kept_by_paying_an_invoice_issued_after_it(tmp_path):
    """A promise about all of C1's invoices, made on 03-10, covers X; Y was issued on 03-12. Paying Y
    pays no promised debt: the promise is broken, as the decision core sees it (`kept_at`)."""
    engine = s.connect(f"sqlite:///{tmp_path / 'c.db'}")
    import_text(engine, "invoices", tmp_path / "i.csv", "invoice_id,customer_id,amount,issue_date,due_date\n"
                "X,C1,500,2026-02-01,2026-03-01\nY,C1,500,2026-03-12,2026-04-12\n")
    import_text(engine, "promises", tmp_path / "pr.csv", "customer_id,amount,promised_date,made_at\n"
                "C1,500,2026-03-20,2026-03-10T10:00\n")
    import_text(engine, "payments", tmp_path / "pay.csv", "invoice_id,amount,paid_at\nY,500,2026-03-15T10:00\n")
    assert report(engine, DAY)["promises"] == {"made": 1, "due": 1, "kept": 0, "broken": 1, "kept_rate_pct": "0.0"}
    import_text(engine, "payments", tmp_path / "pay2.csv", "invoice_id,amount,paid_at\nX,500,2026-03-16T10:00\n")
    assert report(engine, DAY)["promises"]["kept"] == 1


def test_a_shorter_period_moves_the_opening(book):
    data = report(book, DAY, days=10)  # 03-22 .. 03-31, opening as of 03-21
    assert data["cei"]["opening_receivables"] == "900"  # A 300 + B 400 + N 200
    assert data["cei"]["cei_pct"] == "10.0"  # (900 + 0 - 850) / (900 + 0 - 400)
    assert data["recovery"] == {"past_due_at_start": "500", "collected": "50", "recovery_rate_pct": "10.0"}
    assert data["promises"] == {"made": 1, "due": 2, "kept": 1, "broken": 1, "kept_rate_pct": "50.0"}


def test_customers_without_a_zone_take_the_reports_timezone(tmp_path):
    engine = s.connect(f"sqlite:///{tmp_path / 'c.db'}")
    import_text(engine, "invoices", tmp_path / "i.csv",
                "invoice_id,customer_id,amount,issue_date,due_date\nX,C9,100,2026-01-01,2026-01-31\n")
    import_text(engine, "payments", tmp_path / "p.csv", "invoice_id,amount,paid_at\nX,100,2026-03-01T21:00\n")
    in_utc = report(engine, DAY)["recovery"]  # 03-02 02:00 UTC: paid in the period
    assert in_utc == {"past_due_at_start": "100", "collected": "100", "recovery_rate_pct": "100.0"}
    in_lima = report(engine, DAY, timezone="America/Lima")["recovery"]  # 03-01 21:00: paid before it
    assert in_lima == {"past_due_at_start": "0", "collected": "0", "recovery_rate_pct": None}


def test_ratios_without_a_denominator_are_none_not_zero(tmp_path):
    engine = s.connect(f"sqlite:///{tmp_path / 'c.db'}")
    data = report(engine, DAY)
    assert (data["dso_days"], data["cei"]["cei_pct"], data["recovery"]["recovery_rate_pct"],
            data["promises"]["kept_rate_pct"]) == (None, None, None, None)
    # one unpaid invoice, issued in the period and not yet due: nothing was collectible, so no CEI
    import_text(engine, "invoices", tmp_path / "i.csv",
                "invoice_id,customer_id,amount,issue_date,due_date\nX,C9,100,2026-03-20,2026-04-20\n")
    data = report(engine, DAY)
    assert data["cei"] == {"opening_receivables": "0", "invoiced": "100", "closing_receivables": "100",
                           "closing_current": "100", "cei_pct": None}
    assert data["dso_days"] == "90.0" and data["recovery"]["recovery_rate_pct"] is None


def test_dso_counts_the_invoices_of_exactly_90_days(tmp_path):
    """DSO = receivables / invoiced in the last 90 days x 90: D-89 .. D. An invoice issued on D-90 is
    the 91st day and counting it halved DSO here."""
    engine = s.connect(f"sqlite:///{tmp_path / 'c.db'}")
    import_text(engine, "invoices", tmp_path / "i.csv", "invoice_id,customer_id,amount,issue_date,due_date,status\n"
                f"D1,C1,900,{DAY - dt.timedelta(days=89)},2026-04-30,open\n"
                f"D2,C1,900,{DAY - dt.timedelta(days=90)},2026-01-31,paid\n")
    assert report(engine, DAY)["dso_days"] == "90.0"


def test_delivery_and_failure_rate_per_channel(tmp_path):
    engine = s.connect(f"sqlite:///{tmp_path / 'c.db'}")
    for n, (channel, status, delivery) in enumerate([
            ("email", "sent", "delivered"), ("email", "sent", "read"), ("email", "sent", None),
            ("email", "failed", "bounced"), ("email", "sending", None), ("email", "deferred", None),
            ("sms", "sent", None), ("sms", "sent", None), ("voice", "sending", None)]):
        add_contact(engine, n, channel, status, delivery, cost="0.50" if channel == "sms" else None)
    contacts = report(engine, DAY)["contacts"]
    assert contacts["email"] == {"sent": 3, "failed": 1, "sending": 1, "delivered": 2, "delivery_rate_pct": "50.0",
                                 "failure_rate_pct": "25.0", "cost": None, "cost_per_contact": None}  # no cost known
    # sms: no provider report at all, so its delivery rate is unknown; voice: nothing settled nor sent
    assert (contacts["sms"]["delivery_rate_pct"], contacts["sms"]["failure_rate_pct"],
            contacts["sms"]["cost_per_contact"]) == (None, "0.0", "0.5000")
    assert (contacts["voice"]["delivery_rate_pct"], contacts["voice"]["failure_rate_pct"],
            contacts["voice"]["cost_per_contact"]) == (None, None, None)


def test_agent_hand_offs_count_as_sent_and_a_bounced_paid_contact_in_the_cost_per_contact(tmp_path):
    """A task handed to the agent channel's adapter is stored `escalated`: it was counted nowhere, so the
    one failed hand-off read as a 100% failure rate. A bounced email keeps the cost paid for it: divided by
    the sent ones alone, the cost per contact came out above the channel's price."""
    engine = s.connect(f"sqlite:///{tmp_path / 'c.db'}")
    for n in range(3):
        add_contact(engine, n, "agent", "escalated", attempts=1)
    add_contact(engine, 3, "agent", "failed", attempts=1)
    add_contact(engine, 4, "agent", "escalated")  # a task not handed off yet (attempts 0): no outcome
    for n, (status, delivery) in enumerate([("sent", "delivered"), ("sent", None), ("failed", "bounced")], start=5):
        add_contact(engine, n, "email", status, delivery, cost="0.01", attempts=1)
    contacts = report(engine, DAY)["contacts"]
    assert (contacts["agent"]["sent"], contacts["agent"]["failed"], contacts["agent"]["failure_rate_pct"]) == (3, 1, "25.0")
    assert (contacts["email"]["cost"], contacts["email"]["cost_per_contact"]) == ("0.03", "0.0100")


def test_html_escapes_names_from_the_store_and_carries_the_kpis(book, db_url):
    add_contact(book, 1, "<img src=x onerror=alert(1)>", "sent")
    add_task(book, 1, '<script>alert("q")</script>')
    result = runner.invoke(app, ["report", "--db", db_url, "--date", "2026-03-31", "--format", "html"])
    assert result.exit_code == 0, result.output
    page = result.output
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<script>" not in page and "<img" not in page
    assert "&lt;script&gt;alert(&#34;q&#34;)&lt;/script&gt;" in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    for shown in ("71.9%", "76.9%", "66.7%", "33.3", "850", "Contacts per channel", "Agent tasks by queue"):
        assert shown in page


def test_table_view_shows_a_queue_name_that_looks_like_markup(book, db_url):
    add_task(book, 1, "[/bold]urgent")
    result = runner.invoke(app, ["report", "--db", db_url, "--date", "2026-03-31"])
    assert result.exit_code == 0, result.output
    assert "[/bold]urgent" in result.output and "71.9%" in result.output and "n/a" not in result.output


def test_json_and_csv_carry_the_new_kpis_and_none_as_null_or_na(tmp_path):
    db = f"sqlite:///{tmp_path / 'c.db'}"
    s.connect(db).dispose()  # an empty store
    result = runner.invoke(app, ["report", "--db", db, "--date", "2026-03-31", "--format", "json"])
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert {"aging", "receivables", "dso_days", "contacts", "deferrals", "tasks_by_queue",
            "period", "cei", "recovery", "promises"} <= set(data)
    assert data["cei"]["cei_pct"] is None and data["dso_days"] is None
    result = runner.invoke(app, ["report", "--db", db, "--date", "2026-03-31", "--format", "csv", "--days", "7"])
    assert result.exit_code == 0
    rows = result.output.splitlines()
    assert rows[0] == "section,key,value" and "cei,cei_pct,n/a" in rows and "kpi,dso_days,n/a" in rows
    assert {"period,days,7", "recovery,recovery_rate_pct,n/a", "promises,kept_rate_pct,n/a", "kpi,date,2026-03-31"} <= set(rows)


def test_csv_quotes_a_queue_name_with_a_comma(tmp_path):
    engine = s.connect(f"sqlite:///{tmp_path / 'c.db'}")
    add_task(engine, 1, "legal, north")
    assert 'tasks_by_queue,"legal, north",1' in views.report_csv(report(engine, DAY)).splitlines()


@pytest.mark.parametrize("args", [["--date", "31/03/2026"], ["--days", "0"], ["--format", "pdf"],
                                  ["--timezone", "Mars/Olympus"]])
def test_report_usage_errors_exit_2(tmp_path, args):
    result = runner.invoke(app, ["report", "--db", f"sqlite:///{tmp_path / 'c.db'}", *args])
    assert result.exit_code == 2


def test_a_decision_failed_before_any_provider_is_no_channel_failure(tmp_path):
    """The decision core fails a step whose channels all lack an address: its `failed` row (attempts 0)
    names the last channel tried, but nothing was handed to that channel's provider. Only the rows the
    delivery stage tried (attempts 1 or more) are the channel's failures."""
    engine = s.connect(f"sqlite:///{tmp_path / 'c.db'}")
    add_contact(engine, 1, "sms", "failed")  # no address on any channel: attempts 0
    add_contact(engine, 2, "email", "sent")
    add_contact(engine, 3, "email", "failed")  # refused by the provider
    add_contact(engine, 4, "email", "failed")  # failed in the decision core
    with engine.begin() as conn:
        conn.execute(s.contacts.update().where(s.contacts.c.key.in_(["k2", "k3"])).values(attempts=1))
    contacts = report(engine, DAY)["contacts"]
    assert "sms" not in contacts
    assert (contacts["email"]["sent"], contacts["email"]["failed"], contacts["email"]["failure_rate_pct"]) == (
        1, 1, "50.0")


def test_a_decision_failed_for_want_of_an_address_counts_in_no_channel_end_to_end(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the outbox of the default channels
    db = f"sqlite:///{tmp_path / 'c.db'}"
    (tmp_path / "inv.csv").write_text("invoice_id,customer_id,amount,due_date,email,phone\n"
                                      "I1,C1,100,2026-03-01,,\nI2,C2,100,2026-03-01,b@example.com,\n")
    (tmp_path / "policy.yaml").write_text("""
policy: two-steps
timezone: UTC
currency: USD
windows:
  default: { mon-sun: "00:00-23:59" }
  holidays: open
group_by: invoice
templates:
  a: { email: { subject: "a", body: "a" }, sms: "a" }
stages:
  late:
    when: invoice.days_past_due >= 0
    steps:
      - { id: s1, at: due+1d 10:00, send: email, template: a }
""")
    assert runner.invoke(app, ["import", "invoices", str(tmp_path / "inv.csv"), "--db", db]).exit_code == 0
    result = runner.invoke(app, ["run", str(tmp_path / "policy.yaml"), "--db", db, "--now", "2026-03-02T11:00:00",
                                 "-q"])
    assert result.exit_code == 0, result.output
    with s.connect(db).connect() as conn:
        statuses = sorted(conn.execute(s.contacts.select().with_only_columns(s.contacts.c.status)).scalars())
    assert statuses == ["failed", "sent"]
    email = report(s.connect(db), dt.date(2026, 3, 2))["contacts"]["email"]
    assert (email["sent"], email["failed"], email["failure_rate_pct"]) == (1, 0, "0.0")


# -- the table view: money as simulate shows it, no cost where none is known ------------------------------

def _table(db: str, *args: str) -> str:
    result = runner.invoke(app, ["report", "--db", db, "--date", "2026-03-31", *args], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


def _cells(output: str, first: str) -> list[str]:
    """The cells of the table row whose first cell is `first`."""
    rows = [[cell.strip() for cell in line.strip()[1:-1].split("│")] for line in output.splitlines()
            if line.startswith("│")]
    return next(row for row in rows if row[0] == first)


def test_table_view_shows_money_with_two_decimals_and_thousands_separators(book, db_url):
    """It showed `850`, `1800`, `17250000 | 38150000.50`: as stored, without separators, mixed decimals."""
    out = _table(db_url)
    assert out.startswith("Report as of 2026-03-31: receivables 850.00, DSO 33.3 days")
    assert _cells(out, "receivables")[:2] == ["receivables", "850.00"]
    assert "(opening 1,800.00 + invoiced 200.00 - closing 850.00) / (1,800.00 + 200.00 - closing current 400.00)" in out
    assert "collected 1,000.00 / past due at the start 1,300.00" in out
    assert _cells(out, "400.00") == ["400.00", "150.00", "300.00", "0.00", "0.00"]  # the aging
    big = {"current": "17250000", "1-30": "38150000.50", "31-60": "148000000.00", "61-90": "0", "90+": "0.005"}
    sections = views.report_sections({**report(book, DAY), "aging": big})
    assert next(rows for title, _, rows in sections if title.startswith("Aging")) == [
        ["17,250,000.00", "38,150,000.50", "148,000,000.00", "0.00", "0.00"]]
    # JSON and CSV keep the plain numbers of the store, for programs
    assert json.loads(_table(db_url, "--format", "json"))["aging"]["current"] == "400"
    assert "aging,current,400" in _table(db_url, "--format", "csv").splitlines()


def test_table_view_shows_costs_only_when_some_contact_has_one(book, db_url):
    """Without costs it showed cost `0` and `0.0000` per contact, a cost that reads as measured; simulate
    shows none without --channels. With costs: money with two decimals (the exact cost when it has more)."""
    for n, channel in enumerate(("email", "email", "sms")):
        add_contact(book, n, channel, "sent")
    out = _table(db_url)
    heads = next(line for line in out.splitlines() if "┃ channel" in line)
    assert "cost" not in heads and "per contact" not in heads and "0.0000" not in out
    assert _cells(out, "email") == ["email", "2", "0", "0", "0", "n/a", "0.0%"]
    add_contact(book, 3, "sms", "sent", cost="1234.5")
    add_contact(book, 4, "sms", "sent", cost="0.045")
    out = _table(db_url)
    assert "cost" in next(line for line in out.splitlines() if "┃ channel" in line)
    assert _cells(out, "sms")[-2:] == ["1,234.545", "411.5150"]  # 3 sent, one without a cost
    assert _cells(out, "email")[-2:] == ["n/a", "n/a"]  # no cost known for email: unknown, not 0
    html = _table(db_url, "--format", "html")
    assert "1,234.545" in html and "<th>cost</th>" in html


def test_an_empty_section_is_one_line_not_a_bare_header(tmp_path):
    db = f"sqlite:///{tmp_path / 'c.db'}"
    s.connect(db).dispose()
    result = runner.invoke(app, ["report", "--db", db, "--date", "2026-03-31"])
    assert result.exit_code == 0, result.output
    assert "Deferrals by reason: none" in result.output and "Agent tasks by queue: none" in result.output
    assert "DSO n/a\n" in result.output  # not "DSO n/a days"
    page = runner.invoke(app, ["report", "--db", db, "--date", "2026-03-31", "--format", "html"]).output
    assert "<p>Deferrals by reason: none</p>" in page and "<th></th><th>count</th>" not in page


def test_rates_round_half_up_as_a_reader_does():
    from decimal import Decimal

    from collect.engine.kpis import failure_rate_pct, ratio

    assert ratio(100 * 100, 1600, "0.1") == Decimal("6.3")  # 6.25: the banker's rounding gave 6.2
    assert failure_rate_pct(15, 1) == Decimal("6.3")


def test_a_task_whose_invoices_are_all_paid_or_written_off_leaves_the_queue(book):
    """F is paid by its payments, W written off, A still owed: the tasks about F, and about W, have
    nothing left to collect; the one about A and F still has A."""
    from collect.engine.report import tasks

    with book.begin() as conn:
        for n, ids in enumerate(["A", "F", "W", "A;F"]):
            conn.execute(s.agent_tasks.insert().values(contact_key=f"t{n}", queue="q", customer_id="C1",
                                                       invoice_ids=ids, created_at=dt.datetime(2026, 3, 20, tzinfo=UTC)))
    assert sorted(t["invoice_ids"] for t in tasks(book)) == ["A", "A;F"]


def test_a_task_says_how_its_customer_may_be_reached_as_the_customer_is_now(book):
    """An escalation opens a task even for a customer nobody may contact (a legal hand-off may be due):
    the agent working it was not told, and would have called."""
    from collect.engine.report import tasks

    with book.begin() as conn:
        conn.execute(s.agent_tasks.insert().values(contact_key="t", queue="q", customer_id="C1", invoice_ids="A",
                                                   created_at=dt.datetime(2026, 3, 20, tzinfo=UTC)))
    assert tasks(book)[0]["restrictions"] == []
    with book.begin() as conn:  # since the task was opened: marked do-not-contact, an opt-out, consents kept
        conn.execute(s.customers.update().where(s.customers.c.id == "C1").values(
            do_not_contact=True, optouts=["sms"], consents=["email"], legal_status="insolvent"))
    assert tasks(book)[0]["restrictions"] == ["do not contact", "opted out of sms", "no consent for voice, whatsapp",
                                             "legal status insolvent"]


def test_a_task_about_an_invoice_moved_to_another_customer_says_whose_it_is_now_and_their_restrictions(book):
    """A re-import gave invoice A to C2, marked do-not-contact: the task still named C1 with no
    restriction, and its agent would have chased C1 for a debt that is C2's, whom no one may contact."""
    from collect.engine.report import tasks

    with book.begin() as conn:
        conn.execute(s.agent_tasks.insert().values(contact_key="t", queue="q", customer_id="C1", invoice_ids="A;B",
                                                   created_at=dt.datetime(2026, 3, 20, tzinfo=UTC)))
        conn.execute(s.invoices.update().where(s.invoices.c.id == "A").values(customer_id="C2"))
        conn.execute(s.customers.update().where(s.customers.c.id == "C2").values(do_not_contact=True))
    (task,) = tasks(book)
    assert (task["customer_id"], task["restrictions"]) == ("C1", ["A is now C2's", "C2: do not contact"])

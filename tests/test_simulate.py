"""Simulation invariants (hypothesis), the real IBM sample with historic payments, and the command."""

import csv
import datetime as dt
import io
import json
import textwrap
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from coretools import customer, invoice, run, runtime
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from collect.cli import app
from collect.engine.compiler import compile_policy
from collect.engine.portfolio import load_map
from collect.engine.runtime import NOT_CONTACTS
from collect.engine.simrun import contacts_text, load_portfolio, run_simulation

ROOT = Path(__file__).resolve().parent.parent
REAL = ROOT.parent / "shared" / "data" / "real" / "WA_Fn-UseC_-Accounts-Receivable.csv"
runner = CliRunner()

POLICY = """
calendar: {{ country: {country}, holidays_by: {holidays_by} }}
caps:
  - {{ channel: any, max: {any_max}, per: 7d }}
  - {{ channel: sms, max: 1, per: 1d }}
on_cap: {on_cap}
catch_up: {catch_up}
group_by: {group_by}
stages:
  pre:
    when: invoice.days_past_due <= 0
    steps:
      - {{ id: p5, at: due-5d, send: email, template: m }}
      - {{ id: p1, at: due-1d 10:00, send: [whatsapp, sms, email], template: m }}
  early:
    when: invoice.days_past_due between 1 and 30
    steps:
      - {{ id: e1, at: due+1d, send: [sms, email], template: m }}
      - {{ id: e2, at: due+2d 18:30, send: [sms, email], template: m }}
      - {{ id: e3, at: due+3d, send: email, template: m }}
      - {{ id: e9, at: due+9d, escalate: {{ queue: agents }} }}
  late:
    when: invoice.days_past_due > 30
    steps:
      - {{ id: l31, at: due+31d, send: [email, sms], template: m }}
"""

ZONES = ["America/Lima", "America/New_York", "Europe/Madrid", "America/Santiago", "Asia/Kolkata"]


@st.composite
def scenario(draw):
    options = dict(country=draw(st.sampled_from(["PE", "US", "ES"])), any_max=draw(st.integers(1, 4)),
                   holidays_by=draw(st.sampled_from(["policy", "customer"])),
                   on_cap=draw(st.sampled_from(["defer", "skip"])), catch_up=draw(st.sampled_from(["latest", "all", "none"])),
                   group_by=draw(st.sampled_from(["customer", "invoice"])))
    people = []
    for i in range(draw(st.integers(1, 4))):
        state = customer(f"c{i}", timezone=draw(st.sampled_from(ZONES)), do_not_contact=draw(st.booleans()) and i == 0,
                         phone=draw(st.sampled_from(["+51987654321", None, "123"])),
                         country=draw(st.sampled_from(["PE", "US", "ES", "IN", None])))
        for j in range(draw(st.integers(1, 3))):
            due = dt.date(2026, 3, 1) + dt.timedelta(days=draw(st.integers(0, 60)))
            invoice(state, f"c{i}-f{j}", due.isoformat(), str(draw(st.integers(1, 5000))))
        people.append(state)
    return options, people


def _windows(rt):
    return rt.calendar


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(scenario())
def test_simulation_invariants(tmp_path_factory, case):
    options, people = case
    rt = runtime(POLICY.format(**options), tmp_path_factory.mktemp("p"))
    ids = {p.customer.id: p for p in people}
    dnc = {p.customer.id for p in people if p.customer.do_not_contact}
    result = run(rt, people, "2026-02-20", 75)
    sent = [d for d in result.decisions if d.status == "sent" and d.channel not in NOT_CONTACTS]
    for d in sent:
        tz = ZoneInfo(ids[d.customer_id].customer.timezone)
        # never outside the channel's window in local time, never on a closed holiday: the policy's, or
        # with `holidays_by: customer` those of the customer's country
        calendar = rt.calendar_for(ids[d.customer_id].customer.country)
        assert calendar.is_open(d.channel, d.at, tz), (d.at, d.channel)
        assert not calendar.is_holiday(d.at.astimezone(tz).date())
        if options["holidays_by"] == "policy":
            assert calendar is rt.calendar
        # do-not-contact is absolute
        assert d.customer_id not in dnc
    # no cap is ever exceeded in any rolling window: of days on the customer's clock (naive local times
    # subtract on the wall clock), of elapsed time for shorter periods
    for cap in rt.caps:
        for cid in ids:
            tz = ZoneInfo(ids[cid].customer.timezone)
            times = sorted(d.at.astimezone(tz) for d in sent if d.customer_id == cid and cap.counts(d.channel))
            for i, start in enumerate(times):
                if cap.per_s % 86400:
                    inside = [t for t in times[i:] if t.timestamp() - start.timestamp() < cap.per_s]
                else:
                    inside = [t for t in times[i:] if t.replace(tzinfo=None) - start.replace(tzinfo=None)
                              < dt.timedelta(seconds=cap.per_s)]
                assert len(inside) <= cap.max, (cap.rule, cid, inside)
    # each step at most once per invoice
    settled = [key for d in result.decisions if d.status != "deferred" for key in d.keys]
    assert len(settled) == len(set(settled))
    # determinism: the same input gives the same contacts
    again = run(rt, _fresh(people), "2026-02-20", 75)
    assert contacts_text(again, "csv") == contacts_text(result, "csv")


def _fresh(people):
    out = []
    for p in people:
        state = customer(p.customer.id, timezone=p.customer.timezone, do_not_contact=p.customer.do_not_contact,
                         phone=p.customer.phone, country=p.customer.country)
        for inv in p.invoices.values():
            invoice(state, inv.id, inv.due_date.isoformat(), str(inv.amount))
        out.append(state)
    return out


# -- the real sample --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ibm(tmp_path_factory):
    if not REAL.exists():
        pytest.skip(f"real data not present at {REAL}")
    folder = tmp_path_factory.mktemp("ibm")
    (folder / "map.yaml").write_text("columns: { invoice_id: invoiceNumber, customer_id: customerID, amount: InvoiceAmount,\n"
                                     "  due_date: DueDate, issue_date: InvoiceDate, paid_at: SettledDate }\n"
                                     "date_format: '%m/%d/%Y'\n", encoding="utf-8")
    (folder / "policy.yaml").write_text((ROOT / "examples/us-consumer/policy.yaml").read_text(), encoding="utf-8")
    return folder


def test_historic_payments_stop_contacts_on_the_real_sample(ibm):
    plan = compile_policy(ibm / "policy.yaml").plan
    book = load_portfolio(plan, REAL, payments=REAL, colmap=ibm / "map.yaml")
    assert len(book.invoices) == 2466 and len(book.payments) == 2466
    settled = {p.invoice_id: p.paid_at for p in book.payments}
    result = run_simulation(plan, book, start=dt.date(2013, 1, 1), days=180, behavior="historic")
    sent = [d for d in result.decisions if d.status == "sent"]
    assert len(sent) > 100  # the sample has no emails or phones: only letters go out, the rest fails
    for d in sent:
        for invoice_id in d.invoice_ids:
            assert d.at.date() <= settled[invoice_id], (d, settled[invoice_id])


def test_without_payments_the_cadence_runs_on(ibm):
    plan = compile_policy(ibm / "policy.yaml").plan
    book = load_portfolio(plan, REAL, colmap=ibm / "map.yaml")
    some = dict(list(book.invoices.items())[:300])
    book.invoices = some
    historic = run_simulation(plan, book, start=dt.date(2013, 1, 1), days=90, behavior="none")
    assert {d.step for d in historic.decisions if d.status in ("sent", "failed")} >= {"v-1", "e-5", "e-14"}


# -- the command ------------------------------------------------------------------------------------

EXAMPLE = ROOT / "examples" / "pe-b2b"


def test_simulate_writes_contacts_and_compares(tmp_path):
    out = tmp_path / "contacts.jsonl"
    result = runner.invoke(app, ["simulate", str(EXAMPLE / "policy.yaml"), "--portfolio", str(EXAMPLE / "portfolio.csv"),
                                 "--start", "2026-11-15", "--days", "30", "--out", str(out),
                                 "--compare", str(EXAMPLE / "policy.collect")])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["status"] for r in rows} >= {"sent", "deferred", "skipped"}
    assert set(rows[0]) == {"at", "customer_id", "invoice_ids", "stage", "step", "channel", "template", "status",
                            "reason", "plan_hash"}
    assert "new - old" in result.output and "+0" in result.output  # the same policy in two forms


def test_bad_rows_are_all_reported_and_nothing_is_written(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("invoice_id,customer_id,amount,due_date,timezone\nA,c1,-3,2026-01-01,America/Lima\n"
                   "B,c2,10,2026-13-01,Mars/Base\nA,c3,5,2026-01-01,\n", encoding="utf-8")
    out = tmp_path / "out.csv"
    result = runner.invoke(app, ["simulate", str(EXAMPLE / "policy.yaml"), "--portfolio", str(bad), "--out", str(out),
                                 "--start", "2026-01-01"])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if "bad.csv:" in line]
    assert lines == [f"{bad}:2: column amount: amount cannot be negative (-3)",
                     f"{bad}:3: column due_date: '2026-13-01' is not a date (expected YYYY-MM-DD)",
                     f"{bad}:3: column timezone: unknown time zone 'Mars/Base'",
                     f"{bad}:4: column invoice_id: duplicate invoice id 'A' (first seen on row 2)"]
    assert not out.exists()


def test_usage_errors_exit_2():
    base = ["simulate", str(EXAMPLE / "policy.yaml"), "--portfolio", str(EXAMPLE / "portfolio.csv")]
    assert runner.invoke(app, base + ["--out", "x.txt"]).exit_code == 2
    assert runner.invoke(app, base + ["--behavior", "sometimes"]).exit_code == 2
    assert runner.invoke(app, base + ["--start", "yesterday"]).exit_code == 2


def test_behavior_model_is_seeded_and_projects_kpis():
    plan = compile_policy(EXAMPLE / "policy.yaml").plan
    book = load_portfolio(plan, EXAMPLE / "portfolio.csv")
    runs = [run_simulation(plan, book, start=dt.date(2026, 11, 15), days=60, behavior=str(EXAMPLE / "behavior.yaml"),
                           seed=seed) for seed in (1, 1, 2)]
    texts = [contacts_text(r, "csv") for r in runs]
    assert texts[0] == texts[1] and texts[0] != texts[2]
    from collect.engine.simrun import summarize

    kpis = summarize(runs[0], kpis=True).kpis
    assert Decimal(0) < kpis["collected"] <= kpis["opening_balance"]
    # the invoices issued within the horizon are in the closing balance only (docs/simulate.md)
    issued = sum((i.balance for state in runs[0].states.values() for i in state.invoices.values()
                  if i.status not in ("paid", "written_off") and i.issue_date
                  and dt.date(2026, 11, 15) <= i.issue_date < dt.date(2027, 1, 14)),
                 Decimal(0))
    assert kpis["closing_balance"] == kpis["opening_balance"] - kpis["collected"] + issued



def test_kpis_without_a_denominator_are_none_and_shown_as_na(tmp_path):
    """Nothing open at the start (the only invoice is paid): the recovery rate and DSO are undefined, and
    the summary must not pass them off as 0."""
    (tmp_path / "p.csv").write_text("invoice_id,customer_id,amount,balance,due_date,status,timezone\n"
                                    "F1,C1,100,0,2026-11-20,paid,America/Lima\n", encoding="utf-8")
    plan = compile_policy(EXAMPLE / "policy.yaml").plan
    from collect.engine.simrun import summarize

    result = run_simulation(plan, load_portfolio(plan, tmp_path / "p.csv"), start=dt.date(2026, 11, 15), days=30,
                            behavior="historic")
    kpis = summarize(result, kpis=True).kpis
    assert kpis["recovery_rate_pct"] is None and kpis["dso_days"] is None
    out = runner.invoke(app, ["simulate", str(EXAMPLE / "policy.yaml"), "--portfolio", str(tmp_path / "p.csv"),
                              "--start", "2026-11-15", "--behavior", "historic"])
    assert out.exit_code == 0, out.output
    assert [line for line in out.output.splitlines() if "recovery_rate_pct" in line and "n/a" in line]

def test_erp_export_through_a_map(tmp_path):
    erp = tmp_path / "erp.csv"
    erp.write_text("Factura;RUC;Importe;Vencimiento\nF-1;20100047218;1.234,50;15/11/2026\n", encoding="utf-8")
    (tmp_path / "map.yaml").write_text("columns: { invoice_id: Factura, customer_id: RUC, amount: Importe, "
                                       "due_date: Vencimiento }\ndate_format: '%d/%m/%Y'\ndecimal: ','\nthousands: '.'\n")
    plan = compile_policy(EXAMPLE / "policy.yaml").plan
    book = load_portfolio(plan, erp, colmap=load_map(tmp_path / "map.yaml") and tmp_path / "map.yaml")
    (only,) = book.invoices.values()
    assert (only.amount, only.due_date, only.customer_id) == (Decimal("1234.50"), dt.date(2026, 11, 15), "20100047218")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet=st.sampled_from('ab ,;"\n\r\t:é'), max_size=6), min_size=1, max_size=10))
def test_the_fast_csv_line_is_what_csv_writes(fields):
    from io import StringIO

    from collect.engine.simrun import csv_line

    expected, fallback = StringIO(), StringIO()
    csv.writer(expected, lineterminator="\n").writerow(fields)
    line = csv_line(fields, csv.writer(fallback, lineterminator="\n").writerow)
    assert (line if line is not None else fallback.getvalue()) == expected.getvalue()


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_the_streamed_simulation_writes_what_the_core_decides(tmp_path, monkeypatch, fmt):
    """`collect simulate` runs customers in chunks over worker processes and joins their files: the
    file and the sums must be those of the whole simulation in memory, for any number of workers."""
    from collect.engine import simrun
    from collect.engine.simrun import stream_simulation, summarize

    monkeypatch.setattr(simrun, "CHUNK", 3)  # many chunks, so the join order matters
    plan = compile_policy(EXAMPLE / "policy.yaml").plan
    book = load_portfolio(plan, EXAMPLE / "portfolio.csv", promises=EXAMPLE / "promises.csv")
    behavior = str(EXAMPLE / "behavior.yaml")
    whole = run_simulation(plan, book, start=dt.date(2026, 11, 1), days=75, behavior=behavior, seed=4)
    expected = summarize(whole, kpis=True)
    assert whole.decisions
    for workers in (1, 2):
        out = tmp_path / f"contacts-{workers}.{fmt}"
        streamed = stream_simulation(plan, book, start=dt.date(2026, 11, 1), days=75, behavior=behavior, seed=4,
                                     out=out, workers=workers)
        assert out.read_text(encoding="utf-8") == contacts_text(whole, fmt)
        assert streamed.rows == len(whole.decisions)
        assert streamed.summary.status == expected.status and streamed.summary.kpis == expected.kpis


def test_compare_types_the_portfolio_by_each_policys_fields(tmp_path):
    """The baseline (--compare) reads the custom columns it declares, though the candidate declares none."""
    head = ("timezone: America/Lima\ncurrency: PEN\nwindows: { default: { mon-sun: \"08:00-19:00\" } }\n"
            "templates: { m: { email: { subject: s, body: b } } }\n")
    (tmp_path / "a.yaml").write_text("policy: a\n" + head + "stages: { early: { when: invoice.days_past_due >= 1, "
                                     "steps: [ { id: a-1, at: due+1d, send: email, template: m } ] } }\n")
    (tmp_path / "b.yaml").write_text("policy: b\n" + head + "fields: { customer.risk_score: float }\n"
                                     "stages: { early: { when: invoice.days_past_due >= 1, steps: [ { id: b-1, "
                                     "at: due+1d, for: customer.risk_score < 0.3, send: email, template: m } ] } }\n")
    (tmp_path / "p.csv").write_text("invoice_id,customer_id,amount,due_date,email,risk_score\n"
                                    "F1,C1,1000,2026-11-15,a@acme.pe,0.1\nF2,C2,1000,2026-11-15,b@beta.pe,0.9\n")
    result = runner.invoke(app, ["simulate", str(tmp_path / "a.yaml"), "--compare", str(tmp_path / "b.yaml"),
                                 "--portfolio", str(tmp_path / "p.csv"), "--start", "2026-11-15", "--days", "3"])
    assert result.exit_code == 0, result.output
    b_line = next(line for line in result.output.splitlines() if "b-1" in line)
    assert [cell.strip() for cell in b_line.strip("│ ").split("│")][1:4] == ["1", "0", "-1"]  # old b, new a


def test_the_behavior_model_reads_segments_on_the_customers_local_day(tmp_path):
    from collect.engine.behavior import BehaviorModel, BehaviorSpec

    rt = runtime("""
    segments:
      due_today: invoice.days_past_due == 0
    stages:
      s:
        when: invoice.days_past_due >= 0
        steps: [ { id: d0, at: due 08:00, send: email, template: m } ]
    """, tmp_path)
    model = BehaviorModel(BehaviorSpec(pay_probability=1.0, by_segment={"due_today": 0.0}, delay_days=(1, 1)), seed=0)
    c = customer(timezone="Asia/Tokyo", country="JP", phone=None)
    invoice(c, "F1", "2026-11-24")  # d0 at 08:00 in Tokyo is still the 23rd in UTC
    result = run(rt, [c], "2026-11-23", 3, behavior=model)
    assert [d.step for d in result.decisions if d.status == "sent"] == ["d0"]
    assert c.payments == []  # due today where the customer is: the segment's multiplier 0 applies


def test_a_customer_s_clock_starts_at_a_whole_second(tmp_path):
    """The virtual clock counts whole seconds from the epoch (ticks are aligned on them): a start with a
    fraction of a second is refused, not rounded silently; a whole second is decided as given."""
    from collect.engine.simulate import run_customer

    rt = runtime("""
    stages:
      s:
        when: invoice.days_past_due >= 0
        steps: [ { id: d0, at: due 08:00, send: email, template: m } ]
    """, tmp_path)
    c = customer()
    invoice(c, "F1", "2026-11-24")
    start = dt.datetime(2026, 11, 24, 5, 0, 0, 500, tzinfo=dt.timezone.utc)
    with pytest.raises(ValueError, match="whole second"):
        run_customer(rt, c, start, start + dt.timedelta(days=1), 3600)
    decisions = run_customer(rt, c, start.replace(microsecond=0), start + dt.timedelta(days=1), 3600)
    assert [(d.at.isoformat(), d.step, d.status) for d in decisions] == [("2026-11-24T08:00:00-05:00", "d0", "sent")]


def test_a_week_cap_counts_days_on_the_customer_s_clock_across_a_dst_change(tmp_path):
    """A week cap across the US spring-forward: step b, a week after step a at the same local time, is
    only 6 days 23 hours after it in elapsed time, but a cap of days counts days on the customer's
    clock, so b goes (`collect run` decides the same: one core, the customer's zone)."""
    policy = tmp_path / "p.yaml"
    policy.write_text(textwrap.dedent("""\
        policy: dst
        timezone: America/New_York
        currency: USD
        windows:
          default: { mon-sun: "08:00-20:00" }
        caps:
          - { channel: any, max: 1, per: 7d }
        on_cap: skip
        templates:
          t:
            email: { subject: s, body: b }
        stages:
          all:
            when: true
            steps:
              - { id: a, at: due 09:00, send: email, template: t }
              - { id: b, at: due+7d 09:00, send: email, template: t }
        """))
    (tmp_path / "p.csv").write_text("invoice_id,customer_id,amount,due_date,email\nI1,C1,100,2027-03-08,a@example.com\n")
    plan = compile_policy(policy).plan
    result = run_simulation(plan, load_portfolio(plan, tmp_path / "p.csv"), start=dt.date(2027, 3, 7), days=10)
    assert [(d.step, d.status) for d in result.decisions] == [("a", "sent"), ("b", "sent")]


def test_csv_contacts_never_start_a_cell_with_a_spreadsheet_formula(tmp_path):
    """Customer and invoice ids come from an ERP export; a cell starting with = + - @ is a formula to
    Excel, so the CSV writes it as text with a leading ' (JSON lines keep the value as it is)."""
    (tmp_path / "p.csv").write_text("invoice_id,customer_id,amount,due_date,email\n"
                                    "@SUM(1+1),=1+2*cmd|' /C calc'!A0,100,2026-11-20,a@example.com\n")
    plan = compile_policy(EXAMPLE / "policy.yaml").plan
    result = run_simulation(plan, load_portfolio(plan, tmp_path / "p.csv"), start=dt.date(2026, 11, 15), days=20)
    rows = list(csv.reader(io.StringIO(contacts_text(result, "csv"))))[1:]
    assert rows and {(r[1], r[2]) for r in rows} == {("'=1+2*cmd|' /C calc'!A0", "'@SUM(1+1)")}
    line = json.loads(contacts_text(result, "jsonl").splitlines()[0])
    assert (line["customer_id"], line["invoice_ids"]) == ("=1+2*cmd|' /C calc'!A0", "@SUM(1+1)")


TWO_STEPS = """
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
      - { id: s2, at: due+%dd 10:00, send: sms, template: a }
"""
PHONES = "a@example.com,+14155550101"


def _two_steps(tmp_path, portfolio: str, sms_day: int = 1, payments: str | None = None, behavior: str = "historic",
               days: int = 10):
    from collect.engine.simrun import summarize

    (tmp_path / "policy.yaml").write_text(TWO_STEPS % sms_day, encoding="utf-8")
    (tmp_path / "portfolio.csv").write_text(portfolio, encoding="utf-8")
    if payments is not None:
        (tmp_path / "payments.csv").write_text(payments, encoding="utf-8")
    plan = compile_policy(tmp_path / "policy.yaml").plan
    book = load_portfolio(plan, tmp_path / "portfolio.csv",
                          payments=tmp_path / "payments.csv" if payments is not None else None)
    result = run_simulation(plan, book, start=dt.date(2026, 3, 1), days=days, behavior=behavior)
    return result, summarize(result, kpis=True).kpis


def test_two_contacts_in_one_tick_never_pay_more_than_the_balance(tmp_path):
    """Both contacts (email and sms at 10:00 on 03-02) draw a payment for sure: the second one draws
    against what the first left, so the invoice of 100 is paid 100, not 200."""
    (tmp_path / "b.yaml").write_text("pay_probability: 1\ndelay_days: [1, 1]\n", encoding="utf-8")
    result, kpis = _two_steps(tmp_path, f"invoice_id,customer_id,amount,due_date,email,phone\n"
                                        f"I1,C1,100,2026-03-01,{PHONES}\n", behavior=str(tmp_path / "b.yaml"))
    assert [d.channel for d in result.decisions if d.status == "sent"] == ["email", "sms"]
    assert sum(p.amount for p in result.states["C1"].payments) == Decimal(100)
    assert (kpis["collected"], kpis["closing_balance"]) == (Decimal(100), 0)


@pytest.mark.parametrize("paid_at, opening, collected, closing", [
    ("2026-02-28T23:59", 50, 0, 50),   # before the horizon: out of the opening balance
    ("2026-03-01", 100, 50, 50),       # at the first day's midnight: in the horizon, not out of the opening
    ("2026-03-10T23:59", 100, 50, 50),  # the last minute of the last day
    ("2026-03-11", 100, 0, 100),       # the midnight that ends the horizon: after it
])
def test_payments_at_the_horizons_boundaries_are_counted_once(tmp_path, paid_at, opening, collected, closing):
    _, kpis = _two_steps(tmp_path, f"invoice_id,customer_id,amount,due_date,email,phone\n"
                                   f"I1,C1,100,2026-03-20,{PHONES}\n", payments=f"invoice_id,amount,paid_at\n"
                                                                                   f"I1,50,{paid_at}\n")
    assert (kpis["opening_balance"], kpis["collected"], kpis["closing_balance"]) == (opening, collected, closing)
    assert kpis["opening_balance"] - kpis["collected"] == kpis["closing_balance"]


def test_kpis_count_only_issued_invoices_and_no_payment_of_a_paid_one(tmp_path):
    """I2 is issued after the horizon: in no balance; I3 is issued during it: in the closing balance and
    the invoiced amount, not in the opening one; P is stored paid: its payment is not collected."""
    _, kpis = _two_steps(tmp_path, "invoice_id,customer_id,amount,balance,issue_date,due_date,status,email,phone\n"
                                   f"I1,C1,100,100,2026-02-01,2026-03-20,open,{PHONES}\n"
                                   f"I2,C2,300,300,2026-03-20,2026-04-20,open,{PHONES}\n"
                                   f"I3,C3,40,40,2026-03-05,2026-04-05,open,{PHONES}\n"
                                   f"I4,C4,10,10,2026-03-11,2026-04-11,open,{PHONES}\n"
                                   f"P,C5,70,0,2026-02-01,2026-02-20,paid,{PHONES}\n",
                         payments="invoice_id,amount,paid_at\nP,70,2026-03-03\n")
    assert (kpis["opening_balance"], kpis["closing_balance"], kpis["collected"]) == (100, 140, 0)
    # collect report's DSO: closing 140 / invoiced in the 90 days to the last day (I1, I3 and P: any status) x 90
    assert kpis["dso_days"] == Decimal("60.0")


def test_compare_shows_the_difference_of_the_kpis_and_the_exact_cost(tmp_path):
    for name, day in (("p1.yaml", 1), ("p2.yaml", 3)):
        (tmp_path / name).write_text(TWO_STEPS % day, encoding="utf-8")
    (tmp_path / "portfolio.csv").write_text(f"invoice_id,customer_id,amount,due_date,email,phone\n"
                                            f"I1,C1,100,2026-03-01,{PHONES}\n", encoding="utf-8")
    (tmp_path / "b.yaml").write_text("pay_probability: 0.5\ndelay_days: [1, 1]\n", encoding="utf-8")
    (tmp_path / "costs.yaml").write_text("costs: { email: 0.001, sms: 0.045 }\n", encoding="utf-8")
    result = runner.invoke(app, ["simulate", str(tmp_path / "p1.yaml"), "--compare", str(tmp_path / "p2.yaml"),
                                 "--portfolio", str(tmp_path / "portfolio.csv"), "--start", "2026-03-01",
                                 "--days", "10", "--behavior", str(tmp_path / "b.yaml"),
                                 "--channels", str(tmp_path / "costs.yaml")], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    kpis = result.output[result.output.index("Projected KPIs"):]
    assert "new - old" in kpis.splitlines()[2]
    assert [line for line in kpis.splitlines() if "cei_pct" in line and (" pp" in line or "n/a" in line)]
    cost = next(line for line in result.output.splitlines() if line.startswith("Message cost"))
    assert "0.046" in cost and "new - old" in cost


def test_the_summary_says_none_for_what_did_not_happen_and_the_cost_without_a_label(tmp_path):
    """An empty table read as a display fault; `collect report` says `none`. One policy's cost line
    read `Message cost: contacts 0.046`."""
    from clitools import cli_simulate

    portfolio = f"invoice_id,customer_id,amount,due_date,email,phone\nI1,C1,100,2026-03-01,{PHONES}\n"
    costs = {"costs.yaml": "costs: { email: 0.001, sms: 0.045 }\n"}
    quiet = cli_simulate(tmp_path, TWO_STEPS % 1, portfolio, "--start", "2026-02-01", "--days", "5")  # not due yet
    assert quiet.exit_code == 0, quiet.output
    lines = quiet.output.splitlines()
    for title in ("Sent per channel", "Sent per step", "Sent per week", "Outcomes", "Deferrals by reason",
                  "Skipped by reason", "Agent tasks by queue"):
        assert f"{title}: none" in lines
    busy = cli_simulate(tmp_path, TWO_STEPS % 1, portfolio, "--start", "2026-03-01", "--days", "10",
                        "--channels", "{tmp}/costs.yaml", files=costs)
    assert "Message cost: 0.046" in busy.output.splitlines() and "Sent per channel: none" not in busy.output


def test_the_message_cost_is_na_when_nothing_sent_had_a_price_and_names_what_it_leaves_out(tmp_path):
    """`costs: { letter: 1.5 }` with emails and SMS sent read `Message cost: 0.00` beside a table of n/a."""
    from clitools import cli_simulate

    portfolio = f"invoice_id,customer_id,amount,due_date,email,phone\nI1,C1,100,2026-03-01,{PHONES}\n"
    args = ("--start", "2026-03-01", "--days", "10", "--channels", "{tmp}/costs.yaml")
    unpriced = cli_simulate(tmp_path, TWO_STEPS % 1, portfolio, *args, files={"costs.yaml": "costs: { letter: 1.5 }\n"})
    assert "Message cost: n/a  (email, sms: no price, left out)" in unpriced.output.splitlines()
    partly = cli_simulate(tmp_path, TWO_STEPS % 1, portfolio, *args, files={"costs.yaml": "costs: { sms: 0.045 }\n"})
    assert "Message cost: 0.045  (email: no price, left out)" in partly.output.splitlines()


def test_kpi_differences_are_na_without_a_value():
    from collect.views import _cost, _kpi_difference

    assert _kpi_difference(None, Decimal("50.0"), "recovery_rate_pct") == "n/a"
    assert _kpi_difference(Decimal("25.0"), Decimal("50.0"), "recovery_rate_pct") == "+25.0 pp"
    assert _kpi_difference(Decimal(100), Decimal(40), "collected") == "-60.00"
    assert (_cost(Decimal("0.045")), _cost(Decimal("3")), _cost(Decimal("-0.001"), sign=True)) == ("0.045", "3.00",
                                                                                                  "-0.001")


CONSENT_POLICY = """
policy: co
timezone: America/Bogota
currency: COP
compliance: {profiles}
windows:
  default: {{ mon-fri: "08:00-18:00" }}
templates:
  r: {{ email: {{ subject: "s", body: "b" }} }}
stages:
  late:
    when: invoice.days_past_due >= 1
    steps:
      - {{ id: e1, at: due+1d 10:00, send: email, template: r }}
"""


@pytest.mark.parametrize("profiles, country, consent, warned", [
    ("[co-ley-2300]", "CO", "", True),           # no consent_* column: every contact skipped
    ("[co-ley-2300]", "CO", ",consent_email", False),
    ("auto", "PE", "", False),                    # the profile does not apply to a Peruvian customer
    ("auto", "CO", "", True),
])
def test_simulate_warns_when_a_profile_needs_consents_the_portfolio_does_not_have(tmp_path, profiles, country, consent,
                                                                                  warned):
    """Under co-ley-2300 an ERP export without consent columns had every contact skipped, seen only row by
    row in the contacts file."""
    policy = tmp_path / "p.yaml"
    policy.write_text(CONSENT_POLICY.format(profiles=profiles), encoding="utf-8")
    book = tmp_path / "book.csv"
    book.write_text(f"invoice_id,customer_id,amount,due_date,email,country{consent}\n"
                    f"F1,C1,100,2026-11-02,a@x.example,{country}{',true' if consent else ''}\n", encoding="utf-8")
    result = runner.invoke(app, ["simulate", str(policy), "--portfolio", str(book), "--start", "2026-11-01",
                                 "--days", "10"])
    assert result.exit_code == 0, result.output
    said = "co-ley-2300: rule authorised-channels needs each channel's recorded consent"
    assert (said in result.output) == warned, result.output

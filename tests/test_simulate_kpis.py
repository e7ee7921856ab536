"""`collect simulate` projects `collect report`'s KPIs over its horizon (SPEC 8): aging, CEI, promises,
failure rate and cost per contact, computed by hand on small portfolios, equal to what `collect report`
computes from a store holding the same data, the same for any number of workers, and side by side in
`--compare`."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

from typer.testing import CliRunner

from collect.cli import app
from collect.engine import store as s
from collect.engine.compiler import compile_policy
from collect.engine.portfolio import ColumnMap
from collect.engine.report import report
from collect.engine.simrun import load_portfolio, run_simulation, stream_simulation, summarize
from collect.engine.storeio import import_file

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "pe-b2b"
runner = CliRunner()

POLICY = """
policy: kpis
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
      - { id: s2, at: due+1d 10:00, send: %s, template: a }
"""

# The horizon is 2026-03-01 .. 2026-03-10 (10 days): the period of `collect report --date 2026-03-10
# --days 10`, which opens as of the end of 2026-02-28. Days past due on 03-10: A 0 (current), B 30 (1-30),
# C 31 (31-60), D 90 (61-90), E 91 (90+); F is paid within the horizon; G is issued within it; H is
# stored paid and W written off (both issued within it); X is issued after it.
INVOICES = """invoice_id,customer_id,amount,balance,issue_date,due_date,status,email
A,C1,1000,1000,2026-01-01,2026-03-10,open,a@example.com
B,C1,500,500,2026-01-01,2026-02-08,open,a@example.com
C,C2,300,300,2025-12-01,2026-02-07,open,c@example.com
D,C3,400,400,2025-11-01,2025-12-10,open,d@example.com
E,C3,250,250,2025-11-01,2025-12-09,open,d@example.com
F,C4,600,600,2025-11-01,2026-01-01,open,f@example.com
G,C5,200,200,2026-03-04,2026-04-03,open,g@example.com
H,C6,150,0,2026-03-06,2026-04-05,paid,h@example.com
W,C7,700,700,2026-03-02,2026-04-01,written_off,w@example.com
X,C8,90,90,2026-03-11,2026-04-11,open,x@example.com
"""
PAYMENTS = """invoice_id,amount,paid_at
A,200,2026-03-05T12:00
C,100,2026-02-20T12:00
D,150,2026-03-08T09:00
F,600,2026-03-03T12:00
"""
# P1 kept (A paid 200 on 03-05); P2 broken; P3 made, due after the horizon; P4 made before it, due in
# it, broken: C's payment came before the promise; P5 about all of C4's invoices, kept by F's payment;
# P6 made after the horizon: counted nowhere.
PROMISES = """invoice_id,customer_id,amount,promised_date,made_at
A,,200,2026-03-06,2026-03-02T10:00
B,,100,2026-03-09,2026-03-03T10:00
D,,150,2026-03-12,2026-03-07T10:00
C,,100,2026-03-02,2026-02-25T10:00
,C4,600,2026-03-04,2026-03-01T08:00
E,,250,2026-03-15,2026-03-12T10:00
"""


def _files(tmp_path: Path) -> dict[str, Path]:
    files = {"policy.yaml": POLICY % "sms", "invoices.csv": INVOICES, "payments.csv": PAYMENTS,
             "promises.csv": PROMISES}
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    return {name.split(".")[0]: tmp_path / name for name in files}


def _book(files, plan):
    return load_portfolio(plan, files["invoices"], payments=files["payments"], promises=files["promises"])


def _projected(tmp_path):
    files = _files(tmp_path)
    plan = compile_policy(files["policy"]).plan
    result = run_simulation(plan, _book(files, plan), start=dt.date(2026, 3, 1), days=10, behavior="historic")
    return summarize(result, kpis=True)


def test_aging_and_cei_by_hand(tmp_path):
    summary = _projected(tmp_path)
    # closing: A 1000 - 200, B 500, C 300 - 100 (before the horizon), D 400 - 150, E 250, G 200; F paid
    assert summary.aging_buckets() == {"current": Decimal(1000), "1-30": Decimal(500), "31-60": Decimal(200),
                                       "61-90": Decimal(250), "90+": Decimal(250)}
    kpis = summary.kpis
    assert (kpis["opening_balance"], kpis["closing_balance"], kpis["collected"]) == (2950, 2200, 950)
    # (opening 2950 + invoiced G 200 + H 150 - closing 2200) / (2950 + 350 - closing current 1000) x 100
    assert kpis["cei_pct"] == Decimal("47.8")


def test_promises_by_hand(tmp_path):
    kpis = _projected(tmp_path).kpis
    assert {k: kpis[f"promises_{k}"] for k in ("made", "due", "kept", "broken", "kept_rate_pct")} == {
        "made": 4, "due": 4, "kept": 2, "broken": 2, "kept_rate_pct": Decimal("50.0")}


def test_the_projection_is_what_collect_report_computes_from_the_same_data(tmp_path):
    """The simulation with the historic payments and `collect report` at the end of the horizon's last
    day over its days read the same invoices, payments and promises: they must agree."""
    summary = _projected(tmp_path)
    engine = s.connect(f"sqlite:///{tmp_path / 'collect.db'}")
    files = _files(tmp_path)
    for kind in ("invoices", "payments", "promises"):
        import_file(engine, kind, files[kind], fields={}, colmap=ColumnMap(), default_tz="UTC")
    data = report(engine, dt.date(2026, 3, 10), days=10, timezone="UTC")
    assert data["aging"] == {k: str(v) for k, v in summary.aging_buckets().items()}
    assert data["cei"]["cei_pct"] == str(summary.kpis["cei_pct"])
    assert (data["dso_days"], data["recovery"]["recovery_rate_pct"]) == (
        str(summary.kpis["dso_days"]), str(summary.kpis["recovery_rate_pct"]))
    # the report's recovery.collected is the simulation's `recovered`, not its `collected` (950 here)
    assert (data["recovery"]["past_due_at_start"], data["recovery"]["collected"]) == (
        str(summary.kpis["past_due_at_start"]), str(summary.kpis["recovered"]))
    assert summary.kpis["recovered"] != summary.kpis["collected"]
    assert data["receivables"] == str(summary.kpis["closing_balance"])
    projected = {k: summary.kpis[f"promises_{k}"] for k in ("made", "due", "kept", "broken", "kept_rate_pct")}
    assert data["promises"] == {**projected, "kept_rate_pct": str(projected["kept_rate_pct"])}


# -- failures and costs per channel -----------------------------------------------------------------

CONTACTS = """invoice_id,customer_id,amount,due_date,email,phone
I1,C1,100,2026-03-01,a@example.com,+14155550101
I2,C2,100,2026-03-01,b@example.com,
I3,C3,100,2026-03-01,,+14155550103
I4,C4,100,2026-03-01,d@example.com,
"""
COSTS = "costs: { email: 0.001, sms: 0.045 }\n"


def _channels(tmp_path, portfolio: str, second: str = "sms"):
    (tmp_path / "policy.yaml").write_text(POLICY % second, encoding="utf-8")
    (tmp_path / "p.csv").write_text(portfolio, encoding="utf-8")
    plan = compile_policy(tmp_path / "policy.yaml").plan
    result = run_simulation(plan, load_portfolio(plan, tmp_path / "p.csv"), start=dt.date(2026, 3, 1), days=10)
    return summarize(result, {"email": 0.001, "sms": 0.045})


def test_failure_rate_and_cost_per_contact_per_channel_by_hand(tmp_path):
    """s1 on email, s2 on sms: C3 has no email (s1 fails on email), C2 and C4 no phone (s2 fails on sms)."""
    per_channel, total = _channels(tmp_path, CONTACTS).channel_kpis()
    assert per_channel == {
        "email": {"sent": 3, "failed": 1, "failure_rate_pct": Decimal("25.0"), "cost": Decimal("0.003"),
                  "cost_per_contact": Decimal("0.0010")},
        "sms": {"sent": 2, "failed": 2, "failure_rate_pct": Decimal("50.0"), "cost": Decimal("0.090"),
                "cost_per_contact": Decimal("0.0450")}}
    # 0.093 / 5 sent
    assert total == {"sent": 5, "failed": 3, "failure_rate_pct": Decimal("37.5"), "cost": Decimal("0.093"),
                     "cost_per_contact": Decimal("0.0186")}


def test_the_all_row_costs_per_contact_of_the_priced_channels_only(tmp_path):
    """sms has no price: its 2 sends cost an unknown amount, not 0, so the cost per contact of all channels
    is the email cost over the email sends (0.003 / 3), not over the 5 sends."""
    (tmp_path / "policy.yaml").write_text(POLICY % "sms", encoding="utf-8")
    (tmp_path / "p.csv").write_text(CONTACTS, encoding="utf-8")
    plan = compile_policy(tmp_path / "policy.yaml").plan
    result = run_simulation(plan, load_portfolio(plan, tmp_path / "p.csv"), start=dt.date(2026, 3, 1), days=10)
    per_channel, total = summarize(result, {"email": 0.001}).channel_kpis()
    assert per_channel["sms"]["cost_per_contact"] is None
    assert (total["sent"], total["cost"], total["cost_per_contact"]) == (5, Decimal("0.003"), Decimal("0.0010"))


def test_a_channel_that_only_failed_has_no_cost_per_contact(tmp_path):
    per_channel, _ = _channels(tmp_path, "invoice_id,customer_id,amount,due_date,email,phone\n"
                                         "I2,C2,100,2026-03-01,b@example.com,\n").channel_kpis()
    assert per_channel["sms"]["failure_rate_pct"] == Decimal("100.0")
    assert per_channel["sms"]["cost_per_contact"] is None  # nothing sent: n/a, not 0


def test_without_costs_there_is_no_cost_rather_than_a_cost_of_0(tmp_path):
    (tmp_path / "policy.yaml").write_text(POLICY % "sms", encoding="utf-8")
    (tmp_path / "p.csv").write_text(CONTACTS, encoding="utf-8")
    plan = compile_policy(tmp_path / "policy.yaml").plan
    result = run_simulation(plan, load_portfolio(plan, tmp_path / "p.csv"), start=dt.date(2026, 3, 1), days=10)
    per_channel, total = summarize(result).channel_kpis()
    assert per_channel["email"]["cost"] is None and total["cost_per_contact"] is None
    assert per_channel["email"]["failure_rate_pct"] == Decimal("25.0")


# -- the streamed summary -------------------------------------------------------------------------------

def test_the_new_kpis_are_the_same_for_any_number_of_workers(monkeypatch):
    from collect.engine import simrun

    monkeypatch.setattr(simrun, "CHUNK", 3)  # many chunks merged in a different grouping per worker count
    plan = compile_policy(EXAMPLE / "policy.yaml").plan
    book = load_portfolio(plan, EXAMPLE / "portfolio.csv", promises=EXAMPLE / "promises.csv")
    options = dict(start=dt.date(2026, 11, 1), days=75, behavior=str(EXAMPLE / "behavior.yaml"), seed=4,
                   costs={"email": 0.001, "sms": 0.045, "whatsapp": 0.03, "voice": 0.2, "letter": 1.5})
    expected = summarize(run_simulation(plan, book, **{k: v for k, v in options.items() if k != "costs"}),
                         options["costs"], kpis=True)
    assert expected.kpis["promises_due"] > 0 and expected.kpis["cei_pct"] is not None
    assert sum(expected.aging_buckets().values()) == expected.kpis["closing_balance"] > 0
    assert expected.channel_kpis()[1]["cost_per_contact"] is not None
    for workers in (1, 2):
        summary = stream_simulation(plan, book, workers=workers, **options).summary
        assert summary == expected  # every sum, and the KPIs computed from them
        assert (summary.aging_buckets(), summary.channel_kpis()) == (expected.aging_buckets(),
                                                                      expected.channel_kpis())


# -- the command -----------------------------------------------------------------------------------

def _row(output: str, *labels: str) -> list[str]:
    """The cells of the table row whose first cells are `labels`."""
    for line in output.splitlines():
        cells = [c.strip() for c in line.strip()[1:-1].split("│")]  # inside the outer borders
        if cells[:len(labels)] == list(labels):
            return cells[len(labels):]
    raise AssertionError(f"no row {labels} in\n{output}")


def test_compare_shows_the_new_kpis_side_by_side(tmp_path):
    """The change: p2 (POLICY, new) falls back from sms to email, so its sms never fails: C2 and C4 get
    their s2 by email; p1 (--compare, old) does not. Old first, then new, and new - old: the effect of the
    change (it read p1 - p2 with POLICY first: "+50.0 pp" for a change that removes the failures)."""
    for name, second in (("p1.yaml", "sms"), ("p2.yaml", "[sms, email]")):
        (tmp_path / name).write_text(POLICY % second, encoding="utf-8")
    (tmp_path / "p.csv").write_text(CONTACTS, encoding="utf-8")
    (tmp_path / "costs.yaml").write_text(COSTS, encoding="utf-8")
    result = runner.invoke(app, ["simulate", str(tmp_path / "p2.yaml"), "--compare", str(tmp_path / "p1.yaml"),
                                 "--portfolio", str(tmp_path / "p.csv"), "--start", "2026-03-01", "--days", "10",
                                 "--behavior", "historic", "--channels", str(tmp_path / "costs.yaml")],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    out = result.output
    headings = [[c.strip() for c in line.strip()[1:-1].split("┃")] for line in out.splitlines() if "┃" in line]
    assert len(headings) == 8 and all(cells[-3:] == ["old: p1.yaml", "new: p2.yaml", "new - old"]
                                      for cells in headings)  # every table: counters, channels, KPIs, aging
    assert {line for line in out.splitlines() if line.endswith(": none")} == {  # nothing to count in either
        "Deferrals by reason: none", "Skipped by reason: none", "Agent tasks by queue: none"}
    assert _row(out, "sms", "failure rate") == ["50.0%", "0.0%", "-50.0 pp"]
    assert _row(out, "email", "failed") == ["1", "1", "+0"]
    # why they failed, as the contacts file says it: p1's two sms without a phone, which p2 sends by email
    assert _row(out, "sms: no address") == ["2", "0", "-2"]
    assert _row(out, "email: no address") == ["1", "1", "+0"]
    # p2: 5 emails and 2 sms, 0.095 / 7
    assert _row(out, "all", "cost per contact") == ["0.0186", "0.0136", "-0.0050"]
    assert _row(out, "all", "delivery rate") == ["not modelled", "not modelled", ""]
    # nothing paid: the four invoices, 9 days past due on 03-10, are still open, and none was collected
    assert _row(out, "1-30") == ["400.00", "400.00", "+0.00"]
    assert _row(out, "cei_pct") == ["0.0%", "0.0%", "+0.0 pp"]
    assert _row(out, "promises_kept_rate_pct") == ["n/a", "n/a", "n/a"]  # no promise was due


def test_the_summary_shows_the_projection_of_one_policy(tmp_path):
    files = _files(tmp_path)
    result = runner.invoke(app, ["simulate", str(files["policy"]), "--portfolio", str(files["invoices"]),
                                 "--payments", str(files["payments"]), "--promises", str(files["promises"]),
                                 "--start", "2026-03-01", "--days", "10", "--behavior", "historic"],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    out = result.output
    assert _row(out, "cei_pct") == ["47.8%"]
    assert _row(out, "promises_broken") == ["2"] and _row(out, "promises_kept_rate_pct") == ["50.0%"]
    assert [_row(out, b) for b in ("current", "1-30", "31-60", "61-90", "90+")] == [
        ["1,000.00"], ["500.00"], ["200.00"], ["250.00"], ["250.00"]]
    assert "cost per contact" not in out  # no --channels: no costs, rather than a cost of 0


# -- agreement with `collect report` in the corners (each was a disagreement found by a review) -------

def _both(tmp_path: Path, invoices: str, **csv: str):
    """(simulate's summary with the historic behavior, collect report's dict) over the same files, the
    horizon 2026-03-01 .. 2026-03-10 and the report of 03-10 over 10 days."""
    policy = (POLICY % "sms").replace("      - { id: s2, at: due+1d 10:00, send: sms, template: a }\n", "")
    files = {"policy": policy, "invoices": invoices, **csv}
    for name, text in files.items():
        (tmp_path / f"{name}.{'yaml' if name == 'policy' else 'csv'}").write_text(text, encoding="utf-8")
    plan = compile_policy(tmp_path / "policy.yaml").plan
    kinds = {kind: tmp_path / f"{kind}.csv" for kind in csv}
    result = run_simulation(plan, load_portfolio(plan, tmp_path / "invoices.csv", **kinds), start=dt.date(2026, 3, 1),
                            days=10, behavior="historic")
    engine = s.connect(f"sqlite:///{tmp_path / 'collect.db'}")
    for kind in ("invoices", *kinds):
        import_file(engine, kind, tmp_path / f"{kind}.csv", fields={}, colmap=ColumnMap(), default_tz="UTC")
    return summarize(result, kpis=True), report(engine, dt.date(2026, 3, 10), days=10, timezone="UTC")


def test_balances_count_the_customers_days_as_the_report_does(tmp_path):
    # Lima is UTC-5: paid at 21:00 on the last day (02:00 UTC the next day) is paid within the horizon
    summary, data = _both(tmp_path, "invoice_id,customer_id,amount,issue_date,due_date,email,timezone\n"
                                    "A,C1,100,2026-01-01,2026-02-20,a@example.com,America/Lima\n",
                          payments="invoice_id,amount,paid_at\nA,100,2026-03-10T21:00\n")
    assert summary.kpis["closing_balance"] == 0 and summary.kpis["collected"] == 100
    assert data["aging"] == {k: str(v) for k, v in summary.aging_buckets().items()}
    assert data["cei"]["cei_pct"] == str(summary.kpis["cei_pct"]) == "100.0"


def test_a_remainder_of_half_a_cent_is_paid_in_the_opening_balance_too(tmp_path):
    summary, data = _both(tmp_path, "invoice_id,customer_id,amount,issue_date,due_date,email\n"
                                    "A,C1,100.004,2026-01-01,2026-02-20,a@example.com\n",
                          payments="invoice_id,amount,paid_at\nA,100,2026-02-25T12:00\n")
    assert summary.kpis["opening_balance"] == 0
    assert summary.kpis["cei_pct"] is None and data["cei"]["cei_pct"] is None


def test_one_promise_written_two_ways_counts_once_as_in_the_store(tmp_path):
    invoices = "invoice_id,customer_id,amount,issue_date,due_date,email\nA,C1,100,2026-01-01,2026-02-20,a@example.com\n"
    for case, rows in enumerate(("A,,100,2026-03-06,2026-03-02T10:00\nA,C1,100,2026-03-06,2026-03-02T10:00\n",
                                 "A,,100,2026-03-09,\nA,,100,2026-03-09,2026-03-02\n")):  # owner; default made_at
        (tmp_path / str(case)).mkdir()
        summary, data = _both(tmp_path / str(case), invoices, promises="invoice_id,customer_id,amount,promised_date,made_at\n" + rows)
        counted = {k: summary.kpis[f"promises_{k}"] for k in ("made", "due", "kept", "broken")}
        assert data["promises"]["made"] == counted["made"] == 1
        assert counted == {k: data["promises"][k] for k in counted}


def test_a_ratio_of_a_huge_sum_to_a_tiny_one_is_a_number_not_a_crash():
    """Decimal's quantize fails past 28 digits: 15-digit balances over millions of invoices against a
    few cents invoiced must still give the KPI."""
    from collect.engine.kpis import ratio

    assert ratio(Decimal("999999999999999.99") * 10**7, Decimal("0.000001"), "0.1") == Decimal(
        "9999999999999999900000000000.0")

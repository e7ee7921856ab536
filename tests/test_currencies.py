"""Money KPIs over invoices in several currencies: added as they are, and said so (simulate and report)."""

from __future__ import annotations

import json

from clitools import cli_project, cli_simulate

POLICY = """
policy: t
timezone: UTC
currency: PEN
windows:
  default: { mon-sun: "08:00-20:00" }
  holidays: open
templates:
  a: { email: { subject: "a", body: "b" } }
stages:
  s:
    when: invoice.days_past_due >= 1
    steps:
      - { id: d1, at: due+1d, send: email, template: a }
"""
TWO = ("invoice_id,customer_id,amount,due_date,issue_date,email,currency\n"
       "A,C1,1000,2026-03-02,2026-02-01,a@example.com,PEN\n"
       "B,C2,300,2026-03-02,2026-02-01,b@example.com,USD\n")
ONE = TWO.replace("USD", "PEN")


def simulate(tmp_path, portfolio: str):
    return cli_simulate(tmp_path, POLICY, portfolio, "--payments", "{tmp}/pay.csv", "--behavior", "historic",
                        "--start", "2026-03-01", "--days", "10",
                        files={"pay.csv": "invoice_id,amount,paid_at\nA,100,2026-03-05\n"})


def test_simulate_warns_that_the_kpis_mix_currencies(tmp_path):
    result = simulate(tmp_path, TWO)
    assert result.exit_code == 0, result.output
    assert "warning: the invoices are in 2 currencies (PEN, USD)" in " ".join(result.output.split())


def test_simulate_in_one_currency_has_no_warning(tmp_path):
    result = simulate(tmp_path, ONE)
    assert result.exit_code == 0, result.output
    assert "currencies" not in result.output


def test_report_lists_the_currencies_and_warns(tmp_path, monkeypatch):
    collect = cli_project(tmp_path, monkeypatch, POLICY, TWO)
    data = json.loads(collect("report", "--date", "2026-03-31", "--format", "json").output)
    assert data["currencies"] == ["PEN", "USD"]
    table = collect("report", "--date", "2026-03-31")
    assert table.exit_code == 0, table.output
    assert "warning: the invoices are in 2 currencies (PEN, USD)" in " ".join(table.output.split())
    assert table.output.index("2 currencies") < table.output.index("KPIs, period")  # read before the figures
    html = collect("report", "--date", "2026-03-31", "--format", "html").output
    assert "2 currencies (PEN, USD)" in html
    assert "kpi,currencies,PEN;USD" in collect("report", "--date", "2026-03-31", "--format", "csv").output.splitlines()


def test_report_in_one_currency_has_no_warning(tmp_path, monkeypatch):
    collect = cli_project(tmp_path, monkeypatch, POLICY, ONE)
    assert json.loads(collect("report", "--date", "2026-03-31", "--format", "json").output)["currencies"] == ["PEN"]
    assert "warning" not in collect("report", "--date", "2026-03-31").output

"""The simulation's horizon and its summary: the customer's days, the last day shown, unpriced channels."""

from __future__ import annotations

import csv
import datetime as dt
import textwrap
from decimal import Decimal

from clitools import cli_simulate

from collect.engine.compiler import compile_policy
from collect.engine.simrun import load_portfolio, stream_simulation

POLICY = textwrap.dedent("""
    policy: t
    timezone: UTC
    currency: USD
    windows:
      default: { mon-sun: "08:00-20:00" }
      holidays: open
    templates:
      a: { email: { subject: "a", body: "b" }, sms: "x" }
    stages:
      s:
        when: invoice.days_past_due >= -100
        steps:
          - { id: d0, at: due 17:00, send: email, template: a }
          - { id: d1, at: due+1d, send: sms, template: a }
    """)


def simulate(tmp_path, portfolio: str, *args, files: dict | None = None):
    return cli_simulate(tmp_path, POLICY, portfolio, "--start", "2026-03-01", "--days", "10", "--out", "{tmp}/c.csv",
                        *args, files=files)


def sent(tmp_path) -> list[tuple[str, str]]:
    with open(tmp_path / "c.csv", newline="") as handle:
        return [(r["step"], r["at"]) for r in csv.DictReader(handle) if r["status"] == "sent"]


def test_the_last_day_is_the_customers_whole_day_west_of_the_policy(tmp_path):
    """Policy in UTC, customer in Los Angeles: 17:00 on the last day (03-10) is 01:00 UTC on 03-11, after
    the policy's midnight; the customer's day is simulated to its end, and the payment the contact
    causes counts in `collected`, which the KPIs count up to the customer's midnight."""
    portfolio = ("invoice_id,customer_id,amount,due_date,issue_date,email,timezone\n"
                 "A,LA,1000,2026-03-10,2026-02-01,a@example.com,America/Los_Angeles\n")
    result = simulate(tmp_path, portfolio, "--behavior", "{tmp}/b.yaml",
                      files={"b.yaml": "pay_probability: 1\ndelay_days: [0, 0]\n"})
    assert result.exit_code == 0, result.output
    assert sent(tmp_path) == [("d0", "2026-03-10T17:00:00-07:00")]
    collected = next(line for line in result.output.splitlines() if "collected" in line)
    assert "1,000.00" in collected, collected


def test_nothing_after_the_customers_last_day_east_of_the_policy(tmp_path):
    """A Tokyo customer's 03-11 starts before the policy's (UTC) 03-10 ends: it is after the horizon."""
    portfolio = ("invoice_id,customer_id,amount,due_date,issue_date,email,phone,timezone\n"
                 "A,TK,1000,2026-03-10,2026-02-01,a@example.com,+81312345678,Asia/Tokyo\n")
    result = simulate(tmp_path, portfolio)
    assert result.exit_code == 0, result.output
    assert sent(tmp_path) == [("d0", "2026-03-10T17:00:00+09:00")]  # d1 (03-11 08:00 Tokyo) is outside


def test_the_summary_shows_the_horizons_last_day(tmp_path):
    portfolio = "invoice_id,customer_id,amount,due_date,email\nA,C1,1000,2026-03-02,a@example.com\n"
    result = simulate(tmp_path, portfolio)
    assert result.exit_code == 0, result.output
    assert "2026-03-01 .. 2026-03-10 (10 days)" in result.output


def test_a_channel_without_a_price_has_no_cost(tmp_path):
    """As in `collect report`: cost unknown (n/a), not 0, for a channel that `costs:` does not price."""
    portfolio = ("invoice_id,customer_id,amount,due_date,email,phone\n"
                 "A,C1,1000,2026-03-02,a@example.com,+14155550101\n")
    (tmp_path / "policy.yaml").write_text(POLICY)
    (tmp_path / "p.csv").write_text(portfolio)
    plan = compile_policy(tmp_path / "policy.yaml").plan
    streamed = stream_simulation(plan, load_portfolio(plan, tmp_path / "p.csv"), start=dt.date(2026, 3, 1), days=10,
                                 costs={"sms": Decimal("0.045")})
    per_channel, total = streamed.summary.channel_kpis()
    assert per_channel["sms"]["cost"] == Decimal("0.045") and per_channel["sms"]["cost_per_contact"] == Decimal("0.045")
    assert per_channel["email"]["cost"] is None and per_channel["email"]["cost_per_contact"] is None
    assert total["cost"] == Decimal("0.045")
    result = simulate(tmp_path, portfolio, "--channels", "{tmp}/channels.yaml",
                      files={"channels.yaml": "channels:\n  email: { adapter: file }\n  sms: { adapter: file }\n"
                                              "costs: { sms: 0.045 }\n"})
    assert result.exit_code == 0, result.output
    email = [line for line in result.output.splitlines() if line.startswith("│ email") and "cost" in line]
    assert len(email) == 2 and all(line.rstrip(" │").endswith("n/a") for line in email), result.output

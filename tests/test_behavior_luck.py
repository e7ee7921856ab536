"""A behavior model's draws depend on the seed, the customer, the step and the invoice only
(docs/simulate.md): not on which other invoices share a message, nor on the rows of other customers'
promises or their order. Otherwise a `--compare` of `group_by: invoice` against `customer`, or a
promises file with one more row, mixes luck into `new - old`."""

import datetime as dt

from collect.engine.compiler import compile_policy
from collect.engine.simrun import load_portfolio, run_simulation

POLICY = """\
policy: luck
timezone: America/New_York
currency: USD
windows: { default: { mon-sun: "08:00-20:00" }, holidays: open }
templates: { t: { email: { subject: "s", body: "b" } } }
stages:
  overdue:
    when: invoice.days_past_due >= 1
    steps:
      - { id: od-1, at: due+1d, send: email, template: t }
events:
  promise_made:
    - { id: pm-rem, at: promise-1d, send: email, template: t }
"""
CUSTOMERS = 60


def paid(tmp_path, rows: list[str], promises: list[str] | None = None) -> set[str]:
    (tmp_path / "policy.yaml").write_text(POLICY, encoding="utf-8")
    (tmp_path / "behavior.yaml").write_text("pay_probability: 0.5\ndelay_days: [1, 1]\n", encoding="utf-8")
    (tmp_path / "p.csv").write_text("invoice_id,customer_id,amount,due_date,email\n" + "".join(rows), encoding="utf-8")
    extra = {}
    if promises is not None:
        (tmp_path / "pr.csv").write_text("invoice_id,amount,promised_date,made_at\n" + "".join(promises),
                                         encoding="utf-8")
        extra["promises"] = tmp_path / "pr.csv"
    plan = compile_policy(tmp_path / "policy.yaml").plan
    result = run_simulation(plan, load_portfolio(plan, tmp_path / "p.csv", **extra), start=dt.date(2026, 11, 20),
                            days=8, behavior=tmp_path / "behavior.yaml", seed=7)
    return {(p.invoice_id, p.at.isoformat(), str(p.amount)) for s in result.states.values() for p in s.payments}


def invoices(prefix: str) -> list[str]:
    return [f"{prefix}{i},C{i:03},1000,2026-11-01,c{i}@x.example\n" for i in range(CUSTOMERS)]


def test_an_invoice_s_luck_does_not_depend_on_the_invoices_sharing_its_message(tmp_path):
    alone = paid(tmp_path, invoices("A"))
    grouped = {p for p in paid(tmp_path, invoices("A") + invoices("B")) if p[0].startswith("A")}
    assert 0 < len(alone) < CUSTOMERS and grouped == alone


def test_promise_rows_of_other_customers_or_their_order_change_no_one_s_luck(tmp_path):
    promises = [f"A{i},1000,2026-11-26,2026-11-21T10:00\n" for i in range(CUSTOMERS)]
    base = paid(tmp_path, invoices("A"), promises)
    assert paid(tmp_path, invoices("A"), promises[::-1]) == base
    more = paid(tmp_path, invoices("A"), ["A0,500,2026-11-27,2026-11-22T10:00\n"] + promises)
    assert {p for p in more if p[0] != "A0"} == {p for p in base if p[0] != "A0"}


def test_a_segment_multiplier_applies_as_the_segment_was_when_the_contact_went(tmp_path):
    """`if: not already_contacted` sends od-1, so the invoice was not in `already_contacted` when it
    went: its multiplier 0 must not apply (it did, counting the contact just made)."""
    policy = POLICY.replace("stages:", "segments:\n  already_contacted: contacts.count_7d >= 1\nstages:").replace(
        "send: email, template: t }", "if: not already_contacted, send: email, template: t }", 1)
    (tmp_path / "policy.yaml").write_text(policy, encoding="utf-8")
    (tmp_path / "b.yaml").write_text("pay_probability: 1\ndelay_days: [1, 1]\nby_segment: { already_contacted: 0 }\n",
                                     encoding="utf-8")
    (tmp_path / "p.csv").write_text("invoice_id,customer_id,amount,due_date,email\nA1,C1,1000,2026-11-01,a@x.example\n",
                                    encoding="utf-8")
    plan = compile_policy(tmp_path / "policy.yaml").plan
    result = run_simulation(plan, load_portfolio(plan, tmp_path / "p.csv"), start=dt.date(2026, 11, 20), days=5,
                            behavior=tmp_path / "b.yaml", seed=7)
    assert [d.step for d in result.decisions if d.status == "sent"] == ["od-1"]
    assert [p.amount for s in result.states.values() for p in s.payments] == [1000]

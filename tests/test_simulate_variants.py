"""`collect simulate` measures an experiment: its units, messages and money per variant. Recounted from the
contacts file and the assignment itself, adding up to the whole simulation's figures, the same for any
number of workers."""

from __future__ import annotations

import csv
import datetime as dt
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from collect.cli import app
from collect.engine.compiler import compile_policy
from collect.engine.runtime import Runtime
from collect.engine.simrun import load_portfolio, stream_simulation

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "pe-b2b"


def _simulate(tmp_path, unit: str, workers: int = 1):
    policy = tmp_path / "policy.yaml"
    policy.write_text((EXAMPLE / "policy.yaml").read_text(encoding="utf-8").replace("unit: customer", f"unit: {unit}"),
                      encoding="utf-8")
    plan = compile_policy(policy).plan
    book = load_portfolio(plan, EXAMPLE / "portfolio.csv")
    out = tmp_path / f"contacts-{unit}-{workers}.csv"
    result = stream_simulation(plan, book, start=dt.date(2026, 11, 10), days=45, behavior=str(EXAMPLE / "behavior.yaml"),
                               seed=3, out=out, workers=workers)
    return plan, book, result.summary, list(csv.DictReader(out.open(encoding="utf-8")))


@pytest.mark.parametrize("unit", ["customer", "invoice"])
def test_the_variants_are_recounted_from_the_contacts_and_add_up_to_the_whole(tmp_path, unit):
    plan, book, summary, rows = _simulate(tmp_path, unit)
    rt = Runtime(plan)

    def variant(invoice_id: str) -> str:
        return rt.variant("tono", invoice_id if unit == "invoice" else book.invoices[invoice_id].customer_id)
    units = Counter(variant(i) for i in book.invoices) if unit == "invoice" else \
        Counter(rt.variant("tono", c) for c in {inv.customer_id for inv in book.invoices.values()})
    messages = Counter(v for r in rows if r["status"] == "sent" and r["channel"] != "webhook"
                       for v in {variant(i) for i in r["invoice_ids"].split(";")})
    found = summary.variant_kpis(money=True)
    assert {v: k["units"] for (_, v), k in found.items()} == dict(units)
    assert {v: k["messages"] for (_, v), k in found.items() if k["messages"]} == dict(messages)
    assert found["tono", "holdout"]["messages"] == 0 < found["tono", "holdout"]["units"]  # held out: no message
    # the money of the variants is the whole simulation's, split
    assert sum(k["collected"] for k in found.values()) == summary.money["collected"] > 0
    for measure in ("recovered", "past_due_at_start", "opening_balance", "closing_balance"):
        assert sum(summary.variants[key] for key in summary.variants if key[2] == measure) == summary.money[measure]


def test_the_variants_are_the_same_with_two_workers(tmp_path, monkeypatch):
    monkeypatch.setattr("collect.engine.simrun.CHUNK", 3)  # several chunks, merged
    one, two = _simulate(tmp_path, "customer")[2], _simulate(tmp_path, "customer", workers=2)[2]
    assert one.variants == two.variants and one.variants


def test_the_summary_shows_the_variants_side_by_side_in_a_comparison(tmp_path):
    plain = tmp_path / "plain.yaml"
    text = (EXAMPLE / "policy.yaml").read_text(encoding="utf-8")
    plain.write_text(text.replace("cordial: 45, firme: 45, holdout: 10", "cordial: 50, firme: 50"), encoding="utf-8")
    result = CliRunner().invoke(app, ["simulate", str(EXAMPLE / "policy.yaml"), "--compare", str(plain), "--portfolio",
                                      str(EXAMPLE / "portfolio.csv"), "--start", "2026-11-10", "--days", "45",
                                      "--behavior", str(EXAMPLE / "behavior.yaml")], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    table = result.output[result.output.index("Experiments by variant"):]
    holdout = [line for line in table.splitlines() if "holdout" in line and "messages sent" in line]
    assert len(holdout) == 1 and "n/a" in holdout[0]  # only the new policy has a holdout
    assert "recovery rate" in table and "collected per unit" in table

"""Store speed (issue 4 targets: import of 1M invoices <= 60 s; a tick over 1M open invoices with 50k
contacts due <= 60 s on SQLite; a tick with nothing due < 2 s).

Run: python benchmarks/store_speed.py [N]   (default 1000000). A fresh SQLite file in a temp folder, the
examples/pe-b2b policy, every channel to the built-in file adapter (outbox/*.jsonl).

The portfolio is shaped so that the measured tick has exactly N/20 contacts due (50,000 for 1M): that
many invoices, one per customer, fall due on D, so their `pre-7` reminder is due at 08:00 on D-7; every
other invoice falls due 20 to 60 days later. The first tick, a day earlier, decides every customer once
(all are new) and is reported too; then the tick with nothing due, then the tick at 08:00 on D-7.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
POLICY = ROOT / "examples" / "pe-b2b" / "policy.yaml"
D = dt.date(2026, 12, 9)  # a Wednesday: D-7 is a working day in Lima
LIMA = dt.timezone(dt.timedelta(hours=-5))


def write_portfolio(path: Path, n: int) -> int:
    """n invoices, about 3 per customer; returns how many fall due on D (one per customer)."""
    rnd = random.Random(3)
    due_on_d = n // 20
    with path.open("w", newline="", encoding="utf-8") as handle:
        w = csv.writer(handle)
        w.writerow(["invoice_id", "customer_id", "amount", "due_date", "customer_name", "email", "timezone",
                    "risk_score", "tier", "sector"])
        for i in range(n):
            customer = i // 3
            first_of_customer = i % 3 == 0
            due = D if first_of_customer and customer < due_on_d else D + dt.timedelta(days=rnd.randint(20, 60))
            # pre-7 is for customers that are not low risk: give the due ones a middling score
            risk = 0.5 if customer < due_on_d else round(customer * 7919 % 1000 / 1000, 3)
            w.writerow([f"F{i:08d}", f"C{customer:07d}", rnd.randint(100, 19000), due.isoformat(),
                        f"Cliente {customer}", f"c{customer}@example.pe", "America/Lima", risk, "silver", "comercio"])
    return due_on_d


def timed(label: str, fn):
    started = time.perf_counter()
    result = fn()
    print(f"{label}: {time.perf_counter() - started:.1f} s", end="")
    return result


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    from collect.engine import store
    from collect.engine.channels import Channels
    from collect.engine.compiler import compile_policy
    from collect.engine.portfolio import ColumnMap
    from collect.engine.runner import Runner
    from collect.engine.storeio import import_file

    plan = compile_policy(POLICY).plan
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        csv_path = Path(tmp, "portfolio.csv")
        expected = write_portfolio(csv_path, n)
        engine = store.connect(f"sqlite:///{tmp}/collect.db")
        timed(f"import of {n:,} invoices", lambda: import_file(
            engine, "invoices", csv_path, fields=dict(plan["fields"]), colmap=ColumnMap(), default_tz="America/Lima",
            default_currency="PEN"))
        print()
        runner = Runner(engine, plan, Channels())
        first = dt.datetime.combine(D - dt.timedelta(days=8), dt.time(9), LIMA)
        summary = timed(f"first tick over {n:,} new invoices", lambda: runner.tick(first))
        print(f", {summary.customers:,} customers decided, {sum(summary.statuses.values()):,} decisions")
        summary = timed("tick with nothing due", lambda: runner.tick(first + dt.timedelta(hours=1)))
        print(f", {summary.customers} customers")
        due = dt.datetime.combine(D - dt.timedelta(days=7), dt.time(8), LIMA)
        summary = timed(f"tick over {n:,} open invoices with {expected:,} contacts due", lambda: runner.tick(due))
        print(f", {summary.customers:,} customers, {summary.statuses['sent']:,} sent, "
              f"{sum(summary.by_channel.values()):,} delivered")


if __name__ == "__main__":
    main()

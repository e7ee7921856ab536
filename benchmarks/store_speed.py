"""Store speed (issue 4 targets: import of 1M invoices <= 60 s; a tick over 1M open invoices with 50k
contacts due <= 60 s on SQLite; a tick with nothing due < 2 s).

Run: python benchmarks/store_speed.py [N]   (default 100000). Uses a fresh SQLite file in a temp folder.
The invoices' due dates are spread so that about 5% of the customers have a step due at the tick.
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


def write_portfolio(path: Path, n: int) -> None:
    rnd = random.Random(3)
    with path.open("w", newline="", encoding="utf-8") as handle:
        w = csv.writer(handle)
        w.writerow(["invoice_id", "customer_id", "amount", "due_date", "customer_name", "email", "timezone",
                    "risk_score", "tier", "sector"])
        for i in range(n):
            due = dt.date(2026, 11, 20) + dt.timedelta(days=rnd.randint(1, 20))
            w.writerow([f"F{i:08d}", f"C{i // 3:07d}", rnd.randint(100, 60000), due.isoformat(), f"Cliente {i // 3}",
                        f"c{i // 3}@example.pe", "America/Lima", round(((i // 3) * 7919 % 1000) / 1000, 3), "silver",
                        "comercio"])


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
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
        write_portfolio(csv_path, n)
        url = f"sqlite:///{tmp}/collect.db"
        engine = store.connect(url)
        started = time.perf_counter()
        import_file(engine, "invoices", csv_path, fields=dict(plan["fields"]), colmap=ColumnMap(),
                    default_tz="America/Lima", default_currency="PEN")
        print(f"import of {n:,} invoices: {time.perf_counter() - started:.1f} s")
        runner = Runner(engine, plan, Channels())
        # the first tick decides every customer once (all are new): it sets their next action times
        first = dt.datetime(2026, 11, 13, 14, tzinfo=dt.timezone.utc)
        started = time.perf_counter()
        summary = runner.tick(first)
        print(f"first tick over {n:,} new invoices: {time.perf_counter() - started:.1f} s, "
              f"{summary.customers:,} customers, {sum(summary.statuses.values()):,} decisions")
        started = time.perf_counter()
        summary = runner.tick(first + dt.timedelta(minutes=30))
        print(f"tick with nothing due: {time.perf_counter() - started:.2f} s ({summary.customers} customers)")
        started = time.perf_counter()
        summary = runner.tick(dt.datetime(2026, 11, 16, 13, tzinfo=dt.timezone.utc))
        print(f"tick with contacts due: {time.perf_counter() - started:.1f} s, {summary.customers:,} customers, "
              f"{summary.statuses['sent']:,} sent")


if __name__ == "__main__":
    main()

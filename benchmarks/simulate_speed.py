"""Simulation speed (issue 3 targets: 100k invoices over 90 days <= 5 s, 1M <= 30 s and 2 GB peak).

Run: python benchmarks/simulate_speed.py [N ...]   (default: 10000 100000 1000000)
Generates a portfolio of N invoices (about 3 per customer, due dates spread over 120 days, customers
in four time zones) and simulates the realistic multi-stage policy of examples/pe-b2b for 90 days with
a behavior model. Prints wall time, decisions, and peak memory (ru_maxrss of a child process per size).
"""

from __future__ import annotations

import datetime as dt
import json
import random
import resource
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
POLICY = ROOT / "examples" / "pe-b2b" / "policy.yaml"
BEHAVIOR = ROOT / "examples" / "pe-b2b" / "behavior.yaml"


def portfolio(n: int, seed: int = 1):
    from collect.engine.portfolio import Customer, Invoice, Portfolio

    rnd = random.Random(seed)
    book = Portfolio()
    zones = ["America/Lima", "America/Bogota", "America/Mexico_City", "America/Santiago"]
    for c in range(max(1, n // 3)):
        cid = f"C{c:07d}"
        book.customers[cid] = Customer(cid, f"Cliente {c}", f"c{c}@example.pe", f"+5198{c % 10**7:07d}",
                                       None, zones[c % 4], "PE", "es", c % 97 == 0, frozenset(),
                                       {"risk_score": rnd.random(), "tier": rnd.choice(["gold", "silver", "bronze"]),
                                        "sector": "comercio"})
    start = dt.date(2026, 10, 1)
    ids = list(book.customers)
    for i in range(n):
        amount = Decimal(rnd.randint(100, 60000))
        due = start + dt.timedelta(days=rnd.randint(0, 120))
        book.invoices[f"F{i:08d}"] = Invoice(f"F{i:08d}", ids[i % len(ids)], amount, amount, due, f"F{i:08d}", "PEN",
                                             due - dt.timedelta(days=30))
    return book


def run_one(n: int) -> dict:
    from collect.engine.compiler import compile_policy
    from collect.engine.simrun import run_simulation

    plan = compile_policy(POLICY).plan
    book = portfolio(n)
    started = time.perf_counter()
    result = run_simulation(plan, book, start=dt.date(2026, 11, 1), days=90, behavior=str(BEHAVIOR), seed=1)
    wall = time.perf_counter() - started
    sent = sum(1 for d in result.decisions if d.status == "sent")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"invoices": n, "seconds": round(wall, 2), "decisions": len(result.decisions), "sent": sent,
            "peak_mb": round(peak_mb)}


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--one":
        print(json.dumps(run_one(int(sys.argv[2]))))
        return
    sizes = [int(a) for a in sys.argv[1:]] or [10_000, 100_000, 1_000_000]
    for n in sizes:
        out = subprocess.run([sys.executable, __file__, "--one", str(n)], capture_output=True, text=True)
        if out.returncode:
            sys.exit(out.stderr)
        r = json.loads(out.stdout)
        print(f"{r['invoices']:>9,} invoices, 90 days: {r['seconds']:7.2f} s  "
              f"({r['seconds'] / r['invoices'] * 1e6:5.1f} us/invoice)  decisions {r['decisions']:,}  "
              f"sent {r['sent']:,}  peak {r['peak_mb']:,} MB")


if __name__ == "__main__":
    main()

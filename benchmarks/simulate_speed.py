"""Simulation speed (issue 3 targets: 100k invoices over 90 days <= 5 s, 1M <= 30 s and 2 GB peak).

Run: python benchmarks/simulate_speed.py [N ...] [--workers K]   (default sizes: 10000 100000 1000000)
     python benchmarks/simulate_speed.py --calls [N]               (function calls, default 3000 invoices)
     python benchmarks/simulate_speed.py --instructions [N]        (CPU instructions, default 600 invoices)

Generates a portfolio of N invoices (about 3 per customer, due dates spread over 120 days, customers
in four time zones) and runs what `collect simulate --out contacts.csv` runs — the realistic multi-stage
policy of examples/pe-b2b for 90 days with its behavior model, the contacts written to a file — in a
child process per size. Prints the wall time of the simulation (the portfolio is built in memory
first, so CSV parsing is not included), the rows written, and the peak memory of the whole process
tree, measured as the sum of the proportional set sizes (PSS: pages shared between the forked workers
and their parent are counted once) sampled in a thread. It also prints what formatting and writing that
many contact rows costs by itself, without deciding anything: the floor under any decision core.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

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


def _pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            return next(int(line.split()[1]) for line in handle if line.startswith("Pss:"))
    except (OSError, StopIteration):
        return 0


def _tree(pid: int) -> list[int]:
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return [pid]
    return [pid] + [p for c in children for p in _tree(int(c))]


class PeakMemory:
    """Peak PSS of this process and its children, sampled in a thread (Linux; 0 elsewhere).

    Reading smaps_rollup walks the page tables (about 20 ms for a 1.3 GB process), so the samples are
    spaced to cost at most 2% of a core: sampled every 0.2 s, a 1M run spent a third of a core on it."""

    def __init__(self):
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self):
        pause = 0.2
        while not self._stop.wait(pause):
            started = time.perf_counter()
            self.peak_kb = max(self.peak_kb, sum(_pss_kb(p) for p in _tree(os.getpid())))
            pause = max(0.2, 50 * (time.perf_counter() - started))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak_kb = max(self.peak_kb, sum(_pss_kb(p) for p in _tree(os.getpid())))


def run_one(n: int, workers: int | None) -> dict:
    from collect.engine.compiler import compile_policy
    from collect.engine.simrun import stream_simulation

    plan = compile_policy(POLICY).plan
    book = portfolio(n)
    with tempfile.TemporaryDirectory() as tmp, PeakMemory() as memory:
        out = Path(tmp, "contacts.csv")
        started = time.perf_counter()
        result = stream_simulation(plan, book, start=dt.date(2026, 11, 1), days=90, behavior=str(BEHAVIOR), seed=1,
                                   out=out, workers=workers)
        wall = time.perf_counter() - started
    return {"invoices": n, "seconds": round(wall, 2), "rows": result.rows, "sent": result.summary.status["sent"],
            "peak_mb": round(memory.peak_kb / 1024), "write_s": round(write_floor(result.rows, plan), 2)}


def write_floor(rows: int, plan) -> float:
    """CPU seconds that only formatting and writing `rows` contact rows costs (no decisions made): the
    part of the time that no faster decision core can remove."""
    from collect.engine.decide import Decision
    from collect.engine.simrun import ContactWriter

    zone = ZoneInfo("America/Lima")
    start = dt.datetime(2026, 11, 2, 9, tzinfo=zone)
    batch = [Decision(start + dt.timedelta(minutes=i), f"C{i:07d}", (f"F{i:08d}",), "temprana", "tem-4", "whatsapp",
                      "vencida", "sent", "") for i in range(10_000)]
    with tempfile.TemporaryFile("w", encoding="utf-8", newline="") as handle:
        writer = ContactWriter(handle, "csv", plan.plan_hash)
        started = time.process_time()
        for _ in range(rows // len(batch)):
            writer.write(batch)
        writer.write(batch[:rows % len(batch)])
        return time.process_time() - started


def count_calls(n: int) -> dict:
    """Python function calls per invoice and per contact row for N invoices, in one process: a measure
    of the work that, unlike seconds, does not change with the machine's speed from day to day (which
    varied up to four times here), so that a change to the core can be compared across days. Compare
    counts of the same N, Python and libraries (the libraries' own calls are counted too)."""
    from collect.engine.compiler import compile_policy
    from collect.engine.simrun import stream_simulation

    plan = compile_policy(POLICY).plan
    book = portfolio(n)
    calls = 0
    with tempfile.TemporaryDirectory() as tmp:  # a first run does the imports and fills the caches: not counted
        stream_simulation(plan, portfolio(30, seed=2), start=dt.date(2026, 11, 1), days=90, behavior=str(BEHAVIOR),
                          seed=1, out=Path(tmp, "warm.csv"), workers=1)

    def hook(frame, event, arg):
        nonlocal calls
        if event in ("call", "c_call"):
            calls += 1
    with tempfile.TemporaryDirectory() as tmp:
        sys.setprofile(hook)
        try:
            result = stream_simulation(plan, book, start=dt.date(2026, 11, 1), days=90, behavior=str(BEHAVIOR),
                                       seed=1, out=Path(tmp, "contacts.csv"), workers=1)
        finally:
            sys.setprofile(None)
    return {"invoices": n, "rows": result.rows, "calls": calls}


def simulate_in_process(n: int, simulate: bool) -> None:
    """Build a portfolio of N invoices and make a small warm-up run, then (`simulate`) run the N invoices,
    in this process: what `--instructions` counts under valgrind, with and without that last run."""
    from collect.engine.compiler import compile_policy
    from collect.engine.simrun import stream_simulation

    plan, book = compile_policy(POLICY).plan, portfolio(n)
    runs = [(portfolio(30, seed=2), "warm.csv")] + ([(book, "contacts.csv")] if simulate else [])
    with tempfile.TemporaryDirectory() as tmp:
        for each, name in runs:
            stream_simulation(plan, each, start=dt.date(2026, 11, 1), days=90, behavior=str(BEHAVIOR), seed=1,
                              out=Path(tmp, name), workers=1)


def count_instructions(n: int) -> int:
    """CPU instructions that simulating N invoices costs: a run under valgrind's callgrind that builds the
    portfolio, makes a small warm-up run and simulates the portfolio, minus one that stops before the last
    step (imports, the policy, the portfolio and the warm-up are not counted). The count is the same from
    one day to the next whatever else the machine is doing, unlike seconds, and unlike the function calls
    it weighs each call by its work (a cached result costs a call, not the computation)."""
    import re
    import shutil

    if shutil.which("valgrind") is None:
        sys.exit("--instructions needs valgrind (apt install valgrind)")
    counts = []
    for what in ("all", "warm-up only"):
        out = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
                              __file__, "--in-process", str(n), what], capture_output=True, text=True)
        found = re.search(r"Collected : (\d+)", out.stderr)
        if out.returncode or found is None:
            sys.exit(out.stderr)
        counts.append(int(found.group(1)))
    return counts[0] - counts[1]


def main() -> None:
    args = sys.argv[1:]
    if args and args[0] == "--in-process":
        simulate_in_process(int(args[1]), args[2] == "all")
        return
    if args and args[0] == "--instructions":
        n = int(args[1]) if len(args) > 1 else 600
        total = count_instructions(n)
        print(f"{n:,} invoices, 90 days: {total:,} instructions, {total // n:,} per invoice (valgrind callgrind)")
        return
    if args and args[0] == "--calls":
        r = count_calls(int(args[1]) if len(args) > 1 else 3000)
        print(f"{r['invoices']:,} invoices, 90 days: {r['calls']:,} Python and C function calls, "
              f"{r['calls'] / r['invoices']:,.0f} per invoice, {r['calls'] / r['rows']:,.0f} per contact row "
              f"({r['rows']:,} rows)")
        return
    workers = None
    if "--workers" in args:
        at = args.index("--workers")
        workers = int(args[at + 1])
        del args[at:at + 2]
    if args and args[0] == "--one":
        print(json.dumps(run_one(int(args[1]), workers)))
        return
    sizes = [int(a) for a in args] or [10_000, 100_000, 1_000_000]
    for n in sizes:
        cmd = [sys.executable, __file__, "--one", str(n)] + (["--workers", str(workers)] if workers else [])
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode:
            sys.exit(out.stderr)
        r = json.loads(out.stdout)
        print(f"{r['invoices']:>9,} invoices, 90 days: {r['seconds']:7.2f} s  "
              f"({r['seconds'] / r['invoices'] * 1e6:5.1f} us/invoice)  rows {r['rows']:,}  "
              f"sent {r['sent']:,}  peak {r['peak_mb']:,} MB (PSS, all processes)\n"
              f"{'':>9}  writing the {r['rows']:,} rows alone: {r['write_s']:.2f} s of CPU in one process")


if __name__ == "__main__":
    main()

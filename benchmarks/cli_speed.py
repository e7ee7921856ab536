"""CLI start-up and validation speed (issue 2 targets: --help < 0.3 s, validate of 200 steps < 0.5 s).

Run: python benchmarks/cli_speed.py  — prints the best and median wall time of each command, interpreter
start included, over several runs. Uses the `collect` found next to the running interpreter.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNS = 7


def big_policy(steps: int = 200) -> str:
    """A realistic policy with `steps` send steps spread over three stages."""
    lines = ["policy: bench", "timezone: America/Lima", "currency: PEN",
             "fields: { customer.risk_score: float }",
             "windows:", "  default: { mon-fri: \"08:00-19:00\", sat: \"09:00-13:00\" }",
             "caps:", "  - { channel: any, max: 50, per: 7d }",
             "segments:", "  risky: customer.risk_score >= 0.7", "  big: invoice.amount >= 20000 and not risky",
             "templates:",
             "  t:",
             "    email: { subject: \"Factura {{ invoice.number }}\", body: \"Hola {{ customer.name }}, "
             "{{ invoice.balance | money }} vence el {{ invoice.due_date | date }}. {{ pay_link }}\" }",
             "    sms: \"{{ customer.name }}: {{ total_balance | money }} {{ pay_link }}\"",
             "stages:"]
    stages = [("pre", "invoice.days_past_due <= 0", -60), ("early", "invoice.days_past_due between 1 and 90", 1),
              ("late", "invoice.days_past_due > 90", 91)]
    per_stage = steps // len(stages) + 1
    count = 0
    for name, when, start in stages:
        lines += [f"  {name}:", f"    when: {when}", "    steps:"]
        for i in range(per_stage):
            if count == steps:
                break
            day = start + i // 3 if name != "pre" else start + i // 4
            offset = f"due{day:+d}d" if day else "due"
            cond = "risky" if i % 2 else "big or customer.risk_score < 0.2"
            lines.append(f"      - {{ id: s{count}, at: {offset} {8 + i % 10:02d}:00, if: {cond}, "
                         f"send: [sms, email], template: t }}")
            count += 1
    return "\n".join(lines) + "\n"


def timed(cmd: list[str]) -> list[float]:
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        if proc.returncode not in (0,):
            sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}")
    return times


def main() -> None:
    collect = str(Path(sys.executable).with_name("collect"))
    with tempfile.TemporaryDirectory() as tmp:
        policy = Path(tmp, "policy.yaml")
        policy.write_text(big_policy(200), encoding="utf-8")
        for label, cmd, target in (("collect --help", [collect, "--help"], 0.3),
                                   ("collect validate (200 steps)", [collect, "validate", "-q", str(policy)], 0.5)):
            times = timed(cmd)
            best, median = min(times), statistics.median(times)
            verdict = "ok" if median < target else "SLOW"
            print(f"{label:32s} best {best * 1000:6.0f} ms  median {median * 1000:6.0f} ms  "
                  f"target < {target * 1000:.0f} ms  {verdict}")


if __name__ == "__main__":
    main()

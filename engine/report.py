"""`collect report` and `collect tasks`: what the store says about the portfolio and the agents' queue.

KPIs (at the report's moment, from the store):
- aging buckets of open balances by days past due: current (not yet due), 1-30, 31-60, 61-90, 90+;
- DSO = open receivables / amount invoiced in the last 90 days x 90;
- contacts per channel (sent, failed, in delivery) with their cost (channels.yaml `costs`, kept on each
  delivered contact) and the cost per contact, deferrals by reason, agent tasks by queue.
CEI, recovery rate and promises kept of SPEC section 8 are not built yet.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from decimal import Decimal

from sqlalchemy import func, select

from . import store as s

BUCKETS = ("current", "1-30", "31-60", "61-90", "90+")


def _bucket(days: int) -> str:
    if days <= 0:
        return "current"
    return "1-30" if days <= 30 else "31-60" if days <= 60 else "61-90" if days <= 90 else "90+"


def report(engine, today: dt.date) -> dict:
    with engine.connect() as conn:
        paid = defaultdict(Decimal)
        for r in conn.execute(select(s.payments.c.invoice_id, s.payments.c.amount)):
            paid[r.invoice_id] += r.amount
        aging = {b: Decimal(0) for b in BUCKETS}
        receivables = invoiced = Decimal(0)
        for r in conn.execute(select(s.invoices)):
            if r.issue_date and (today - r.issue_date).days <= 90:
                invoiced += r.amount
            balance = r.balance - paid[r.id]
            if r.status in ("paid", "written_off") or balance <= Decimal("0.005"):
                continue
            aging[_bucket((today - r.due_date).days)] += balance
            receivables += balance
        channels: dict[str, Counter] = defaultdict(Counter)
        deferrals: Counter = Counter()
        costs: dict[str, Decimal] = defaultdict(Decimal)
        for r in conn.execute(select(s.contacts.c.channel, s.contacts.c.status, s.contacts.c.reason, s.contacts.c.cost)):
            if r.status in ("sent", "failed", "sending"):
                channels[r.channel or "-"][r.status] += 1
            if r.cost is not None:
                costs[r.channel or "-"] += r.cost
            if r.status == "deferred":
                deferrals[r.reason or "?"] += 1
        tasks = dict(conn.execute(select(s.agent_tasks.c.queue, func.count()).group_by(s.agent_tasks.c.queue)).all())
    return {
        "date": today.isoformat(),
        "aging": {k: str(v) for k, v in aging.items()},
        "receivables": str(receivables),
        "dso_days": str((receivables / invoiced * 90).quantize(Decimal("0.1")) if invoiced else Decimal(0)),
        "contacts": {ch: {**c, "cost": str(costs[ch]),
                          "cost_per_contact": str((costs[ch] / c["sent"]).quantize(Decimal("0.0001")) if c["sent"] else 0)}
                     for ch, c in sorted(channels.items())},
        "deferrals": dict(deferrals),
        "tasks_by_queue": tasks,
    }


def tasks(engine, queue: str | None = None) -> list[dict]:
    query = select(s.agent_tasks).where(s.agent_tasks.c.status == "open")
    if queue:
        query = query.where(s.agent_tasks.c.queue == queue)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]

    def priority(row) -> float:
        try:
            return float(row["priority"])
        except (TypeError, ValueError):
            return float("-inf")
    return sorted(rows, key=lambda r: (-priority(r), r["created_at"], r["id"]))

"""`collect simulate` end to end: portfolio files -> customer states -> virtual clock -> contacts + summary.

The command line only parses options and renders; this module does the work so that tests and the
`--compare` mode call exactly what the command runs.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from .decide import Decision
from .runtime import Runtime
from .simulate import SimResult, simulate, start_moment
from .state import (PAID_EPSILON, CustomerInfo, CustomerState, DisputeInfo, InvoiceInfo, PaymentInfo, PromiseInfo,
                    balance_at)

CONTACT_COLUMNS = ("at", "customer_id", "invoice_ids", "stage", "step", "channel", "template", "status", "reason",
                   "plan_hash")
OPTOUT_CHANNELS = ("email", "sms", "whatsapp", "voice", "letter")


def _aware(value, tz: ZoneInfo) -> dt.datetime:
    """A CSV date or naive datetime means the customer's local time (a date: local midnight)."""
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=tz)
    return dt.datetime.combine(value, dt.time(), tz)


def states_from_portfolio(portfolio, rt: Runtime, *, historic: bool) -> dict[str, CustomerState]:
    """Customer states for the core; payments only with the `historic` behavior (else nobody pays)."""
    states: dict[str, CustomerState] = {}
    for c in portfolio.customers.values():
        info = CustomerInfo(c.id, c.name, c.email, c.phone, c.whatsapp, c.timezone, c.country, c.language,
                            bool(c.do_not_contact), frozenset(c.optouts), None, dict(c.attrs))
        states[c.id] = CustomerState(info)
    for inv in portfolio.invoices.values():
        state = states.setdefault(inv.customer_id, CustomerState(CustomerInfo(inv.customer_id)))
        state.invoices[inv.id] = InvoiceInfo(inv.id, inv.customer_id, inv.amount, inv.balance, inv.due_date,
                                             inv.number, inv.currency, inv.issue_date, inv.status, dict(inv.attrs))
    tz_of = {cid: ZoneInfo(s.customer.timezone or rt.timezone) for cid, s in states.items()}
    owner = {inv.id: inv.customer_id for inv in portfolio.invoices.values()}
    if historic:
        for p in portfolio.payments:
            cid = owner[p.invoice_id]
            states[cid].payments.append(PaymentInfo(p.payment_id, p.invoice_id, p.amount, _aware(p.paid_at, tz_of[cid])))
    for i, p in enumerate(portfolio.promises):
        cid = p.customer_id or owner[p.invoice_id]
        made = _aware(p.made_at, tz_of[cid]) if p.made_at else _aware(p.promised_date, tz_of[cid]) - dt.timedelta(days=7)
        states[cid].promises.append(PromiseInfo(f"promise-{i + 1}", p.amount, p.promised_date, made, p.invoice_id))
    for i, d in enumerate(portfolio.disputes):
        cid = owner[d.invoice_id]
        states[cid].disputes.append(DisputeInfo(f"dispute-{i + 1}", d.invoice_id, _aware(d.opened_at, tz_of[cid]),
                                                _aware(d.resolved_at, tz_of[cid]) if d.resolved_at else None))
    for state in states.values():
        state.payments.sort(key=lambda p: p.at)
    return states


def contact_row(d: Decision, plan_hash: str) -> dict:
    return {"at": d.at.isoformat(timespec="seconds"), "customer_id": d.customer_id,
            "invoice_ids": ";".join(d.invoice_ids), "stage": d.stage, "step": d.step, "channel": d.channel,
            "template": d.template or "", "status": d.status, "reason": d.reason, "plan_hash": plan_hash}


def contacts_text(result: SimResult, fmt: str) -> str:
    rows = [contact_row(d, result.plan_hash) for d in result.decisions]
    if fmt == "jsonl":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CONTACT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


@dataclass
class Summary:
    sent_by_channel: Counter = field(default_factory=Counter)
    sent_by_step: Counter = field(default_factory=Counter)
    sent_by_week: Counter = field(default_factory=Counter)
    status: Counter = field(default_factory=Counter)
    deferrals: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)
    tasks_by_queue: Counter = field(default_factory=Counter)
    cost: Decimal = Decimal(0)
    kpis: dict = field(default_factory=dict)


def summarize(result: SimResult, costs: dict[str, float] | None = None, kpis: bool = False) -> Summary:
    s = Summary()
    for d in result.decisions:
        s.status[d.status] += 1
        if d.status == "sent":
            s.sent_by_channel[d.channel] += 1
            s.sent_by_step[d.step] += 1
            year, week, _ = d.at.isocalendar()
            s.sent_by_week[f"{year}-W{week:02d}"] += 1
            s.cost += Decimal(str((costs or {}).get(d.channel, 0)))
        elif d.status == "deferred":
            s.deferrals[d.reason.split(":")[0] if d.reason.startswith("compliance") else d.reason] += 1
        elif d.status == "skipped":
            s.skipped[d.reason] += 1
        elif d.status == "escalated":
            s.tasks_by_queue[d.queue or "?"] += 1
    if kpis:
        s.kpis = portfolio_kpis(result)
    return s


def portfolio_kpis(result: SimResult) -> dict:
    """Projected KPIs over the horizon (formulas in docs/simulate.md)."""
    start, end = result.start, result.end
    opening = closing = invoiced = collected = Decimal(0)
    for state in result.states.values():
        for inv in state.invoices.values():
            if inv.status in ("paid", "written_off"):
                continue
            invoiced += inv.amount
            opening += max(balance_at(state, inv, start), Decimal(0))
            closing += max(balance_at(state, inv, end), Decimal(0))
        collected += sum((p.amount for p in state.payments if start <= p.at < end), Decimal(0))
    days = (end - start).days or 1
    return {
        "opening_balance": opening, "closing_balance": closing, "collected": collected,
        "recovery_rate": (collected / opening) if opening > PAID_EPSILON else Decimal(0),
        "dso_days": (closing / invoiced * days) if invoiced else Decimal(0),
    }


def run_simulation(plan, portfolio, *, start: dt.date, days: int, behavior: str = "none", seed: int = 0,
                   tick_minutes: int = 60, progress=None) -> SimResult:
    from .behavior import BehaviorModel

    rt = Runtime(plan)
    states = states_from_portfolio(portfolio, rt, historic=behavior == "historic")
    model = None if behavior in ("none", "historic") else BehaviorModel.load(behavior, seed)
    return simulate(rt, states, start_moment(start, rt.timezone), days, tick_s=tick_minutes * 60,
                    behavior=model, progress=progress)


def per_day(result: SimResult) -> dict[str, Counter]:
    """Sent contacts per local day and channel (for the compare view)."""
    days: dict[str, Counter] = defaultdict(Counter)
    for d in result.decisions:
        if d.status == "sent":
            days[d.at.date().isoformat()][d.channel] += 1
    return days

def load_portfolio(plan, portfolio: Path, *, customers=None, payments=None, promises=None, disputes=None,
                   colmap=None):
    """Read every portfolio file, typed by the plan's `fields:`; raises CsvError with every bad row."""
    from .portfolio import load_map, read_portfolio

    return read_portfolio(portfolio, customers, payments, promises, disputes, fields=dict(plan["fields"]),
                          default_timezone=plan["timezone"], default_currency=plan["currency"],
                          colmap=load_map(colmap) if colmap else None)


def load_costs(channels_yaml: Path) -> dict[str, float]:
    """The `costs:` table of channels.yaml (message cost per channel), nothing else of the file."""
    import yaml

    data = yaml.safe_load(Path(channels_yaml).read_text(encoding="utf-8")) or {}
    costs = data.get("costs") or {}
    if not isinstance(costs, dict) or not all(isinstance(v, (int, float)) for v in costs.values()):
        raise ValueError(f"{channels_yaml}: costs must map channel names to numbers")
    return {str(k): float(v) for k, v in costs.items()}

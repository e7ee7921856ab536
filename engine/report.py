"""`collect report` and `collect tasks`: what the store says about the portfolio and the agents' queue.

The report is taken as of the end of its day D (`--date`, default today) and looks back over a period
of the N days ending with D (`--days`, default 30): D-N+1 .. D. The period opens as of the end of D-N.

Balances at a past day. The store keeps each invoice's amount, its balance and status as last imported,
and the dated payments imported since (SPEC 4.6, `state.balance_at`: the balance minus the payments made
so far). So an invoice's open balance as of day X is its stored balance minus the payments received by
the end of X (days are the customer's: its time zone, else the report's `--timezone`, by default UTC,
as for `collect import`), counted only when it is above 0.005 (paid otherwise) and the invoice was
issued by X (no issue date: issued before any period). An invoice stored as `paid` or `written_off` has no open balance on any day, since the store
does not say when it became so. The reconstruction is exact while balances change through imported
payments; re-importing an invoice with a new balance rewrites its past too.

KPIs (a ratio whose denominator is zero is None, shown as "n/a": never a 0 that looks like a value):
- aging: open balances as of D by days past due (D - due date): current (0 or less), 1-30, 31-60,
  61-90, 90+; receivables = their sum.
- DSO = receivables / amount invoiced D-89..D (90 days, any status) x 90; None when nothing was invoiced then.
- CEI = (opening + invoiced - closing) / (opening + invoiced - closing current) x 100, with opening =
  the receivables as of D-N, invoiced = the amounts of the invoices issued in the period (written-off
  ones left out), closing = the receivables as of D, closing current = its `current` bucket; None when
  the denominator is 0 or less.
- recovery rate = collected / past due x 100: past due = the open balances as of D-N of the invoices
  past due then (due date before D-N); collected = the payments on them received in the period, each
  invoice's counted up to its past-due balance; None when nothing was past due.
- promises: made = promises made in the period; due = promises made by D whose promised date is in
  the period; kept = the due ones that the decision core's own rule (`events.kept_at`) finds kept:
  payments made since the promise, on its invoice (any of the customer's for a customer-wide promise),
  reach its amount by the end of the promised date; broken = due - kept; kept rate = kept / due x 100,
  None when none was due.
- contacts per channel (those decided by the end of D, the customer's day): sent, failed, sending
  (handed to the provider, no answer yet); failed counts only the contacts that went to the channel's
  provider: `attempts` > 0 (the delivery stage tried them: the provider refused them, retries ran out,
  or the template could not be rendered at delivery), or a provider id or a provider report
  (`delivery`: a bounce) on the row. A
  `failed` contact of the decision core (no address, no consent or an opt-out on every channel: attempts
  0, no provider id, no report) is not a failure of any channel and is left out of every channel's
  counts; delivered = contacts whose provider's last report (`collect import events`) is delivered, read,
  clicked or replied; failure rate = failed / (sent + failed) x 100, None when nothing was settled;
  delivery rate = delivered / (sent + failed) x 100, None when nothing was settled or the channel has
  no provider report at all (unknown, not 0); cost (channels.yaml `costs`, kept on each delivered
  contact) and cost per contact = cost / sent, None when nothing was sent; both None when no contact
  of the channel has a cost (no costs configured: unknown, not 0).
- deferrals by reason; agent tasks by queue (every task, whatever its status); both by the end of D.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from zoneinfo import ZoneInfo

from sqlalchemy import select

from . import store as s
from .contacts import restrictions
from .kpis import (BUCKETS, bucket, cei_pct, cost_per_contact, dso_days, failure_rate_pct, in_dso_period, pct,
                   promise_outcome, promise_totals, ratio)
from .state import PAID_EPSILON, CustomerInfo, CustomerState, InvoiceInfo, PaymentInfo, PromiseInfo
from .storeio import DELIVERY_TYPES, _chunks

CLOSED = ("paid", "written_off")
ZERO = Decimal(0)


def _text(value) -> str | None:
    return None if value is None else str(value)


def _ratio(part, whole, places: str) -> str | None:
    return _text(ratio(part, whole, places))


def _pct(part, whole) -> str | None:
    return _text(pct(part, whole))


@lru_cache(maxsize=None)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


@dataclass
class _Invoice:
    customer_id: str
    amount: Decimal
    balance: Decimal  # as last imported, before the stored payments
    status: str
    issue_date: dt.date | None
    due_date: dt.date
    currency: str | None = None
    payments: list[tuple[dt.date, PaymentInfo]] = field(default_factory=list)  # with their local day

    def open_balance(self, day: dt.date) -> Decimal:
        if self.status in CLOSED or (self.issue_date is not None and self.issue_date > day):
            return ZERO
        left = self.balance - sum((p.amount for d, p in self.payments if d <= day), ZERO)
        return left if left > PAID_EPSILON else ZERO

    def collected(self, after: dt.date, until: dt.date) -> Decimal:
        return sum((p.amount for d, p in self.payments if after < d <= until), ZERO)


def _book(conn, zone_of) -> dict[str, _Invoice]:
    i = s.invoices.c
    book = {r.id: _Invoice(r.customer_id, r.amount, r.balance, r.status, r.issue_date, r.due_date, r.currency)
            for r in conn.execute(select(i.id, i.customer_id, i.amount, i.balance, i.status, i.issue_date, i.due_date,
                                         i.currency))}
    for r in conn.execute(select(s.payments).order_by(s.payments.c.paid_at)):
        invoice = book.get(r.invoice_id)
        if invoice is not None:
            day = r.paid_at.astimezone(zone_of(invoice.customer_id)).date()
            invoice.payments.append((day, PaymentInfo(r.payment_id, r.invoice_id, r.amount, r.paid_at)))
    return book


def _aging(book: dict[str, _Invoice], day: dt.date) -> dict[str, Decimal]:
    aging = {b: ZERO for b in BUCKETS}
    for invoice in book.values():
        balance = invoice.open_balance(day)
        if balance:
            aging[bucket((day - invoice.due_date).days)] += balance
    return aging


def _cei(book: dict[str, _Invoice], start: dt.date, today: dt.date, aging: dict) -> dict:
    opening = sum((i.open_balance(start) for i in book.values()), ZERO)
    invoiced = sum((i.amount for i in book.values()
                    if i.status != "written_off" and i.issue_date and start < i.issue_date <= today), ZERO)
    closing, current = sum(aging.values(), ZERO), aging["current"]
    return {"opening_receivables": str(opening), "invoiced": str(invoiced), "closing_receivables": str(closing),
            "closing_current": str(current),
            "cei_pct": _text(cei_pct(opening, invoiced, closing, current))}


def _recovery(book: dict[str, _Invoice], start: dt.date, today: dt.date) -> dict:
    past_due = collected = ZERO
    for invoice in book.values():
        owed = invoice.open_balance(start)
        if owed and invoice.due_date < start:
            past_due += owed
            collected += min(invoice.collected(start, today), owed)
    return {"past_due_at_start": str(past_due), "collected": str(collected),
            "recovery_rate_pct": _pct(collected, past_due)}


def _promises(conn, book: dict[str, _Invoice], zone_of, start: dt.date, today: dt.date) -> dict:
    paid: dict[str, list[PaymentInfo]] = defaultdict(list)
    owed: dict[str, dict[str, InvoiceInfo]] = defaultdict(dict)  # which invoices a customer-wide promise covers
    for iid, invoice in book.items():
        paid[invoice.customer_id] += [p for _, p in invoice.payments]
        owed[invoice.customer_id][iid] = InvoiceInfo(iid, invoice.customer_id, invoice.amount, invoice.balance,
                                                     invoice.due_date, issue_date=invoice.issue_date,
                                                     status=invoice.status)
    states: dict[str, CustomerState] = {}
    for r in conn.execute(select(s.promises).order_by(s.promises.c.id)):
        state = states.get(r.customer_id)
        if state is None:  # kept_at reads the payments, in time order; replaced_at the other promises
            payments = sorted(paid[r.customer_id], key=lambda p: p.at)
            state = states[r.customer_id] = CustomerState(CustomerInfo(r.customer_id), invoices=owed[r.customer_id],
                                                          payments=payments)
        state.promises.append(PromiseInfo(f"promise-{r.id}", r.amount, r.promised_date, r.made_at, r.invoice_id))
    made = due = kept = 0
    for cid, state in states.items():
        for promise in state.promises:
            counted = promise_outcome(state, promise, start, today, zone_of(cid))
            made, due, kept = made + counted[0], due + counted[1], kept + counted[2]
    totals = promise_totals(made, due, kept)
    return {**totals, "kept_rate_pct": _text(totals["kept_rate_pct"])}


def _contacts(conn, today: dt.date) -> tuple[dict, Counter]:
    """The contacts decided by the end of `today` (the customer's day): a report as of a past day does not
    count what was decided after it."""
    counts: dict[str, Counter] = defaultdict(Counter)
    costs: dict[str, Decimal | None] = defaultdict(lambda: None)  # None: no contact with a known cost
    deferrals: Counter = Counter()
    c = s.contacts.c
    for r in conn.execute(select(c.channel, c.status, c.reason, c.cost, c.delivery, c.attempts, c.provider_id,
                                 c.at, c.tz)):
        if r.at.astimezone(_zone(r.tz)).date() > today:
            continue
        channel = r.channel or "-"
        status = r.status
        if status == "escalated" and (r.attempts or r.provider_id):
            status = "sent"  # an agent task handed to the agent channel's adapter: that channel's success
        if status == "failed" and not (r.attempts or r.provider_id or r.delivery):
            pass  # failed in the decision core (runner._record writes attempts 0): no provider outcome
        elif status in ("sent", "failed", "sending"):
            counts[channel][status] += 1
            counts[channel]["delivered"] += r.delivery in DELIVERY_TYPES
            counts[channel]["reported"] += r.delivery is not None
        if r.cost is not None:
            costs[channel] = (costs[channel] or Decimal(0)) + r.cost
            # paid for, then bounced: its cost stays in the channel's, so it counts in what the cost is per
            counts[channel]["paid_failed"] += status == "failed"
        if r.status == "deferred":
            deferrals[r.reason or "?"] += 1
    return {ch: _channel(n, costs[ch]) for ch, n in sorted(counts.items())}, deferrals


def _tasks_by_queue(conn, zone_of, today: dt.date) -> dict[str, int]:
    """Agent tasks opened by the end of `today`, by queue, whatever their status: on the clock of the
    decision that opened the task (its contact's zone, as the contacts are counted), else the customer's."""
    t = s.agent_tasks.c
    rows = conn.execute(select(t.queue, t.customer_id, t.created_at, s.contacts.c.tz)
                        .outerjoin(s.contacts, s.contacts.c.key == t.contact_key))
    opened = Counter(r.queue for r in rows
                     if r.created_at.astimezone(_zone(r.tz) if r.tz else zone_of(r.customer_id)).date() <= today)
    return dict(sorted(opened.items()))


def _channel(n: Counter, cost: Decimal | None) -> dict:
    settled = n["sent"] + n["failed"]
    return {"sent": n["sent"], "failed": n["failed"], "sending": n["sending"], "delivered": n["delivered"],
            "delivery_rate_pct": _pct(n["delivered"], settled if n["reported"] else 0),
            "failure_rate_pct": _text(failure_rate_pct(n["sent"], n["failed"])),
            "cost": _text(cost), "cost_per_contact": None if cost is None else _text(cost_per_contact(cost, n["sent"] + n["paid_failed"]))}


def report(engine, today: dt.date, days: int = 30, timezone: str = "UTC") -> dict:
    """The KPIs as of the end of `today` over the `days` days ending with it (formulas: module docstring);
    `timezone`: the zone of customers without one."""
    start = today - dt.timedelta(days=days)  # the period opens as of the end of this day
    with engine.connect() as conn:
        zones = dict(conn.execute(select(s.customers.c.id, s.customers.c.timezone)).all())

        def zone_of(customer_id):
            return _zone(zones.get(customer_id) or timezone)
        book = _book(conn, zone_of)
        contacts, deferrals = _contacts(conn, today)
        promises = _promises(conn, book, zone_of, start, today)
        tasks = _tasks_by_queue(conn, zone_of, today)
    aging = _aging(book, today)
    receivables = sum(aging.values(), ZERO)
    invoiced_90 = sum((i.amount for i in book.values() if in_dso_period(i.issue_date, today)), ZERO)
    return {
        "date": today.isoformat(),
        "period": {"first_day": (start + dt.timedelta(days=1)).isoformat(), "last_day": today.isoformat(),
                   "days": days},
        "aging": {k: str(v) for k, v in aging.items()},
        "receivables": str(receivables),
        "dso_days": _text(dso_days(receivables, invoiced_90)),
        "cei": _cei(book, start, today, aging),
        "recovery": _recovery(book, start, today),
        "promises": promises,
        "contacts": contacts,
        "deferrals": dict(deferrals),
        "tasks_by_queue": tasks,
        # the amounts are added as they are: with several currencies the money KPIs mix them (the views warn)
        "currencies": sorted({i.currency for i in book.values() if i.currency}),
    }


def tasks(engine, queue: str | None = None) -> list[dict]:
    query = select(s.agent_tasks).where(s.agent_tasks.c.status == "open")
    if queue:
        query = query.where(s.agent_tasks.c.queue == queue)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
        ended, owners = _ended(conn, {i for r in rows for i in r["invoice_ids"].split(";")})
        said = _restrictions(conn, {r["customer_id"] for r in rows} | set(owners.values()))
    # a task about invoices all paid or written off since has nothing left to collect (SPEC 4.6)
    rows = [r for r in rows if not set(r["invoice_ids"].split(";")) <= ended]
    for r in rows:  # as the customer is now: an opt-out since the task was opened counts
        r["restrictions"] = list(said.get(r["customer_id"], []))
        # an invoice a re-import gave to another customer since: the debt, and how it may be chased, are theirs
        for iid in r["invoice_ids"].split(";"):
            owner = owners.get(iid)
            if owner is not None and owner != r["customer_id"]:
                r["restrictions"] += [f"{iid} is now {owner}'s"] + [f"{owner}: {x}" for x in said.get(owner, [])]

    def priority(row) -> float:
        try:
            return float(row["priority"])
        except (TypeError, ValueError):
            return float("-inf")
    return sorted(rows, key=lambda r: (-priority(r), r["created_at"], r["id"]))


def _restrictions(conn, ids: set[str]) -> dict[str, list[str]]:
    c = s.customers.c
    said = {}
    for chunk in _chunks(sorted(ids), 900):
        for r in conn.execute(select(c.id, c.do_not_contact, c.optouts, c.consents, c.legal_status)
                              .where(c.id.in_(chunk))):
            said[r.id] = restrictions(r.do_not_contact, r.optouts, r.consents, r.legal_status)
    return said


def _ended(conn, ids: set[str]) -> tuple[set[str], dict[str, str]]:
    """The invoices among `ids` that are paid (by status, or by the payments stored) or written off; and
    each invoice's customer now."""
    ended, owed, owners = set(), {}, {}
    i, p = s.invoices.c, s.payments.c
    for chunk in _chunks(sorted(ids), 900):  # within the bound parameters SQLite takes
        for r in conn.execute(select(i.id, i.status, i.balance, i.customer_id).where(i.id.in_(chunk))):
            owners[r.id] = r.customer_id
            if r.status in ("paid", "written_off"):
                ended.add(r.id)
            else:
                owed[r.id] = r.balance
        for r in conn.execute(select(p.invoice_id, p.amount).where(p.invoice_id.in_(chunk))):
            if r.invoice_id in owed:  # amounts are stored as exact text: added here, not by SQL's sum
                owed[r.invoice_id] -= r.amount
    return ended | {iid for iid, left in owed.items() if left <= PAID_EPSILON}, owners

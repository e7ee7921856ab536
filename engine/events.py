"""Facts derived from a customer's state at a moment: expression contexts, promises, event occurrences.

Everything is computed from dated facts at or before `now` (payments, promises, disputes, contacts), so
the same state gives the same answers in a simulation and in production.

Event dates (the `event` anchor of an event step), in the customer's local calendar:
  promise_made      the day the promise was made (`promise±Nd` counts from the promised date)
  promise_kept      the day of the payment that completed the promised amount
  promise_broken    the day after the promised date, when the promise was not kept by its end
  payment_received  the day of each payment; payment_partial: those that leave a balance
  dispute_opened / dispute_resolved   the days the dispute was opened / resolved
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from .state import PAID_EPSILON, CustomerState, InvoiceInfo, PromiseInfo, balance_at

YEAR = dt.timedelta(days=365)


@dataclass(frozen=True)
class Occurrence:
    event: str
    id: str  # unique per invoice and event type: a step fires once per occurrence
    date: dt.date
    promised_date: dt.date | None = None


def _local(moment: dt.datetime, tz) -> dt.date:
    return moment.astimezone(tz).date()


def _end_of(day: dt.date, tz) -> dt.datetime:
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tz)


def covers(promise: PromiseInfo, invoice: InvoiceInfo) -> bool:
    return promise.invoice_id in (None, invoice.id)


def kept_at(state: CustomerState, promise: PromiseInfo, now: dt.datetime, tz) -> dt.datetime | None:
    """When the payments made since the promise reached its amount (by the end of the promised date)."""
    deadline = min(now, _end_of(promise.promised_date, tz))
    total = Decimal(0)
    for payment in state.payments:
        if promise.made_at <= payment.at <= deadline and promise.invoice_id in (None, payment.invoice_id):
            total += payment.amount
            if total >= promise.amount - PAID_EPSILON:
                return payment.at
    return None


def promise_active(state: CustomerState, invoice: InvoiceInfo, now: dt.datetime) -> PromiseInfo | None:
    tz = now.tzinfo
    today = now.date()
    active = [p for p in state.promises if covers(p, invoice) and p.made_at <= now and today <= p.promised_date
              and kept_at(state, p, now, tz) is None]
    return max(active, key=lambda p: p.made_at, default=None)


def broken(state: CustomerState, promise: PromiseInfo, now: dt.datetime) -> bool:
    return now.date() > promise.promised_date and kept_at(state, promise, now, now.tzinfo) is None


def customer_facts(rt, state: CustomerState, now: dt.datetime) -> dict:
    """The customer-level values of an expression context (shared by all the customer's invoices)."""
    c = state.customer
    today = now.date()
    open_invoices = [i for i in state.invoices.values()
                     if i.status not in ("paid", "written_off") and balance_at(state, i, now) > PAID_EPSILON]
    recent = [s for s in state.sent if s.at <= now]
    late = {p.invoice_id for p in state.payments if now - YEAR <= p.at <= now
            and p.invoice_id in state.invoices and _local(p.at, now.tzinfo) > state.invoices[p.invoice_id].due_date}
    facts = {
        "customer.id": c.id, "customer.name": c.name, "customer.email": c.email, "customer.phone": c.phone,
        "customer.whatsapp": c.whatsapp, "customer.timezone": c.timezone or rt.timezone,
        "customer.country": c.country, "customer.language": c.language, "customer.do_not_contact": c.do_not_contact,
        "customer.open_balance": sum((balance_at(state, i, now) for i in open_invoices), Decimal(0)),
        "customer.open_invoices": len(open_invoices),
        "customer.broken_promises_12m": sum(1 for p in state.promises if broken(state, p, now)
                                            and today - p.promised_date <= dt.timedelta(days=365)),
        "customer.late_payments_12m": len(late),
        "contacts.last_channel": recent[-1].channel if recent else None,
        "contacts.count_7d": sum(1 for s in recent if now - s.at < dt.timedelta(days=7)),
        "today": today,
    }
    facts.update({f"customer.{k}": v for k, v in c.attrs.items()})
    for name, unit in rt.experiment_units.items():
        if unit == "customer":
            facts[f"variant:{name}"] = rt.variant(name, c.id)
    return facts


def invoice_context(rt, state: CustomerState, invoice: InvoiceInfo, facts: dict, now: dt.datetime) -> dict:
    """The full expression context for one invoice: customer facts plus invoice and promise fields."""
    today = now.date()
    balance = balance_at(state, invoice, now)
    status = invoice.status
    if status == "open" and any(d.invoice_id == invoice.id and d.opened_at <= now
                                and (d.resolved_at is None or d.resolved_at > now) for d in state.disputes):
        status = "disputed"
    if balance <= PAID_EPSILON and status != "written_off":
        status = "paid"
    promise = promise_active(state, invoice, now)
    ctx = dict(facts)
    ctx.update({
        "invoice.id": invoice.id, "invoice.number": invoice.number or invoice.id,
        "invoice.customer_id": invoice.customer_id, "invoice.amount": invoice.amount, "invoice.balance": balance,
        "invoice.currency": invoice.currency or rt.currency, "invoice.issue_date": invoice.issue_date,
        "invoice.due_date": invoice.due_date, "invoice.status": status,
        "invoice.days_past_due": (today - invoice.due_date).days, "invoice.days_to_due": (invoice.due_date - today).days,
        "promise.active": promise is not None, "promise.amount": promise.amount if promise else None,
        "promise.date": promise.promised_date if promise else None,
    })
    ctx.update({f"invoice.{k}": v for k, v in invoice.attrs.items()})
    for name, unit in rt.experiment_units.items():
        if unit == "invoice":
            ctx[f"variant:{name}"] = rt.variant(name, invoice.id)
    return ctx


def occurrences(rt, state: CustomerState, invoice: InvoiceInfo, now: dt.datetime) -> list[Occurrence]:
    """The events that have happened to this invoice by `now` and that some event step listens to."""
    if not rt.events:
        return []
    tz = now.tzinfo
    found: list[Occurrence] = []
    for p in state.promises:
        if not covers(p, invoice) or p.made_at > now:
            continue
        found.append(Occurrence("promise_made", p.id, _local(p.made_at, tz), p.promised_date))
        kept = kept_at(state, p, now, tz)
        if kept is not None:
            found.append(Occurrence("promise_kept", p.id, _local(kept, tz), p.promised_date))
        elif now.date() > p.promised_date:
            found.append(Occurrence("promise_broken", p.id, p.promised_date + dt.timedelta(days=1), p.promised_date))
    remaining = invoice.balance
    for pay in state.payments:
        if pay.invoice_id != invoice.id or pay.at > now:
            continue
        remaining -= pay.amount
        found.append(Occurrence("payment_received", pay.payment_id, _local(pay.at, tz)))
        if remaining > PAID_EPSILON:
            found.append(Occurrence("payment_partial", pay.payment_id, _local(pay.at, tz)))
    for d in state.disputes:
        if d.invoice_id == invoice.id and d.opened_at <= now:
            found.append(Occurrence("dispute_opened", d.id, _local(d.opened_at, tz)))
            if d.resolved_at is not None and d.resolved_at <= now:
                found.append(Occurrence("dispute_resolved", d.id, _local(d.resolved_at, tz)))
    return [o for o in found if o.event in rt.events]


def future_moments(state: CustomerState, invoice: InvoiceInfo, now: dt.datetime) -> list[dt.datetime]:
    """Known future facts that can change a decision: payments, promises made or expiring, disputes."""
    tz = now.tzinfo
    moments = [p.at for p in state.payments if p.invoice_id == invoice.id and p.at > now]
    for p in state.promises:
        if covers(p, invoice):
            moments += [p.made_at, _end_of(p.promised_date, tz)]
    for d in state.disputes:
        if d.invoice_id == invoice.id:
            moments += [d.opened_at] + ([d.resolved_at] if d.resolved_at else [])
    return [m for m in moments if m > now]

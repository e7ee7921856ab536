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
UTC = dt.timezone.utc


@dataclass(frozen=True)
class Occurrence:
    event: str
    id: str  # unique per invoice and event type: a step fires once per occurrence
    date: dt.date
    promised_date: dt.date | None = None
    customer_wide: bool = False  # a promise about all the customer's invoices: one occurrence for them all
    kept: dt.datetime | None = None  # promise_made: when the promise was kept
    # promise_made: when a newer promise replaced it before its date; promise_broken: when a newer
    # promise was made since (by now)
    replaced: dt.datetime | None = None
    made: dt.datetime | None = None  # promise_made: when the promise was made
    expires: dt.datetime | None = None  # promise_made: the end of the promised date
    happened: dt.datetime | None = None  # the instant of the event, when it has one (a payment's paid_at)

    def moot(self, trigger: dt.datetime, now: dt.datetime, waiting: bool = False) -> str:
        """Why a step of this occurrence triggered at `trigger` has nothing to say at `now` ("" if it
        has); `waiting`: it was deferred at an earlier tick. A reminder of a promise kept or replaced
        before its trigger (or while it waited), or seen only once the promised date is over (an old
        promise in an imported history); a 'promise broken' message once a newer promise is made. The
        core skips it, explain says so."""
        at = now if waiting else trigger
        if self.kept is not None and self.kept <= at:
            return "promise kept"
        if self.replaced is not None and self.replaced <= (now if self.event == "promise_broken" else at):
            return "promise replaced"
        if self.expires is not None and trigger <= self.expires < now:
            return "promise date passed"
        return ""


def _local(moment: dt.datetime, tz) -> dt.date:
    return moment.astimezone(tz).date()


def end_of_day(day: dt.date, tz) -> dt.datetime:
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tz)


def issued(invoice: InvoiceInfo, day: dt.date) -> bool:
    """Is the invoice there on `day` (a local date)? One not issued yet gets no contact and is none of
    the customer's open invoices (one without an issue date always is)."""
    return invoice.issue_date is None or invoice.issue_date <= day


def covers(promise: PromiseInfo, invoice: InvoiceInfo, tz) -> bool:
    """Is the invoice one the promise is about? A promise without an invoice is about the debts the
    customer had when making it: not about an invoice issued later (one without an issue date counts)."""
    if promise.invoice_id is not None:
        return promise.invoice_id == invoice.id
    return issued(invoice, _local(promise.made_at, tz))


def _later_invoices(state: CustomerState, promise: PromiseInfo, tz) -> frozenset[str]:
    """The invoices a customer-wide promise is not about (issued after it was made): worked out once per
    state, as kept_at asks for every payment of every promise at every decision."""
    key = ("later", promise.id, promise.made_at, tz)
    found = state.memo.get(key)
    if found is None:
        found = state.memo[key] = frozenset(i.id for i in state.invoices.values() if not covers(promise, i, tz))
    return found


def kept_at(state: CustomerState, promise: PromiseInfo, now: dt.datetime, tz,
            slot: str = "now") -> dt.datetime | None:
    """When the payments made since the promise reached its amount (before the promised date ended),
    counting the payments on the invoices it is about. Asked for each invoice of a decision with the
    same `now`: the last answer per promise is kept (while no payment is added), one per `slot`, so
    that replaced_at's question (as of the newer promise) does not push out the decision's."""
    key, asked = ("kept", slot, promise.id, promise.made_at), (now, tz, len(state.payments))
    last = state.memo.get(key)
    if last is not None and last[0] == asked:
        return last[1]
    end = end_of_day(promise.promised_date, tz)
    # a payment dated by its day only is read as local midnight: made on the day of the promise, it counts
    day_made = dt.datetime.combine(_local(promise.made_at, tz), dt.time(), tz)
    total, kept = Decimal(0), None
    later = _later_invoices(state, promise, tz) if promise.invoice_id is None else ()
    for payment in state.payments:
        if payment.at > now or payment.at >= end or (payment.at < promise.made_at and payment.at != day_made):
            continue
        if payment.invoice_id not in later if promise.invoice_id is None else payment.invoice_id == promise.invoice_id:
            total += payment.amount
            if total >= promise.amount - PAID_EPSILON:
                kept = max(payment.at, promise.made_at)  # a payment dated by day: kept when made
                break
    state.memo[key] = (asked, kept)
    return kept


def promise_active(state: CustomerState, invoice: InvoiceInfo, now: dt.datetime) -> PromiseInfo | None:
    if not state.promises:
        return None
    tz = now.tzinfo
    today = now.date()
    # a renegotiated promise pauses no more: the newer one decides, kept or broken, from then on
    active = [p for p in state.promises if covers(p, invoice, tz) and p.made_at <= now and today <= p.promised_date
              and kept_at(state, p, now, tz) is None and replaced_at(state, p, now) is None]
    return max(active, key=lambda p: p.made_at, default=None)


def replaced_at(state: CustomerState, promise: PromiseInfo, now: dt.datetime) -> dt.datetime | None:
    """When a newer promise about the same debts (or about all of them) replaced this one by `now`,
    before its promised date ended and before it was kept: a renegotiated promise is neither broken nor
    to be reminded of (one kept first, the first instalment of a plan, stays kept)."""
    newer = _newer(state, promise, now)
    if newer is None or newer > end_of_day(promise.promised_date, now.tzinfo):
        return None
    return newer if kept_at(state, promise, newer, now.tzinfo, slot="newer") is None else None


def _newer(state: CustomerState, promise: PromiseInfo, now: dt.datetime) -> dt.datetime | None:
    """When the first promise about the same debts made after this one was made, by `now`."""
    return min((p.made_at for p in state.promises if promise.made_at < p.made_at <= now
                and p.invoice_id in (None, promise.invoice_id)), default=None)


def broken(state: CustomerState, promise: PromiseInfo, now: dt.datetime) -> bool:
    return (now.date() > promise.promised_date and kept_at(state, promise, now, now.tzinfo) is None
            and replaced_at(state, promise, now) is None and not settled(state, promise, now.tzinfo))


def settled(state: CustomerState, promise: PromiseInfo, tz) -> bool:
    """Are the invoices the promise is about all marked paid by their status, without a payment of them
    stored since the promise (an ERP export that marks an invoice paid, not the payment)? Then no one can
    tell the promise broken. Written off, or paid with the payments in view (late ones, say), it can be."""
    about = {i.id for i in state.invoices.values() if covers(promise, i, tz)}
    since = dt.datetime.combine(_local(promise.made_at, tz), dt.time(), tz)  # as kept_at counts them
    return (bool(about) and all(state.invoices[i].status == "paid" for i in about)
            and not any(p.invoice_id in about and p.at >= since for p in state.payments))


class Facts(dict):
    """The customer-level values of an expression context at one moment, computed on first read.

    A decision reads a handful of fields; building all of them for every invoice at every tick was
    most of the cost of a simulation. Values are memoised here, so each is computed once per decision."""

    __slots__ = ("rt", "state", "now", "utc")

    def __init__(self, rt, state: CustomerState, now: dt.datetime, utc: dt.datetime | None = None):
        self.rt, self.state, self.now = rt, state, now
        # `now` in UTC, as payments are kept: a local and a UTC time compare thirty times slower
        self.utc = now.astimezone(UTC) if utc is None else utc

    def __missing__(self, name: str):
        resolve = _CUSTOMER.get(name)
        if resolve is not None:
            value = resolve(self.state, self.now, self.rt)
        elif name.startswith("customer."):
            value = self.state.customer.attrs.get(name[9:])
        elif name.startswith("variant:") and self.rt.experiment_units.get(name[8:]) == "customer":
            value = self.rt.variant(name[8:], self.state.customer.id)
        else:
            value = None
        self[name] = value
        return value

    def get(self, name: str, default=None):  # computed like a subscript (dict.get skips __missing__)
        return self[name]


class Context(dict):
    """The expression context of one invoice at one moment: invoice and promise fields, then the
    customer's shared `Facts`; computed on first read."""

    __slots__ = ("facts", "invoice")

    def __init__(self, facts: Facts, invoice: InvoiceInfo):
        self.facts, self.invoice = facts, invoice

    def __missing__(self, name: str):
        resolve = _INVOICE.get(name)
        facts = self.facts
        if resolve is not None:
            value = resolve(self, facts.state, self.invoice, facts.now)
        elif name.startswith("invoice."):
            value = self.invoice.attrs.get(name[8:])
        elif name.startswith("variant:") and facts.rt.experiment_units.get(name[8:]) == "invoice":
            value = facts.rt.variant(name[8:], self.invoice.id)
        else:
            value = facts[name]
        self[name] = value
        return value

    def get(self, name: str, default=None):
        return self[name]


def open_invoices(state: CustomerState, now: dt.datetime) -> list[InvoiceInfo]:
    """Issued by `now`'s (local) day, neither paid nor written off: one issued later is not there yet."""
    today = now.date()
    return [i for i in state.invoices.values() if issued(i, today)
            and i.status not in ("paid", "written_off") and balance_at(state, i, now) > PAID_EPSILON]


def _broken_12m(state: CustomerState, now: dt.datetime, rt) -> int:
    today = now.date()
    return sum(1 for p in state.promises if broken(state, p, now) and today - p.promised_date <= dt.timedelta(days=365))


def _late_12m(state: CustomerState, now: dt.datetime, rt) -> int:
    return len({p.invoice_id for p in state.payments if now - YEAR <= p.at <= now and p.invoice_id in state.invoices
                and _local(p.at, now.tzinfo) > state.invoices[p.invoice_id].due_date})


def _last_channel(state: CustomerState, now: dt.datetime, rt):
    recent = [s for s in state.sent if s.at <= now]
    return recent[-1].channel if recent else None


def _customer_attr(name: str):
    return lambda state, now, rt: getattr(state.customer, name)


_CUSTOMER = {
    **{f"customer.{n}": _customer_attr(n) for n in ("id", "name", "email", "phone", "whatsapp", "country",
                                                    "language", "do_not_contact")},
    "customer.timezone": lambda state, now, rt: state.customer.timezone or rt.timezone,
    "customer.open_balance": lambda state, now, rt: sum((balance_at(state, i, now) for i in open_invoices(state, now)),
                                                        Decimal(0)),
    "customer.open_invoices": lambda state, now, rt: len(open_invoices(state, now)),
    "customer.broken_promises_12m": _broken_12m,
    "customer.late_payments_12m": _late_12m,
    "contacts.last_channel": _last_channel,
    "contacts.count_7d": lambda state, now, rt: sum(1 for s in state.sent if s.at <= now
                                                    and now - s.at < dt.timedelta(days=7)),
    "today": lambda state, now, rt: now.date(),
}


def _status(ctx: Context, state: CustomerState, invoice: InvoiceInfo, now: dt.datetime) -> str:
    status = invoice.status
    if status == "open" and state.disputes and any(d.invoice_id == invoice.id and d.opened_at <= now
                                and (d.resolved_at is None or d.resolved_at > now) for d in state.disputes):
        status = "disputed"
    if ctx["invoice.balance"] <= PAID_EPSILON and status != "written_off":
        status = "paid"
    return status


def _promise_field(attribute: str):
    def read(ctx: Context, state, invoice, now):
        promise = ctx["promise"]
        return None if promise is None else getattr(promise, attribute)
    return read


_INVOICE = {
    "invoice.id": lambda ctx, state, inv, now: inv.id,
    "invoice.number": lambda ctx, state, inv, now: inv.number or inv.id,
    "invoice.customer_id": lambda ctx, state, inv, now: inv.customer_id,
    "invoice.amount": lambda ctx, state, inv, now: inv.amount,
    "invoice.balance": lambda ctx, state, inv, now: balance_at(state, inv, ctx.facts.utc),
    "invoice.currency": lambda ctx, state, inv, now: inv.currency or ctx.facts.rt.currency,
    "invoice.issue_date": lambda ctx, state, inv, now: inv.issue_date,
    "invoice.due_date": lambda ctx, state, inv, now: inv.due_date,
    "invoice.status": _status,
    "invoice.days_past_due": lambda ctx, state, inv, now: (now.date() - inv.due_date).days,
    "invoice.days_to_due": lambda ctx, state, inv, now: (inv.due_date - now.date()).days,
    "promise": lambda ctx, state, inv, now: promise_active(state, inv, now),
    "promise.active": lambda ctx, state, inv, now: ctx["promise"] is not None,
    "promise.amount": _promise_field("amount"),
    "promise.date": _promise_field("promised_date"),
}


def occurrences(rt, state: CustomerState, invoice: InvoiceInfo, now: dt.datetime) -> list[Occurrence]:
    """The events that have happened to this invoice by `now` and that some event step listens to."""
    if not rt.events:
        return []
    tz = now.tzinfo
    found: list[Occurrence] = []
    for p in state.promises:
        if not covers(p, invoice, tz) or p.made_at > now:
            continue
        wide = p.invoice_id is None
        kept, replaced = kept_at(state, p, now, tz), replaced_at(state, p, now)
        found.append(Occurrence("promise_made", p.id, _local(p.made_at, tz), p.promised_date, wide, kept, replaced,
                                p.made_at, end_of_day(p.promised_date, tz), happened=p.made_at))
        if kept is not None:
            found.append(Occurrence("promise_kept", p.id, _local(kept, tz), p.promised_date, wide, happened=kept))
        elif now.date() > p.promised_date and replaced is None:
            found.append(Occurrence("promise_broken", p.id, p.promised_date + dt.timedelta(days=1), p.promised_date,
                                    wide, replaced=_newer(state, p, now)))
    remaining, utc = invoice.balance, now.astimezone(UTC)  # payments are kept in UTC
    for pay in state.payments:
        if pay.invoice_id != invoice.id or pay.at > utc:
            continue
        remaining -= pay.amount
        found.append(Occurrence("payment_received", pay.payment_id, _local(pay.at, tz), happened=pay.at))
        if remaining > PAID_EPSILON:
            found.append(Occurrence("payment_partial", pay.payment_id, _local(pay.at, tz), happened=pay.at))
    for d in state.disputes:
        if d.invoice_id == invoice.id and d.opened_at <= now:
            found.append(Occurrence("dispute_opened", d.id, _local(d.opened_at, tz), happened=d.opened_at))
            if d.resolved_at is not None and d.resolved_at <= now:
                found.append(Occurrence("dispute_resolved", d.id, _local(d.resolved_at, tz), happened=d.resolved_at))
    return [o for o in found if o.event in rt.events]


def event_trigger(rt, step, occ: Occurrence, tz, calendar) -> dt.datetime:
    """SPEC 4.1 for a step of an event: its day (or the promised date's) at its time or the window's
    opening, but never before the event itself. `at: event` opens the window of the event's day, maybe
    hours before a payment made at 15:00: the step is due from the payment on, and only then late."""
    trigger = rt.step_trigger(step, occ.promised_date if step.anchor == "promise" else occ.date, tz, calendar)
    if step.anchor != "promise" and occ.happened is not None and occ.happened > trigger:
        return occ.happened.astimezone(tz)
    return trigger


def future_moments(state: CustomerState, invoice: InvoiceInfo, now: dt.datetime, tz) -> list[dt.datetime]:
    """Known future facts that can change a decision: payments, promises made or expiring, disputes.
    `now` in UTC, as payments are kept (two UTC times compare thirty times quicker than a local one)."""
    moments = [p.at for p in state.payments if p.invoice_id == invoice.id and p.at > now]
    for p in state.promises:
        if covers(p, invoice, tz):
            moments += [p.made_at, end_of_day(p.promised_date, tz)]
    for d in state.disputes:
        if d.invoice_id == invoice.id:
            moments += [d.opened_at] + ([d.resolved_at] if d.resolved_at else [])
    return [m for m in moments if m > now]

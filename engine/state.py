"""What the decision core knows about one customer: invoices, money events, contacts so far.

The shells own this state: the simulator keeps it in memory, `collect run` loads it from the store.
Facts carry their time; the core only looks at facts at or before its `now`, so a state may hold the
future (a simulation's historic payments) without leaking it into a decision.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

PAID_EPSILON = Decimal("0.005")  # SPEC 4.6: a balance at or below this is paid
REOPENED = "failed:"  # how the step memory's status of a step reopened by a failed channel starts


@dataclass(slots=True)
class CustomerInfo:
    id: str
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    whatsapp: str | None = None
    timezone: str | None = None
    country: str | None = None
    language: str | None = None
    do_not_contact: bool = False
    optouts: frozenset[str] = frozenset()
    consents: frozenset[str] | None = None  # None: no consent records kept, every channel allowed
    attrs: dict = field(default_factory=dict)
    legal_status: str | None = None  # e.g. sued, insolvent: states in which some laws stop all contact


@dataclass(slots=True)
class InvoiceInfo:
    id: str
    customer_id: str
    amount: Decimal
    balance: Decimal  # at the portfolio snapshot, before the payments listed in the state
    due_date: dt.date
    number: str | None = None
    currency: str | None = None
    issue_date: dt.date | None = None
    status: str = "open"  # open | paid | disputed | written_off
    attrs: dict = field(default_factory=dict)


@dataclass(slots=True)
class PaymentInfo:
    payment_id: str
    invoice_id: str
    amount: Decimal
    at: dt.datetime  # aware


@dataclass(slots=True)
class PromiseInfo:
    id: str
    amount: Decimal
    promised_date: dt.date
    made_at: dt.datetime  # aware
    invoice_id: str | None = None  # None: the promise covers all the customer's invoices


@dataclass(slots=True)
class DisputeInfo:
    id: str
    invoice_id: str
    opened_at: dt.datetime
    resolved_at: dt.datetime | None = None


@dataclass(slots=True)
class SentContact:
    at: dt.datetime
    channel: str
    invoice_ids: tuple[str, ...] = ()  # the debts it was about (empty: all of the customer's)


@dataclass
class CustomerState:
    customer: CustomerInfo
    invoices: dict[str, InvoiceInfo] = field(default_factory=dict)
    payments: list[PaymentInfo] = field(default_factory=list)  # sorted by time
    promises: list[PromiseInfo] = field(default_factory=list)
    disputes: list[DisputeInfo] = field(default_factory=list)
    conversations: list[SentContact] = field(default_factory=list)  # provider `conversation` events
    replies: list[SentContact] = field(default_factory=list)  # messages the customer sent us (`replied`)
    sent: list[SentContact] = field(default_factory=list)  # contacts actually sent, sorted by time
    done: dict[str, str] = field(default_factory=dict)  # step instance key -> final status
    pending: dict[str, str] = field(default_factory=dict)  # step instance key -> deferral reason
    # step instance key -> {channel: why}: channels whose provider refused the message for good (or
    # that bounced); the step falls back to its next channel
    failed: dict[str, dict[str, str]] = field(default_factory=dict)
    stopped: set[str] = field(default_factory=set)  # invoices a `stop` step ended
    # values derived from the parts of the state that do not change while it is alive (step keys,
    # reachability of a channel) or only grow (`done`: how many of an invoice's steps are settled); a
    # shell that changes those parts otherwise must clear it
    memo: dict = field(default_factory=dict, repr=False, compare=False)


_NONE_PAID = Decimal(0)
UTC = dt.timezone.utc


def paid_by(state: CustomerState, invoice_id: str, now: dt.datetime) -> Decimal:
    paid = _payments_of(state).get(invoice_id) if state.payments else None
    if not paid:
        return Decimal(0)
    # payments are kept in UTC (the simulator's, the behavior model's): a local and a UTC time compare
    # thirty times slower than two UTC times
    now = now.astimezone(UTC)
    return sum((p.amount for p in paid if p.at <= now), Decimal(0))


def _payments_of(state: CustomerState) -> dict[str, list[PaymentInfo]]:
    """The payments by invoice: a message or a decision asks for the balance of every invoice of a
    customer, and a scan of all the customer's payments for each was quadratic. Payments only grow."""
    count, found = state.memo.get(("payments by invoice",), (-1, None))
    if count != len(state.payments):
        found = {}
        for payment in state.payments:
            found.setdefault(payment.invoice_id, []).append(payment)
        state.memo[("payments by invoice",)] = (len(state.payments), found)  # a tuple: invoice ids key schedules
    return found


def balance_at(state: CustomerState, invoice: InvoiceInfo, now: dt.datetime) -> Decimal:
    if not state.payments:  # most customers of a run, asked for every invoice at every decision
        return invoice.balance - _NONE_PAID  # the same Decimal as with payments (1E+2 reads 100)
    return invoice.balance - paid_by(state, invoice.id, now)

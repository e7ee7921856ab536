"""The KPI formulas of `collect report`, shared with `collect simulate`'s projection (engine/simrun.py
Summary), so that both compute aging, CEI, promises, failure rates and costs the same way. Here rather
than in report.py so that a simulation does not load the store's database code."""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal, localcontext

from .events import end_of_day, kept_at, replaced_at, settled
from .state import CustomerState, PromiseInfo

BUCKETS = ("current", "1-30", "31-60", "61-90", "90+")


def bucket(days_past_due: int) -> str:
    """The aging bucket of an open balance."""
    if days_past_due <= 0:
        return "current"
    return ("1-30" if days_past_due <= 30 else "31-60" if days_past_due <= 60
            else "61-90" if days_past_due <= 90 else "90+")


def ratio(part, whole, places: str) -> Decimal | None:
    """part / whole rounded to `places`, or None when `whole` is not positive. With room for 80 digits:
    quantize fails on a quotient longer than the context's precision (28), which a huge balance over a
    tiny one would give."""
    if not whole > 0:
        return None
    with localcontext() as context:
        context.prec = 80  # half up, as a reader rounds: 6.25 % is 6.3, not the banker's 6.2
        return (Decimal(part) / Decimal(whole)).quantize(Decimal(places), rounding=ROUND_HALF_UP)


def pct(part, whole) -> Decimal | None:
    return ratio(Decimal(part) * 100, whole, "0.1")


def in_dso_period(issue_date: dt.date | None, today: dt.date) -> bool:
    """Is an invoice's amount in DSO's denominator: issued in the 90 days ending with `today`?"""
    return issue_date is not None and 0 <= (today - issue_date).days < 90  # D-89 .. D: 90 days, as x 90 counts


def dso_days(receivables, invoiced_90) -> Decimal | None:
    """DSO = receivables / amount invoiced in the last 90 days x 90."""
    return ratio(receivables * 90, invoiced_90, "0.1")


def cei_pct(opening, invoiced, closing, closing_current) -> Decimal | None:
    """CEI = (opening + invoiced - closing) / (opening + invoiced - closing current) x 100."""
    return pct(opening + invoiced - closing, opening + invoiced - closing_current)


def failure_rate_pct(sent: int, failed: int) -> Decimal | None:
    return pct(failed, sent + failed)


def cost_per_contact(cost, sent: int) -> Decimal | None:
    return ratio(cost, sent, "0.0001")


def promise_outcome(state: CustomerState, promise: PromiseInfo, start: dt.date, today: dt.date,
                    tz) -> tuple[bool, bool, bool]:
    """(made, due, kept) of one promise for the period start+1 .. today, on the customer's days (`tz`):
    made in the period; due = made by the end of today with its promised date in the period; kept by
    the decision core's own rule (`kept_at`) as of the end of today. A promise made after today is none."""
    now = end_of_day(today, tz)
    if promise.made_at >= now:
        return False, False, False
    made = promise.made_at.astimezone(tz).date() > start
    # a promise renegotiated before its date is replaced by the newer one, which counts on its own: it is
    # neither kept nor broken (as for the core's promise_broken and broken_promises_12m)
    due = start < promise.promised_date <= today and replaced_at(state, promise, now) is None
    kept = due and kept_at(state, promise, now, tz) is not None
    if due and not kept and settled(state, promise, tz):
        due = False  # its invoices were marked paid without the payments: not known kept, not broken
    return made, due, kept


def promise_totals(made: int, due: int, kept: int) -> dict:
    return {"made": made, "due": due, "kept": kept, "broken": due - kept, "kept_rate_pct": pct(kept, due)}

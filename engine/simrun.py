"""`collect simulate` end to end: portfolio files -> customer states -> virtual clock -> contacts + summary.

The command line only parses options and renders; this module does the work so that tests and the
`--compare` mode call exactly what the command runs.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import hashlib
import io
import json
import os
import shutil
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from operator import attrgetter
from pathlib import Path
from zoneinfo import ZoneInfo

from .files import FORMULA_START, spreadsheet_safe
from .kpis import (BUCKETS, bucket, cei_pct, cost_per_contact, dso_days, failure_rate_pct, in_dso_period, pct,
                   promise_outcome, promise_totals, ratio)
from .runtime import NOT_CONTACTS, Runtime
from .simulate import SimResult, customer_horizon, run_customer, simulate, start_moment
from .state import PAID_EPSILON, CustomerInfo, CustomerState, DisputeInfo, InvoiceInfo, PaymentInfo, PromiseInfo

CONTACT_COLUMNS = ("at", "customer_id", "invoice_ids", "stage", "step", "channel", "template", "status", "reason",
                   "plan_hash")
OPTOUT_CHANNELS = ("email", "sms", "whatsapp", "voice", "letter")


def _aware(value, tz: ZoneInfo) -> dt.datetime:
    """A CSV date or naive datetime means the customer's local time (a date: local midnight)."""
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=tz)
    return dt.datetime.combine(value, dt.time(), tz)


def _aware_utc(value, tz: ZoneInfo) -> dt.datetime:
    return _aware(value, tz).astimezone(dt.timezone.utc)


class PortfolioStates:
    """The decision core's customer states, built from a portfolio one customer at a time.

    A streamed simulation builds each customer's state when it runs that customer and drops it after,
    so memory holds the portfolio once, not the portfolio and every state. Payments only with the
    `historic` behavior (else nobody pays)."""

    def __init__(self, portfolio, rt: Runtime, *, historic: bool):
        self.portfolio, self.timezone = portfolio, rt.timezone
        owner = {inv.id: inv.customer_id for inv in portfolio.invoices.values()}
        self.invoices: dict[str, list] = {}
        for inv in portfolio.invoices.values():
            self.invoices.setdefault(inv.customer_id, []).append(inv)
        self.payments: dict[str, list] = {}
        for p in portfolio.payments if historic else ():
            self.payments.setdefault(owner[p.invoice_id], []).append(p)
        self.promises: dict[str, list] = {}
        for p in portfolio.promises:  # in file order, as the store keeps them
            self.promises.setdefault(p.customer_id or owner[p.invoice_id], []).append(p)
        self.disputes: dict[str, list] = {}
        for d in portfolio.disputes:
            self.disputes.setdefault(owner[d.invoice_id], []).append(d)

    def ids(self) -> list[str]:
        return sorted(set(self.portfolio.customers) | set(self.invoices))

    def state(self, cid: str) -> CustomerState:
        c = self.portfolio.customers.get(cid)
        info = CustomerInfo(cid) if c is None else CustomerInfo(
            c.id, c.name, c.email, c.phone, c.whatsapp, c.timezone, c.country, c.language, bool(c.do_not_contact),
            frozenset(c.optouts), c.consents, dict(c.attrs), c.legal_status)
        state = CustomerState(info)
        tz = ZoneInfo(info.timezone or self.timezone)
        for inv in self.invoices.get(cid, ()):
            state.invoices[inv.id] = InvoiceInfo(inv.id, inv.customer_id, inv.amount, inv.balance, inv.due_date,
                                                 inv.number, inv.currency, inv.issue_date, inv.status, dict(inv.attrs))
        # in UTC, as the behavior model's: the core compares them with instants of one zone, quickly
        state.payments = sorted((PaymentInfo(p.payment_id, p.invoice_id, p.amount, _aware_utc(p.paid_at, tz))
                                 for p in self.payments.get(cid, ())), key=lambda p: p.at)
        named = _Names()
        for p in self.promises.get(cid, ()):
            made = _aware(p.made(), tz)
            state.promises.append(PromiseInfo(named("promise", p.invoice_id, p.amount, p.promised_date, made),
                                              p.amount, p.promised_date, made, p.invoice_id))
        for d in self.disputes.get(cid, ()):
            opened = _aware(d.opened_at, tz)
            state.disputes.append(DisputeInfo(named("dispute", d.invoice_id, opened), d.invoice_id, opened,
                                              _aware(d.resolved_at, tz) if d.resolved_at else None))
        return state


class _Names:
    """Ids of a customer's promises and disputes from what they are, not from their rows' places: the
    behavior model's draws hash them, so a row added for another customer, or rows in another order,
    must not change this customer's luck."""

    def __init__(self):
        self.seen: Counter = Counter()

    def __call__(self, kind: str, *facts) -> str:
        name = f"{kind}-{hashlib.sha256(repr(facts).encode()).hexdigest()[:12]}"
        self.seen[name] += 1
        return name if self.seen[name] == 1 else f"{name}-{self.seen[name]}"


def states_from_portfolio(portfolio, rt: Runtime, *, historic: bool) -> dict[str, CustomerState]:
    """Every customer's state at once (the in-memory simulation)."""
    built = PortfolioStates(portfolio, rt, historic=historic)
    return {cid: built.state(cid) for cid in built.ids()}


def csv_line(row: list, writerow) -> str | None:
    """The CSV line of a row of strings when no field needs quoting (`writerow` is not called), else
    None after writing the row with `writerow`. csv.writer is most of the cost of a row; a row with no
    delimiter, quote or line break in any field is the same text joined by commas."""
    line = ",".join(row)
    if (line.count(",") == len(row) - 1 and '"' not in line and "\n" not in line and "\r" not in line
            and line):  # csv writes a row of one empty field as ""
        return line + "\n"
    writerow(row)
    return None


# A moment's text and ISO week on its clock. The moments of decisions recur for every customer of a zone
# (decide._local), and formatting one asks the zone for its offset. Keyed with the zone: equal instants
# of two zones are equal datetimes (compared slowly), with other texts and maybe other weeks; and with the
# fold: in one zone the two readings of a time shown twice are equal, with the same hash, other offsets.
@lru_cache(maxsize=1 << 16)
def _stamp(at: dt.datetime, zone, fold: int) -> str:
    return at.isoformat(timespec="seconds")


@lru_cache(maxsize=1 << 16)
def _week(at: dt.datetime, zone, fold: int) -> str:
    year, week, _ = at.isocalendar()
    return f"{year}-W{week:02d}"


class ContactWriter:
    """Contacts rows (SPEC section 7) to an open text file, as CSV (without its header) or JSON lines."""

    def __init__(self, handle, fmt: str, plan_hash: str):
        self.plan_hash = plan_hash
        self.rows = 0
        self._handle, self._jsonl = handle, fmt == "jsonl"
        self._writerow = csv.writer(handle, lineterminator="\n").writerow

    def write(self, decisions) -> None:
        handle, writerow, plan_hash = self._handle, self._writerow, self.plan_hash
        last_at, stamp = None, ""
        for d in decisions:
            if d.at is not last_at:  # the decisions of one call share their moment
                last_at, stamp = d.at, _stamp(d.at, d.at.tzinfo, d.at.fold)
            row = [stamp, d.customer_id, ";".join(d.invoice_ids), d.stage, d.step, d.channel, d.template or "",
                   d.status, d.reason, plan_hash]
            if self._jsonl:
                handle.write(json.dumps(dict(zip(CONTACT_COLUMNS, row)), ensure_ascii=False) + "\n")
                continue
            if row[1].startswith(FORMULA_START) or row[2].startswith(FORMULA_START):  # ids come from the ERP
                row[1], row[2] = spreadsheet_safe(row[1]), spreadsheet_safe(row[2])
            if (line := csv_line(row, writerow)) is not None:
                handle.write(line)
        self.rows += len(decisions)


_status, _channel, _step = attrgetter("status"), attrgetter("channel"), attrgetter("step")


def _header(fmt: str) -> str:
    return "" if fmt == "jsonl" else ",".join(CONTACT_COLUMNS) + "\n"


def contacts_text(result: SimResult, fmt: str) -> str:
    out = io.StringIO()
    out.write(_header(fmt))
    ContactWriter(out, fmt, result.plan_hash).write(result.decisions)
    return out.getvalue()


MONEY = ("opening_balance", "closing_balance", "collected", "invoiced_in_horizon", "invoiced_90", "past_due_at_start",
         "recovered")


@dataclass
class Summary:
    """What a simulation did, added up customer by customer (so that it needs no list of decisions).

    Every field is a sum that merges by adding, so the summary is the same whatever the number of
    workers; the KPIs are computed from the sums at the end (`finish`, `channel_kpis`), with the
    formulas of `collect report` (engine/report.py)."""

    sent_by_channel: Counter = field(default_factory=Counter)
    # no usable channel (the step's last one), or with --render a message that cannot be built (its channel)
    failed_by_channel: Counter = field(default_factory=Counter)
    sent_by_step: Counter = field(default_factory=Counter)
    sent_by_week: Counter = field(default_factory=Counter)
    status: Counter = field(default_factory=Counter)
    deferrals: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)
    failures: Counter = field(default_factory=Counter)  # reason -> failed contacts
    tasks_by_queue: Counter = field(default_factory=Counter)
    cost: Decimal = Decimal(0)
    cost_by_channel: Counter = field(default_factory=Counter)
    priced: bool = False  # costs were given: without them a cost of 0 would read as measured
    money: Counter = field(default_factory=Counter)  # the sums behind the KPIs
    aging: Counter = field(default_factory=Counter)  # bucket -> closing balance
    promises: Counter = field(default_factory=Counter)  # made, due, kept
    currencies: set = field(default_factory=set)  # of the invoices in the money sums: several are added as is
    # (experiment, variant, measure) -> sum: units, messages, and the money measures of add_money
    variants: Counter = field(default_factory=Counter)
    kpis: dict = field(default_factory=dict)

    def add(self, decisions, costs: dict | None = None) -> None:
        self.status.update(map(_status, decisions))  # Counter.update counts an iterable in C
        sent = [d for d in decisions if d.status == "sent"]
        self.sent_by_channel.update(map(_channel, sent))
        self.sent_by_step.update(map(_step, sent))
        self.sent_by_week.update(_week(d.at, d.at.tzinfo, d.at.fold) for d in sent)
        if costs:
            self.priced = True
            for d in sent:
                if d.channel in costs:  # a channel without a price has no cost: unknown, not 0
                    cost = costs[d.channel]
                    self.cost += cost
                    self.cost_by_channel[d.channel] += cost
        for d in decisions:
            if d.status == "failed":
                self.failed_by_channel[d.channel] += 1
                self.failures[d.reason] += 1
                if d.channel == "agent":  # its hand-off failed (--render): the task stays in `collect tasks`
                    self.tasks_by_queue[d.queue or "?"] += 1
            elif d.status == "deferred":
                self.deferrals[d.reason] += 1  # window, holiday, cap:<rule>, compliance:<profile>:<rule>
            elif d.status == "skipped":
                self.skipped[d.reason] += 1
            elif d.status == "escalated":
                self.tasks_by_queue[d.queue or "?"] += 1

    def add_variants(self, rt: Runtime, state: CustomerState, decisions) -> dict[str, list]:
        """Count the customer's units (customers or invoices, by the experiment's `unit`) and messages sent
        in each experiment's variants; a message about invoices in several variants counts once in each.
        Returns each invoice's (experiment, variant) pairs, for `add_money`."""
        if not rt.experiments or not state.invoices:
            return {}
        cells: dict[str, list] = {i: [] for i in state.invoices}
        shared = []  # the cells of customer-wide experiments: every message of the customer is in them
        for name in rt.experiments:
            if rt.experiment_units[name] == "invoice":
                for i, found in cells.items():
                    found.append(cell := (name, rt.variant(name, i)))
                    self.variants[cell + ("units",)] += 1
            else:
                shared.append(cell := (name, rt.variant(name, state.customer.id)))
                self.variants[cell + ("units",)] += 1
                for found in cells.values():
                    found.append(cell)
        per_invoice = len(shared) < len(rt.experiments)
        for d in decisions:  # messages: a holdout still gets its webhook calls (docs/language.md#experiments)
            if d.status == "sent" and d.channel != "webhook":
                for cell in {c for i in d.invoice_ids for c in cells[i]} if per_invoice else shared:
                    self.variants[cell + ("messages",)] += 1
        return cells

    def add_money(self, state: CustomerState, start: dt.datetime, end: dt.datetime, cells=None) -> None:
        """The customer's share of the KPI sums, from its state at the end of the horizon.

        The horizon is its first day to its last, counted on the customer's days (its time zone, else the
        policy's: `start`'s), as `collect report` counts them: the opening balance is before any payment
        from the first day's midnight, the closing one before any payment from the midnight that ends the
        last day, and `collected` the payments in between, so opening - closing = collected for an
        invoice open throughout; a remainder of PAID_EPSILON or less is paid. An invoice counts in the opening
        balance when it was issued before the first day, in the closing balance, `invoiced` and
        `collected` when issued before `end`'s day (no issue date: always); invoices stored as paid or
        written off do not count at all, except in CEI's `invoiced_in_horizon` (as in `collect report`:
        every invoice issued within the horizon but the written-off ones). The closing balance is aged
        by days past due on the last day. Promises are counted by `collect report`'s rule, as of the end
        of the last day. `cells` (`add_variants`): the same sums per experiment variant too."""
        first, after = start.date(), end.date()
        last = after - dt.timedelta(days=1)
        tz = ZoneInfo(state.customer.timezone) if state.customer.timezone else start.tzinfo
        start, end = dt.datetime.combine(first, dt.time(), tz), dt.datetime.combine(after, dt.time(), tz)
        start, end = start.astimezone(dt.timezone.utc), end.astimezone(dt.timezone.utc)  # as payments are kept
        for inv in state.invoices.values():
            if inv.currency:
                self.currencies.add(inv.currency)
            if inv.status != "written_off" and inv.issue_date is not None and first <= inv.issue_date < after:
                self.money["invoiced_in_horizon"] += inv.amount
            if in_dso_period(inv.issue_date, last):  # any status, as collect report counts it
                self.money["invoiced_90"] += inv.amount
            if inv.status in ("paid", "written_off"):
                continue
            if inv.issue_date is not None and inv.issue_date >= after:
                continue  # not issued yet at the end of the horizon
            paid = [p for p in state.payments if p.invoice_id == inv.id]
            before_start = sum((p.amount for p in paid if p.at < start), Decimal(0))
            before_end = sum((p.amount for p in paid if p.at < end), Decimal(0))
            collected = sum((p.amount for p in paid if start <= p.at < end), Decimal(0))
            sums = {"collected": collected}
            if inv.issue_date is None or inv.issue_date < first:
                opening = sums["opening_balance"] = _open(inv.balance - before_start)
                if opening and inv.due_date < first - dt.timedelta(days=1):  # past due the day before: recovery
                    sums["past_due_at_start"], sums["recovered"] = opening, min(collected, opening)
            closing = sums["closing_balance"] = _open(inv.balance - before_end)
            if closing:
                self.aging[bucket((last - inv.due_date).days)] += closing
            money, variants = self.money, self.variants
            for measure, amount in sums.items():  # not Counter.update: a Python call per invoice, 1.7% of a run
                money[measure] += amount
                for cell in cells[inv.id] if cells else ():
                    variants[cell + (measure,)] += amount
        if state.promises:
            for promise in state.promises:
                made, due, kept = promise_outcome(state, promise, first - dt.timedelta(days=1), last, tz)
                self.promises["made"] += made
                self.promises["due"] += due
                self.promises["kept"] += kept

    def merge(self, other: "Summary") -> None:
        for name in ("sent_by_channel", "failed_by_channel", "sent_by_step", "sent_by_week", "status", "deferrals",
                     "skipped", "failures", "tasks_by_queue", "cost_by_channel", "money", "aging", "promises",
                     "variants"):
            getattr(self, name).update(getattr(other, name))
        self.cost += other.cost
        self.priced = self.priced or other.priced
        self.currencies |= other.currencies

    def finish(self, days: int) -> None:
        """Projected KPIs over the horizon, with `collect report`'s formulas (docs/simulate.md)."""
        m = {k: self.money.get(k, Decimal(0)) for k in MONEY}
        promises = promise_totals(*(self.promises.get(k, 0) for k in ("made", "due", "kept")))
        self.kpis = {
            "opening_balance": m["opening_balance"], "closing_balance": m["closing_balance"],
            "collected": m["collected"],
            # the recovery rate's terms, which `collect report` shows as recovery.past_due_at_start and
            # recovery.collected: the report's `collected` is this `recovered`, not the one above
            "past_due_at_start": m["past_due_at_start"], "recovered": m["recovered"],
            # None, shown as n/a, when a ratio has no denominator: a 0 would read as a measured value
            "recovery_rate_pct": pct(m["recovered"], m["past_due_at_start"]),
            "dso_days": dso_days(m["closing_balance"], m["invoiced_90"]),
            "cei_pct": cei_pct(m["opening_balance"], m["invoiced_in_horizon"], m["closing_balance"],
                               self.aging.get("current", Decimal(0))),
            **{f"promises_{k}": v for k, v in promises.items()},
        }

    def variant_kpis(self, money: bool) -> dict[tuple[str, str], dict]:
        """Per (experiment, variant): its units, messages sent and messages per unit, and with `money` (a behavior
        model) collected, collected per unit and the recovery rate, by `finish`'s formulas: the variants
        differ in size, so compare the rates and the figures per unit."""
        found = {}
        for name, variant in sorted({key[:2] for key in self.variants}):
            sums = {m: v for (n, var, m), v in self.variants.items() if (n, var) == (name, variant)}
            units, sent, collected = sums.get("units", 0), sums.get("messages", 0), Decimal(sums.get("collected", 0))
            row = {"units": units, "messages": sent, "messages_per_unit": ratio(sent, units, "0.01")}
            if money:
                row |= {"collected": collected, "collected_per_unit": ratio(collected, units, "0.01"),
                        "recovery_rate_pct": pct(sums.get("recovered", 0), sums.get("past_due_at_start", 0))}
            found[name, variant] = row
        return found

    def aging_buckets(self) -> dict[str, Decimal]:
        """The closing balance by days past due on the last day (they add up to it)."""
        return {b: self.aging.get(b, Decimal(0)) for b in BUCKETS}

    def message_cost(self) -> tuple[Decimal | None, list[str]]:
        """The cost of the messages sent on priced channels, None (unknown, not 0) when some were sent and
        none of them on a priced channel; and the channels messages went on without a price (webhook
        calls are no messages)."""
        unpriced = sorted(ch for ch in self.sent_by_channel if ch not in self.cost_by_channel and ch not in NOT_CONTACTS)
        return (None if unpriced and not self.cost_by_channel else self.cost), unpriced

    def channel_kpis(self, channels=None) -> tuple[dict[str, dict], dict]:
        """Per channel, and all channels together: failed, failure rate = failed / (sent + failed), and
        with costs, cost and cost per contact = cost / sent. `channels`: which ones (default: those with
        a contact); a channel without any has its rates None (n/a)."""
        if channels is None:
            channels = sorted(set(self.sent_by_channel) | set(self.failed_by_channel))

        def kpis(sent: int, failed: int, cost: Decimal | None, priced: int | None = None) -> dict:
            """`priced`: the contacts the cost is over (the sends on priced channels), default `sent`."""
            return {"sent": sent, "failed": failed, "failure_rate_pct": failure_rate_pct(sent, failed), "cost": cost,
                    "cost_per_contact": None if cost is None else cost_per_contact(cost, sent if priced is None else priced)}
        # as `collect report`: None (n/a) where no contact has a price (no costs, or none for the channel)
        per_channel = {ch: kpis(self.sent_by_channel.get(ch, 0), self.failed_by_channel.get(ch, 0),
                                self.cost_by_channel.get(ch)) for ch in channels}
        total = self.cost if self.cost_by_channel else None
        # an unpriced channel's sends cost an unknown amount, not 0: the cost per contact is the priced ones'
        priced = sum(n for ch, n in self.sent_by_channel.items() if ch in self.cost_by_channel)
        return per_channel, kpis(sum(self.sent_by_channel.values()), sum(self.failed_by_channel.values()), total, priced)


def _open(balance: Decimal) -> Decimal:
    """An open balance: a remainder of PAID_EPSILON or less is paid, as for the decision core and the report."""
    return balance if balance > PAID_EPSILON else Decimal(0)


def summarize(result: SimResult, costs: dict | None = None, kpis: bool = False) -> Summary:
    """The summary of an in-memory simulation (the streamed one adds up the same way as it goes)."""
    s = Summary(priced=bool(costs))
    s.add(result.decisions, _decimal_costs(costs))
    by_customer: dict[str, list] = {}
    for d in result.decisions:
        by_customer.setdefault(d.customer_id, []).append(d)
    for cid, state in result.states.items():
        cells = s.add_variants(result.rt, state, by_customer.get(cid, ())) if result.rt is not None else None
        if kpis:
            s.add_money(state, result.start, result.end, cells)
    if kpis:
        s.finish((result.end - result.start).days)
    return s


def _decimal_costs(costs: dict | None) -> dict | None:
    return {k: Decimal(str(v)) for k, v in costs.items()} if costs else None


def run_simulation(plan, portfolio, *, start: dt.date, days: int, behavior: str = "none", seed: int = 0,
                   tick_minutes: int = 60, progress=None, render: bool = False, refusals=None) -> SimResult:
    """The whole simulation in memory, every decision kept: for tests and small portfolios."""
    rt, states, model = _prepare(plan, portfolio, behavior, seed)
    return simulate(rt, states, start_moment(start, rt.timezone), days, tick_s=tick_minutes * 60,
                    behavior=model, progress=progress, build=_builder(rt, None, refusals) if render else None)


def _builder(rt: Runtime, pay_link: str | None = None, refusals=None):
    from .messages import message_builder

    return message_builder(rt, pay_link, refusals)


def _prepare(plan, portfolio, behavior: str, seed: int):
    rt = Runtime(plan)
    states = states_from_portfolio(portfolio, rt, historic=behavior == "historic")
    return rt, states, _model(behavior, seed)


def _model(behavior: str, seed: int):
    from .behavior import BehaviorModel

    return None if behavior in ("none", "historic") else BehaviorModel.load(behavior, seed)


# -- the streamed simulation of the command: parallel, constant memory per customer -----------------

@dataclass
class Streamed:
    plan_hash: str
    start: dt.datetime
    end: dt.datetime
    summary: Summary
    rows: int


@dataclass
class _Job:
    """Everything a worker needs; set before the workers fork, so nothing is pickled but the results."""

    rt: Runtime
    states: PortfolioStates
    ids: list
    start: dt.datetime
    end: dt.datetime
    days: int
    tick_s: int
    behavior: object
    costs: dict | None
    fmt: str | None
    folder: str | None
    build: object = None  # --render: messages.message_builder


_JOB: _Job | None = None
CHUNK = 2000  # customers per unit of work: progress granularity, and what a worker holds at a time


def _run_chunk(index: int) -> tuple[Summary, str | None, int]:
    job = _JOB
    summary, part, rows = Summary(), None, 0
    handle = None
    if job.folder is not None:
        part = str(Path(job.folder) / f"part-{index:06d}")
        handle = open(part, "w", encoding="utf-8", newline="")
    try:
        writer = ContactWriter(handle, job.fmt, job.rt.plan_hash) if handle else None
        for cid in job.ids[index * CHUNK:(index + 1) * CHUNK]:
            state = job.states.state(cid)  # built now, dropped after: memory does not grow with customers
            first, end = customer_horizon(job.rt, state, job.start, job.days, job.tick_s)
            decisions = run_customer(job.rt, state, first, end, job.tick_s, job.behavior, build=job.build)
            summary.add(decisions, job.costs)
            summary.add_money(state, job.start, job.end, summary.add_variants(job.rt, state, decisions))
            if writer is not None:
                writer.write(decisions)
                rows = writer.rows
    finally:
        if handle is not None:
            handle.close()
    return summary, part, rows


def stream_simulation(plan, portfolio, *, start: dt.date, days: int, behavior: str = "none", seed: int = 0,
                      tick_minutes: int = 60, costs: dict | None = None, out: Path | None = None,
                      workers: int | None = None, progress=None, render: bool = False,
                      pay_link: str | None = None, refusals=None) -> Streamed:
    """`collect simulate`: every customer's horizon, in parallel worker processes where the machine has
    several cores; the contacts go straight to `out` (grouped by customer, in time order), written whole
    or not at all, and the summary is added up as customers finish. `render`: build every message, as
    `collect run` does (messages.message_builder), and fail on its channel what the adapters of
    `refusals` (channels.load_refusals) would refuse without calling anyone."""
    global _JOB
    import tempfile

    from .files import replace_atomic

    rt = Runtime(plan)
    states, model = PortfolioStates(portfolio, rt, historic=behavior == "historic"), _model(behavior, seed)
    ids = states.ids()
    begin = start_moment(start, rt.timezone)
    end = begin + dt.timedelta(days=days)
    fmt = out.suffix[1:] if out is not None else None
    with tempfile.TemporaryDirectory(prefix=".collect-sim-", dir=out.parent if out else None) as folder:
        _JOB = _Job(rt, states, ids, begin, end, days, tick_minutes * 60, model,
                    _decimal_costs(costs), fmt, folder if out is not None else None,
                    _builder(rt, pay_link, refusals) if render else None)
        try:
            chunks = range(-(-len(ids) // CHUNK))
            total, rows = Summary(priced=bool(costs)), 0  # priced also when no customer adds a contact
            target = Path(folder) / "contacts"
            with open(target, "w", encoding="utf-8", newline="") as merged, _pool(workers, len(ids)) as pool:
                merged.write(_header(fmt) if fmt else "")
                for done, (summary, part, count) in enumerate(pool(_run_chunk, chunks), start=1):
                    total.merge(summary)
                    rows += count
                    if part is not None:
                        with open(part, encoding="utf-8", newline="") as piece:
                            shutil.copyfileobj(piece, merged)
                        os.unlink(part)
                    if progress is not None:
                        progress(min(done * CHUNK, len(ids)), len(ids))
        finally:
            _JOB = None
        total.finish(days)
        if out is not None:
            replace_atomic(target, out)
    return Streamed(rt.plan_hash, begin, end, total, rows)


@contextlib.contextmanager
def _pool(workers: int | None, customers: int):
    """An ordered map over worker processes (fork: they inherit the job), or in this process when
    one worker is enough or the platform cannot fork."""
    import multiprocessing

    if workers is None:
        workers = min(os.cpu_count() or 1, 1 + customers // (4 * CHUNK))
    if workers <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        yield map
        return
    import gc

    gc.freeze()  # the portfolio is shared with the workers: their garbage collector must not copy it
    try:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            yield lambda fn, items: pool.imap(fn, items)
    finally:
        gc.unfreeze()


def load_portfolio(plan, portfolio: Path, *, customers=None, payments=None, promises=None, disputes=None,
                   colmap=None):
    """Read every portfolio file, typed by the plan's `fields:`; raises CsvError with every bad row."""
    from .portfolio import load_map, read_portfolio

    return read_portfolio(portfolio, customers, payments, promises, disputes, fields=dict(plan["fields"]),
                          default_timezone=plan["timezone"], default_currency=plan["currency"],
                          colmap=load_map(colmap) if colmap else None)

"""`collect simulate`: the decision core on a virtual clock over an in-memory portfolio.

The clock ticks like cron does in production (every `tick`, hourly by default) but only where something
can happen: each customer sits in a priority queue at the next tick at or after the moment the core said
to look again, so a quiet invoice costs nothing between its steps. Because `collect run` calls the same
core at its own ticks, a simulation with the same tick predicts what production sends.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import lru_cache
from zoneinfo import ZoneInfo

from .decide import Decision, Outcome, apply, decide, recorded, reopen
from .runtime import Runtime
from .state import CustomerState

UTC = dt.timezone.utc


@dataclass
class SimResult:
    plan_hash: str
    start: dt.datetime
    end: dt.datetime
    decisions: list[Decision] = field(default_factory=list)
    states: dict[str, CustomerState] = field(default_factory=dict)
    payments: list = field(default_factory=list)  # payments the behavior model added (for the KPIs)
    rt: Runtime | None = field(default=None, repr=False, compare=False)  # the experiments' assignment


def ceil_tick(moment: dt.datetime, tick_s: int) -> dt.datetime:
    """The first tick at or after `moment`; ticks are aligned on multiples of `tick_s` since the epoch."""
    return _tick(_ceil_ts(moment, tick_s))


def _ceil_ts(moment: dt.datetime, tick_s: int) -> int:
    return -(-int(moment.timestamp()) // tick_s) * tick_s


@lru_cache(maxsize=1 << 16)
def _tick(ts: int) -> dt.datetime:
    """The instant `ts` seconds after the epoch, in UTC: one object for every customer decided at that
    tick, so that its hash, which the core's caches ask for, is worked out once."""
    return dt.datetime.fromtimestamp(ts, UTC)


def simulate(rt: Runtime, states: dict[str, CustomerState], start: dt.datetime, days: int, *,
             tick_s: int = 3600, behavior=None, progress=None, build=None) -> SimResult:
    """Run every customer for `days` from the midnight of `start`'s day in its own time zone
    (`customer_horizon`); `states` are updated in place.

    Customers never affect one another (caps, promises and behavior draws are per customer), so each
    one's whole horizon is run before the next: no global queue, and the decisions come grouped by
    customer (in id order), in time order within each customer."""
    end = start + dt.timedelta(days=days)
    result = SimResult(rt.plan_hash, start, end, states=states, rt=rt)
    for done, cid in enumerate(sorted(states), start=1):
        first, last = customer_horizon(rt, states[cid], start, days, tick_s)
        result.decisions += run_customer(rt, states[cid], first, last, tick_s, behavior, result.payments, build)
        if progress is not None and (done % 1000 == 0 or done == len(states)):
            progress(done, len(states))
    return result


def run_customer(rt: Runtime, state: CustomerState, now: dt.datetime, end: dt.datetime, tick_s: int,
                 behavior=None, payments: list | None = None, build=None) -> list[Decision]:
    """One customer's decisions from the tick `now` until `end`: the core at every tick where it said
    something may be due (a wake between ticks is taken at the next tick, as cron would). `build`
    (`--render`): `(decision, state) -> None, or why its message cannot be built`, asked of every send
    with a template, as `collect run` builds each message before it delivers it."""
    decisions: list[Decision] = []
    end = end.astimezone(UTC)  # `now` is UTC: instants of one zone compare without asking the zone's offset
    ts = int(now.timestamp())  # the clock counts in whole seconds since the epoch, as ticks are aligned
    if _tick(ts) != now:
        raise ValueError(f"the simulation's clock starts at a whole second, not at {now}")
    now = _tick(ts)
    while now < end:
        outcome = decide(rt, state, now)
        unbuilt_now = unbuilt(outcome, state, build) if build is not None else ()
        # the customer reacts to contacts as they were when sent: its segments before this tick's sends
        caused = behavior.react(rt, state, outcome.decisions, now) if behavior is not None else ()
        settle(state, outcome, unbuilt_now)
        decisions += outcome.decisions
        wake = outcome.wake
        if behavior is not None:
            for payment in caused:
                state.payments.append(payment)
                if payments is not None:
                    payments.append(payment)
                wake = payment.at if wake is None else min(wake, payment.at)
            if caused:
                state.payments.sort(key=lambda p: p.at)
        if unbuilt_now:  # the store makes the customer due again at once: the same tick falls back
            continue
        if wake is None:
            break
        # `now` is a tick, so the next one is the first tick after it unless the wake is later
        ts = ts + tick_s if wake <= _tick(ts + tick_s) else _ceil_ts(wake, tick_s)
        now = _tick(ts)
    return decisions


def settle(state: CustomerState, outcome: Outcome, unbuilt_now) -> None:
    """Record an outcome in the state; the sends whose message could not be built (`unbuilt`) reopened,
    as the store reopens them, so that deciding again at once falls back to their next channel."""
    apply(state, outcome)
    for d, reason in unbuilt_now:
        reopen(state, d.keys, d.channel, reason)


def unbuilt(outcome: Outcome, state: CustomerState, build) -> list[tuple[Decision, str]]:
    """The sends of the outcome whose message cannot be built or would be refused, each turned into the
    contact `collect run` records for it (failed on its channel, why as its reason, settling nothing); with
    the reasons. An agent task whose hand-off would fail is recorded failed too, without falling back. The
    other decisions are as the history keeps them (`recorded`)."""
    failed = []
    for n, d in enumerate(outcome.decisions):
        d = outcome.decisions[n] = recorded(d)
        # a task is built with its own text, not its step's template (as `collect run` builds it)
        if d.status == "escalated" and (reason := build(d._replace(template=None), state)) is not None:
            # the hand-off to the agents' system fails (no `agent` in channels.yaml): run keeps the task in
            # `collect tasks` and its step done as escalated (it reopens no step for a task)
            apply(state, Outcome([d]))
            outcome.decisions[n] = d._replace(status="failed", reason=reason, keys=())
        # a message with a template can fail to build or be refused; a webhook without a configured
        # channel stops `collect run` before its first tick (Channels.check_plan)
        elif d.status == "sent" and d.template and (reason := build(d, state)) is not None:
            outcome.decisions[n] = d._replace(status="failed", reason=reason, keys=(), fallbacks=())
            failed.append((d, reason))
    return failed


def customer_horizon(rt: Runtime, state: CustomerState, start: dt.datetime, days: int,
                     tick_s: int) -> tuple[dt.datetime, dt.datetime]:
    """The first tick and the end of the horizon on the customer's days: from the midnight that starts
    `start`'s day in the customer's time zone (else the policy's) to the one `days` days later. Every
    time is the customer's (SPEC 4.1), and so are the KPIs' days (docs/simulate.md): a clock stopped at
    the policy's midnight would leave out the evening of the last day west of it and add a day east."""
    tz = ZoneInfo(state.customer.timezone or rt.timezone)
    begin = dt.datetime.combine(start.date(), dt.time(), tz)
    return ceil_tick(begin, tick_s), begin + dt.timedelta(days=days)  # wall-clock days: DST-proof


def start_moment(date: dt.date, timezone: str) -> dt.datetime:
    """A simulation day starts at local midnight of the policy's time zone."""
    return dt.datetime.combine(date, dt.time(), ZoneInfo(timezone))

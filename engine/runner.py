"""`collect run`: one tick of production, exactly once, on the decision core of the simulator.

A tick claims the customers whose `next_action_at` has come (NULL: never decided, e.g. just imported),
in batches. For each batch, in ONE transaction: the core decides, and the decisions are written —
contact rows with unique keys (sends as `sending`), the step memory, agent tasks, the next action
time. Only after that commit are the adapters called, with the contact key as idempotency key, and
the outcome recorded (engine/delivery.py: retries across ticks, fallback to the next channel through
the decision core). A crash between the two leaves `sending` rows, which the next tick delivers again
through the (idempotent) adapter: nothing lost, nothing twice. A contact key already stored is never
written or delivered again. A late delivery (a retry, a crash recovery) first asks the decision core
whether the contact may still go: an opt-out, do_not_contact or a payment since withdraws it, and its
window, the caps and the law at that moment may hold it for later (decide.held_now).
When the plan changed since the last tick, every customer is decided again: their wake times were
worked out under the old plan.

Concurrency: on SQLite every batch runs in a BEGIN IMMEDIATE transaction, so overlapping ticks take
turns and the second finds the customers already moved forward. On PostgreSQL batches are claimed with
FOR UPDATE SKIP LOCKED, so several workers share one portfolio. Recovery:
a `sending` row belongs to the tick that wrote it; another tick delivers it only when that tick is
over: finished (a tick that failed is marked finished too, as `collect serve` lives on after it) or
dead (PostgreSQL: its session advisory lock is free; SQLite: the lock on its file `DB.tick-ID.lock` is
free), taking it over with an atomic UPDATE, so a slow tick and a recovering one never both deliver a
message.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import select as os_select  # sqlalchemy.select is `select` here
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

try:
    import fcntl  # file locks tell a live SQLite tick from a dead one
except ImportError:  # Windows: the tick's process id tells, on one machine
    fcntl = None

from sqlalchemy import bindparam, func, or_, select, text, tuple_, update
from sqlalchemy.engine import Connection, Engine

from ..adapters.base import thawed
from . import store as s
from .channels import EXAMPLE_PAY_LINK
from .decide import CADENCE_REASONS, Decision, Outcome, decide, held_now, recorded, to_float
from .decide import withdrawn as decide_withdrawn
from .delivery import (NOT_PROVIDERS, REOPENED, RETRY_NOTE, Delivery, deliver_all, failure_lines, keep_messages,
                       record, render_lines, reopen)
from .runtime import Runtime
from .state import SentContact
from .storeio import _insert_new, _upsert, load_states

NEVER = dt.datetime(9999, 1, 1, tzinfo=dt.timezone.utc)  # next_action_at of a customer with nothing ahead
ADVISORY_KEY = 7_240_113  # first half of the advisory lock id (tick id second) held by a live tick
RECOVER_CHUNK = 500  # `sending` rows taken over per statement (a statement may name ~32k values on SQLite)
OVERDUE_AFTER = 60  # seconds into a tick after which a contact is checked again at its turn to be sent
# How often a PostgreSQL tick looks at its lock's session while it runs: the look keeps the session from
# idling out (`idle_session_timeout`), and finds within this long a session the server dropped
HEARTBEAT_S = 1.0


class TickLost(RuntimeError):
    """A PostgreSQL tick whose advisory lock went with its session (dropped by the server, a pooler, the
    network): other ticks now take it for dead and deliver its `sending` rows, so it must send no more."""


class TickBeforeLast(ValueError):
    """A tick asked to run at a moment before the store's last tick. The store already holds what was
    decided later, and a customer touched by an import since would be decided at the earlier moment:
    messages meant for back then (a reminder before the due date) would go out now."""

    def __init__(self, now: dt.datetime, last: dt.datetime):
        super().__init__(f"--now {now.isoformat()} is before the store's last tick, at {last.isoformat()}: a tick "
                         "cannot go back in time (to see what would have happened then, use collect simulate, or "
                         "collect explain --now)")


def _not_before_last(conn: Connection, now: dt.datetime) -> None:
    last = conn.execute(select(func.max(s.ticks.c.now))).scalar()
    if last is not None and now < last:
        raise TickBeforeLast(now, last)


def plan_changed(conn: Connection, plan_hash: str) -> bool:
    """Did the last tick run another plan (the policy file changed since)? Then every customer is due:
    the wake times were worked out under the old plan."""
    last = conn.execute(select(s.ticks.c.plan_hash).order_by(s.ticks.c.id.desc()).limit(1)).scalar()
    return last is not None and last != plan_hash


def gone_steps(engine: Engine, plan) -> list[str]:
    """The steps this policy's earlier plans decided that the plan no longer has, when the plan changed
    since the last tick: a step is known by its id, so one moved under a new id is a new step, and goes
    again to the invoices that got the old one."""
    with engine.connect() as conn:
        if not plan_changed(conn, plan.plan_hash):
            return []
        c = s.contacts.c
        stored = conn.execute(select(c.step).where(c.policy == plan["policy"], c.step.is_not(None)).distinct())
        ours = {step["id"] for step in plan.steps()}
        return sorted(set(stored.scalars()) - ours)


def _always_alive() -> None:
    """An SQLite tick's file lock lives as long as its process: it cannot lose it and live on."""


class _Liveness:
    """The session that holds a PostgreSQL tick's advisory lock. Unused for the whole tick, it could be
    ended by the server (`idle_session_timeout`), and its lock with it: another tick would then take over
    the rows this one is still sending, and both would send them. So a thread looks at the lock every
    HEARTBEAT_S, which keeps the session busy; and before each message `before_send` looks at the
    session's socket, where the server's word that it ended the session (or the connection's end) arrives
    unasked, without a round trip, asking the server only when something came. The lock is freed only when
    the session ends, and the socket hears of that before another tick can take the rows over: at most
    the message each channel has in flight goes twice, as after a crash. From then on TickLost."""

    HELD = text("SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
                " AND pid = pg_backend_pid() AND classid = :a AND objid = :b AND objsubid = 2)")

    def __init__(self, conn: Connection, tick_id: int):
        self.conn, self.tick_id, self.lost = conn, tick_id, ""
        self._mutex, self._stop = threading.Lock(), threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"tick-{tick_id}-alive", daemon=True)

    def __enter__(self) -> "_Liveness":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S) and not self.lost:
            with contextlib.suppress(TickLost):
                self.check(ask=True)

    def before_send(self) -> None:
        self.check(ask=False)

    def check(self, ask: bool) -> None:
        """Raise TickLost once the lock is gone; `ask` the server, else only when its socket has news."""
        with self._mutex:  # the beat's thread and the channels' threads share the one connection
            if not self.lost and (ask or self._news()):
                try:
                    held = self.conn.execute(self.HELD, {"a": ADVISORY_KEY, "b": self.tick_id}).scalar()
                    why = "" if held else "the lock is no longer held"
                except Exception as exc:  # noqa: BLE001 - whatever ended the session ended the lock
                    from .store import one_line

                    why = one_line(exc)
                if why:
                    self.lost = (f"tick {self.tick_id} lost the session that holds its lock in the store ({why}); "
                                 "it stopped sending, and the next tick delivers what it had not sent")
        if self.lost:
            raise TickLost(self.lost)

    def _news(self) -> bool:
        """Has the idle session's socket something to read (the server sends nothing unasked but its end)?"""
        try:
            readable, _, _ = os_select.select([self.conn.connection.dbapi_connection.fileno()], [], [], 0)
        except (OSError, ValueError, AttributeError):  # closed already
            return True
        return bool(readable)

    def release(self) -> None:
        """Let the lock go. A session dropped since the last look took the lock with it: the tick's work
        is done and stored, so that is no failure."""
        self._stop.set()
        self._thread.join()
        with self._mutex, contextlib.suppress(Exception):
            self.conn.execute(text("SELECT pg_advisory_unlock(:a, :b)"), {"a": ADVISORY_KEY, "b": self.tick_id})


class _Outcomes:
    """The connection a delivery stores its outcomes on, one transaction each. It sits idle while the
    providers answer; a server that ends idle sessions (`idle_session_timeout`) may end it meanwhile, and
    the outcome is then written on a new one (nothing of it was committed)."""

    def __init__(self, engine: Engine):
        self.engine, self.conn = engine, None

    def __enter__(self) -> "_Outcomes":
        return self

    def __exit__(self, *exc) -> None:
        if self.conn is not None:
            self.conn.close()

    def write(self, work) -> None:
        from sqlalchemy.exc import DBAPIError

        for last_try in (False, True):
            if self.conn is None:
                self.conn = self.engine.connect()
            try:
                with self.conn.begin():
                    work(self.conn)
                return
            except DBAPIError as exc:
                if last_try or not exc.connection_invalidated:
                    raise
                self.conn.close()
                self.conn = None


def _lock_path(engine: Engine, tick_id: int) -> Path | None:
    """The lock file a live SQLite tick holds (None: an in-memory database, or no file locks here)."""
    database = engine.url.database
    if fcntl is None or not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(f"{database}.tick-{tick_id}.lock")


@contextlib.contextmanager
def _tick_lock(path: Path | None):
    if path is None:
        yield
        return
    fresh = path.with_name(f"{path.name}.{os.getpid()}.new")
    with open(fresh, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        os.replace(fresh, path)  # locked before it has its name: a file at `path` is never free but dead
        # A tick that fails keeps its file (unlocked once closed): it may own `sending` rows, and if its
        # end cannot be recorded either, the free lock is what tells the next tick it is dead (the next
        # tick removes it once it has taken the rows over). A tick that ends well owns none, and removes
        # it while still holding the lock.
        yield
        path.unlink(missing_ok=True)


def _sweep_lock_files(engine: Engine, own: int) -> None:
    """Remove the lock files of dead ticks (after recovery): a free lock is a dead tick, as a live one
    holds its lock from before the file has its name. The store records first that the tick is over:
    the file is what told, and a tick that died while taking over a dead tick's rows leaves some of them
    to that tick still, which a later tick must see is dead without the file."""
    path = _lock_path(engine, own)
    if path is None:
        return
    for other in path.parent.glob(f"{path.name.rsplit('.tick-', 1)[0]}.tick-*.lock"):
        tick = other.name.rsplit(".tick-", 1)[1].removesuffix(".lock")
        if other == path or not tick.isdigit() or _lock_held(other) is not False:
            continue
        with engine.begin() as conn:
            conn.execute(update(s.ticks).where(s.ticks.c.id == int(tick), s.ticks.c.finished_at.is_(None))
                         .values(finished_at=dt.datetime.now(dt.timezone.utc)))
        other.unlink(missing_ok=True)


def _lock_held(path: Path | None) -> bool | None:
    """Does a live process hold this tick's lock file? None: there is no such file to ask."""
    if path is None:
        return None
    try:
        handle = open(path, "r")
    except FileNotFoundError:
        return None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        return False  # the tick died holding it: the file stays, to tell so, until _sweep_lock_files


def _due(now: dt.datetime):
    """The customers a tick at `now` decides: never decided, or their wake has come."""
    return or_(s.customers.c.next_action_at.is_(None), s.customers.c.next_action_at <= now)


def next_look(conn: Connection, customer_id: str, plan_hash: str, now: dt.datetime) -> dt.datetime | None:
    """When a tick next decides for this customer, if a tick at `now` would not (None: it would)."""
    wake = conn.execute(select(s.customers.c.next_action_at).where(s.customers.c.id == customer_id)).scalar()
    return wake if wake is not None and wake > now and not plan_changed(conn, plan_hash) else None


def _steps_of(row, rt: Runtime) -> tuple[str, ...]:
    """The step instances a stored contact settles. A row written before the store kept them (schema
    revision 0002) names them by its step and invoices: STEP|INVOICE for a stage step; an event step's
    instance also names its occurrence, which such a row does not keep, so none is known."""
    if row.steps is not None:
        return tuple(row.steps)
    step = rt.steps.get(row.step)
    if step is None or step.owner in rt.events:
        return ()
    return tuple(f"{row.step}|{invoice}" for invoice in row.invoice_ids.split(";"))


def _decided_reason(row) -> str:
    """The decision's reason of a stored contact (of a `sent` one: why it waited first). A row written
    before the store kept it (schema revision 0004) has it in `reason` until a retry's note replaced it."""
    if row.decided_reason is not None:
        return row.decided_reason
    return "" if (row.reason or "").startswith(RETRY_NOTE) else row.reason or ""


def _goes_now(state, row, now: dt.datetime) -> None:
    """A waiting contact released now counts for the customer's caps and laws at `now`, not at its
    decision: the rows that come after it in this tick must see it (two held up by an outage would
    otherwise both go, breaking a once-a-day rule). Agent tasks and webhooks are no contacts."""
    if row.channel in ("", "webhook", "agent"):
        return
    ids = tuple(row.invoice_ids.split(";"))
    decided = SentContact(row.at.astimezone(dt.timezone.utc), row.channel, ids)
    if decided in state.sent:
        state.sent.remove(decided)
    state.sent.append(SentContact(now.astimezone(dt.timezone.utc), row.channel, ids))
    state.sent.sort(key=lambda c: c.at)  # caps read it in time order


@dataclass
class TickSummary:
    customers: int = 0
    statuses: Counter = field(default_factory=Counter)
    by_channel: Counter = field(default_factory=Counter)
    provider_failures: list[str] = field(default_factory=list)
    # customers the core could not decide for; messages whose template could not be rendered
    errors: list[str] = field(default_factory=list)
    delivery: Counter = field(default_factory=Counter)  # outcomes of the provider calls: sent, retry, failed ...
    # channels whose provider refused the account (credentials, a locked account) or rate-limits the sender
    # this tick: not tried again in this tick, whichever delivery (recovered rows, new decisions) comes
    # next; channel -> the outcome that stopped it
    stopped: dict = field(default_factory=dict)
    failing: dict = field(default_factory=dict)  # channel -> transient failures in a row (the breaker), for the tick
    decisions: list[Decision] = field(default_factory=list)
    # customers counted: one decided again (a channel failed for good, the tick fell back at once) is one
    seen: set = field(default_factory=set, init=False, repr=False, compare=False)

    def decided(self, outcome: Outcome, customer_id: str) -> None:
        if customer_id not in self.seen:
            self.seen.add(customer_id)
            self.customers += 1
        for d in outcome.decisions:
            self.statuses[d.status] += 1
            self.decisions.append(d)


@dataclass
class _Batch:
    """Rows decided for one batch of customers, written together."""

    contacts: list = field(default_factory=list)
    done: list = field(default_factory=list)
    pending: list = field(default_factory=list)
    tasks: list = field(default_factory=list)
    stopped: list = field(default_factory=list)
    wakes: list = field(default_factory=list)
    sends: list = field(default_factory=list)

    def write(self, conn: Connection) -> list:
        """Write the rows; returns the sends to deliver. A contact whose key is stored already was made
        before (exactly once is by key, whatever the step memory says, e.g. after an invoice moved to
        another customer): it is neither written again nor delivered."""
        keys = [c["key"] for c in self.contacts]
        made = set(conn.execute(select(s.contacts.c.key).where(s.contacts.c.key.in_(keys))).scalars()) if keys else set()
        _insert_new(conn, s.contacts, self.contacts, ["key"])
        _insert_new(conn, s.steps, self.pending, ["key"])  # a deferral never overwrites a settled step
        if self.pending:  # but it says why a step reopened by a failed channel now waits (decide._defer)
            step = s.steps.c
            conn.execute(update(s.steps).where(step.key == bindparam("k"), step.state == "pending",
                                               step.status.startswith(REOPENED)).values(status=bindparam("why")),
                         [{"k": r["key"], "why": r["status"]} for r in self.pending])
        _upsert(conn, s.steps, self.done, ["key"])
        _insert_new(conn, s.agent_tasks, self.tasks, ["contact_key"])
        _insert_new(conn, s.stopped, self.stopped, ["invoice_id"])
        if self.wakes:
            conn.execute(update(s.customers).where(s.customers.c.id == bindparam("cid"))
                         .values(next_action_at=bindparam("wake")), self.wakes)
        return [d for d in self.sends if d.key not in made]


class Runner:
    def __init__(self, engine: Engine, plan, channels, *, batch: int = 500, pay_link: str | None = None):
        s.immediate(engine)
        self.engine, self.plan, self.channels = engine, plan, channels
        self.rt = Runtime(plan)
        self.batch = batch
        self._clock = time.monotonic  # seconds since the tick began (a test may drive it)
        self._now, self._started = None, 0.0
        self.pay_link = pay_link or EXAMPLE_PAY_LINK
        self._unfinished: dict[int, dt.datetime] = {}  # ticks whose finished_at the store did not take then
        self._check_alive = _always_alive  # raises TickLost once this tick's lock is gone (`_alive`)

    # -- the tick -----------------------------------------------------------------------------------

    def tick(self, now: dt.datetime, dry_run: bool = False) -> TickSummary:
        summary = TickSummary()
        if dry_run:
            return self._dry_run(now, summary)
        self._now, self._started = now, self._clock()  # the tick's timeline, for `_overdue`
        started = dt.datetime.now(dt.timezone.utc)
        with self.engine.begin() as conn:
            _not_before_last(conn, now)
            changed = plan_changed(conn, self.rt.plan_hash)
            tick_id = conn.execute(s.ticks.insert().values(
                now=now, started_at=started, plan_hash=self.rt.plan_hash, host=socket.gethostname(),
                pid=os.getpid())).inserted_primary_key[0]
            if changed:  # the wake times were worked out under another plan: decide everyone again
                conn.execute(update(s.customers).values(next_action_at=None))
        self.tick_id = tick_id
        try:
            self._finish_earlier()
            with self._alive(tick_id):
                self._recover(now, summary)
                _sweep_lock_files(self.engine, tick_id)
                while True:
                    self._check_alive()  # a tick that lost its lock decides nothing more either
                    with self.engine.begin() as conn:
                        ids = self._claim(conn, now)
                        if not ids:
                            break
                        sends = self._decide_and_record(conn, ids, now, summary)
                    self._deliver(sends, summary, now)
        except BaseException:
            # A failed tick is finished too: in `collect serve` its pid (the service's) stays alive, so
            # without finished_at no later tick would take over the `sending` rows it leaves
            self._finish(tick_id, summary, failed=True)
            raise
        self._finish(tick_id, summary)
        return summary

    def _finish(self, tick_id: int, summary: TickSummary, failed: bool = False) -> None:
        """Record the end of a tick. When the store does not take it (it may be what made the tick
        fail), this Runner's next tick marks it finished; after a failure the original error is the one
        raised, not this one."""
        values = {"finished_at": dt.datetime.now(dt.timezone.utc), "customers": summary.customers,
                  "decisions": sum(summary.statuses.values()), "sent": summary.statuses["sent"],
                  "failed": summary.statuses["failed"]}
        try:
            with self.engine.begin() as conn:
                conn.execute(update(s.ticks).where(s.ticks.c.id == tick_id).values(**values))
        except Exception:
            self._unfinished[tick_id] = values["finished_at"]
            if not failed:
                raise

    def _finish_earlier(self) -> None:
        """Mark finished this Runner's earlier ticks whose end the store did not take then."""
        if not self._unfinished:
            return
        with self.engine.begin() as conn:
            for tick_id, finished in self._unfinished.items():
                conn.execute(update(s.ticks).where(s.ticks.c.id == tick_id).values(finished_at=finished))
        self._unfinished.clear()

    def _claim(self, conn: Connection, now: dt.datetime) -> list[str]:
        query = select(s.customers.c.id).where(_due(now)).order_by(s.customers.c.id).limit(self.batch)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        return [r.id for r in conn.execute(query)]

    def _decide_and_record(self, conn: Connection, ids: list[str], now: dt.datetime, summary: TickSummary) -> list:
        """Decide for a batch of customers and write everything in the caller's transaction, a few
        statements per batch (not per customer)."""
        states = load_states(conn, ids, dict(self.plan["fields"]))
        batch = _Batch()
        for cid in ids:
            state = states[cid]
            outcome = self._decide(state, now, summary)
            if outcome is None:  # looked at again at the next tick
                batch.wakes.append({"cid": cid, "wake": now + dt.timedelta(seconds=1)})
                continue
            self._record(batch, state, outcome, now)
            wake = outcome.wake if outcome.wake is not None else NEVER
            batch.wakes.append({"cid": cid, "wake": max(wake, now + dt.timedelta(seconds=1))})
            summary.decided(outcome, cid)
        return batch.write(conn)

    def _decide(self, state, now: dt.datetime, summary: TickSummary) -> Outcome | None:
        """The core's outcome for a customer; None, with an error in the summary, when deciding fails on
        its data (say, a date the calendar cannot reach): one customer must not stop everyone's tick."""
        try:
            return decide(self.rt, state, now)
        except Exception as exc:  # noqa: BLE001 - the core is pure: whatever it raises is about this customer
            summary.errors.append(f"customer {state.customer.id}: deciding failed ({type(exc).__name__}: {exc}); "
                                  "nothing was decided for it, and the next tick tries again")
            return None

    def _record(self, batch: "_Batch", state, outcome: Outcome, now: dt.datetime) -> None:
        """The same bookkeeping as decide.apply, as rows for the store."""
        tz = state.customer.timezone or self.rt.timezone
        updated = dt.datetime.now(dt.timezone.utc)
        for key in outcome.silent:
            batch.done.append({"key": key, "customer_id": state.customer.id, "state": "done", "status": "not applicable"})
        for d in outcome.decisions:
            d = recorded(d)
            # an agent task goes out on the `agent` channel too (channels.yaml maps it to a CRM's webhook;
            # without channels.yaml, to outbox/agent.jsonl): its row is `escalated` once handed off
            to_deliver = (d.status == "sent" and d.channel not in ("", "agent")) or d.status == "escalated"
            priority = None if d.priority is None else str(d.priority)
            batch.contacts.append({
                "key": d.contact_key, "policy": self.plan["policy"], "plan_hash": self.rt.plan_hash,
                "customer_id": d.customer_id, "invoice_ids": ";".join(d.invoice_ids), "stage": d.stage, "step": d.step,
                "channel": d.channel, "template": d.template, "status": "sending" if to_deliver else d.status,
                "reason": d.reason, "decided_reason": d.reason, "attempts": 0, "at": d.at, "tz": tz,
                "fallbacks": list(d.fallbacks),
                "queue": d.queue, "priority": priority, "webhook": d.webhook, "tick_id": self.tick_id,
                "updated_at": updated, "steps": list(d.keys)})
            for key in d.keys:
                target = batch.pending if d.status == "deferred" else batch.done
                target.append({"key": key, "customer_id": d.customer_id, "state": "pending" if d.status == "deferred"
                               else "done", "status": d.reason if d.status == "deferred" else d.status})
            if d.status == "escalated":
                batch.tasks.append({"contact_key": d.contact_key, "queue": d.queue or "collections", "priority": priority,
                                    "customer_id": d.customer_id, "invoice_ids": ";".join(d.invoice_ids), "step": d.step,
                                    "reason": d.reason, "created_at": now, "status": "open"})
            if d.status == "skipped" and d.reason == "stopped by step":
                batch.stopped += [{"invoice_id": i, "customer_id": d.customer_id} for i in d.invoice_ids]
            if to_deliver and d.status == "escalated":  # a failed hand-off leaves the task queued: no step to reopen
                batch.sends.append(self._delivery(d.contact_key, d.channel, d.customer_id, (), 0,
                                                  d._replace(template=None), state))
            elif to_deliver:
                batch.sends.append(self._delivery(d.contact_key, d.channel, d.customer_id, d.keys, 0, d, state))

    # -- delivery -----------------------------------------------------------------------------------

    def _deliver(self, deliveries: list[Delivery], summary: TickSummary, now: dt.datetime) -> None:
        lock, failed, later = threading.Lock(), [], []
        store = _Outcomes(self.engine)

        def keep(result) -> None:
            """Each outcome as it comes, so that a crash later in the tick sends none of them again; for a
            channel whose receiver drops a key it has had, at the end, together (one transaction)."""
            with lock:  # one connection for the channels' threads, one short transaction per outcome
                if getattr(self.channels(result.delivery.channel), "dedupes", False):
                    later.append(result)
                    return
                try:
                    store.write(lambda conn: record(conn, [result], self.channels, now, self.tick_id))
                except Exception as exc:
                    failed.append(exc)
                    raise

        def built(messages) -> None:  # before any is sent: a deduping receiver's retry is the same bytes
            kept = [(d, m) for d, m in messages if getattr(self.channels(d.channel), "dedupes", False)]
            if kept:
                store.write(lambda conn: keep_messages(conn, kept, self.tick_id))
        try:
            with store:
                results = deliver_all(deliveries, self.channels, keep, summary.stopped, summary.failing,
                                      self._check_alive, built)
                later = self._synced(later, summary)
                store.write(lambda conn: record(conn, later, self.channels, now, self.tick_id))
        except Exception:
            if failed:
                raise failed[0] from None  # the first store failure is the cause, not what followed it
            raise
        for r in results:
            if r.status == "sent":
                summary.by_channel[r.delivery.channel] += 1
            if r.status == "held":  # as a late contact held by `_hold`: no provider outcome
                summary.statuses["held"] += 1
                if not r.delivery.late:  # decided in this tick as sent: it is held instead
                    summary.statuses["sent"] -= 1
                    summary.statuses = +summary.statuses  # no "0 sent"
                continue
            # a template that could not be rendered, a channel left out: no provider was asked
            summary.delivery[NOT_PROVIDERS.get(r.error_code, r.status)] += 1
        # a line per failed message; one per channel stopped by an account-level refusal, not one per
        # message it left waiting
        summary.provider_failures.extend(failure_lines(results))
        summary.errors.extend(render_lines(results))

    def _synced(self, results: list, summary: TickSummary) -> list:
        """The outcomes of the channels whose receiver drops a key it has had, once what they wrote is on
        disk (`sync`): the store must not say sent before. A channel that cannot sync keeps its contacts
        `sending`, unrecorded; the next tick takes them over and its receiver drops what it has already."""
        kept = []
        for channel in sorted({r.delivery.channel for r in results}):
            try:
                getattr(self.channels(channel), "sync", lambda: None)()
            except OSError as exc:
                summary.provider_failures.append(f"channel {channel}: what it wrote could not be put on disk "
                                                 f"({exc}); its messages are recorded by the next tick")
                continue
            kept += [r for r in results if r.delivery.channel == channel]
        return kept

    def _delivery(self, key: str, channel: str, customer_id: str, steps, attempts: int, decision: Decision,
                  state, late: bool = False, kept: dict | None = None) -> Delivery:
        """The decision's reason (why it waited first, `channels exhausted`) is the row's once delivered.
        `kept`: the message as it was built before (delivery.keep_messages), sent again as it is."""
        from .messages import build_message

        return Delivery(key, channel, customer_id, tuple(steps), attempts,
                        (lambda: thawed(kept)) if kept is not None else
                        lambda: build_message(self.rt, self.plan, decision, state, self.pay_link, steps),
                        decision.reason,
                        late, lambda: self._overdue(state, decision, channel))

    def _overdue(self, state, decision: Decision, channel: str) -> str | None:
        """Why a contact decided as of the tick's `now` may no longer go when its turn to be sent comes:
        a tick that delivers for long (thousands of emails through one SMTP server) may reach a window's
        end, or the law's hours, after its decisions. Looked at once the tick has run OVERDUE_AFTER."""
        elapsed = self._clock() - self._started
        if elapsed < OVERDUE_AFTER:
            return None
        moment = self._now + dt.timedelta(seconds=elapsed)
        held = held_now(self.rt, state, moment, decision.invoice_ids, channel, decision.at)
        if held is None:
            return None
        local = moment.astimezone(decision.at.tzinfo)
        return f"the tick was still delivering at {local:%H:%M} local time, when {held[0]} held it"

    @contextlib.contextmanager
    def _alive(self, tick_id: int):
        """While this tick runs, others can tell it is alive: on PostgreSQL it holds a session advisory
        lock named by its id; on SQLite an exclusive lock on a file beside the database, `DB.tick-ID.lock`.
        The system drops either lock when the process dies, however it dies. (A pid could not tell: a
        container's tick is pid 1 in every container.) A PostgreSQL session can also end while the
        process lives on; `self._check_alive` then raises TickLost, and delivery asks it before every
        message (see _Liveness)."""
        if self.engine.dialect.name != "postgresql":
            with _tick_lock(_lock_path(self.engine, tick_id)):
                yield
            return
        # autocommit: each look at the lock is one statement, no transaction to end
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("SELECT pg_advisory_lock(:a, :b)"), {"a": ADVISORY_KEY, "b": tick_id})
            with _Liveness(conn, tick_id) as liveness:
                self._check_alive = liveness.before_send
                try:
                    yield
                finally:
                    self._check_alive = _always_alive
                    liveness.release()

    def _dead(self, conn: Connection, tick_id: int | None) -> bool:
        """Is the tick that owns a `sending` row gone (finished, crashed, killed)?"""
        if tick_id is None:
            return True
        row = conn.execute(select(s.ticks).where(s.ticks.c.id == tick_id)).first()
        if row is None or row.finished_at is not None:
            return True
        if conn.dialect.name == "postgresql":
            got = conn.execute(text("SELECT pg_try_advisory_xact_lock(:a, :b)"), {"a": ADVISORY_KEY, "b": tick_id}).scalar()
            return bool(got)
        held = _lock_held(_lock_path(self.engine, tick_id))
        if held is not None:
            return not held
        # no lock file: a tick of a version before the lock files (or a database without a file): its process
        if row.host != socket.gethostname():
            return False  # another machine: cannot tell, leave it to that machine's next tick
        try:
            os.kill(row.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    def _recover(self, now: dt.datetime, summary: TickSummary) -> None:
        """Deliver the `sending` rows nobody is delivering: left by a tick that died between its commit
        and the provider call, or waiting for a retry whose time has come.

        Rows are taken over by moving their tick_id to this tick in one UPDATE ... RETURNING, so two
        ticks never deliver the same row. They are taken RECOVER_CHUNK at a time, by customer and
        then oldest decision first (so that the caps let the older ones go first, `_recover_rows`): after
        a long provider outage tens of thousands wait, more than one statement may name."""
        due = or_(s.contacts.c.next_attempt_at.is_(None), s.contacts.c.next_attempt_at <= now)
        with self.engine.begin() as conn:
            owners = {r.tick_id for r in conn.execute(select(s.contacts.c.tick_id).distinct()
                                                       .where(s.contacts.c.status == "sending", due))}
            dead = [t for t in owners if t is not None and t != self.tick_id and self._dead(conn, t)]
        free = or_(s.contacts.c.tick_id.is_(None), s.contacts.c.tick_id.in_(dead))
        c = s.contacts.c
        after = None
        while True:
            with self.engine.begin() as conn:
                query = select(c.customer_id, c.at, c.key).where(c.status == "sending", due, free)
                if after is not None:
                    query = query.where(tuple_(c.customer_id, c.at, c.key) > tuple_(*after))
                found = list(conn.execute(query.order_by(c.customer_id, c.at, c.key).limit(RECOVER_CHUNK)))
                if not found:
                    return
                after, keys = tuple(found[-1]), [r.key for r in found]
                taken = list(conn.execute(update(s.contacts).where(s.contacts.c.key.in_(keys),
                                                                   s.contacts.c.status == "sending", due, free)
                                          .values(tick_id=self.tick_id).returning(s.contacts.c.key)).scalars())
                rows = list(conn.execute(select(s.contacts).where(s.contacts.c.key.in_(taken)))) if taken else []
            if rows:
                self._recover_rows(rows, now, summary)

    def _recover_rows(self, rows: list, now: dt.datetime, summary: TickSummary) -> None:
        with self.engine.connect() as conn:
            states = load_states(conn, sorted({r.customer_id for r in rows}), dict(self.plan["fields"]))
        deliveries, withdrawn, held, renamed = [], [], [], []
        # oldest decisions first: after an outage, those a customer's caps and laws let through now go first
        for row in sorted(rows, key=lambda r: (r.customer_id, r.at, r.key)):
            state = states[row.customer_id]
            ids = row.invoice_ids.split(";")
            why = decide_withdrawn(self.rt, state, now, ids, row.channel, row.step)
            # the message is built as of now, when it goes: its dates, WhatsApp's 24-hour window; but for a
            # receiver that drops a key it has had (a webhook's Idempotency-Key), as of the decision, so that
            # a repeated delivery is the same body (one that differs under the same key is refused for good),
            # and once built, as it was built (delivery.keep_messages), whatever the policy or invoices say now
            same = getattr(self.channels(row.channel), "dedupes", False)
            kept = row.message if same else None
            # agent tasks (their own text), webhooks (no template) and kept messages have nothing to look up
            looked_up = row.channel != "agent" and row.template is not None and kept is None
            template = self._template_now(row) if looked_up else None
            if why is None and looked_up and template is None:
                why = f"the policy no longer has template '{row.template}' for {row.channel}"
            hold = held_now(self.rt, state, now, ids, row.channel, row.at) if why is None else None
            if hold is not None and hold[1] is None:
                why = hold[0]
            if why is not None:
                withdrawn.append((row, why))
                continue
            if hold is not None:
                held.append((row, *hold))
                continue
            decision = Decision((row.at if same else now).astimezone(ZoneInfo(row.tz)), row.customer_id,
                                tuple(row.invoice_ids.split(";")),
                                row.stage, row.step, row.channel, None if row.channel == "agent" else template,
                                "sent", _decided_reason(row),
                                contact_key=row.key, queue=row.queue, priority=to_float(row.priority),
                                webhook=row.webhook)
            if kept is None and template != row.template:  # the audit says which template the message went out with
                renamed.append({"k": row.key, "template": template})
            steps = () if row.channel == "agent" else _steps_of(row, self.rt)
            deliveries.append(self._delivery(row.key, row.channel, row.customer_id, steps, row.attempts,
                                             decision, state, late=True, kept=kept))
            _goes_now(state, row, now)
        if withdrawn:
            self._withdraw(withdrawn, now, summary)
        if held:
            self._hold(held, summary)
        if renamed:
            with self.engine.begin() as conn:
                conn.execute(update(s.contacts).where(s.contacts.c.key == bindparam("k"))
                             .values(template=bindparam("template")), renamed)
        self._deliver(deliveries, summary, now)

    def _template_now(self, row) -> str | None:
        """The template a waiting message goes out with: the one it was decided with, or, when the policy
        has since renamed it, the step's own template now (None: neither has a body for the channel)."""
        templates = self.plan["templates"]
        step = self.rt.steps.get(row.step)
        for name in (row.template, step.template if step is not None else None):
            if name is not None and row.channel in templates.get(name, {}):
                return name
        return None

    def _hold(self, rows: list, summary: TickSummary) -> None:
        """Contacts that may not go out now (outside their window, over a cap, or against the law's hours or
        frequency) wait, still `sending`, for the moment they may: no attempt is counted, and the
        decision's reason stays."""
        updated = dt.datetime.now(dt.timezone.utc)
        held = 0
        with self.engine.begin() as conn:
            for row, why, until in rows:  # rows this tick still owns (see delivery.record)
                held += conn.execute(update(s.contacts).where(s.contacts.c.key == row.key,
                                                              s.contacts.c.tick_id == self.tick_id).values(
                    reason=f"{RETRY_NOTE}{until.astimezone(dt.timezone.utc):%Y-%m-%d %H:%M} UTC: held by {why}",
                    decided_reason=_decided_reason(row), tick_id=None, next_attempt_at=until, updated_at=updated)).rowcount
        summary.statuses["held"] += held

    def _withdraw(self, rows: list, now: dt.datetime, summary: TickSummary) -> None:
        """Contacts that must no longer go out are `skipped`, and their steps are open again with the
        channel marked failed, so the decision core decides them anew: it falls back to the next channel,
        closes them as do_not_contact, or leaves a paid invoice alone. A contact whose invoices left its
        stage or are paused closes its step instead: its message no longer applies, and the same channel
        cannot carry the step again (its contact key is taken), while no fault of that channel's should
        send the step on another."""
        updated = dt.datetime.now(dt.timezone.utc)
        with self.engine.begin() as conn:
            withdrawn = [(row, why) for row, why in rows if conn.execute(  # rows this tick still owns
                update(s.contacts).where(s.contacts.c.key == row.key, s.contacts.c.tick_id == self.tick_id).values(
                    status="skipped", reason=f"withdrawn before delivery: {why}", tick_id=None,
                    next_attempt_at=None, updated_at=updated).returning(s.contacts.c.key)).first()]
            closed = [k for row, why in withdrawn if why in CADENCE_REASONS for k in _steps_of(row, self.rt)]
            if closed:
                conn.execute(update(s.steps).where(s.steps.c.key.in_(closed)).values(state="done", status="skipped"))
            failed = [(row.customer_id, _steps_of(row, self.rt), row.channel, f"withdrawn: {why}")
                      for row, why in withdrawn if why not in CADENCE_REASONS]
            if failed:
                reopen(conn, failed, now)
        summary.statuses["withdrawn"] += len(withdrawn)

    def _dry_run(self, now: dt.datetime, summary: TickSummary) -> TickSummary:
        """Decide for every due customer and report, writing and sending nothing. Each message is built,
        as the tick builds it: one that cannot be, or that its adapter refuses without calling anyone, is
        the failed contact the tick records, and the customer is decided again at once (in memory, thrown
        away after), as the tick falls back."""
        from .messages import message_builder
        from .simulate import settle, unbuilt

        build = message_builder(self.rt, self.pay_link, self.channels.refusals(), self.channels.redact)
        with self.engine.connect() as conn:
            _not_before_last(conn, now)  # what the tick would do: refuse
            query = select(s.customers.c.id).order_by(s.customers.c.id)
            if not plan_changed(conn, self.rt.plan_hash):  # else everyone is decided again, as the tick would
                query = query.where(_due(now))
            ids = [r.id for r in conn.execute(query)]
            for start in range(0, len(ids), self.batch):
                states = load_states(conn, ids[start:start + self.batch], dict(self.plan["fields"]))
                for cid in ids[start:start + self.batch]:
                    outcome = self._decide(states[cid], now, summary)
                    if outcome is None:
                        continue
                    while outcome is not None:
                        failed = unbuilt(outcome, states[cid], build)
                        summary.decided(outcome, cid)
                        if not failed:
                            break
                        settle(states[cid], outcome, failed)
                        outcome = self._decide(states[cid], now, summary)
            conn.rollback()
        return summary

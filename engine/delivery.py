"""Handing decided contacts to the channel adapters, and what each outcome does to the store.

A contact arrives here as a `sending` row already committed with the decision (exactly once). Each
channel's messages are delivered in a thread of their own, one after the other, so a slow or failing
provider does not hold up the others; after a few transient failures in a row a channel is left alone
for the rest of the tick (its messages wait for the next one). Outcomes (SPEC 4.5):

- sent: the row becomes `sent`, with the provider's id and the channel's cost, and the decision's reason
  (why it waited first; `channels exhausted` for a handed-off task) whatever a retry wrote meanwhile;
- transient (timeouts, 429, 5xx): the row stays `sending`, released to any later tick from
  `next_attempt_at` (channels.yaml `retry`: backoff doubling, never sooner than Retry-After, never
  later than a day), until the attempts are used up, which counts as permanent. A rate limit of the
  sender (`DeliveryResult.throttled`: HTTP 429, the provider's account or number limits) would refuse
  any other message as well: the channel's other messages are not tried this tick, and wait at least
  the provider's Retry-After without using an attempt;
- permanent (invalid number, unsubscribed, bad template, a template that cannot be rendered): the row
  becomes `failed`, the channel is remembered as failed for the contact's step instances, which are
  open again, and the customer is due at once: the decision core falls back to the step's next channel
  (or fails the step and escalates, `on_exhausted`). A provider opt-out also records the opt-out;
- account-level (`DeliveryResult.account_level`: credentials refused, an account locked or unpaid, a
  server certificate nobody trusts): not the message's fault, and no other message would get through.
  The channel is stopped for the rest of the tick (`stopped`); that contact and the channel's others
  stay `sending`, released to a later tick from `next_attempt_at`, without using an attempt; and one
  line names the channel and what to fix in channels.yaml (`failure_lines`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy import JSON, bindparam, case, null, select, update
from sqlalchemy.engine import Connection

from ..adapters.base import MAX_WAIT, frozen, readable_id
from . import store as s
from .state import REOPENED
from .channels import NOT_CONFIGURED
from .messages import refused, unbuildable

BREAKER = 3  # transient failures in a row after which a channel is left alone until the next tick
RETRY_NOTE = "retrying from "  # how the reason of a contact waiting for a retry starts


@dataclass
class Delivery:
    """One message to deliver: its contact row's key, the channel, and how to build the message."""

    key: str
    channel: str
    customer_id: str
    steps: tuple[str, ...]  # the step instances the contact settles
    attempts: int  # attempts made before this one
    build: object  # () -> Message; may raise when the template cannot be rendered
    reason: str = ""  # the decision's reason (why it was deferred first): the row's once delivered
    late: bool = False  # decided at an earlier tick (a retry, a crashed tick's row): `at` becomes the send's
    overdue: object = None  # () -> why it may no longer go (the tick ran past its window), or None


@dataclass
class Result:
    delivery: Delivery
    # sent | retry | failed | held (not tried: its window or the law closed while the tick delivered) |
    # waiting (not tried: the channel's provider is failing) | stopped (the
    # provider refused the channel's account: the contact waits, no attempt used, and so does the channel)
    status: str
    reason: str = ""
    provider_id: str | None = None
    error_code: str | None = None
    retry_after: float | None = None
    opted_out: bool = False
    stopped: str = ""  # why the channel is stopped for the tick (status stopped, and waiting behind it)
    throttled: bool = False  # a retry because the provider rate-limits the sender: the channel waits too


RENDER = "render"  # the error code of a message whose template could not be rendered (it failed for good)
# failures that are the policy's or the configuration's, not a provider's, as a tick's summary counts them:
# no provider was asked (the channel left out was warned about when the run started)
NOT_PROVIDERS = {RENDER: "template not rendered", NOT_CONFIGURED: "channel not configured"}

# stopped, waiting and held contacts stay `sending`, released to a later tick, without using an attempt
NOT_TRIED = ("waiting", "stopped", "held")


def deliver_all(deliveries: list[Delivery], channels, on_result=None, stopped: dict[str, Result] | None = None,
                failing: dict[str, int] | None = None, alive=None, on_built=None) -> list[Result]:
    """Deliver every message, channel by channel in parallel; outcomes in the order given. `on_result`
    is called with each outcome as soon as it is known (from the channel's thread), so that it can be
    stored at once: a crash later in the tick must not deliver again what a provider already took. When
    it fails (the store is locked), no channel sends anything more: what could not be stored would be
    sent again; the messages not tried wait for the next tick.

    `stopped` maps a channel to the outcome that stopped it (its provider refused the account, or
    rate-limits the sender): its messages are not tried, they wait at least that outcome's `retry_after`;
    a channel stopped here is added. Give every call of one tick the same dict, so
    that a channel refused while recovering earlier rows is not tried again for the new ones. `failing`
    likewise counts each channel's transient failures in a row across the calls of a tick (the breaker).
    `alive()` is called before each message is sent; it raises when the tick may no longer send (its lock
    in the store is gone, runner.TickLost), and so does this call then. `on_built` is called once with
    the (delivery, message) pairs built, before any is sent (keep_messages).

    Messages are rendered here first, in this thread: rendering is CPU work that threads would not
    speed up, and lazy imports or template caches are not shared between threads while they fill."""
    done: dict[str, Result] = {}
    by_channel: dict[str, list] = {}
    stopped = {} if stopped is None else stopped
    failing = {} if failing is None else failing
    for d in deliveries:
        try:
            message = d.build()
        except Exception as exc:  # noqa: BLE001 - the template cannot be rendered: this channel cannot work
            reason = channels.redact(unbuildable(exc))
            done[d.key] = Result(d, "failed", reason, error_code=RENDER)
            if on_result is not None:
                on_result(done[d.key])
            continue
        by_channel.setdefault(d.channel, []).append((d, message))
    if on_built is not None and by_channel:
        on_built([pair for items in by_channel.values() for pair in items])
    if by_channel:
        stop = threading.Event()

        def kept(result: Result) -> None:
            try:
                on_result(result)
            except BaseException:
                stop.set()
                raise
        with ThreadPoolExecutor(max_workers=len(by_channel), thread_name_prefix="deliver") as pool:
            futures = [pool.submit(_deliver_channel, items, channels, on_result and kept, stop, stopped, failing,
                                   alive) for items in by_channel.values()]
            done.update({r.delivery.key: r for f in futures for r in f.result()})
    return [done[d.key] for d in deliveries]


def _deliver_channel(items: list, channels, on_result=None, stop=None, stopped=None, failing=None,
                     alive=None) -> list[Result]:
    """One channel's messages, in order. `stopped` and `failing` are shared by the channels' threads,
    but each touches only its own channel's entry."""
    results = []
    stopped = {} if stopped is None else stopped
    failing = {} if failing is None else failing
    for d, message in items:
        if stop is not None and stop.is_set():
            break  # an outcome could not be stored: send nothing more this tick
        if d.channel in stopped:
            first = stopped[d.channel]  # its messages wait at least as long as the one that stopped it
            result = Result(d, "waiting", f"not tried: {first.stopped}", stopped=first.stopped,
                            retry_after=first.retry_after)
        elif failing.get(d.channel, 0) >= BREAKER:
            result = Result(d, "waiting", f"not tried: {d.channel} failed {BREAKER} times in a row")
        elif d.overdue is not None and (why := d.overdue()):
            result = Result(d, "held", f"held: {why}")  # no failure: a later tick holds it until it may go
        else:
            if alive is not None:
                alive()  # raises if another tick may now be delivering this very row
            result = _attempt(d, message, channels)
            failing[d.channel] = failing.get(d.channel, 0) + 1 if result.status == "retry" else 0
            if result.status == "stopped":
                stopped[d.channel] = result
            elif result.throttled:  # a retry, or the last attempt given up
                stopped[d.channel] = dataclasses.replace(result, stopped=throttled_line(d.channel, result))
        if on_result is not None:
            on_result(result)
        results.append(result)
    return results


def _attempt(d: Delivery, message, channels) -> Result:
    try:
        return _outcome(d, channels(d.channel).send(message), channels)
    except Exception as exc:  # noqa: BLE001 - an adapter bug, or an answer that is no DeliveryResult, must
        # not stop the tick and lose the outcomes of everyone else's messages
        return _retry_or_give_up(Result(d, "retry", channels.redact(f"adapter error: {type(exc).__name__}: {exc}"),
                                        error_code="adapter"), channels)


def _outcome(d: Delivery, outcome, channels) -> Result:
    reason = channels.redact(refused(outcome))
    if outcome.status == "sent":  # a plugin's id may be anything: stored as text or not at all
        return Result(d, "sent", provider_id=readable_id(outcome.provider_id))
    # a plugin built against an older base has neither account_level nor throttled
    if getattr(outcome, "account_level", False):
        why = channel_stopped(d.channel, reason, outcome.error_code, getattr(channels, "source", "channels.yaml"))
        return Result(d, "stopped", why, error_code=outcome.error_code, retry_after=outcome.retry_after, stopped=why)
    status = "retry" if outcome.status == "transient" else "failed"
    return _retry_or_give_up(Result(d, status, reason, error_code=outcome.error_code, retry_after=outcome.retry_after,
                                    opted_out=outcome.opted_out, throttled=getattr(outcome, "throttled", False)),
                             channels)


def _retry_or_give_up(r: Result, channels) -> Result:
    """A transient failure whose attempts are used up counts as permanent: the step falls back."""
    attempts = r.delivery.attempts + 1
    if r.status == "retry" and attempts >= channels.retry.attempts:
        r.status, r.reason = "failed", f"gave up after {attempts} attempts: {r.reason}"
    return r


def channel_stopped(channel: str, reason: str, code: str | None = None, source: str | None = "channels.yaml") -> str:
    """The one line that says a channel stopped, why, and where to fix it (`source`: the channels file
    read, None without one)."""
    if code == "outbox" and source is None:  # no channels file: outbox/<channel>.jsonl
        why = f"{reason.removeprefix('outbox ')} (check the outbox folder, and the disk)"
    elif code == "outbox":  # the file adapter: no provider, no account, a file that cannot be written
        why = f"{reason.removeprefix('outbox ')} (check channels.{channel}.path in {source}, and the disk)"
    else:
        why = (f"the provider refused its account: {reason} (check the credentials and settings of "
               f"channels.{channel} in {source or 'channels.yaml'}, and the account with the provider)")
    return f"channel {channel} stopped for this tick, {why}; its messages wait for a later tick without using an attempt"


def throttled_line(channel: str, r: Result) -> str:
    wait = f"at least {min(r.retry_after, MAX_WAIT):g} s " if r.retry_after else ""
    return (f"channel {channel} is rate-limited by its provider ({r.reason}): its other messages wait {wait}for "
            f"a later tick without using an attempt")


def failure_lines(results: list[Result]) -> list[str]:
    """What a tick reports of its delivery failures (`provider failure: ...`): `KEY: REASON` for each
    message that failed, will be retried or waits behind a failing provider; for a channel stopped by an
    account-level refusal one line, without its key, instead of one per message it left waiting (a
    channel stopped by an earlier call of the tick was reported by that call)."""
    lines, reported = [], set()
    for r in results:
        # a template's failure goes to render_lines; a channel left out was warned about at the start
        if r.status in ("sent", "held") or r.error_code in NOT_PROVIDERS:
            continue
        if r.stopped:
            if r.status == "stopped" and r.delivery.channel not in reported:
                reported.add(r.delivery.channel)
                lines.append(r.stopped)
            continue
        lines.append(f"{r.delivery.key}: {r.reason}")
        if r.throttled and r.delivery.channel not in reported:
            reported.add(r.delivery.channel)
            lines.append(throttled_line(r.delivery.channel, r))
    return lines


def render_lines(results: list[Result]) -> list[str]:
    """`KEY: REASON` for each message whose template could not be rendered: no provider was asked, so
    `collect run` reports them as errors of the policy, not as provider failures."""
    return [f"{r.delivery.key}: {r.reason}" for r in results if r.error_code == RENDER]


def record(conn: Connection, results: list[Result], channels, now: dt.datetime, tick_id: int | None = None) -> None:
    """Write the outcomes in the caller's transaction (a few statements for the whole batch). With
    `tick_id`, only those of rows the tick still owns: a tick that lost its lock (runner.TickLost) while a
    provider answered must not write over a row another tick took over and delivered meanwhile (a retry
    note over its `sent` would send it again; a failure would reopen its step)."""
    c = s.contacts.c
    if tick_id is not None and len(results) > 1:
        owned = set(conn.execute(select(c.key).where(c.key.in_([r.delivery.key for r in results]),
                                                     c.tick_id == tick_id, c.status == "sending")
                                 .with_for_update()).scalars())
        results = [r for r in results if r.delivery.key in owned]
    rows = [_row(r, channels, now) for r in results]
    if not rows:
        return
    status = bindparam("status")
    change = update(s.contacts).where(c.key == bindparam("k")).values(
        status=status, reason=bindparam("reason"), decided_reason=bindparam("decided"),
        provider_id=bindparam("provider_id"),
        error_code=bindparam("error_code"), attempts=bindparam("attempts"), cost=bindparam("cost"),
        message=case((status == "sending", c.message), else_=null()),  # kept while it waits (keep_messages)
        next_attempt_at=bindparam("next_attempt_at"), tick_id=bindparam("tick"), updated_at=bindparam("updated"))
    if tick_id is not None and len(rows) == 1:  # one outcome as it comes: owned is what the update finds
        if conn.execute(change.where(c.tick_id == tick_id, c.status == "sending").returning(c.key),
                        rows[0]).first() is None:
            return
    else:
        conn.execute(change, rows)
    late = [{"k": r.delivery.key} for r in results if r.status == "sent" and r.delivery.late]
    if late:  # the contact happened now, not when it was decided: caps, the law and the log count it now
        conn.execute(update(s.contacts).where(s.contacts.c.key == bindparam("k")).values(at=now), late)
    failed = [r for r in results if r.status == "failed"]
    if failed:
        reopen(conn, [(r.delivery.customer_id, r.delivery.steps, r.delivery.channel, r.reason) for r in failed], now)
    for r in results:
        if r.opted_out:
            add_optout(conn, r.delivery.customer_id, r.delivery.channel)


def _row(r: Result, channels, now: dt.datetime) -> dict:
    d = r.delivery
    attempts = d.attempts + (0 if r.status in NOT_TRIED else 1)
    status, reason, retry_at = r.status, r.reason, None
    if status in ("retry", *NOT_TRIED):
        retry_at = now + dt.timedelta(seconds=channels.retry.delay(max(attempts, 1), r.retry_after))
        reason = f"{RETRY_NOTE}{retry_at:%Y-%m-%d %H:%M} UTC: {reason}"
    if status == "sent":
        reason = d.reason  # as the contacts file of `collect simulate` says it
    if status == "sent" and d.channel == "agent":
        status = "escalated"  # the task was handed to the agents' system
    # the decision's reason stays in its column whatever `reason` now says (a row recovered from a store
    # written before the column existed gets it here, before a retry's note replaces `reason`)
    return {"k": d.key, "status": "sending" if status in ("retry", *NOT_TRIED) else status, "reason": reason,
            "decided": d.reason,
            "provider_id": r.provider_id, "error_code": _code_column(r.error_code), "attempts": attempts,
            "cost": channels.costs.get(d.channel) if status == "sent" else None, "next_attempt_at": retry_at,
            "tick": None, "updated": dt.datetime.now(dt.timezone.utc)}


def keep_messages(conn: Connection, built: list, tick_id: int | None = None) -> None:
    """Keep the messages built for contacts on a channel whose receiver drops a key it has had and
    refuses one with another body (a webhook's Idempotency-Key), before their first try: any later try (a
    retry, or the recovery of a tick that died before its outcomes were stored) sends each as it was,
    whatever the policy or the invoices say by then (the receiver may have processed the first). One kept
    stays; `record` drops it once the contact is settled. With `tick_id`, only on rows the tick owns."""
    rows = [{"k": d.key, "m": frozen(m)} for d, m in built]
    c = s.contacts.c
    owned = [c.tick_id == tick_id] if tick_id is not None else []
    # None would bind as the JSON text 'null', not as SQL NULL: none_as_null says which one is meant
    conn.execute(update(s.contacts).where(c.key == bindparam("k"), c.message.is_(None), *owned)
                 .values(message=bindparam("m", type_=JSON(none_as_null=True))), rows)


def _code_column(code) -> str | None:
    """A provider's error code as its column holds it. A gateway may answer with a code of any length,
    which PostgreSQL would refuse to store, failing every tick on that answer; the whole code is in
    `reason` anyway."""
    return None if code is None else str(code)[:s.contacts.c.error_code.type.length]


def reopen(conn: Connection, failures: list[tuple[str, tuple, str, str]], now: dt.datetime) -> None:
    """Remember that these channels failed for these step instances, open the steps again and make the
    customers due now, so the decision core falls back to the next channel."""
    keys = sorted({k for _, steps, _, _ in failures for k in steps})
    known = {r.key: r.failed or {} for r in conn.execute(select(s.steps.c.key, s.steps.c.failed)
                                                          .where(s.steps.c.key.in_(keys)))}
    rows: dict[str, dict] = {}
    for customer_id, steps, channel, reason in failures:
        for key in steps:
            failed = {**known.get(key, {}), **rows.get(key, {}).get("failed", {}), channel: reason or "failed"}
            rows[key] = {"key": key, "customer_id": customer_id, "state": "pending",
                         "status": f"{REOPENED}{channel}", "failed": failed}
    from .storeio import _upsert

    # a step row keeps its owner: a re-import may have moved the invoice to another customer since
    _upsert(conn, s.steps, list(rows.values()), ["key"], keep=("customer_id",))
    owners = select(s.steps.c.customer_id).where(s.steps.c.key.in_(keys))
    customers = {c for c, _, _, _ in failures} | set(conn.execute(owners).scalars())
    conn.execute(update(s.customers).where(s.customers.c.id.in_(sorted(customers))).values(next_action_at=now))


def add_optout(conn: Connection, customer_id: str, channel: str) -> None:
    """Add an opt-out to the stored ones. The row is read FOR UPDATE (PostgreSQL; SQLite transactions
    here hold the write lock from their start), so an import or another tick writing the customer at the
    same time waits instead of having its change, or this one, overwritten."""
    current = conn.execute(select(s.customers.c.optouts).where(s.customers.c.id == customer_id)
                           .with_for_update()).scalar()
    if current is not None and channel not in current:
        conn.execute(update(s.customers).where(s.customers.c.id == customer_id)
                     .values(optouts=sorted({*current, channel})))

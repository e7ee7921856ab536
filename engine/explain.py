"""`collect explain --invoice ID`: for each step of the policy, what the next tick does with it, or why not.

The next tick is the decision core itself, run (pure, nothing written) on the customer as the store knows
it; what it leaves alone is told from the store's memory or the schedule. explain has no rule of its own.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select

from . import store as s
from .decide import decide, not_for_this_invoice, pause_of, stopped
from .events import Context, Facts, event_trigger, issued, occurrences, promise_active
from .runner import NEVER, next_look
from .runtime import Runtime
from .state import balance_at
from .storeio import load_states

NOW = {"sent": "sends now", "deferred": "defers now", "skipped": "skips now", "escalated": "escalates now",
       "failed": "fails now"}  # what the next tick does, by the core's decision status


@dataclass
class StepLine:
    owner: str
    step: str
    state: str  # a NOW value | not applicable | fired | sending | deferred | skipped | failed | escalated | scheduled
    #             | waiting | not due | paused | stopped
    when: str
    why: str


class ExplainError(Exception):
    pass


def explain(engine, plan, invoice_id: str, now: dt.datetime) -> tuple[dict, list[StepLine]]:
    rt = Runtime(plan)
    with engine.connect() as conn:
        row = conn.execute(select(s.invoices).where(s.invoices.c.id == invoice_id)).first()
        if row is None:
            raise ExplainError(f"no invoice '{invoice_id}' in the store")
        state = load_states(conn, [row.customer_id], dict(plan["fields"]))[row.customer_id]
        # the invoice's contacts, those made while it was another customer's too (a re-import moved it: it
        # keeps its step history, so what fired before is told with its time and channel)
        c = s.contacts.c
        contacts = list(conn.execute(select(s.contacts).where(or_(c.customer_id == row.customer_id,
                                                                  c.invoice_ids.contains(invoice_id, autoescape=True)))
                                     .order_by(c.at, c.id)))
        look = next_look(conn, row.customer_id, rt.plan_hash, now)
    tz = ZoneInfo(state.customer.timezone or rt.timezone)
    local = now.astimezone(tz)
    invoice = state.invoices[invoice_id]
    ctx = Context(Facts(rt, state, local), invoice)
    stage = next((st.name for st in rt.stages if st.when(ctx) is True), None)
    header = {"invoice": invoice_id, "customer": state.customer.id, "now": local.isoformat(timespec="minutes"),
              "stage": stage or "(none)", "days_past_due": ctx["invoice.days_past_due"],
              "balance": str(balance_at(state, invoice, local)), "status": ctx["invoice.status"],
              "next_look": _next_look(look, tz)}
    pause, resumes = _pause(rt, state, invoice, ctx, local)
    if pause:  # the due-date cadence waits for it (SPEC 4.6): no step of the stages goes meanwhile
        header["paused"] = pause
    mine = [c for c in contacts if invoice_id in c.invoice_ids.split(";")]
    next_tick, silent = ({}, set()) if look else _next_tick(rt, state, invoice_id, local)
    ended = None
    if stopped(rt, state, invoice, local):
        ended = "a stop step ended it" if invoice_id in state.stopped else f"the invoice is {header['status']}"
    lines = []
    for owner, step, key, trigger, occ in _instances(rt, state, invoice, tz, local):
        when = trigger.isoformat(timespec="minutes") if trigger else ""
        moot = _silent_reason(state, invoice, step, trigger, occ, local)  # a reason other than its for/if, now
        if key in next_tick:
            lines.append(next_tick[key])
        elif key in silent:  # the next tick closes it
            lines.append(StepLine(owner, step.id, "not applicable", when, f"{moot or 'its for/if condition is false'}: "
                                  "closed without a contact"))
        elif moot and key not in state.done:
            lines.append(StepLine(owner, step.id, "not applicable", when, moot))
        else:  # the core leaves it alone: settled or deferred before, not due yet, or held
            rest, why = _rest(state, invoice, local, ended, stage, owner, trigger, occ)
            if pause and occ is None and rest == "scheduled" and not ended and (resumes is None or trigger < resumes):
                why += f", and no longer paused ({pause})"  # a stage's step, due while the pause may last
            closed = _closed_reason(rt, state, invoice, step, trigger, occ, local) if key in state.done else ""
            remembered = _from_memory(state, key, step.id, owner, mine, closed)
            if remembered is not None and remembered.state == "deferred" and pause and occ is None and not ended:
                remembered.why = f"paused: {pause} (deferred before: {remembered.why.removeprefix('waiting: ')})"
            lines.append(remembered or StepLine(owner, step.id, rest, when, why))
    return header, lines


def _closed_reason(rt, state, invoice, step, trigger, occ, now) -> str:
    """Why an instance an earlier tick closed without a contact was closed, as far as the facts tell
    (the store keeps only that it was): what held at its trigger (the promise kept or replaced by then,
    or made after it), else its for/if when false at the trigger (""), else what holds now."""
    if occ is None or trigger is None:
        return ""
    if moot := occ.moot(trigger, trigger):
        return _MOOT[moot]
    if step.anchor == "promise" and occ.made is not None and trigger < occ.made:
        return not_for_this_invoice(state, step, invoice.id, trigger, occ)
    if step.condition is not None:
        ctx = Context(Facts(rt, state, trigger), invoice)
        if step.condition(ctx) is not True:
            return ""
    return _silent_reason(state, invoice, step, trigger, occ, now)


def _silent_reason(state, invoice, step, trigger, occ, now) -> str:
    """Why an event step instance is closed without a contact other than its for/if condition, or ""."""
    if occ is None or trigger is None:
        return ""
    if moot := occ.moot(trigger, now):
        return _MOOT[moot]
    return not_for_this_invoice(state, step, invoice.id, trigger, occ)


_MOOT = {"promise kept": "the promise was kept before it", "promise replaced": "a newer promise replaced it",
         "promise date passed": "the promised date was over when it came due"}


def _instances(rt, state, invoice, tz, local):
    """(owner, step, key, trigger, occurrence) of each step instance of the invoice at `local`; an event
    step whose event has not happened yet comes once, without a key."""
    calendar = rt.calendar_for(state.customer.country)
    for st in rt.stages:
        for step in st.steps:
            yield st.name, step, f"{step.id}|{invoice.id}", rt.step_trigger(step, invoice.due_date, tz, calendar), None
    occs = occurrences(rt, state, invoice, local)
    for event, steps in rt.events.items():
        for step in steps:
            if not any(o.event == event for o in occs):
                yield event, step, None, None, None
            for occ in (o for o in occs if o.event == event):
                yield event, step, f"{step.id}|{invoice.id}|{occ.id}", event_trigger(rt, step, occ, tz, calendar), occ


def _next_tick(rt, state, invoice_id: str, now: dt.datetime) -> tuple[dict[str, StepLine], set[str]]:
    """The core's decisions at `now` for the invoice's step instances, by key, and the instances it closes
    silently. A task after a failed send settles nothing (no keys): the failure's line tells it."""
    outcome, lines, last = decide(rt, state, now), {}, None
    for d in (d for d in outcome.decisions if invoice_id in d.invoice_ids):
        if not d.keys and last is not None:
            last.why += f"; then a task in queue {d.queue}"
            continue
        wake = outcome.wake.astimezone(now.tzinfo).isoformat(timespec="minutes") if outcome.wake else "never"
        why = {"sent": f"on {d.channel}" + (f" after deferral ({d.reason})" if d.reason else ""),
               "deferred": f"on {d.channel}: {d.reason}; looked at again {wake}",
               "escalated": f"task in queue {d.queue}" + (f", priority {d.priority}" if d.priority is not None else "")}
        last = StepLine(d.stage, d.step, NOW[d.status], d.at.isoformat(timespec="minutes"), why.get(d.status, d.reason))
        lines.update((key, last) for key in d.keys if key.split("|")[1] == invoice_id)
    return lines, set(outcome.silent)


def _rest(state, invoice, local, stopped, stage, owner, trigger, occ) -> tuple[str, str]:
    """(state, why) of a step instance the core has never settled and does not decide now."""
    if trigger is None:
        return "waiting", f"no {owner} event for this invoice yet"
    if stopped:
        return "stopped", stopped
    if not issued(invoice, local.date()):  # the core leaves it out
        return "not due", f"the invoice is issued on {invoice.issue_date}"
    if trigger > local:
        return "scheduled", f"{owner} on {occ.date}" if occ else f"if the invoice is then in stage '{owner}'"
    if stage != owner:
        return "not due", f"the invoice is in stage '{stage}' now"
    promise = promise_active(state, invoice, local)  # the core leaves a due step of the stage only when paused
    return "paused", f"promise to pay by {promise.promised_date}" if promise else "the invoice is disputed"


def _pause(rt, state, invoice, ctx, local) -> tuple[str, dt.datetime | None]:
    """What pauses the invoice's due-date cadence now (the core's `pause_of`), or "", and when it resumes
    unless the pause changes: a promise not kept the day after its date, a dispute when resolved (None)."""
    pause = pause_of(rt, state, invoice, ctx, local)
    if pause is None or pause == "disputed":
        return pause or "", None
    day = pause.promised_date + dt.timedelta(days=1)
    return f"promise to pay by {pause.promised_date}", dt.datetime.combine(day, dt.time(), local.tzinfo)


def _next_look(look: dt.datetime | None, tz) -> str:
    """When the customer is looked at next: `now`, a local time, or `never` (nothing ahead)."""
    if look is None:
        return "now"
    return "never" if look >= NEVER else look.astimezone(tz).isoformat(timespec="minutes")


def _from_memory(state, key: str, step_id: str, owner: str, contacts, silent_why: str = "") -> StepLine | None:
    """A step instance settled or deferred at an earlier tick, as the store remembers it; `silent_why`:
    why it was closed without a contact, when its for/if was not the reason."""
    if key in state.pending:
        return StepLine(owner, step_id, "deferred", "", f"waiting: {state.pending[key]}")
    status = state.done.get(key)
    if status is None:
        return None
    if status == "not applicable":
        return StepLine(owner, step_id, status, "", silent_why or "its for/if condition was false when it was due")
    # this instance's contacts: an event step has one instance per occurrence. Rows that settle no instance
    # (the agent task after a failure) or from before the store kept them (0002) match by the step alone.
    rows = [c for c in contacts if (key in c.steps if c.steps else c.step == step_id)]
    last = rows[-1] if rows else None
    when = last.at.astimezone(ZoneInfo(last.tz)).isoformat(timespec="minutes") if last else ""
    why = (last.reason or "") if last else ""
    if last is not None and last.status == "escalated":
        why = f"task in queue {last.queue}" + (f", priority {last.priority}" if last.priority else "")
    elif last is not None and last.channel:
        deferred = next((c for c in rows[:-1] if c.status == "deferred"), None)
        refused = [f"{c.channel} failed ({c.reason})" for c in rows[:-1] if c.status == "failed"]
        why = (f"on {last.channel}" + (f" after deferral ({deferred.reason})" if deferred else "")
               + (f" after {', '.join(refused)}" if refused else "") + (f"; {last.reason}" if last.reason and len(rows) == 1 else ""))
    if last is not None and last.status == "sending":  # decided, not delivered yet (a retry, a held contact)
        return StepLine(owner, step_id, "sending", when, f"on {last.channel}: {last.reason or 'being delivered'}")
    return StepLine(owner, step_id, "fired" if status == "sent" else status, when, why)

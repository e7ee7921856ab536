"""`collect explain --invoice ID`: for each step of the policy, when it fired for this invoice, or why not.

It reads the store's memory of the invoice (contacts, settled and deferred steps) and asks the same
decision-core functions what holds now: the stage, pauses, stops, conditions, the next trigger.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import select

from . import store as s
from .events import customer_facts, invoice_context, occurrences, promise_active
from .runtime import Runtime
from .state import PAID_EPSILON, balance_at
from .storeio import load_states


@dataclass
class StepLine:
    owner: str
    step: str
    state: str  # fired | deferred | skipped | failed | escalated | scheduled | waiting | not applicable
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
        contacts = list(conn.execute(select(s.contacts).where(s.contacts.c.customer_id == row.customer_id)
                                     .order_by(s.contacts.c.at, s.contacts.c.id)))
    tz = ZoneInfo(state.customer.timezone or rt.timezone)
    local = now.astimezone(tz)
    invoice = state.invoices[invoice_id]
    ctx = invoice_context(rt, state, invoice, customer_facts(rt, state, local), local)
    stage = next((st.name for st in rt.stages if st.when(ctx) is True), None)
    header = {"invoice": invoice_id, "customer": state.customer.id, "now": local.isoformat(timespec="minutes"),
              "stage": stage or "(none)", "days_past_due": ctx["invoice.days_past_due"],
              "balance": str(balance_at(state, invoice, local)), "status": ctx["invoice.status"]}
    mine = [c for c in contacts if invoice_id in c.invoice_ids.split(";")]
    lines = []
    for st in rt.stages:
        for step in st.steps:
            lines.append(_stage_line(rt, state, invoice, ctx, stage, st.name, step, mine, local))
    for event, steps in rt.events.items():
        occs = [o for o in occurrences(rt, state, invoice, local) if o.event == event]
        for step in steps:
            if not occs:
                lines.append(StepLine(event, step.id, "waiting", "", f"no {event} event for this invoice yet"))
            for occ in occs:
                key = f"{step.id}|{invoice.id}|{occ.id}"
                trigger = rt.step_trigger(step, occ.promised_date if step.anchor == "promise" else occ.date, tz)
                when = trigger.isoformat(timespec="minutes")
                if occ.moot(trigger) and key not in state.done:
                    lines.append(StepLine(event, step.id, "not applicable", when, "the promise was kept before it"))
                else:
                    lines.append(_from_memory(state, key, step.id, event, mine) or StepLine(
                        event, step.id, "scheduled", when, f"{event} on {occ.date}"))
    return header, lines


def _from_memory(state, key: str, step_id: str, owner: str, contacts) -> StepLine | None:
    rows = [c for c in contacts if c.step == step_id]
    if key in state.done:
        status = state.done[key]
        if status == "not applicable":
            return StepLine(owner, step_id, "not applicable", "", "its for/if condition was false when it was due")
        last = rows[-1] if rows else None
        when = last.at.astimezone(ZoneInfo(last.tz)).isoformat(timespec="minutes") if last else ""
        why = (last.reason or "") if last else ""
        if last is not None and last.status == "escalated":
            why = f"task in queue {last.queue}" + (f", priority {last.priority}" if last.priority else "")
        elif last is not None and last.channel:
            why = f"on {last.channel}" + (f" after deferral ({rows[0].reason})" if len(rows) > 1 else "") + (
                f"; {last.reason}" if last.reason and len(rows) == 1 else "")
        return StepLine(owner, step_id, "fired" if status == "sent" else status, when, why)
    if key in state.pending:
        return StepLine(owner, step_id, "deferred", "", f"waiting: {state.pending[key]}")
    return None


def _stage_line(rt, state, invoice, ctx, current, stage_name, step, contacts, local) -> StepLine:
    key = f"{step.id}|{invoice.id}"
    known = _from_memory(state, key, step.id, stage_name, contacts)
    if known is not None and known.state == "deferred" and current != stage_name:
        return StepLine(stage_name, step.id, "deferred", "", f"{known.why}; the invoice has left stage "
                                                              f"'{stage_name}', so the next tick skips it (stage ended)")
    if known is not None:
        return known
    tz = local.tzinfo
    trigger = rt.step_trigger(step, invoice.due_date, tz)
    when = trigger.isoformat(timespec="minutes")
    if invoice.id in state.stopped or balance_at(state, invoice, local) <= PAID_EPSILON or invoice.status in (
            "paid", "written_off"):
        return StepLine(stage_name, step.id, "stopped", when, f"the invoice is {ctx['invoice.status']}")
    if trigger > local:
        return StepLine(stage_name, step.id, "scheduled", when, f"if the invoice is then in stage '{stage_name}'")
    if current != stage_name:
        return StepLine(stage_name, step.id, "not due", when, f"the invoice is in stage '{current}' now")
    if ctx["invoice.status"] == "disputed" and "disputed" in rt.pause_when:
        return StepLine(stage_name, step.id, "paused", when, "the invoice is disputed")
    promise = promise_active(state, invoice, local)
    if promise is not None and "promise_active" in rt.pause_when:
        return StepLine(stage_name, step.id, "paused", when, f"promise to pay by {promise.promised_date}")
    if step.condition is not None and step.condition(ctx) is not True:
        return StepLine(stage_name, step.id, "not applicable", when, "its for/if condition is false")
    return StepLine(stage_name, step.id, "due", when, "due now: the next tick decides it")

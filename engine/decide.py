"""The decision core (SPEC 4): for one customer at one moment, what happens now and when to look again.

Pure: no I/O, no clock. `decide(rt, state, now)` returns the decisions to carry out at `now` and the
next moment something can become due. The shells (simulate, run, explain) call it and then `apply` the
decisions to their state; a dry run therefore predicts production exactly.

Order of the rules, per invoice: stop (paid, written off, a `stop` step) -> stage (first `when` that
holds) -> pause (promise active, disputed) -> due steps -> catch-up -> `for`/`if` -> holdout ->
do-not-contact -> channel choice (earlier provider failure, address, consent, opt-out) -> window/holiday
-> caps -> compliance profiles.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from dataclasses import dataclass, field
from functools import lru_cache
from operator import attrgetter
from typing import NamedTuple
from zoneinfo import ZoneInfo

from .calendar import HORIZON_DAYS
from .contacts import address_problem
from .events import Context, Facts, event_trigger, future_moments, issued, occurrences, promise_active
from .runtime import NOT_CONTACTS, Runtime, StepRt
from .state import PAID_EPSILON, REOPENED, CustomerState, InvoiceInfo, SentContact, balance_at

HOLDOUT = "holdout"  # a variant with this name gets no sends (it measures what doing nothing yields)
# Contacts and step triggers are kept as UTC instants, as the store keeps them: two times of one zone
# compare and subtract on the wall clock, so a week across a DST change would be 167 or 169 hours (a
# simulation broke a cap that `collect run` kept) and a trigger in the repeated hour of a fall-back day
# would look an hour later than it is. `now` stays local (days and windows are the customer's).
UTC = dt.timezone.utc
# A step due within this long before `now` is on time: a tick (hourly by default) would have seen it by
# itself, so `catch_up: latest` does not supersede it by a later step due in the same tick. Only steps
# older than that (an invoice seen for the first time, a run after downtime) are caught up.
ON_TIME = dt.timedelta(hours=1)


class Decision(NamedTuple):
    """One outcome for a step instance (or several, grouped): a row of the contacts file. Immutable; a
    tuple because a simulation builds millions of them (a frozen dataclass took three times as long)."""

    at: dt.datetime  # aware, in the customer's time zone
    customer_id: str
    invoice_ids: tuple[str, ...]
    stage: str  # stage name or event type
    step: str
    channel: str
    template: str | None
    status: str  # sent | deferred | skipped | failed | escalated
    reason: str = ""
    keys: tuple[str, ...] = ()  # the step instances this decision settles (one per invoice)
    contact_key: str = ""  # unique key of the contact (exactly once)
    fallbacks: tuple[str, ...] = ()  # channels still to try if the adapter fails permanently
    queue: str | None = None
    priority: float | None = None
    webhook: str | None = None


@dataclass
class Outcome:
    decisions: list[Decision] = field(default_factory=list)
    wake: dt.datetime | None = None  # the next moment a decision may be due (None: never)
    silent: list[str] = field(default_factory=list)  # step instances closed because they do not apply

    def wake_at(self, moment: dt.datetime | None) -> None:
        if moment is not None and (self.wake is None or moment < self.wake):
            self.wake = moment


@dataclass(slots=True, eq=False)
class Ready:
    """A step instance due now for one invoice; each is one object, compared by identity (`in late`)."""

    step: StepRt
    invoice: InvoiceInfo
    key: str
    trigger: dt.datetime
    ctx: dict
    shared: str | None = None  # the occurrence, for an event about all the customer's invoices


@dataclass(slots=True)
class _Schedule:
    """An invoice's stage steps in time order, and the index of the first one not yet done."""

    due_date: dt.date
    steps: tuple  # (trigger, step, step instance key)
    first: int = 0


def _in_time_order(r: Ready) -> tuple:
    return r.trigger, r.step.id


_key, _invoice_id = attrgetter("key"), attrgetter("invoice.id")  # C-level: no Python frame per item


class Decider:
    """One decide() call: the customer, the moment and what was decided so far in this call."""

    def __init__(self, rt: Runtime, state: CustomerState, now: dt.datetime):
        self.rt, self.state = rt, state
        self.tz = ZoneInfo(state.customer.timezone or rt.timezone)
        self.cal = rt.calendar_for(state.customer.country)  # windows and the holidays that close them
        self.utc = now.astimezone(UTC)  # for instants (triggers, contacts): same tzinfo, the fast comparison
        self.now = _local(self.utc, self.tz)
        self.today = self.now.date()
        self.out = Outcome()
        self.sent = list(state.sent)  # grows with this call's sends, so caps see them
        self.facts = Facts(rt, state, self.now, self.utc)  # customer-level context: computed when first read
        self._stops: set[str] = set()  # invoices a `stop` step ended in this call
        self._waiting: list[list[Ready]] = []  # groups deferred in this call
        self._wide: dict[tuple, set] = {}  # (step, occurrence) -> invoices it went out for (`_sent_for`)

    # -- per invoice ---------------------------------------------------------------------------

    def run(self) -> Outcome:
        ready: list[Ready] = []
        state = self.state
        dated = bool(state.payments or state.promises or state.disputes)  # facts that may change a decision later
        with_facts = self._invoices_with_events() if dated and self.rt.events else frozenset()
        facts = self.facts
        for invoice in state.invoices.values():
            if not issued(invoice, self.today):
                # not issued yet: nothing to remind of; its steps are due (or caught up) from its issue day
                self.out.wake_at(_day_start(invoice.issue_date, self.tz))
                continue
            if dated:
                for moment in future_moments(state, invoice, self.utc, self.tz):
                    self.out.wake_at(moment)
            ctx = Context(facts, invoice)  # lazy: only the values read are computed
            if self._stopped(invoice, ctx):
                if state.pending:
                    self._close_pending(invoice, ctx)
                continue
            due = self._due_stage_steps(invoice)
            if due:  # else nothing of a stage to decide (a third of the visits)
                ready += self._stage_steps(invoice, ctx, due)
            if invoice.id in with_facts:  # else no event step can concern this invoice
                ready += self._event_steps(invoice, ctx)
        if ready:
            for group in self._groups(ready):
                self._act(group)
            if self._stops:
                self._close_stopped()
        return self.out

    def _close_stopped(self) -> None:
        """Contacts of the invoices a `stop` step ended in this call that are only deferred (decided
        before the stop, or in this call) will never go out: close them."""
        for group in self._waiting:
            ended = [r for r in group if r.invoice.id in self._stops]
            if ended:
                self._emit(ended, "", "skipped", "stopped by step")

    def _close_pending(self, invoice: InvoiceInfo, ctx: dict) -> None:
        """Contacts of an invoice that has ended (paid, written off) that were deferred will never go out:
        a row says so, as for every deferral (docs/files.md, contacts)."""
        keys = [k for k in self.state.pending if k.split("|", 2)[1] == invoice.id]
        if not keys:
            return
        reason = "written off" if invoice.status == "written_off" else "paid"
        if invoice.id in self.state.stopped:
            reason = "stopped by step"
        for key in keys:
            step = self.rt.steps.get(key.split("|", 1)[0])
            if step is not None:  # else a step of an earlier plan: a changed plan decides everyone again
                self._settle(Ready(step, invoice, key, self.utc, ctx), "skipped", reason)

    def _invoices_with_events(self) -> set[str] | frozenset:
        """Invoices that some event step may concern (any payment, promise or dispute)."""
        state = self.state
        if any(p.invoice_id is None for p in state.promises):
            return set(state.invoices)
        return ({p.invoice_id for p in state.payments} | {p.invoice_id for p in state.promises}
                | {d.invoice_id for d in state.disputes})

    def _due_stage_steps(self, invoice: InvoiceInfo) -> list[tuple[dt.datetime, StepRt, str]]:
        """Steps of any stage due by now and not done; also wakes at the next future one."""
        due = []
        done, now = self.state.done, self.utc
        schedule = self.state.memo.get(invoice.id)  # `_stage_schedule`'s memo, read here without a call
        if schedule is None or schedule.due_date != invoice.due_date:
            schedule = self._stage_schedule(invoice)
        steps = schedule.steps
        while schedule.first < len(steps) and steps[schedule.first][2] in done:
            schedule.first += 1  # step instances stay done while the state lives: never look at them again
        for trigger, step, key in steps[schedule.first:]:
            if key in done:
                continue
            if trigger > now:
                self.out.wake_at(trigger)  # sorted: the first future trigger is the next one
                break
            due.append((trigger, step, key))
        return due

    def _stage_schedule(self, invoice: InvoiceInfo) -> "_Schedule":
        """(trigger, step, step instance key) of the invoice's stage steps, in time order."""
        memo = self.state.memo
        found = memo.get(invoice.id)
        if found is None or found.due_date != invoice.due_date:
            steps = tuple((trigger, step, f"{step.id}|{invoice.id}")
                          for trigger, step in self.rt.stage_triggers(invoice.due_date, self.tz, self.cal))
            found = memo[invoice.id] = _Schedule(invoice.due_date, steps)
        return found

    def _stopped(self, invoice: InvoiceInfo, ctx: dict) -> bool:
        if invoice.id in self.state.stopped:
            return True
        if "written_off" in self.rt.stop_when and invoice.status == "written_off":
            return True
        if "paid" not in self.rt.stop_when:
            return False
        if invoice.status == "paid":
            return True
        if "invoice.balance" not in ctx:  # as the context computes it, without its lookup (asked at every visit)
            ctx["invoice.balance"] = balance_at(self.state, invoice, self.utc)
        return ctx["invoice.balance"] <= PAID_EPSILON

    def _stage_steps(self, invoice: InvoiceInfo, ctx: dict, due_steps) -> list[Ready]:
        by_days = self.rt.stage_by_days
        if by_days is None:
            stage = _first_stage(self.rt.stages, ctx)
        else:  # the stages read only the days past due (as the context computes them)
            days = (self.today - invoice.due_date).days
            stage = by_days.get(days, _UNKNOWN)
            if stage is _UNKNOWN:
                stage = by_days[days] = _first_stage(self.rt.stages, ctx)
        if self._paused(invoice, ctx):
            return []
        due, pending = [], self.state.pending
        for trigger, step, key in due_steps:
            if stage is not None and step.owner == stage.name:
                due.append(Ready(step, invoice, key, trigger, ctx))
            elif key in pending:  # deferred, and the invoice has left the step's stage: its message no longer applies
                self._settle(Ready(step, invoice, key, trigger, ctx), "skipped", "stage ended")
        return self._catch_up(due, stage.name if stage is not None else None) if due else []

    def _passed(self, invoice: InvoiceInfo, stage: str) -> tuple | None:
        """(trigger, days, time) of the newest of the stage's steps already decided for the invoice (not
        those whose condition left them out): how far its cadence has gone, and its written `at`."""
        done, found = self.state.done, None
        for trigger, step, key in reversed(self._stage_schedule(invoice).steps):  # sorted by trigger
            if found is not None and trigger < found[0]:
                return found
            if step.owner == stage and done.get(key, "not applicable") != "not applicable":
                found = (trigger, step.days, step.time)  # of steps due together, the first in schedule order
        return found

    def _paused(self, invoice: InvoiceInfo, ctx: dict) -> bool:
        pause = pause_of(self.rt, self.state, invoice, ctx, self.now)
        if pause is not None and pause != "disputed":
            # the cadence resumes the day after the promised date if the promise is not kept
            self.out.wake_at(_day_start(pause.promised_date + dt.timedelta(days=1), self.tz))
        return pause is not None

    def _trigger(self, step: StepRt, anchor: dt.date) -> dt.datetime:
        return self.rt.step_trigger(step, anchor, self.tz, self.cal).astimezone(UTC)

    def _catch_up(self, due: list[Ready], stage: str | None = None) -> list[Ready]:
        """SPEC 4.3, applied to steps seen due for the first time; conditions first, so that
        `latest` means the latest step that applies to this invoice. A deferred step is not caught up:
        it was decided already and waits for its slot (SPEC 4.2), and steps with the same trigger are
        due together, so none of them supersedes another; nor does a step due within ON_TIME. A `stop`
        step is no contact: it is never superseded or missed, and it ends what came due after it.
        `stage`: under `latest`, a step of the invoice's stage older than one of its steps already decided
        (a step added to the policy since) is superseded too: the cadence has gone past it.
        Most calls see one step, due on time or deferred already: nothing to sort, supersede or miss."""
        pending = self.state.pending
        if len(due) == 1:
            r = due[0]
            if r.key in pending:
                return due
            if self.rt.catch_up != "none" and self.utc - r.trigger <= ON_TIME:  # `none` may miss it at once
                if r.step.condition is not None and r.step.condition(r.ctx) is not True:
                    self._settle(r, "skipped", "condition", emit=False)
                    return []
                return due
        else:
            due.sort(key=_in_time_order)
        waiting, applicable, stop = [], [], None
        for r in due:
            if r.key in pending:
                waiting.append(r)
            elif r.step.condition is not None and r.step.condition(r.ctx) is not True:
                self._settle(r, "skipped", "condition", emit=False)
            else:
                applicable.append(r)
                if stop is None and r.step.action == "stop":
                    stop = r
        messages = applicable
        if stop is not None:  # the invoice ended at the stop's trigger: what came due later never applies
            for r in [r for r in waiting + applicable if r.trigger > stop.trigger]:
                self._settle(r, "skipped", "stopped by step")
            waiting = [r for r in waiting if r.trigger <= stop.trigger]
            applicable = [r for r in applicable if r.trigger <= stop.trigger]
            messages = [r for r in applicable if r.step.action != "stop"]
        old = [r for r in messages if self.utc - r.trigger > ON_TIME] if self.rt.catch_up == "latest" else []
        if old:
            passed = self._passed(due[0].invoice, stage) if stage is not None else None
            newest = applicable[-1]  # a due stop is the newest step: it supersedes what came before it
            # steps written with the same `at` share a trigger, though one without a time opens its own
            # channel's window (an escalation, with none, local midnight)
            late = [r for r in old if (
                passed is not None and r.trigger < passed[0] and (r.step.days, r.step.time) != passed[1:]
                or r.trigger < newest.trigger and (r.step.days, r.step.time) != (newest.step.days, newest.step.time))]
            for r in late:
                self._settle(r, "skipped", "superseded")
            applicable = [r for r in applicable if r not in late]
        if self.rt.catch_up == "none":
            late = [r for r in messages if (self.utc - r.trigger).total_seconds() > self.rt.max_lateness_s]
            for r in late:
                self._settle(r, "skipped", "missed")
            applicable = [r for r in applicable if r not in late]
        kept = waiting + applicable
        return sorted(kept, key=_in_time_order) if len(kept) > 1 else kept  # oldest first

    def _event_steps(self, invoice: InvoiceInfo, ctx: dict) -> list[Ready]:
        ready = []
        for occ in occurrences(self.rt, self.state, invoice, self.now):
            for step in self.rt.events.get(occ.event, ()):
                key = f"{step.id}|{invoice.id}|{occ.id}"
                if key in self.state.done:
                    continue
                trigger = event_trigger(self.rt, step, occ, self.tz, self.cal).astimezone(UTC)
                if trigger > self.utc:
                    self.out.wake_at(trigger)
                    continue
                r = Ready(step, invoice, key, trigger, ctx, occ.id if occ.customer_wide else None)
                waiting = r.key in self.state.pending
                if not waiting and not_for_this_invoice(self.state, step, invoice.id, trigger, occ, self._sent_for):
                    self._settle(r, "skipped", "", emit=False)
                    continue
                # kept or replaced before the trigger: nothing to remind, whatever the tick; kept while the
                # reminder waited for its slot (deferred): it must not go out either
                if moot := occ.moot(trigger, self.utc, waiting):
                    self._settle(r, "skipped", moot, emit=waiting)
                elif self._event_applies(r):
                    ready.append(r)
        return self._latest_events(ready) if self.rt.catch_up == "latest" and len(ready) > 1 else ready

    def _latest_events(self, ready: list[Ready]) -> list[Ready]:
        """SPEC 2, max_lateness: under `latest`, an event step seen due more than max_lateness after its
        trigger is missed unless it is the invoice's newest due event step. A history imported with
        months of payments and promises sends one message, not one per event; a payment imported a few
        days late still gets its step."""
        fresh = [r for r in ready if r.key not in self.state.pending]
        if not fresh:
            return ready
        newest, kept = max(r.trigger for r in fresh), []
        for r in ready:
            if r in fresh and r.trigger < newest and (self.utc - r.trigger).total_seconds() > self.rt.max_lateness_s:
                self._settle(r, "skipped", "missed")
            else:
                kept.append(r)
        return kept

    def _sent_for(self, step_id: str, occurrence: str) -> set[str]:
        """The invoices whose instance of an event step for an occurrence went out: asked for every
        invoice of a promise about all of them, so worked out once per call, not once per invoice."""
        key = (step_id, occurrence)
        if key not in self._wide:
            self._wide[key] = sent_for(self.state, step_id, occurrence)
        return self._wide[key]

    def _event_applies(self, r: Ready) -> bool:
        """Each event step fires once per occurrence; only `catch_up: none` drops a late one."""
        if r.key in self.state.pending:
            return True
        if self.rt.catch_up == "none" and (self.utc - r.trigger).total_seconds() > self.rt.max_lateness_s:
            self._settle(r, "skipped", "missed")
            return False
        if r.step.condition is not None and r.step.condition(r.ctx) is not True:
            self._settle(r, "skipped", "condition", emit=False)
            return False
        return True

    # -- per message -----------------------------------------------------------------------------

    def _groups(self, ready: list[Ready]) -> list[list[Ready]]:
        """group_by customer: one message per step for all the invoices due now (SPEC 2, group_by)."""
        if len(ready) == 1:
            return [ready]
        ready = sorted(ready, key=lambda r: (r.trigger, r.invoice.due_date, r.invoice.id))  # oldest first (SPEC 4.3)
        groups: dict = {}
        seen: dict = {}  # (step, invoice) -> occurrences so far: an invoice is listed once per message
        for n, r in enumerate(ready):
            if self.rt.group_by == "customer":
                # two occurrences of an event step for one invoice (two partial payments in a morning) are
                # two messages, as with group_by: invoice, not one listing the invoice twice
                nth = seen[r.step.id, r.invoice.id] = seen.get((r.step.id, r.invoice.id), -1) + 1
                groups.setdefault((r.step.id, nth), []).append(r)
            else:  # one message per invoice, but one per occurrence of an event about all the invoices
                groups.setdefault((r.step.id, r.shared) if r.shared else n, []).append(r)
        return list(groups.values())

    def _act(self, group: list[Ready]) -> None:
        step = group[0].step
        if step.action == "send":
            self._send(group)
        elif step.action == "escalate":
            self._escalate(group, step.queue, "")
        elif step.action == "webhook":
            self._emit(group, "webhook", "sent", "", webhook=step.webhook)
        else:  # stop: nothing more for these invoices
            self._emit(group, "", "skipped", "stopped by step")
            self._stops.update(r.invoice.id for r in group)

    def _send(self, group: list[Ready]) -> None:
        step, customer = group[0].step, self.state.customer
        held = [r for r in group if self._held_out(r)]
        if held:  # per invoice: with `unit: invoice` one message may group invoices of several variants
            self._emit(held, "", "skipped", "holdout")
            group = [r for r in group if r not in held]
            if not group:
                return
        if customer.do_not_contact:
            return self._emit(group, "", "skipped", "do_not_contact")
        problems = []
        for i, channel in enumerate(step.channels):
            problem = self._failed_before(group, channel) or self._reach(channel)
            if problem is None:
                problem = self._try_channel(group, channel, step.channels[i + 1:])
                if problem is None:
                    return
            problems.append(f"{channel}: {problem}")
        if all(p.split(": ", 1)[1].startswith(("cap:", "compliance:")) for p in problems):
            # held back by caps (on_cap: skip) or by the law (no consent, a stop state): not a failure
            return self._emit(group, step.channels[-1], "skipped", "; ".join(problems))
        self._emit(group, step.channels[-1], "failed", "; ".join(problems))
        if step.on_exhausted:
            self._escalate(group, step.queue, "channels exhausted")

    def _failed_before(self, group: list[Ready], channel: str) -> str | None:
        """The provider refused this step's message on the channel (or it bounced): fall back."""
        failed = self.state.failed
        if not failed:
            return None
        return next((failed[r.key][channel] for r in group if channel in failed.get(r.key, ())), None)

    def _reach(self, channel: str) -> str | None:
        """Why the customer cannot be reached on the channel (None: they can); fixed for a state."""
        memo, key = self.state.memo, ("reach", channel)
        if key not in memo:
            problem = address_problem(self.state.customer, channel)
            if problem == "no consent" and self.rt.guard is not None:
                # a law that requires consent holds the contact back (skipped, no task), with or without
                # consent records: say it as the law's block, as when the customer has no records at all
                block = self.rt.guard.consent_block(self.state.customer, channel)
                problem = block.reason if block is not None else problem
            memo[key] = problem
        return memo[key]

    def _try_channel(self, group: list[Ready], channel: str, fallbacks: tuple[str, ...]) -> str | None:
        """Send on `channel` now, or defer; returns a reason to fall back (cap with on_cap: skip)."""
        if self.rt.guard is not None and (never := self._never_lawful(channel)):
            return never  # waiting would be for ever: the window and the profiles' hours never meet
        slot = self.cal.next_slot(channel, self.now, self.tz)
        if slot is None:
            return "no window"
        if slot.at > self.now:
            # with on_cap: skip, a channel a cap will still hold when its window opens is passed over now
            # (caps only hold more as sends are added), not waited for
            if self.rt.on_cap == "skip" and (capped := self._cap_block(channel, slot.at.astimezone(UTC))[0]):
                return f"cap:{capped}"
            self._defer(group, channel, slot.reason or "window", slot.at)
            return None
        blocked, until = self._cap_block(channel)
        if blocked:
            if self.rt.on_cap == "skip":
                return f"cap:{blocked}"
            self._defer(group, channel, f"cap:{blocked}", until)
            return None
        block = self._unlawful(group, channel)
        if block is not None and len(group) > 1 and block.until is not None:
            lawful = self._lawful_part(group, channel)  # a rule per debt holds back only its own invoices
            group, block = (lawful, None) if lawful else (group, block)
        if block is not None:
            if block.until is None:  # not without a change of state (consent, legal status): fall back
                return block.reason
            self._defer(group, channel, block.reason, block.until)
            return None
        reason = self._deferred_reason(group)
        if not reason and (reason := self._held_at_trigger(group, channel)):
            self._emit(group, channel, "deferred", reason)  # as a tick at the trigger would have recorded
        self._emit(group, channel, "sent", reason, fallbacks=fallbacks)
        self.sent.append(SentContact(self.utc, channel, tuple(map(_invoice_id, group))))
        return None

    def _lawful_part(self, group: list[Ready], channel: str) -> list[Ready]:
        """Of a group message the law holds back for a while, the invoices it allows alone (a call about a
        debt after a conversation about another, under a rule per debt); the others are deferred, each for
        what holds it. Empty when every invoice is held: the group waits whole, as one message."""
        blocks = [(r, self._unlawful([r], channel)) for r in group]
        if all(b is not None for _, b in blocks) or any(b is not None and b.until is None for _, b in blocks):
            return []
        for r, b in blocks:
            if b is not None:
                self._defer([r], channel, b.reason, b.until)
        return [r for r, b in blocks if b is None]

    def _unlawful(self, group: list[Ready], channel: str, at: dt.datetime | None = None):
        """The compliance guard, after the policy's own rules; no policy can switch it off (SPEC 5).
        `at`: ask as of that earlier moment of this tick (the guard cuts the history there)."""
        if self.rt.guard is None:
            return None
        ids = tuple(map(_invoice_id, group))
        return self.rt.guard.check(self.state.customer, channel, ids, at or self.now, self.sent,
                                   self.state.conversations, None if at else self.utc)

    def _never_lawful(self, channel: str) -> str:
        """Why the channel can never be used lawfully ("" if it can): its window and the hours of the
        profiles that apply never meet within the calendar's horizon. Once per channel, zone, calendar and
        profiles."""
        memo, mine = self.state.memo, ("never lawful", channel)  # the customer's zone and profiles are fixed
        if mine in memo:
            return memo[mine]
        guard, customer = self.rt.guard, self.state.customer
        profiles = guard.profiles_for(customer)
        key = (channel, str(self.tz), self.cal.country, profiles)
        never = self.rt.lawless.get(key)
        if never is None:
            at, limit, opening = self.now, self.now + dt.timedelta(days=HORIZON_DAYS), None
            while at <= limit:
                slot = self.cal.next_slot(channel, at, self.tz)
                opening = guard.next_open(customer, channel, slot.at) if slot is not None else None
                if opening is None or opening == slot.at:
                    break
                at = opening
            lawful = opening is not None and at <= limit
            never = "" if lawful else f"compliance:{'+'.join(profiles)}:hours never meet the window"
            self.rt.lawless[key] = never
        memo[mine] = never
        return never

    def _held_at_trigger(self, group: list[Ready], channel: str) -> str:
        """What held the contact at its trigger, when that came earlier in this tick: the channel's window
        or a holiday, else a cap, else a compliance profile's temporary block (its hours). A deferral is
        thus recorded, and says the same, whatever the tick's length (SPEC 4.2), as a tick at the trigger
        would have recorded it. A step caught up late is not said to wait."""
        first = min(r.trigger for r in group)
        if first >= self.utc or self.utc - first > ON_TIME:
            return ""
        slot = self.cal.next_slot(channel, first, self.tz)
        if slot is not None and slot.at > first:
            return slot.reason or ""
        capped = self._cap_block(channel, first)[0] if self.rt.on_cap == "defer" else None
        if capped:  # with `on_cap: skip` a cap defers nothing
            return f"cap:{capped}"
        block = self._unlawful(group, channel, first.astimezone(self.tz))
        return block.reason if block is not None and block.until is not None else ""

    def _deferred_reason(self, group: list[Ready]) -> str:
        pending = self.state.pending
        return next((pending[r.key] for r in group if r.key in pending), "") if pending else ""

    def _cap_block(self, channel: str, at: dt.datetime | None = None) -> tuple[str | None, dt.datetime | None]:
        """The first cap that blocks a send now (or at `at`: earlier in this tick, or a slot to come), and
        when every blocking cap frees up."""
        blocked, until = None, None
        at = at or self.utc
        recent = self._recent_sends(at)
        for cap in self.rt.caps_on(channel):
            free = None
            if len(recent) >= cap.max:  # else too few sends in the longest period for this cap to hold
                start = cap_shift(at, -cap.per_s, self.tz)
                window = [sent_at for sent_at, sent_on in recent if sent_at > start and cap.counts(sent_on)]
                if len(window) >= cap.max:  # newest first: the max-th newest must leave the window
                    free = cap_shift(window[cap.max - 1], cap.per_s, self.tz)
            if cap.cooldown_s and self.state.conversations:
                start = cap_shift(at, -cap.cooldown_s, self.tz)
                talks = [c.at for c in self.state.conversations if start < c.at <= at and cap.cools_after(c.channel)]
                if talks:
                    end = cap_shift(max(talks), cap.cooldown_s, self.tz)
                    free = max(free, end) if free else end
            if free is not None:
                blocked = blocked or cap.rule
                until = max(until, free) if until else free
        return blocked, until

    def _recent_sends(self, at: dt.datetime) -> list[tuple[dt.datetime, str]]:
        """(when, channel) of the sends inside the longest cap period, newest first (and a few more: a
        period of days on the customer's clock is an hour longer across a DST change)."""
        oldest = at - dt.timedelta(seconds=self.rt.longest_cap_s) - DST_SLACK
        recent = []
        for c in reversed(self.sent):  # in time order: stop at the first one too old for every cap
            if c.at > at:
                continue
            if c.at <= oldest:
                break
            recent.append((c.at, c.channel))
        return recent

    def _defer(self, group: list[Ready], channel: str, reason: str, until: dt.datetime | None) -> None:
        """A contact that cannot go now waits; a new deferral says what held it at its trigger when that
        came earlier in this tick (the same row whatever the tick), else what holds it now."""
        self._waiting.append(group)
        # a step reopened by a channel that failed for good is no deferral yet: waiting for the next
        # channel's window is one, and says so
        pending = self.state.pending
        new = [r for r in group if r.key not in pending or pending[r.key].startswith(REOPENED)]
        if new:
            self._emit(new, channel, "deferred", self._held_at_trigger(new, channel) or reason)
        if until is not None:  # in UTC, as the triggers: a local and a UTC time compare ten times slower
            self.out.wake_at(_utc(until, until.tzinfo, until.fold))

    def _escalate(self, group: list[Ready], queue: str | None, reason: str) -> None:
        step = group[0].step
        priorities = [to_float(step.priority(r.ctx)) for r in group] if step.priority else []
        priority = max((p for p in priorities if p is not None), default=None)
        # an on_exhausted task settles nothing: the failed decision before it did
        self._emit(group, "agent", "escalated", reason, queue=queue, priority=priority, settle=not reason)

    def _held_out(self, r: Ready) -> bool:
        if not self.rt.experiments:
            return False
        memo, key = self.state.memo, ("held out", r.invoice.id)  # a hash per experiment: once per invoice
        if key not in memo:
            memo[key] = any(self.rt.variant(name, self._unit(name, r)) == HOLDOUT for name in self.rt.experiments)
        return memo[key]

    def _unit(self, experiment: str, r: Ready) -> str:
        unit = self.rt.experiment_units[experiment]
        return r.invoice.id if unit == "invoice" else self.state.customer.id

    def _emit(self, group: list[Ready], channel: str, status: str, reason: str, *, settle: bool = True,
              **extra) -> None:
        first = group[0]
        step = first.step
        keys, ids = tuple(map(_key, group)), tuple(map(_invoice_id, group))
        instances = ",".join(sorted(keys)) if len(keys) > 1 else first.key
        self.out.decisions.append(Decision(
            at=self.now, customer_id=self.state.customer.id, invoice_ids=ids, stage=step.owner, step=step.id,
            channel=channel, template=step.template, status=status, reason=reason, keys=keys if settle else (),
            contact_key=self._contact_key(instances, step.id, status, channel), **extra))

    def _contact_key(self, instances: str, step_id: str, status: str, channel: str) -> str:
        """Unique per step instances (their keys, sorted and joined), outcome and channel: a fallback's send
        is a contact of its own, and each occurrence of an event step is another contact."""
        key = f"{self.rt.plan_hash[:12]}|{instances}|{status}|{channel}"
        if len(key) > 300:  # a group of many invoices: the column holds 400 characters
            key = f"{self.rt.plan_hash[:12]}|{step_id}|{hashlib.sha256(key.encode()).hexdigest()}"
        return key

    def _settle(self, r: Ready, status: str, reason: str, emit: bool = True) -> None:
        """Close a step instance without a contact: as a row (superseded, missed), or silently when the
        step does not apply to this invoice (its condition is false), which is not a contact attempt."""
        if emit:
            self._emit([r], "", status, reason)
        else:
            self.out.silent.append(r.key)


_UNKNOWN = object()


def _first_stage(stages, ctx: dict):
    """The invoice's stage: the first whose `when` holds (None: no stage)."""
    return next((stage for stage in stages if stage.when(ctx) is True), None)


DST_SLACK = dt.timedelta(hours=3)  # more than any zone's DST shift


@lru_cache(maxsize=1 << 16)
def _local(utc: dt.datetime, tz) -> dt.datetime:
    """`utc` on the zone's clock: one object for every customer of the zone at a tick, so its hash (which
    asks the zone for its offset) is worked out once, when the calendar's caches and the contacts
    writer look it up."""
    return utc.astimezone(tz)


@lru_cache(maxsize=1 << 16)
def _utc(moment: dt.datetime, zone, fold: int) -> dt.datetime:
    """A moment in UTC: decisions' moments (`_local`'s) and slots recur for every customer of a zone.
    Keyed with the moment's zone too: a key equal to one of another zone (the same instant) would be
    compared on each lookup, and comparing times of two zones asks both for their offsets. And with its
    fold: the two readings of a time the clock shows twice are equal, with the same hash, in one zone."""
    return moment.astimezone(UTC)


@lru_cache(maxsize=4096)
def _day_start(date: dt.date, tz) -> dt.datetime:
    """The local midnight that starts `date` (combined with the zone as it is: fold 0), in UTC: a wake
    asked of every invoice not issued yet at every decision, for a few dates per zone."""
    return dt.datetime.combine(date, dt.time(), tz).astimezone(UTC)


def cap_shift(at: dt.datetime, seconds: int, tz) -> dt.datetime:
    """`at` moved by a cap's period: whole days on the customer's clock, so that `1 per 1d` lets a daily
    09:00 cadence through the 23-hour day of a DST change; shorter periods exactly.

    The clock here never goes back: while it shows the hour that repeats when DST ends a second time, it
    is taken to stand where it was before it fell back. Back in time, the start of the window that ends
    at `at`: the last instant at which the clock showed that time, days earlier, or an earlier one (of a
    time shown twice, the second reading: the window is never longer than the days on the clock; of a
    time never shown, the end of the jump). It never moves back as time goes on, so a send that has left
    the window never comes back into it. Forward, when a send at `at` leaves the window: the first
    instant whose window start (as above) is `at` or later, so that a contact a cap held goes out at the
    earliest moment it may (docs/language.md, caps)."""
    if seconds % 86400:
        return at + dt.timedelta(seconds=seconds)
    # keyed by the UTC instant: two readings of a repeated local time are equal (and hash alike) as datetimes
    return _day_shift(at.astimezone(UTC), seconds, tz)


@lru_cache(maxsize=1 << 16)
def _day_shift(at: dt.datetime, seconds: int, tz) -> dt.datetime:
    """`cap_shift` by whole days (the result in UTC): the caps of every customer of a zone ask it for the
    same ticks, so it is computed once for all of them."""
    days = dt.timedelta(days=seconds // 86400)
    local = at.astimezone(tz)
    if seconds < 0:
        clock = local.replace(tzinfo=None)
        if local.fold:  # the second reading of a time shown twice: the clock stands at the last time it
            # showed before it fell back (a microsecond before the end of the stretch it shows again)
            first = local.replace(fold=0).astimezone(UTC)
            fell = _offset_change(first, at, tz)
            clock = fell.replace(tzinfo=None) + first.astimezone(tz).utcoffset() - dt.timedelta(microseconds=1)
        return _reading(clock + days, tz, last=True)
    return _reading(_lowest_from(at, local, tz) + days, tz, last=False)


def _lowest_from(at: dt.datetime, local: dt.datetime, tz) -> dt.datetime:
    """The lowest local time whose window start (`_reading(..., last=True)`) is `at` or later: `at`'s own
    local time, but the start of the stretch the clock shows twice when `at` is its first reading, and the
    start of the times jumped over when `at` is the end of a jump (they all read as `at`)."""
    second = local.replace(fold=1).astimezone(UTC)
    if second > at:  # the first reading of a time the clock shows again after falling back
        return _offset_change(at, second, tz).astimezone(tz).replace(tzinfo=None)
    before = (at - dt.timedelta(seconds=1)).astimezone(tz).utcoffset()
    if before < local.utcoffset():  # within a second after the clock jumped forward
        jumped = at.astimezone(UTC).replace(tzinfo=None) + before  # `at` read on the clock before the jump
        if _reading(jumped, tz, last=True) == at:
            return jumped
    return local.replace(tzinfo=None)


def _reading(naive: dt.datetime, tz, last: bool) -> dt.datetime:
    """The instant the clock shows the local time `naive`: of a time shown twice the last or the first
    reading; of a time never shown (the clock jumped over it) the end of the jump either way."""
    first, second = naive.replace(tzinfo=tz, fold=0).astimezone(UTC), naive.replace(tzinfo=tz, fold=1).astimezone(UTC)
    if first == second:
        return first
    if first < second:  # shown twice
        return second if last else first
    return _offset_change(second, first, tz)  # never shown: fold=0 reads it with the offset before the jump


def _offset_change(before: dt.datetime, after: dt.datetime, tz) -> dt.datetime:
    """The first instant after `before` (to the second) with the UTC offset `after` has: where the clock
    changed between the two (they are at most a DST shift apart)."""
    lo, hi = math.floor(before.timestamp()), math.ceil(after.timestamp())
    offset = before.astimezone(tz).utcoffset()
    if after.astimezone(tz).utcoffset() == offset:
        raise ValueError(f"the offset of {tz} does not change between {before} and {after}")
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if dt.datetime.fromtimestamp(mid, tz).utcoffset() == offset:
            lo = mid
        else:
            hi = mid
    return dt.datetime.fromtimestamp(hi, UTC)


def not_for_this_invoice(state: CustomerState, step: StepRt, invoice_id: str, trigger: dt.datetime, occ,
                         sent=None) -> str:
    """Why an event step of this occurrence, not decided yet, is none for this invoice ("" if it is
    one): a reminder due before its promise was made (promise-3d of a promise made the day before) never
    was one to send; an occurrence about all the customer's invoices whose message went out for one of
    them is not new to an invoice seen later (one message per occurrence). Closed without a contact;
    explain says why. `sent`: `sent_for`, memoised by the caller."""
    if step.anchor == "promise" and occ.made is not None and trigger < occ.made:
        return "it was due before the promise was made"
    if occ.customer_wide:
        went = sent(step.id, occ.id) if sent else sent_for(state, step.id, occ.id)
        if went - {invoice_id}:
            return "the promise is about all the invoices: its message went out with another one"
    return ""


def sent_for(state: CustomerState, step_id: str, occurrence: str) -> set[str]:
    """The invoices for which an event step's instance of this occurrence went out (sent, or an agent task)."""
    done = state.done
    return {i for i in state.invoices if done.get(f"{step_id}|{i}|{occurrence}") in ("sent", "escalated")}


def to_float(value) -> float | None:
    """A priority as a float; None (no priority) for null, and for a decimal past a float's range (1e309 is
    `inf`: it would sort first and make the task's JSON invalid), as the expressions make an overflow null."""
    try:
        number = float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
    return number if number is None or math.isfinite(number) else None


def decide(rt: Runtime, state: CustomerState, now: dt.datetime) -> Outcome:
    """Everything due for this customer at `now` (aware), and the next moment to look again."""
    return Decider(rt, state, now).run()


def withdrawn(rt: Runtime, state: CustomerState, now: dt.datetime, invoice_ids, channel: str,
              step_id: str | None = None) -> str | None:
    """Why a contact decided at an earlier tick but not delivered yet (waiting for a provider retry, or
    left by a crash before the call) must not go out now: since the decision the customer became
    do-not-contact, opted out of the channel or withdrew consent (absolute, SPEC 4.6), entered a legal
    state in which a compliance profile stops contact, or every invoice it is about was paid or written
    off, or, for a stage's step, has left the stage or is paused (a due-date reminder retried after the
    due date, a dunning message after a dispute opened), as a deferred contact would be. None: it may
    still go. Agent tasks and webhooks are our own systems, not contacts with the customer, and always go."""
    if channel in NOT_CONTACTS:
        return None
    if state.customer.do_not_contact:
        return "do_not_contact"
    problem = address_problem(state.customer, channel)
    if problem is not None:
        return f"{channel}: {problem}"
    if rt.guard is not None:  # only the laws' lasting blocks (a stop state, no consent): the contact was lawful
        block = rt.guard.check(state.customer, channel, invoice_ids, now.astimezone(ZoneInfo(
            state.customer.timezone or rt.timezone)), [], [])
        if block is not None and block.until is None:
            return block.reason
    invoices = [state.invoices[i] for i in invoice_ids if i in state.invoices]
    if invoices and all(stopped(rt, state, i, now) for i in invoices):
        return "invoices paid or closed"
    step = rt.steps.get(step_id) if step_id else None
    if step is not None and invoices and step.owner not in rt.events:
        return _no_longer_in_stage(rt, state, now, step, invoices)
    return None


# why a late contact is withdrawn when its invoices left its stage or are paused: no fault of its channel,
# and its step is closed (runner._withdraw)
CADENCE_REASONS = ("stage ended", "paused: disputed", "paused: promise to pay")


def _no_longer_in_stage(rt: Runtime, state: CustomerState, now: dt.datetime, step: StepRt, invoices) -> str | None:
    """Why none of the invoices of a stage step's contact is in its stage and cadence any more: the
    first invoice's reason (stage ended, or the pause), or None when one still is."""
    decider = Decider(rt, state, now)
    reasons = []
    for invoice in invoices:
        ctx = Context(decider.facts, invoice)
        pause = pause_of(rt, state, invoice, ctx, decider.now)
        stage = _first_stage(rt.stages, ctx)
        if pause is not None:
            reasons.append("paused: disputed" if pause == "disputed" else "paused: promise to pay")
        elif stage is None or stage.name != step.owner:
            reasons.append("stage ended")
        else:
            return None
    return reasons[0]


def held_now(rt: Runtime, state: CustomerState, now: dt.datetime, invoice_ids, channel: str,
             decided_at: dt.datetime) -> tuple[str, dt.datetime | None] | None:
    """Why a contact decided at `decided_at` and not delivered yet must not go out at `now` but wait,
    and until when: its channel's window or a holiday, a cap, or a compliance profile's temporary block
    (its hours, a frequency rule, the pause after a conversation). A retry comes an hour or a day after
    its decision, and the windows, the caps and the law hold at the moment a message really goes (where
    it is then counted); the caps and the guard count the contacts made meanwhile, not this one. Until
    None: it cannot wait for this channel (no window at all any more, or a cap with `on_cap: skip`): its
    step falls back. None: it may go now. Agent tasks and webhooks are not contacts and always go."""
    if channel in NOT_CONTACTS:
        return None
    decider = Decider(rt, state, now)
    slot = decider.cal.next_slot(channel, decider.now, decider.tz)
    if slot is None:
        return "no window", None
    if slot.at > decider.now:
        return slot.reason or "window", slot.at
    ids = tuple(invoice_ids)
    itself = SentContact(decided_at.astimezone(UTC), channel, ids)
    if itself in decider.sent:
        decider.sent.remove(itself)
    capped, until = decider._cap_block(channel)
    if capped:
        return f"cap:{capped}", until if rt.on_cap == "defer" else None
    if rt.guard is None:
        return None
    block = rt.guard.check(state.customer, channel, ids, decider.now, decider.sent, state.conversations)
    return None if block is None else (block.reason, block.until)


def pause_of(rt: Runtime, state: CustomerState, invoice: InvoiceInfo, ctx, now: dt.datetime):
    """What pauses the invoice's due-date cadence now (SPEC 4.6, `pause_when`): "disputed", the active
    promise, or None. The core's rule, which `collect explain` tells."""
    # without a dispute recorded or a status given as disputed, the status (events._status) is not
    # disputed: most visits skip working it out
    if ("disputed" in rt.pause_when and (state.disputes or invoice.status == "disputed")
            and ctx["invoice.status"] == "disputed"):
        return "disputed"
    return promise_active(state, invoice, now) if "promise_active" in rt.pause_when else None


def stopped(rt: Runtime, state: CustomerState, invoice: InvoiceInfo, now: dt.datetime) -> bool:
    """Does the policy's `stop_when` (paid, written off) or a `stop` step end this invoice's cadence?"""
    decider = Decider(rt, state, now)
    return decider._stopped(invoice, Context(decider.facts, invoice))


def recorded(d: Decision) -> Decision:
    """A decision as the contacts history keeps it. A send of a step reopened by a channel that failed for
    good gets `failed:<channel>` from the step memory as its reason, which the core hands on as it does a
    deferral's; it was not deferred (a sent contact's reason is why it was deferred first: docs/files.md,
    contacts)."""
    return d._replace(reason="") if d.status == "sent" and d.reason.startswith(REOPENED) else d


def reopen(state: CustomerState, keys, channel: str, reason: str) -> None:
    """The channel failed for good for these step instances (the store's `delivery.reopen`, in memory): the
    steps wait again, and the core falls back to their next channel."""
    for key in keys:
        state.failed.setdefault(key, {})[channel] = reason or "failed"
        state.pending[key] = f"{REOPENED}{channel}"
        state.done.pop(key, None)


def apply(state: CustomerState, outcome: Outcome) -> None:
    """Record an outcome in the state (the simulator does this in memory, `run` in the store)."""
    for key in outcome.silent:
        state.done[key] = "not applicable"
    for d in outcome.decisions:
        if d.status == "deferred":
            for key in d.keys:  # a step reopened by a failed channel now waits for the next one: say why
                if state.pending.get(key, "").startswith(REOPENED):
                    state.pending[key] = d.reason
                else:
                    state.pending.setdefault(key, d.reason)
            continue
        for key in d.keys:
            state.done[key] = d.status
            state.pending.pop(key, None)
        if d.status == "sent" and d.channel not in ("", "webhook", "agent"):
            state.sent.append(SentContact(_utc(d.at, d.at.tzinfo, d.at.fold), d.channel, d.invoice_ids))
        if d.status == "skipped" and d.reason == "stopped by step":
            state.stopped.update(d.invoice_ids)

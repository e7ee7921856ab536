"""A Plan made executable: compiled expressions, the contact calendar, caps and steps, built once.

Everything here is derived from the plan JSON alone, so `run`, `simulate` and `explain` execute exactly
what `collect compile` printed (a plan file could be executed without the policy source).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

from ..dsl import expr
from .plan import Plan

Predicate = Callable[[dict], object]
# Every channel reaches the customer (the built-in ones and plugins'), but these, which are our own
# systems: they are no contact, count against no cap, and no law limits them.
NOT_CONTACTS = frozenset({"webhook", "agent"})


@dataclass(frozen=True)
class StepRt:
    id: str
    owner: str  # stage name or event type
    action: str  # send | escalate | webhook | stop
    anchor: str  # due | event | promise
    days: int
    time: int | None  # minutes after local midnight
    channels: tuple[str, ...]
    template: str | None
    condition: Predicate | None  # `for` and `if` together
    queue: str | None  # escalate (or on_exhausted) queue
    priority: Predicate | None
    webhook: str | None
    on_exhausted: bool


@dataclass(frozen=True)
class CapRt:
    rule: str  # e.g. "sms-1-per-1d": reported as the reason cap:<rule>
    channel: str  # a channel or "any"
    max: int
    per_s: int
    cooldown_s: int | None

    def counts(self, channel: str) -> bool:
        return self.channel == channel or (self.channel == "any" and channel not in NOT_CONTACTS)

    def cools_after(self, channel: str) -> bool:
        """Does a conversation on `channel` start this cap's cooldown? On `any`, every conversation does,
        an agent's call or visit too (agent tasks are no contacts the cap counts, a talk with one is one)."""
        return self.channel in ("any", channel)


@dataclass(frozen=True)
class StageRt:
    name: str
    when: Predicate
    steps: tuple[StepRt, ...]


class Runtime:
    """The executable form of a plan (immutable after construction)."""

    def __init__(self, plan: Plan):
        from .calendar import ContactCalendar

        self.plan = plan
        self.plan_hash = plan.plan_hash
        doc = plan.doc
        self.timezone = doc["timezone"]
        self.currency = doc["currency"]
        self.group_by = doc["group_by"]
        self.catch_up = doc["catch_up"]
        self.max_lateness_s = doc["max_lateness_minutes"] * 60
        self.on_cap = doc["on_cap"]
        self.pause_when = frozenset(doc["pause_when"])
        self.stop_when = frozenset(doc["stop_when"])
        self.fields_used: set[str] = set()
        self._triggers: dict = {}
        self.segments: dict[str, Predicate] = {}
        for segment in doc["segments"]:  # in dependency order
            self.segments[segment["name"]] = self._compile(segment["expr"])
        self.stages = tuple(StageRt(s["name"], self._compile(s["when"]), tuple(map(self._step, s["steps"])))
                            for s in doc["stages"])
        # When the stages' `when` read nothing but the days past due (the usual policy), an invoice's
        # stage is a function of that number: worked out once per number, not at every decision.
        self.stage_by_days: dict[int, StageRt | None] | None = None
        if all(_reads_only(expr.parse(s["when"]), "invoice.days_past_due") for s in doc["stages"]):
            self.stage_by_days = {}
        self.events = {event: tuple(map(self._step, steps)) for event, steps in doc["events"].items()}
        self.steps = {step.id: step for steps in (*(s.steps for s in self.stages), *self.events.values())
                      for step in steps}  # by id (ids are unique in a policy)
        self.caps = tuple(CapRt(c["rule"], c["channel"], c["max"], c["per_minutes"] * 60,
                                c["cooldown_minutes"] * 60 if c["cooldown_minutes"] else None)
                          for c in doc["caps"])
        self.longest_cap_s = max((c.per_s for c in self.caps), default=0)
        self._caps_on: dict[str, tuple[CapRt, ...]] = {}
        # (channel, zone, holidays' country, profiles) -> never lawful within the window: Decider._never_lawful
        self.lawless: dict = {}
        self.experiments = {name: sorted(e["variants"].items()) for name, e in doc["experiments"].items()}
        self.experiment_units = {name: e["unit"] for name, e in doc["experiments"].items()}
        cal = doc["calendar"]
        self.guard = self._guard(doc, cal["country"])
        self.calendar = ContactCalendar(
            windows={ch: {d: [tuple(r) for r in rs] for d, rs in days.items()}
                     for ch, days in doc["windows"]["channels"].items()},
            holidays_open=doc["windows"]["holidays"] == "open",
            country=cal["country"], subdivision=cal["subdivision"],
            extra_holidays=[_date(d) for d in cal["extra_holidays"]], weekend=cal["weekend"])
        self.holidays_by_customer = cal.get("holidays_by") == "customer"
        self._calendars: dict[str | None, ContactCalendar] = {}

    def calendar_for(self, country: str | None) -> "ContactCalendar":
        """The calendar of a customer of `country`: the policy's, unless `holidays_by: customer` asks for
        the public holidays of the customer's own country (the policy's for a customer without one). The
        windows, `extra_holidays` and `subdivision` (of the policy's country) are the policy's for all."""
        if not self.holidays_by_customer or not country or country == self.calendar.country:
            return self.calendar
        found = self._calendars.get(country)
        if found is None:
            found = self._calendars[country] = self.calendar.of_country(country)
        return found

    @staticmethod
    def _guard(doc, default_country: str | None):
        """The compliance guard of the plan's profiles (their rules are in the plan), or None."""
        if not doc["compliance"]:
            return None
        from .compliance import Guard

        return Guard(_plain(doc["compliance_profiles"]), auto=doc["compliance"] == "auto",
                     default_country=default_country)

    def _compile(self, text: str | None) -> Predicate | None:
        if text is None:
            return None
        node = expr.parse(text)
        self.fields_used |= _fields_of(text)
        return expr.compile_expr(node, self.segments)

    def _step(self, s: dict) -> StepRt:
        conditions = [self._compile(c) for c in (s["for"], s["if"]) if c]
        condition = conditions[0] if len(conditions) == 1 else (
            (lambda ctx, a=conditions[0], b=conditions[1]: a(ctx) is True and b(ctx) is True) if conditions else None)
        escalation = s["escalate"] or s["on_exhausted"]
        return StepRt(
            id=s["id"], owner=s["owner"], action=s["action"], anchor=s["trigger"]["anchor"],
            days=s["trigger"]["days"], time=s["trigger"]["time_minutes"], channels=tuple(s["channels"]),
            template=s["template"], condition=condition, queue=escalation["queue"] if escalation else None,
            priority=self._compile(escalation["priority"]) if escalation else None,
            webhook=s["webhook"], on_exhausted=s["on_exhausted"] is not None)

    def caps_on(self, channel: str) -> tuple[CapRt, ...]:
        """The caps that count a send on `channel`, in the policy's order (asked for every send)."""
        found = self._caps_on.get(channel)
        if found is None:
            found = self._caps_on[channel] = tuple(cap for cap in self.caps if cap.counts(channel))
        return found

    def stage_triggers(self, due_date, tz, calendar) -> tuple:
        """(trigger instant in UTC, step) of every stage step for a due date in a zone, sorted by time.

        Invoices share due dates, zones and calendars, so this is computed once for each, not per invoice.
        In UTC, as the decision core keeps instants: it compares them with no call to the zone."""
        key = (due_date, tz.key, calendar.country)
        found = self._triggers.get(key)
        if found is None:
            found = tuple(sorted(((self.step_trigger(step, due_date, tz, calendar).astimezone(dt.timezone.utc), step)
                                  for stage in self.stages for step in stage.steps), key=lambda t: (t[0], t[1].id)))
            self._triggers[key] = found
        return found

    def step_trigger(self, step: StepRt, anchor, tz, calendar):
        channel = step.channels[0] if step.channels else None
        return calendar.trigger_instant(anchor + dt.timedelta(days=step.days), step.time, channel, tz)

    def variant(self, experiment: str, unit_id: str) -> str:
        """Stable assignment: the same unit always lands in the same bucket (sha256, not Python's hash)."""
        bucket = _bucket(experiment, unit_id)
        for name, percent in self.experiments[experiment]:
            if bucket < percent:
                return name
            bucket -= percent
        return self.experiments[experiment][-1][0]


@lru_cache(maxsize=65536)  # asked at every decision of a unit; a simulation runs one unit at a time
def _bucket(experiment: str, unit_id: str) -> int:
    digest = hashlib.sha256(f"{experiment}:{unit_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100


def _plain(value):
    """Plan data (read-only mappings and tuples) as plain dicts and lists."""
    if hasattr(value, "items"):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _date(value):
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(value)


_PLAIN = frozenset({"literal", "list", "and", "or", "not", "compare", "in", "not_in", "between", "is_null",
                    "is_not_null", "neg", "arith"})  # no segment, function or other field read


def _reads_only(node, field: str) -> bool:
    """Is the expression's value a function of the field `field` alone?"""
    if node.kind == "field":
        return node.value == field
    return node.kind in _PLAIN and all(_reads_only(arg, field) for arg in node.args)


def _fields_of(text: str) -> set[str]:
    """Field names an expression reads (so the core builds only the context values that are used)."""
    import re

    return set(re.findall(r"\b(?:invoice|customer|contacts|promise)\.[a-z_][a-z0-9_]*", text))

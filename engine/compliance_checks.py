"""Compile-time checks of a plan against compliance profiles (SPEC 5: "checked twice").

For each send step and each profile in `compliance` (the resolved docs; with `compliance: auto`, all of
them, since any customer may be from any country):
- can the step ever send lawfully: a channel whose policy window (its own, else `default`) never meets the
  profile's hours is a warning, a step none of whose channels can is an error;
- a step whose explicit trigger time lies outside the profile's hours on every day: a warning (the contact
  still goes later that day, or is deferred);
- per stage, does the cadence of one invoice by itself exceed a cap, use more channels than a
  distinct-channels rule allows, or space messages closer than a min-spacing rule: a warning naming the
  steps, the count and the limit (the guard will defer the excess). The cadence is counted as the core
  sends it for each weekday the due date can fall on (a step outside the open hours goes out at their
  next opening), periods as the guard measures them (rolling ones in minutes, calendar days by dates,
  calendar weeks from Monday to Sunday).
  A rule broken for due dates on any weekday is warned, with the numbers of the weekday that breaks it
  most and, unless all seven do, the weekdays that break it ("... (for due dates on Mon-Fri and Sun)").
  Steps that share a trigger all count, except those whose conditions exclude each other (they are
  alternatives: an experiment's variants, complementary segments): of those, the largest group that can
  fire together for one invoice counts;
- per template body a send step uses, the profile's compile-time content rules (TEMPLATE_RULES: us-reg-f's
  electronic opt-out, 12 CFR 1006.6(e)).
Returns plain `Finding` records; the compiler maps `step_id` (or `template`) to a file position.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from itertools import combinations

from ..dsl.timeparse import DAYS, format_time
from .compliance import PLUGINS, covers

FULL_DAY = ((0, 1440),)


@dataclass(frozen=True)
class Finding:
    code: str
    severity: str  # error | warning
    message: str
    step_id: str | None
    profile: str
    rule: str
    template: tuple[str, str, str | None] | None = None  # (name, channel, part): a finding about a template body


def check_plan(plan: dict, compliance: list[dict], dead: set[str] = frozenset()) -> list[Finding]:
    """`dead`: ids of the steps that can never fire (outside their stage, a condition never true): a
    cadence does not count them, nor are their templates checked."""
    findings: list[Finding] = []
    windows = plan["windows"]["channels"]
    steps = [s for stage in plan["stages"] for s in stage["steps"]]
    steps += [s for event_steps in plan["events"].values() for s in event_steps]
    conditions = Conditions(plan)
    sends = [s for s in steps if s["action"] == "send" and s["channels"]]
    for doc in compliance:
        for step in sends:
            findings += _step_windows(doc, step, windows)
        for stage in plan["stages"]:
            findings += _cadence(doc, _live(stage, dead), windows, conditions)
        findings += _template_rules(doc, plan, [s for s in steps if s["id"] not in dead])
    return findings + _stacked_windows(plan, compliance, sends, windows, findings)


def _stacked_windows(plan: dict, compliance: list[dict], sends: list[dict], windows: dict, found) -> list[Finding]:
    """Profiles that apply together (all of a list; with `auto`, those of one country) stack: their hours
    intersect. A step each profile alone lets through may still never be lawful under them all."""
    groups: dict = {}
    for doc in compliance:
        groups.setdefault(doc["country"] if plan.get("compliance") == "auto" else "", []).append(doc)
    errored = {f.step_id for f in found if f.code == "compliance-never-lawful"}
    out = []
    for docs in (g for g in groups.values() if len(g) > 1):
        merged = {"profile": "+".join(d["profile"] for d in docs),
                  "rules": [r for d in docs for r in d["rules"] if r["kind"] == "window"]}
        for step in (s for s in sends if s["id"] not in errored):
            alone = {c for c in step["channels"] if any(_never(d, c, windows) for d in docs)}
            new = [c for c in step["channels"] if c not in alone and _never(merged, c, windows)]
            out += _never_findings(merged, step, new, len(alone) + len(new), windows)
    return out


def _never_findings(doc: dict, step: dict, never: list[str], ruled_out: int, windows: dict) -> list[Finding]:
    """The findings of the step's channels `never` that the profile (or stack) `doc` can never let through:
    an error when, with those ruled out otherwise, `ruled_out` channels are all of them, else a warning
    each."""
    if not never:
        return []
    name = doc["profile"]
    texts = [f"the policy's {c} window ({_format(_policy_hours(windows, c))}) never meets {name}'s hours "
             f"({_format(_profile_hours(doc, c)[0])})" for c in never]
    rules = [_profile_hours(doc, c)[1][0] for c in never]
    if ruled_out == len(step["channels"]):
        return [Finding("compliance-never-lawful", "error", f"step '{step['id']}' can never send lawfully "
                        f"under {name}: {'; '.join(texts)}", step["id"], name, rules[0])]
    return [Finding("compliance-channel-never-lawful", "warning", f"step '{step['id']}' can never use {c} "
                    f"lawfully under {name}: {text}", step["id"], name, rule)
            for c, text, rule in zip(never, texts, rules)]


def _never(doc: dict, channel: str, windows: dict) -> bool:
    """Do the profile's hours for the channel never meet the policy's window for it?"""
    hours, rules = _profile_hours(doc, channel)
    policy = _policy_hours(windows, channel)
    return bool(rules) and not any(_intersect(policy[d], hours[d]) for d in DAYS)


# -- windows --------------------------------------------------------------------------------------




def _intersect(a, b) -> tuple:
    out = []
    for lo, hi in a:
        for lo2, hi2 in b:
            if max(lo, lo2) < min(hi, hi2):
                out.append((max(lo, lo2), min(hi, hi2)))
    return tuple(sorted(out))


def _profile_hours(doc: dict, channel: str) -> tuple[dict, list[str]]:
    """The profile's allowed hours per day for a channel (every window rule applies), and those rules."""
    rules = [r for r in doc["rules"] if r["kind"] == "window" and covers(r["channels"], channel)]
    hours = {day: FULL_DAY for day in DAYS}
    for rule in rules:
        hours = {day: _intersect(hours[day], rule["days"].get(day, ())) for day in DAYS}
    return hours, [r["id"] for r in rules]


def _policy_hours(windows: dict, channel: str) -> dict:
    days = windows.get(channel) or windows.get("default") or {}
    return {day: tuple(map(tuple, days.get(day, ()))) for day in DAYS}


def _step_windows(doc: dict, step: dict, windows: dict) -> list[Finding]:
    never = [c for c in step["channels"] if _never(doc, c, windows)]
    out = _never_findings(doc, step, never, len(never), windows)
    time = step["trigger"]["time_minutes"]
    if time is not None and len(never) < len(step["channels"]):
        out += _time_outside(doc, step, time)
    return out


def _time_outside(doc: dict, step: dict, time: int) -> list[Finding]:
    name, rules = doc["profile"], []
    for channel in step["channels"]:
        hours, ids = _profile_hours(doc, channel)
        if not ids or any(lo <= time < hi for d in DAYS for lo, hi in hours[d]):
            return []
        rules.append((channel, ids, hours))
    channels = ", ".join(c for c, _, _ in rules)
    return [Finding("compliance-time-outside-window", "warning", f"step '{step['id']}' is set for "
                    f"{format_time(time)}, outside {name}'s hours for {channels} ({_format(rules[0][2])}); "
                    "the guard will defer it to the next lawful time", step["id"], name, rules[0][1][0])]


def _format(hours: dict) -> str:
    """mon-fri 08:00-19:00, sat 09:00-13:00 (runs of days with the same hours); 'never' when empty."""
    parts, i = [], 0
    while i < len(DAYS):
        j = i
        while j + 1 < len(DAYS) and hours[DAYS[j + 1]] == hours[DAYS[i]]:
            j += 1
        if hours[DAYS[i]]:
            days = DAYS[i] if i == j else f"{DAYS[i]}-{DAYS[j]}"
            ranges = ", ".join(f"{format_time(lo)}-{format_time(hi)}" for lo, hi in hours[DAYS[i]])
            parts.append(f"{days} {ranges}")
        i = j + 1
    return "; ".join(parts) or "never"


# -- cadence --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Trigger:
    """When a step's contact goes out for one weekday of the due date (`due_weekday`, 0: Monday): `at`
    minutes after the due date's local midnight (`day`: the date it goes out on, in days after the due
    date; `week`: its Monday-to-Sunday week, counted from the due date's); `trigger` is when it was due,
    which orders steps deferred to one opening as the core does (oldest first)."""

    at: int
    trigger: int
    channel: str
    step_id: str
    due_weekday: int

    @property
    def day(self) -> int:
        return self.at // 1440

    @property
    def week(self) -> int:
        return (self.due_weekday + self.day) // 7


def _open_hours(doc: dict, windows: dict, channel: str) -> dict:
    """The hours a contact on `channel` can go out, per weekday: the policy's window (the core defers to
    its opening) and the profile's hours (the guard defers to theirs) both open."""
    policy, hours = _policy_hours(windows, channel), _profile_hours(doc, channel)[0]
    return {day: _intersect(policy[day], hours[day]) for day in DAYS}


def _goes_out(step: dict, weekday: int, windows: dict, open_hours: dict) -> _Trigger | None:
    """When the core sends the step if the due date falls on `weekday` (0: Monday), before any cap: at
    its trigger, its time or else its channel's opening that day (midnight on a closed day); outside the
    open hours, at the next minute they are open, on a later day if need be, which is where the core
    defers it. Two steps deferred to one opening still go out as two contacts (the core groups a step's
    invoices, never two steps). None: never open."""
    channel, day, time = step["channels"][0], step["trigger"]["days"], step["trigger"]["time_minutes"]
    if time is None:
        today = _policy_hours(windows, channel)[DAYS[(weekday + day) % 7]]
        time = today[0][0] if today else 0
    for offset in range(8):  # a week on, then the start's own weekday again from midnight
        for lo, hi in open_hours[DAYS[(weekday + day + offset) % 7]]:
            start = max(lo, time) if offset == 0 else lo
            if start < hi:
                return _Trigger((day + offset) * 1440 + start, day * 1440 + time, channel, step["id"], weekday)
    return None


def _live(stage: dict, dead: set[str]) -> dict:
    """The stage with only the steps that can go out: not the dead ones, nor those a day after a `stop`
    step without a condition (the invoice has ended by then)."""
    stops = [s["trigger"]["days"] for s in stage["steps"] if s["action"] == "stop" and not s["for"] and not s["if"]
             and s["id"] not in dead]
    end = min(stops, default=None)
    steps = [s for s in stage["steps"] if s["id"] not in dead and (end is None or s["trigger"]["days"] <= end)]
    return {**stage, "steps": steps}


def _counted(stage: dict, rule: dict, conditions: "Conditions") -> list[dict]:
    """The stage's send steps the rule counts (by their first channel). Steps that share a trigger all go
    out, as two messages, unless their conditions exclude each other: then they are alternatives (an
    experiment's variants, complementary segments) and only the largest group of them that can fire
    together for one invoice counts. Conditions are compared only at one trigger, where they are evaluated
    at one moment on the same facts; steps at different triggers all count."""
    by_trigger: dict[tuple, list[dict]] = {}
    for step in stage["steps"]:
        if step["action"] == "send" and step["channels"] and covers(rule["channels"], step["channels"][0]):
            by_trigger.setdefault((step["trigger"]["days"], step["trigger"]["time_minutes"]), []).append(step)
    return [step for group in by_trigger.values() for step in together(group, conditions.exclusive)]


def together(group: list[dict], exclusive) -> list[dict]:
    """The largest subset of `group` (steps at one trigger) with no two steps whose conditions exclude each
    other; of equals, the one with the most channels, then the earliest steps."""
    pairs = {(i, j) for i, j in combinations(range(len(group)), 2) if exclusive(group[i], group[j])}
    if not pairs:
        return group
    if len(group) > 12:  # never in practice; in stage order, each step unless it excludes one kept (a lower bound)
        kept: list[int] = []
        for j in range(len(group)):
            if not any((i, j) in pairs for i in kept):
                kept.append(j)
        return [group[i] for i in kept]
    for size in range(len(group), 0, -1):
        fits = [c for c in combinations(range(len(group)), size) if not any(p in pairs for p in combinations(c, 2))]
        if fits:
            best = max(fits, key=lambda c: len({group[i]["channels"][0] for i in c}))  # max: the first of equals
            return [group[i] for i in best]
    return group[:1]


def _triggers(steps: list[dict], weekday: int, windows: dict, open_hours) -> list[_Trigger]:
    """When the counted steps go out if the due date falls on `weekday`, in that order."""
    out = []
    for step in steps:
        trigger = _goes_out(step, weekday, windows, open_hours(step["channels"][0]))
        if trigger is not None:
            out.append(trigger)
    return sorted(out, key=lambda t: (t.at, t.trigger, t.step_id))


class Conditions:
    """Whether two steps' conditions (`for` and `if`, both must hold) exclude each other: proved when,
    taken together, dsl/exprrange.py's may_hold finds them never true (comparisons of one field with
    constants, segments followed), with an experiment's `variant("e")` read as one more field, or when
    one condition requires `not X` and the other requires X (each of X's own conditions). Anything else
    may hold together."""

    def __init__(self, plan: dict):
        from ..dsl.expr import parse

        self._parse = lambda text: _atoms(parse(text))
        self.segments = {s["name"]: self._parse(s["expr"]) for s in plan.get("segments", ())}
        self._cache: dict[tuple, bool] = {}

    def exclusive(self, a: dict, b: dict) -> bool:
        key = (_condition_texts(a), _condition_texts(b))
        if not key[0] or not key[1]:
            return False  # a step without a condition fires with any other
        if key not in self._cache:
            self._cache[key] = self._exclusive([self._parse(t) for t in key[0]], [self._parse(t) for t in key[1]])
        return self._cache[key]

    def _exclusive(self, a: list, b: list) -> bool:
        from ..dsl.expr import Node
        from ..dsl.exprrange import may_hold

        if not may_hold(Node("and", 0, 0, None, tuple(a + b)), self.segments):
            return True
        return self._negates(a, b) or self._negates(b, a)

    def _negates(self, a: list, b: list) -> bool:
        """Does `b` require `not X` for some X that `a` requires (X itself, or each of X's conjuncts)?"""
        held = {_shape(n) for n in self._conjuncts(a, refs=True)}
        negated = [n.args[0] for n in self._conjuncts(b) if n.kind == "not"]
        return any(_shape(x) in held or all(_shape(n) in held for n in self._conjuncts([x])) for x in negated)

    def _conjuncts(self, nodes: list, refs: bool = False, seen: frozenset = frozenset()) -> list:
        """The parts of an `and` of `nodes`, segment references followed into their conditions (and kept
        too with `refs`)."""
        out = []
        for node in nodes:
            name = _segment_name(node)
            if node.kind == "and":
                out += self._conjuncts(list(node.args), refs, seen)
            elif name is not None and name in self.segments and name not in seen:
                out += [node] * refs + self._conjuncts([self.segments[name]], refs, seen | {name})
            else:
                out.append(node)
        return out


def _condition_texts(step: dict) -> tuple[str, ...]:
    return tuple(text for text in (step.get("for"), step.get("if")) if text)


def _atoms(node):
    """The node with each `variant("e")` as a field of its own, `variant:e`, so that comparing it with
    different constants is seen as contradictory."""
    from ..dsl.expr import Node

    if node.kind == "call" and node.value == "variant" and len(node.args) == 1 and node.args[0].kind == "literal":
        return Node("field", node.offset, node.length, f"variant:{node.args[0].value}")
    if not node.args:
        return node
    return replace(node, args=tuple(_atoms(arg) for arg in node.args))


def _segment_name(node) -> str | None:
    if node.kind == "name":
        return node.value
    if node.kind == "call" and node.value == "segment" and len(node.args) == 1 and node.args[0].kind == "literal":
        return node.args[0].value
    return None


def _shape(node) -> tuple:
    """A node without its place in the text; a segment reference by its name, however written."""
    name = _segment_name(node)
    if name is not None:
        return ("segment", name)
    return (node.kind, repr(node.value), tuple(_shape(arg) for arg in node.args))


def _within(rule: dict):
    """(first, t) -> does t fall in the period `first` opens, as the guard measures it: a rolling period
    in minutes (the 8th call 6 days 23 hours after the 1st waits), a calendar day by local dates, a
    calendar week from Monday to Sunday."""
    if rule["period"] == "rolling":
        return lambda first, t: t.at - first.at < rule["period_minutes"]
    if rule["period"] == "calendar_week":
        return lambda first, t: t.week == first.week
    return lambda first, t: t.day == first.day


def _densest(triggers: list[_Trigger], within, measure) -> list[_Trigger]:
    """The group of triggers within one period that scores highest on `measure`."""
    best: list = []
    for i, first in enumerate(triggers):
        group = [t for t in triggers[i:] if within(first, t)]
        if measure(group) > measure(best):
            best = group
    return best


def _period_text(rule: dict) -> str:
    if rule["period"] == "rolling":
        minutes = rule["period_minutes"]
        return f"{minutes // 1440} days" if minutes % 1440 == 0 else f"{minutes} minutes"
    return "one calendar week" if rule["period"] == "calendar_week" else "one calendar day"


def _what(rule: dict) -> str:
    if rule["channels"] == ["voice"]:
        return "calls"
    if rule["channels"] == ["any"]:
        return "contacts"
    return f"contacts by {'/'.join(c for c in rule['channels'] if c != PLUGINS)}"  # a plugin's count too, unnamed


def _cadence(doc: dict, stage: dict, windows: dict, conditions: "Conditions") -> list[Finding]:
    """A finding per cadence rule that the stage breaks for due dates on some weekday: that of the
    weekday that breaks the rule most (the largest count, the most channels, the closest contacts; the
    earliest such weekday, Monday first), its message ending with the weekdays that break the rule
    unless all seven do."""
    out, hours = [], {}

    def open_hours(channel: str) -> dict:
        if channel not in hours:
            hours[channel] = _open_hours(doc, windows, channel)
        return hours[channel]

    for rule in doc["rules"]:
        check = CADENCE.get(rule["kind"])
        if check is None:
            continue
        broken = {}  # weekday -> (how badly, finding)
        counted = _counted(stage, rule, conditions)
        for weekday in range(7):
            triggers = _triggers(counted, weekday, windows, open_hours)
            found = check(doc, stage, rule, triggers) if triggers else None
            if found is not None:
                broken[weekday] = found
        if broken:
            finding = max(broken.values(), key=lambda found: found[0])[1]
            if len(broken) < 7:
                finding = replace(finding, message=f"{finding.message} (for due dates on {_weekdays(broken)})")
            out.append(finding)
    return out


def _weekdays(weekdays) -> str:
    """Weekday numbers (0: Monday) as text, Monday to Sunday, runs as ranges: 'Mon-Fri and Sun'."""
    names, days, runs = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"), sorted(weekdays), []
    for day in days:
        if runs and day == runs[-1][1] + 1:
            runs[-1][1] = day
        else:
            runs.append([day, day])
    texts = [names[a] if a == b else f"{names[a]}-{names[b]}" for a, b in runs]
    return texts[0] if len(texts) == 1 else f"{', '.join(texts[:-1])} and {texts[-1]}"


def _ids(group: list[_Trigger]) -> str:
    return group[0].step_id if len(group) == 1 else f"{group[0].step_id}..{group[-1].step_id}"


def _after(rule: dict) -> str:
    return " after a conversation" if rule.get("after_conversation") else ""


# Each check below looks at one weekday's triggers and returns None (the rule holds) or (how badly it is
# broken, the finding).


def _cap_cadence(doc, stage, rule, triggers) -> tuple[int, Finding] | None:
    group = _densest(triggers, _within(rule), len)
    if len(group) <= rule["max"]:
        return None
    return len(group), Finding(
        "compliance-cadence-exceeds-cap", "warning", f"stage '{stage['name']}': steps {_ids(group)} can place "
        f"{len(group)} {_what(rule)} in {_period_text(rule)}; {doc['profile']} allows {rule['max']}{_after(rule)}, "
        f"the guard will defer {len(group) - rule['max']}", group[0].step_id, doc["profile"], rule["id"])


def _channels_cadence(doc, stage, rule, triggers) -> tuple[int, Finding] | None:
    group = _densest(triggers, _within(rule), lambda g: len({t.channel for t in g}))
    used = sorted({t.channel for t in group})
    if len(used) <= rule["max"]:
        return None
    return len(used), Finding(
        "compliance-cadence-channels", "warning", f"stage '{stage['name']}': steps {_ids(group)} use {len(used)} "
        f"channels ({', '.join(used)}) in {_period_text(rule)}; {doc['profile']} allows {rule['max']}{_after(rule)}, "
        "the guard will defer the others", group[0].step_id, doc["profile"], rule["id"])


def _spacing_cadence(doc, stage, rule, triggers) -> tuple[int, Finding] | None:
    """The two consecutive contacts closest together, if closer than the spacing (the first such pair
    among equals): calendar spacing by dates, rolling by minutes. Two contacts at one instant are 0
    apart: the guard sends the first and defers the other."""
    calendar = rule["spacing"] == "calendar"
    need = rule["spacing_days"] if calendar else rule["spacing_minutes"]
    pairs = [(b.day - a.day if calendar else b.at - a.at, a, b) for a, b in zip(triggers, triggers[1:])]
    close = [pair for pair in pairs if pair[0] < need]
    if not close:
        return None
    apart, a, b = min(close, key=lambda pair: pair[0])
    text, distance = (f"{need} calendar days", f"{apart} day(s)") if calendar else (_hours(need), _hours(apart))
    return -apart, Finding(
        "compliance-cadence-spacing", "warning", f"stage '{stage['name']}': steps {a.step_id} and {b.step_id} "
        f"go out {distance} apart; {doc['profile']} wants {_what(rule)} at least {text} apart, the guard will "
        f"defer {b.step_id}", b.step_id, doc["profile"], rule["id"])


def _hours(minutes: int) -> str:
    return f"{minutes // 60} hours" + (f" {minutes % 60} minutes" if minutes % 60 else "")


CADENCE = {"cap": _cap_cadence, "distinct_channels": _channels_cadence, "min_spacing": _spacing_cadence}


# -- template content -----------------------------------------------------------------------------

# Compile-time rules about what a message says, per profile: the guard sees no text at run time, and a
# profile file's rules are the guard's. Profile -> (rule id, the channels whose bodies it reads).
#
# us-reg-f `electronic-opt-out` (12 CFR 1006.6(e)): every email, text message and other electronic message
# says how to opt out of further ones. A body offers a way when its text (Jinja included, every branch)
# has `unsubscribe` or `opt out` (`opt-out`, `opt_out`, `optout`) anywhere, an unsubscribe or opt-out link
# or variable included (`{{ customer.unsubscribe_url }}`), or the word STOP or BAJA (any case): a stop
# keyword instruction, "Reply STOP to opt out", "Responda BAJA". Both the text body and the HTML body of
# an email must. A WhatsApp template approved by Meta (template_name) is not read: its text is not in the
# policy.
TEMPLATE_RULES = {"us-reg-f": ("electronic-opt-out", ("email", "sms", "whatsapp"))}
OPT_OUT = re.compile(r"unsubscribe|opt[\s_-]?out|\b(?:stop|baja)\b", re.IGNORECASE)
_ADD = {
    "email": 'a line such as "To stop receiving these emails, reply UNSUBSCRIBE." ("Para no recibir más correos, '
             'responda BAJA.") or an unsubscribe link',
    "text": 'a line such as "Reply STOP to opt out." ("Responda BAJA para no recibir más mensajes.")',
}


def _template_rules(doc: dict, plan: dict, steps: list[dict]) -> list[Finding]:
    """A finding per body without an opt-out of a template that a send step uses on a channel the profile's
    rule reads; each body once, in the order the steps first use them."""
    if doc["profile"] not in TEMPLATE_RULES:
        return []
    rule, channels = TEMPLATE_RULES[doc["profile"]]
    templates, out, seen = plan.get("templates", {}), [], set()
    for step in steps:
        name = step.get("template")
        for channel in step["channels"] if step["action"] == "send" else ():
            body = templates.get(name, {}).get(channel)
            if body is not None and channel in channels and (name, channel) not in seen:
                seen.add((name, channel))
                out += _opt_out(doc, rule, name, channel, body)
    return out


def _opt_out(doc: dict, rule: str, name: str, channel: str, body: dict) -> list[Finding]:
    """A finding per part of the body (an email's text and HTML) that offers no way to opt out."""
    email = channel == "email"
    parts = ("body", "html") if email else ("body",)  # a Meta-approved WhatsApp template has no body here
    return [Finding("compliance-no-opt-out", "warning",
                    f"template '{name}' ({channel}{f' {part}' if email else ''}) says nowhere how to opt out: "
                    f"{doc['profile']} wants every email, text or other electronic message to say how to stop "
                    f"them (12 CFR 1006.6(e)); add {_ADD['email' if email else 'text']}",
                    None, doc["profile"], rule, (name, channel, part if email else None))
            for part in parts if isinstance(body.get(part), str) and not OPT_OUT.search(_sent_text(body[part]))]


_JINJA_COMMENT = re.compile(r"\{#.*?#\}", re.DOTALL)


def _sent_text(source: str) -> str:
    """A template's source without its Jinja comments, which never reach the customer: a `{# TODO: add
    the opt-out line #}` is no opt-out."""
    return _JINJA_COMMENT.sub("", source)

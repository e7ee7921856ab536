"""Compile-time checks of a plan against compliance profiles (SPEC 5: "checked twice").

For each send step and each profile in `compliance` (the resolved docs; with `compliance: auto`, all of
them, since any customer may be from any country):
- can the step ever send lawfully: a channel whose policy window (its own, else `default`) never meets the
  profile's hours is a warning, a step none of whose channels can is an error;
- a step whose explicit trigger time lies outside the profile's hours on every day: a warning (the contact
  still goes later that day, or is deferred);
- per stage, does the cadence of one invoice by itself exceed a cap, use more channels than a
  distinct-channels rule allows, or space messages closer than a min-spacing rule: a warning naming the
  steps, the count and the limit (the guard will defer the excess). Periods are measured as the guard
  measures them: rolling ones by the steps' times of day, calendar ones by dates.
Returns plain `Finding` records; the compiler maps `step_id` to a file position.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..dsl.timeparse import DAYS, format_time

FULL_DAY = ((0, 1440),)


@dataclass(frozen=True)
class Finding:
    code: str
    severity: str  # error | warning
    message: str
    step_id: str | None
    profile: str
    rule: str


def check_plan(plan: dict, compliance: list[dict]) -> list[Finding]:
    findings: list[Finding] = []
    windows = plan["windows"]["channels"]
    steps = [s for stage in plan["stages"] for s in stage["steps"]]
    steps += [s for event_steps in plan["events"].values() for s in event_steps]
    for doc in compliance:
        for step in steps:
            if step["action"] == "send" and step["channels"]:
                findings += _step_windows(doc, step, windows)
        for stage in plan["stages"]:
            findings += _cadence(doc, stage, windows)
    return findings


# -- windows --------------------------------------------------------------------------------------


def _covers(rule: dict, channel: str) -> bool:
    return rule["channels"] == ["any"] or channel in rule["channels"]


def _intersect(a, b) -> tuple:
    out = []
    for lo, hi in a:
        for lo2, hi2 in b:
            if max(lo, lo2) < min(hi, hi2):
                out.append((max(lo, lo2), min(hi, hi2)))
    return tuple(sorted(out))


def _profile_hours(doc: dict, channel: str) -> tuple[dict, list[str]]:
    """The profile's allowed hours per day for a channel (every window rule applies), and those rules."""
    rules = [r for r in doc["rules"] if r["kind"] == "window" and _covers(r, channel)]
    hours = {day: FULL_DAY for day in DAYS}
    for rule in rules:
        hours = {day: _intersect(hours[day], rule["days"].get(day, ())) for day in DAYS}
    return hours, [r["id"] for r in rules]


def _policy_hours(windows: dict, channel: str) -> dict:
    days = windows.get(channel) or windows.get("default") or {}
    return {day: tuple(map(tuple, days.get(day, ()))) for day in DAYS}


def _step_windows(doc: dict, step: dict, windows: dict) -> list[Finding]:
    name, out, never = doc["profile"], [], []
    for channel in step["channels"]:
        hours, rules = _profile_hours(doc, channel)
        policy = _policy_hours(windows, channel)
        if rules and not any(_intersect(policy[d], hours[d]) for d in DAYS):
            never.append((channel, rules, policy, hours))
    texts = [f"the policy's {channel} window ({_format(policy)}) never meets {name}'s hours ({_format(hours)})"
             for channel, _, policy, hours in never]
    if never and len(never) == len(step["channels"]):
        out.append(Finding("compliance-never-lawful", "error", f"step '{step['id']}' can never send lawfully "
                           f"under {name}: {'; '.join(texts)}", step["id"], name, never[0][1][0]))
    elif never:
        out += [Finding("compliance-channel-never-lawful", "warning", f"step '{step['id']}' can never use "
                        f"{channel} lawfully under {name}: {text}", step["id"], name, rules[0])
                for (channel, rules, _, _), text in zip(never, texts)]
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
    """When a step fires, in minutes after the due date's midnight: `lo`..`hi` is the range it can fire in."""

    day: int
    lo: int
    hi: int
    channel: str
    step_id: str


def _fire_range(step: dict, windows: dict) -> tuple[int, int]:
    """The earliest and latest minute of its day a step can fire.

    A step with a time fires then. One without fires when its channel's window opens that day, and which
    weekday that is depends on the due date, unknown here: so it counts at the earliest opening of any
    day when it opens a period and at the latest when it closes one. A period is then said to be
    exceeded only if it is on every weekday, so the warning is never false (it may miss a week that only
    some due dates make too dense)."""
    time = step["trigger"]["time_minutes"]
    if time is not None:
        return time, time
    openings = [ranges[0][0] for ranges in _policy_hours(windows, step["channels"][0]).values() if ranges]
    return (min(openings), max(openings)) if openings else (0, 1440)


def _triggers(stage: dict, rule: dict, windows: dict) -> list[_Trigger]:
    """The stage's send steps the rule counts, one per distinct trigger, in the order they fire: steps
    that share a trigger are alternatives (segments, variants) rather than messages that add up."""
    seen, out = set(), []
    for step in stage["steps"]:
        if step["action"] != "send" or not step["channels"] or not _covers(rule, step["channels"][0]):
            continue
        key = (step["trigger"]["days"], step["trigger"]["time_minutes"])
        if key not in seen:
            seen.add(key)
            day = step["trigger"]["days"]
            lo, hi = _fire_range(step, windows)
            out.append(_Trigger(day, day * 1440 + lo, day * 1440 + hi, step["channels"][0], step["id"]))
    return sorted(out, key=lambda t: (t.lo, t.hi, t.step_id))


def _within(rule: dict):
    """(first, t) -> does t fall in the period `first` opens, as the guard measures it: a rolling period
    in minutes (the 8th call 6 days 23 hours after the 1st waits), calendar ones in whole local days (a
    calendar week is any 7 days in a row, since the due date can fall on any weekday)."""
    if rule["period"] == "rolling":
        return lambda first, t: t.hi - first.lo < rule["period_minutes"]
    days = 7 if rule["period"] == "calendar_week" else 1
    return lambda first, t: t.day < first.day + days


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
    return "contacts" if rule["channels"] == ["any"] else f"contacts by {'/'.join(rule['channels'])}"


def _cadence(doc: dict, stage: dict, windows: dict) -> list[Finding]:
    out = []
    for rule in doc["rules"]:
        check = CADENCE.get(rule["kind"])
        triggers = _triggers(stage, rule, windows) if check else []
        finding = check(doc, stage, rule, triggers) if triggers else None
        if finding is not None:
            out.append(finding)
    return out


def _ids(group: list[_Trigger]) -> str:
    return group[0].step_id if len(group) == 1 else f"{group[0].step_id}..{group[-1].step_id}"


def _after(rule: dict) -> str:
    return " after a conversation" if rule.get("after_conversation") else ""


def _cap_cadence(doc, stage, rule, triggers) -> Finding | None:
    group = _densest(triggers, _within(rule), len)
    if len(group) <= rule["max"]:
        return None
    return Finding("compliance-cadence-exceeds-cap", "warning", f"stage '{stage['name']}': steps {_ids(group)} "
                   f"can place {len(group)} {_what(rule)} in {_period_text(rule)}; {doc['profile']} allows "
                   f"{rule['max']}{_after(rule)}, the guard will defer {len(group) - rule['max']}",
                   group[0].step_id, doc["profile"], rule["id"])


def _channels_cadence(doc, stage, rule, triggers) -> Finding | None:
    group = _densest(triggers, _within(rule), lambda g: len({t.channel for t in g}))
    used = sorted({t.channel for t in group})
    if len(used) <= rule["max"]:
        return None
    return Finding("compliance-cadence-channels", "warning", f"stage '{stage['name']}': steps {_ids(group)} "
                   f"use {len(used)} channels ({', '.join(used)}) in {_period_text(rule)}; {doc['profile']} "
                   f"allows {rule['max']}{_after(rule)}, the guard will defer the others",
                   group[0].step_id, doc["profile"], rule["id"])


def _spacing_cadence(doc, stage, rule, triggers) -> Finding | None:
    """Consecutive triggers closer than the spacing: calendar spacing by dates, rolling by the minutes
    between them (their largest possible distance, so that no warning is false)."""
    for a, b in zip(triggers, triggers[1:]):
        if rule["spacing"] == "calendar":
            apart, need = b.day - a.day, rule["spacing_days"]
            text, distance = f"{need} calendar days", f"{apart} day(s)"
        else:
            apart, need = max(b.hi - a.lo, a.hi - b.lo), rule["spacing_minutes"]
            text, distance = _hours(need), _hours(apart)
        if apart < need:
            return Finding("compliance-cadence-spacing", "warning", f"stage '{stage['name']}': steps {a.step_id} "
                           f"and {b.step_id} are {distance} apart; {doc['profile']} wants {_what(rule)} at least "
                           f"{text} apart, the guard will defer {b.step_id}", b.step_id, doc["profile"], rule["id"])
    return None


def _hours(minutes: int) -> str:
    return f"{minutes // 60} hours" + (f" {minutes % 60} minutes" if minutes % 60 else "")


CADENCE = {"cap": _cap_cadence, "distinct_channels": _channels_cadence, "min_spacing": _spacing_cadence}

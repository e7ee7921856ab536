"""Static checks: things that type-check but cannot do what the analyst meant.

- a condition that never holds (a segment, `when`, `for` or `if`, or a step's `for` and `if` together):
  constant false, or contradictory comparisons of one field (`invoice.amount > 10 and invoice.amount < 5`,
  see dsl/exprrange.py);
- a step whose day lies outside its stage's `when`, or inside an earlier stage that takes the invoice;
- a channel whose window never opens, or that opens on a day the policy names as a weekend day (other
  than the default sat, sun);
- two steps of one stage with the same trigger, channel and condition (a double send);
- a stage whose own cadence already exceeds a cap (the cap would defer or skip some of its steps);
- `catch_up: none` with `max_lateness: 0m`: runs come on a schedule, after a step's trigger, so nearly
  every step would be missed.
Stage membership is decided statically only when `when` depends on nothing but the invoice's age
(`invoice.days_past_due` / `days_to_due`), which is how stages are written in practice.
Steps that can never fire are left out of the double-send and cadence checks, and so are steps and caps
with a value that failed validation (a stand-in, see dsl/recovery.py): neither can fake a warning.
"""

from __future__ import annotations

from collections import defaultdict

from ..dsl import timeparse
from ..dsl.loader import is_text_dsl

AGE_FIELDS = {"invoice.days_past_due", "invoice.days_to_due"}


def run_checks(comp) -> None:
    never = _never_true(comp)
    dead = comp.dead_steps = _dead_steps(comp, never)
    _never_open_windows(comp)
    _open_weekend(comp)
    _double_sends(comp, dead)
    _cadence_vs_caps(comp, dead)
    _no_lateness(comp)


def _never_true(comp) -> set[tuple]:
    """Warn about each condition that can never hold; their paths."""
    from ..dsl.expr import is_constant, parse
    from ..dsl.exprrange import may_hold

    segments = {path[1]: parse(c.canonical) for path, c in comp.exprs.items()
                if path[0] == "segments" and not c.errors}
    never = set()
    for path, checked in comp.exprs.items():
        if checked.errors or checked.type != "bool":
            continue
        if checked.constant is True if is_constant(checked) else may_hold(parse(checked.canonical), segments):
            continue
        never.add(path)
        what = "segment" if path[0] == "segments" else "stage condition" if path[-1] == "when" else "condition"
        comp.diags.warning("never-true", f"this {what} is always false, so nothing depending on it can happen",
                           comp.span(path))
    return never | _contradicting_conditions(comp, segments, never)


def _contradicting_conditions(comp, segments: dict, never: set[tuple]) -> set[tuple]:
    """Warn about each step whose `for` and `if` (both must hold) can never hold together; the paths of
    their `if`, which can never hold given the `for`."""
    from ..dsl.expr import Node, parse
    from ..dsl.exprrange import may_hold

    found = set()
    for path, _owner, _step in comp.policy.all_steps():
        both = [comp.exprs.get(path + (key,)) for key in ("for", "if")]
        if any(c is None or c.errors or c.type != "bool" for c in both) or {path + ("for",), path + ("if",)} & never:
            continue  # one of them alone is already warned about
        if may_hold(Node("and", 0, 0, None, tuple(parse(c.canonical) for c in both)), segments):
            continue
        found.add(path + ("if",))
        comp.diags.warning("never-true", "this step's `for` and `if` contradict each other, so it can never fire",
                           comp.span(path + ("if",)))
    return found


def _age_predicate(comp, stage_name: str):
    """`when` of a stage as a function of days past due, or None when it depends on anything else."""
    from ..dsl import expr

    path = ("stages", stage_name, "when")
    checked = comp.exprs.get(path)
    if checked is None or checked.errors or checked.segments or not set(checked.fields) <= AGE_FIELDS:
        return None
    if comp.broken(path):
        return None
    fn = expr.compile_expr(expr.parse(checked.canonical), {})
    return lambda days: bool(fn({"invoice.days_past_due": days, "invoice.days_to_due": -days}))


def _dead_steps(comp, never: set[tuple]) -> set[tuple]:
    """Warn about stage steps whose day puts the invoice outside their stage; the paths of every step
    that can never fire (or was replaced after failing validation)."""
    dead = {path for path, _owner, _step in comp.policy.all_steps() if _unreachable(comp, path, never)}
    stages = list(comp.policy.stages.items())
    predicates = {name: _age_predicate(comp, name) for name, _ in stages}
    for index, (name, stage) in enumerate(stages):
        for i, step in enumerate(stage.steps):
            path = ("stages", name, "steps", i)
            if comp.broken(path + ("at",)):
                continue
            reason = _outside(comp, stages[:index + 1], predicates, step, _name(comp, path, step))
            if reason:
                dead.add(path)
                comp.diags.warning(reason[0], reason[1], comp.span(path + ("at",)))
    return dead


def _unreachable(comp, path: tuple, never: set[tuple]) -> bool:
    """A step whose own condition, or whose stage's, never holds (or that failed validation)."""
    stage_never = path[0] == "stages" and ("stages", path[1], "when") in never
    return stage_never or bool({path + ("for",), path + ("if",)} & never) or comp.located.broken_within(path)


def _name(comp, path: tuple, step) -> str:
    """How a message names a step: its id, or its line when the id failed validation (a stand-in)."""
    return f"the step on line {comp.span(path).line}" if comp.broken(path + ("id",)) else f"step '{step.id}'"


def _outside(comp, stages: list, predicates: dict, step, name: str) -> tuple[str, str] | None:
    """Why `step` of the last of `stages` can never fire by its day, or None."""
    days = step.trigger.days
    stage_name, stage = stages[-1]
    if predicates[stage_name] is not None and not predicates[stage_name](days):
        return "step-outside-stage", (f"{name} at {step.at} can never fire: on that day the invoice "
                                      f"is {days} days past due, outside stage '{stage_name}' ({stage.when})")
    for earlier, _ in stages[:-1]:
        if predicates[earlier] is not None and predicates[earlier](days):
            return "step-shadowed", (f"{name} at {step.at} can never fire: on that day the invoice is "
                                     f"in the earlier stage '{earlier}' (the first matching stage wins)")
    return None


def window_is_open(comp, channel: str) -> bool:
    windows = comp.policy.windows.channels()
    days = windows.get(channel, windows.get("default"))
    return bool(days) and any(ranges for ranges in days.values())


def _never_open_windows(comp) -> None:
    if comp.located.broken_within(("windows",)):
        return  # a window that failed validation is not the window the analyst wrote
    reported = set()
    for path, _owner, step in comp.policy.all_steps():
        if comp.broken(path + ("send",)):
            continue
        for i, channel in enumerate(step.send or []):
            if channel in reported or window_is_open(comp, channel):
                continue
            reported.add(channel)
            comp.diags.error("window-never-opens", f"channel '{channel}' has no contact window, so "
                             f"{_name(comp, path, step)} could never send on it", comp.span(path + ("send", i)),
                             f"add a `window {channel} ...` or `window default ...` line" if is_text_dsl(comp.located.file)
                             else f"add windows.{channel} or windows.default")


def _open_weekend(comp) -> None:
    """A `weekend` other than sat, sun (a Friday-Saturday weekend, say) that a window opens on anyway: the
    windows alone decide which days are open (SPEC 4.2: a weekend day is closed where a window leaves it
    out), so a window copied from a Monday-to-Friday policy would still send on the new weekend's days."""
    calendar = comp.policy.calendar
    if calendar is None or "weekend" not in calendar.model_fields_set or set(calendar.weekend) == {"sat", "sun"}:
        return
    if comp.broken(("calendar", "weekend")) or comp.located.broken_within(("windows",)):
        return
    for channel, days in comp.policy.windows.channels().items():
        opened = [day for day in timeparse.DAYS if day in calendar.weekend and days.get(day)]
        if opened:
            listed = ", ".join(opened)
            comp.diags.warning("weekend-open", f"the {channel} window opens on {listed}, a weekend day of "
                               "calendar.weekend: it is open for contact all the same, as the windows decide "
                               "which days are open", comp.span(("windows", channel)),
                               f"leave {listed} out of windows.{channel} or out of calendar.weekend; the "
                               "window of a fri-sat weekend is mon-thu,sun")


def _condition(comp, path: tuple) -> tuple:
    return tuple(getattr(comp.exprs.get(path + (k,)), "canonical", None) for k in ("for", "if"))


def _live_steps(comp, name: str, stage, dead: set[tuple]):
    """The steps the cadence checks count: not dead, and with conditions that compiled (a broken one is
    an error already, and its text cannot be reasoned about)."""
    for i, step in enumerate(stage.steps):
        path = ("stages", name, "steps", i)
        if path not in dead and not any(getattr(comp.exprs.get(path + (k,)), "errors", None) for k in ("for", "if")):
            yield path, step


def _double_sends(comp, dead: set[tuple]) -> None:
    for name, stage in comp.policy.stages.items():
        seen: dict[tuple, str] = {}
        for path, step in _live_steps(comp, name, stage, dead):
            for channel in step.send or []:
                key = (step.at, channel, _condition(comp, path))
                if key in seen:
                    comp.diags.warning("double-send", f"steps '{seen[key]}' and '{step.id}' both send {channel} "
                                       f"at {step.at} under the same conditions: the customer gets two messages",
                                       comp.span(path + ("at",)))
                seen.setdefault(key, step.id)


def _cadence_vs_caps(comp, dead: set[tuple]) -> None:
    """Per stage and cap: the most sends one invoice's own steps put inside any window of the cap's length.

    Steps sharing one trigger all send (one message per step) unless their conditions exclude each other:
    then they are alternatives (an experiment's variants, complementary segments) and only the largest
    group that can fire together counts, as in the compliance cadence checks. Steps that can never fire
    do not count."""
    from .compliance_checks import Conditions, together

    conditions = Conditions({"segments": [{"name": path[1], "expr": c.canonical} for path, c in comp.exprs.items()
                                          if path[0] == "segments" and not c.errors]})
    for ci, cap in enumerate(comp.policy.caps):
        if comp.located.broken_within(("caps", ci)):
            continue
        width = timeparse.parse_duration(cap.per)  # minutes
        for name, stage in comp.policy.stages.items():
            by_trigger: dict[int, list[dict]] = defaultdict(list)
            for path, step in _live_steps(comp, name, stage, dead):
                if step.send and cap.channel in ("any", step.send[0]):
                    when, cond = _condition(comp, path)
                    moment = _moment(comp, step.at, step.send[0])
                    by_trigger[moment].append({"id": step.id, "channels": step.send, "for": when, "if": cond})
            counted = {at: [s["id"] for s in together(group, conditions.exclusive)] for at, group in by_trigger.items()}
            ids = [i for group in _densest(counted, width) for i in group]
            if len(ids) > cap.max:
                comp.diags.warning("cadence-exceeds-cap", f"stage '{name}': steps {', '.join(ids)} send "
                                   f"{len(ids)} messages on {cap.channel} within {cap.per}; this cap allows "
                                   f"{cap.max}, so it will {comp.policy.on_cap} {len(ids) - cap.max} of them",
                                   comp.span(("caps", ci)))


def _no_lateness(comp) -> None:
    """`max_lateness: 0m` means what it says (a step is missed unless a run happens at its very trigger), and
    with `catch_up: none` that is nearly every step in `collect run` / `serve`, which start a little after
    their time; a simulation's ticks fall exactly on the hour (UTC), so it misses only the triggers off the
    hour (10:30, a +05:30 zone) and shows fewer misses. Other catch_up modes do not use max_lateness."""
    policy = comp.policy
    if policy.catch_up != "none" or timeparse.parse_duration(policy.max_lateness) != 0:
        return
    if comp.broken(("max_lateness",)) or comp.broken(("catch_up",)):
        return
    comp.diags.warning("no-lateness", "with catch_up: none and max_lateness 0, a step is missed unless a run "
                       "starts at its very trigger; scheduled runs come a little later, so nearly every step would "
                       "be skipped as missed (a simulation ticks exactly on the hour, so it misses only the triggers off "
                       "the hour and shows fewer misses than scheduled runs would)",
                       comp.span(("max_lateness",)), "allow at least the time between two runs, e.g. 1h")


def _moment(comp, at: str, channel: str) -> int:
    """When a step's message goes, as minutes from the anchor's midnight: its time moved into the
    channel's window (before the opening: the opening; after closing: the next day's), or without a
    time the opening. The trigger's weekday is not known when checking: the earliest opening and the
    latest closing of the week stand for every day."""
    trigger = timeparse.parse_trigger(at)
    windows = comp.policy.windows.channels()
    days = [r for r in (windows.get(channel) or windows.get("default") or {}).values() if isinstance(r, list) and r]
    opening = min((r[0][0] for r in days), default=0)
    closing = max((r[-1][1] for r in days), default=1440)
    time = opening if trigger.time is None else max(trigger.time, opening)
    if time >= closing:
        return (trigger.days + 1) * 1440 + opening
    return trigger.days * 1440 + time


def _densest(by_trigger: dict[int, list[str]], width: int) -> list[list[str]]:
    """The triggers (minutes) that fit in a window of `width` minutes with the most steps between them."""
    moments = sorted(by_trigger.items())
    best: list[list[str]] = []
    for start, (moment, _) in enumerate(moments):
        group = [ids for m, ids in moments[start:] if m < moment + width]
        if sum(map(len, group)) > sum(map(len, best)):
            best = group
    return best

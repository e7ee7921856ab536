"""Static checks: things that type-check but cannot do what the analyst meant.

- a condition that is constant false (a segment, `when`, `for` or `if` that never holds);
- a step whose day lies outside its stage's `when`, or inside an earlier stage that takes the invoice;
- a channel whose window never opens;
- two steps of one stage with the same trigger, channel and condition (a double send);
- a stage whose own cadence already exceeds a cap (the cap would defer or skip some of its steps).
Stage membership is decided statically only when `when` depends on nothing but the invoice's age
(`invoice.days_past_due` / `days_to_due`), which is how stages are written in practice.
"""

from __future__ import annotations

from collections import defaultdict

from ..dsl import timeparse

AGE_FIELDS = {"invoice.days_past_due", "invoice.days_to_due"}


def run_checks(comp) -> None:
    _never_true(comp)
    _dead_steps(comp)
    _never_open_windows(comp)
    _double_sends(comp)
    _cadence_vs_caps(comp)


def _never_true(comp) -> None:
    from ..dsl.expr import is_constant

    for path, checked in comp.exprs.items():
        if checked.errors or checked.type != "bool" or not is_constant(checked) or checked.constant:
            continue
        what = {"segments": "segment", "stages": "stage condition"}.get(path[0], "condition")
        comp.diags.warning("never-true", f"this {what} is always false, so nothing depending on it can happen",
                           comp.span(path))


def _age_predicate(comp, stage_name: str):
    """`when` of a stage as a function of days past due, or None when it depends on anything else."""
    from ..dsl import expr

    checked = comp.exprs.get(("stages", stage_name, "when"))
    if checked is None or checked.errors or checked.segments or not set(checked.fields) <= AGE_FIELDS:
        return None
    fn = expr.compile_expr(expr.parse(checked.canonical), {})
    return lambda days: bool(fn({"invoice.days_past_due": days, "invoice.days_to_due": -days}))


def _dead_steps(comp) -> None:
    stages = list(comp.policy.stages.items())
    predicates = {name: _age_predicate(comp, name) for name, _ in stages}
    for index, (name, stage) in enumerate(stages):
        own = predicates[name]
        for i, step in enumerate(stage.steps):
            days = step.trigger.days
            span = comp.span(("stages", name, "steps", i, "at"))
            if own is not None and not own(days):
                comp.diags.warning("step-outside-stage", f"step '{step.id}' at {step.at} can never fire: on that "
                                   f"day the invoice is {days} days past due, outside stage '{name}' "
                                   f"({stage.when})", span)
                continue
            for earlier, _ in stages[:index]:
                if predicates[earlier] is not None and predicates[earlier](days):
                    comp.diags.warning("step-shadowed", f"step '{step.id}' at {step.at} can never fire: on that "
                                       f"day the invoice is in the earlier stage '{earlier}' (the first "
                                       "matching stage wins)", span)
                    break


def window_is_open(comp, channel: str) -> bool:
    windows = comp.policy.windows.channels()
    days = windows.get(channel, windows.get("default"))
    return bool(days) and any(ranges for ranges in days.values())


def _never_open_windows(comp) -> None:
    reported = set()
    for path, _owner, step in comp.policy.all_steps():
        for i, channel in enumerate(step.send or []):
            if channel in reported or window_is_open(comp, channel):
                continue
            reported.add(channel)
            comp.diags.error("window-never-opens", f"channel '{channel}' has no contact window, so step "
                             f"'{step.id}' could never send on it", comp.span(path + ("send", i)),
                             f"add windows.{channel} or windows.default")


def _condition(comp, path: tuple) -> tuple:
    return tuple(getattr(comp.exprs.get(path + (k,)), "canonical", None) for k in ("for", "if"))


def _double_sends(comp) -> None:
    for name, stage in comp.policy.stages.items():
        seen: dict[tuple, str] = {}
        for i, step in enumerate(stage.steps):
            path = ("stages", name, "steps", i)
            for channel in step.send or []:
                key = (step.at, channel, _condition(comp, path))
                if key in seen:
                    comp.diags.warning("double-send", f"steps '{seen[key]}' and '{step.id}' both send {channel} "
                                       f"at {step.at} under the same conditions: the customer gets two messages",
                                       comp.span(path + ("at",)))
                seen.setdefault(key, step.id)


def _cadence_vs_caps(comp) -> None:
    """Per stage and cap: the most sends one invoice's own steps put inside any window of the cap's length.

    Steps sharing one trigger but with different conditions count once: they are alternatives (an
    experiment's variants, segments) rather than messages that add up.
    """
    for ci, cap in enumerate(comp.policy.caps):
        width = max(1, -(-timeparse.parse_duration(cap.per) // (24 * 60)))  # days, rounded up
        for name, stage in comp.policy.stages.items():
            by_trigger: dict[str, list[str]] = defaultdict(list)
            for step in stage.steps:
                if step.send and cap.channel in ("any", step.send[0]):
                    by_trigger[step.at].append(step.id)
            worst = _densest(by_trigger, width)
            if worst and len(worst) > cap.max:
                ids = [ids[0] for ids in worst]
                comp.diags.warning("cadence-exceeds-cap", f"stage '{name}': steps {', '.join(ids)} send "
                                   f"{len(ids)} messages on {cap.channel} within {cap.per}; this cap allows "
                                   f"{cap.max}, so it will {comp.policy.on_cap} {len(ids) - cap.max} of them",
                                   comp.span(("caps", ci)))


def _densest(by_trigger: dict[str, list[str]], width: int) -> list[list[str]]:
    """The largest group of triggers whose days fit in a window of `width` days."""
    days = sorted((timeparse.parse_trigger(at).days, ids) for at, ids in by_trigger.items())
    best: list[list[str]] = []
    for start, (day, _) in enumerate(days):
        group = [ids for d, ids in days[start:] if d < day + width]
        if len(group) > len(best):
            best = group
    return best

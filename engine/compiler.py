"""Policy -> Plan: ordered passes over the typed model, every problem a positioned Diagnostic.

Passes (each reads the model and adds diagnostics; none stops the others, so one run reports all):
  names       duplicate step ids, unknown channels / templates / windows, anchors that fit the step
  templates   every channel of a send step has a body of the right kind; Jinja checked against the schema
  segments    expressions type-checked, references resolved, cycles reported
  expressions stage `when`, step `for`/`if`, escalation priorities
  checks      static analysis (engine.checks): dead steps, never-open windows, cadence vs caps
The plan is built only when there is no error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..dsl import timeparse
from ..dsl.diagnostics import Diagnostics, PolicyError, Span, suggest
from ..dsl.fields import schema_for
from ..dsl.loader import is_text_dsl, load_policy
from ..dsl.model import BUILTIN_CHANNELS, EmailTemplate, Policy, WhatsAppTemplate
from ..dsl.source import Located
from .plan import Plan
from .runtime import NOT_CONTACTS

PROMISE_EVENTS = ("promise_made", "promise_broken", "promise_kept")


def known_channels() -> tuple[str, ...]:
    """Built-in channels plus those registered by installed packages (entry point group collect.channels)."""
    from importlib.metadata import entry_points

    from ..adapters.registry import BUILTIN_ADAPTERS

    # collect's own adapters (smtp, twilio ...) are ways to deliver a channel, not channels
    plugins = sorted(ep.name for ep in entry_points(group="collect.channels") if ep.name not in BUILTIN_ADAPTERS)
    return tuple(dict.fromkeys([*BUILTIN_CHANNELS, *plugins]))


@dataclass
class Compilation:
    """What the passes share: the model, where each node came from, and the diagnostics so far."""

    policy: Policy
    located: Located
    diags: Diagnostics
    base_dir: Path
    schema: dict[str, str] = field(default_factory=dict)
    channels: tuple[str, ...] = ()
    templates: dict[str, dict] = field(default_factory=dict)  # name -> channel -> model/str
    exprs: dict[tuple, object] = field(default_factory=dict)  # data path -> expr.Checked
    compliance: list[dict] = field(default_factory=list)  # the resolved compliance profiles
    dead_steps: set = field(default_factory=set)  # paths of the steps that can never fire (engine.checks)

    def span(self, path, prefer_key: bool = False) -> Span:
        return self.located.span(path, prefer_key)

    def broken(self, path) -> bool:
        """Whether the value at `path` (or around it) is a stand-in for one that failed validation."""
        return self.located.is_broken(path)


@dataclass
class CompileResult:
    plan: Plan | None
    policy: Policy | None
    diagnostics: Diagnostics


def compile_policy(path: str | Path, text: str | None = None) -> CompileResult:
    """Load, check and compile one policy file. `plan` is None when there is any error.

    A value that fails validation is replaced by a stand-in (dsl/recovery.py) and the passes still run on
    the rest, so that one run reports every error of the file; `policy` is then None too.
    """
    policy, located, diags = load_policy(path, text, recover=True)
    if policy is None:
        return CompileResult(None, None, diags)
    valid = not diags.errors  # else `policy` has stand-ins and only serves to find more errors
    comp = Compilation(policy, located, diags, Path(path).parent, schema_for(policy.fields), known_channels())
    for run_pass in (_templates_pass, _names_pass, _segments_pass, _expressions_pass):
        run_pass(comp)
    from .checks import run_checks

    run_checks(comp)
    if diags.errors:
        return CompileResult(None, policy if valid else None, diags)
    plan = build_plan(comp)
    from .compliance_pass import check_steps

    check_steps(comp, plan.to_dict(), comp.compliance)
    return CompileResult(None if diags.errors else plan, policy, diags)


def compile_or_raise(path: str | Path) -> tuple[Plan, Policy, Diagnostics]:
    result = compile_policy(path)
    if result.plan is None:
        raise PolicyError(result.diagnostics.sorted())
    return result.plan, result.policy, result.diagnostics


# -- names --------------------------------------------------------------------------------------

def _names_pass(comp: Compilation) -> None:
    policy, diags = comp.policy, comp.diags
    seen: dict[str, Span] = {}
    for path, owner, step in policy.all_steps():
        id_span = comp.span(path + ("id",))
        if step.id in seen:
            first = seen[step.id]
            diags.error("duplicate-step-id", f"step id '{step.id}' is already used at line {first.line}",
                        id_span, "every step id must be unique in the policy")
        seen.setdefault(step.id, id_span)
        if not comp.broken(path + ("at",)):
            _check_anchor(comp, path, owner, step)
        for i, channel in enumerate(step.send or [] if not comp.broken(path + ("send",)) else []):
            _check_channel(comp, channel, path + ("send", i))  # span() falls back to `send`
            if channel == "agent":  # the channel tasks go out on: a send on it would reach no one
                comp.diags.error("send-agent", "'agent' is the channel of agent tasks, not a message to the "
                                 "customer", comp.span(path + ("send", i)),
                                 "write `escalate: { queue: QUEUE }` to hand the invoice to a person")
    for name in policy.windows.channels():
        if name != "default" and name not in comp.channels:
            diags.error("unknown-channel", f"windows for unknown channel '{name}'",
                        comp.span(("windows", name), prefer_key=True), suggest(name, ("default", *comp.channels)))
    for i, cap in enumerate(policy.caps):
        if cap.channel != "any" and not comp.broken(("caps", i, "channel")):
            _check_channel(comp, cap.channel, ("caps", i, "channel"))
            if cap.channel in NOT_CONTACTS:  # a cap that would never hold anything
                diags.error("cap-not-contact", f"a cap on '{cap.channel}' never holds anything: caps count "
                            "contacts with the customer, and agent tasks and webhooks are none",
                            comp.span(("caps", i, "channel")), "cap the channels that reach the customer, or `any`")
    for name, channels in policy.templates.items():
        for channel in channels:
            _check_channel(comp, channel, ("templates", name, channel), prefer_key=True)
    from .compliance_pass import resolve_profiles

    comp.compliance = resolve_profiles(comp)


def _check_anchor(comp: Compilation, path: tuple, owner: str, step) -> None:
    anchor = step.trigger.anchor
    in_stage = path[0] == "stages"
    if in_stage and anchor != "due":
        message = f"a stage step is timed from the due date: write due±Nd, not '{step.at}'"
    elif not in_stage and anchor == "due":
        message = f"an event step is timed from its event: write event±Nd (or promise±Nd), not '{step.at}'"
    elif anchor == "promise" and owner not in PROMISE_EVENTS:
        message = f"promise±Nd only applies to promise events ({', '.join(PROMISE_EVENTS)}), not {owner}"
    else:
        return
    comp.diags.error("bad-anchor", message, comp.span(path + ("at",)))


def _check_channel(comp: Compilation, channel: str, path: tuple, prefer_key: bool = False) -> None:
    if channel not in comp.channels:
        comp.diags.error("unknown-channel", f"unknown channel '{channel}'", comp.span(path, prefer_key=prefer_key),
                         suggest(channel, comp.channels) or f"channels: {', '.join(comp.channels)}")


# -- templates ----------------------------------------------------------------------------------

def _templates_pass(comp: Compilation) -> None:
    policy = comp.policy
    comp.templates = {name: dict(channels) for name, channels in policy.templates.items()}
    if policy.templates_dir:
        _load_templates_dir(comp)
    from .templates import check_template

    for name, channels in policy.templates.items():
        for channel, template in channels.items():
            for key, source in _template_sources(template):
                path = ("templates", name, channel) + ((key,) if key else ())
                for issue in check_template(source, comp.schema, html=key == "html"):
                    report = comp.diags.warning if issue.severity == "warning" else comp.diags.error
                    report(issue.code, f"template '{name}' ({channel}): {issue.message}",
                           _template_span(comp, path, source, issue), issue.hint)
    for path, _owner, step in policy.all_steps():
        if step.send and not comp.broken(path + ("template",)):
            _check_step_template(comp, path, step)


def _load_templates_dir(comp: Compilation) -> None:
    from .templates import TemplateDirError, check_template, email_body_line, load_templates_dir

    directory = comp.base_dir / comp.policy.templates_dir
    span = comp.span(("templates_dir",))
    try:
        loaded, problems = load_templates_dir(directory, comp.channels, root=comp.base_dir)
    except TemplateDirError as exc:
        comp.diags.error("bad-templates-dir", str(exc), span)
        return
    for problem in problems:
        comp.diags.error("bad-templates-dir", str(problem), span)
        if problem.template:  # a stand-in, so that the steps using it report nothing more (dsl/recovery.py)
            name, channel = problem.template
            loaded.setdefault(name, {})[channel] = {"subject": "", "body": ""} if channel == "email" else ""
            comp.located.broken.add(("templates", name, channel))
    for name, channels in loaded.items():
        for channel, template in channels.items():
            if channel in comp.templates.get(name, {}):
                comp.diags.error("duplicate-template", f"template '{name}' ({channel}) is defined both in the "
                                 f"policy and in {directory}", span)
                continue
            comp.templates.setdefault(name, {})[channel] = template
            if ("templates", name, channel) in comp.located.broken:
                continue  # a stand-in for a file that cannot be read (a FIFO would block for good): reported
            path = directory / f"{name}.{channel}.j2"
            text = path.read_text(encoding="utf-8-sig")  # as load_templates_dir read it
            body_line = email_body_line(text) if channel == "email" else 1
            subject_col = len(text) - len(text.split(":", 1)[-1].lstrip(" \t")) if channel == "email" else 0
            for key, source in _template_sources(template):
                for issue in check_template(source, comp.schema, html=key == "html"):
                    report = comp.diags.warning if issue.severity == "warning" else comp.diags.error
                    # reported in the template's own file, at its own line and column (SPEC 6)
                    line = issue.line + (body_line - 1 if key == "body" else 0)
                    col = issue.col + (subject_col if key == "subject" else 0)
                    report(issue.code, f"template '{name}' ({channel}): {issue.message}", Span(str(path), line, col),
                           issue.hint)


def _template_sources(template) -> list[tuple[str | None, str]]:
    if isinstance(template, str):
        return [(None, template)]
    if isinstance(template, EmailTemplate):
        return [(k, v) for k, v in (("subject", template.subject), ("body", template.body),
                                    ("html", template.html)) if v is not None]
    if isinstance(template, WhatsAppTemplate):
        return [(("params", i), p) for i, p in enumerate(template.params)]
    if isinstance(template, dict):  # from templates_dir
        return [(k, v) for k, v in template.items() if isinstance(v, str)]
    return [("body", template.body)]


def _template_span(comp: Compilation, path: tuple, source: str, issue) -> Span:
    path = tuple(p for part in path for p in (part if isinstance(part, tuple) else (part,)))
    if issue.line <= 1 or path in comp.located.scalars:  # on the value's line, or traced in the source
        lines = source.split("\n")[:issue.line - 1]
        return comp.located.expr_span(path, sum(len(line) + 1 for line in lines) + max(issue.col - 1, 0))
    base = comp.span(path)  # a text-DSL """string""": its lines are the file's lines
    return Span(base.file, base.line + issue.line - 1, issue.col)


def _check_step_template(comp: Compilation, path: tuple, step) -> None:
    name = step.template
    if name not in comp.templates:
        comp.diags.error("unknown-template", f"unknown template '{name}'", comp.span(path + ("template",)),
                         suggest(name, list(comp.templates)))
        return
    bodies = comp.templates[name]
    for channel in step.send:
        if channel not in comp.channels or channel == "agent" or comp.broken(("templates", name, channel)):
            continue  # reported as an unknown channel or as `send: agent`, or the body failed validation
        if channel not in bodies:
            comp.diags.error("missing-template-body", f"template '{name}' has no body for channel '{channel}'",
                             comp.span(path + ("template",)),
                             f"add templates.{name}.{channel} (it has: {', '.join(bodies) or 'nothing'})")
        elif channel == "email" and not _is_email(bodies[channel]):
            comp.diags.error("template-kind", f"template '{name}' for email needs a subject and a body",
                             comp.span(("templates", name, channel)))
        elif channel != "email" and isinstance(bodies[channel], EmailTemplate) and channel != "letter":
            comp.diags.error("template-kind", f"template '{name}' for {channel} is written as an email "
                             "(subject/body); give the message text", comp.span(("templates", name, channel)))
        elif channel != "whatsapp" and isinstance(bodies[channel], WhatsAppTemplate):
            comp.diags.error("template-kind", f"template '{name}' for {channel} is a WhatsApp template",
                             comp.span(("templates", name, channel)))


def _is_email(template) -> bool:
    return isinstance(template, EmailTemplate) or (isinstance(template, dict) and "subject" in template)


# -- segments and expressions -------------------------------------------------------------------

def analyze_at(comp: Compilation, path: tuple, text: str, expect: str):
    """Type-check one expression and report its errors at their column inside the file."""
    from ..dsl import expr

    experiments = {name: set(e.variants) for name, e in comp.policy.experiments.items()}
    text_dsl = is_text_dsl(comp.located.file)
    checked = expr.analyze(text, comp.schema, set(comp.policy.segments), experiments, expect, text_dsl)
    for err in checked.errors:
        comp.diags.error(err.code, err.message, comp.located.expr_span(path, err.offset, err.length), err.hint)
    comp.exprs[path] = checked
    return checked


def _segments_pass(comp: Compilation) -> None:
    refs = {}
    for name, text in comp.policy.segments.items():
        refs[name] = analyze_at(comp, ("segments", name), text, "bool").segments
    for name in refs:
        cycle = _find_cycle(name, refs)
        if cycle and cycle[0] == name:
            comp.diags.error("segment-cycle", f"segment '{name}' depends on itself: {' -> '.join(cycle)}",
                             comp.span(("segments", name)))


def _find_cycle(start: str, refs: dict[str, set[str]]) -> list[str] | None:
    stack = [(start, [start])]
    seen = set()
    while stack:
        node, trail = stack.pop()
        for nxt in sorted(refs.get(node, ())):
            if nxt == start:
                return trail + [nxt]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, trail + [nxt]))
    return None


def segment_order(refs: dict[str, set[str]]) -> list[str]:
    """Segments ordered so that each comes after the segments it refers to (acyclic by now)."""
    order: list[str] = []

    def visit(name: str) -> None:
        if name in order:
            return
        for dep in sorted(refs.get(name, ())):
            visit(dep)
        order.append(name)

    for name in sorted(refs):
        visit(name)
    return order


def _expressions_pass(comp: Compilation) -> None:
    for name, stage in comp.policy.stages.items():
        analyze_at(comp, ("stages", name, "when"), stage.when, "bool")
    for path, _owner, step in comp.policy.all_steps():
        for key in ("for", "if"):
            text = getattr(step, key + "_")
            if text:
                analyze_at(comp, path + (key,), text, "bool")
        for key, escalation in (("escalate", step.escalate), ("on_exhausted", step.on_exhausted)):
            if escalation and escalation.priority:
                analyze_at(comp, path + (key, "priority"), escalation.priority, "number")


# -- plan ---------------------------------------------------------------------------------------

def _calendar_doc(calendar) -> dict:
    doc = calendar.model_dump(mode="json")
    if doc["holidays_by"] == "policy":  # the default is left out: a plan keeps the plan_hash it had before the key
        del doc["holidays_by"]
    return doc


def build_plan(comp: Compilation) -> Plan:
    policy = comp.policy
    canon = {path: checked.canonical for path, checked in comp.exprs.items()}
    segment_refs = {name: comp.exprs[("segments", name)].segments for name in policy.segments}
    doc = {
        "policy": policy.policy,
        "description": policy.description,
        "timezone": policy.timezone,
        "currency": policy.currency,
        "calendar": _calendar_doc(policy.calendar),
        "fields": dict(sorted(policy.fields.items())),
        "compliance": policy.compliance if policy.compliance == "auto" else sorted(policy.compliance),
        "compliance_settings": {profile: dict(sorted(settings.items()))
                                for profile, settings in sorted(policy.compliance_settings.items())},
        "compliance_profiles": comp.compliance,  # the rules themselves: the guard runs from the plan
        "windows": {"channels": policy.windows.channels(), "holidays": policy.windows.holidays},
        "caps": [_cap_doc(i, cap) for i, cap in enumerate(policy.caps)],
        "on_cap": policy.on_cap,
        "segments": [{"name": n, "expr": canon[("segments", n)]} for n in segment_order(segment_refs)],
        "group_by": policy.group_by,
        "catch_up": policy.catch_up,
        "max_lateness_minutes": timeparse.parse_duration(policy.max_lateness),
        "templates": {name: {ch: _template_doc(t) for ch, t in sorted(chs.items())}
                      for name, chs in sorted(comp.templates.items())},
        "stages": [{"name": name, "when": canon[("stages", name, "when")],
                    "steps": [_step_doc(("stages", name, "steps", i), name, s, canon)
                              for i, s in enumerate(stage.steps)]}
                   for name, stage in policy.stages.items()],
        "events": {event: [_step_doc(("events", event, i), event, s, canon) for i, s in enumerate(steps)]
                   for event, steps in policy.events.items()},
        "pause_when": sorted(policy.pause_when),
        "stop_when": sorted(policy.stop_when),
        "experiments": {name: {"unit": e.unit, "variants": dict(sorted(e.variants.items()))}
                        for name, e in policy.experiments.items()},
    }
    return Plan.from_doc(doc)


def _cap_doc(index: int, cap) -> dict:
    cooldown = cap.cooldown_after_conversation
    return {"rule": f"{cap.channel}-{cap.max}-per-{cap.per}", "channel": cap.channel, "max": cap.max,
            "per_minutes": timeparse.parse_duration(cap.per),
            "cooldown_minutes": timeparse.parse_duration(cooldown) if cooldown else None}


def _template_doc(template) -> dict:
    if isinstance(template, str):
        return {"kind": "text", "body": template}
    if isinstance(template, dict):
        return {"kind": "email" if "subject" in template else "text", **template}
    kind = "email" if isinstance(template, EmailTemplate) else "whatsapp" if isinstance(
        template, WhatsAppTemplate) else "text"
    return {"kind": kind, **template.model_dump(exclude_none=True)}


def _step_doc(path: tuple, owner: str, step, canon: dict) -> dict:
    trigger = step.trigger
    doc = {
        "id": step.id, "owner": owner, "action": step.action,
        "trigger": {"anchor": trigger.anchor, "days": trigger.days, "time_minutes": trigger.time},
        "for": canon.get(path + ("for",)), "if": canon.get(path + ("if",)),
        "channels": list(step.send or []), "template": step.template, "webhook": step.webhook,
        "escalate": _escalation_doc(step.escalate, canon.get(path + ("escalate", "priority"))),
        "on_exhausted": _escalation_doc(step.on_exhausted, canon.get(path + ("on_exhausted", "priority"))),
    }
    return doc


def _escalation_doc(escalation, priority: str | None) -> dict | None:
    if escalation is None:
        return None
    return {"queue": escalation.queue, "priority": priority}

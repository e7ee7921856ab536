"""Print a Policy model as a .collect file (the inverse of dsl/text.py: it loads back to an equal model)."""

from __future__ import annotations

import json
import re

from .model import EmailTemplate, Policy, WhatsAppTemplate
from .source import typed_scalar
from .timeparse import DAYS, format_time

_WORD = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_+\-/.]*")  # a bare word of dsl/policy.lark


def _s(text: str) -> str:
    """A string literal: triple quotes keep multi-line text readable, else JSON escapes."""
    if "\n" in text and '"""' not in text and not text.endswith('"'):
        return f'"""{text}"""'
    return json.dumps(text, ensure_ascii=False)


def _hours(ranges) -> str:
    return ", ".join(f"{format_time(a)}-{format_time(b)}" for a, b in ranges) if ranges else "closed"


def _days(spec: dict) -> str:
    """{'mon': r, 'tue': r, ...} -> 'mon-fri 08:00-19:00, sat 09:00-13:00' (runs of equal hours joined)."""
    parts, run = [], []
    for day in DAYS:
        if day in spec and run and spec[run[-1]] == spec[day] and DAYS.index(run[-1]) + 1 == DAYS.index(day):
            run.append(day)
            continue
        if run:
            parts.append(run)
        run = [day] if day in spec else []
    if run:
        parts.append(run)
    return ", ".join(f"{r[0] if len(r) == 1 else r[0] + '-' + r[-1]} {_hours(spec[r[0]])}" for r in parts)


def _step(step) -> str:
    text = f"{step.id} at {step.at}"
    if step.for_:
        text += f" for {step.for_}"
    if step.if_:
        text += f" if {step.if_}"
    if step.send:
        text += f" send {', '.join(step.send)} with {step.template}"
    elif step.escalate:
        text += f" escalate to {step.escalate.queue}" + (f" priority {step.escalate.priority}"
                                                          if step.escalate.priority else "")
    elif step.webhook:
        text += f" webhook {step.webhook}"
    else:
        text += " stop"
    if step.on_exhausted:
        text += f" else escalate to {step.on_exhausted.queue}"
        if step.on_exhausted.priority:
            text += f" priority {step.on_exhausted.priority}"
    return text


def _setting(value) -> str:
    """A compliance setting's value, written so that it reads back with the same type."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        text = repr(value)
        return text if "." in text else text.replace("e", ".0e")  # 1e-05 -> 1.0e-05: YAML 1.2 floats have a dot
    if isinstance(value, int) or (_WORD.fullmatch(value) and typed_scalar(value) == value):
        return str(value)
    return _s(value)


def _template(name: str, channel: str, template) -> list[str]:
    if isinstance(template, str):
        return [f"template {name} {channel} {_s(template)}"]
    if isinstance(template, EmailTemplate):
        lines = [f"  subject {_s(template.subject)}", f"  body {_s(template.body)}"]
        lines += [f"  html {_s(template.html)}"] if template.html is not None else []
    elif isinstance(template, WhatsAppTemplate):
        lines = [f"  template_name {_s(template.template_name)}", f"  language {_s(template.language)}"]
        lines += [f"  params {', '.join(_s(p) for p in template.params)}"] if template.params else []
    else:
        lines = [f"  body {_s(template.body)}"]
    return [f"template {name} {channel} {{", *lines, "}"]


def dump_text(policy: Policy) -> str:
    out = [f"policy {policy.policy}" + (f" {_s(policy.description)}" if policy.description else "")]
    out += [f"timezone {policy.timezone}", f"currency {policy.currency}"]
    cal = policy.calendar
    items = [f"subdivision {_s(cal.subdivision)}"] if cal.subdivision else []
    items += [f"extra_holidays {', '.join(d.isoformat() for d in cal.extra_holidays)}"] if cal.extra_holidays else []
    items.append(f"weekend {', '.join(cal.weekend) or 'none'}")
    items += [f"holidays_by {cal.holidays_by}"] if cal.holidays_by != "policy" else []
    out.append(" ".join(["calendar", *([cal.country] if cal.country else []), "{", "; ".join(items), "}"]))
    out += [f"field {name}: {kind}" for name, kind in policy.fields.items()]
    if policy.compliance:
        out.append(f"compliance {policy.compliance if isinstance(policy.compliance, str) else ', '.join(policy.compliance)}")
    for profile, settings in policy.compliance_settings.items():
        out.append(f"compliance_settings {profile} {{ {'; '.join(f'{k} {_setting(v)}' for k, v in settings.items())} }}")
    out += [f"window {channel} {_days(spec) or 'closed'}" for channel, spec in policy.windows.channels().items()]
    out.append(f"holidays {policy.windows.holidays}")
    for cap in policy.caps:
        line = f"cap {cap.channel} {cap.max} per {cap.per}"
        out.append(line + (f" cooldown after conversation {cap.cooldown_after_conversation}"
                           if cap.cooldown_after_conversation else ""))
    out += [f"on_cap {policy.on_cap}", f"group_by {policy.group_by}", f"catch_up {policy.catch_up}",
            f"max_lateness {policy.max_lateness}"]
    out += [f"segment {name} = {expr}" for name, expr in policy.segments.items()]
    for name, channels in policy.templates.items():
        for channel, template in channels.items():
            out += _template(name, channel, template)
    if policy.templates_dir:
        out.append(f"templates_dir {_s(policy.templates_dir)}")
    for name, exp in policy.experiments.items():
        variants = "; ".join(f"{v} {p}" for v, p in exp.variants.items())
        out.append(f"experiment {name} per {exp.unit} {{ {variants} }}")
    for name, stage in policy.stages.items():
        out += [f"stage {name} when {stage.when} {{", *(f"  {_step(s)}" for s in stage.steps), "}"]
    for event, steps in policy.events.items():
        out += [f"on {event} {{", *(f"  {_step(s)}" for s in steps), "}"]
    out += [f"pause_when {', '.join(policy.pause_when) or 'none'}", f"stop_when {', '.join(policy.stop_when) or 'none'}"]
    return "\n".join(line for line in out if line) + "\n"


def dump_data(policy: Policy) -> dict:
    """The model as YAML-shaped data (what a policy file would say), for `yaml.safe_dump`."""
    data = policy.model_dump(mode="json", by_alias=True, exclude_defaults=True, warnings=False)
    windows = {ch: {day: _hours(ranges) for day, ranges in spec.items()} for ch, spec in policy.windows.channels().items()}
    if windows or policy.windows.holidays != "closed":
        data["windows"] = {**windows, "holidays": policy.windows.holidays}
    data["templates"] = {name: {ch: t if isinstance(t, str) else t.model_dump(exclude_none=True)
                                for ch, t in chs.items()} for name, chs in policy.templates.items()}
    return data

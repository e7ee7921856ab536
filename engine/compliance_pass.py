"""The compiler's compliance pass (SPEC 5, "checked twice": this is the compile-time half).

Resolves the policy's profiles with its `compliance_settings` (errors at their place in the file), keeps
the resolved docs for the plan — so the plan, and its hash, carry the rules that ran, and a changed
profile is a changed plan — and, once the plan is built, maps the static findings of
engine/compliance_checks.py (a step that can never send lawfully, a cadence above a legal cap) to
diagnostics at the steps they name, and those about a template body (no opt-out) at that body: in the
policy file, or at the top of its file in `templates_dir`.
"""

from __future__ import annotations

from ..dsl.diagnostics import Span, suggest


def resolve_profiles(comp) -> list[dict]:
    """The resolved profile docs of the policy (empty on error: the diagnostics say why)."""
    policy, diags = comp.policy, comp.diags
    if not policy.compliance:
        if policy.compliance_settings:
            diags.error("compliance-settings-unused", "compliance_settings without compliance profiles",
                        comp.span(("compliance_settings",), prefer_key=True), "add `compliance: [profile, ...]`")
        return []
    from .compliance import ProfileError, profile_names, resolve  # only policies with profiles pay for it

    known = profile_names()
    selected = known if policy.compliance == "auto" else list(policy.compliance)
    before = len(diags.items)
    if policy.compliance != "auto":
        for i, profile in enumerate(selected):
            if profile not in known:
                diags.error("unknown-profile", f"unknown compliance profile '{profile}'", comp.span(("compliance", i)),
                            suggest(profile, known) or f"known profiles: {', '.join(known)}, or auto")
            elif profile in selected[:i]:
                diags.error("compliance-settings", f"compliance profile '{profile}' is listed twice",
                            comp.span(("compliance", i)))
    _check_settings(comp, [p for p in dict.fromkeys(selected) if p in known])
    if len(diags.items) > before:  # every mistake reported at its place, then nothing resolved
        return []
    try:
        return resolve(policy.compliance, {k: dict(v) for k, v in policy.compliance_settings.items()})
    except ProfileError as exc:
        diags.error("compliance-settings", str(exc), _settings_span(comp, str(exc)))
        return []


def _check_settings(comp, selected: list[str]) -> None:
    """Every `compliance_settings` mistake at its own place: a profile not selected, an unknown setting,
    a value the profile does not offer."""
    from .compliance import load_profile

    for profile, settings in comp.policy.compliance_settings.items():
        where = ("compliance_settings", profile)
        if profile not in selected:
            # `co-ley-230` for the selected `co-ley-2300`: a "did you mean", else what is selected
            hint = suggest(str(profile), selected) or f"selected: {', '.join(selected) or 'none'}"
            comp.diags.error("compliance-settings", f"compliance_settings: profile '{profile}' is not selected",
                             comp.span(where, prefer_key=True), hint)
            continue
        offered = load_profile(profile)["settings"]
        for key, value in (settings or {}).items():
            if key not in offered:
                comp.diags.error("compliance-settings", f"unknown setting '{key}' of {profile}",
                                 comp.span(where + (key,), prefer_key=True),
                                 suggest(str(key), offered) or f"settings of {profile}: {', '.join(offered) or 'none'}")
            elif str(value) not in offered[key]["values"]:
                comp.diags.error("compliance-settings", f"{profile}.{key}: '{value}' is not allowed",
                                 comp.span(where + (key,)), f"use one of {', '.join(map(str, offered[key]['values']))}")


def _settings_span(comp, message: str):
    """The place of the profile (or setting) a settings error names; for a problem of a profile's own file
    (`.../profiles/xx-law.yaml: rules[0] ...`), the `compliance:` entry that selects it; else the
    `compliance_settings` key, or `compliance:`."""
    listed = comp.policy.compliance if comp.policy.compliance != "auto" else []
    for i, profile in enumerate(listed):
        if f"{profile}.yaml:" in message:
            return comp.span(("compliance", i))
    for profile, settings in comp.policy.compliance_settings.items():
        if f"compliance_settings.{profile}" in message or f"'{profile}'" in message:
            for key in settings:
                if f".{profile}.{key}:" in message or f"'{key}'" in message:
                    return comp.span(("compliance_settings", profile, key))
            return comp.span(("compliance_settings", profile), prefer_key=True)
    where = "compliance_settings" if comp.policy.compliance_settings else "compliance"
    return comp.span((where,), prefer_key=True)


def check_steps(comp, plan_doc: dict, docs: list[dict]) -> None:
    """Static findings of the profiles over the built plan, at the steps they name."""
    if not docs:
        return
    from .compliance_checks import check_plan

    places = {step.id: path for path, _owner, step in comp.policy.all_steps()}
    dead = {step_id for step_id, path in places.items() if path in comp.dead_steps}
    for finding in check_plan(plan_doc, docs, dead):
        path = places.get(finding.step_id)
        span = comp.span(path + ("id",)) if path else comp.span(("compliance",), prefer_key=True)
        message = finding.message
        if finding.template is not None:
            span, message = _template_place(comp, finding)
        report = comp.diags.error if finding.severity == "error" else comp.diags.warning
        report(finding.code, message, span, f"{finding.profile}: rule {finding.rule} (docs/compliance.md)")


def _template_place(comp, finding):
    """(span, message) of a finding about a template body: the body in the policy file, else the top of
    the `templates_dir` file the template came from."""
    name, channel, part = finding.template
    if channel in (comp.policy.templates.get(name) or {}):
        return comp.span(("templates", name, channel) + ((part,) if part else ())), finding.message
    file = comp.base_dir / (comp.policy.templates_dir or "") / f"{name}.{channel}.j2"
    return Span(str(file), 1, 1), finding.message

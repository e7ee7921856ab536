"""bfc1590: engine/compliance_checks.py counts every send step of a stage (_triggers), including steps
the core never sends: those after an unconditional `stop` step, and those whose day lies outside the
stage's `when` (which the compiler itself reports as `step-outside-stage`, "can never fire").
docs/compliance.md: "A warning is thus never false and none is missing, for what a stage's cadence does
by itself". Here the simulation for every due weekday sends 3 or 4 calls, no rule is broken, and the
check still warns "8 calls in 7 days ... the guard will defer 1"."""

import pathlib
import tempfile
import textwrap


import pytest
from laws import law_us
from test_cadence_check import broken, simulate_weekdays

from collect.engine.compiler import compile_policy

CALLS = "".join(f"      - {{ id: c{d}, at: due+{d}d {t}, send: voice, template: m }}\n"
                for d, t in enumerate(["10:00"] * 7 + ["09:00"]))  # docs/compliance.md's 8 calls


def compiled(when: str, extra: str):
    path = pathlib.Path(tempfile.mkdtemp()) / "policy.yaml"
    path.write_text(textwrap.dedent(f"""
        policy: t
        timezone: America/Lima
        currency: USD
        compliance: [us-reg-f]
        group_by: invoice
        catch_up: all
        windows:
          default: {{ mon-sun: "08:00-19:00" }}
          holidays: open
        templates:
          m: {{ voice: "call" }}
        stages:
          s:
            when: {when}
            steps:
        """) + CALLS + extra, encoding="utf-8")
    return compile_policy(path)


@pytest.mark.parametrize("when, extra", [
    ("true", "      - { id: end, at: due+3d, stop: true }\n"),  # c3..c7 never go out
    ("invoice.days_past_due between 0 and 3", ""),  # c4..c7 'can never fire' (step-outside-stage)
], ids=["after-a-stop-step", "outside-the-stage"])
def test_steps_the_core_never_sends_make_no_cadence_warning(when, extra):
    result = compiled(when, extra)
    assert result.plan is not None
    sent = simulate_weekdays(result)
    assert all(len(calls) <= 4 for calls in sent)  # the core sends at most 4 calls, whatever the weekday
    assert "calls-7-in-7-days" not in broken(result, law_us, weekdays=sent)  # no due weekday breaks the law
    warned = [d.message for d in result.diagnostics.items if d.code.startswith("compliance-cadence")]
    assert warned == []  # before the fix: "stage 's': steps c0..c7 can place 8 calls in 7 days; us-reg-f allows 7, ..."

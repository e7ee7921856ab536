"""Steps that share a trigger add up in the compile-time cadence checks unless their conditions exclude
each other (docs/compliance.md, "Cadence checks"). The core sends one message per step, so two
unconditional steps at `due+1d 10:00` are two contacts at one instant, and the guard defers the second
where a rule limits them; the check counted the two once ("alternatives") and said nothing. Only steps
that cannot both fire for one invoice are alternatives: an experiment's variants, complementary segments,
exclusive comparisons of a field. The property at the end checks the warnings against simulations, with
shared triggers and conditions, as tests/test_cadence_check.py does for one step per trigger."""

from __future__ import annotations

import datetime as dt
import textwrap
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from laws import law_cl
from test_cadence_check import DAYS, PROFILES, assert_warned_as_simulated, broken, cadence_warnings

from collect.engine.compiler import compile_policy
from collect.engine.compliance import resolve
from collect.engine.compliance_checks import check_plan
from collect.engine.runtime import Runtime
from collect.engine.simulate import simulate, start_moment
from collect.engine.state import CustomerInfo, CustomerState, InvoiceInfo

SPACING = "messages-two-days-apart"


def compiled(tmp_path, steps: list[tuple], profile: str = "cl-sernac", windows: str = '{ mon-sat: "09:00-18:00" }',
             chosen: dict | None = None, timezone: str = "America/Santiago", head: str = ""):
    """A policy of one stage with `steps` (id, at, channel[, condition: `for: ...` or `if: ...`])."""
    body = "".join(f"      - {{ id: {s[0]}, at: {s[1]}, send: {s[2]}, {(s[3] + ', ') if len(s) > 3 else ''}"
                   "template: m }\n" for s in steps)
    values = ", ".join(f"{k}: {v}" for k, v in (chosen or {}).items())
    path = tmp_path / "policy.yaml"
    path.write_text(textwrap.dedent(f"""
        policy: t
        timezone: {timezone}
        currency: USD
        compliance: [{profile}]
        compliance_settings: {{ {profile}: {{ {values} }} }}
        group_by: invoice
        catch_up: all
        windows:
          default: {windows}
          holidays: open
        templates:
          m: {{ voice: "call", sms: "sms STOP", email: {{ subject: s, body: "b, unsubscribe" }} }}
        """) + textwrap.dedent(head) + "stages:\n  s:\n    when: true\n    steps:\n" + body, encoding="utf-8")
    return compile_policy(path)


def test_two_unconditional_messages_at_one_trigger_are_two_contacts(tmp_path):
    """The review's case: an SMS and an email at due+1d 10:00 under cl-sernac. The guard sends one and
    defers the other by the spacing; the check now warns of it, at the second step."""
    result = compiled(tmp_path, [("a", "due+1d 10:00", "sms"), ("b", "due+1d 10:00", "email")])
    assert cadence_warnings(result) == {SPACING: "stage 's': steps a and b go out 0 day(s) apart; cl-sernac wants "
                                                 "contacts by email/sms/whatsapp/letter at least 3 calendar days "
                                                 "apart, the guard will defer b"}
    (warning,) = [d for d in result.diagnostics.items if d.code == "compliance-cadence-spacing"]
    lines = (tmp_path / "policy.yaml").read_text().splitlines()
    assert (warning.span.line, warning.span.col) == (lines.index(next(x for x in lines if "id: b," in x)) + 1,
                                                     lines[warning.span.line - 1].index("b,") + 1)  # step b's id
    # at run time the guard holds the email back
    state = CustomerState(CustomerInfo("c1", email="a@b.cl", phone="+56961234567", timezone="America/Santiago",
                                       country="CL"))
    state.invoices["F1"] = InvoiceInfo("F1", "c1", Decimal("100"), Decimal("100"), dt.date(2026, 11, 23))
    rt = Runtime(result.plan)
    sim = simulate(rt, {"c1": state}, start_moment(dt.date(2026, 11, 20), rt.timezone), 10)
    assert [d.reason for d in sim.decisions if d.status == "deferred"] == [f"compliance:cl-sernac:{SPACING}"]


def test_two_unconditional_calls_at_one_trigger_add_up_to_a_cap(tmp_path):
    """Seven daily calls and an eighth at the seventh's trigger: 8 calls in 7 days (us-reg-f)."""
    calls = [(f"c{d}", f"due+{d}d 10:00", "voice") for d in range(7)] + [("again", "due+6d 10:00", "voice")]
    result = compiled(tmp_path, calls, "us-reg-f", '{ mon-sun: "08:00-19:00" }', timezone="America/New_York")
    assert cadence_warnings(result)["calls-7-in-7-days"] == (
        "stage 's': steps c0..c6 can place 8 calls in 7 days; us-reg-f allows 7, the guard will defer 1")


@pytest.mark.parametrize("head, first, second", [
    ("experiments: { e: { variants: { x: 50, y: 50 } } }\n", 'if: variant("e") == "x"', 'if: variant("e") == "y"'),
    ("experiments: { e: { variants: { x: 50, y: 50 } } }\n", 'if: variant("e") == "x"', 'if: variant("e") != "x"'),
    ("segments: { big: invoice.amount >= 1000 }\n", "for: big", "for: not big"),
    ("segments: { big: invoice.amount >= 1000 }\n", "if: invoice.amount >= 1000", "if: not big"),
    ("segments: { big: invoice.amount >= 1000, small: invoice.amount < 1000 }\n", "for: big", "if: small"),
    ("", "for: invoice.amount > 100", "for: invoice.amount <= 100"),
    ("", "if: customer.country == \"CL\" and invoice.amount > 5", "for: 'customer.country in [\"PE\", \"CO\"]'"),
], ids=["variants", "variant-not", "segment-not", "field-and-not-segment", "segments", "ranges", "in-list"])
def test_alternatives_at_one_trigger_count_once(tmp_path, head, first, second):
    """Steps whose conditions exclude each other never both fire for one invoice: no spacing warning."""
    steps = [("a", "due+1d 10:00", "sms", first), ("b", "due+1d 10:00", "email", second)]
    result = compiled(tmp_path, steps, head=head)
    assert result.plan is not None
    assert cadence_warnings(result) == {}


@pytest.mark.parametrize("head, first, second", [
    ("", "for: invoice.amount > 100", ""),  # one unconditional: it fires with the other
    ("", "for: invoice.amount > 100", "if: invoice.amount > 500"),  # both hold for 1000
    ("", "for: invoice.amount > 100", "if: customer.country == \"CL\""),  # different fields: both may hold
    ("segments: { big: invoice.amount >= 1000 }\n", "for: big", "for: big"),  # the same condition
    ("experiments: { e: { variants: { x: 50, y: 50 } } }\n", 'if: variant("e") == "x"', 'if: variant("e") != "y"'),
], ids=["unconditional", "overlapping-ranges", "other-fields", "same-segment", "same-variant"])
def test_steps_at_one_trigger_that_can_both_fire_add_up(tmp_path, head, first, second):
    steps = [("a", "due+1d 10:00", "sms", first), ("b", "due+1d 10:00", "email", second)]
    steps = [s if s[3] else s[:3] for s in steps]
    result = compiled(tmp_path, steps, head=head)
    assert list(cadence_warnings(result)) == [SPACING]


def test_of_alternatives_the_largest_group_that_fires_together_counts():
    """Variant x sends an SMS, variant y an SMS and an email at the same trigger: y's two add up (two
    contacts at one instant), whichever comes first in the stage."""
    def step(step_id, channel, condition):
        return {"id": step_id, "action": "send", "channels": [channel], "owner": "early", "for": None,
                "if": condition, "trigger": {"anchor": "due", "days": 1, "time_minutes": 600}}

    windows = {"default": {d: [[480, 1140]] for d in DAYS}}
    x, y = 'variant("e") == "x"', 'variant("e") == "y"'
    for steps in ([step("x1", "sms", x), step("y1", "sms", y), step("y2", "email", y)],
                  [step("y1", "sms", y), step("x1", "sms", x), step("y2", "email", y)]):
        plan = {"windows": {"channels": windows}, "stages": [{"name": "early", "steps": steps}], "events": {}}
        found = check_plan(plan, resolve(["cl-sernac"]))
        assert [(f.code, f.step_id) for f in found] == [("compliance-cadence-spacing", "y2")]
        assert "steps y1 and y2 go out 0 day(s) apart" in found[0].message
    plan["stages"][0]["steps"] = [step("x1", "sms", x), step("y1", "sms", y)]  # alternatives: silent
    assert check_plan(plan, resolve(["cl-sernac"])) == []


# -- the check against the simulation, with shared triggers ----------------------------------------

# conditions on the simulated invoice's amount (1000, tests/coretools.py): always true, always false
YES = ["for: invoice.amount > 500", "if: invoice.amount >= 1000"]
NO = ["if: invoice.amount < 500", "for: invoice.amount <= 10"]


@st.composite
def shared_cadences(draw, channels: list[str]):
    """tests/test_cadence_check.py's windows and triggers, each trigger with one to four steps: without a
    condition, with one that holds for the simulated invoice (YES), or one that does not (NO). A NO step
    shares its trigger with a YES step of its channel (each YES step answers at most one NO step), so the
    largest group of steps that can fire together at a trigger is the one the invoice fires, or one with
    the same channels: either way the contacts the check counts go out at the same moments on the same
    channels as those the simulation sends."""
    windows = {}
    for day in DAYS:
        if draw(st.integers(0, 3)):
            start = draw(st.integers(5, 13))
            windows[day] = f"{start:02d}:00-{draw(st.integers(start + 1, 23)):02d}:00"
    times = draw(st.lists(st.tuples(st.integers(0, 9), st.sampled_from([None, *range(24)])),
                          min_size=1, max_size=8, unique=True))
    steps = []
    for d, h in sorted(times, key=lambda t: (t[0], -1 if t[1] is None else t[1])):
        at = f"due+{d}d" + (f" {h:02d}:00" if h is not None else "")
        yes = draw(st.lists(st.sampled_from(channels), max_size=2))
        plain = draw(st.lists(st.sampled_from(channels), min_size=0 if yes else 1, max_size=2))
        no = draw(st.lists(st.sampled_from(sorted(set(yes))), max_size=len(yes))) if yes else []
        no = [c for i, c in enumerate(no) if no[:i + 1].count(c) <= yes.count(c)]
        group = [(c, None) for c in plain] + [(c, draw(st.sampled_from(YES))) for c in yes] + \
                [(c, draw(st.sampled_from(NO))) for c in no]
        for channel, condition in draw(st.permutations(group)):
            steps.append((f"v{len(steps)}", at, channel) + ((condition,) if condition else ()))
    assume(len(steps) >= 2)
    return "{ " + ", ".join(f'{d}: "{h}"' for d, h in windows.items()) + " }", steps


@pytest.mark.parametrize("profile, chosen, law, zone, monday, channels", PROFILES,
                         ids=[f"{p[0]}-{'-'.join(p[1].values()) or 'defaults'}" for p in PROFILES])
def test_a_cadence_warning_with_shared_triggers_names_exactly_the_due_dates_that_break_the_rule(
        tmp_path_factory, profile, chosen, law, zone, monday, channels):
    """As test_cadence_check's property, with steps that share triggers: the check warns of a cadence
    rule exactly when, for a due date on some weekday, the contacts the core sends break it, names
    those weekdays and quotes the worst numbers."""

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    @given(shared_cadences(channels))
    def check(case):
        windows, steps = case
        result = compiled(tmp_path_factory.mktemp("p"), steps, profile, windows, chosen, zone)
        assume(result.plan is not None)
        assert_warned_as_simulated(result, law, chosen, monday, (windows, steps))

    check()


def test_the_reviewed_case_breaks_the_law_as_read_independently(tmp_path):
    """The SMS and email at one trigger break cl-sernac's spacing for due dates on every weekday, as
    tests/laws.py reads the law from the notes (Sunday's both wait for Monday 09:00: still together)."""
    result = compiled(tmp_path, [("a", "due+1d 10:00", "sms"), ("b", "due+1d 10:00", "email")],
                      windows='{ mon-sun: "09:00-18:00" }')
    assert broken(result, law_cl)[SPACING] == [True] * 7
    assert cadence_warnings(result)[SPACING].endswith("the guard will defer b")

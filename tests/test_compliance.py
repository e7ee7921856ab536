"""Compliance profiles inside the decision core (SPEC 5): a guard after the policy's own rules that no
policy can switch off, checked at compile time too. The scenarios of shared/COMPLIANCE-NOTES.md run
through the simulator here (the guard alone is tested in test_compliance_lib.py), and a hypothesis
property per profile checks every simulated contact against an independent reading of the law."""

from __future__ import annotations

import datetime as dt
import textwrap
from collections import Counter
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collect.engine.compiler import compile_policy
from collect.engine.runtime import Runtime
from collect.engine.state import SentContact
from coretools import customer, invoice, run
from laws import LAWS

ALL = frozenset({"email", "sms", "whatsapp", "voice", "letter"})


def policy(tmp_path, body: str, *, timezone: str = "America/New_York", country: str = "US") -> Runtime:
    path = tmp_path / "policy.yaml"
    path.write_text(textwrap.dedent(f"""
        policy: t
        timezone: {timezone}
        currency: USD
        calendar: {{ country: {country} }}
        windows:
          default: {{ mon-sun: "06:00-23:00" }}
          holidays: open
        templates:
          m:
            email: {{ subject: "s", body: "b" }}
            sms: "sms"
            voice: "call"
            whatsapp: {{ template_name: w, language: es, params: ["x"] }}
            letter: "letter"
        """) + textwrap.dedent(body), encoding="utf-8")
    result = compile_policy(path)
    assert result.plan is not None, "\n".join(d.render() for d in result.diagnostics.sorted())
    return Runtime(result.plan)


def calls(days: int, per_day: int = 2) -> str:
    """A cadence of `per_day` calls a day (09:00, 15:00, ...) for `days` days after the due date."""
    steps = "\n".join(f"      - {{ id: c{d}-{k}, at: due+{d}d {9 + 6 * k:02d}:00, send: voice, template: m }}"
                      for d in range(1, days + 1) for k in range(per_day))
    return f"stages:\n  s:\n    when: true\n    steps:\n{steps}\ncatch_up: all\n"


def sent(result, channel: str | None = None):
    return [d for d in result.decisions if d.status == "sent" and (channel is None or d.channel == channel)]


def test_reg_f_hours_hold_back_what_the_policy_allows(tmp_path):
    rt = policy(tmp_path, "compliance: [us-reg-f]\nstages:\n  s:\n    when: true\n    steps:\n"
                          "      - { id: early, at: due+1d 06:00, send: sms, template: m }\n")
    state = customer("c1", timezone="America/New_York", country="US", phone="+12125550123")
    invoice(state, "F1", "2026-11-23")
    result = run(rt, [state], "2026-11-20", 10)
    deferred = [d for d in result.decisions if d.status == "deferred"]
    assert [(d.reason, d.at.strftime("%H:%M")) for d in deferred] == [("compliance:us-reg-f:hours", "06:00")]
    assert [d.at.strftime("%a %H:%M") for d in sent(result)] == ["Tue 08:00"]


def test_reg_f_eighth_call_in_seven_days_waits_and_a_second_debt_counts_apart(tmp_path):
    rt = policy(tmp_path, "compliance: [us-reg-f]\ngroup_by: invoice\n" + calls(5))
    state = customer("c1", timezone="America/New_York", country="US", phone="+12125550123")
    invoice(state, "A", "2026-11-01")
    invoice(state, "B", "2026-11-01")
    result = run(rt, [state], "2026-11-01", 30)
    for debt in "AB":
        times = sorted(d.at for d in sent(result, "voice") if debt in d.invoice_ids)
        assert len(times) == 10  # every step fires in the end ...
        assert all(sum(0 <= (c - s).total_seconds() < 7 * 86400 for c in times) <= 7 for s in times)  # ... 7 a week
    reasons = Counter(d.reason for d in result.decisions if d.status == "deferred")
    assert reasons["compliance:us-reg-f:calls-7-in-7-days"] >= 2


def test_reg_f_no_call_for_seven_days_after_a_conversation_but_texts_go(tmp_path):
    rt = policy(tmp_path, "compliance: [us-reg-f]\nstages:\n  s:\n    when: true\n    steps:\n"
                          "      - { id: call, at: due+2d 10:00, send: voice, template: m }\n"
                          "      - { id: text, at: due+2d 10:00, send: sms, template: m }\ncatch_up: all\n")
    state = customer("c1", timezone="America/New_York", country="US", phone="+12125550123")
    invoice(state, "A", "2026-11-21")
    monday = dt.datetime(2026, 11, 23, 9, tzinfo=ZoneInfo("America/New_York"))
    state.conversations.append(SentContact(monday, "voice"))
    result = run(rt, [state], "2026-11-20", 14)
    when = {d.channel: d.at.strftime("%a %d %H:%M") for d in sent(result)}
    assert when == {"sms": "Mon 23 10:00", "voice": "Mon 30 08:00"}


def test_colombia_needs_consent_per_channel_and_falls_back(tmp_path):
    rt = policy(tmp_path, "compliance: [co-ley-2300]\nstages:\n  s:\n    when: true\n    steps:\n"
                          "      - { id: s1, at: due+1d 10:00, send: [whatsapp, email], template: m }\n",
                timezone="America/Bogota", country="CO")
    agreed = customer("c1", timezone="America/Bogota", country="CO", consents=frozenset({"email"}))
    unknown = customer("c2", timezone="America/Bogota", country="CO", whatsapp="+573001234567")
    for state in (agreed, unknown):
        invoice(state, f"F-{state.customer.id}", "2026-11-24")
    result = run(rt, [agreed, unknown], "2026-11-20", 10)
    outcomes = {(d.customer_id, d.status, d.channel) for d in result.decisions}
    assert ("c1", "sent", "email") in outcomes
    (skipped,) = [d for d in result.decisions if d.customer_id == "c2"]
    assert skipped.status == "skipped" and "compliance:co-ley-2300:authorised-channels" in skipped.reason


def test_colombia_unauthorised_channels_are_skipped_with_or_without_consent_records(tmp_path):
    """docs/compliance.md: no channel left under the law is `skipped`, and on_exhausted opens no task
    (an agent would chase the debtor on channels never authorised). A customer whose records authorise
    other channels was `failed: no consent` and escalated."""
    rt = policy(tmp_path, "compliance: [co-ley-2300]\nstages:\n  s:\n    when: true\n    steps:\n"
                          "      - { id: s1, at: due+1d 10:00, send: [whatsapp, sms], template: m, on_exhausted: escalate }\n",
                timezone="America/Bogota", country="CO")
    law = "compliance:co-ley-2300:authorised-channels"
    for consents in (frozenset({"email"}), None):
        state = customer("c1", timezone="America/Bogota", country="CO", phone="+573001234567",
                         whatsapp="+573001234567", consents=consents)
        invoice(state, "F1", "2026-11-24")
        result = run(rt, [state], "2026-11-20", 10)
        assert [(d.status, d.reason) for d in result.decisions] == [("skipped", f"whatsapp: {law}; sms: {law}")], consents


def test_chile_stops_all_contact_with_a_debtor_who_is_sued(tmp_path):
    rt = policy(tmp_path, "compliance: [cl-sernac]\nstages:\n  s:\n    when: true\n    steps:\n"
                          "      - { id: s1, at: due+1d 10:00, send: [sms, email], template: m, on_exhausted: escalate }\n",
                timezone="America/Santiago", country="CL")
    state = customer("c1", timezone="America/Santiago", country="CL", phone="+56961234567", email="a@b.cl",
                     legal_status="sued")
    invoice(state, "F1", "2026-11-24")
    result = run(rt, [state], "2026-11-20", 10)
    assert not sent(result) and [d.status for d in result.decisions] == ["skipped"]
    assert "compliance:cl-sernac:sued-or-insolvent" in result.decisions[0].reason


def test_auto_applies_each_customers_own_law(tmp_path):
    rt = policy(tmp_path, "compliance: auto\nstages:\n  s:\n    when: true\n    steps:\n"
                          "      - { id: s1, at: due 09:00, send: sms, template: m }\n", timezone="America/Lima",
                country="PE")
    lima = customer("pe", timezone="America/Lima", country="PE", phone="+51987654321")
    miami = customer("us", timezone="America/New_York", country="US", phone="+12125550123")
    for state in (lima, miami):
        invoice(state, f"F-{state.customer.id}", "2026-11-21")  # a Saturday
    result = run(rt, [lima, miami], "2026-11-20", 5)
    when = {d.customer_id: d.at.strftime("%a %H:%M") for d in sent(result)}
    assert when == {"us": "Sat 09:00", "pe": "Mon 07:00"}  # Peru: no Saturdays; the US has no day ban


def test_compile_time_errors_and_warnings_name_the_profile_and_the_steps(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(textwrap.dedent("""
        policy: t
        timezone: America/Lima
        compliance: [us-reg-f, pe-indecopi]
        windows:
          default: { mon-fri: "08:00-19:00" }
          letter: { sat-sun: "09:00-12:00" }
        templates:
          m: { voice: "call", letter: "x" }
        """) + calls(5).replace("    steps:\n", "    steps:\n      - { id: weekend, at: due+1d, send: letter, template: m }\n"),
        encoding="utf-8")
    result = compile_policy(path)
    found = {(d.code, d.severity, d.span.line) for d in result.diagnostics.items}
    assert ("compliance-never-lawful", "error", 14) in found  # Peru bans weekends: the weekend letter never goes
    (cadence,) = [d for d in result.diagnostics.items if d.code == "compliance-cadence-exceeds-cap"]
    assert "can place 10 calls in 7 days; us-reg-f allows 7, the guard will defer 3" in cadence.message
    assert result.plan is None and not any(d.code == "compliance-not-enforced" for d in result.diagnostics.items)


def test_a_changed_profile_changes_the_plan_hash(tmp_path, monkeypatch):
    from collect.engine import compliance

    body = "compliance: [pe-indecopi]\nstages:\n  s:\n    when: true\n    steps:\n" \
           "      - { id: s1, at: due, send: sms, template: m }\n"
    before = policy(tmp_path, body, timezone="America/Lima", country="PE").plan_hash
    original = compliance.resolve

    def stricter(selection, settings=None):
        docs = original(selection, settings)
        docs[0]["verified"] = "2027-01-01"
        return docs
    monkeypatch.setattr(compliance, "resolve", stricter)
    assert policy(tmp_path, body, timezone="America/Lima", country="PE").plan_hash != before


# -- every simulated contact obeys the law -------------------------------------------------------------

CHANNELS = ["email", "sms", "whatsapp", "voice", "letter"]


@st.composite
def cadences(draw, zones):
    steps = []
    for i in range(draw(st.integers(2, 9))):
        channels = draw(st.lists(st.sampled_from(CHANNELS), min_size=1, max_size=2, unique=True))
        hour = draw(st.integers(0, 23))
        steps.append(f"      - {{ id: s{i}, at: due{draw(st.integers(-3, 12)):+d}d {hour:02d}:00, "
                     f"send: [{', '.join(channels)}], template: m }}")
    people = []
    for c in range(draw(st.integers(1, 2))):
        state = customer(f"c{c}", timezone=draw(st.sampled_from(zones)), country=None, phone="+12125550123",
                         whatsapp="+12125550123", email="a@b.co",
                         consents=draw(st.sampled_from([ALL, frozenset({"email", "sms"}), None])))
        for j in range(draw(st.integers(1, 2))):
            invoice(state, f"c{c}-{j}", (dt.date(2026, 3, 2) + dt.timedelta(days=draw(st.integers(0, 40)))).isoformat())
        people.append(state)
    talks = draw(st.lists(st.integers(0, 60 * 24), max_size=2))
    group = draw(st.sampled_from(["customer", "invoice"]))
    return "\n".join(steps), people, talks, group


@pytest.mark.parametrize("name, chosen, law, zones", LAWS, ids=[f"{n}-{'-'.join(c.values()) or 'defaults'}"
                                                                  for n, c, _, _ in LAWS])
def test_no_simulated_contact_ever_breaks_the_law(tmp_path_factory, name, chosen, law, zones):
    chosen_yaml = ", ".join(f"{k}: {v}" for k, v in chosen.items())
    header = f"compliance: [{name}]\n" + (f"compliance_settings: {{ {name}: {{ {chosen_yaml} }} }}\n" if chosen else "")

    @settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
    @given(cadences(zones))
    def check(case):
        steps, people, talks, group = case
        rt = policy(tmp_path_factory.mktemp("p"), header + f"group_by: {group}\ncatch_up: all\nstages:\n  s:\n"
                                                           f"    when: true\n    steps:\n{steps}\n",
                    timezone=zones[0], country=name[:2].upper())
        start = dt.datetime(2026, 3, 1, tzinfo=ZoneInfo(zones[0]))
        for state in people:
            state.conversations += [SentContact(start + dt.timedelta(minutes=m), "voice") for m in talks]
        result = run(rt, people, "2026-03-01", 60)
        for state in people:
            history = []
            for d in (d for d in result.decisions if d.customer_id == state.customer.id):
                if d.status != "sent" or d.channel in ("", "webhook", "agent"):
                    continue
                talks_before = [t for t in state.conversations if t.at <= d.at]
                broken = law(chosen, state.customer, d.channel, d.invoice_ids, d.at, history, talks_before)
                assert not broken, (d.step, d.channel, d.at.isoformat(), broken)
                history.append(SentContact(d.at, d.channel, d.invoice_ids))

    check()


STACKED = """
policy: stack
timezone: America/Bogota
currency: COP
calendar: { country: CO }
compliance: [co-ley-2300, pe-indecopi]
windows:
  default: { mon-fri: "08:00-18:00" }
  voice: { mon-fri: "19:00-20:00", sat: "09:00-12:00" }
templates:
  t:
    voice: "Hola {{ customer.name }}."
    email: { subject: "x", body: "Hola {{ customer.name }}. Responda BAJA." }
stages:
  s:
    when: true
    steps:
      - { id: call, at: due+1d, send: [voice, email], template: t }
"""


def test_a_channel_the_profiles_hours_and_its_window_never_meet_is_passed_over_not_waited_for(tmp_path):
    """Each profile alone meets the voice window (19:00-20:00 weekdays, Saturday morning); together they
    never do. The call waited for ever, the email never tried; now the email goes the next morning."""
    path = tmp_path / "p.yaml"
    path.write_text(STACKED, encoding="utf-8")
    rt = Runtime(compile_policy(path).plan)
    c = customer("c1", timezone="America/Bogota", country="CO", phone="+573211234567",
                 consents=frozenset({"voice", "email"}))
    invoice(c, "I1", "2026-11-17")
    result = run(rt, [c], "2026-11-15", 10)
    assert [(d.at.strftime("%m-%d %H:%M"), d.channel, d.status) for d in result.decisions] == [
        ("11-18 19:00", "email", "deferred"), ("11-19 08:00", "email", "sent")]


@pytest.mark.parametrize("send, code, severity", [("[voice, email]", "compliance-channel-never-lawful", "warning"),
                                                  ("voice", "compliance-never-lawful", "error")])
def test_stacked_profiles_whose_hours_never_meet_the_window_are_found_at_compile_time(tmp_path, send, code, severity):
    path = tmp_path / "p.yaml"
    path.write_text(STACKED.replace("send: [voice, email]", f"send: {send}"), encoding="utf-8")
    found = [(d.code, d.severity) for d in compile_policy(path).diagnostics.items]
    assert found == [(code, severity)]


@pytest.mark.parametrize("written", ["demandado", "en quiebra"])
def test_a_legal_status_collect_does_not_know_is_a_row_error_not_a_state_that_stops_nothing(tmp_path, written):
    """cl-sernac stops all contact with a debtor who is `sued`; `demandado` stopped nothing, silently."""
    from collect.engine.portfolio import CsvError, read_portfolio

    path = tmp_path / "p.csv"
    path.write_text(f"invoice_id,customer_id,amount,due_date,legal_status\nI1,C1,1,2026-11-20,{written}\n"
                    "I2,C2,1,2026-11-20,Sued\nI3,C3,1,2026-11-20,\n", encoding="utf-8")
    with pytest.raises(CsvError) as info:
        read_portfolio(path, fields={}, default_timezone="UTC", default_currency="USD")
    assert [(p.row, p.column) for p in info.value.problems] == [(2, "legal_status")]
    assert "is not a legal status collect knows (insolvent, none, sued)" in str(info.value)


def test_a_step_whose_channels_one_profile_and_the_stack_rule_out_between_them_is_an_error(tmp_path):
    """Voice never meets co-ley-2300 alone, SMS never meets co-ley-2300 and pe-indecopi together: no
    channel is left, which is the error, not one warning about voice."""
    path = tmp_path / "p.yaml"
    path.write_text(STACKED.replace('voice: { mon-fri: "19:00-20:00", sat: "09:00-12:00" }',
                                    'voice: { mon-fri: "19:30-20:00" }\n  sms: { mon-fri: "19:00-19:30", sat: "09:00-12:00" }')
                    .replace('email: { subject: "x", body: "Hola {{ customer.name }}. Responda BAJA." }',
                             'sms: "Hola. Responda BAJA."').replace("send: [voice, email]", "send: [voice, sms]"),
                    encoding="utf-8")
    found = [(d.code, d.severity) for d in compile_policy(path).diagnostics.items]
    assert found == [("compliance-channel-never-lawful", "warning"), ("compliance-never-lawful", "error")]

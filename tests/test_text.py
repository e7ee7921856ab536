"""The text DSL: same model as YAML, positions in diagnostics, printing round trips, robustness."""

from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import policies

from collect.dsl.diagnostics import Diagnostics
from collect.dsl.loader import load_policy, validate
from collect.dsl.model import Policy
from collect.dsl.source import Located
from collect.dsl.text import dump_text, load_text
from collect.dsl.textdump import dump_data
from collect.dsl.yamlload import load_yaml
from collect.engine.compiler import compile_policy

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

FULL = '''
policy demo "Every key"   # comment
timezone America/Lima
currency PEN
calendar PE { subdivision "LIM"; extra_holidays 2026-12-24; weekend sat, sun }
field customer.risk_score: float
compliance pe-indecopi, co-ley-2300
window default mon-fri 08:00-12:00, 14:00-19:00, sat 09:00-13:00, sun closed
window voice tue-thu 09:00-18:00
holidays open
cap any 7 per 7d
cap voice 3 per 7d cooldown after conversation 7d
on_cap skip
group_by invoice
catch_up all
max_lateness 2d
segment risky = customer.risk_score >= 0.7 or customer.broken_promises_12m > 0
segment big = invoice.amount >= 20000 and not risky
template t email {
  subject "Factura {{ invoice.number }}"
  body """Hola {{ customer.name }},
{{ invoice.balance | money }}"""
  html "<p>{{ customer.name }}</p>"
}
template t sms "Hola {{ customer.name }}: {{ pay_link }}"
template t voice { body "Hola" }
template t whatsapp { template_name recordatorio; language es; params "{{ customer.name }}", "x" }
templates_dir "tpl/"
experiment tone per invoice { soft 45; firm 45; holdout 10 }
stage early when invoice.days_past_due between 1 and 30 {
  od-1 at due+1d send email with t
  od-7 at due+7d 10:30 for big if not risky send whatsapp, sms with t else escalate to agents priority invoice.balance * 2
  od-9 at due+9d if variant("tone") == "firm" send sms with t else escalate
  od-15 at due+15d escalate to key-accounts priority invoice.balance * (1 - customer.risk_score)
  od-20 at due+20d webhook legal
  od-30 at due+30d stop
}
on promise_made { pm at promise-1d send sms with t }
pause_when disputed
stop_when paid
'''

FULL_YAML = '''
policy: demo
description: Every key
timezone: America/Lima
currency: PEN
calendar: { country: PE, subdivision: LIM, extra_holidays: [2026-12-24], weekend: [sat, sun] }
fields: { customer.risk_score: float }
compliance: [pe-indecopi, co-ley-2300]
windows:
  default: { mon-fri: "08:00-12:00, 14:00-19:00", sat: "09:00-13:00", sun: closed }
  voice: { tue-thu: "09:00-18:00" }
  holidays: open
caps:
  - { channel: any, max: 7, per: 1w }
  - { channel: voice, max: 3, per: 7d, cooldown_after_conversation: 7d }
on_cap: skip
group_by: invoice
catch_up: all
max_lateness: 2d
segments:
  risky: customer.risk_score >= 0.7 or customer.broken_promises_12m > 0
  big: invoice.amount >= 20000 and not risky
templates:
  t:
    email: { subject: "Factura {{ invoice.number }}", body: "Hola {{ customer.name }},\\n{{ invoice.balance | money }}",
             html: "<p>{{ customer.name }}</p>" }
    sms: "Hola {{ customer.name }}: {{ pay_link }}"
    voice: { body: Hola }
    whatsapp: { template_name: recordatorio, language: es, params: ["{{ customer.name }}", "x"] }
templates_dir: tpl/
experiments:
  tone: { unit: invoice, variants: { soft: 45, firm: 45, holdout: 10 } }
stages:
  early:
    when: invoice.days_past_due between 1 and 30
    steps:
      - { id: od-1, at: due+1d, send: email, template: t }
      - { id: od-7, at: due+7d 10:30, for: big, if: not risky, send: [whatsapp, sms], template: t,
          on_exhausted: { queue: agents, priority: invoice.balance * 2 } }
      - { id: od-9, at: due+9d, if: variant("tone") == "firm", send: sms, template: t, on_exhausted: escalate }
      - { id: od-15, at: due+15d, escalate: { queue: key-accounts, priority: "invoice.balance * (1 - customer.risk_score)" } }
      - { id: od-20, at: due+20d, webhook: legal }
      - { id: od-30, at: due+30d, stop: true }
events:
  promise_made: [ { id: pm, at: promise-1d, send: sms, template: t } ]
pause_when: [disputed]
stop_when: [paid]
'''


def _model(text: str, loader, name: str) -> Policy:
    diags = Diagnostics()
    located = loader(text, name, diags)
    assert located is not None, [d.render() for d in diags.items]
    policy = validate(located, diags)
    assert policy is not None and not diags.errors, [d.render() for d in diags.items]
    return policy


def test_every_key_gives_the_same_model_as_yaml():
    assert _model(FULL, load_text, "p.collect") == _model(FULL_YAML, load_yaml, "p.yaml")


def test_examples_have_the_same_plan_hash_in_both_forms():
    for folder in ("pe-b2b", "us-consumer"):
        from_yaml, from_text = compile_policy(EXAMPLES / folder / "policy.yaml"), compile_policy(
            EXAMPLES / folder / "policy.collect")
        assert from_yaml.plan is not None and from_text.plan is not None
        assert from_yaml.plan.plan_hash == from_text.plan.plan_hash


def _diag(tmp_path, text: str):
    path = tmp_path / "p.collect"
    path.write_text(text, encoding="utf-8")
    result = compile_policy(path)
    return {(d.code, d.span.line, d.span.col) for d in result.diagnostics.items}


HEAD = "policy demo\ntimezone America/Lima\nwindow default mon-fri 08:00-19:00\ntemplate t email { subject \"s\"; body \"b\" }\n"


def test_positions_of_errors_inside_a_collect_file(tmp_path):
    text = HEAD + ("segment risky = customer.risk_scor > 3\n"
                   "stage s when invoice.days_past_due >= 0 {\n"
                   "  a at due+1d if riskyy send email, smss with t\n"
                   "  b at due+2d send email with tt\n"
                   "}\n")
    assert _diag(tmp_path, text) == {("unknown-field", 5, 17), ("unknown-segment", 7, 18), ("unknown-channel", 7, 37),
                                     ("unknown-template", 8, 31)}


def test_unknown_settings_and_bad_values_are_positioned(tmp_path):
    text = HEAD + "currrency PEN\ncap sms x per 7q\nstage s when invoice.days_past_due >= 0 {\n  a at due+2x send email with t\n}\n"
    found = _diag(tmp_path, text)
    assert ("unknown-key", 5, 1) in found
    assert ("bad-value", 6, 15) in found  # 7q
    assert ("wrong-type", 6, 9) in found  # max x
    assert ("bad-value", 8, 8) in found  # due+2x


def test_syntax_errors_say_what_was_expected():
    diags = Diagnostics()
    assert load_text("policy x\nstage s when a {\n  st at due send\n}\n", "p.collect", diags) is None
    (diag,) = diags.items
    assert (diag.code, diag.span.line) == ("syntax", 3)
    assert "end of the line" in diag.message and "expected" in diag.message


def test_duplicate_keys_are_reported():
    diags = Diagnostics()
    load_text("policy a\npolicy b\n", "p.collect", diags)
    assert [(d.code, d.span.line) for d in diags.items] == [("duplicate-key", 2)]


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(policies())
def test_random_policies_survive_yaml_model_text_model(data):
    policy = Policy.model_validate(data)
    as_yaml = yaml.safe_dump(dump_data(policy), allow_unicode=True)
    assert _model(as_yaml, load_yaml, "p.yaml") == policy
    assert _model(dump_text(policy), load_text, "p.collect") == policy


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200) | st.from_regex(r"(policy|stage|window|cap|template|segment)[ a-z{}\n:=\"0-9-]*"))
def test_random_text_only_ever_gives_diagnostics(text):
    diags = Diagnostics()
    located = load_text(text, "p.collect", diags)
    assert located is not None or diags.errors
    if located is not None:
        assert isinstance(located, Located)
        validate(located, diags)  # must not raise either


def test_load_policy_picks_the_text_front_end_by_suffix(tmp_path):
    path = tmp_path / "p.collect"
    path.write_text(HEAD + "stage s when invoice.days_past_due >= 0 {\n  a at due send email with t\n}\n")
    policy, _, diags = load_policy(path)
    assert policy is not None and policy.stages["s"].steps[0].send == ["email"], diags.items


def test_every_text_snippet_of_the_language_doc_parses():
    import re

    doc = (Path(__file__).resolve().parent.parent / "docs/language.md").read_text(encoding="utf-8")
    snippets = re.findall(r"```text\n(.*?)```", doc, re.S)
    assert len(snippets) >= 7
    for snippet in snippets:
        diags = Diagnostics()
        assert load_text(snippet, "doc", diags) is not None and not diags.items, (snippet, diags.items)

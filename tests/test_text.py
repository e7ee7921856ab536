"""The text DSL: same model as YAML, positions in diagnostics, printing round trips, robustness."""

import re
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
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
calendar CL { subdivision "RM"; extra_holidays 2026-12-24; weekend sat, sun }
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
calendar: { country: CL, subdivision: RM, extra_holidays: [2026-12-24], weekend: [sat, sun] }
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


def test_else_escalate_with_a_priority_and_no_queue_goes_to_the_default_queue():
    """The grammar's `else escalate [to QUEUE] [priority EXPR]` allows no queue with a priority: it said
    `'queue' is required in stages/s/steps/0/on_exhausted`, a path no .collect file has."""
    def policy(escalation: str) -> str:
        return HEAD + ("stage s when invoice.days_past_due >= 0 {\n"
                       f"  a at due+1d: send email with t else escalate {escalation}\n}}\n")
    text = _model(policy("priority invoice.balance"), load_text, "p.collect")
    assert text == _model(policy("to collections priority invoice.balance"), load_text, "p.collect")
    assert text.stages["s"].steps[0].on_exhausted.queue == "collections"


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
    load_text("policy x\nstage s when a {\n  st at due send\n}\n", "p.collect", diags)
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


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(policies())
def test_random_policies_keep_their_plan_hash_through_yaml_and_text(data):
    """YAML -> model -> text DSL -> model: the same plan, not only an equal model."""
    from_yaml = compile_policy("p.yaml", text=yaml.safe_dump(data, allow_unicode=True))
    assert from_yaml.policy is not None, [d.render() for d in from_yaml.diagnostics.items]
    from_text = compile_policy("p.collect", text=dump_text(from_yaml.policy))
    # the same findings; their order follows the lines, which differ between the two forms
    assert sorted(d.code for d in from_text.diagnostics.items) == sorted(d.code for d in from_yaml.diagnostics.items)
    if from_yaml.plan is not None:
        assert from_text.plan.plan_hash == from_yaml.plan.plan_hash
        assert from_text.plan["compliance_settings"] == from_yaml.plan["compliance_settings"]


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


# -- the readable forms: ':' before the action, conditions in any order, blocks on one line ------------

BRIEF = '''
policy b2b-pe "Preventive + early collections, B2B Peru"
timezone America/Lima
currency PEN
calendar PE { extra_holidays 2026-12-24  weekend sat, sun }
field customer.risk_score: float
window default mon-fri 08:00-19:00, sat 09:00-13:00
window email mon-sun 07:00-21:00
cap any 7 per 7d
cap voice 3 per 7d cooldown after conversation 7d
segment high_value = invoice.amount >= 20000
segment low_risk = customer.risk_score < 0.3 and not high_value
template friendly email {
  subject "Factura {{ invoice.number }} vence el {{ invoice.due_date | date }}"
  body """Hola {{ customer.name }}, ..."""
}
stage early when invoice.days_past_due between 1 and 30 {
  od-1 at due+1d: send email with friendly
  od-7 at due+7d 10:00 if not low_risk for high_value: send email with friendly
  od-15 at due+15d if invoice.amount > 1000: escalate to key-accounts priority invoice.balance * (1 - customer.risk_score)
}
on promise_broken { pb at event+1d: send whatsapp, email with friendly }
'''

# the same policy in YAML, written in the shape the text form produces (lists where the text has lists)
BRIEF_YAML = '''
policy: b2b-pe
description: Preventive + early collections, B2B Peru
timezone: America/Lima
currency: PEN
calendar: { country: PE, extra_holidays: ["2026-12-24"], weekend: [sat, sun] }
fields: { customer.risk_score: float }
windows:
  default: { mon-fri: "08:00-19:00", sat: "09:00-13:00" }
  email: { mon-sun: "07:00-21:00" }
caps:
  - { channel: any, max: 7, per: 7d }
  - { channel: voice, max: 3, per: 7d, cooldown_after_conversation: 7d }
segments:
  high_value: invoice.amount >= 20000
  low_risk: customer.risk_score < 0.3 and not high_value
templates:
  friendly:
    email: { subject: "Factura {{ invoice.number }} vence el {{ invoice.due_date | date }}",
             body: "Hola {{ customer.name }}, ..." }
stages:
  early:
    when: invoice.days_past_due between 1 and 30
    steps:
      - { id: od-1, at: due+1d, send: [email], template: friendly }
      - { id: od-7, at: due+7d 10:00, if: not low_risk, for: high_value, send: [email], template: friendly }
      - { id: od-15, at: due+15d, if: invoice.amount > 1000,
          escalate: { queue: key-accounts, priority: invoice.balance * (1 - customer.risk_score) } }
events:
  promise_broken: [ { id: pb, at: event+1d, send: [whatsapp, email], template: friendly } ]
'''


def test_text_gives_exactly_the_data_yaml_gives():
    diags = Diagnostics()
    from_text = load_text(BRIEF, "p.collect", diags).data
    from_yaml = load_yaml(BRIEF_YAML, "p.yaml", diags).data
    assert not diags.items
    assert from_text == from_yaml


def test_colon_and_condition_order_are_only_spelling():
    plain = "policy x\ntimezone UTC\nstage s when true {\n  a at due+1d for x > 1 if y send sms with t\n}\n"
    fancy = "policy x\ntimezone UTC\nstage s when true {\n  a at due+1d if y for x > 1: send sms with t\n}\n"
    one, two = (load_text(t, "p.collect", Diagnostics()).data for t in (plain, fancy))
    assert one == two and one["stages"]["s"]["steps"][0]["for"] == "x > 1"


def test_expression_ends_at_its_terminator_but_not_inside_strings():
    text = ('policy x\nsegment s = lower(customer.name) in ["stop; now", "a # b", \'if: x\']  # note\n'
            'stage s when customer.tier == "{gold}" {\n'
            '  a at due if customer.tier == "send: x" or contacts.last_channel == "stop" send sms with t\n}\n')
    data = load_text(text, "p.collect", Diagnostics()).data
    assert data["segments"]["s"] == 'lower(customer.name) in ["stop; now", "a # b", \'if: x\']'
    assert data["stages"]["s"]["when"] == 'customer.tier == "{gold}"'
    assert data["stages"]["s"]["steps"][0]["if"] == 'customer.tier == "send: x" or contacts.last_channel == "stop"'


def test_a_field_named_like_a_keyword_does_not_end_an_expression():
    text = "policy x\nstage s when true {\n  a at due if customer.stop_flag and invoice.send_count > 1 stop\n}\n"
    step = load_text(text, "p.collect", Diagnostics()).data["stages"]["s"]["steps"][0]
    assert step == {"id": "a", "at": "due", "if": "customer.stop_flag and invoice.send_count > 1", "stop": True}


def test_special_values_none_auto_closed_and_byte_order_mark():
    text = "\ufeffpolicy x\ncompliance auto\npause_when none\ncalendar { weekend none }\nwindow sms closed\n"
    diags = Diagnostics()
    located = load_text(text, "p.collect", diags)
    assert not diags.items
    assert located.data == {"policy": "x", "compliance": "auto", "pause_when": [], "calendar": {"weekend": []},
                            "windows": {"sms": {}}}
    assert located.keys[("policy",)].col == 1


def test_a_list_in_a_block_may_continue_after_a_comma():
    text = 'template t whatsapp {\n  template_name x; language es\n  params "{{ customer.name }}",\n    "b"\n}\n'
    data = load_text(text, "p.collect", Diagnostics()).data
    assert data["templates"]["t"]["whatsapp"] == {"template_name": "x", "language": "es",
                                                  "params": ["{{ customer.name }}", "b"]}


# -- positions, through the real loader ----------------------------------------------------------------

def _load(tmp_path, text: str):
    path = tmp_path / "p.collect"
    path.write_text(text, encoding="utf-8")
    _, _, diags = load_policy(path)
    return diags.items


def test_unknown_key_in_a_block_points_at_the_key_with_a_suggestion(tmp_path):
    items = _load(tmp_path, HEAD + 'template u email { subjet "s"; body "b" }\ncalendar PE { wekend sat }\n'
                  "stage s when true {\n}\n")
    found = {(d.code, d.span.line, d.span.col, d.hint) for d in items}
    assert ("unknown-key", 5, 20, "did you mean 'subject'?") in found
    assert ("unknown-key", 6, 15, "did you mean 'weekend'?") in found


def test_bad_trigger_and_duration_point_at_the_value(tmp_path):
    items = _load(tmp_path, HEAD + "max_lateness 3x\nstage s when true {\n  a at due+1w: stop\n}\n")
    assert {(d.code, d.span.line, d.span.col) for d in items} == {("bad-value", 5, 14), ("bad-value", 7, 8)}


def test_expression_errors_point_at_their_column_in_when_for_if_and_priority(tmp_path):
    text = HEAD + ("stage s when invoice.days_past_due >= 0 and invoice.amout > 1 {\n"
                   "  a at due for customer.nme == \"x\": send email with t\n"
                   "  b at due+1d: escalate to q priority invoice.balance * invoice.rsk\n"
                   "}\n")
    found = _diag(tmp_path, text)
    assert {("unknown-field", 5, 45), ("unknown-field", 6, 16), ("unknown-field", 7, 57)} <= found


def test_template_error_in_a_triple_quoted_body_points_at_its_line(tmp_path):
    text = HEAD.replace('template t email { subject "s"; body "b" }',
                        'template t email {\n  subject "s"\n  body """Hola\n{{ customer.nmae }}"""\n}') + (
        "stage s when invoice.days_past_due >= 0 {\n  a at due send email with t\n}\n")
    assert {(code, line) for code, line, _ in _diag(tmp_path, text)} == {("unknown-attribute", 7)}


def test_template_errors_after_escapes_in_a_string_point_at_the_value(tmp_path):
    text = HEAD.replace('subject "s"', 'subject "s\\n {{ customer.nmae }}"') + (
        'template t sms "\\t\\"x\\" \\u00e1e {{ invoice.nmber }}"\n'
        "stage s when invoice.days_past_due >= 0 {\n  a at due send sms, email with t\n}\n")
    lines = text.splitlines()
    assert {(code, line, col) for code, line, col in _diag(tmp_path, text)} == {
        ("unknown-attribute", 4, lines[3].index(".nmae") + 1), ("unknown-attribute", 5, lines[4].index(".nmber") + 1)}


def test_segment_call_in_text_and_bare_name_in_yaml_give_one_plan_hash(tmp_path):
    (tmp_path / "p.yaml").write_text(
        "policy: p\ntimezone: UTC\nwindows: { default: { mon-fri: '08:00-19:00' } }\ntemplates: { t: { sms: x } }\n"
        "segments: { stop: customer.do_not_contact == true }\nstages:\n  a:\n    when: invoice.days_past_due >= 0\n"
        "    steps:\n      - { id: a1, at: due, if: not stop, send: sms, template: t }\n", encoding="utf-8")
    (tmp_path / "p.collect").write_text(
        'policy p\ntimezone UTC\nwindow default mon-fri 08:00-19:00\ntemplate t sms "x"\n'
        "segment stop = customer.do_not_contact == true\nstage a when invoice.days_past_due >= 0 {\n"
        '  a1 at due if not segment("stop"): send sms with t\n}\n', encoding="utf-8")
    plans = [compile_policy(tmp_path / name).plan for name in ("p.yaml", "p.collect")]
    assert plans[0].plan_hash == plans[1].plan_hash


# -- syntax errors -------------------------------------------------------------------------------------

def _syntax(text: str) -> list[tuple[int, int, str, str]]:
    diags = Diagnostics()
    load_text(text, "p.collect", diags)  # the rest of the file may still be built: see test_a_syntax_error_...
    assert {d.code for d in diags.items} == {"syntax"}
    return [(d.span.line, d.span.col, d.message, d.hint or "") for d in diags.items]


def test_every_broken_statement_and_step_is_reported_once():
    text = ("policy x\n"
            "segmnt a = b\n"
            "stage s when x {\n"
            "  a at due+1d send email\n"
            "  b at due+2d: stop\n"
            "  c at due+3d escalate q\n"
            "}\n"
            "cap sms 1 1d\n"
            "timezone UTC\n")
    assert [(line, col) for line, col, _, _ in _syntax(text)] == [(2, 1), (4, 25), (6, 24), (8, 11)]


def test_known_mistakes_get_their_own_message():
    from collect.dsl.text import MISTAKES

    for message, examples in MISTAKES.items():
        for example in examples:
            problem = _syntax(example)[0]
            assert message in problem[2], (example, problem)


def test_misspelt_keywords_and_statements_get_a_suggestion():
    assert _syntax("policy x\nstage s when x {\n  a at due sned email with t\n}\n")[0][3] == "did you mean 'send'?"
    assert _syntax("stage s when x {\n  a at due send email wiht t\n}\n")[0][3] == "did you mean 'with'?"
    line, col, message, hint = _syntax("policy x\nsegmnt a = b\n")[0]
    assert (line, col, hint) == (2, 1, "did you mean 'segment'?") and "'segmnt'" in message
    assert "one 'segment' line per entry" in _syntax("segments a = b\n")[0][3]


def test_yaml_in_a_collect_file_is_recognised_once():
    (problem,) = _syntax("policy: x\ntimezone: UTC\nstages:\n  s: { when: true }\n")
    assert problem[:2] == (1, 7) and "looks like YAML" in problem[2]
    assert [line for line, *_ in _syntax("policy x\ntimezone: UTC\ncurrency: PEN\n")] == [2, 3]


def test_a_statement_inside_a_stage_is_not_read_as_a_step_id():
    """`segment inner = ...` in a stage said "unexpected 'inner': a step starts with its id and its trigger"."""
    text = "policy x\nstage s when x {\n  a at due: stop\n  segment inner = invoice.amount > 3\n  b at due: stop\n}\n"
    assert _syntax(text) == [(4, 3, "a 'segment' statement cannot be inside a stage or an on block: only steps go "
                                    "there", "move it out of the block")]


def test_a_priority_ends_at_the_brace_of_a_one_line_block():
    """`{ a at due+1d: escalate to q priority invoice.balance }`: the `}` was read into the expression."""
    one_line = _model(HEAD + "stage s when invoice.days_past_due >= 0 { a at due+1d: escalate to q priority "
                             "invoice.balance }\n", load_text, "p.collect")
    assert one_line.stages["s"].steps[0].escalate.priority == "invoice.balance"


def test_a_missing_policy_line_or_stage_is_said_in_the_text_syntax(tmp_path):
    """It said "'policy' is required in the policy", a YAML key's words."""
    path = tmp_path / "p.collect"
    path.write_text("timezone America/Lima\n", encoding="utf-8")
    assert sorted(d.message for d in compile_policy(path).diagnostics.items if d.code == "missing-key") == [
        "a policy needs a `policy NAME` line",
        "a policy needs at least one stage: stage NAME when EXPRESSION { ID at due+1d: ... }"]


def test_a_keyword_written_against_the_next_word_is_an_error_not_split_off_it():
    """`ifbig: sendemail withoverdue` compiled as `if big: send email with overdue`, and a misspelt keyword
    (`iff`) got a confusing error: lark read the keyword's letters off the front of the longer word."""
    steps = "stage s when x {{\n  a at due+1d {}\n}}\n"
    assert _syntax(steps.format("ifbig: send email with t")) == [
        (2, 15, "unexpected 'ifbig': write a space between 'if' and 'big'", "")]
    assert _syntax(steps.format("if big: sendemail with t"))[0][2] == (
        "unexpected 'sendemail': write a space between 'send' and 'email'")
    # a letter too many is a misspelt keyword, not two words: `sendd` is no `send d`
    assert [p[2] for p in _syntax(steps.format("iff big: sendd email with t"))] == ["unexpected 'iff' (did you mean 'if'?)"]
    assert _syntax(steps.format("if big: sendd email with t"))[0][2] == "unexpected 'sendd' (did you mean 'send'?)"


def test_a_stage_given_twice_does_not_move_the_places_of_the_first_ones_steps(tmp_path):
    """The second `stage s` wrote its steps' places over the first's: a duplicate step id in the first
    block was said to be "already used at line 10", a line of the second block."""
    text = HEAD + ("stage s when invoice.days_past_due >= 0 {\n  a at due+1d: stop\n  a at due+2d: stop\n}\n"
                   "stage s when invoice.days_past_due >= 5 {\n  b at due+9d: stop\n}\n")
    path = tmp_path / "p.collect"
    path.write_text(text, encoding="utf-8")
    said = {d.code: (d.span.line, d.message) for d in compile_policy(path).diagnostics.items}
    assert said["duplicate-step-id"] == (7, "step id 'a' is already used at line 6")
    assert said["duplicate-key"][0] == 9


def test_a_setting_without_its_value_says_so_not_that_it_looks_like_yaml():
    """`description` alone on its line was "this looks like YAML ... without ':'", with no ':' there."""
    assert _syntax("policy x\ndescription\n") == [
        (2, 12, "unexpected end of the line: 'description' needs a value: description VALUE", "")]


def test_unclosed_things_are_reported_where_they_open():
    assert _syntax('policy x\ntemplate t email {\n  subject "s"\n') == [
        (2, 18, "this '{' is never closed", "add the matching '}'")]
    (problem,) = _syntax('policy x\ntemplate t sms """Hola\n\n')
    assert problem[:2] == (2, 16) and "never closed" in problem[2]
    (problem,) = _syntax('policy x\ntemplate t sms "Hola\n')
    assert problem[:2] == (2, 16) and "not closed on its line" in problem[2]


def test_messages_speak_words_not_token_names():
    text = "policy x\n}\nwindow sms mon-fri 08:00-19:00 @\nfield a b c\nstage s {\n}\n"
    problems = _syntax(text)
    assert [(line, col) for line, col, _, _ in problems] == [(2, 1), (3, 32), (4, 11), (5, 9)]
    messages = [message for _, _, message, _ in problems]
    for message in messages:
        assert not re.search(r"\b(WORD|_NL|EXPR_\w+|RBRACE|LBRACE|COMMA|\$END|Token)\b", message), message
    assert messages[2] == "unexpected 'c': expected the end of the line"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policies(), st.data())
def test_damaged_policies_give_positioned_diagnostics_never_exceptions(data, draw):
    text = dump_text(Policy.model_validate(data))
    start = draw.draw(st.integers(0, len(text) - 1))
    damaged = text[:start] + draw.draw(st.sampled_from(["", "{", "}", '"', '"""', ":", "\n", "sned ", "#"])) + text[
        start + draw.draw(st.integers(0, 5)):]
    diags = Diagnostics()
    located = load_text(damaged, "p.collect", diags)
    if located is None:
        lines = damaged.count("\n") + 1
        assert diags.errors and all(1 <= d.span.line <= lines and d.span.col >= 1 for d in diags.errors)
    else:
        validate(located, diags)


def test_every_yaml_snippet_of_the_language_doc_loads():
    import re

    doc = (Path(__file__).resolve().parent.parent / "docs/language.md").read_text(encoding="utf-8")
    snippets = re.findall(r"```yaml\n(.*?)```", doc, re.S)
    assert len(snippets) >= 12
    for snippet in snippets:
        diags = Diagnostics()
        assert load_yaml(snippet, "doc", diags) is not None and not diags.items, (snippet, diags.items)


def test_the_first_policy_of_the_language_doc_compiles_to_one_plan_in_both_forms(tmp_path):
    import re

    doc = (Path(__file__).resolve().parent.parent / "docs/language.md").read_text(encoding="utf-8")
    yaml_text, text = re.search(r"```yaml\n(.*?)```\n```text\n(.*?)```", doc, re.S).groups()
    (tmp_path / "p.yaml").write_text(yaml_text, encoding="utf-8")
    (tmp_path / "p.collect").write_text(text, encoding="utf-8")
    results = [compile_policy(tmp_path / name) for name in ("p.yaml", "p.collect")]
    assert all(r.plan is not None and not r.diagnostics.items for r in results)
    assert results[0].plan.plan_hash == results[1].plan.plan_hash


def test_a_syntax_error_in_a_step_does_not_hide_the_other_errors(tmp_path):
    text = ("policy p\ntimezone UTC\ncurrrency PEN\nwindow default mon-fri 08:00-19:00\ntemplate t sms \"x\"\n"
            "cap sms 1 1d\n"
            "stage a when invoice.days_past_due >= 0 {\n"
            "  a1 at due: sned sms with t\n"
            "  a2 at due+1d: send sms with tt\n"
            "  a3 at due+2d if customer.name > 3: send sms with t\n"
            "}\n"
            "on promise_made { pm at event }\n")
    assert _diag(tmp_path, text) == {("syntax", 6, 11), ("syntax", 8, 14), ("syntax", 12, 31), ("unknown-key", 3, 1),
                                     ("unknown-template", 9, 31), ("type-error", 10, 19)}


@pytest.mark.parametrize("broken, line, col", [
    ("segment big invoice.amount > 10", 6, 13),
    ('template t sms "x" "y"', 6, 20),
    ("template u sms", 6, 15),
    ('template u email {\n  subject "s" "t"\n  body "b"\n}', 7, 15),
])
def test_a_broken_segment_or_template_keeps_its_name_and_hides_nothing_else(tmp_path, broken, line, col):
    """Its uses are not unknown names, the stand-in reports nothing, and the rest is still checked."""
    channel = "email" if "template u email" in broken else "sms"
    text = ("policy p\ntimezone UTC\nwindow default mon-fri 08:00-19:00\n"
            'template t email { subject "s"; body "b" }\n'
            f"segment ok = invoice.amount > 1\n{broken}\ncurrrency PEN\n"
            "stage early when invoice.days_past_due > 0 {\n  a at due+1d if big and ok: send email with t\n"
            f"  b at due+2d: send {channel} with u\n  c at due+3d: send email with tt\n}}\n")
    text = text.replace("if big and ok", "if ok", "segment big" not in broken)
    shift = broken.count("\n")
    expected = {("syntax", line, col), ("unknown-key", 7 + shift, 1), ("unknown-template", 11 + shift, 32)}
    if "template u" not in broken:
        expected.add(("unknown-template", 10 + shift, 30))
    assert _diag(tmp_path, text) == expected


@pytest.mark.parametrize("broken", [
    "segment = invoice.amount > 10",  # no name to keep: every use of a segment might be unknown
    "timezone: UTC",  # the policy would have no timezone
    "stage s when invoice.days_past_due > 0 {\n  b at due: sned email with t }; timezone UTC",  # `}` on the line
    "cap sms 1 1d; timezone UTC",  # a statement after the broken one on its line
    "stage s when invoice.days_past_due > 0 {\n  b at due: stop\ntimezone UTC\n}",  # a statement left in a block
    "on promise_made {\n  timezone UTC\n}",
])
def test_a_syntax_error_that_others_may_depend_on_is_reported_alone(tmp_path, broken):
    text = ("policy p\ntimezone UTC\nwindow default mon-fri 08:00-19:00\n"
            'template t email { subject "s"; body "b" }\n'
            f"segment big = invoice.amount > 10\n{broken}\n"
            "stage early when invoice.days_past_due > 0 {\n  a at due+1d if big: send email with t\n}\n")
    text = text.replace("timezone UTC\n", "", "timezone" in broken)
    assert {code for code, _, _ in _diag(tmp_path, text)} == {"syntax"}


def _invents_no_error(data, draw, pattern: str, damage) -> None:
    """Damage one line of a generated policy that matches `pattern`: the syntax error is reported on it,
    and what else is reported was there without it (by code: an error reported once, a channel without a
    window, may move to the next step that has it)."""
    text = dump_text(Policy.model_validate(data))
    lines = text.split("\n")
    chosen = [i for i, line in enumerate(lines) if re.match(pattern, line)]
    assume(chosen)
    i = draw.draw(st.sampled_from(chosen))
    broken = "\n".join(lines[:i] + [damage(lines[i])] + lines[i + 1:])

    def found(source):
        return [(d.code, d.span.line) for d in compile_policy("p.collect", text=source).diagnostics.items]
    damaged = found(broken)
    assert [line for code, line in damaged if code == "syntax"] == [i + 1]
    assert {code for code, _ in damaged if code != "syntax"} <= {code for code, _ in found(text)}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policies(), st.data())
def test_a_broken_segment_or_template_line_invents_no_error(data, draw):
    """Its stand-in keeps the name defined."""
    _invents_no_error(data, draw, r"(segment \w+ = |template \w+ \w+ \"[^\"]*\"$)",
                      lambda line: line.replace(" = ", " ", 1) if line.startswith("segment") else line + ' "x"')


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policies(), st.data())
def test_a_broken_step_line_is_left_out_and_invents_no_error(data, draw):
    _invents_no_error(data, draw, r"\s+\S+ at ", lambda line: line.replace(" at ", " at sned ", 1))


def test_a_day_given_again_in_a_second_window_line_is_reported_on_that_line(tmp_path):
    text = HEAD + "window email mon-fri 07:00-20:00\nwindow email sat 09:00-12:00\nwindow email wed 09:00-10:00\n"
    assert {d for d in _diag(tmp_path, text) if d[0] == "bad-value"} == {("bad-value", 7, 14)}  # its `wed`

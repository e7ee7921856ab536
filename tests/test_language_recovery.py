"""One run reports every error of a file, each where it is written; new forms of the language.

A value that fails validation is replaced by a stand-in (dsl/recovery.py) so that names, expressions,
templates and duplicates are still checked; a stand-in must never cause a diagnostic of its own.
"""

import pytest
from typer.testing import CliRunner

from collect.cli import app
from collect.engine.compiler import compile_policy

HEAD = """policy: p
timezone: America/Lima
windows:
  default: { mon-fri: "08:00-19:00" }
templates:
  t:
    email: { subject: "s", body: "b" }
    sms: "x"
"""
STAGE = "stages:\n  s:\n    when: invoice.days_past_due > 0\n    steps:\n"


def compile_text(tmp_path, text: str, name: str = "p.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return compile_policy(path)


def found(result) -> list[tuple[str, int, int]]:
    return sorted((d.code, d.span.line, d.span.col) for d in result.diagnostics.items)


def codes(result) -> list[str]:
    return sorted(d.code for d in result.diagnostics.items)


def test_a_bad_trigger_does_not_hide_names_expressions_templates_or_duplicates(tmp_path):
    result = compile_text(tmp_path, HEAD + STAGE +
                          '      - { id: a, at: due+1x, if: customer.nmae == "x", send: emial, template: tt }\n'
                          "      - { id: a, at: due+2d, send: email, template: t }\n")
    assert found(result) == [("bad-value", 13, 22), ("duplicate-step-id", 14, 15), ("unknown-channel", 13, 62),
                             ("unknown-field", 13, 34), ("unknown-template", 13, 79)]
    assert result.plan is None and result.policy is None


def test_a_bad_trigger_does_not_hide_the_rest_of_a_collect_file(tmp_path):
    text = ('policy p\ntimezone America/Lima\nwindow default mon-fri 08:00-19:00\ntemplate t sms "x"\n'
            "stage s when invoice.days_past_due > 0 {\n"
            '  a at due+1x if customer.nmae == "x" send emial with tt\n'
            "  a at due+2d send sms with t\n}\n")
    assert found(compile_text(tmp_path, text, "p.collect")) == [
        ("bad-value", 6, 8), ("duplicate-step-id", 7, 3), ("unknown-channel", 6, 44), ("unknown-field", 6, 18),
        ("unknown-template", 6, 55)]


@pytest.mark.parametrize("body, expected", [
    # a segment whose value is not an expression is still a known name
    ("segments: { risky: [1, 2] }\n" + STAGE + "      - { id: a, at: due+1d, if: risky, send: sms, template: t }\n",
     ["wrong-type"]),
    # a template channel of the wrong shape still has a body for the steps that use it
    ("  u:\n    email: 5\n" + STAGE + "      - { id: a, at: due+1d, send: email, template: u }\n", ["bad-template"]),
    # a step with a bad trigger is left out of the timing checks (the stand-in day would be outside the stage)
    ("caps: [ { channel: sms, max: 1, per: 7d } ]\n" + STAGE +
     "      - { id: a, at: due+1x, send: sms, template: t }\n      - { id: b, at: due+2d, send: sms, template: t }\n",
     ["bad-value"]),
    # a cap with a bad period does not count a cadence
    ("caps: [ { channel: sms, max: 1, per: 7x } ]\n" + STAGE +
     "      - { id: a, at: due+1d, send: sms, template: t }\n      - { id: b, at: due+2d, send: sms, template: t }\n",
     ["bad-value"]),
    # percentages that are not whole numbers: their stand-ins do not add up to 100, and that is not reported
    ("experiments: { tone: { variants: { soft: 50.5, firm: 49.5 } } }\n" + STAGE +
     '      - { id: a, at: due+1d, if: variant("tone") == "firm", send: sms, template: t }\n',
     ["wrong-type", "wrong-type"]),
    # a negative percentage is still reported next to a fractional one
    ("experiments: { tone: { variants: { soft: 50.5, firm: -5 } } }\n" + STAGE +
     "      - { id: a, at: due+1d, send: sms, template: t }\n", ["bad-value", "wrong-type"]),
    # an experiment that does not add up keeps its variants
    ("experiments: { tone: { variants: { soft: 50, firm: 40 } } }\n" + STAGE +
     '      - { id: a, at: due+1d, if: variant("tone") == "firm", send: sms, template: t }\n', ["bad-value"]),
    # two actions: one error, and the step's channels are still checked
    (STAGE + "      - { id: a, at: due+1d, send: smss, escalate: { queue: q }, template: t }\n",
     ["bad-value", "unknown-channel"]),
    # a misspelt key is reported once, not again as the rule it breaks ("a send step needs a template")
    (STAGE + "      - { id: a, at: due+1d, send: sms, templat: t }\n", ["unknown-key"]),
    # an empty `when` does not make the next stage's steps look shadowed
    ('stages:\n  a:\n    when: ""\n    steps: []\n  b:\n    when: invoice.days_past_due > 3\n    steps:\n'
     "      - { id: x, at: due+4d, send: sms, template: t }\n", ["bad-value"]),
    # an action of the wrong shape does not also leave the step without an action
    (STAGE + "      - { id: a, at: due+1d, escalate: agents }\n", ["wrong-type"]),
    # a bad custom field name does not make the other custom fields unknown
    ("fields: { customer.Tier: str, customer.risk: float }\n" + STAGE +
     "      - { id: a, at: due+1d, if: customer.risk > 1, send: sms, template: t }\n", ["bad-value"]),
])
def test_stand_ins_cause_no_diagnostics_of_their_own(tmp_path, body, expected):
    result = compile_text(tmp_path, HEAD + body)
    assert codes(result) == expected, [d.render() for d in result.diagnostics.items]


def test_yaml_booleans_and_numbers_are_expression_literals(tmp_path):
    result = compile_text(tmp_path, HEAD + "segments: { always: true }\nstages:\n  s:\n    when: true\n    steps:\n"
                          "      - { id: a, at: due+1d, escalate: { queue: q, priority: 5 } }\n"
                          "      - { id: b, at: due+2d, if: 1, send: sms, template: t }\n")
    assert found(result) == [("type-error", 15, 34)]  # `if: 1` is a number, not a condition
    assert "wrong type" not in result.diagnostics.items[0].message


def test_errors_in_multi_line_values_point_at_the_line_they_are_on(tmp_path):
    text = HEAD.replace('sms: "x"', 'sms: >\n      Hola\n      {{ customer.nmae }}') + (
        "stages:\n  s:\n    when: >-\n      invoice.days_past_due > 0\n      and customer.nmae == 'x'\n    steps:\n"
        "      - { id: a, at: due+1d, send: sms, template: t, if: \"invoice.amount > 1\n          and invoice.amout > 2\" }\n")
    assert found(compile_text(tmp_path, text)) == [("unknown-attribute", 10, 18), ("unknown-field", 15, 11),
                                                   ("unknown-field", 18, 15)]


def test_validate_names_the_file_it_cannot_read(tmp_path):
    missing = tmp_path / "nonexist.yaml"
    result = CliRunner().invoke(app, ["validate", str(missing)])
    assert result.exit_code == 1
    assert result.output.startswith(f"{missing}:1:1: error: cannot read the policy file")


def test_compliance_settings_in_yaml_and_text_give_one_plan(tmp_path):
    yaml_text = HEAD + ("compliance: [co-ley-2300, cl-sernac]\n"
                        "compliance_settings:\n  co-ley-2300: { week: rolling }\n  cl-sernac: { week: calendar, spacing: 2d }\n"
                        "stages: { s: { when: invoice.days_past_due > 0 } }\n")
    text = ('policy p\ntimezone America/Lima\nwindow default mon-fri 08:00-19:00\n'
            'template t email { subject "s"; body "b" }\ntemplate t sms "x"\ncompliance co-ley-2300, cl-sernac\n'
            "compliance_settings cl-sernac { spacing 2d; week calendar }\n"
            "compliance_settings co-ley-2300 { week rolling }\nstage s when invoice.days_past_due > 0 {\n}\n")
    from_yaml, from_text = compile_text(tmp_path, yaml_text), compile_text(tmp_path, text, "p.collect")
    assert from_yaml.plan is not None and from_text.plan is not None, [d.render() for d in from_yaml.diagnostics.items]
    assert from_yaml.plan.plan_hash == from_text.plan.plan_hash
    settings = from_yaml.plan.to_dict()["compliance_settings"]
    assert list(settings) == ["cl-sernac", "co-ley-2300"] and list(settings["cl-sernac"]) == ["spacing", "week"]


def test_compliance_settings_values_keep_their_yaml_type_in_the_text_form():
    from collect.dsl.diagnostics import Diagnostics
    from collect.dsl.loader import validate
    from collect.dsl.text import dump_text, load_text
    from collect.dsl.yamlload import load_yaml

    yaml_text = ("policy: p\ntimezone: UTC\nstages: { s: { when: 'true' } }\ncompliance_settings:\n"
                 "  x: { n: 3, neg: -2, f: 0.5, tiny: 1.0e-05, b: true, quoted: '7', word: 2d, text: two words }\n")
    diags = Diagnostics()
    policy = validate(load_yaml(yaml_text, "p.yaml", diags), diags)
    assert policy.compliance_settings["x"] == {"n": 3, "neg": -2, "f": 0.5, "tiny": 1e-05, "b": True, "quoted": "7",
                                               "word": "2d", "text": "two words"}
    again = validate(load_text(dump_text(policy), "p.collect", diags), diags)
    assert again == policy and not diags.items


def test_compliance_settings_changes_the_plan_hash(tmp_path):
    base = HEAD + "compliance: [co-ley-2300]\nstages: {}\n"
    plain = compile_text(tmp_path, base).plan
    tuned = compile_text(tmp_path, base + "compliance_settings: { co-ley-2300: { week: rolling } }\n").plan
    assert plain.plan_hash != tuned.plan_hash and plain["compliance_settings"] == {}


@pytest.mark.parametrize("value", ["[a, b]", "rolling", "{ week: [a] }", "{ week: { a: 1 } }", "{ 'two words': 1 }"])
def test_compliance_settings_are_mappings_of_scalars(tmp_path, value):
    result = compile_text(tmp_path, HEAD + f"compliance_settings: {{ co-ley-2300: {value} }}\nstages: {{}}\n")
    assert result.plan is None and {d.span.line for d in result.diagnostics.errors} == {9}


def test_compliance_settings_without_a_block_gets_its_own_message(tmp_path):
    result = compile_text(tmp_path, "policy p\ncompliance_settings co-ley-2300 week rolling\n", "p.collect")
    (diag,) = result.diagnostics.items
    assert (diag.code, diag.span.line, diag.span.col) == ("syntax", 2, 33) and "compliance_settings PROFILE {" in diag.message

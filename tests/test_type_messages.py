"""A value of the wrong type is reported in the words of the one who wrote the YAML: what was expected (text,
a whole number, a list, a mapping, true or false ...) and what was found, never Python's type names (str,
dict, NoneType); and a calendar subdivision written without its country is an error at the subdivision."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from collect.cli import app
from collect.dsl.loader import load_policy
from collect.engine.compiler import compile_policy
from test_language_review import compile_yaml, errors, where

# what the old messages said: "input should be a valid integer (got str '3')"
PYTHON_WORDS = re.compile(r"\b(str|int|float|bool|dict|NoneType|None|True|False)\b|got list|input should")


def rendered(result) -> list[str]:
    return [d.render() for d in errors(result)]


# -- wrong types ------------------------------------------------------------------------------------

@pytest.mark.parametrize("extra, value, said", [
    ('caps: [ { channel: email, max: "3", per: 1d } ]', '"3"', "expected a whole number, got text '3'"),
    ("caps: [ { channel: email, max: 2.5, per: 1d } ]", "2.5", "expected a whole number, got the number 2.5"),
    ("caps: [ { channel: email, max: true, per: 1d } ]", "true", "expected a whole number, got true"),
    ("caps: [ { channel: email, max: ~, per: 1d } ]", "~", "expected a whole number, got nothing (null)"),
    ("caps: [ { channel: email, max: [1, 2], per: 1d } ]", "[1, 2]", "expected a whole number, got a list [1, 2]"),
    ("caps: [ { channel: email, max: { n: 3 }, per: 1d } ]", "{ n: 3 }",
     "expected a whole number, got a mapping {'n': 3}"),
    ("caps: 5", "5", "expected a list, got the number 5"),
    ("caps: [ sms ]", "sms", "expected a mapping (key: value), got text 'sms'"),
    ("calendar: [PE]", "[PE]", "expected a mapping (key: value), got a list ['PE']"),
    ("calendar: { country: [PE, CO] }", "[PE, CO]", "expected text, got a list ['PE', 'CO']"),
    ("calendar: { extra_holidays: 2026-12-24 }", "2026-12-24", "expected a list, got text '2026-12-24'"),
    ("calendar: { extra_holidays: [[2026, 12, 24]] }", "[2026, 12, 24]",
     "expected a date (YYYY-MM-DD), got a list [2026, 12, 24]"),
    ("segments: [late]", "[late]", "expected a mapping (key: value), got a list ['late']"),
    ("segments: { late: [true, null] }", "[true, null]", "expected text, got a list [true, null]"),
])
def test_a_wrong_type_says_what_was_expected_and_what_was_found(tmp_path, extra, value, said):
    result, text = compile_yaml(tmp_path, extra=extra)
    line, col = where(text, 3, value)
    assert rendered(result) == [f"{tmp_path / 'p.yaml'}:{line}:{col}: error: wrong type: {said} [wrong-type]"]


@pytest.mark.parametrize("step, queue", [
    ("{ id: b, at: due+2d, escalate: agents }", "agents"),
    ("{ id: b, at: due+2d, send: email, template: m, on_exhausted: agents }", "agents"),
    ("{ id: b, at: due+2d, send: email, template: m, on_exhausted: { escalate: legal } }", "legal"),
])
def test_an_escalation_written_as_a_queue_name_says_where_the_queue_goes(tmp_path, step, queue):
    result, _ = compile_yaml(tmp_path, steps=f"      - {step}")
    (error,) = errors(result)
    assert error.message == f"wrong type: expected a mapping (key: value), got text '{queue}'"
    assert error.hint == f"the queue goes in `queue:`, as {{ queue: {queue} }}"


def test_a_misspelt_short_on_exhausted_is_told_the_short_form_not_a_queue(tmp_path):
    result, _ = compile_yaml(tmp_path, steps="      - { id: b, at: due+2d, send: email, template: m, on_exhausted: escalte }")
    (error,) = errors(result)
    assert error.hint == "did you mean 'escalate'?"


def test_a_type_error_in_an_expression_over_several_lines_stays_on_one_line(tmp_path):
    result, _ = compile_yaml(tmp_path, extra='segments: { seg: "invoice.days_past_due >= 1 and (invoice.amount\\n  + 5)" }')
    (error,) = errors(result)
    assert "\n" not in error.message and error.message.endswith("is a number")


def test_stop_that_is_not_true_or_false_says_so(tmp_path):
    result, text = compile_yaml(tmp_path, steps='      - { id: b, at: due+2d, stop: "yes" }')
    line, col = where(text, 15, '"yes"')
    assert rendered(result) == [f"{tmp_path / 'p.yaml'}:{line}:{col}: error: wrong type: expected true or false, "
                                "got text 'yes' [wrong-type]"]


@pytest.mark.parametrize("extra", [
    "compliance_settings: { us-reg-f: { spacing: [1] } }",  # a setting may be a word, a number or true/false
    "compliance_settings: { us-reg-f: { spacing: ~ } }",
    "experiments: { tone: { variants: { a: 50.5, b: 49.5 } } }",
    "caps: [ { channel: [sms], max: 1, per: 1d } ]",
    "events: { promise_broken: [5, { id: b, at: event+1d, stop: 0 }] }",
    "pause_when: disputed",
    "fields: [customer.tier]",
])
def test_no_type_error_names_a_python_type(tmp_path, extra):
    found = errors(compile_yaml(tmp_path, extra=extra)[0])
    assert found and {d.code for d in found} == {"wrong-type"}
    for d in found:
        assert re.fullmatch(r"wrong type: expected .+, got .+", d.message), d.message
        assert not PYTHON_WORDS.search(d.message), d.message


def test_a_value_that_fits_none_of_a_settings_types_is_one_error(tmp_path):
    """A compliance setting may be true/false, a whole number, a number or text: pydantic gives one error
    per type, the reader gets one line that lists them."""
    result, text = compile_yaml(tmp_path, extra="compliance_settings: { us-reg-f: { spacing: [1] } }")
    line, col = where(text, 3, "[1]")
    assert rendered(result) == [f"{tmp_path / 'p.yaml'}:{line}:{col}: error: wrong type: expected true or false, "
                                "a whole number, a number or text, got a list [1] [wrong-type]"]


def test_a_long_value_is_cut_short_in_the_message(tmp_path):
    result, _ = compile_yaml(tmp_path, extra=f'caps: [ {{ channel: email, max: "{"9" * 500}", per: 1d }} ]')
    [found] = errors(result)
    assert found.message.startswith("wrong type: expected a whole number, got text '999")
    assert "..." in found.message and len(found.message) < 100


@pytest.mark.parametrize("old, new, said", [
    ("max: 3,", 'max: "3",',
     "policy.yaml:22:26: error: wrong type: expected a whole number, got text '3' [wrong-type]"),
    ("timezone: America/New_York", "timezone: [1, 2]",
     "policy.yaml:6:11: error: wrong type: expected text, got a list [1, 2] [wrong-type]"),
])
def test_validate_on_the_starter_policy_says_it_in_yaml_words(tmp_path, monkeypatch, old, new, said):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    assert runner.invoke(app, ["init"]).exit_code == 0
    policy = tmp_path / "policy.yaml"
    policy.write_text(policy.read_text().replace(old, new, 1), encoding="utf-8")
    result = runner.invoke(app, ["validate", "policy.yaml"])
    assert result.exit_code == 1 and said in result.output.splitlines(), result.output


# -- a subdivision needs its country ----------------------------------------------------------------

LONE_SUBDIVISION = ("error: subdivision 'LIM' needs the calendar's country too, its ISO 3166 code "
                    "(without one no public holidays are taken) [bad-value]")


@pytest.mark.parametrize("calendar", ["{ subdivision: LIM }", "{ country: ~, subdivision: LIM }",
                                      '{ country: "", subdivision: LIM }',
                                      "{ extra_holidays: [2026-12-24], subdivision: LIM }"])
def test_a_subdivision_without_a_country_is_an_error_at_the_subdivision(tmp_path, calendar):
    result, text = compile_yaml(tmp_path, extra=f"calendar: {calendar}")
    line, col = where(text, 3, "LIM")
    assert result.plan is None
    assert rendered(result) == [f"{tmp_path / 'p.yaml'}:{line}:{col}: {LONE_SUBDIVISION}"]
    assert load_policy(tmp_path / "p.yaml")[0] is None  # `collect validate` and the run refuse it too


def test_a_lone_subdivision_names_the_countries_that_have_it(tmp_path):
    result, _ = compile_yaml(tmp_path, extra="calendar: { subdivision: RM }")
    [found] = errors(result)
    assert "needs the calendar's country too" in found.message
    assert "CL" in re.search(r"; RM is a subdivision of ([A-Z, ]+) in the holidays package$", found.message)[1]


def test_a_subdivision_without_a_country_in_a_collect_file_is_an_error_too(tmp_path):
    path = tmp_path / "p.collect"
    path.write_text('policy t\ntimezone America/Lima\ncalendar { subdivision "LIM" }\n'
                    "window default mon-fri 08:00-19:00\nstage s1 when true { a at due+1d stop }\n", encoding="utf-8")
    assert rendered(compile_policy(path)) == [f"{path}:3:24: {LONE_SUBDIVISION}"]


def test_a_problem_in_a_profile_file_is_reported_at_the_entry_that_selects_it(tmp_path, monkeypatch):
    """A profile being written (docs/compliance.md, Writing a profile) with a misspelt rule kind was
    reported at the policy's 1:1, far from the `compliance:` line that loads it."""
    from collect.engine import compliance

    folder = tmp_path / "profiles"
    folder.mkdir()
    for profile in compliance.PROFILE_DIR.glob("*.yaml"):
        (folder / profile.name).write_text(profile.read_text(encoding="utf-8"), encoding="utf-8")
    broken = (folder / "co-ley-2300.yaml").read_text(encoding="utf-8").replace("kind: window", "kind: windw", 1)
    (folder / "xx-law.yaml").write_text(broken.replace("profile: co-ley-2300", "profile: xx-law"), encoding="utf-8")
    monkeypatch.setattr(compliance, "PROFILE_DIR", folder)
    result, text = compile_yaml(tmp_path, extra="compliance: [pe-indecopi, xx-law]")
    (error,) = errors(result)
    assert (error.span.line, error.span.col) == where(text, 3, "xx-law")
    assert error.message.startswith(f"{folder / 'xx-law.yaml'}: rules[") and "unknown rule kind 'windw'" in error.message


def test_a_type_error_quotes_the_expression_as_written_not_its_canonical_form(tmp_path):
    """`7d > 3` said "cannot compare 1w (duration) with 3 (number)": 1w is nowhere in the file."""
    result, _ = compile_yaml(tmp_path, extra='segments: { seg: "7d > 3 or invoice.amount == 100.50" }')
    assert [d.message for d in errors(result)] == ["cannot compare 7d (duration) with 3 (number)"]

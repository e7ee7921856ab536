"""Whatever a policy file holds, validate and compile answer quickly with diagnostics, never an exception,
and nothing a policy says can overflow a date computation later (run, simulate)."""

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from strategies import damaged, policies

from collect.dsl import yamlload
from collect.dsl.text import dump_text
from collect.engine.compiler import compile_policy

BASE = "policy: p\ntimezone: UTC\nwindows: { default: { mon-fri: '08:00-19:00' } }\n"


def _only_diagnostics(name: str, text: str):
    """Compile `text` as file `name`: every problem a positioned diagnostic, a plan only without errors."""
    result = compile_policy(name, text=text)
    lines = len(yamlload._BREAK.findall(text)) + 1  # YAML's line breaks, by which its marks count lines
    for diag in result.diagnostics.items:
        assert diag.span is not None and diag.span.file == name, diag
        assert 1 <= diag.span.line <= lines + 1 and diag.span.col >= 1, (diag, text)
    assert (result.plan is None) == bool(result.diagnostics.errors)
    return result


def _codes(text: str) -> list[str]:
    return [d.code for d in compile_policy("p.yaml", text=text).diagnostics.items]


def test_an_alias_bomb_is_refused_before_it_is_expanded(monkeypatch):
    """Ten levels of ten aliases each: 10^10 values once expanded. The loader counts the values from the
    shared nodes first and refuses the document before building any of it."""
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(9))

    def build(*args):
        raise AssertionError("the document is being built: the bomb would be expanded")
    monkeypatch.setattr(yamlload, "_build", build)
    (diag,) = compile_policy("p.yaml", text=BASE + bomb).diagnostics.items
    assert diag.code == "yaml-too-large" and "expands to more than 200,000 values" in diag.message


@pytest.mark.parametrize("text", ["a: &a [*a]\n", "a: " + "[" * 5000 + "]" * 5000 + "\n", "a: " + "[" * 80 + "]" * 80])
def test_self_reference_and_deep_nesting_are_refused(text):
    assert _codes(text) == ["yaml-too-large"]


def test_aliases_within_the_limits_still_work():
    text = ("policy: p\ntimezone: UTC\nwindows:\n  default: &w { mon-fri: '08:00-19:00' }\n  sms: *w\n"
            "templates: { t: { sms: x } }\nstages:\n  s:\n    when: true\n    steps:\n"
            "      - { id: a, at: due, send: sms, template: t }\n")
    assert compile_policy("p.yaml", text=text).plan is not None


@pytest.mark.parametrize("where, value", [
    ("step", "at: due+99999999999999999999d"), ("step", "at: due-3651d"), ("step", "at: event+4000d"),
    ("top", "max_lateness: 3651d"), ("top", "max_lateness: 99999999999999999999w"),
    ("top", "caps: [ { max: 1, per: 522w } ]"), ("top", "caps: [ { max: 10001, per: 1d } ]"),
    ("top", "caps: [ { max: 1, per: 1d, cooldown_after_conversation: 87601h } ]"),
    ("top", "segments: { far: invoice.due_date + 99999999999d > 2026-01-01 }"),
])
def test_offsets_durations_and_caps_are_bounded(where, value):
    step = value if where == "step" else "at: due+1d"
    text = BASE + (value + "\n" if where == "top" else "") + (
        f"stages:\n  s:\n    when: true\n    steps:\n      - {{ id: a, {step}, stop: true }}\n")
    assert _codes(text) == ["bad-value"]


def test_the_largest_offset_still_compiles():
    text = BASE + "stages:\n  s:\n    when: true\n    steps:\n      - { id: a, at: due+3650d, stop: true }\n"
    assert compile_policy("p.yaml", text=text).plan is not None


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300) | st.binary(max_size=300).map(lambda b: b.decode("latin-1")),
       st.sampled_from(["p.yaml", "p.collect"]))
@example("\r\x850", "p.yaml")  # a carriage return and a NEL: the scalar is on YAML's third line
def test_random_text_through_validate_and_compile_only_gives_diagnostics(text, name):
    _only_diagnostics(name, text)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data())
def test_damaged_policies_only_give_positioned_diagnostics(data):
    """Valid policies with values replaced by junk, keys removed or added: through validate and compile."""
    policy = data.draw(damaged(data.draw(policies())))
    _only_diagnostics("p.yaml", yaml.safe_dump(policy, allow_unicode=True))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policies(), st.data())
def test_damaged_collect_files_only_give_positioned_diagnostics(data, draw):
    from collect.dsl.model import Policy

    text = dump_text(Policy.model_validate(data))
    start = draw.draw(st.integers(0, len(text) - 1))
    junk = draw.draw(st.sampled_from(["", "{", "}", '"', ":", "\n", "sned ", "#", "x", "-1", "99999999999d", "0"]))
    _only_diagnostics("p.collect", text[:start] + junk + text[start + draw.draw(st.integers(0, 5)):])


@pytest.mark.parametrize("name, text, line, col", [
    ("p.collect", 'policy p "a \\ud800"\ntimezone UTC\nstage a when true { a1 at due: stop }\n', 1, 10),
    ("p.yaml", BASE + "stages:\n  a:\n    when: 'customer.name != \"\\ud800\"'\n    steps: []\n", 6, 30),
    ("p.collect", 'policy p\ntimezone UTC\nstage a when customer.name != "x\\udc00" { a1 at due: stop }\n', 3, 33),
])
def test_a_lone_surrogate_is_an_error_at_its_place(name, text, line, col):
    result = _only_diagnostics(name, text)
    assert [(d.severity, d.span.line, d.span.col) for d in result.diagnostics.items] == [("error", line, col)]


@pytest.mark.parametrize("merge", ["*h", "[*h]", "3"])
def test_a_merge_key_without_a_mapping_is_an_error_and_the_rest_still_counts(merge):
    text = (f"hours: &h '08:00-19:00'\npolicy: p\ntimezone: UTC\n"
            f"windows:\n  default: {{ <<: {merge}, mon-fri: '08:00-19:00', sun: x }}\n")
    found = [(d.code, d.span.line, d.span.col) for d in _only_diagnostics("p.yaml", text).diagnostics.items]
    assert ("yaml-value", 5, 14) in found  # at the `<<`
    col = text.splitlines()[4].index("x }") + 1
    assert ("bad-value", 5, col) in found and ("missing-key", 1, 1) in found  # the other keys are still checked


def test_a_control_character_is_reported_where_it_is(tmp_path):
    """It was reported at 1:1, over two lines, as 'position 202' in "<unicode string>"."""
    path = tmp_path / "p.yaml"
    path.write_text('policy: p\ntimezone: UTC\ndescription: "a\x07b"\n', encoding="utf-8")
    (found,) = compile_policy(path).diagnostics.items
    assert (found.code, found.span.line, found.span.col) == ("yaml-syntax", 3, 16)
    assert found.message.startswith("YAML cannot hold the control character U+0007") and "\n" not in found.message

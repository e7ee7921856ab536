"""YAML syntax errors keep the parser's position and words; for two mistakes whose cause the parser reports a
line late (a key without its ':', a '{' or '[' never closed) a hint names the line to fix. Only when the
pattern leaves no doubt: any other syntax error has no hint."""

import pytest

from collect.dsl.diagnostics import Diagnostics
from collect.dsl.yamlload import load_yaml, load_yaml_file

STAGES = """\
policy: t
timezone: UTC
stages:
  early:
    when: invoice.days_past_due between 1 and 30
    steps:
      - { id: a, at: due+1d, send: email, template: m }
  late:
{late}
"""
LATE = """\
    when: invoice.days_past_due > 30
    steps:
      - { id: b, at: due+31d, send: letter, template: m }
      - { id: c, at: due+45d, escalate: { queue: legal } }
"""


def _syntax(text: str):
    diags = Diagnostics()
    assert load_yaml(text, "p.yaml", diags) is None
    (diag,) = diags.items
    assert diag.code == "yaml-syntax"
    return diag.span.line, diag.span.col, diag.hint


@pytest.mark.parametrize("broken, line, col, hint", [
    # the first key of a mapping: reported at the ':' of the next key
    (("    when: invoice", "    when invoice"), 10, 10,
     "line 9 has no ':' after 'when': write when: invoice.days_past_due > 30"),
    # a later key of a mapping: reported on the next line
    (("    steps:", "    steps"), 11, 13, "line 10 has no ':' after 'steps'"),
    # a list item's '{' left open: reported at the next item
    (("due+31d, send: letter, template: m }", "due+31d, send: letter, template: m"), 12, 9,
     "the '{' opened on line 11, column 9 is never closed: add the missing '}' at the end of line 11"),
    (("{ queue: legal } }", "{ queue: legal }"), 13, 1,  # the file ends first
     "the '{' opened on line 12, column 9 is never closed: add the missing '}' at the end of line 12"),
])
def test_the_hint_points_at_the_line_to_fix_and_the_position_stays_the_parsers(broken, line, col, hint):
    text = STAGES.replace("{late}", LATE.replace(*broken).rstrip("\n"))
    assert _syntax(text) == (line, col, hint)


@pytest.mark.parametrize("text, hint", [
    ("policy t\ntimezone: UTC\n", "line 1 has no ':' after 'policy': write policy: t"),
    ("policy: t\ntimezone UTC\nstages: {}\n", "line 2 has no ':' after 'timezone': write timezone: UTC"),
    ("stages\n  s:\n    when: true\n", "line 1 has no ':' after 'stages'"),  # a parent key
    ("s:\n  - when x\n    steps: 1\n", "line 2 has no ':' after 'when': write when: x"),
    ("s:\n  when x > 1\n    and y\n  steps: []\n", "line 2 has no ':' after 'when': write when: x > 1 ..."),
    ("s:\r\n  when x\r\n\r\n  steps: []\r\n", "line 2 has no ':' after 'when': write when: x"),
    # the line may also be meant to go on with the text above it
    ("s:\n  description: a long text\n  that goes on\n  steps: []\n",
     "line 3 has no ':' after 'that': write that: goes on; or, if it goes on with the text of line 2, "
     "indent it further"),
    ("a: [1, 2\nb: 3\n", "the '[' opened on line 1, column 4 is never closed: add the missing ']' at the end of line 1"),
    ("a: { x: 1,\n     y: 2\nb: 3\n",  # written over two lines
     "the '{' opened on line 1, column 4 is never closed: add the missing '}' at the end of line 2"),
    ("a:\n  - { s: Don't, x: 1\n  - { y: 2 }\n",
     "the '{' opened on line 2, column 5 is never closed: add the missing '}' at the end of line 2"),
])
def test_recognised_mistakes(text, hint):
    assert _syntax(text)[2] == hint


@pytest.mark.parametrize("text", [
    "a:\n  when: x\n    steps: 1\n",  # an over-indented key, not a missing ':'
    "a:\n  b: c: d\n",  # a ': ' inside a value
    "a:\n  when: customer.x == \"a: b\"\n",
    "stages foo\n  s:\n    when: 1\n",  # two words, then a deeper key
    "a: { x: 1\n     y: 2 }\n",  # a missing ',' inside a collection written over several lines
    "a: { x: 1\ny: 2 }\n",  # the next line closes the collection: not unclosed
    "a: [ {x: 1\n]\n",
    "a: { x: [1, 2 }\n",  # on one line
    "a:\n  when x > 1   # a comment ends the text\n  steps: 1\n",
    "a: 'open\n",
    "- a\nb: 1\n",
])
def test_no_hint_when_the_cause_is_not_beyond_doubt(text):
    assert _syntax(text)[2] is None


def test_a_side_file_error_carries_the_hint(tmp_path):
    path = tmp_path / "map.yaml"
    path.write_text("columns:\n  id: Factura\n  customer_id Cliente\n  amount: Monto\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"map.yaml:4:3: .*\(line 3 has no ':' after 'customer_id'"):
        load_yaml_file(path)


def test_a_section_too_long_to_scan_again_gets_no_hint(monkeypatch):
    from collect.dsl import yamlload

    text = "policy: t\nstages:\n  s:\n    when x\n    steps: []\n"
    assert _syntax(text)[2] == "line 4 has no ':' after 'when': write when: x"
    monkeypatch.setattr(yamlload, "MAX_SCAN_LINES", 2)  # `stages:` is 3 lines above the error
    assert _syntax(text) == (5, 10, None)

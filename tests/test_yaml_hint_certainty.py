"""b8c0a94: dsl/yamlload.py _unclosed_flow names the line to fix for a '{' / '[' never closed, 'when the
pattern leaves no doubt'. It only looks at the line where the parser gave up, not at the lines in
between, and it cannot tell an unclosed quote from an unclosed bracket: the hint then names a line that
is fine and a fix that does not fix the file."""

import re

from collect.dsl.diagnostics import Diagnostics
from collect.dsl.yamlload import load_yaml


def hint(text):
    diags = Diagnostics()
    assert load_yaml(text, "p.yaml", diags) is None
    (diag,) = diags.items
    assert diag.code == "yaml-syntax"
    return diag.hint


def test_an_empty_list_left_open_before_a_dedented_key_names_its_own_line():
    # `steps: []` written `steps: [`; the next stage is less indented than the '[' line
    text = ("stages:\n  pre:\n    when: invoice.days_past_due <= 0\n    steps: [\n"
            "  late:\n    when: invoice.days_past_due > 0\n    steps: []\n")
    found = hint(text)
    # before the fix: "... add the missing ']' at the end of line 5" -- line 5 is `  late:`; `  late:]` parses,
    # as steps: [{late: null}] and a second `when` under pre: not the fix. The ']' belongs on line 4.
    assert found is None or found.endswith("at the end of line 4"), found


def test_an_unclosed_quote_is_not_reported_as_an_unclosed_brace_on_another_line():
    text = ('stages:\n  s:\n    steps:\n      - {id: a, at: "due+1d 09:30, webhook: x}\n'
            "      - {id: b, at: due+2d, stop: true}\n      - {id: c, at: \"due+3d\", stop: true}\n")
    found = hint(text)
    # before the fix: "the '{' opened on line 4, column 9 is never closed: add the missing '}' at the end of line 5":
    # line 4's '{' is closed on line 4 and line 5 is correct; the mistake is the '"' never closed on line 4
    assert found is None or not re.search(r"end of line 5\b", found), found


def test_an_unclosed_single_quote_in_a_flow_mapping_gets_no_brace_hint():
    text = "templates:\n  m:\n    email: {subject: 'Hola, body: b}\n    sms: 'y'\n"
    found = hint(text)
    # before the fix: "the '{' opened on line 3 ... is never closed: add the missing '}' at the end of line 3";
    # line 3 ends with '}' already; adding another does not fix the file (the quote is the problem)
    fixed = text.replace("body: b}", "body: b}}")
    assert found is None or load_yaml(fixed, "p.yaml", Diagnostics()) is not None, found


def test_a_byte_order_mark_does_not_lose_the_hint_of_the_first_line():
    """Minor: a file saved with a BOM (Windows editors) loses the hint; without the BOM the same file gets
    "line 1 has no ':' after 'policy': write policy: t" (tests/test_yaml_syntax_hints.py). `lines` keeps
    the BOM that the parser's marks skip, so the key reads '\\ufeffpolicy'."""
    assert hint("\ufeffpolicy t\ntimezone: UTC\n") == "line 1 has no ':' after 'policy': write policy: t"

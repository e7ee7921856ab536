"""0973d7c: a broken segment/template statement is blanked out whole (dsl/text.py _left_out) when `alone`
says no other statement follows it on its line. `alone` looks for ';' only after the chunk's LAST '}',
wherever that '}' is: in the next statement's { ... } block, in a "{{ }}" of a template text, or in a
comment. Then a valid statement after the ';' is blanked too, and everything that uses it is reported
as an error that does not exist (unknown template, missing timezone)."""

import pytest

from collect.engine.compiler import compile_policy

HEAD = "policy p\nwindow default mon-fri 08:00-19:00\n"


def codes(text):
    return sorted({(d.code, d.span.line) for d in compile_policy("p.collect", text=text).diagnostics.items})


@pytest.mark.parametrize("line4, uses", [
    # the template after the ';' has a { ... } block: its '}' makes the segment look alone
    ('segment big invoice.amount > 10; template t email { subject "s"; body "b" }', "send email with t"),
    # the template after the ';' has Jinja braces in its text
    ('segment big invoice.amount > 10; template t sms "Pague {{ total_balance | money }}"', "send sms with t"),
])
def test_a_broken_segment_does_not_take_the_next_statement_on_its_line_with_it(line4, uses):
    text = HEAD + "timezone UTC\n" + line4 + "\n" + (
        "stage early when invoice.days_past_due > 0 {\n  a at due+1d if big: " + uses + "\n}\n")
    # before 0973d7c: only the syntax error; the template 't' IS defined in the file
    assert codes(text) == [("syntax", 4)]


def test_a_brace_in_a_comment_does_not_hide_the_statement_after_the_semicolon():
    text = HEAD + 'template t sms "x"\nsegment big invoice.amount > 10; timezone UTC # see {ticket}\n' + (
        "stage early when invoice.days_past_due > 0 {\n  a at due+1d if big: send sms with t\n}\n")
    # the file has a timezone; 'missing-key timezone' is invented
    assert codes(text) == [("syntax", 4)]


def test_a_statement_left_inside_a_broken_template_block_stops_the_checks():
    """docs/language.md: 'a statement written inside a ... block' -> only the syntax errors are reported.
    _left_out checks for a statement word only on the lines of the reported problems, and only the first
    problem of a template block is reported, so a `segment` line inside the block is blanked with it and
    its uses become unknown segments. (With line 5 fixed, the file gives only the syntax error at line 7.)"""
    text = ("policy p\ntimezone UTC\nwindow default mon-fri 08:00-19:00\n"
            'template t email {\n  subject "s" "t"\n  body "b"\nsegment z = invoice.amount > 1\n}\n'
            "stage early when invoice.days_past_due > 0 {\n  a at due+1d if z: send email with t\n}\n")
    assert codes(text) == [("syntax", 5)]


def test_the_stand_in_keeps_its_place_in_the_order_of_the_statements():
    """Minor: stand-ins are put in after every statement was built (load_text), so a later `segments x`
    line takes the `segments` key first and the stand-in is dropped: 'unknown segment big' and a
    wrong-type error are reported. With line 5 fixed the file reports only "'segments' is given twice"."""
    text = ("policy p\ntimezone UTC\nwindow default mon-fri 08:00-19:00\n"
            'template t email { subject "s"; body "b" }\nsegment big invoice.amount > 10\nsegments x\n'
            "stage early when invoice.days_past_due > 0 {\n  a at due+1d if big: send email with t\n}\n")
    assert ("unknown-segment", 8) not in codes(text)

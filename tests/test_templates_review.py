"""Review findings on message templates (docs/language.md, Templates: "Checked at compile time, so that a
mistake fails `collect validate` rather than a message later"; positions point at the value itself, also
inside a template).

- An argument of `money` or `date` written out that can never work (an unknown locale or currency, a
  number as the currency, a date pattern with hours, one argument too many) compiled without a word, and
  then failed every message at `collect run` with a raw UnknownLocaleError / AttributeError, while
  `collect simulate` reported the same contacts `sent`. It is now an error at the argument. A BCP 47 tag
  (`es-PE`) is read as babel's `es_PE`, as users expect; and whatever still fails when a message renders
  (a locale or pattern known only then) is the project's TemplateRenderError.
- The column of a template error was the first occurrence of the name's text on the line: plain message
  text ("Estimado cliente, {{ cliente.nombre }}"), a loop's `for i`, the first of two equal expressions.
  It is now where the parser read the token."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from collect.dsl.fields import schema_for
from collect.engine.compiler import compile_policy
from collect.engine.templates import TemplateRenderError, check_template, make_context, render

SCHEMA = schema_for({"customer.tier": "str"})

POLICY = """\
policy: t
timezone: America/Lima
windows:
  default: {{ mon-fri: "08:00-19:00" }}
templates:
  m:
    sms: "{body}"
stages:
  s1:
    when: invoice.days_past_due >= 0
    steps:
      - {{ id: a, at: due+1d, send: sms, template: m }}
"""
PREFIX = '    sms: "'  # the template's line in POLICY is 7; its text starts after this


def compile_body(tmp_path, body: str):
    path = tmp_path / "p.yaml"
    path.write_text(POLICY.format(body=body), encoding="utf-8")
    result = compile_policy(path)
    return result, [d for d in result.diagnostics.items if d.severity == "error"]


def column_of(body: str, text: str) -> int:
    """The file column where `text` starts in the template's line."""
    return len(PREFIX) + body.index(text) + 1


def ctx(**customer):
    invoices = [{"number": "F1", "balance": Decimal("1234.5"), "due_date": dt.date(2026, 3, 10)}]
    return make_context({"name": "ACME", "language": "es", "country": "PE", **customer}, invoices,
                        pay_link="https://pay/x", today=dt.date(2026, 3, 12), currency="PEN", schema=SCHEMA)


# -- arguments of money and date that can never work ------------------------------------------------------

@pytest.mark.parametrize("body, at, words", [
    ("{{ total_balance | money('USD', 'zz_ZZ') }}", "'zz_ZZ'", "unknown locale 'zz_ZZ'"),
    ("{{ total_balance | money('USD', 'es_XX') }}", "'es_XX'", "unknown locale 'es_XX'"),
    ("{{ total_balance | money(3) }}", "3", "currency given to 'money' is text"),
    ("{{ total_balance | money(total_balance) }}", "total_balance) ", "not a number"),
    ("{{ total_balance | money('usd') }}", "'usd'", "unknown currency 'usd'"),
    ("{{ total_balance | money('XYZ') }}", "'XYZ'", "unknown currency 'XYZ'"),
    ("{{ total_balance | money('USD', 'es_PE', 2) }}", "2)", "one argument too many"),
    ("{{ total_balance | money(code='USD') }}", "code=", "no argument 'code'"),
    ("{{ total_balance | money('USD', currency='PEN') }}", "currency=", "'currency' is given twice"),
    ("{{ total_balance | money(locale=true) }}", "true", "not true/false"),
    ("{{ invoice.due_date | date('dd/MM/yyyy HH:mm') }}", "'dd/MM", "a time of day ('HH', 'mm')"),
    ("{{ today | date('h:mm a') }}", "'h:mm", "a time of day ('h', 'mm', 'a')"),
    ("{{ invoice.due_date | date('dddd') }}", "'dddd'", "not a date pattern"),
    ("{{ invoice.due_date | date('Long') }}", "'Long'", "not a date format"),
    ("{{ invoice.due_date | date(3) }}", "3", "format given to 'date' is text"),
    ("{{ invoice.due_date | date('short', 'zz') }}", "'zz'", "unknown locale 'zz'"),
    ("Hola {{ customer.name }}, {{ invoice.due_date | date(format='d MMMM', locale='pt_XX') }}", "'pt_XX'",
     "unknown locale 'pt_XX'"),
])
def test_an_argument_that_always_fails_is_a_compile_error_at_the_argument(tmp_path, body, at, words):
    result, errors = compile_body(tmp_path, body)
    assert result.plan is None and len(errors) == 1, [e.render() for e in errors]
    [error] = errors
    assert words in error.message, error.render()
    assert (error.span.line, error.span.col) == (7, column_of(body, at)), error.render()


@pytest.mark.parametrize("source, hint", [
    ("{{ total_balance | money('usd') }}", "currency codes are upper case: 'USD'"),
    ("{{ total_balance | money('PNE') }}", "did you mean 'PEN'?"),
    ("{{ total_balance | money('USD', 'es_XX') }}", "did you mean 'es_MX'?"),
    ("{{ today | date('Long') }}", "did you mean 'long'?"),
    ("{{ today | date('dd/MM/yyyy HH:mm') }}", "put text in quotes"),
])
def test_the_errors_say_what_would_work(source, hint):
    [issue] = check_template(source, SCHEMA)
    assert hint in issue.hint, issue


def test_a_bcp47_locale_is_read_as_babels_and_what_works_still_compiles():
    """`es-PE` (BCP 47, as browsers and most tools write it) is babel's `es_PE`: it compiled before but
    failed every render; now it formats as `es_PE` does."""
    context = ctx()
    for dash in ["{{ total_balance | money('USD', 'es-PE') }}", "{{ today | date('long', 'pt-BR') }}",
                 "{{ total_balance | money(locale='es-419') }}"]:
        underscore = dash.replace("-", "_")
        assert check_template(dash, SCHEMA) == []
        assert render(dash, context) == render(underscore, context)
    ok = ("{{ total_balance | money('USD', 'en_US') }} {{ total_balance | money(currency='EUR') }} "
          "{{ total_balance | money(none, 'es') }} {{ total_balance | money(customer.tier, customer.tier) }} "
          "{{ today | date(\"EEEE d 'de' MMMM 'de' y\", 'es-PE') }} {{ today | date(format='short', locale='pt-BR') }} "
          "{{ today | date('dd/MM/yyyy') }} {{ today | date('full') }} {{ invoice.due_date | date(customer.tier) }}")
    assert check_template(ok, SCHEMA) == []


@pytest.mark.parametrize("source, tier, raised", [
    ("{{ total_balance | money('USD', customer.tier) }}", "zz_ZZ", "UnknownLocaleError"),
    ("{{ today | date(customer.tier) }}", "HH:mm", "AttributeError"),
    ("{{ today | date('short', customer.tier) }}", "zz", "UnknownLocaleError"),
])
def test_what_only_a_render_can_tell_fails_as_a_template_error(source, tier, raised):
    """An argument known only when the message renders is not checked at compile time; its failure is the
    project's TemplateRenderError (the channel fails for that contact), not a raw babel exception."""
    assert check_template(source, SCHEMA) == []
    with pytest.raises(TemplateRenderError, match=f"the template failed: {raised}"):
        render(source, ctx(tier=tier))


# -- columns of template errors -----------------------------------------------------------------------------

@pytest.mark.parametrize("body, wrong", [
    ("Estimado cliente, {{ cliente.nombre }}", "cliente.nombre"),  # not the word in the message's text
    ("{% for i in invoices %}{{ i.number }} {% endfor %}total {{ i }}", "i }}"),  # not the loop's `for i`
    ("customer.nmae: {{ customer.nmae }}", ".nmae }}"),
    ("round: {{ customer.name | round }}", "round }}"),
])
def test_the_column_is_that_of_the_wrong_expression(tmp_path, body, wrong):
    _, errors = compile_body(tmp_path, body)
    assert len(errors) == 1, [e.render() for e in errors]
    assert (errors[0].span.line, errors[0].span.col) == (7, column_of(body, wrong)), errors[0].render()


@pytest.mark.parametrize("source, cols", [
    ("{{ customer.nmae }} {{ customer.nmae }}", [(1, 12), (1, 32)]),  # each occurrence at its own place
    ("{{ customer.name - 1 }} {{ customer.name - 1 }}", [(1, 18), (1, 42)]),
    ("{{ 1 - 2 - customer.name }}", [(1, 10)]),  # the operator that is wrong, not the first '-'
    ("{{ nope }} x\n  nope.x {%- if true %}{{ customer.x }} {{ nope }}{% endif %}", [(1, 4), (2, 35), (2, 44)]),
    ("{% if today < 3 %}{% endif %}{% if today < 'x' %}{% endif %}", [(1, 13), (1, 42)]),
    ("{{ invoices.pop() }} {{ invoices.pop() }}", [(1, 13), (1, 34)]),
])
def test_every_issue_has_its_own_column(source, cols):
    issues = check_template(source, SCHEMA)
    assert [(i.line, i.col) for i in issues] == cols, issues

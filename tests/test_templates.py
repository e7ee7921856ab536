"""Templates: compile-time checks against the schema, the sandbox, money and date formatting."""

import datetime as dt
from decimal import Decimal

import pytest
from babel.numbers import parse_decimal
from hypothesis import given, settings
from hypothesis import strategies as st

from collect.dsl.fields import schema_for
from collect.dsl.model import EmailTemplate, WhatsAppTemplate
from collect.engine.templates import (TemplateDirError, TemplateRenderError, check_template, load_templates_dir,
                                      make_context, render, render_channel)

SCHEMA = schema_for({"customer.tier": "str"})


def ctx(language="es", country="PE", currency="PEN", **customer):
    invoices = [{"number": "F1", "balance": Decimal("1234.5"), "due_date": dt.date(2026, 11, 20)},
                {"number": "F2", "balance": Decimal("10"), "due_date": dt.date(2026, 11, 25)}]
    return make_context({"name": "ACME", "language": language, "country": country, **customer}, invoices,
                        pay_link="https://pay/x", today=dt.date(2026, 11, 22), currency=currency, schema=SCHEMA)


@pytest.mark.parametrize("source, code, line, col", [
    ("Hola {{ customer.nmae }}", "unknown-attribute", 1, 17),
    ("{{ foo }}", "unknown-variable", 1, 4),
    ("a\n{% for i in invoices %}{{ i.nmber }}{% endfor %}", "unknown-attribute", 2, 28),
    ("{{ customer.__class__ }}", "unsafe-template", 1, 13),
    ("{{ ''.__class__.__mro__ }}", "unsafe-template", 1, 7),  # issues come in source order
    ("{{ invoice.balance | mony }}", "unknown-filter", 1, 22),
    ("line\n{% if %}", "template-syntax", 2, 1),
])
def test_compile_time_errors(source, code, line, col):
    issues = check_template(source, SCHEMA)
    assert (issues[0].code, issues[0].line, issues[0].col) == (code, line, col), issues


def test_hints_and_valid_templates():
    assert check_template("{{ customer.nmae }}", SCHEMA)[0].hint == "did you mean 'name'?"
    ok = ("{% set n = invoices | length %}{% for i in invoices %}{{ i.number }} {{ loop.index }}{% endfor %}"
          "{{ customer.tier }} {{ n }} {{ total_balance | money }} {{ today | date('short') }} {{ pay_link }}")
    assert check_template(ok, SCHEMA) == []


def test_sandbox_blocks_internals_at_render_time_too():
    with pytest.raises(TemplateRenderError, match="sandbox"):
        render("{{ ''.__class__.__mro__ }}", ctx())
    with pytest.raises(TemplateRenderError):
        render("{{ customer.nope.x }}", ctx())  # strict: an undefined value is an error, not ''


@pytest.mark.parametrize("language, country, currency, expected", [
    ("es", "PE", "PEN", "S/ 1,234.50"),
    ("en", "US", "USD", "$1,234.50"),
    ("es", "AR", "ARS", "$1.234,50"),  # not COP: newer CLDR data (Babel 2.19) shows it without cents
])
def test_money_is_currency_and_locale_aware(language, country, currency, expected):
    text = render("{{ invoice.balance | money }}", ctx(language, country, currency))
    assert text.replace("\xa0", " ") == expected


def test_money_with_explicit_currency_and_dates():
    assert render('{{ total_balance | money("USD", "en_US") }}', ctx()) == "$1,244.50"
    assert render("{{ invoice.due_date | date }}", ctx()) == "20 nov. 2026"
    assert render("{{ invoice.due_date | date('long') }}", ctx("en", "US")) == "November 20, 2026"


def test_each_template_kind_renders():
    context = ctx()
    email = render_channel(EmailTemplate(subject="F {{ invoice.number }}", body="{{ invoices | length }} facturas",
                                         html="<b>{{ customer.name }}</b>"), context)
    assert (email.subject, email.body, email.html) == ("F F1", "2 facturas", "<b>ACME</b>")
    whatsapp = render_channel(WhatsAppTemplate(template_name="x", language="es", params=["{{ customer.name }}"]),
                              context)
    assert whatsapp.params == ("ACME",)
    assert render_channel("{% for i in invoices %}{{ i.number }};{% endfor %}", context).body == "F1;F2;"


def test_templates_dir(tmp_path):
    (tmp_path / "aviso.email.j2").write_text("Subject: Hola {{ customer.name }}\n\nCuerpo", encoding="utf-8")
    (tmp_path / "aviso.sms.j2").write_text("SMS {{ pay_link }}", encoding="utf-8")
    assert load_templates_dir(tmp_path) == ({"aviso": {"email": {"subject": "Hola {{ customer.name }}",
                                                                 "body": "Cuerpo"},
                                                       "sms": "SMS {{ pay_link }}"}}, [])
    with pytest.raises(TemplateDirError, match="not a folder"):
        load_templates_dir(tmp_path / "missing")


def test_templates_dir_reports_each_bad_file_and_keeps_the_others(tmp_path):
    (tmp_path / "aviso.sms.j2").write_text("SMS", encoding="utf-8")
    (tmp_path / "x.fax.j2").write_text("x")
    (tmp_path / "y.email.j2").write_text("no subject")
    (tmp_path / "z.echo.j2").write_text("a plugin's channel")
    found, problems = load_templates_dir(tmp_path, ("email", "sms", "echo"))
    assert found == {"aviso": {"sms": "SMS"}, "z": {"echo": "a plugin's channel"}}
    assert [(str(p).split(": ", 1)[1], p.template) for p in problems] == [
        ("unknown channel 'fax'", None), ("an email template starts with a 'Subject: ...' line", ("y", "email"))]


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=30), st.decimals(min_value=0, max_value=10**9, places=4, allow_nan=False))
def test_random_names_and_amounts_render(name, amount):
    context = ctx()
    context["customer"]["name"] = name
    context["invoice"]["balance"] = amount
    assert render("{{ customer.name }}", context) == name
    text = render('{{ invoice.balance | money("USD", "en_US") }}', context)
    assert parse_decimal(text.lstrip("$"), locale="en_US") == amount.quantize(Decimal("0.01"))


@pytest.mark.parametrize("source, col", [
    ("{{ customer|attr('__class__') }}", 13),
    ("{{ customer['_' ~ '_class__'] }}", 12),
    ("{{ invoices[loop] }}", 12),
    ("{% include 'x' %}", 4),
    ("{% import 'x' as y %}", 4),
    ("{% from 'x' import y %}", 4),
    ("{% extends 'x' %}", 4),
    ("{% macro m() %}x{% endmacro %}", 4),
    ("{{ invoices.pop() }}", 13),
    ("{{ customer.name.upper() }}", 18),
    ("{{ range(10) }}", 4),
    ("{{ invoices | map('attr', '__class__') | list }}", 15),
    ("{{ invoices | selectattr('__class__') | list }}", 27),
    ("{{ invoices | sort(attribute='_x') | list }}", 31),
    ("{{ invoices | map(attribute=customer.name) | list }}", 15),
])
def test_routes_to_python_internals_are_rejected_at_compile_time(source, col):
    issues = check_template(source, SCHEMA)
    assert [(i.code, i.line, i.col) for i in issues][:1] == [("unsafe-template", 1, col)], issues


@pytest.mark.parametrize("source, code, col", [
    ("{{ customer.name | round }}", "template-type", 20),
    ("{{ invoices | money }}", "template-type", 15),
    ("{{ total_balance | date }}", "template-type", 20),
    ("{{ invoice.due_date | length }}", "template-type", 23),
    ("{{ customer.name + 1 }}", "template-type", 18),
    ("{% if invoice.due_date > 3 %}x{% endif %}", "template-type", 24),
    ("{{ invoices.pop }}", "unknown-attribute", 13),
    ("{{ pay_link.x }}", "unknown-attribute", 13),
    ("{{ customer.name | pprint }}", "unknown-filter", 20),
    ("{% set x = invoices | first %}{{ x.nmbr }}", "unknown-attribute", 35),
    ("{{ invoices | map(attribute='nmber') | join }}", "unknown-attribute", 30),
])
def test_filters_and_operators_on_the_wrong_kind_are_compile_errors(source, code, col):
    issues = check_template(source, SCHEMA)
    assert [(i.code, i.col) for i in issues] == [(code, col)], issues


def test_what_templates_may_use_still_passes():
    ok = ("{{ invoices | sort(attribute='due_date') | map(attribute='number') | join(', ') }} "
          "{{ invoice.balance | round(2) }} {{ (invoices | first).balance | money }} {{ today.year }} "
          "{{ invoices[0].number }} {{ invoices[1:] | length }} {{ customer.tier | default('std') | upper }} "
          "{% with n = invoices | length %}{{ n * 2 }}{% endwith %} {{ invoices | selectattr('balance') | list }}"
          "{% for i in invoices | reverse %}{{ loop.index }} {{ i.due_date | date('short') }}{% endfor %}"
          "{% if total_balance > 100 and customer.name %}{{ 'x' ~ customer.name }}{% endif %}"
          "{% filter upper %}{{ customer.name }}{% endfilter %}")
    assert check_template(ok, SCHEMA) == []


def test_rendering_never_fails_on_null_fields():
    context = ctx()
    context["customer"].update(name=None, tier=None)
    context["invoice"]["balance"] = None
    source = ("[{{ customer.name }}|{{ customer.name | upper }}|{{ invoice.balance | round }}|"
              "{{ invoice.balance * 2 }}|{{ -invoice.balance }}|{{ 1 / invoice.balance }}|"
              "{{ customer.tier | default('std') }}|{{ invoice.balance | money }}]")
    assert check_template(source, SCHEMA) == []
    assert render(source, context) == "[||||||std|]"
    context["invoice"]["balance"] = 0
    assert render("{{ 1 / invoice.balance }}", context) == ""  # division by zero is null, as in expressions
    assert [(i.code, i.severity) for i in check_template("{{ 1 / 0 }}", SCHEMA)] == [("division-by-zero", "warning")]


def test_rendering_cannot_exhaust_memory_or_time():
    assert render("{{ 'x' * 100000000 }}{{ 10 ** 100000 }}", ctx()) == ""

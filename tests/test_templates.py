"""Templates: compile-time checks against the schema, the sandbox, money and date formatting, escaping in
HTML parts, and what a render may cost."""

import datetime as dt
import re
import tracemalloc
from pathlib import Path
from decimal import Decimal

import pytest
from babel.numbers import parse_decimal
from hypothesis import given, settings
from hypothesis import strategies as st

from collect.dsl.fields import schema_for
from collect.dsl.model import EmailTemplate, WhatsAppTemplate
from collect.engine.templates import (TemplateDirError, TemplateRenderError, check_template, environment,
                                      load_templates_dir, make_context, render, render_channel)

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
    # a syntax error points at where the parser or the lexer stopped, not at the start of its line
    ("line\n{% if %}", "template-syntax", 2, 7),
    ("Hola {{ customer.name }", "template-syntax", 1, 23),
    ("Hola {{ customer..name }}", "template-syntax", 1, 18),
    ("x {% endfor %}", "template-syntax", 1, 6),
])
def test_compile_time_errors(source, code, line, col):
    issues = check_template(source, SCHEMA)
    assert (issues[0].code, issues[0].line, issues[0].col) == (code, line, col), issues


def test_a_syntax_error_says_what_is_wrong_without_an_offset():
    [issue] = check_template("a\n  {{ invoice.balance $ 2 }}", SCHEMA)
    assert (issue.message, issue.line, issue.col) == ("template syntax: unexpected char '$'", 2, 22)


def test_hints_and_valid_templates():
    assert check_template("{{ customer.nmae }}", SCHEMA)[0].hint == "did you mean 'name'?"
    assert check_template("{{ customer.segmento }}", SCHEMA)[0].hint == (  # an undeclared CSV column
        "a column of your CSV must be declared before use: fields: { customer.segmento: str } "
        "(in a .collect file: field customer.segmento: str)")
    [issue] = check_template("{{ invoice.balance.currency }}", SCHEMA)  # an amount is a number
    assert issue.code == "unknown-attribute" and "invoice.currency" in issue.hint
    [issue] = check_template("{% for i in invoices %}{{ i.vendedor }}{% endfor %}", SCHEMA)
    assert "fields: { invoice.vendedor: str }" in issue.hint
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


@pytest.mark.parametrize("country, currency, expected", [
    ("CL", "CLP", "$1.234 · 20-11-2026"),  # English wrote CLP1,234 · Nov 20, 2026 ("Mar 20" read as martes)
    ("US", "USD", "$1,234.50 · Nov 20, 2026"),
    (None, "USD", "$1,234.50 · Nov 20, 2026"),  # no country either: English
])
def test_a_customer_without_a_language_gets_its_country_s(country, currency, expected):
    text = render("{{ invoice.balance | money }} · {{ invoice.due_date | date }}", ctx(None, country, currency))
    assert text.replace("\xa0", " ") == expected


def test_money_with_explicit_currency_and_dates():
    assert render('{{ total_balance | money("USD", "en_US") }}', ctx()) == "$1,244.50"
    assert render("{{ invoice.due_date | date }}", ctx()) == "20 nov. 2026"
    assert render("{{ invoice.due_date | date('long') }}", ctx("en", "US")) == "November 20, 2026"


def test_money_writes_a_number_field_of_decimal_s_full_28_digits():
    """Rounding to cents at Decimal's default precision failed with InvalidOperation for 27 or 28 digits."""
    assert render('{{ 9999999999999999999999999999 | money("USD", "en_US") }}', ctx()) == (
        "$9,999,999,999,999,999,999,999,999,999.00")


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


def test_a_byte_order_mark_is_no_text_of_a_template_file(tmp_path):
    """Windows editors start a UTF-8 file with one: it hid an email's Subject line, and it would have gone
    out at the head of every SMS (one character outside GSM-7 makes the whole SMS UCS-2)."""
    (tmp_path / "aviso.email.j2").write_bytes("\ufeffSubject: Hola\n\nCuerpo".encode("utf-8"))
    (tmp_path / "aviso.sms.j2").write_bytes("\ufeffSMS {{ pay_link }}".encode("utf-8"))
    assert load_templates_dir(tmp_path) == ({"aviso": {"email": {"subject": "Hola", "body": "Cuerpo"},
                                                       "sms": "SMS {{ pay_link }}"}}, [])


def test_templates_dir_reports_each_bad_file_and_keeps_the_others(tmp_path):
    (tmp_path / "aviso.sms.j2").write_text("SMS", encoding="utf-8")
    (tmp_path / "x.fax.j2").write_text("x")
    (tmp_path / "y.email.j2").write_text("no subject")
    (tmp_path / "z.echo.j2").write_text("a plugin's channel")
    found, problems = load_templates_dir(tmp_path, ("email", "sms", "echo"))
    assert found == {"aviso": {"sms": "SMS"}, "z": {"echo": "a plugin's channel"}}
    assert [(str(p).split(": ", 1)[1], p.template) for p in problems] == [
        ("unknown channel 'fax'", None), ("an email template starts with a 'Subject: ...' line", ("y", "email"))]


def test_templates_are_read_only_from_files_kept_with_the_policy(tmp_path):
    """A link to a file outside the policy's folder (a secret, the process's environment), a folder
    outside it, something that is not a regular file, or an oversized file is refused; a link inside is
    fine."""
    import os

    policy, outside = tmp_path / "pol", tmp_path / "elsewhere"
    (policy / "templates").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.txt").write_text("TOKEN=s3cr3t")
    folder = policy / "templates"
    (folder / "leak.sms.j2").symlink_to(outside / "secret.txt")
    (folder / "env.letter.j2").symlink_to("/proc/self/environ")
    (policy / "shared.txt").write_text("Hola {{ customer.name }}")
    (folder / "ok.sms.j2").symlink_to(policy / "shared.txt")
    (folder / "big.sms.j2").write_text("x" * (256 * 1024 + 1))
    os.mkfifo(folder / "pipe.sms.j2")
    found, problems = load_templates_dir(folder, root=policy)
    assert found == {"ok": {"sms": "Hola {{ customer.name }}"}}
    said = [(Path(str(p).split(": ", 1)[0]).name, str(p).split(": ", 1)[1].split(",")[0]) for p in problems]
    assert said == [("big.sms.j2", "262"), ("env.letter.j2", f"a link to /proc/{os.getpid()}/environ"),
                    ("leak.sms.j2", f"a link to {(outside / 'secret.txt').resolve()}"),
                    ("pipe.sms.j2", "not a regular file")]
    assert all("outside the policy's folder" in str(p) for p in problems[1:3])
    with pytest.raises(TemplateDirError, match="outside the policy's folder"):
        load_templates_dir(outside, root=policy)


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
    ("{{ customer }}", 4), ("{{ promise }}", 4), ("{{ invoices }}", 4), ("{{ invoices | first }}", 15),
    ("{% for i in invoices %}{{ i }}{% endfor %}", 27), ("{{ invoices | map(attribute='number') | list }}", 41),
])
def test_printing_a_record_or_a_list_is_a_compile_error(source, col):
    """They went out as Python writes them: {'email': 'a@x.pe', 'open_balance': Decimal('1334.5'), ...}."""
    issues = check_template(source, SCHEMA)
    assert [(i.code, i.col) for i in issues] == [("template-type", col)], issues
    assert issues[0].message.startswith("this prints ")


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
    ("{{ invoices | map('money') | join }}", "template-type", 15),  # the filter applies to each invoice
    ("{{ invoices | map('date') | join }}", "template-type", 15),
    ("{{ customer.name | date }}", "template-type", 20),  # text: every message failed at its render
    ("{{ invoice.number | date('long') }}", "template-type", 21),
])
def test_filters_and_operators_on_the_wrong_kind_are_compile_errors(source, code, col):
    issues = check_template(source, SCHEMA)
    assert [(i.code, i.col) for i in issues] == [(code, col)], issues


@pytest.mark.parametrize("source, col, message", [
    ("{{ invoices | map(attribute='due_date') | first | money }}", 51, "the 'money' filter needs a number, not a date"),
    ("{{ invoices | map(attribute='number') | first | round }}", 49, "the 'round' filter needs a number, not text"),
    ("{% for d in invoices | map(attribute='due_date') %}{{ d | money }}{% endfor %}", 59,
     "the 'money' filter needs a number, not a date"),
    ("{{ (invoices | map(attribute='balance') | list)[0] | date }}", 54, "the 'date' filter needs a date, not a number"),
    ("{{ invoices | map(attribute='balance') | max | date }}", 48, "the 'date' filter needs a date, not a number"),
    ("{{ invoices | map(attribute='due_date.year') | first | date }}", 56,
     "the 'date' filter needs a date, not a number"),
    ("{{ invoices | map('upper') | first | round }}", 38, "the 'round' filter needs a number, not text"),
    ("{{ invoices | map(attribute='number') | map('money') | join }}", 41,
     "the 'money' filter needs a number, not text: map('money') applies it to each item"),
    ("{{ invoices | map(attribute='number') | sum }}", 41, "the 'sum' filter adds numbers, not text"),
    ("{{ invoices | sum(attribute='due_date') }}", 15, "the 'sum' filter adds numbers, not a date"),
    ("{{ invoices | sum }}", 15, "the 'sum' filter adds numbers, not the invoice record"),
    ("{{ invoices | sum('number') }}", 15, "the 'sum' filter adds numbers, not text"),  # sum's first argument
])
def test_the_items_map_gives_are_checked_by_their_kind(source, col, message):
    """`map` gives a list of the field it names (or of what the filter it names gives): a filter applied
    to its items, or `sum` over them, is checked at compile time. Each of these failed every message."""
    assert [(i.code, i.col, i.message) for i in check_template(source, SCHEMA)] == [("template-type", col, message)]
    with pytest.raises(TemplateRenderError):
        render(source, ctx())


def test_what_templates_may_use_still_passes():
    ok = ("{{ invoices | sort(attribute='due_date') | map(attribute='number') | join(', ') }} "
          "{{ invoice.balance | round(2) }} {{ (invoices | first).balance | money }} {{ today.year }} "
          "{{ invoices[0].number }} {{ invoices[1:] | length }} {{ customer.tier | default('std') | upper }} "
          "{% with n = invoices | length %}{{ n * 2 }}{% endwith %} {{ invoices | selectattr('balance') | list | length }}"
          "{% for i in invoices | reverse %}{{ loop.index }} {{ i.due_date | date('short') }}{% endfor %}"
          "{% if total_balance > 100 and customer.name %}{{ 'x' ~ customer.name }}{% endif %}"
          "{% filter upper %}{{ customer.name }}{% endfilter %}"
          "{{ invoices | map(attribute='balance') | sum | money }} {{ invoices | sum(attribute='balance') | money }}"
          "{{ invoices | map(attribute='due_date') | max | date('short') }} {{ [1, 2] | sum }}"
          "{{ invoices | map(attribute='balance') | map('money') | join(', ') }}"
          "{{ invoices | map(attribute='number', default='-') | join(', ') }}"
          "{{ invoices | sum('balance') | money }}{% for k in invoices | map('list') %}{{ k[0] }}{% endfor %}"
          "{{ [[1, 2], [3, 4]] | sum(0) }}{{ [1, 2] | sum(none) }}")
    assert check_template(ok, SCHEMA) == []
    render(ok, ctx())


def test_sum_leaves_out_empty_values():
    """A null among the items adds nothing, as `join`, `max` and `min` leave it out (it failed the message)."""
    context = ctx()
    context["invoices"][1]["balance"] = None
    for source, total in (("{{ invoices | map(attribute='balance') | sum }}", "1234.5"),
                          ("{{ invoices | sum(attribute='balance') }}", "1234.5"),
                          ("{{ invoices | sum('balance', 1) }}", "1235.5")):
        assert check_template(source, SCHEMA) == []
        assert render(source, context) == total


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


@pytest.mark.parametrize("source, expected", [
    ("{% if customer.tier > 'a' %}x{% else %}y{% endif %}", "y"),  # an order with null is false (SPEC 3)
    ("{% if promise.amount < total_balance %}x{% endif %}-", "-"),
    ("{{ [customer.tier, 1] | max }}", "1"),
    ("Sr. {{ 'x' ~ customer.tier ~ 'y' }}", "Sr. xy"),  # null prints as nothing, also inside `~`
    ("{{ [customer.tier, 'b'] | join('/') }}", "/b"),
    ("{{ invoices | map(attribute='number') | join(',') }}", "F1,"),
    ("{{ invoices | sort(attribute='number') | map(attribute='balance') | join(',') }}", "1234.5,10"),
    ("{{ promise.date.year }}|{{ promise.date.month == 12 }}", "|False"),  # a field of null is null
    ("{{ invoices[5].number }}{{ invoices[5].balance | money }}", ""),  # an item that is not there
    ("{% for i in invoices %}{{ loop.previtem.number }};{% endfor %}", ";F1;"),
    # an item that is not there is null everywhere, not only where it is printed
    ("{% if invoices[5] %}x{% else %}y{% endif %}|{{ invoices[5] ~ 'z' }}|{{ invoices[5] | upper }}", "y|z|"),
    ("{% for i in invoices %}{{ loop.previtem is none }}{{ loop.nextitem is defined }};{% endfor %}",
     "TrueTrue;FalseFalse;"),
    ("{{ invoices[5] is defined }}|{{ customer.tier is undefined }}|{{ invoices[5].balance + 1 }}", "False|True|"),
    # a test that cannot apply to null is false, as an order comparison is
    ("{{ customer.tier is gt 'a' }}|{{ customer.tier is odd }}|{{ 3 is divisibleby 0 }}", "False|False|False"),
    ("{{ invoices | selectattr('number', '>', 'A') | map(attribute='balance') | join(',') }}", "1234.5"),
    ("{{ invoices | rejectattr('number', 'lt', 'F2') | list | length }}", "1"),
    ("{% set d = {'a': 1} %}{% if d.b is defined %}{{ d.b }}{% endif %}{% if d.b is undefined %}U{% endif %}", "U"),
    ("{{ (total_balance * 0.2) | money }}|{{ (total_balance / 2.0) | money }}", "S/\xa0248.90|S/\xa0622.25"),
    # a loop over null has no items
    ("{% for c in customer.tier %}{{ c }}{% else %}-{% endfor %}|{% for c in invoices[5] %}x{% endfor %}", "-|"),
])
def test_rendering_never_fails_nor_prints_none_for_a_null_or_absent_value(source, expected):
    """Each of these passed the compile check and then failed the message when it rendered (TypeError,
    an attribute of None), printed "None", or printed nothing for exact arithmetic with a decimal number."""
    context = ctx(tier=None)
    context["invoices"][1]["number"] = None
    assert check_template(source, SCHEMA) == []
    assert render(source, context) == expected


def test_rendering_cannot_exhaust_memory_or_time():
    assert render("{{ 'x' * 100000000 }}{{ 10 ** 100000 }}", ctx()) == ""


# -- an email's HTML part escapes what it prints ------------------------------------------------------

MARKUP = 'Acme <a href="https://evil.example/pay">Pay here</a><img src=x onerror=alert(1)>'


def test_customer_text_is_escaped_in_the_html_part_and_only_there():
    """The HTML part was rendered with autoescape off: a customer name put links and scripts in the email."""
    email = render_channel(EmailTemplate(subject="{{ customer.name }}", body="{{ customer.name }}",
                                         html="<p>{{ customer.name }}</p>"), ctx(name=MARKUP))
    assert email.subject == email.body == MARKUP
    assert email.html == ("<p>Acme &lt;a href=&#34;https://evil.example/pay&#34;&gt;Pay here&lt;/a&gt;"
                          "&lt;img src=x onerror=alert(1)&gt;</p>")


@pytest.mark.parametrize("source", [
    "{{ customer.name | upper }}",
    "{{ 'a\nb' | indent(customer.name) }}",  # Jinja makes a text indent markup as it is
    "{{ customer.name | indent(2, true) }}",
    "{% set b %}<b>{{ customer.name }}</b>{% endset %}{{ b }}",
    "{{ [customer.name, customer.tier] | join('<br>') }}",
    "{% set br %}<br>{% endset %}{{ [customer.name, customer.tier] | join(br) }}",
    "{{ customer.name ~ customer.tier }}",
    "{{ '<b>%s</b>' % customer.name }}",
    "{{ customer.name | e | replace('&lt;', '<') }}",
    "{{ customer.name | striptags }}{{ customer.tier | striptags }}",
    "{% filter lower %}{{ customer.name }}{% endfilter %}",
    # striptags gave the captured text unescaped, and a filter block prints its result as it is
    "{% filter striptags %}{{ customer.name }}{% endfilter %}{% filter striptags %}{{ customer.tier }}{% endfilter %}",
    "{% filter title %}{{ customer.name }}{% endfilter %}",
    "{% set n %}{{ customer.name }}{% endset %}{{ n | wordwrap(20) }}{{ n | truncate(20) }}{{ n | center(90) }}",
    "{% set br %}<br>{% endset %}{{ customer.name | wordwrap(5, wrapstring=br) }}",
    "{{ customer.name | truncate(40, end=customer.tier) }}",
    "{{ total_balance | money(customer.tier) }}",
])
def test_no_filter_or_operator_lets_customer_text_out_unescaped_in_html(source):
    html = render(source, ctx(name=MARKUP, tier="&lt;script&gt;x"), html=True)
    assert check_template(source, SCHEMA, html=True) == []
    assert not any(tag in html.lower() for tag in ("<a", "<img", "<script")), html


@pytest.mark.parametrize("source, expected", [
    ("{{ n | title }}", "Sr. O&#39;brien &amp; Sons"),
    ("{{ n | wordwrap(40) }}", "Sr. O&#39;Brien &amp; Sons"),
    ("{{ n | truncate(12, true, '...', 0) }}", "Sr. O&#39;Bri..."),  # counts what shows: no &#3 cut in half
    ("{{ n | striptags }}", "Sr. O&#39;Brien &amp; Sons"),
])
def test_captured_text_is_escaped_once_whatever_the_filter(source, expected):
    """`title` and `wordwrap` read the escapes of captured markup as text, which was printed escaped again:
    the customer saw O&amp;#39;Brien."""
    html = render("{% set n %}Sr. {{ customer.name }}{% endset %}" + source, ctx(name="O'Brien & Sons"), html=True)
    assert html == expected


@pytest.mark.parametrize("source, expected", [
    ("{% filter truncate(100) %}<p>Hi {{ customer.name }}</p>{% endfilter %}", "<p>Hi O&#39;Brien</p>"),
    ("{% filter truncate(9, true, '...', 0) %}<p>Hi <b>{{ customer.name }}</b> Sons</p><hr>{% endfilter %}",
     "<p>Hi <b>O&#39;B...</b></p><hr>"),  # 9 characters shown; every tag after the cut stays, closed
    ("{% filter title %}<p>dear <b>{{ customer.name | lower }}</b></p>{% endfilter %}",
     "<p>Dear <b>O&#39;brien</b></p>"),
    ("{% filter center(13) %}<b>{{ customer.name }}</b>{% endfilter %}|", "   <b>O&#39;Brien</b>   |"),
    ("{% set p %}<p>one two</p>{% endset %}{{ p | wordwrap(3) }}", "<p>one\ntwo</p>"),
    # a `>` in a quoted attribute value is no tag's end; a style's rules are no text to show
    ('{% filter title %}<a title="x>y">hello world</a>{% endfilter %}', '<a title="x>y">Hello World</a>'),
    ("{% filter title %}<style>p{color:red}</style><p>hi</p>{% endfilter %}", "<style>p{color:red}</style><p>Hi</p>"),
    ("{% filter title %}<p>mc<b>donald</b> and <i>sons</i></p>{% endfilter %}", "<p>Mc<b>donald</b> And <i>Sons</i></p>"),
    # the end mark goes where the last character kept is, not into the next element
    ("{% filter truncate(8, true, '...', 0) %}<p>Hello<b> world</b></p>{% endfilter %}", "<p>Hello...<b></b></p>"),
])
def test_filters_on_captured_markup_keep_the_templates_own_tags(source, expected):
    """They gave the markup's tags as text, and the email showed a literal <p>."""
    assert render(source, ctx(name="O'Brien"), html=True) == expected


def test_autoescape_cannot_be_turned_off():
    source = "<p>{% autoescape false %}{{ customer.name }}{% endautoescape %}</p>"
    assert [(i.code, i.col) for i in check_template(source, SCHEMA, html=True)] == [("unsafe-template", 7)]
    with pytest.raises(TemplateRenderError, match="autoescape"):
        render(source, ctx(name=MARKUP), html=True)


def test_html_and_text_parts_accept_and_render_the_same_templates():
    text, html = environment(), environment(html=True)
    assert (set(text.filters), set(text.tests)) == (set(html.filters), set(html.tests))
    source = ("{% for i in invoices | sort(attribute='due_date') %}{{ loop.index }} {{ i.number | center(6) }} "
              "{{ i.balance | money }} {{ i.due_date | date('short') }}{% endfor %} {{ customer.name | title }} "
              "{{ invoices | map(attribute='number') | join(', ') }} {{ '%s!' % customer.name }} {{ 'a' ~ 'b' }} "
              "{% set b %}x{% endset %}{% filter upper %}{{ b | indent(2) | wordwrap(5) }}{% endfilter %}")
    assert check_template(source, SCHEMA) == check_template(source, SCHEMA, html=True) == []
    assert render(source, ctx()) == render(source, ctx(), html=True)
    assert check_template("{{ customer.nmae }}", SCHEMA, html=True) == check_template("{{ customer.nmae }}", SCHEMA)


# -- what rendering a template may cost -------------------------------------------------------------

def frugally(source: str) -> str:
    """Render `source` (a template that validates) with its memory traced: a limit must refuse a value
    before it is built, not after. Each template here would build 2 MB (the number) to 10 MB (the texts);
    refused in time, rendering never holds more than about 330 KB, whether compiled or cached."""
    assert check_template(source, SCHEMA) == []
    tracemalloc.start()
    try:
        return render(source, ctx())
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < 1_000_000, f"rendering held {peak:,} bytes at its peak"


@pytest.mark.parametrize("source", [
    '{{ ("x" * 10000) * 1000 }}',  # each `*` under the old repeat limit, the text ten million characters
    "{{ (9 ** 1000) ** 1000 }}",  # each exponent under the old limit, the number three million bits
    "{% set n = 9 ** 1000 %}{% set n = n * n %}{% set n = n * n %}{{ n }}",
    '{{ "%010000000d" % 1 }}',
    '{{ "%*d" % (10000000, 1) }}',
])
def test_arithmetic_too_large_to_build_gives_null(source):
    assert frugally(source) == ""


@pytest.mark.parametrize("source, limit", [
    ('{{ "x" | center(10000000) }}', "'center' would give"),
    ('{{ "a\nb" | indent(10000000) }}', "'indent' would give"),
    ('{{ "a b" | wordwrap(10000000) }}', "'wordwrap' would give"),
    ('{% set s = "x" * 5000 %}{{ s | wordwrap(1, wrapstring=s) }}', "'wordwrap' would give"),
    ('{% set s = "x" * 5000 %}{{ s | replace("x", s) }}', "'replace' would give"),
    ('{% set s = "x" * 5000 %}{{ s | list | join(s) }}', "'join' would give"),
    ('{% set s = "x" * 5000 %}{{ s | list | map("center", 1000) | list | length }}', "'map' would give"),
    ('{{ "xy" | batch(10000000, "z") | list | length }}', "'batch' would give"),
    ('{{ 5 | round(-1000000) }}', "'round' would compute"),  # 10 ** 1000000 first; -10**9 never ends
    ("{{ [[1], [2]] | sum(start=[]) }}", "'sum' adds numbers"),
    ('{% set s = "x" * 10000 %}' + "{% set s = s ~ s %}" * 10 + "{{ s | length }}", "'~' would give"),
    ('{% set a = ["x" * 10000] %}' + "{% set a = [a, a] %}" * 10 + "{{ a | length }}", "a [list] or {record}"),
])
def test_filters_and_values_past_their_size_fail_the_message(source, limit):
    with pytest.raises(TemplateRenderError, match="too costly: " + re.escape(limit)):
        frugally(source)


@pytest.mark.parametrize("source, limit", [
    ('{% for a in "x" | center(1000) %}{% for b in "x" | center(1000) %}{% endfor %}{% endfor %}',
     "loops would run over 10,000 times"),  # nested loops multiply
    ('{{ "x" * 60000 }}{{ "x" * 60000 }}', "the message part would be over 100,000 characters"),
    ('{% set b %}{% for i in "x" | center(200) %}{{ "y" * 1000 }}{% endfor %}{% endset %}{{ b | length }}',
     "block would capture over 100,000"),
    ('{% set s = "x" * 90000 %}{% for i in "x" | center(100) %}{% if s | upper %}{% endif %}{% endfor %}',
     "would build over 1,000,000 characters"),  # each step small, all of them not
    ('{% set s = "x" * 90000 %}{% for i in "x" | center(100) %}{% if s[1:] == s %}{% endif %}{% endfor %}',
     "would build over 1,000,000 characters"),
])
def test_a_part_has_a_budget_of_loop_steps_output_and_work(source, limit):
    with pytest.raises(TemplateRenderError, match=limit):
        frugally(source)


def test_large_but_reasonable_messages_still_render():
    invoices = [{"number": f"F{n}", "balance": Decimal("10.5"), "due_date": dt.date(2026, 11, 20)} for n in range(2000)]
    context = make_context({"name": "ACME", "language": "en", "country": "US"}, invoices, pay_link="https://pay/x",
                           today=dt.date(2026, 11, 22), currency="USD", schema=SCHEMA)
    rows = ("{% for i in invoices %}{{ loop.index }}/{{ invoices | length }} "
            "{{ i.number ~ ': ' ~ (i.balance | money) }}{% if i.number in ['F1', 'F2'] %}!{% endif %}\n{% endfor %}")
    assert render(rows, context).count("\n") == 2000
    body = "{% filter upper %}" + "y" * 60_000 + "{{ customer.name }}{% endfilter %}"
    assert render(body, context, html=True).endswith("ACME")



@pytest.mark.parametrize("source, said", [
    ('{{ customer.name | replace("Sr.") }}', "the 'replace' filter cannot be called so: missing a required argument: 'new'"),
    ('{{ total_balance | round("2") }}', "the 'round' filter's precision is a number, not the text '2'"),
    ('{{ customer.name | center("x") }}', "the 'center' filter's width is a number, not the text 'x'"),
    ('{{ customer.name | upper(1) }}', "the 'upper' filter cannot be called so: too many positional arguments"),
    ("{{ '12' | int(0, '16') }}", "the 'int' filter's base is a number, not the text '16'"),
    ("{{ invoices | slice(0) | list | length }}", "the 'slice' filter's slices is a whole number of 1 or more, not 0"),
    ("{{ customer.name | wordwrap(0) }}", "the 'wordwrap' filter's width is a whole number of 1 or more, not 0"),
    ("{{ total_balance | round(2, 'x') }}", "the 'round' filter's method is 'common', 'ceil' or 'floor', not 'x'"),
])
def test_a_filter_given_arguments_it_cannot_take_is_an_error_at_compile_time(source, said):
    """They validated and then failed every message at render (`collect run`: exit 3, a provider failure)."""
    assert [i.message for i in check_template(source, SCHEMA)] == [said]


@pytest.mark.parametrize("source", ['{{ customer.name | replace("Sr.", "") | truncate(30) | center(40) }}',
                                    '{{ invoices | map(attribute="number") | join(", ") }}',
                                    '{{ total_balance | round(2, "floor") }}', '{{ customer.name | default("cliente") }}',
                                    '{{ invoices | map(attribute="number") | list | length }}',
                                    "{{ customer.name | indent('  > ', true) }}", "{{ customer.name | int('-') }}",
                                    "{{ customer.name | float('n/a') }}"])
def test_filters_called_as_they_may_be_pass(source):
    assert check_template(source, SCHEMA) == []


def test_whatsapp_template_parameters_are_one_line_each():
    """WhatsApp refuses a parameter with a line break, a tab or more than four spaces in a row."""
    rendered = render_channel(WhatsAppTemplate(template_name="t", language="es",
                                               params=["{% for i in invoices %}{{ i.number }}\n{% endfor %}",
                                                       "a\t b     c"]), ctx())
    assert rendered.params == ("F1 F2", "a b c")


def test_whatsapp_parameters_keep_the_no_break_spaces_of_amounts_and_dates():
    """Only line breaks, tabs and runs of plain spaces are folded: `S/\xa01,244.50` must not wrap apart."""
    rendered = render_channel(WhatsAppTemplate(template_name="t", language="es",
                                               params=["{{ total_balance | money }}\n\t al \u2028 día"]), ctx())
    (param,) = rendered.params
    assert param == "S/\xa01,244.50 al día"


def test_a_render_failure_names_the_part_and_its_line():
    bad = "{{ invoice.balance | money(locale='zz_QQ') }}"  # a locale only known when the message is rendered
    with pytest.raises(TemplateRenderError, match=r"^subject, line 2: the template failed: UnknownLocaleError"):
        render_channel({"subject": f"Factura\n{bad}", "body": "ok"}, ctx())
    with pytest.raises(TemplateRenderError, match=r"^html, line 1: the template failed: "):
        render_channel({"subject": "s", "body": "ok", "html": bad}, ctx())
    with pytest.raises(TemplateRenderError, match=r"^parameter 2, line 1: the template failed: "):
        render_channel({"template_name": "t", "language": "es", "params": ["ok", bad]}, ctx())

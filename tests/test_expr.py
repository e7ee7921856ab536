"""Expressions: parsing, type checking with positions, folding, null-safe evaluation."""

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collect.dsl.expr import ExprError, analyze, compile_expr, is_constant, parse
from collect.dsl.fields import schema_for

SCHEMA = schema_for({"customer.risk_score": "float", "customer.tier": "str"})
SEGMENTS = {"risky", "big"}
EXPERIMENTS = {"tone": {"soft", "firm", "holdout"}}


def check(text, expect="bool"):
    return analyze(text, SCHEMA, SEGMENTS, EXPERIMENTS, expect)


def run(text, **ctx):
    values = {k.replace("__", "."): v for k, v in ctx.items()}
    return compile_expr(parse(text), {"risky": lambda c: c.get("customer.risk_score", 0) or 0 > 0.5})(values)


@pytest.mark.parametrize("text, canonical", [
    ("a or b and c", "a or b and c"),
    ("(a or b) and c", "(a or b) and c"),
    ("not a and b", "not a and b"),
    ("not (a and b)", "not (a and b)"),
    ("1 + 2 * 3 > x.y", "7 > x.y"),
    ("(1 + 2) * 3 > x.y", "9 > x.y"),
    ("invoice.amount  >=   10*100", "invoice.amount >= 1000"),
    ("invoice.due_date + 7d < 2026-01-01", "invoice.due_date + 1w < 2026-01-01"),
    ('customer.tier in ["a",  "b"]', 'customer.tier in ["a", "b"]'),
])
def test_canonical_text(text, canonical):
    result = analyze(text, {**SCHEMA, "x.y": "int"}, {"a", "b", "c"}, {}, "bool")
    assert result.errors == [] and result.canonical == canonical


@pytest.mark.parametrize("text, code, offset, length", [
    ("customer.nmae == 3", "unknown-field", 0, 13),
    ("invoice.amount > 1 and amount > 3", "unknown-segment", 23, 6),
    ("riskyy", "unknown-segment", 0, 6),
    ("customer.name > 3", "type-error", 0, 17),
    ("invoice.amount + 1", "type-error", 0, 18),
    ("risky and 3", "type-error", 10, 1),
    ('variant("tone") == "frim"', "unknown-variant", 19, 6),
    ('variant("tome") == "firm"', "unknown-experiment", 8, 6),
    ("lowr(customer.name) == 'a'", "unknown-function", 0, 19),
    ("days_since(customer.name) > 3", "bad-arguments", 11, 13),
    ("invoice.amount >", "expr-syntax", 16, 1),
    ('customer.name == "open', "expr-syntax", 17, 1),
    ("invoice.amount > > 3", "expr-syntax", 17, 1),
    # a keyword against the next word was split off it: `isnotnull` read as `is not null`
    ("customer.email isnotnull", "expr-syntax", 15, 5),
    ("invoice.amount between 1 and3", "expr-syntax", 25, 4),
])
def test_errors_have_codes_and_offsets(text, code, offset, length):
    errors = check(text).errors
    assert [(e.code, e.offset, e.length) for e in errors][:1] == [(code, offset, length)], errors


def test_did_you_mean_hints():
    assert check("customer.nmae == 'x'").errors[0].hint == "did you mean 'customer.name'?"
    assert check("amount > 3").errors[0].hint == "did you mean 'invoice.amount'?"
    assert check('variant("tone") == "frim"').errors[0].hint == "did you mean 'firm'?"


@pytest.mark.parametrize("text, hint", [
    # not a slip of the keyboard from a known field: most likely a CSV column that was not declared
    ("customer.segmento == 'x'", "a column of your CSV must be declared under fields before use, "
                                 "e.g. fields: { customer.segmento: str }"),
    ("invoice.vendedor == 'x'", "a column of your CSV must be declared under fields before use, "
                                "e.g. fields: { invoice.vendedor: str }"),
    # a name only loosely like a known one keeps its 'did you mean', and says how to declare it
    ("customer.tiers == 'x'", "did you mean 'customer.tier'?"),
    ("customer.nombre == 'x'", "did you mean 'customer.name'? If it is a column of your CSV, declare it under fields, "
                               "e.g. fields: { customer.nombre: str }"),
    # near-typos of a built-in or declared field: only the 'did you mean'
    ("customer.risk_scor > 1", "did you mean 'customer.risk_score'?"),
    ("invoice.amout > 1", "did you mean 'invoice.amount'?"),
    ("customer.emial == 'x'", "did you mean 'customer.email'?"),
    # fields of their own: nothing to declare
    ("contacts.total > 1", "fields of contacts: contacts.count_7d, contacts.last_channel"),
    ("cliente.x == 1", "fields start with invoice., customer., contacts., promise."),
])
def test_an_unknown_field_says_how_to_declare_a_csv_column(text, hint):
    (error,) = check(text).errors
    assert error.code == "unknown-field" and error.hint == hint


def test_the_declaration_hint_is_written_in_the_syntax_of_the_file():
    (error,) = analyze("customer.segmento == 'x'", SCHEMA, SEGMENTS, EXPERIMENTS, "bool", text_dsl=True).errors
    assert error.hint == "a column of your CSV must be declared with a field line before use, " \
                         "e.g. field customer.segmento: str"
    (error,) = check("customer.Segmento == 'x'").errors  # custom fields are lowercase
    assert error.hint.endswith("fields: { customer.segmento: str }; custom field names are lowercase, "
                               "so write customer.segmento")


def test_all_errors_are_reported_not_only_the_first():
    codes = [e.code for e in check("customer.nmae > 1 and riskyy and invoice.amont < 2").errors]
    assert codes == ["unknown-field", "unknown-segment", "unknown-field"]


def test_priority_must_be_a_number():
    assert check("invoice.balance * (1 - customer.risk_score)", "number").errors == []
    assert check("customer.name", "number").errors[0].code == "type-error"


def test_constant_folding_detects_always_false():
    result = check("invoice.amount > 1 and 1 > 2")
    assert not is_constant(result)
    assert is_constant(check("1 > 2")) and check("1 > 2").constant is False
    assert check("2026-01-02 - 2026-01-01 == 1").constant is True


@pytest.mark.parametrize("text, ctx, expected", [
    ("invoice.amount > 10", {}, False),  # a comparison with null is false
    ("not invoice.amount > 10", {}, True),
    ("invoice.amount != 10", {}, False),
    ("invoice.amount is null", {}, True),
    ("invoice.amount is not null", {"invoice__amount": Decimal(1)}, True),
    ("invoice.amount between 1 and 3", {"invoice__amount": Decimal("3")}, True),
    ("invoice.amount between 1 and 3", {}, False),
    ("customer.tier in ['a', 'b']", {"customer__tier": "b"}, True),
    ("customer.tier not in ['a', 'b']", {}, False),
    ("invoice.amount * 2 > 5", {"invoice__amount": 2.6}, True),  # float column, exact arithmetic
    ("invoice.amount / 0 > 1", {"invoice__amount": Decimal(1)}, False),  # division by zero is null
    ("customer.risk_score < 0.3", {"customer__risk_score": 0.1}, True),
    ("lower(customer.name) == 'acme'", {"customer__name": "ACME"}, True),
    ("lower(customer.name) == 'acme'", {"customer__name": None}, False),
    ("invoice.due_date < 2026-01-01", {"invoice__due_date": dt.date(2025, 12, 31)}, True),
    ("invoice.due_date + 7d > 2026-01-05", {"invoice__due_date": dt.date(2025, 12, 31)}, True),
    ("days_since(invoice.due_date) > 30", {"invoice__due_date": dt.date(2026, 1, 1), "today": dt.date(2026, 3, 1)}, True),
    ('variant("tone") == "firm"', {"variant:tone": "firm"}, True),
])
def test_null_safe_evaluation(text, ctx, expected):
    assert run(text, **ctx) is expected


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60) | st.from_regex(r"[a-z. ()<>=!0-9\"'\[\],+*/-]{0,40}", fullmatch=True))
def test_random_text_never_raises(text):
    result = check(text)
    assert all(isinstance(e, ExprError) for e in result.errors)


NUMBERS = st.decimals(min_value=-10**6, max_value=10**6, places=2, allow_nan=False, allow_infinity=False)


@st.composite
def arithmetic(draw, depth=0):
    """(expression text, the same computation in Python with Decimal) as the test oracle."""
    if depth > 3 or draw(st.booleans()):
        number = draw(NUMBERS)
        return str(number), f"Decimal('{number}')"
    op = draw(st.sampled_from(["+", "-", "*"]))
    (left, left_py), (right, right_py) = draw(arithmetic(depth + 1)), draw(arithmetic(depth + 1))
    return f"({left} {op} {right})", f"({left_py} {op} {right_py})"


@settings(max_examples=200, deadline=None)
@given(arithmetic(), arithmetic(), st.sampled_from(["<", "<=", ">", ">=", "==", "!="]))
def test_folding_agrees_with_evaluation_and_canonical_is_idempotent(left, right, op):
    text = f"{left[0]} {op} {right[0]}"
    reference = eval(f"{left[1]} {op} {right[1]}", {"__builtins__": {}, "Decimal": Decimal})  # noqa: S307
    assert compile_expr(parse(text), {})({}) is reference
    folded = analyze(text, SCHEMA, set(), {}, "bool")
    assert folded.constant is reference  # folding computes the same value at compile time
    partial = analyze(f"invoice.amount > 0 and {text}", SCHEMA, set(), {}, "bool")
    assert analyze(partial.canonical, SCHEMA, set(), {}, "bool").canonical == partial.canonical


def test_a_huge_duration_literal_is_an_error_not_an_overflow():
    (error,) = check("invoice.due_date + 99999999999d > 2026-01-01").errors
    assert (error.code, error.offset, error.length) == ("bad-value", 19, 12)


@pytest.mark.parametrize("text", [" and ".join(["invoice.amount > 1"] * 400), "not " * 400 + "true"])
def test_a_deeply_nested_expression_is_an_error_not_a_recursion_error(text):
    assert [e.code for e in check(text).errors] == ["expr-syntax"]


@pytest.mark.parametrize("text, value", [
    ('customer.tier == "Bogotá"', "Bogotá"),
    ('customer.tier == "Bogot\\u00e1\\t"', "Bogotá\t"),
    ('customer.tier == "Bogotá\\t"', "Bogotá\t"),  # an escape does not change the other characters
    ("customer.tier == 'Peña \"VIP\"'", 'Peña "VIP"'),
    ("customer.tier == 'it\\'s \\\\ \\/'", "it's \\ /"),
    ('customer.tier == "\\ud83d\\ude00"', "\U0001F600"),  # a surrogate pair is one character
])
def test_non_ascii_strings_are_not_mis_decoded(text, value):
    assert parse(text).args[1].value == value


@pytest.mark.parametrize("text, offset, length", [
    ('customer.tier == "a\\x"', 19, 2),
    ('customer.tier == "C:\\Nordic"', 20, 2),
    ('customer.tier == "\\u12"', 18, 2),
    ('customer.tier == "x\\ud800"', 19, 6),  # half a surrogate pair: no file or plan_hash can encode it
    ('customer.tier == "\\ude00\\ud83d"', 18, 6),
])
def test_a_bad_escape_in_a_string_is_an_error_at_its_place(text, offset, length):
    (error,) = check(text).errors
    assert (error.code, error.offset, error.length) == ("expr-syntax", offset, length)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_a_string_literal_round_trips_through_the_canonical_text(value):
    from collect.dsl.exprcheck import literal_text

    assert parse(literal_text(value)).value == value  # what the run time reads back from the plan


@pytest.mark.parametrize("text, offset, length", [
    ("invoice.issue_date + 1d * 4000 > invoice.due_date", 21, 9),
    ("invoice.due_date < 2026-01-01 + 1d * 100000000", 32, 14),
    ("invoice.due_date < 2026-01-01 + 1d * 100000000000000000000", 32, 26),
    ("invoice.due_date < 9999-12-31 + 1d", 19, 15),
    ("invoice.due_date < 2026-01-01 + (-2000d - 2000d)", 33, 14),
])
def test_a_folded_date_or_duration_keeps_the_ten_year_limit(text, offset, length):
    (error,) = check(text).errors
    assert (error.code, error.offset, error.length) == ("bad-value", offset, length)
    assert check("invoice.due_date < 2026-01-01 + 1d * 3650").errors == []


@pytest.mark.parametrize("text, canonical", [
    ("invoice.issue_date + 1d / 7 < invoice.due_date", "invoice.issue_date + 1d / 7 < invoice.due_date"),
    ("invoice.issue_date + 1d / 8 < invoice.due_date", "invoice.issue_date + 3h < invoice.due_date"),
])
def test_a_folded_duration_is_written_only_when_it_is_whole_minutes(text, canonical):
    """The plan's text is parsed again at run time: `1d / 7` written as the literal 205m would mean
    less than what was checked, so a fraction of a minute stays an expression."""
    assert check(text).canonical == canonical


@pytest.mark.parametrize("text, canonical", [
    ('segment("risky")', "risky"),
    ('not segment("risky") and big', "not risky and big"),
])
def test_a_segment_call_has_the_canonical_text_of_the_bare_name(text, canonical):
    assert check(text).canonical == canonical == check(canonical).canonical


@pytest.mark.parametrize("name", ["true", "null", "and", "big-risk"])
def test_a_segment_call_that_cannot_be_a_bare_name_stays_a_call(name):
    result = analyze(f'segment("{name}")', SCHEMA, {name}, {}, "bool")
    assert result.errors == [] and result.canonical == f'segment("{name}")'
    assert parse(result.canonical).kind == "call"


@pytest.mark.parametrize("text, hint", [
    ("customer.email != null", "write customer.email is not null"),
    ("null == customer.email", "write customer.email is null"),
    ('customer.tier in ["a", null]', "write customer.tier is null or ..."),
])
def test_a_comparison_with_null_is_an_error_not_a_condition_that_never_holds(text, hint):
    errors = check(text).errors
    assert [(e.code, e.hint) for e in errors] == [("type-error", hint)]


@pytest.mark.parametrize("text, expected", [
    ("invoice.due_date - customer.paid_at", Decimal(3)),
    ("customer.paid_at - invoice.due_date", Decimal(-3)),
])
def test_date_minus_date_time_counts_days_between_local_dates(text, expected):
    ctx = {"invoice__due_date": dt.date(2026, 3, 4), "customer__paid_at": dt.datetime(2026, 3, 1, 23, 59)}
    assert run(text, **ctx) == expected


@pytest.mark.parametrize("text, hint, offset", [
    ('lower(customer.tier) == "A"', 'write "a"', 24),
    ('lower(customer.tier) in ["a", "Gold"]', 'write "gold"', 30),
])
def test_lower_compared_with_capitals_is_an_error_not_a_condition_that_never_holds(text, hint, offset):
    assert [(e.code, e.hint, e.offset) for e in check(text).errors] == [("type-error", hint, offset)]
    assert check(text.replace("A", "a").replace("Gold", "gold")).errors == []


FIELD_VALUES = (st.none() | st.integers(-5, 5) | st.decimals(-5, 5, places=1) | st.floats(-5, 5) | st.text(max_size=2)
                | st.booleans() | st.dates() | st.datetimes() | st.datetimes(timezones=st.just(dt.timezone.utc))
                | st.timedeltas())
LITERALS = (st.decimals(-5, 5, places=1) | st.text(max_size=2) | st.dates() | st.booleans() | st.timedeltas()
            | st.floats(-5, 5) | st.none())


@settings(max_examples=400, deadline=None)
@given(FIELD_VALUES, LITERALS, st.sampled_from(["==", "!=", "<", "<=", ">", ">="]), st.booleans(), LITERALS)
def test_field_against_literal_compares_as_any_comparison(value, literal, op, missing, other):
    """`field <op> literal` is compiled into one call of its own: it must give what the comparison of any
    two values gives (`_safe_compare`: null false, floats and date-times aligned, a type error false)."""
    from collect.dsl import exprcompile
    from collect.dsl.expr import Node

    node = Node("compare", 0, 1, op, (Node("field", 0, 1, "x"), Node("literal", 0, 1, literal)))
    ctx = {} if missing else {"x": value}
    expected = exprcompile._safe_compare(exprcompile.COMPARE[op], ctx.get("x"), literal)
    assert exprcompile.compile_node(node, {})(ctx) == expected
    # `x between literal and literal` too, against the same with its bounds read from the context
    bounds = [Node("literal", 0, 1, literal), Node("literal", 0, 1, other)]
    read = [Node("field", 0, 1, "low"), Node("field", 0, 1, "high")]
    field = Node("field", 0, 1, "x")
    literals = exprcompile.compile_node(Node("between", 0, 1, None, (field, *bounds)), {})
    general = exprcompile.compile_node(Node("between", 0, 1, None, (field, *read)), {})
    assert literals(ctx) == general({**ctx, "low": literal, "high": other})

"""Review findings on the policy language: YAML merge keys override as YAML says, a holiday calendar the
`holidays` package does not know is a compile error (not a crash of `collect simulate`), `in` without its
brackets says what it takes, and a boolean is neither a number nor a name."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from collect.cli import app
from collect.engine.compiler import compile_policy

POLICY = """\
policy: t
timezone: America/Lima
{extra}
windows:
  default: &w {{ mon-fri: "08:00-19:00", sat: "09:00-13:00" }}
{windows}
templates:
  m:
    email: {{ subject: s, body: b }}
stages:
  s1:
    when: invoice.days_past_due >= 0
    steps:
      - &base {{ id: a, at: due+1d, send: email, template: m }}
{steps}
"""


def compile_yaml(tmp_path, extra: str = "", windows: str = "", steps: str = "", name: str = "p.yaml"):
    text = POLICY.format(extra=extra, windows=windows, steps=steps)
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return compile_policy(path), text


def errors(result) -> list:
    return [d for d in result.diagnostics.items if d.severity == "error"]


def where(text: str, line: int, fragment: str) -> tuple[int, int]:
    """(line, column) of `fragment` on a 1-based line of `text`."""
    return line, text.splitlines()[line - 1].index(fragment) + 1


# -- YAML merge keys --------------------------------------------------------------------------------

def test_a_key_written_next_to_a_merge_overrides_the_merged_one(tmp_path):
    result, _ = compile_yaml(tmp_path, windows='  email: { <<: *w, mon-fri: "07:00-21:00" }',
                             steps="      - { <<: *base, id: b, at: due+2d }")
    assert [d.render() for d in errors(result)] == []
    plan = result.plan.to_dict()
    assert plan["windows"]["channels"]["email"]["mon"] == [[420, 1260]]
    assert plan["windows"]["channels"]["email"]["sat"] == [[540, 780]]  # the merged key that was not overridden
    assert [(s["id"], s["trigger"]["days"]) for s in plan["stages"][0]["steps"]] == [("a", 1), ("b", 2)]


def test_of_merged_mappings_the_first_in_the_list_wins(tmp_path):
    windows = ('  sms: &late { mon-fri: "10:00-20:00" }\n'
               '  email: { <<: [*late, *w] }')
    result, _ = compile_yaml(tmp_path, windows=windows)
    assert [d.render() for d in errors(result)] == []
    email = result.plan.to_dict()["windows"]["channels"]["email"]
    assert email["mon"] == [[600, 1200]] and email["sat"] == [[540, 780]]


def test_an_error_in_an_overriding_value_points_at_the_key_written_by_hand(tmp_path):
    result, text = compile_yaml(tmp_path, windows='  email: { <<: *w, mon-fri: "07:00-25:00" }')
    assert [(d.span.line, d.span.col) for d in errors(result)] == [where(text, 6, '"07:00-25:00"')]


def test_a_key_written_twice_by_hand_is_still_a_duplicate(tmp_path):
    result, text = compile_yaml(tmp_path, windows='  email: { <<: *w, sat: "07:00-12:00", sat: "08:00-12:00" }')
    found = errors(result)
    assert [(d.code, d.span.line, d.span.col) for d in found] == [("duplicate-key",) + where(text, 6, 'sat: "08')]


def test_two_merge_keys_in_one_mapping_are_a_duplicate_with_the_list_as_the_way(tmp_path):
    windows = ('  sms: &late { sun: "10:00-20:00" }\n'
               '  email: { <<: *w, <<: *late }')
    result, text = compile_yaml(tmp_path, windows=windows)
    found = errors(result)
    assert [(d.code, d.span.line, d.span.col) for d in found] == [("duplicate-key",) + where(text, 7, "<<: *late")]
    assert "<<: [*a, *b]" in found[0].hint


# -- the holiday calendar ---------------------------------------------------------------------------

@pytest.mark.parametrize("calendar, value, said", [
    ("{ country: XX }", "XX", "'XX' is not a country the holidays package knows"),
    ("{ country: pe }", "pe", "'pe' is not a country code: write PE (codes are in capitals)"),
    ("{ country: PER }", "PER", "write the ISO 3166 code PE"),
    ("{ country: JAN }", "JAN", "'JAN' is not a country"),  # a name in the holidays package, but a month
    ("{ country: PE, subdivision: ZZZ }", "ZZZ", "no subdivisions for PE: leave subdivision out"),
    ("{ country: US, subdivision: ZZZ }", "ZZZ", "'ZZZ' is not a subdivision of US in the holidays package; "
                                                 "it has AK, AL"),
    ("{ country: US, subdivision: ca }", "ca", "write CA (codes are in capitals)"),
])
def test_a_holiday_calendar_the_holidays_package_does_not_know_is_an_error_at_the_value(tmp_path, calendar, value,
                                                                                         said):
    result, text = compile_yaml(tmp_path, extra=f"calendar: {calendar}")
    found = errors(result)
    assert result.plan is None and len(found) == 1, [d.render() for d in found]
    value_col = text.splitlines()[2].rindex(value) + 1  # the last word of the line (not the `ca` of `calendar`)
    assert (found[0].span.line, found[0].span.col) == (3, value_col)
    assert said in found[0].message


@pytest.mark.parametrize("known, unknown", [("{ country: PE }", "{ country: Pe }"),
                                            ("{ country: US, subdivision: CA }", "{ country: US, subdivision: CAL }"),
                                            ("{ country: US, subdivision: California }",
                                             "{ country: US, subdivision: Califonia }")])
def test_what_the_package_knows_compiles_and_a_near_miss_does_not(tmp_path, known, unknown):
    result, _ = compile_yaml(tmp_path, extra=f"calendar: {known}")
    assert [d.render() for d in errors(result)] == []
    result, _ = compile_yaml(tmp_path, extra=f"calendar: {unknown}")
    assert [d.span.line for d in errors(result)] == [3]


def test_a_holiday_country_in_a_collect_file_is_checked_too(tmp_path):
    path = tmp_path / "p.collect"
    path.write_text('policy t\ntimezone America/Lima\ncalendar XX\nwindow default mon-fri 08:00-19:00\n'
                    'stage s1 when true { a at due+1d stop }\n', encoding="utf-8")
    found = errors(compile_policy(path))
    assert [(d.span.line, d.span.col) for d in found] == [(3, 10)] and "'XX'" in found[0].message


def test_simulate_reports_an_unknown_holiday_country_instead_of_crashing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    compile_yaml(tmp_path, extra="calendar: { country: PE, subdivision: ZZZ }")
    (tmp_path / "p.csv").write_text("invoice_id,customer_id,amount,due_date,email\n"
                                    "I1,C1,100,2026-03-10,a@example.com\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["simulate", "p.yaml", "--portfolio", "p.csv", "--start", "2026-03-01",
                                      "--days", "15", "-q"])
    assert not isinstance(result.exception, NotImplementedError), repr(result.exception)
    assert result.exit_code == 1 and "p.yaml:3:" in result.output


# -- `in` without its list --------------------------------------------------------------------------

@pytest.mark.parametrize("cond, token", [('customer.country in ("PE", "CO")', "("),
                                         ('customer.country in "PE"', '"PE"'),
                                         ("customer.country not in customer.language", "customer.language")])
def test_in_without_brackets_says_that_it_takes_a_list_in_brackets(tmp_path, cond, token):
    result, text = compile_yaml(tmp_path, steps=f"      - {{ id: b, at: due+2d, stop: true, if: '{cond}' }}")
    found = errors(result)
    assert [(d.code, d.span.line, d.span.col) for d in found] == [("expr-syntax",) + where(text, 15, token)]
    assert "expected '[': 'in' takes a list in brackets" in found[0].message
    assert "expected a value" not in found[0].message


# -- booleans are neither numbers nor names ---------------------------------------------------------

@pytest.mark.parametrize("extra, value", [
    ("caps: [ { channel: email, max: true, per: 1d } ]", "true"),
    ("experiments: { tone: { variants: { a: true, b: 99 } } }", "true"),
    ("calendar: { extra_holidays: [0] }", "0"),  # not a date counted in seconds from 1970
])
def test_a_boolean_or_number_where_it_does_not_belong_is_an_error_at_the_value(tmp_path, extra, value):
    result, text = compile_yaml(tmp_path, extra=extra)
    found = errors(result)
    assert result.plan is None and [(d.span.line, d.span.col) for d in found] == [where(text, 3, value)]


def test_stop_takes_only_true_or_false(tmp_path):
    result, text = compile_yaml(tmp_path, steps="      - { id: b, at: due+2d, stop: yes }")
    assert [(d.code, d.span.line, d.span.col) for d in errors(result)] == [("wrong-type",) + where(text, 15, "yes")]


@pytest.mark.parametrize("step, value", [("{ id: true, at: due+2d, stop: true }", "true,"),
                                         ("{ id: b, at: due+2d, webhook: false }", "false"),
                                         ("{ id: , at: due+2d, stop: true }", ", at")])
def test_a_name_that_yaml_read_as_no_text_is_named_in_yaml_words(tmp_path, step, value):
    result, text = compile_yaml(tmp_path, steps=f"      - {step}")
    found = errors(result)
    assert [(d.span.line, d.span.col) for d in found] == [where(text, 15, value)]
    assert "expected a name" in found[0].message and "True" not in found[0].message
    assert "None" not in found[0].message and "False" not in found[0].message


@pytest.mark.parametrize("extra, said, hint", [
    ("catch_up:", "nothing (null) is not allowed here; expected 'latest', 'all' or 'none'", None),
    ("on_cap: true", "true is not allowed here; expected 'defer' or 'skip'", None),
    ("catch_up: lates", "'lates' is not allowed here; expected 'latest', 'all' or 'none'", "did you mean 'latest'?"),
    ("compliance: pe-indecopi", "expected auto or a list of profiles, got text 'pe-indecopi'", "write [pe-indecopi]"),
    ("compliance: none", "expected auto or a list of profiles, got text 'none'", "write [] for no profile"),
    ("compliance: automatic", "expected auto or a list of profiles, got text 'automatic'", "did you mean 'auto'?"),
    ("compliance: [co-ley-2300]\ncompliance_settings: { co-ley-230: {} }",
     "compliance_settings: profile 'co-ley-230' is not selected", "did you mean 'co-ley-2300'?"),
])
def test_a_wrong_choice_says_what_yaml_read_and_suggests_only_for_a_word(tmp_path, extra, said, hint):
    """A blank `catch_up:` said 'None' is not allowed, did you mean 'none' (which means: skip late
    steps); `compliance: pe-indecopi` said expected 'auto'."""
    result, _ = compile_yaml(tmp_path, extra=extra)
    assert [(d.message, d.hint) for d in errors(result)] == [(said, hint)]


@pytest.mark.parametrize("zone, said", [("localtime", "e.g. America/Lima"),
                                        ("right/America/Lima", "did you mean 'America/Lima'?"),
                                        ("posix/America/Lima", "did you mean 'America/Lima'?")])
def test_a_time_zone_that_depends_on_the_machine_is_not_one(tmp_path, zone, said):
    """`localtime` is whatever the machine running collect is set to: a policy in it would send at other
    hours on the laptop and on the server; `right/` zones count leap seconds."""
    path = tmp_path / "p.yaml"
    path.write_text(POLICY.format(extra="", windows="", steps="").replace("America/Lima", zone), encoding="utf-8")
    assert [d.message for d in errors(compile_policy(path))] == [f"'{zone}' is not an IANA time zone ({said})"]
    from collect.engine.portfolio import CsvError, read_portfolio

    (tmp_path / "p.csv").write_text(f"invoice_id,customer_id,amount,due_date,timezone\nI1,C1,1,2026-11-20,{zone}\n",
                                    encoding="utf-8")
    with pytest.raises(CsvError) as info:
        read_portfolio(tmp_path / "p.csv", fields={}, default_timezone="UTC", default_currency="USD")
    assert [p.column for p in info.value.problems] == ["timezone"]
    result = CliRunner().invoke(app, ["report", "--db", f"sqlite:///{tmp_path / 'c.db'}", "--timezone", zone])
    assert result.exit_code == 2


@pytest.mark.parametrize("zone, meant", [("Bogota", "America/Bogota"), ("sao paulo", "America/Sao_Paulo"),
                                         ("Lima", "America/Lima"), ("Europe/Madird", "Europe/Madrid"), ("America", None)])
def test_a_time_zone_named_by_its_city_or_misspelt_gets_a_did_you_mean(tmp_path, zone, meant):
    """`timezone: Bogota` said only 'e.g. America/Lima'; difflib alone offered `Libya` for `Lima`."""
    path = tmp_path / "p.yaml"
    path.write_text(POLICY.format(extra="", windows="", steps="").replace("America/Lima", zone), encoding="utf-8")
    hint = f"did you mean '{meant}'?" if meant else "e.g. America/Lima"
    assert [d.message for d in errors(compile_policy(path))] == [f"'{zone}' is not an IANA time zone ({hint})"]
    result = CliRunner().invoke(app, ["report", "--db", f"sqlite:///{tmp_path / 'c.db'}", "--timezone", zone])
    assert result.exit_code == 2 and (f"did you mean '{meant}'?" in result.output) == bool(meant)


@pytest.mark.parametrize("code, said", [
    ("UDS", "is not an ISO 4217 currency code (did you mean 'USD'?)"),
    ("ZZZ", "is not an ISO 4217 currency code (e.g. PEN, USD)"),
    ("MXP", "is a currency no country has used since 2000 (a typo of today's code?)"),  # the peso before 1993
    # ERPs write XXX for "no currency"; XTS is ISO's test code, XAU gold: none is money an invoice is owed in
    *[(code, "is no country's currency (ISO 4217's code for no currency, a test, a precious metal or a unit of "
             "account); give the invoice's currency, e.g. PEN, USD") for code in ("XXX", "XTS", "XAU")],
])
def test_a_currency_of_the_right_shape_that_is_no_currency_is_an_error(tmp_path, code, said):
    """`currency: UDS` passed: only the shape was checked, and money printed as 'UDS 1,234.00'."""
    result, _ = compile_yaml(tmp_path, extra=f"currency: {code}")
    assert [d.message for d in errors(result)] == [f"'{code}' {said}"]
    assert compile_yaml(tmp_path, extra="currency: CLF")[0].plan is not None  # Chile's UF, a unit of account
    assert compile_yaml(tmp_path, extra="currency: XOF")[0].plan is not None  # West Africa's CFA franc


def test_send_without_channels_and_a_misspelt_holidays_say_what_is_meant(tmp_path):
    """`send: []` said a step does one of send, escalate ... (found: none); `holiday: open` expected a
    mapping, with no word of `holidays`."""
    result, _ = compile_yaml(tmp_path, windows="  holiday: open",
                             steps="      - { id: b, at: due+2d, send: [], template: m }")
    assert [(d.message, d.hint) for d in errors(result)] == [
        ("wrong type: expected a mapping (key: value), got text 'open'", "did you mean 'holidays'?"),
        ("send needs at least one channel", None)]

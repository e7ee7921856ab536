"""Portfolio files as a reviewer found them misread: a blank line before the header, a map whose decimal
and thousands separators are one character, a map giving one header to two columns, and an unknown
customer of a promise said without where it was looked for."""

import pytest
from clitools import EMAIL_POLICY, EMAIL_PORTFOLIO, cli_project, cli_simulate

from collect.engine.portfolio import CsvError, load_map, read_portfolio


POLICY, PORTFOLIO = EMAIL_POLICY, EMAIL_PORTFOLIO


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems(portfolio, **files):
    with pytest.raises(CsvError) as info:
        read_portfolio(portfolio, files.get("customers"), files.get("payments"), files.get("promises"),
                       files.get("disputes"), fields={}, default_timezone="UTC", default_currency="USD",
                       colmap=files.get("colmap"))
    return [str(p) for p in info.value.problems]


def map_problems(path):
    with pytest.raises(CsvError) as info:
        load_map(path)
    return [str(p) for p in info.value.problems]


def simulate(tmp_path, *args, portfolio=PORTFOLIO):
    return cli_simulate(tmp_path, POLICY, portfolio, "--start", "2026-03-01", "--days", "10", "-q", *args)


# -- a blank first line ------------------------------------------------------------------------------

HEADERLESS = "the first line is the header, and it names no column (remove the blank lines before the header)"


def test_a_portfolio_with_a_blank_line_before_its_header_is_an_error_not_an_empty_portfolio(tmp_path):
    out = tmp_path / "c.csv"
    result = simulate(tmp_path, "--out", str(out), portfolio="\n" + PORTFOLIO)
    assert result.exit_code == 1, result.output
    assert f"{tmp_path / 'p.csv'}:1: {HEADERLESS}" in result.output
    assert not out.exists()


@pytest.mark.parametrize("kind,text", [
    ("payments", "\ninvoice_id,amount,paid_at\nA,1000,2026-03-02\n"),
    ("promises", "\r\ninvoice_id,amount,promised_date\nA,10,2026-03-05\n"),
    ("disputes", ",,\ninvoice_id,opened_at\nA,2026-03-02\n"),  # a line of delimiters names no column either
    ("customers", "  \ncustomer_id,email\nC1,b@example.com\n"),
])
def test_every_file_with_a_blank_line_before_its_header_is_an_error_on_line_1(tmp_path, kind, text):
    portfolio = write(tmp_path, "p.csv", PORTFOLIO)
    path = write(tmp_path, f"{kind}.csv", text)
    assert problems(portfolio, **{kind: path}) == [f"{path}:1: {HEADERLESS}"]


def test_a_file_of_blank_lines_only_is_empty_as_a_file_of_no_bytes_is(tmp_path):
    portfolio = write(tmp_path, "p.csv", PORTFOLIO)
    blank, nothing = write(tmp_path, "blank.csv", "\n\n"), write(tmp_path, "nothing.csv", "")
    assert problems(portfolio, payments=blank, promises=nothing) == [
        f"{blank}:1: the file is empty (blank lines only)", f"{nothing}:1: the file is empty"]


def test_import_of_a_file_with_a_blank_line_before_its_header_imports_nothing(tmp_path, monkeypatch):
    collect = cli_project(tmp_path, monkeypatch, POLICY, PORTFOLIO)
    write(tmp_path, "pay.csv", "\ninvoice_id,amount,paid_at\nA,1000,2026-03-02\n")
    result = collect("import", "payments", "pay.csv")
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines() == [f"pay.csv:1: {HEADERLESS}", "nothing imported: 1 problem(s)"]


# -- decimal and thousands separators ---------------------------------------------------------------

def test_a_map_whose_decimal_and_thousands_are_one_character_is_refused(tmp_path):
    both = write(tmp_path, "both.yaml", "decimal: ','\nthousands: ','\n")
    assert map_problems(both) == [f"{both}:2: decimal and thousands are both ',': a number has one decimal "
                                  "separator and another thousands one (12,50 would be read as 1250)"]
    # the decimal separator is '.' unless the map says another: thousands '.' alone is the same mistake
    dot = write(tmp_path, "dot.yaml", "thousands: '.'\n")
    assert map_problems(dot) == [f"{dot}:1: thousands: '.' is also the decimal separator ('.' unless the map "
                                 "says another, e.g. decimal: ','): 12.50 would be read as 1250"]
    assert load_map(write(tmp_path, "ok.yaml", "decimal: ','\nthousands: '.'\n")).thousands == "."


def test_simulate_with_such_a_map_stops_before_reading_any_file(tmp_path):
    write(tmp_path, "map.yaml", "delimiter: ';'\ndecimal: ','\nthousands: ','\n")
    result = simulate(tmp_path, "--map", str(tmp_path / "map.yaml"), "--payments", str(tmp_path / "absent.csv"),
                      portfolio="invoice_id;customer_id;amount;due_date\nA;C1;12,50;2026-03-02\n")
    assert result.exit_code == 1, result.output
    assert f"{tmp_path / 'map.yaml'}:3: decimal and thousands are both ','" in result.output
    assert "absent.csv" not in result.output  # the map's problem first, before any file is read


# -- one header given to two columns ----------------------------------------------------------------

def test_a_map_giving_one_header_to_two_columns_is_a_map_error_naming_both(tmp_path):
    path = write(tmp_path, "map.yaml", "columns: { amount: Importe, balance: Importe, invoice_id: Factura,"
                 " number: Factura, customer_id: Factura }\n")
    assert map_problems(path) == [
        f"{path}:1: columns: 'amount' and 'balance' both name the header 'Importe': a header is read as one "
        "column; keep one of them",
        f"{path}:1: columns: 'invoice_id', 'number' and 'customer_id' all name the header 'Factura': a header "
        "is read as one column; keep one of them"]


def test_simulate_with_a_map_giving_one_header_to_two_columns_says_so_and_not_that_it_is_missing(tmp_path):
    write(tmp_path, "map.yaml", "columns: { amount: Importe, balance: Importe }\n")
    result = simulate(tmp_path, "--map", str(tmp_path / "map.yaml"),
                      portfolio="invoice_id,customer_id,Importe,due_date\nA,C1,100,2026-03-02\n")
    assert result.exit_code == 1, result.output
    assert f"{tmp_path / 'map.yaml'}:1: columns: 'amount' and 'balance' both name the header 'Importe'" \
        in result.output
    assert "required column is missing" not in result.output


# -- an unknown customer of a promise ----------------------------------------------------------------

def test_an_unknown_customer_of_a_promise_is_not_in_the_portfolio(tmp_path):
    portfolio = write(tmp_path, "p.csv", PORTFOLIO)
    promises = write(tmp_path, "promises.csv", "customer_id,amount,promised_date\nC9,10,2026-03-05\n")
    assert problems(portfolio, promises=promises) == [
        f"{promises}:2: column customer_id: unknown customer 'C9' (not in the portfolio)"]


def test_each_map_problem_is_reported_at_the_line_of_its_key_or_value(tmp_path):
    """A column map of a dozen lines: every problem says its line, not line 1 of the map."""
    path = write(tmp_path, "map.yaml", "# ERP export\n"
                                       "columns:\n"
                                       "  invoice_id: Factura\n"
                                       "  amount: Importe\n"
                                       "  balance: Importe\n"
                                       "date_fromat: '%d/%m/%Y'\n"
                                       "values:\n"
                                       "  status:\n"
                                       "    ABIERTA: open\n"
                                       "    PAGADA: 1.5\n"
                                       "decimal: ',,'\n")
    assert map_problems(path) == [
        f"{path}:6: unknown key 'date_fromat' (did you mean 'date_format'?)",
        f"{path}:5: columns: 'amount' and 'balance' both name the header 'Importe': a header is read as one "
        "column; keep one of them",
        f"{path}:11: decimal must be one character (got ',,')",
        f"{path}:10: values: status: PAGADA: the value is not text (YAML read 1.5); quote it, e.g. '1.50', or '' "
        "for an empty cell"]
    bad_header = write(tmp_path, "h.yaml", "columns:\n  invoice_id: Factura\n  amount: 5\n")
    assert map_problems(bad_header) == [f"{bad_header}:3: columns maps canonical names to the file's headers: a "
                                        "header, or a list of the headers different files give it (amount: "
                                        "[Importe, Monto])"]

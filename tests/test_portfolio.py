"""Portfolio CSV files: every bad row reported, maps for ERP exports, encodings, typed custom fields."""

import csv
import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collect.engine.portfolio import CsvError, load_map, read_portfolio

REAL = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "real" / "WA_Fn-UseC_-Accounts-Receivable.csv"
FIELDS = {"customer.risk_score": "float", "invoice.region": "str"}


def read(path, **kw):
    return read_portfolio(path, kw.pop("customers", None), kw.pop("payments", None), kw.pop("promises", None),
                          kw.pop("disputes", None), fields=FIELDS, default_timezone="America/Lima",
                          default_currency="PEN", colmap=kw.pop("colmap", None))


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems(path, **kw):
    with pytest.raises(CsvError) as info:
        read(path, **kw)
    return [str(p).split(":", 1)[1] for p in info.value.problems]


def test_every_bad_row_is_reported(tmp_path):
    path = write(tmp_path, "p.csv", "invoice_id,customer_id,amount,due_date,issue_date,status,risk_score,do_not_contact,email\n"
                 "A,c1,12;5,2026-01-01,,open,0.1,yes,a@x.pe\n"
                 "B,c1,10,2026-01-01,2026-02-01,lost,high,maybe,b@x.pe\n"
                 ",c2,,,,,,,\n")
    assert problems(path) == [
        "2: column amount: '12;5' is not a number (decimal separator '.')",
        "3: column status: unknown status 'lost' (expected open, paid, disputed, written_off)",
        "3: column due_date: due date 2026-01-01 is before the issue date 2026-02-01",
        "3: column do_not_contact: 'maybe' is not a boolean (true/false, 1/0, yes/no, y/n)",
        "3: column risk_score: 'high' is not a number (decimal separator '.')",
        "3: column email: customer c1 already has email 'a@x.pe' from an earlier row; this row says 'b@x.pe'",
        "4: column invoice_id: a value is required",
        "4: column amount: a value is required",
        "4: column due_date: a value is required",
    ]


def test_missing_columns_and_unknown_invoices_in_other_files(tmp_path):
    assert problems(write(tmp_path, "p.csv", "invoice_id,customer,amount,due_date\nA,c,1,2026-01-01\n")) == [
        "1: column customer_id: required column is missing (did you mean 'customer'?)"]
    portfolio = write(tmp_path, "q.csv", "invoice_id,customer_id,amount,due_date\nA,c,1,2026-01-01\n")
    payments = write(tmp_path, "pay.csv", "invoice_id,amount,paid_at\nZ,1,2026-01-02\nA,x,2026-01-02\n")
    assert problems(portfolio, payments=payments) == ["2: column invoice_id: unknown invoice 'Z' (not in the portfolio)",
                                                      "3: column amount: 'x' is not a number (decimal separator '.')"]


def test_typed_fields_customers_file_wins_and_extra_columns_are_kept(tmp_path):
    portfolio = write(tmp_path, "p.csv", "invoice_id,customer_id,amount,due_date,region,risk_score,customer_name,erp_ref\n"
                      "A,c1,100.50,2026-01-01,north,0.2,Old Name,R-1\n")
    customers = write(tmp_path, "c.csv", "customer_id,customer_name,timezone,optout_sms,risk_score\nc1,ACME,America/Bogota,1,0.9\n")
    book = read(portfolio, customers=customers)
    inv, cust = book.invoices["A"], book.customers["c1"]
    assert (inv.amount, inv.balance, inv.currency, inv.attrs) == (Decimal("100.50"), Decimal("100.50"), "PEN",
                                                                  {"region": "north", "erp_ref": "R-1"})
    assert (cust.name, cust.timezone, cust.optouts, cust.attrs["risk_score"]) == ("ACME", "America/Bogota",
                                                                                  frozenset({"sms"}), 0.9)


def test_erp_export_bom_crlf_semicolons_and_decimal_commas(tmp_path):
    path = tmp_path / "erp.csv"
    path.write_bytes("\ufeffFactura;RUC;Importe;Vencimiento\r\nF-1;2010;1.234,50;15/11/2026\r\n".encode("utf-8"))
    cmap = load_map(write(tmp_path, "m.yaml", "columns: { invoice_id: Factura, customer_id: RUC, amount: Importe, "
                                              "due_date: Vencimiento }\ndate_format: '%d/%m/%Y'\ndecimal: ','\nthousands: '.'\n"))
    (inv,) = read(path, colmap=cmap).invoices.values()
    assert (inv.id, inv.amount, inv.due_date) == ("F-1", Decimal("1234.50"), dt.date(2026, 11, 15))
    with pytest.raises(CsvError, match="unknown key 'colums'"):
        load_map(write(tmp_path, "bad.yaml", "colums: {}\n"))


def test_the_real_ibm_sample(tmp_path):
    if not REAL.exists():
        pytest.skip(f"real data not present at {REAL}")
    cmap = load_map(write(tmp_path, "m.yaml", "columns: { invoice_id: invoiceNumber, customer_id: customerID, "
                          "amount: InvoiceAmount, due_date: DueDate, issue_date: InvoiceDate, "
                          "paid_at: SettledDate }\ndate_format: '%m/%d/%Y'\n"))
    book = read(REAL, payments=REAL, colmap=cmap)
    assert len(book.invoices) == 2466 and len(book.customers) == 100
    first = book.invoices["0000611365"]
    assert (first.amount, first.due_date, first.issue_date) == (Decimal("55.94"), dt.date(2013, 2, 1), dt.date(2013, 1, 2))
    assert all(p.amount == book.invoices[p.invoice_id].amount for p in book.payments)
    assert first.attrs["countryCode"] == "391"  # numeric codes, not ISO 3166: kept as text, not a country


ROW = st.fixed_dictionaries({
    "invoice_id": st.from_regex(r"[A-Z]{1,3}-[0-9]{1,6}", fullmatch=True),
    "amount": st.decimals(min_value=0, max_value=10**7, places=2, allow_nan=False),
    "due_date": st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2040, 1, 1)),
    "customer_name": st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), max_size=20).map(str.strip),
})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(ROW, min_size=1, max_size=20, unique_by=lambda r: r["invoice_id"]))
def test_random_valid_rows_round_trip(tmp_path, rows):
    path = tmp_path / "p.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["invoice_id", "customer_id", "amount", "due_date", "customer_name"])
        for i, r in enumerate(rows):
            writer.writerow([r["invoice_id"], f"c{i}", r["amount"], r["due_date"].isoformat(), r["customer_name"]])
    book = read(path)
    for i, r in enumerate(rows):
        inv = book.invoices[r["invoice_id"]]
        assert (inv.amount, inv.due_date) == (r["amount"], r["due_date"])
        assert book.customers[f"c{i}"].name == (r["customer_name"] or None)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=300))
def test_garbage_only_ever_raises_csv_errors(tmp_path, text):
    path = tmp_path / "g.csv"
    path.write_text("invoice_id,customer_id,amount,due_date\n" + text, encoding="utf-8", errors="replace")
    try:
        read(path)
    except CsvError:
        pass


def test_a_time_with_a_utc_offset_keeps_its_instant(tmp_path):
    portfolio = write(tmp_path, "p.csv", "invoice_id,customer_id,amount,due_date,timezone\nA,c1,100,2026-01-01,Asia/Tokyo\n")
    payments = write(tmp_path, "pay.csv", "payment_id,invoice_id,amount,paid_at\n"
                     "P1,A,10,2026-01-05T20:00:00+00:00\nP2,A,10,2026-01-05T20:00:00\n")
    aware, naive = read(portfolio, payments=payments).payments
    assert aware.paid_at == dt.datetime(2026, 1, 5, 20, tzinfo=dt.timezone.utc)
    assert naive.paid_at == dt.datetime(2026, 1, 5, 20) and naive.paid_at.tzinfo is None  # the customer's zone, later


def test_a_bad_map_delimiter_or_date_format_is_a_map_error(tmp_path):
    path = write(tmp_path, "m.yaml", "delimiter: ';;'\ndate_format: 5\n")
    with pytest.raises(CsvError) as info:
        load_map(path)
    assert [str(p) for p in info.value.problems] == [
        f"{path}:1: delimiter must be one character, not a quote or a line break (got ';;')",
        f"{path}:2: date_format must be a strptime format text such as '%d/%m/%Y' (got 5)"]  # each at its line


def test_a_line_break_in_a_quoted_cell_is_kept_and_rows_are_numbered_by_their_first_line(tmp_path):
    path = write(tmp_path, "p.csv", 'invoice_id,customer_id,amount,due_date,customer_name\n'
                 'A,c1,1,2026-01-01,"Acme\nS.A.C."\nB,c2,x,2026-01-01,Beta\n')
    assert problems(path) == ["4: column amount: 'x' is not a number (decimal separator '.')"]
    path.write_text(path.read_text().replace(",x,", ",2,"))
    assert read(path).customers["c1"].name == "Acme\nS.A.C."


def test_an_id_with_a_semicolon_is_a_row_error(tmp_path):
    portfolio = write(tmp_path, "p.csv", "invoice_id,customer_id,amount,due_date\nF1;A,c1,1,2026-01-01\nF2,c;2,1,2026-01-01\n")
    customers = write(tmp_path, "c.csv", "customer_id,email\nc;3,a@x.pe\n")
    assert problems(portfolio, customers=customers) == [
        "2: column invoice_id: 'F1;A': an id cannot contain ';' (contacts list invoice ids ';'-joined)",
        "3: column customer_id: 'c;2': an id cannot contain ';' (contacts list invoice ids ';'-joined)",
        "2: column customer_id: 'c;3': an id cannot contain ';' (contacts list invoice ids ';'-joined)"]


def test_an_id_with_a_control_character_is_a_row_error_a_name_with_a_line_break_is_not(tmp_path):
    """A quoted cell may hold a line break: fine in a name, but an id holding one (or a tab, or another
    control character) is a broken export, and would split every table row and log line it is shown in.
    A non-breaking space, as spreadsheets write, is not a control character."""
    portfolio = write(tmp_path, "p.csv", 'invoice_id,customer_id,amount,due_date,customer_name\n'
                      '"F1\nA",c1,1,2026-01-01,"Acme\nS.A.C."\nF2,c\t2,1,2026-01-01,B\nF\u00a03,c\x853,1,2026-01-01,C\n')
    payments = write(tmp_path, "pay.csv", "invoice_id,amount,paid_at,payment_id\nF\u00a03,1,2026-01-02,P\x7f1\n")
    assert problems(portfolio, payments=payments) == [
        "2: column invoice_id: 'F1\\nA': an id cannot contain a line break, a tab or another control character",
        "5: column customer_id: 'c\\t2': an id cannot contain a line break, a tab or another control character",
        "6: column customer_id: 'c\\x853': an id cannot contain a line break, a tab or another control character",
        "2: column payment_id: 'P\\x7f1': an id cannot contain a line break, a tab or another control character"]


def test_a_promise_or_dispute_repeated_in_a_file_counts_once(tmp_path):
    portfolio = write(tmp_path, "p.csv", "invoice_id,customer_id,amount,due_date\nA,c1,100,2026-01-01\n")
    promises = write(tmp_path, "prom.csv", "invoice_id,amount,promised_date\nA,100,2026-01-10\nA,100,2026-01-10\n")
    disputes = write(tmp_path, "disp.csv", "invoice_id,opened_at\nA,2026-01-02\nA,2026-01-02\n")
    book = read(portfolio, promises=promises, disputes=disputes)
    assert (len(book.promises), len(book.disputes)) == (1, 1)
    disputes.write_text("invoice_id,opened_at,resolved_at\nA,2026-01-02,\nA,2026-01-02,2026-01-05\n")
    assert problems(portfolio, disputes=disputes) == [
        "3: column opened_at: the dispute of invoice A opened at 2026-01-02 is on row 2 already, with other values"]


def test_a_currency_that_is_not_an_iso_code_is_a_row_error(tmp_path):
    portfolio = write(tmp_path, "p.csv", "invoice_id,customer_id,amount,due_date,currency\nF1,c1,1,2026-01-01,PEN\n"
                                         "F2,c1,1,2026-01-01,soles\nF3,c1,1,2026-01-01,usd\n"
                                         "F4,c1,1,2026-01-01,UDS\nF5,c1,1,2026-01-01,ZZZ\n")
    # UDS and ZZZ have a code's shape: they passed, and a typo split every report into two currencies
    assert problems(portfolio) == ["3: column currency: 'soles' is not an ISO 4217 currency code (e.g. PEN, USD)",
                                   "4: column currency: 'usd' is not an ISO 4217 currency code (did you mean 'USD'?)",
                                   "5: column currency: 'UDS' is not an ISO 4217 currency code (did you mean 'USD'?)",
                                   "6: column currency: 'ZZZ' is not an ISO 4217 currency code (e.g. PEN, USD)"]


def test_one_payment_id_with_two_different_payments_in_a_file_is_a_row_error(tmp_path):
    portfolio = write(tmp_path, "p.csv", "invoice_id,customer_id,amount,due_date\nA,c1,100,2026-01-01\n")
    payments = write(tmp_path, "pay.csv", "payment_id,invoice_id,amount,paid_at\nP1,A,40,2026-01-05\n"
                                          "P1,A,40,2026-01-05\nP1,A,60,2026-01-06\n")
    assert problems(portfolio, payments=payments) == [
        "4: column payment_id: payment 'P1' is already in this file with another invoice, amount or date"]


def test_a_column_map_with_an_alias_bomb_is_refused_at_once(tmp_path):
    """Side files get the policy's YAML limits: nine levels of nine aliases would expand to 387 million
    values (and the error message used to print them)."""
    lines = ['l0: &l0 "lol"'] + [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 10)]
    path = write(tmp_path, "map.yaml", "\n".join(lines) + "\ndelimiter: *l9\n")
    from collect.engine.portfolio import load_map

    with pytest.raises(CsvError) as caught:
        load_map(path)
    (problem,) = caught.value.problems
    assert "expand" in str(problem) and len(str(problem)) < 400


def test_an_erp_export_with_its_own_date_and_date_time_formats(tmp_path):
    """Due dates as dd/mm/yyyy, payment times as dd/mm/yyyy HH:MM: one map reads both (`datetime_format`
    for the date-time columns); a date-time column also takes a plain date."""
    import datetime as dt

    cmap = load_map(write(tmp_path, "map.yaml", "date_format: '%d/%m/%Y'\ndatetime_format: '%d/%m/%Y %H:%M'\n"))
    portfolio = write(tmp_path, "p.csv", "invoice_id,customer_id,amount,due_date\nA,c1,100,05/01/2026\n")
    payments = write(tmp_path, "pay.csv", "payment_id,invoice_id,amount,paid_at\nP1,A,40,07/01/2026 14:30\n"
                                          "P2,A,10,08/01/2026\n")
    book = read(portfolio, payments=payments, colmap=cmap)
    assert book.invoices["A"].due_date == dt.date(2026, 1, 5)
    assert [p.paid_at for p in book.payments] == [dt.datetime(2026, 1, 7, 14, 30), dt.date(2026, 1, 8)]
    bad = write(tmp_path, "bad.csv", "payment_id,invoice_id,amount,paid_at\nP3,A,1,2026-01-09 10:00\n")
    assert problems(portfolio, payments=bad, colmap=cmap) == [
        "2: column paid_at: '2026-01-09 10:00' is not a date (expected %d/%m/%Y %H:%M or %d/%m/%Y)"]


def test_a_date_time_format_with_a_utc_offset_reads_the_offset(tmp_path):
    """`%z` was refused at the map: the format was tried on a time without a zone, which %z writes as ''."""
    import datetime as dt

    cmap = load_map(write(tmp_path, "map.yaml", "datetime_format: '%Y-%m-%d %H:%M:%S %z'\n"))
    portfolio = write(tmp_path, "p.csv", "invoice_id,customer_id,amount,due_date\nA,c1,100,2026-01-05\n")
    payments = write(tmp_path, "pay.csv", "payment_id,invoice_id,amount,paid_at\nP1,A,40,2026-01-07 14:30:00 -0500\n")
    (payment,) = read(portfolio, payments=payments, colmap=cmap).payments
    assert payment.paid_at == dt.datetime(2026, 1, 7, 19, 30, tzinfo=dt.timezone.utc)


def test_a_bad_customer_cell_repeated_on_the_customers_next_invoice_rows_is_reported_on_each(tmp_path):
    """A customer's cells repeat on each of its invoice rows, and identical ones are not parsed again; a
    bad one is reported on every row that has it, with that row's number (SPEC 7: all bad rows)."""
    path = write(tmp_path, "p.csv", "invoice_id,customer_id,amount,due_date,consent_email,risk_score,email\n"
                 "A,c1,1,2026-01-01,SI,high,a@x.pe\n"
                 "B,c1,1,2026-01-01,SI,high,a@x.pe\n"
                 "C,c2,1,2026-01-01,yes,0.5,c@x.pe\n"
                 "D,c2,1,2026-01-01,yes,0.5,d@x.pe\n"
                 "E,c2,1,2026-01-01,yes,0.5,d@x.pe\n"
                 "F,c2,1,2026-01-01,yes,0.5,c@x.pe\n")
    consent = "column consent_email: 'SI' is not a boolean (true/false, 1/0, yes/no, y/n)"
    risk = "column risk_score: 'high' is not a number (decimal separator '.')"
    clash = "column email: customer c2 already has email 'c@x.pe' from an earlier row; this row says 'd@x.pe'"
    assert problems(path) == [f"2: {consent}", f"2: {risk}", f"3: {consent}", f"3: {risk}", f"5: {clash}",
                              f"6: {clash}"]


def test_a_country_must_be_an_iso_code_since_compliance_auto_and_holidays_go_by_it(tmp_path):
    """`Peru` or the numeric `604` silently matched no compliance profile under `compliance: auto`."""
    path = write(tmp_path, "p.csv", "invoice_id,customer_id,amount,due_date,country\n"
                                    "F1,C1,10,2026-12-01,pe\nF2,C2,10,2026-12-01,Peru\nF3,C3,10,2026-12-01,604\n")
    with pytest.raises(CsvError) as error:
        read(path)
    assert [str(p) for p in error.value.problems] == [
        f"{path}:3: column country: 'Peru' is not an ISO 3166 country code (two letters, e.g. PE)",
        f"{path}:4: column country: '604' is not an ISO 3166 country code (two letters, e.g. PE)"]
    book = read(write(tmp_path, "q.csv", "invoice_id,customer_id,amount,due_date,country\nF1,C1,10,2026-12-01,pe\n"))
    assert book.customers["C1"].country == "PE"


def test_every_iso_country_code_is_a_country_and_groupings_are_not(tmp_path):
    rows = "".join(f"F{n},C{n},10,2026-12-01,{code}\n" for n, code in enumerate(["UM", "PN", "AQ", "GS", "pe"]))
    book = read(write(tmp_path, "p.csv", "invoice_id,customer_id,amount,due_date,country\n" + rows))
    assert [c.country for c in book.customers.values()] == ["UM", "PN", "AQ", "GS", "PE"]
    for code in ("EU", "UN", "ZZ"):
        with pytest.raises(CsvError, match="not an ISO 3166 country code"):
            read(write(tmp_path, "q.csv", f"invoice_id,customer_id,amount,due_date,country\nF1,C1,10,2026-12-01,{code}\n"))


def test_a_map_translates_an_erp_s_own_values_before_they_are_read(tmp_path):
    """An ERP writes its statuses, countries and flags its own way; `values:` says what each means, per
    column (our name), before typing: a cell the table lacks is read as it is, so a wrong one is still a
    row error that names the file's value."""
    cmap = load_map(write(tmp_path, "map.yaml", """\
columns: {status: Estado, country: Pais}
values:
  status: {ABIERTA: open, PAGADA: paid, ANULADA: written_off}
  country: {'604': PE, ' Perú ': PE}
  do_not_contact: {S: 'yes', N: 'no'}
  region: {N: north}
  currency: {'': PEN, S/: PEN}
"""))
    path = write(tmp_path, "p.csv", "invoice_id,customer_id,amount,due_date,Estado,Pais,do_not_contact,region,currency\n"
                 "A,c1,10,2026-01-01,ABIERTA,604,N,N,S/\n"
                 "B,c2,10,2026-01-01,PAGADA,Perú,S,south,\n"
                 "C,c3,10,2026-01-01,ANULADA,CO,,N,USD\n")
    book = read(path, colmap=cmap)
    assert [(i.status, i.currency, i.attrs["region"]) for i in book.invoices.values()] == [
        ("open", "PEN", "north"), ("paid", "PEN", "south"), ("written_off", "USD", "north")]
    assert [(c.country, c.do_not_contact) for c in book.customers.values()] == [("PE", False), ("PE", True), ("CO", None)]
    bad = write(tmp_path, "bad.csv", "invoice_id,customer_id,amount,due_date,Estado,region\nA,c1,10,2026-01-01,VENCIDA,N\n")
    assert problems(bad, colmap=cmap) == ["2: column Estado: unknown status 'VENCIDA' (expected open, paid, disputed, "
                                          "written_off)"]


@pytest.mark.parametrize("text, message", [
    ("values: {country: {Perú: 604}}", "values: country: Perú: the value is not text (YAML read 604); quote it"),
    ("values: {region: {N: [north]}}", "values: region: N: the value is not text (YAML read ['north'])"),
    ("values: {status: ABIERTA}", "values: status: a mapping of the file's values to ours"),
    ("values: [status]", "values maps column names to the file's values and ours"),
])
def test_a_value_table_that_is_not_text_to_text_is_a_map_error(tmp_path, text, message):
    with pytest.raises(CsvError) as info:
        load_map(write(tmp_path, "map.yaml", text + "\n"))
    assert message in str(info.value) and str(info.value).startswith(f"{tmp_path / 'map.yaml'}:1: ")


def test_a_value_table_for_a_column_no_file_has_is_an_error_unless_another_file_may_have_it(tmp_path):
    """A misspelt column would translate nothing, unnoticed; a known column of another file (a map shared
    between the invoices and payments exports) is fine."""
    portfolio = write(tmp_path, "p.csv", "invoice_id,customer_id,amount,due_date,Vendedor\nA,c1,10,2026-01-01,R\n")
    typo = load_map(write(tmp_path, "typo.yaml", "values: {stauts: {ABIERTA: open}}\n"))
    assert problems(portfolio, colmap=typo) == ["1: values: column 'stauts' is in none of the files read "
                                                "(did you mean 'status'?)"]
    shared = load_map(write(tmp_path, "shared.yaml", "values: {method: {TR: transfer}, Vendedor: {R: Rosa}}\n"))
    assert read(portfolio, colmap=shared).invoices["A"].attrs == {"Vendedor": "Rosa"}


def test_a_date_or_number_no_calendar_or_sum_can_hold_is_a_row_error(tmp_path):
    """9999-12-31 plus a day overflows, and 1E+999999999 is a finite Decimal that no sum survives: an
    import that took them in a standard column would crash every later tick. A custom field may hold an
    ERP's open-ended 9999-12-31 or an 18-digit account number; only a number past Decimal's 28 digits is
    refused there."""
    fields = {**FIELDS, "invoice.contract_end": "date", "customer.clabe": "int"}
    path = write(tmp_path, "p.csv", "invoice_id,customer_id,amount,due_date,issue_date,risk_score,contract_end,clabe\n"
                 "A,c1,100,9999-12-31,2026-01-01,0.5,9999-12-31,012180001234567897\n"
                 "B,c2,1E+999999999,2026-01-01,0001-01-01,1E+30,,\n"
                 "C,c3,999999999999999.99,2199-12-31,1900-01-01,0.5,0001-01-01,\n")
    with pytest.raises(CsvError) as info:
        read_portfolio(path, fields=fields, default_timezone="America/Lima", default_currency="PEN")
    assert [str(p).split(":", 1)[1] for p in info.value.problems] == [
        "2: column due_date: '9999-12-31' is out of range (years 1900 to 2199)",
        "3: column amount: '1E+999999999' is not a number (decimal separator '.'; scientific notation: write "
        "the digits out (a spreadsheet's 1.23457E+11 lost some))",
        "3: column issue_date: '0001-01-01' is out of range (years 1900 to 2199)",
        "3: column risk_score: '1E+30' is not a number (decimal separator '.'; scientific notation: write the "
        "digits out (a spreadsheet's 1.23457E+11 lost some))"]
    fine = write(tmp_path, "ok.csv", "invoice_id,customer_id,amount,due_date,contract_end,clabe\n"
                 "A,c1,100,2026-12-31,9999-12-31,012180001234567897\n")
    book = read_portfolio(fine, fields=fields, default_timezone="America/Lima", default_currency="PEN")
    assert book.invoices["A"].attrs["contract_end"] == dt.date(9999, 12, 31)
    assert book.customers["c1"].attrs["clabe"] == 12180001234567897


def test_a_thousands_separator_after_the_decimal_one_is_an_error_not_a_thousandfold_error(tmp_path):
    """With decimal ',' and thousands '.', a US-written 1,200.50 used to read as 1.2005."""
    from collect.engine.portfolio import load_map

    euro = load_map(write(tmp_path, "eu.yaml", "decimal: ','\nthousands: '.'\n"))
    us = load_map(write(tmp_path, "us.yaml", "thousands: ','\n"))
    path = write(tmp_path, "p.csv", "invoice_id;customer_id;amount;due_date\nA;c1;1,200.50;2026-12-01\n"
                                    "B;c1;1.200,50;2026-12-01\n")
    assert [p.split(" (")[0] for p in problems(path, colmap=euro)] == ["2: column amount: '1,200.50' is not a number"]
    assert [p.split(" (")[0] for p in problems(path, colmap=us)] == ["3: column amount: '1.200,50' is not a number"]
    indian = write(tmp_path, "in.csv", "invoice_id;customer_id;amount;due_date\nA;c1;12,34,567.00;2026-12-01\n")
    assert read(indian, colmap=us).invoices["A"].amount == Decimal("1234567.00")


def test_a_thousands_separator_that_groups_no_thousands_is_an_error_not_a_hundredfold_amount(tmp_path):
    """Under thousands '.', 55.94 read as 5594: a separator is one only between groups of three digits
    (or the Indian 12,34,567)."""
    from collect.engine.portfolio import load_map

    euro = load_map(write(tmp_path, "eu.yaml", "decimal: ','\nthousands: '.'\n"))
    us = load_map(write(tmp_path, "us.yaml", "thousands: ','\n"))
    slips = write(tmp_path, "p.csv", "invoice_id;customer_id;amount;due_date\nA;c1;55.94;2026-12-01\n"
                                     "B;c1;1.2.3,5;2026-12-01\nC;c1;12.34,5;2026-12-01\nD;c1;1234.567,5;2026-12-01\n"
                                     "E;c1;0.500;2026-12-01\n")
    said = ("is not a number (decimal separator ',', thousands separator '.' between groups of three digits)")
    assert problems(slips, colmap=euro) == [f"{n}: column amount: '{v}' {said}" for n, v in (
        (2, "55.94"), (3, "1.2.3,5"), (4, "12.34,5"), (5, "1234.567,5"), (6, "0.500"))]
    comma = write(tmp_path, "c.csv", 'invoice_id,customer_id,amount,due_date\nA,c1,"12,5",2026-12-01\n')
    assert problems(comma, colmap=us) == ["2: column amount: '12,5' is not a number (decimal separator '.', thousands "
                                          "separator ',' between groups of three digits; use --map decimal: ',')"]
    fine = write(tmp_path, "f.csv", "invoice_id;customer_id;amount;due_date\nA;c1;1.234.567,5;2026-12-01\n"
                                    "B;c1;1.200;2026-12-01\nC;c1;55,94;2026-12-01\n")
    book = read(fine, colmap=euro)
    assert [book.invoices[i].amount for i in "ABC"] == [Decimal("1234567.5"), Decimal(1200), Decimal("55.94")]


def test_a_promise_about_another_customer_s_invoice_is_a_row_error(tmp_path):
    portfolio = write(tmp_path, "p.csv", "invoice_id,customer_id,amount,due_date\nINV-1001,CUST-1,10,2026-01-01\n"
                                         "INV-2001,CUST-2,10,2026-01-01\n")
    promises = write(tmp_path, "pr.csv", "invoice_id,customer_id,amount,promised_date\n"
                                         "INV-1001,CUST-1,5,2026-01-10\nINV-1001,,5,2026-01-11\n"
                                         "INV-1001,CUST-2,5,2026-01-12\n")
    assert problems(portfolio, promises=promises) == [
        "4: column customer_id: invoice 'INV-1001' belongs to customer 'CUST-1', not 'CUST-2'"]


def test_a_value_table_keyed_by_the_file_s_header_says_to_key_it_by_our_name_before_the_rows(tmp_path):
    """`values:` is keyed by our names; a header that `columns:` renames is no name (whether or not the
    file read has it), and the map's mistake comes before the row errors it causes."""
    cmap = load_map(write(tmp_path, "map.yaml", "columns: {status: Estado}\nvalues: {Estado: {ABIERTA: open}}\n"))
    path = write(tmp_path, "p.csv", "invoice_id,customer_id,amount,due_date,Estado\nA,c1,10,2026-01-01,ABIERTA\n")
    assert problems(path, colmap=cmap) == [
        "2: values: 'Estado' is the file's header of column 'status': key values by our name (values: {status: ...})",
        "2: column Estado: unknown status 'ABIERTA' (expected open, paid, disputed, written_off)"]
    other = write(tmp_path, "q.csv", "invoice_id,customer_id,amount,due_date\nA,c1,10,2026-01-01\n")
    assert problems(other, colmap=cmap) == [
        "2: values: 'Estado' is the file's header of column 'status': key values by our name (values: {status: ...})"]
    # an unmapped header is our name: its values are keyed by it
    custom = load_map(write(tmp_path, "ok.yaml", "columns: {status: Estado}\nvalues: {status: {ABIERTA: open}, "
                                                  "Vendedor: {R: Rosa}}\n"))
    both = write(tmp_path, "r.csv", "invoice_id,customer_id,amount,due_date,Estado,Vendedor\n"
                                    "A,c1,10,2026-01-01,ABIERTA,R\n")
    invoice = read(both, colmap=custom).invoices["A"]
    assert (invoice.status, invoice.attrs) == ("open", {"Vendedor": "Rosa"})


def test_a_customers_file_saying_false_does_not_lift_an_opt_out_of_the_invoice_rows(tmp_path):
    """`false` or empty changes nothing (docs/files.md): the customers file wins where both give a value,
    but not to lift an opt-out, which `collect import` keeps too (the dry run contacted the customer by
    SMS where production did not)."""
    portfolio = write(tmp_path, "p.csv", "invoice_id,customer_id,amount,due_date,optout_sms,optout_email\n"
                                         "A,c1,100,2026-12-01,true,\n")
    customers = write(tmp_path, "c.csv", "customer_id,optout_sms,optout_email\nc1,false,true\n")
    assert read(portfolio, customers=customers).customers["c1"].optouts == frozenset({"sms", "email"})
    rows = write(tmp_path, "r.csv", "invoice_id,customer_id,amount,due_date,optout_sms\n"
                                    "A,c1,100,2026-12-01,false\nB,c1,100,2026-12-01,true\n")  # no conflict either way
    assert read(rows).customers["c1"].optouts == frozenset({"sms"})


def test_amounts_are_read_to_the_store_s_six_decimal_places(tmp_path):
    """The store rounds an amount to 6 places: a payment of 99.9949999 on 100 pays it there. A simulation
    read it as written and left 0.0050001 open, contacting a customer `collect run` would not."""
    portfolio = write(tmp_path, "p.csv", "invoice_id,customer_id,amount,balance,due_date\n"
                                         "A,c1,100.0000004,100.0000005,2026-12-01\n")
    payments = write(tmp_path, "pay.csv", "invoice_id,amount,paid_at\nA,99.9949999,2026-11-17\n")
    book = read(portfolio, payments=payments)
    assert (book.invoices["A"].amount, book.invoices["A"].balance, book.payments[0].amount) == (
        Decimal("100.000000"), Decimal("100.000000"), Decimal("99.995000"))


def test_a_column_without_a_header_amid_named_ones_is_an_error_and_a_trailing_one_is_not(tmp_path):
    """A column with an empty header between two named ones lost its cells without a word; only an export's
    trailing delimiter names nothing on purpose."""
    middle = write(tmp_path, "m.csv", "invoice_id,customer_id,,amount,due_date\nF1,c1,x,1,2026-01-01\n")
    assert problems(middle) == ["1: column 3 has no header (after 'customer_id'): name it, or remove the column "
                                "(its cells would be lost)"]
    trailing = write(tmp_path, "t.csv", "invoice_id,customer_id,amount,due_date,,\nF1,c1,1,2026-01-01,,\n")
    assert list(read(trailing).invoices) == ["F1"]


def test_an_extra_column_one_slip_from_a_known_one_is_refused_not_kept_as_an_attribute(tmp_path):
    """`do_not_contatc` was kept as a text attribute, and the customer contacted; `statuss: paid` left the
    invoice open and chased. A known name with a number (`phone2`), or one the file also has, is kept."""
    portfolio = write(tmp_path, "p.csv", "invoice_id,customer_id,amount,due_date,statuss,phone2\n"
                                         "A,c1,100,2026-01-05,paid,+51987654321\n")
    customers = write(tmp_path, "c.csv", "customer_id,do_not_contatc,optout_sm\nc1,true,true\nc2,false,false\n")
    said = "not a column collect knows (did you mean '{0}'?); a column of your own must not be named so close " \
           "to '{0}': rename it, or map it to '{0}' with --map"
    assert problems(portfolio, customers=customers) == [
        f"1: column statuss: {said.format('status')}",
        f"1: column do_not_contatc: {said.format('do_not_contact')}",
        f"1: column optout_sm: {said.format('optout_sms')}"]
    kept = write(tmp_path, "k.csv", "invoice_id,customer_id,amount,due_date,status,statuss,phone2,county\n"
                                    "A,c1,100,2026-01-05,open,x,+51987654321,Kings\n")
    # `county` is one letter from `country`, but a US county is a column of its own: only the columns that
    # decide whether a customer is contacted or an invoice chased are guarded
    assert read(kept).invoices["A"].attrs == {"statuss": "x", "phone2": "+51987654321", "county": "Kings"}

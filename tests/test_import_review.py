"""`collect import` and the CSV reader, found by review of daily-export scenarios: a value holding the
delimiter without quotes, a header with a `, ` in a `;` file, and a store locked past its busy timeout."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from test_import_messages import cli  # noqa: F401 (fixture)

from collect.engine import store as s
from collect.engine.portfolio import CsvError, read_portfolio


def test_a_row_with_more_cells_than_the_header_is_an_error_not_a_shifted_amount(cli):
    """`1,200.50` unquoted in a comma file was read as an amount of 1 (the `200.50` cell dropped), and
    `Acme, Inc.` as the name `Acme` with the email `Inc.`."""
    result = cli("invoices", "inv.csv", "invoice_id,customer_id,due_date,amount\nI1,C1,2026-12-01,1,200.50\n"
                                        "I2,C1,2026-12-01,300,\n")  # a trailing empty cell is no value
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == ("inv.csv:2: 5 cells but the header names 4 columns: is a value "
                                             "holding the delimiter ',' without quotes (write \"1,200.50\")?")
    with s.connect(cli.url).connect() as conn:
        assert conn.execute(select(s.invoices)).all() == []  # all or nothing


def test_simulate_reads_such_a_row_as_an_error_too(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("invoice_id,customer_id,amount,due_date,customer_name,email\n"
                    "I1,C1,100,2026-12-01,Acme, Inc.,billing@acme.example\n", encoding="utf-8")
    with pytest.raises(CsvError) as info:
        read_portfolio(path, fields={}, default_timezone="UTC", default_currency="USD")
    assert [p.row for p in info.value.problems] == [2] and "7 cells but the header names 6" in str(info.value)


def test_a_semicolon_file_whose_header_has_a_comma_in_a_name_is_read_with_semicolons(cli):
    result = cli("invoices", "semi.csv", "invoice_id;customer_id;amount;due_date;Importe, S/\nI1;C1;100;2026-12-01;x\n")
    assert result.exit_code == 0, result.output
    with s.connect(cli.url).connect() as conn:
        assert conn.execute(select(s.invoices.c.id, s.invoices.c.amount)).one() == ("I1", 100)


def test_a_store_locked_past_its_busy_timeout_is_exit_3_and_one_line(cli, monkeypatch):
    """Not a traceback and exit 1, which cron would take for a bad file."""
    import sqlite3

    from sqlalchemy.exc import OperationalError

    import collect.engine.storeio as storeio

    def locked(*args, **kwargs):
        raise OperationalError("INSERT INTO invoices ...", {}, sqlite3.OperationalError("database is locked"))

    monkeypatch.setattr(storeio, "import_file", locked)
    result = cli("invoices", "inv.csv", "invoice_id,customer_id,amount,due_date\nI1,C1,100,2026-12-01\n")
    assert result.exit_code == 3
    assert result.stderr.splitlines() == [
        "error: the store failed during the import, nothing imported: database is locked"]


def test_a_dispute_and_a_promise_read_in_another_zone_later_are_the_same_ones(cli):
    """The customer's zone became known after the first import (here --timezone; a customers file with
    `timezone` does the same): the resolved dispute opened a second one, still open, and the promise
    was stored twice."""
    assert cli("invoices", "inv.csv", "invoice_id,customer_id,amount,due_date\nI1,C1,100,2026-11-20\n",
               "--timezone", "UTC").exit_code == 0
    assert cli("disputes", "d.csv", "invoice_id,opened_at,reason\nI1,2026-11-22,wrong amount\n",
               "--timezone", "UTC").exit_code == 0
    assert cli("promises", "p.csv", "invoice_id,amount,promised_date\nI1,100,2026-12-01\n",
               "--timezone", "UTC").exit_code == 0
    resolved = cli("disputes", "d2.csv", "invoice_id,opened_at,reason,resolved_at\nI1,2026-11-22,wrong amount,2026-11-25\n")
    again = cli("promises", "p.csv")  # the fixture's --timezone America/Lima
    assert "(0 new, 1 updated)" in resolved.output and "(1 already stored)" in again.output
    with s.connect(cli.url).connect() as conn:
        disputes = conn.execute(select(s.disputes.c.resolved_at)).all()
        assert len(disputes) == 1 and disputes[0].resolved_at is not None
        assert conn.execute(select(s.promises)).all().__len__() == 1


def test_a_consent_file_records_no_consent_for_a_customer_without_a_record_whatever_the_order(cli):
    """docs/files.md, Consent: empty cells are 'not agreed' for a customer with no consent on record, as
    `collect simulate` reads them. Imported after the invoices, the customer kept no record at all, and
    `collect run` sent what simulate said the law blocks."""
    assert cli("invoices", "inv.csv", "invoice_id,customer_id,amount,due_date,email\nI1,C1,100,2026-11-20,a@x.pe\n"
               "I2,C2,100,2026-11-20,b@x.pe\n").exit_code == 0
    assert cli("customers", "c.csv", "customer_id,consent_email,consent_sms\nC1,,\nC2,true,\n").exit_code == 0
    with s.connect(cli.url).connect() as conn:
        assert dict(conn.execute(select(s.customers.c.id, s.customers.c.consents)).all()) == {"C1": [], "C2": ["email"]}
    assert cli("customers", "c2.csv", "customer_id,consent_sms\nC1,true\n").exit_code == 0  # a later answer adds
    with s.connect(cli.url).connect() as conn:
        assert conn.execute(select(s.customers.c.consents).where(s.customers.c.id == "C1")).scalar() == ["sms"]


def test_a_payment_id_stored_for_another_payment_is_an_error_not_a_payment_lost(cli):
    assert cli("invoices", "inv.csv", "invoice_id,customer_id,amount,due_date\nI1,C1,100,2026-11-20\n"
               "I2,C1,500,2026-11-20\n").exit_code == 0
    assert cli("payments", "p1.csv", "payment_id,invoice_id,amount,paid_at\nOP-1,I1,100,2026-11-21\n").exit_code == 0
    assert "(1 already stored)" in cli("payments", "p1.csv").output  # the same payment again: ignored
    result = cli("payments", "p2.csv", "payment_id,invoice_id,amount,paid_at\nOP-1,I2,500,2026-11-22\n")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == ("p2.csv:2: column payment_id: payment 'OP-1' is stored already, for "
                                             "invoice 'I1' and amount 100: a payment id names one payment")
    # reported with the file's other problems, in row order, not only once they are fixed
    both = cli("payments", "p3.csv", "payment_id,invoice_id,amount,paid_at\nOP-2,I2,1,2026-11-40\nOP-1,I2,500,2026-11-22\n")
    assert both.exit_code == 1
    assert [line.split(":")[1] for line in both.stderr.splitlines()[:2]] == ["2", "3"]
    assert "not a date" in both.stderr.splitlines()[0] and "is stored already" in both.stderr.splitlines()[1]
    assert "nothing imported: 2 problem(s)" in both.stderr


def test_an_invoice_given_to_another_customer_takes_its_promises_along(cli):
    assert cli("invoices", "inv.csv", "invoice_id,customer_id,amount,due_date\nI1,C1,100,2026-11-20\n").exit_code == 0
    assert cli("promises", "p.csv", "invoice_id,amount,promised_date,made_at\nI1,100,2026-12-15,2026-11-21\n").exit_code == 0
    assert cli("invoices", "inv2.csv", "invoice_id,customer_id,amount,due_date\nI1,C2,100,2026-11-20\n").exit_code == 0
    with s.connect(cli.url).connect() as conn:
        assert conn.execute(select(s.promises.c.customer_id)).scalar() == "C2"  # loaded with C2: I1 stays paused


def test_numbers_and_dates_in_forms_no_doc_names_are_row_errors(tmp_path):
    """Decimal and fromisoformat take more than the documented forms: Excel's 1.23457E+11 (digits of the
    amount lost), 1_000, 20261120 and 2026-W47-5 were read without a word."""
    path = tmp_path / "p.csv"
    path.write_text("invoice_id,customer_id,amount,due_date\nI1,C1,1.23457E+11,2026-12-01\nI2,C1,1_000,20261120\n"
                    "I3,C1,100,2026-W47-5\nI4,C1,.5,2026-12-01\n", encoding="utf-8")
    with pytest.raises(CsvError) as info:
        read_portfolio(path, fields={}, default_timezone="UTC", default_currency="USD")
    assert [(p.row, p.column) for p in info.value.problems] == [(2, "amount"), (3, "amount"), (3, "due_date"),
                                                                (4, "due_date")]


def test_a_file_that_is_not_utf_8_says_at_which_line_and_how_to_save_it(tmp_path):
    path = tmp_path / "p.csv"
    path.write_bytes("invoice_id,customer_id,amount,due_date,customer_name\nI1,C1,1,2026-12-01,Cía\n".encode("cp1252"))
    with pytest.raises(CsvError) as info:
        read_portfolio(path, fields={}, default_timezone="UTC", default_currency="USD")
    assert str(info.value) == f"{path}:2: the file is not UTF-8 text (byte 0xed): save it as UTF-8 (in Excel: CSV UTF-8)"


def test_a_custom_bool_stored_as_text_is_typed_as_the_csv_reader_reads_it():
    """Imported without --policy, a custom column is text; typed when loaded, a word that is no answer
    (`maybe`) read as false, where the CSV reader reports it: it is null (comparisons with it are false)."""
    from collect.engine.storeio import _typed

    kinds = {"customer.vip": "bool", "customer.ok": "bool", "customer.yes": "bool"}
    assert _typed({"customer.vip": "maybe", "customer.ok": "No", "customer.yes": "y"}, kinds) == {
        "customer.vip": None, "customer.ok": False, "customer.yes": True}


def test_a_nul_in_an_extra_column_is_a_row_error_as_in_any_other(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("invoice_id,customer_id,amount,due_date,note\nI1,C1,1,2026-12-01,b\x00c\n", encoding="utf-8")
    with pytest.raises(CsvError) as info:
        read_portfolio(path, fields={}, default_timezone="UTC", default_currency="USD")
    assert str(info.value) == f"{path}:2: column note: a NUL character (0x00) cannot be stored"


def test_two_disputes_of_one_invoice_on_one_day_with_their_times_are_two(cli):
    assert cli("invoices", "inv.csv", "invoice_id,customer_id,amount,due_date\nI1,C1,100,2026-11-20\n").exit_code == 0
    assert cli("disputes", "d1.csv", "invoice_id,opened_at,resolved_at,reason\n"
               "I1,2026-11-10T09:00,2026-11-10T11:00,wrong amount\n").exit_code == 0
    assert cli("disputes", "d2.csv", "invoice_id,opened_at,resolved_at,reason\nI1,2026-11-10T15:00,,goods damaged\n"
               ).exit_code == 0
    with s.connect(cli.url).connect() as conn:
        rows = conn.execute(select(s.disputes.c.reason, s.disputes.c.resolved_at).order_by(s.disputes.c.id)).all()
    assert [(r.reason, r.resolved_at is None) for r in rows] == [("wrong amount", False), ("goods damaged", True)]


def test_a_dispute_stored_from_its_date_and_exported_later_with_its_time_is_the_same_one(cli):
    """Open, the ERP exported the day; resolved, the day and the time: two disputes were stored, the
    first never resolved, so the invoice stayed paused for ever and `dispute_opened` went twice."""
    assert cli("invoices", "inv.csv", "invoice_id,customer_id,amount,due_date\nI1,C1,100,2026-11-20\n").exit_code == 0
    assert cli("disputes", "d1.csv", "invoice_id,opened_at,resolved_at\nI1,2026-11-12,\n").exit_code == 0
    assert cli("disputes", "d2.csv", "invoice_id,opened_at,resolved_at\nI1,2026-11-12T09:30,2026-11-14T17:00\n"
               ).exit_code == 0
    with s.connect(cli.url).connect() as conn:
        rows = conn.execute(select(s.disputes.c.opened_at, s.disputes.c.resolved_at)).all()
    assert len(rows) == 1 and rows[0].resolved_at is not None
    assert (rows[0].opened_at.hour, rows[0].opened_at.minute) == (14, 30)  # 09:30 in Lima, the time given


@pytest.mark.parametrize("later, expected", [
    # the first timed row of that day is the stored dispute; a second one that day is another dispute
    ("I1,2026-11-12T09:30,\nI1,2026-11-12T15:00,2026-11-13T10:00\n", [("14:30", False), ("20:00", True)]),
    ("I1,2026-11-12T14:30:00Z,2026-11-13T15:00:00Z\n", [("14:30", True)]),  # another offset, the same moment
])
def test_a_dispute_stored_from_its_date_is_claimed_once_whatever_the_offset(cli, later, expected):
    assert cli("invoices", "inv.csv", "invoice_id,customer_id,amount,due_date\nI1,C1,100,2026-11-20\n").exit_code == 0
    assert cli("disputes", "d1.csv", "invoice_id,opened_at,resolved_at\nI1,2026-11-12,\n").exit_code == 0
    assert cli("disputes", "d2.csv", "invoice_id,opened_at,resolved_at\n" + later).exit_code == 0
    with s.connect(cli.url).connect() as conn:
        rows = conn.execute(select(s.disputes.c.opened_at, s.disputes.c.resolved_at).order_by(s.disputes.c.opened_at))
        assert [(r.opened_at.strftime("%H:%M"), r.resolved_at is not None) for r in rows] == expected


@pytest.mark.parametrize("header, delimiter", [
    ('invoice_id,amount,paid_at,"Banco; Op; Canal; Ref; Nota"', ","),  # a quoted name holds no delimiter
    ("Factura;Importe, S/;Fecha de pago, dd/mm", ";"),  # a comma followed by a space is in a name
    ("a, b, c", ","), ("a\tb\tc", "\t"), ("a|b|c", "|"), ("single", ","),
    ("invoice_id; customer_id; Importe,S/; due_date", ";"), ("invoice_id | customer_id | Monto,S/ | due_date", "|"),
    ("invoice_id, customer_id, amount;neto, due_date", ",")])  # spaced delimiters, a name holding another
def test_the_delimiter_is_guessed_from_the_header_as_a_person_reads_it(header, delimiter):
    from collect.engine.portfolio import _sniff

    assert _sniff(header) == delimiter


def test_an_overfull_row_of_an_events_file_is_one_problem(cli):
    """The events import reads its table three times: the row was reported three times."""
    assert cli("invoices", "inv.csv", "invoice_id,customer_id,amount,due_date\nI1,C1,100,2026-11-20\n").exit_code == 0
    result = cli("events", "ev.csv", "at,channel,type,customer_id,detail\n2026-11-21,email,replied,C1,hola, gracias\n")
    assert result.exit_code == 1 and result.stderr.splitlines()[-1] == "nothing imported: 1 problem(s)"


def test_a_file_with_a_byte_order_mark_says_the_right_line_and_byte(tmp_path):
    path = tmp_path / "p.csv"
    path.write_bytes(b"\xef\xbb\xbfinvoice_id,customer_id,amount,due_date,customer_name\nI1,C1,1,2026-12-01,x\n"
                     b"I2,C1,1,2026-12-01,Ca\xf1a\n")
    with pytest.raises(CsvError) as info:
        read_portfolio(path, fields={}, default_timezone="UTC", default_currency="USD")
    assert str(info.value).startswith(f"{path}:3: the file is not UTF-8 text (byte 0xf1)")


@pytest.mark.parametrize("monday, tuesday", [
    ("I1,500.00,2026-11-12T10:00:00", "I1,500,2026-11-12T10:00"),  # a spreadsheet re-save
    ("I1,500,2026-11-12", "I1,500.0,2026-11-12 00:00"),
])
def test_a_payment_without_id_exported_again_in_other_words_is_stored_once(cli, monday, tuesday):
    """Without a payment_id a payment is named by its invoice, amount and date: the name hashed them as
    written, so 500.00 on Monday and 500 on Tuesday were two payments, and the invoice showed paid."""
    assert cli("invoices", "inv.csv", "invoice_id,customer_id,amount,due_date\nI1,C1,1000,2026-11-10\n").exit_code == 0
    assert cli("payments", "mon.csv", "invoice_id,amount,paid_at\n" + monday + "\n").exit_code == 0
    result = cli("payments", "tue.csv", "invoice_id,amount,paid_at\n" + tuesday + "\n")
    assert result.exit_code == 0, result.output
    assert "0 new payments" in result.stderr + result.stdout
    with s.connect(cli.url).connect() as conn:
        assert [r.amount for r in conn.execute(select(s.payments))] == [500]


def test_a_payment_stored_under_a_name_made_before_names_were_canonical_is_recognised(cli):
    """Stores hold payments named from the amount as written (500.00): the same line imported after
    the upgrade (named from 500) is still that payment."""
    assert cli("invoices", "inv.csv", "invoice_id,customer_id,amount,due_date\nI1,C1,1000,2026-11-10\n").exit_code == 0
    assert cli("payments", "mon.csv", "invoice_id,amount,paid_at\nI1,500.00,2026-11-12T10:00\n").exit_code == 0
    with s.connect(cli.url).begin() as conn:
        conn.execute(s.payments.update().values(payment_id="auto-00000000000000000000"))  # an older name
    assert cli("payments", "mon.csv", "invoice_id,amount,paid_at\nI1,500.00,2026-11-12T10:00\n").exit_code == 0
    with s.connect(cli.url).connect() as conn:
        assert [r.payment_id for r in conn.execute(select(s.payments))] == ["auto-00000000000000000000"]


def test_a_payment_of_an_invoice_whose_row_is_in_error_adds_no_error_of_its_own(tmp_path):
    """I2's due date is no date: that is the error; its payment was also reported as about an unknown
    invoice, pointing the analyst at the wrong file."""
    (tmp_path / "p.csv").write_text("invoice_id,customer_id,amount,due_date\nI1,C1,100,2026-11-20\n"
                                    "I2,C1,100,2026-11-31\n", encoding="utf-8")
    (tmp_path / "pay.csv").write_text("invoice_id,amount,paid_at\nI2,50,2026-11-21\nI9,50,2026-11-21\n", encoding="utf-8")
    with pytest.raises(CsvError) as info:
        read_portfolio(tmp_path / "p.csv", payments_csv=tmp_path / "pay.csv", fields={}, default_timezone="UTC",
                       default_currency="USD")
    assert [(p.file.rsplit("/", 1)[-1], p.row, p.column) for p in info.value.problems] == [
        ("p.csv", 3, "due_date"), ("pay.csv", 3, "invoice_id")]  # I9 is unknown indeed


def test_a_stored_legal_status_is_cleared_by_none_and_kept_by_an_empty_cell(cli):
    """A lawsuit ends: `none` clears `sued` (an empty cell keeps what is stored, and any other word is a
    row error, so without `none` it could not be cleared)."""
    def status():
        with s.connect(cli.url).connect() as conn:
            return conn.execute(select(s.customers.c.legal_status)).scalar()
    for cell, expected in (("sued", "sued"), ("", "sued"), ("None", "none")):
        assert cli("invoices", "i.csv", f"invoice_id,customer_id,amount,due_date,legal_status\nI1,C1,1,2026-11-20,{cell}\n"
                   ).exit_code == 0
        assert status() == expected, cell


@pytest.mark.parametrize("kind, header, rows, column", [
    ("payments", "invoice_id,amount,paid_at", ["I1,100,2026-11-12", "I1,100.00,2026-11-12T00:00"], None),
    ("promises", "invoice_id,amount,promised_date,made_at", ["I1,100,2026-11-30,2026-11-12",
                                                             "I1,100.0,2026-11-30,2026-11-12 00:00"], None),
    ("disputes", "invoice_id,opened_at", ["I1,2026-11-30", "I1,2026-11-30T00:00"], None),
])
def test_one_row_written_two_ways_in_a_file_counts_once(tmp_path, kind, header, rows, column):
    """Values, not their text, name a payment, promise or dispute: the payment file was rejected, the
    promise counted twice in simulate, the dispute stored twice."""
    (tmp_path / "p.csv").write_text("invoice_id,customer_id,amount,due_date\nI1,C1,1000,2026-11-20\n", encoding="utf-8")
    (tmp_path / "x.csv").write_text(header + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    book = read_portfolio(tmp_path / "p.csv", **{f"{kind}_csv": tmp_path / "x.csv"}, fields={},
                          default_timezone="UTC", default_currency="USD")
    assert len(getattr(book, kind)) == 1


@pytest.mark.parametrize("text", ["invoice_id,customer_id,amount,due_date,currency\nI1,C1,-5,2026-12-01,usd\n"])
def test_every_bad_cell_of_a_row_is_reported_not_the_first_only(tmp_path, text):
    (tmp_path / "p.csv").write_text(text, encoding="utf-8")
    (tmp_path / "pay.csv").write_text("invoice_id,amount,paid_at,currency\nI9,x,2026-12-01,usd\n", encoding="utf-8")
    with pytest.raises(CsvError) as info:
        read_portfolio(tmp_path / "p.csv", payments_csv=tmp_path / "pay.csv", fields={}, default_timezone="UTC",
                       default_currency="USD")
    assert [(p.file.rsplit("/", 1)[-1], p.column) for p in info.value.problems] == [
        ("p.csv", "amount"), ("p.csv", "currency"), ("pay.csv", "invoice_id"), ("pay.csv", "amount"),
        ("pay.csv", "currency")]

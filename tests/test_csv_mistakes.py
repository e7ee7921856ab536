"""Mistakes an ERP export or a hand-edited file makes, each reported where it is, once, and the same by
`collect simulate` and `collect import` (exit 1, nothing simulated or imported): an unclosed quote, a
dispute resolved before it was opened, an amount that rounds past the digits allowed, and column map
mistakes said at the map rather than at every cell. And one map for exports that name a column each
their own way."""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from collect.cli import app
from collect.engine.portfolio import MAX_DIGITS

ROOT = Path(__file__).resolve().parent.parent
POLICY = ROOT / "examples" / "pe-b2b" / "policy.yaml"
HEAD = "invoice_id,customer_id,amount,due_date,customer_name\n"


def simulate(tmp_path: Path, files: dict[str, str], *options: str):
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    extra = [a for kind in ("payments", "disputes") if f"{kind}.csv" in files for a in (f"--{kind}", f"{kind}.csv")]
    return CliRunner().invoke(app, ["simulate", str(POLICY), "--portfolio", "p.csv", *extra, "--start", "2026-11-10",
                                    "--days", "5", "-q", "--out", "out.csv", *options])


def imported(tmp_path: Path, kind: str, text: str):
    (tmp_path / f"{kind}.csv").write_text(text, encoding="utf-8")
    return CliRunner().invoke(app, ["import", kind, f"{kind}.csv", "--db", "sqlite:///collect.db",
                                    "--timezone", "America/Lima"])


def stored(table: str) -> int:
    with sqlite3.connect("collect.db") as db:
        return db.execute(f"select count(*) from {table}").fetchone()[0]


@pytest.fixture(autouse=True)
def _here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


UNCLOSED = HEAD + 'I1,C1,100,2026-11-20,"Acme\nI2,C2,200,2026-11-20,Beta\nI3,C3,300,2026-11-20,Gamma\n'
SAID = ('p.csv:2: a quote (") opened in the row that starts on this line is never closed, so every line after '
        'it would be read as one cell (close it; a quote inside a quoted cell is written twice: "")')


def test_an_unclosed_quote_is_an_error_not_rows_dropped(tmp_path):
    """Before, the csv reader read I2 and I3 into the name of C1, and both commands went on with I1 alone."""
    result = simulate(tmp_path, {"p.csv": UNCLOSED})
    assert (result.exit_code, result.stderr.splitlines()) == (1, [SAID])
    assert not (tmp_path / "out.csv").exists()
    result = imported(tmp_path, "invoices", UNCLOSED)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == SAID.replace("p.csv", "invoices.csv")
    assert stored("invoices") == 0


@pytest.mark.parametrize("tail", ['"b@exam', '"b@exam\n'])
def test_a_file_cut_short_inside_a_quoted_cell_of_its_last_row_is_an_error(tmp_path, tail):
    """Before, the cut value was imported as it was (b@exam) when the quote opened on the last line."""
    text = 'invoice_id,customer_id,amount,due_date,email\nI1,C1,100,2026-11-20,"a@ex.com"\nI2,C2,100,2026-11-20,' + tail
    result = imported(tmp_path, "invoices", text)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == SAID.replace("p.csv:2", "invoices.csv:3")
    assert stored("invoices") == 0
    assert simulate(tmp_path, {"p.csv": text}).exit_code == 1


def test_a_quoted_cell_over_several_lines_is_still_read(tmp_path):
    """A closed quote around a line break, last row included, is a cell like any other."""
    text = HEAD + 'I1,C1,100,2026-11-20,"Acme\nNorte"\nI2,C2,200,2026-11-20,"Beta\nSur"\n'
    assert simulate(tmp_path, {"p.csv": text}).exit_code == 0
    assert imported(tmp_path, "invoices", text).exit_code == 0
    with sqlite3.connect("collect.db") as db:
        assert sorted(db.execute("select name from customers")) == [("Acme\nNorte",), ("Beta\nSur",)]


def test_a_reason_quoting_a_cell_with_a_line_break_stays_on_one_line(tmp_path):
    result = simulate(tmp_path, {"p.csv": HEAD + 'I1,C1,"10\n0",2026-11-20,Acme\n'})
    assert result.exit_code == 1
    assert result.stderr.splitlines() == ["p.csv:2: column amount: '10\\n0' is not a number (decimal separator '.')"]


def test_an_unclosed_quote_before_a_long_tail_is_said_at_its_row(tmp_path):
    """Past the csv module's 128 KiB cell limit, an unclosed quote used to stop the file with that
    module's words; it is the unclosed quote of its row."""
    result = simulate(tmp_path, {"p.csv": HEAD + 'I1,C1,100,2026-11-20,"Acme\n' + "x" * 140_000 + "\n"})
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [SAID]


def test_a_long_cell_is_a_cell_like_any_other(tmp_path):
    """Before, a cell over 131,072 characters stopped the whole file ("field larger than field limit")."""
    long = "x" * 200_000
    text = HEAD + f'I1,C1,100,2026-11-20,{long}\nI2,C2,100,2026-11-20,"{long}"\nI3,C3,1OO,2026-11-20,ok\n'
    result = imported(tmp_path, "invoices", text)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == "invoices.csv:4: column amount: '1OO' is not a number (decimal separator '.')"
    assert imported(tmp_path, "invoices", text.replace("1OO", "100")).exit_code == 0
    with sqlite3.connect("collect.db") as db:
        assert sorted(len(name) for (name,) in db.execute("select name from customers")) == [2, 200_000, 200_000]


INVOICES = "invoice_id,customer_id,amount,due_date\nI1,C1,100,2026-11-20\n"


@pytest.mark.parametrize("opened, resolved, wrong", [
    ("2026-11-30", "2026-11-20", True),
    ("2026-11-30T10:00", "2026-11-30T09:00", True),
    ("2026-11-30T10:00-05:00", "2026-11-28", True),  # a day and more before, whatever the customer's zone
    ("2026-11-30", "2026-11-30", False),
    ("2026-11-30T10:00-05:00", "2026-11-30", False),  # maybe later: the customer's midnight may be after
    ("2026-11-20", "2026-11-30", False),
])
def test_a_dispute_resolved_before_it_was_opened_is_a_row_error(tmp_path, opened, resolved, wrong):
    """Swapped dates would pause nothing, and the disputed invoice would be chased, unnoticed."""
    disputes = f"invoice_id,opened_at,reason,resolved_at\nI1,{opened},x,{resolved}\n"
    result = simulate(tmp_path, {"p.csv": INVOICES, "disputes.csv": disputes})
    assert result.exit_code == (1 if wrong else 0), result.output
    if wrong:
        assert result.stderr.splitlines()[0].startswith("disputes.csv:2: column resolved_at: resolved at ")
        assert imported(tmp_path, "invoices", INVOICES).exit_code == 0
        assert imported(tmp_path, "disputes", disputes).exit_code == 1
        assert stored("disputes") == 0


@pytest.mark.parametrize("made, wrong", [
    ("2026-11-25", True), ("2026-11-25T10:00", True), ("2026-11-22T10:00+09:00", True),
    ("2026-11-21T01:00+09:00", False),  # maybe the 20th on the customer's clock
    ("2026-11-20T23:00", False), ("2026-11-10", False),
])
def test_a_promise_made_after_its_promised_date_is_a_row_error(tmp_path, made, wrong):
    """Swapped dates made a promise broken the moment it was made; a dispute's are already an error."""
    promises = f"invoice_id,amount,promised_date,made_at\nI1,50,2026-11-20,{made}\n"
    result = simulate(tmp_path, {"p.csv": INVOICES, "promises.csv": promises}, "--promises", "promises.csv")
    assert result.exit_code == (1 if wrong else 0), result.output
    if wrong:
        assert result.stderr.splitlines()[0].startswith("promises.csv:2: column made_at: made on 2026-11-2")
        assert imported(tmp_path, "invoices", INVOICES).exit_code == 0
        assert imported(tmp_path, "promises", promises).exit_code == 1
        assert stored("promises") == 0


def test_an_amount_that_rounds_past_the_digits_allowed_is_a_row_error(tmp_path):
    """999999999999999.9999999 has 15 digits before the point as written, 16 once rounded to 6 places."""
    nines = "9" * MAX_DIGITS
    text = f"invoice_id,customer_id,amount,due_date\nI1,C1,{nines}.9999999,2026-11-20\nI2,C1,{nines}.999999,2026-11-20\n"
    result = imported(tmp_path, "invoices", text)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[:-1] == [
        f"invoices.csv:2: column amount: '{nines}.9999999' is too large (at most {MAX_DIGITS} digits before the "
        "decimal point, once rounded to 6 decimal places)"]
    assert simulate(tmp_path, {"p.csv": text}).exit_code == 1


@pytest.mark.parametrize("line, said", [
    ('date_format: "%Q"', "map.yaml:1: date_format: '%Q' is not a strptime format ('Q' is a bad directive in "
                          "format '%Q'); e.g. '%d/%m/%Y'"),
    ('columns: {amount: Importe}\ndatetime_format: "%d/%m %H:%M"',
     "map.yaml:2: datetime_format: '%d/%m %H:%M' does not read a whole date: 2026-11-20 written with it "
     "('20/11 15:04') reads back as 1900-11-20; it needs the day, the month and the year, e.g. '%d/%m/%Y'"),
])
def test_a_date_format_that_cannot_read_dates_is_said_once_at_the_map(tmp_path, line, said):
    (tmp_path / "map.yaml").write_text(line + "\n", encoding="utf-8")
    result = simulate(tmp_path, {"p.csv": INVOICES + "I2,C1,100,2026-11-21\n"}, "--map", "map.yaml")
    assert (result.exit_code, result.stderr.splitlines()) == (1, [said])


def test_a_header_the_map_reads_as_another_column_is_said_so(tmp_path):
    (tmp_path / "map.yaml").write_text("columns: {number: amount}\n", encoding="utf-8")
    result = simulate(tmp_path, {"p.csv": INVOICES}, "--map", "map.yaml")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "p.csv:1: column amount: required column is missing (the column map reads the header 'amount' as 'number')"]


ERP_MAP = ('columns: {invoice_id: Factura, customer_id: Cliente, amount: [Importe, Monto], due_date: Vence, '
           'paid_at: Fecha}\ndelimiter: ";"\ndate_format: "%d/%m/%Y"\ndecimal: ","\n')


def test_one_map_reads_exports_that_name_a_column_differently(tmp_path):
    """The invoices export says Importe, the payments export Monto: `amount: [Importe, Monto]` reads both,
    as `collect simulate` reads them with one map; a file with two of the headers is a problem."""
    (tmp_path / "map.yaml").write_text(ERP_MAP, encoding="utf-8")
    files = {"p.csv": "Factura;Cliente;Importe;Vence\nF1;C2;100,50;20/11/2026\nF2;C2;200,00;25/11/2026\n",
             "payments.csv": "Factura;Monto;Fecha\nF1;100,50;16/11/2026\n"}
    result = simulate(tmp_path, files, "--map", "map.yaml", "--behavior", "historic", "--days", "20")
    assert result.exit_code == 0, result.output
    with open(tmp_path / "out.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    # the payment of F1 was read (Monto): nothing more for F1 after it, while F2 goes on
    assert [r["step"] for r in rows if r["invoice_ids"] == "F1"] == ["pre-7"]  # 13/11, before the payment
    assert {r["step"] for r in rows if r["invoice_ids"] == "F2"} >= {"pre-7", "pre-2", "tem-1"}
    both = {"p.csv": "Factura;Cliente;Importe;Monto;Vence\nF1;C1;100,50;100,50;20/11/2026\n"}
    assert simulate(tmp_path, both, "--map", "map.yaml").stderr.splitlines() == [
        "p.csv:1: column Monto: column 'amount' appears twice (columns 3 and 4)"]
    neither = {"p.csv": "Factura;Cliente;Total;Vence\nF1;C1;100,50;20/11/2026\n"}
    assert simulate(tmp_path, neither, "--map", "map.yaml").stderr.splitlines() == [
        "p.csv:1: column Importe or Monto: required column is missing"]
    (tmp_path / "map.yaml").write_text("columns: {amount: [Importe, Monto], balance: [Saldo, Monto]}\n")
    assert simulate(tmp_path, neither, "--map", "map.yaml").stderr.splitlines() == [
        "map.yaml:1: columns: 'amount' and 'balance' both name the header 'Monto': a header is read as one column; "
        "keep one of them"]


@pytest.mark.parametrize("options, said", [
    (["--behavior", "historic"], "warning: --behavior historic without --payments: nobody pays, as with --behavior none"),
    (["--payments", "payments.csv"], "warning: payments.csv is used by --behavior historic only: with --behavior "
                                     "none its payments are not applied"),
    (["--payments", "payments.csv", "--behavior", "historic"], None),
])
def test_payments_without_historic_or_historic_without_payments_is_said(tmp_path, options, said):
    """Either way the run goes on as if nobody paid: an analyst replaying a period would read its KPIs
    as the policy's."""
    (tmp_path / "payments.csv").write_text("invoice_id,amount,paid_at\nI1,100,2026-11-12\n", encoding="utf-8")
    (tmp_path / "p.csv").write_text(INVOICES, encoding="utf-8")
    command = ["simulate", str(POLICY), "--portfolio", "p.csv", "--start", "2026-11-10", "--days", "5", *options]
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 0
    assert [line for line in result.stderr.splitlines() if line.startswith("warning: ")] == ([said] if said else [])
    assert CliRunner().invoke(app, command + ["-q"]).stderr == ""  # quiet, for cron


def test_a_control_character_in_a_cell_is_shown_in_the_error_not_hidden_by_the_terminal(tmp_path):
    """'America/Lima\x01' looked like 'America/Lima' in the message, which then made no sense."""
    text = "invoice_id,customer_id,amount,due_date,timezone\nI1,C1,100,2026-11-20,America/Lima\x01\n"
    result = simulate(tmp_path, {"p.csv": text})
    assert (result.exit_code, result.stderr.splitlines()) == (1, [
        "p.csv:2: column timezone: unknown time zone 'America/Lima\\x01' (did you mean 'America/Lima'?)"])

"""A title line over the header (`Reporte de cartera al 30/11/2026`, as ERP exports write): one error that
says on which line the header is, not every required column "missing" from a title. The title is not
skipped: the first line is the header (docs/files.md)."""

import pytest
from clitools import EMAIL_POLICY as POLICY
from clitools import cli_simulate
from typer.testing import CliRunner

from collect.cli import app
from collect.engine.portfolio import CsvError, read_portfolio

PORTFOLIO = "invoice_id,customer_id,amount,due_date\nA,C1,1000,2026-03-02\n"
TITLE = "Reporte de cartera al 30/11/2026\n"


def simulate(tmp_path, portfolio, *args, files=None):
    result = cli_simulate(tmp_path, POLICY, portfolio, "--start", "2026-03-01", "--days", "10", "-q", *args,
                          files=files)
    assert result.exit_code == 1, result.output
    return [line.replace(str(tmp_path) + "/", "") for line in result.stderr.splitlines()]


def problems(tmp_path, portfolio, **files):
    (tmp_path / "p.csv").write_text(portfolio, encoding="utf-8")
    paths = {}
    for kind, text in files.items():
        paths[kind] = tmp_path / f"{kind}.csv"
        paths[kind].write_text(text, encoding="utf-8")
    with pytest.raises(CsvError) as info:
        read_portfolio(tmp_path / "p.csv", paths.get("customers"), paths.get("payments"), paths.get("promises"),
                       paths.get("disputes"), fields={}, default_timezone="UTC", default_currency="USD")
    return [str(p).replace(str(tmp_path) + "/", "") for p in info.value.problems]


def test_a_title_line_over_the_portfolio_header_is_one_error_saying_where_the_header_is(tmp_path):
    assert simulate(tmp_path, TITLE + PORTFOLIO) == [
        "p.csv:1: the header is on line 2, but the first line must be the header: remove the line before it "
        "(a title?)"]


def test_two_title_lines_over_a_header_with_another_delimiter(tmp_path):
    """The delimiter is guessed from the header's own line: the first line, a title, has none."""
    portfolio = "Empresa SAC\n" + TITLE + PORTFOLIO.replace(",", ";")
    assert simulate(tmp_path, portfolio) == [
        "p.csv:1: the header is on line 3, but the first line must be the header: remove the 2 lines before it "
        "(a title?)"]


def test_a_title_line_over_headers_the_map_renames(tmp_path):
    erp = TITLE + "Factura;RUC;Importe;Vencimiento\nF-1;20100047218;1.234,50;15/03/2026\n"
    mapping = ("columns: { invoice_id: Factura, customer_id: RUC, amount: Importe, due_date: Vencimiento }\n"
               "date_format: '%d/%m/%Y'\ndecimal: ','\nthousands: '.'\n")
    assert simulate(tmp_path, erp, "--map", "{tmp}/map.yaml", files={"map.yaml": mapping}) == [
        "p.csv:1: the header is on line 2, but the first line must be the header: remove the line before it "
        "(a title?)"]


def test_a_title_over_each_other_file_and_a_truly_missing_column_keeps_its_message(tmp_path):
    """The other files share the reader. A header that does lack a column (here `paid_at`, whose name a
    later row holds as a value) still says which column is missing."""
    assert problems(tmp_path, PORTFOLIO,
                    customers=TITLE + "customer_id,email\nC1,a@example.com\n",
                    payments="invoice_id,amount,paid\nA,10,paid_at\n",
                    promises=TITLE + "invoice_id,amount,promised_date\nA,10,2026-03-10\n",
                    disputes=TITLE + TITLE + "invoice_id,opened_at\nA,2026-03-05\n") == [
        "customers.csv:1: the header is on line 2, but the first line must be the header: remove the line "
        "before it (a title?)",
        "payments.csv:1: column paid_at: required column is missing (did you mean 'paid'?)",
        "promises.csv:1: the header is on line 2, but the first line must be the header: remove the line "
        "before it (a title?)",
        "disputes.csv:1: the header is on line 3, but the first line must be the header: remove the 2 lines "
        "before it (a title?)"]


def test_a_quoted_title_with_a_line_break_counts_the_lines_an_editor_shows(tmp_path):
    titled = '"Reporte de cartera\nal 30/11/2026"\n' + PORTFOLIO
    assert problems(tmp_path, titled) == [
        "p.csv:1: the header is on line 3, but the first line must be the header: remove the 2 lines before it "
        "(a title?)"]


def test_collect_import_says_the_same(db_url, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "f.csv").write_text(TITLE + PORTFOLIO, encoding="utf-8")
    result = CliRunner().invoke(app, ["import", "invoices", "f.csv", "--db", db_url])
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines() == [
        "f.csv:1: the header is on line 2, but the first line must be the header: remove the line before it "
        "(a title?)", "nothing imported: 1 problem(s)"]

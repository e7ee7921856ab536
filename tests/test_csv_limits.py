"""Values the store's columns cannot hold: PostgreSQL refuses a text longer than its VARCHAR(n) (and a NUL
character) where SQLite keeps it. The readers make each a row error, `FILE:ROW: column COL: at most N
characters`, the same in `collect simulate` and in `collect import` on either store, reported with every
other bad row and nothing written. An amount is read exactly as written and stored rounded to 6 decimal
places (engine/portfolio.py MONEY_PLACES). Should the database still refuse a value, `collect import` says
so in one line."""

from __future__ import annotations

import zoneinfo
from decimal import Decimal

import pytest
from sqlalchemy import String, func, select
from typer.testing import CliRunner

from collect.cli import app
from collect.engine import store as s
from collect.engine.portfolio import MAX_DIGITS, STATUSES, ColumnMap, CsvError, read_portfolio
from collect.engine.storeio import EVENT_TYPES, import_file

LONG = {n: "x" * (n + 1) for n in (16, 32, 100, 200)}
INVOICES = "invoice_id,customer_id,amount,due_date\nFE-1,C1,100,2026-12-01\nFE-2,C2,100,2026-12-01\n"

# every sized column of the tables a file fills, and what keeps a file's value within it
GUARDS = {
    ("customers", "id"): "customer_id", ("invoices", "id"): "invoice_id",
    ("invoices", "customer_id"): "customer_id", ("payments", "payment_id"): "payment_id",
    ("payments", "invoice_id"): "invoice_id", ("promises", "invoice_id"): "invoice_id",
    ("promises", "customer_id"): "customer_id", ("disputes", "invoice_id"): "invoice_id",
    ("provider_events", "customer_id"): "customer_id", ("customers", "language"): "language",
    ("customers", "legal_status"): "legal_status", ("promises", "channel"): "channel",
    ("provider_events", "channel"): "channel",
    # checked against short lists, or not the file's text
    ("customers", "timezone"): max(len(z) for z in zoneinfo.available_timezones()),
    ("customers", "country"): 2, ("invoices", "currency"): 3, ("payments", "currency"): 3,
    ("invoices", "status"): max(map(len, STATUSES)), ("provider_events", "type"): max(map(len, EVENT_TYPES)),
    ("provider_events", "contact_id"): "a stored contact's key (the decision core keeps it within 300)",
}
MONEY = (("invoices", "amount"), ("invoices", "balance"), ("payments", "amount"), ("promises", "amount"))


def test_every_sized_column_a_file_fills_is_guarded_by_the_readers():
    """A new VARCHAR(n) in a table that files fill must be guarded here too (SIZES), or PostgreSQL refuses
    what SQLite keeps."""
    from collect.engine.portfolio import SIZES
    from collect.engine.portfolio import MONEY_PLACES

    largest = len(str(Decimal("9" * MAX_DIGITS + "." + "9" * MONEY_PLACES)))  # an amount, as Money writes it
    guarded = {**GUARDS, **{where: largest for where in MONEY}}
    found = {}
    for table in (s.customers, s.invoices, s.payments, s.promises, s.disputes, s.provider_events):
        for column in table.columns:
            kind = column.type.impl if isinstance(column.type, s.Money) else column.type
            if isinstance(kind, String) and kind.length:
                found[table.name, column.name] = kind.length
    assert set(found) == set(guarded)
    for where, length in found.items():
        guard = guarded[where]
        if isinstance(guard, str) and guard in SIZES:
            assert SIZES[guard] == length, where
        elif isinstance(guard, int):
            assert guard <= length, where


FILES = {  # kind -> (file, what the row errors are)
    "invoices": ("invoice_id,customer_id,amount,due_date,balance,language,legal_status\n"
                 f"{LONG[100]},C9,1,2026-12-01,,,\n"
                 f"FE-8,{LONG[100]},1,2026-12-01,,,\n"
                 f"FE-7,C7,1,2026-12-01,,{LONG[16]},\n"
                 f"FE-6,C6,1,2026-12-01,,,{LONG[32]}\n",
                 ["2: column invoice_id: at most 100 characters",
                  "3: column customer_id: at most 100 characters",
                  "4: column language: at most 16 characters",
                  "5: column legal_status: at most 32 characters"]),
    "customers": (f"customer_id,language,legal_status\n{LONG[100]},,\nC1,{LONG[16]},\nC2,,{LONG[32]}\n",
                  ["2: column customer_id: at most 100 characters", "3: column language: at most 16 characters",
                   "4: column legal_status: at most 32 characters"]),
    "payments": (f"payment_id,invoice_id,amount,paid_at\n{LONG[200]},FE-1,10,2026-11-20\n"
                 f"P2,{LONG[100]},10,2026-11-20\n",
                 ["2: column payment_id: at most 200 characters", "3: column invoice_id: at most 100 characters"]),
    "promises": (f"invoice_id,customer_id,amount,promised_date,channel\nFE-1,,10,2026-12-10,{LONG[32]}\n"
                 f",{LONG[100]},10,2026-12-10,\n{LONG[100]},,10,2026-12-10,\n",
                 ["2: column channel: at most 32 characters", "3: column customer_id: at most 100 characters",
                  "4: column invoice_id: at most 100 characters"]),
    "disputes": (f"invoice_id,opened_at\n{LONG[100]},2026-11-20\n",
                 ["2: column invoice_id: at most 100 characters"]),
    "events": (f"at,channel,type,customer_id\n2026-11-20T10:00,sms,conversation,{LONG[100]}\n"
               f"2026-11-20T10:00,{LONG[32]},conversation,C1\n",
               ["2: column customer_id: at most 100 characters", "3: column channel: at most 32 characters"]),
}


@pytest.fixture
def cli(db_url, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    def run(kind: str, name: str, text: str | None = None, *options: str):
        if text is not None:
            (tmp_path / name).write_text(text, encoding="utf-8")
        return CliRunner().invoke(app, ["import", kind, name, "--db", db_url, "--timezone", "America/Lima",
                                        *options])
    run.url = db_url
    return run


def _counts(url: str) -> dict[str, int]:
    engine = s.connect(url)
    with engine.connect() as conn:
        counts = {t.name: conn.execute(select(func.count()).select_from(t)).scalar()
                  for t in (s.customers, s.invoices, s.payments, s.promises, s.disputes, s.provider_events)}
    engine.dispose()
    return counts


@pytest.mark.parametrize("kind", list(FILES))
def test_a_value_too_long_for_the_store_is_a_row_error_on_every_store(cli, kind):
    assert cli("invoices", "facturas.csv", INVOICES).exit_code == 0
    before = _counts(cli.url)
    text, expected = FILES[kind]
    result = cli(kind, "f.csv", text)
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines() == [f"f.csv:{line}" for line in expected] + [
        f"nothing imported: {len(expected)} problem(s)"]
    assert _counts(cli.url) == before


@pytest.mark.parametrize("kind", ["invoices", "customers", "payments", "promises", "disputes"])
def test_simulate_says_the_same(tmp_path, kind):
    text, expected = FILES[kind]
    files = {"invoices": tmp_path / "p.csv"}
    (tmp_path / "p.csv").write_text(INVOICES, encoding="utf-8")
    if kind != "invoices":
        files[kind] = tmp_path / f"{kind}.csv"
    files[kind].write_text(text, encoding="utf-8")
    with pytest.raises(CsvError) as info:
        read_portfolio(files["invoices"], files.get("customers"), files.get("payments"), files.get("promises"),
                       files.get("disputes"), fields={}, default_timezone="America/Lima", default_currency="PEN")
    assert [str(p).split(":", 1)[1] for p in info.value.problems] == expected


def test_the_longest_values_fit_and_amounts_are_stored_to_six_places(cli):
    """At the limit is fine. An amount is read as written and stored rounded half-even to 6 decimal
    places: `100.00000000` (an export's fixed 8 places) is 100.000000, a float's `0.30000000000000004`
    is 0.300000, and 44 decimals fit the column."""
    text = (f"invoice_id,customer_id,amount,due_date,balance,language,legal_status\n"
            f"{'i' * 100},{'c' * 100},999999999999999.999999,2026-12-01,100.00000000,{'l' * 16},SUED\n"
            f"FE-2,C2,0.30000000000000004,2026-12-01,1.00000000000000000000000000000000000000000001,,\n")
    assert cli("invoices", "facturas.csv", text).exit_code == 0
    engine = s.connect(cli.url)
    with engine.connect() as conn:
        invoices = {i.id: i for i in conn.execute(select(s.invoices))}
        customer = conn.execute(select(s.customers).where(s.customers.c.id == "c" * 100)).one()
    engine.dispose()
    longest, floaty = invoices["i" * 100], invoices["FE-2"]
    assert (longest.amount, str(longest.balance)) == (Decimal("999999999999999.999999"), "100.000000")
    assert (str(floaty.amount), str(floaty.balance)) == ("0.300000", "1.000000")
    assert (customer.language, customer.legal_status) == ("l" * 16, "sued")  # lowercased


def test_a_nul_character_is_a_row_error(cli):
    result = cli("invoices", "facturas.csv",
                 "invoice_id,customer_id,amount,due_date,number\nFE-1,C1,1,2026-12-01,A\0B\n")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == "facturas.csv:2: column number: a NUL character (0x00) cannot be stored"


def test_a_value_the_database_still_refuses_is_one_line_and_nothing_is_written(cli, monkeypatch):
    """The second line of defence: should a reader let through what the database refuses (here, a size
    taken away from the reader), import_file raises CsvError, which `collect import` prints as one line,
    not a traceback with the SQL."""
    if not cli.url.startswith("postgresql"):
        pytest.skip("SQLite keeps a text of any length")
    from collect.engine.portfolio import SIZES

    monkeypatch.delitem(SIZES, "language")
    result = cli("invoices", "facturas.csv", "invoice_id,customer_id,amount,due_date,language\n"
                                             f"FE-1,C1,1,2026-12-01,{LONG[16]}\n")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "facturas.csv:1: the store refused a value of the file: value too long for type character varying(16)",
        "nothing imported: 1 problem(s)"]
    assert _counts(cli.url)["invoices"] == 0
    engine = s.connect(cli.url)
    with pytest.raises(CsvError):
        import_file(engine, "invoices", "facturas.csv", fields={}, colmap=ColumnMap())
    engine.dispose()

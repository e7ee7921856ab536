"""Extra columns of the payments, promises, disputes and events files (SPEC 7: "extra columns are kept
as attributes"): read as text into `attrs`, with and without a column map, stored by `collect import`
(re-imports stay idempotent), and an existing store upgraded to keep them."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, inspect, select

from collect.engine import store as s
from collect.engine.portfolio import ColumnMap, CsvError, load_map, read_portfolio
from collect.engine.portfolio_rows import read_one
from collect.engine.storeio import import_file

INVOICES = "invoice_id,customer_id,amount,due_date,seller\nI1,C1,100,2026-12-01,Rosa\nI2,C1,50,2026-12-05,\n"
PAYMENTS = "payment_id,invoice_id,amount,paid_at,bank,note\nP1,I1,40,2026-11-20,BCP,first part\nP2,I2,50,2026-11-21,,\n"
PROMISES = "invoice_id,customer_id,amount,promised_date,agent\nI1,,60,2026-12-04,Luis\n"
DISPUTES = "invoice_id,opened_at,reason,ticket\nI2,2026-11-22,wrong amount,T-9\n"
EVENTS = "at,channel,type,contact_id,customer_id,detail,provider\n2026-11-16T13:20:00,sms,conversation,,C1,,twilio\n"
UTC = dt.timezone.utc


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def read(folder: Path, colmap=None, **files):
    return read_portfolio(write(folder, "invoices.csv", INVOICES),
                          *(write(folder, f"{k}.csv", files[k]) if k in files else None
                            for k in ("customers", "payments", "promises", "disputes")),
                          fields={}, default_timezone="America/Lima", default_currency="PEN", colmap=colmap)


def test_extra_columns_are_kept_as_text_like_the_invoices_ones(tmp_path):
    book = read(tmp_path, payments=PAYMENTS, promises=PROMISES, disputes=DISPUTES)
    assert book.invoices["I2"].attrs == {"seller": None}  # how invoices keep an empty cell: as None
    assert [p.attrs for p in book.payments] == [{"bank": "BCP", "note": "first part"}, {"bank": None, "note": None}]
    assert [p.attrs for p in book.promises] == [{"agent": "Luis"}]
    assert [d.attrs for d in book.disputes] == [{"ticket": "T-9"}]
    # text, untyped: a number-looking cell stays the text the file wrote; a column without a header is none
    book = read(tmp_path, payments="invoice_id,amount,paid_at,receipt,\nI1,1,2026-11-20,0012,x\n")
    assert book.payments[0].attrs == {"receipt": "0012"}


def test_a_file_without_extra_columns_has_no_attributes(tmp_path):
    book = read(tmp_path, payments="invoice_id,amount,paid_at,payment_id,currency,method\nI1,1,2026-11-20,P,USD,card\n",
                promises="invoice_id,customer_id,amount,promised_date,made_at,channel\nI1,,1,2026-12-01,,sms\n",
                disputes="invoice_id,opened_at,reason,resolved_at\nI1,2026-11-20,,\n")
    assert [x.attrs for x in (*book.payments, *book.promises, *book.disputes)] == [{}, {}, {}]


def test_mapped_columns_are_not_extra_and_a_mapped_extra_takes_its_name(tmp_path):
    cmap = write(tmp_path, "map.yaml", "columns: {invoice_id: Factura, customer_id: RUC, amount: Importe,\n"
                 "  due_date: Vencimiento, paid_at: Fecha, note: Glosa}\n"
                 "delimiter: ';'\ndate_format: '%d/%m/%Y'\ndecimal: ','\n")
    colmap = load_map(cmap)
    write(tmp_path, "erp.csv", "Factura;RUC;Importe;Vencimiento\nI1;C1;100,00;01/12/2026\n")
    pay = write(tmp_path, "pay.csv", "Factura;Importe;Fecha;Glosa;Banco\nI1;40,50;20/11/2026;adelanto;BCP\n")
    book = read_portfolio(tmp_path / "erp.csv", payments_csv=pay, fields={}, default_timezone="America/Lima",
                          default_currency="PEN", colmap=colmap)
    assert book.invoices["I1"].attrs == {}
    (payment,) = book.payments
    assert (payment.amount, payment.paid_at) == (Decimal("40.50"), dt.date(2026, 11, 20))
    assert payment.attrs == {"note": "adelanto", "Banco": "BCP"}
    # the same through `collect import`'s reader
    (payment,) = read_one("payments", pay, fields={}, colmap=colmap, known_invoices={"I1"})
    assert payment.attrs == {"note": "adelanto", "Banco": "BCP"}


def test_a_repeated_dispute_with_another_attribute_is_a_row_error(tmp_path):
    with pytest.raises(CsvError) as info:
        read(tmp_path, disputes=DISPUTES + "I2,2026-11-22,wrong amount,T-10\n")
    assert [str(p).split(":", 1)[1] for p in info.value.problems] == [
        "3: column opened_at: the dispute of invoice I2 opened at 2026-11-22 is on row 2 already, with other values"]


def _import(engine, kind: str, path: Path, colmap=None) -> int:
    return import_file(engine, kind, path, fields={}, colmap=colmap or ColumnMap(), default_tz="America/Lima")


def _attrs(engine, table) -> list:
    with engine.connect() as conn:
        return [r.attrs for r in conn.execute(select(table).order_by(*table.primary_key.columns))]


def test_import_stores_the_attributes_and_a_reimport_adds_nothing(db_url, tmp_path):
    engine = s.connect(db_url)
    _import(engine, "invoices", write(tmp_path, "inv.csv", INVOICES))
    files = {kind: write(tmp_path, f"{kind}.csv", text) for kind, text in
             (("payments", PAYMENTS), ("promises", PROMISES), ("disputes", DISPUTES), ("events", EVENTS))}
    for _ in range(2):  # the second time counts nothing twice
        for kind, path in files.items():
            _import(engine, kind, path)
    assert _attrs(engine, s.payments) == [{"bank": "BCP", "note": "first part"}, {"bank": None, "note": None}]
    assert _attrs(engine, s.promises) == [{"agent": "Luis"}]
    assert _attrs(engine, s.disputes) == [{"ticket": "T-9"}]
    assert _attrs(engine, s.provider_events) == [{"provider": "twilio"}]
    # a payment seen before is ignored, attributes and all (the idempotency rule is unchanged)
    _import(engine, "payments", write(tmp_path, "again.csv", "payment_id,invoice_id,amount,paid_at,bank\n"
                                                             "P1,I1,40,2026-11-20,Interbank\n"))
    assert _attrs(engine, s.payments)[0] == {"bank": "BCP", "note": "first part"}
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(s.payments)).scalar() == 2


def test_a_known_dispute_takes_the_attributes_the_file_now_gives(db_url, tmp_path):
    engine = s.connect(db_url)
    _import(engine, "invoices", write(tmp_path, "inv.csv", INVOICES))
    _import(engine, "disputes", write(tmp_path, "d1.csv", "invoice_id,opened_at,ticket,owner\nI2,2026-11-22,T-9,Ana\n"))
    # as for `reason`: a new value is taken, an empty cell keeps the stored one, a new column is added
    _import(engine, "disputes", write(tmp_path, "d2.csv", "invoice_id,opened_at,ticket,owner,stage\n"
                                                          "I2,2026-11-22,,Luis,legal\n"))
    assert _attrs(engine, s.disputes) == [{"ticket": "T-9", "owner": "Luis", "stage": "legal"}]


def test_import_with_a_map_stores_the_extra_columns_by_their_names(db_url, tmp_path):
    engine = s.connect(db_url)
    _import(engine, "invoices", write(tmp_path, "inv.csv", INVOICES))
    colmap = load_map(write(tmp_path, "map.yaml", "columns: {paid_at: Fecha, amount: Importe, note: Glosa}\n"))
    _import(engine, "payments", write(tmp_path, "pay.csv", "invoice_id,Importe,Fecha,Glosa,Banco\nI1,5,2026-11-20,x,BCP\n"),
            colmap)
    assert _attrs(engine, s.payments) == [{"note": "x", "Banco": "BCP"}]


def test_an_existing_store_is_upgraded_and_keeps_its_rows(db_url, tmp_path):
    from alembic import command

    old = create_engine(db_url)
    with old.begin() as conn:
        command.upgrade(s._alembic_config(conn), "0002")  # a store made before the attributes were kept
        at = dt.datetime(2026, 11, 20, tzinfo=UTC)
        conn.execute(s.customers.insert().values(id="C1", do_not_contact=False, optouts=[], attrs={}))
        conn.execute(s.invoices.insert().values(id="I1", customer_id="C1", amount=100, balance=100,
                                                due_date=dt.date(2026, 12, 1), status="open", attrs={}))
        conn.execute(s.payments.insert().values(payment_id="P1", invoice_id="I1", amount=40, paid_at=at))
        conn.execute(s.promises.insert().values(customer_id="C1", invoice_id="I1", amount=60,
                                                promised_date=dt.date(2026, 12, 4), made_at=at))
        conn.execute(s.disputes.insert().values(invoice_id="I1", opened_at=at))
        conn.execute(s.provider_events.insert().values(at=at, channel="sms", type="conversation", customer_id="C1"))
    old.dispose()
    engine = s.connect(db_url)
    assert s.current_version(engine) == s.head_version()
    for table in ("payments", "promises", "disputes", "provider_events"):
        assert "attrs" in {c["name"] for c in inspect(engine).get_columns(table)}, table
        assert _attrs(engine, getattr(s, table)) == [None]  # rows from before: no attributes known
    # the stored payment is still recognised; a new one keeps its extra columns
    _import(engine, "payments", write(tmp_path, "pay.csv", "payment_id,invoice_id,amount,paid_at,bank\n"
                                                           "P1,I1,40,2026-11-20,BCP\nP2,I1,10,2026-11-25,BBVA\n"))
    assert _attrs(engine, s.payments) == [None, {"bank": "BBVA"}]
    _import(engine, "disputes", write(tmp_path, "d.csv", "invoice_id,opened_at,ticket\nI1,2026-11-20T00:00:00Z,T-1\n"))
    assert _attrs(engine, s.disputes) == [{"ticket": "T-1"}]


def test_a_column_named_twice_is_refused_rather_than_losing_a_cell(tmp_path):
    invoices = write(tmp_path, "inv.csv", "invoice_id,customer_id,amount,due_date\nI1,C1,100,2026-12-01\n")
    for header, colmap in (("note,note", None), ("Glosa,note", load_map(write(tmp_path, "map.yaml",
                                                                                "columns: {note: Glosa}\n")))):
        payments = write(tmp_path, "pay.csv", f"invoice_id,amount,paid_at,{header}\nI1,40,2026-11-20,first,second\n")
        with pytest.raises(CsvError, match=r"pay.csv:1: column \w+: column 'note' appears twice \(columns 4 and 5\)"):
            read_portfolio(invoices, payments_csv=payments, fields={}, default_timezone="UTC", default_currency="USD",
                           colmap=colmap)


RISK_POLICY = """\
policy: p
timezone: America/Santiago
windows: { default: { mon-sun: "09:00-18:00" } }
fields: { customer.risk: str, invoice.seller: str }
segments: { high: customer.risk == "high" }
templates: { m: { sms: hi } }
stages:
  s: { when: true, steps: [{ id: a, at: due, for: high, send: sms, template: m }] }
"""


@pytest.mark.parametrize("header, files, hint", [
    ("risk", {}, None),  # read: no warning
    ("customer.risk", {}, "customer.risk"),  # the field's name as the header: silently null for everyone
    ("Riesgo", {"map.yaml": "columns: { customer.risk: Riesgo }\n"}, "customer.risk"),  # ... or as the map's key
    ("riesgo", {}, ""),
])
def test_simulate_warns_about_a_declared_field_no_file_has_a_column_for(tmp_path, header, files, hint):
    """`segment high = customer.risk == "high"` matched no one, without a word, when the column was not `risk`."""
    from clitools import cli_simulate

    portfolio = f"invoice_id,customer_id,amount,due_date,phone,seller,{header}\nA,C1,100,2026-11-02,+56912345678,Ana,high\n"
    args = ["--map", "{tmp}/map.yaml"] if files else []
    result = cli_simulate(tmp_path, RISK_POLICY, portfolio, "--start", "2026-11-01", "--days", "3", *args, files=files)
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if "declares" in line]
    if hint is None:
        assert warnings == [] and "Outcomes: none" not in result.output  # the segment matched: A was sent
        return
    said = (f"{tmp_path / 'p.csv'}: warning: the policy declares customer.risk, and no file has a column 'risk': "
            "it is null for every customer")
    assert warnings == [said + (f"; a column (or a column map's key) is named 'customer.risk': name it 'risk' (in "
                                "a column map: risk: HEADER)" if hint else "")]

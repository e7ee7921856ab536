"""Row readers for each portfolio file (see engine/portfolio.py for the rules and data classes)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from ..dsl.diagnostics import suggest
from ..dsl.timeparse import closest_zone
from .compliance import legal_states
from .portfolio import (CUSTOMER_COLUMNS, DISPUTE_COLUMNS, INVOICE_COLUMNS, OPTOUT_CHANNELS, PAYMENT_COLUMNS,
                        PROMISE_COLUMNS, STATUSES, Cells, ColumnMap, CsvError, Customer, Dispute, Invoice, Payment,
                        Portfolio, Problem, Promise, Table, _zones,
                        unmatched_value_columns)

CUSTOMER_FIELDS = {"customer_name": "name", "email": "email", "phone": "phone", "whatsapp": "whatsapp",
                   "timezone": "timezone", "country": "country", "language": "language"}
# what `collect import` tells of a reference the store does not have (simulate: not in the portfolio)
NOT_STORED_INVOICE = "not in the store: import the invoices first"
NOT_STORED_CUSTOMER = "not in the store: import its invoices or customers first"
FLAG_COLUMNS = ("do_not_contact", *(f"optout_{c}" for c in OPTOUT_CHANNELS), *(f"consent_{c}" for c in OPTOUT_CHANNELS))


def read_all(portfolio_csv, customers_csv, payments_csv, promises_csv, disputes_csv, *, fields: dict[str, str],
             default_timezone: str, default_currency: str, colmap: ColumnMap) -> Portfolio:
    problems: list[Problem] = []
    custom = {ns: {k.split(".", 1)[1]: v for k, v in fields.items() if k.startswith(ns + ".")}
              for ns in ("customer", "invoice")}
    book = Portfolio()
    customer_values: dict[str, dict] = {}
    invoices = Table(Path(portfolio_csv), colmap, problems)
    tables = [invoices]
    if invoices.rows is not None and invoices.headers and invoices.require("invoice_id", "customer_id", "amount",
                                                                             "due_date"):
        _invoices(invoices, book, customer_values, custom, default_currency)
    if customers_csv is not None:
        table = Table(Path(customers_csv), colmap, problems)
        tables.append(table)
        if table.headers and table.require("customer_id"):
            _customers(table, customer_values, custom)
    for cid, values in customer_values.items():
        book.customers[cid] = _customer(cid, values)
    for path, read in ((payments_csv, _payments), (promises_csv, _promises), (disputes_csv, _disputes)):
        if path is not None:
            tables.append(Table(Path(path), colmap, problems))
            read(tables[-1], book)
    problems[:0] = unmatched_value_columns(colmap, tables)  # first: a map's mistake may cause row errors
    if problems:
        raise CsvError(problems)
    book.absent_fields = absent_fields(fields, tables[:2] if customers_csv is not None else tables[:1])
    return book


def absent_fields(fields: dict[str, str], tables: list) -> list[str]:
    """The declared fields no file has a column for (the portfolio's; a customer's also the customers
    file's), each with what it reads instead: null for every row, so a segment on it matches no one."""
    found = []
    for name in fields:
        ns, column = name.split(".", 1)
        where = tables if ns == "customer" else tables[:1]
        if any(column in t.index for t in where):
            continue
        named = [t for t in where if name in t.index]  # a header (or a map key) `customer.risk`
        hint = (f"; a column (or a column map's key) is named '{name}': name it '{column}' (in a column "
                f"map: {column}: HEADER)" if named else "")
        found.append(f"the policy declares {name}, and no file has a column '{column}': it is null for every "
                     f"{ns}{hint}")
    return found


def _customer_from(cells: Cells, custom: dict) -> dict:
    values = {attr: cells.text(col) for col, attr in CUSTOMER_FIELDS.items() if col in cells.t.index}
    if values.get("timezone") and values["timezone"] not in _zones():
        hint = closest_zone(values["timezone"])
        cells.problem("timezone", f"unknown time zone '{values['timezone']}'" + (f" (did you mean '{hint}'?)" if hint else ""))
        values["timezone"] = None
    if values.get("country"):  # holidays, phone numbers and `compliance: auto` go by the ISO code
        country = values["country"].upper()
        if country not in _countries():
            cells.problem("country", f"'{values['country']}' is not an ISO 3166 country code (two letters, e.g. PE)")
        values["country"] = country if country in _countries() else None
    # true/false columns merge one by one, like attrs: an empty cell is no answer (boolean() gives None)
    flags = {col: cells.boolean(col) for col in FLAG_COLUMNS if col in cells.t.index}
    values["flags"] = {col: value for col, value in flags.items() if value is not None}
    if any(col.startswith("consent_") for col in flags):
        values["keeps_consents"] = True
    if "legal_status" in cells.t.index:  # lowercased, it may grow (İ is i and a dot): the store keeps that
        values["legal_status"] = cells.fits("legal_status", (cells.text("legal_status") or "").lower()) or None
        known = legal_states() | {"none"}  # `none` clears a stored state (an empty cell keeps it)
        if values["legal_status"] is not None and values["legal_status"] not in known:
            # `demandado` would stop nothing, silently, where the law says all contact stops
            hint = suggest(values["legal_status"], known)
            cells.problem("legal_status", f"'{values['legal_status']}' is not a legal status collect knows "
                          f"({', '.join(sorted(known))}); write none when no such state applies"
                          + (f" ({hint})" if hint else ""))
    attrs = {name: cells.typed(name, kind) for name, kind in custom["customer"].items() if name in cells.t.index}
    values["attrs"] = attrs
    return values


@lru_cache(maxsize=1)
def _countries() -> frozenset[str]:
    """ISO 3166-1 alpha-2 codes (with the exceptionally reserved ones, such as AC), from the CLDR data
    Babel carries, less CLDR's groupings and placeholders (EU, UN, ZZ ...)."""
    from babel import Locale

    groupings = {"EU", "EZ", "QO", "UN", "XA", "XB", "ZZ"}
    return frozenset(k for k in Locale("en").territories if len(k) == 2 and k.isalpha()) - groupings


def _customer(cid: str, values: dict) -> Customer:
    values = dict(values)
    flags, keeps_consents = values.pop("flags", {}), values.pop("keeps_consents", False)
    agreed = {c for c in OPTOUT_CHANNELS if flags.get(f"consent_{c}")}
    return Customer(cid, **values, do_not_contact=flags.get("do_not_contact"),
                    optouts=frozenset(c for c in OPTOUT_CHANNELS if flags.get(f"optout_{c}")),
                    consents=frozenset(agreed) if keeps_consents else None,
                    answered=frozenset(col for col in flags if col != "do_not_contact"))


def _merge(existing: dict, new: dict, cells: Cells, override: bool) -> None:
    """Fill a customer's values; two different values from invoice rows are a conflict."""
    for key, value in new.items():
        if isinstance(value, dict):  # attrs and flags, merged column by column
            _merge(existing.setdefault(key, {}), value, cells, override)
            continue
        old = existing.get(key)
        if value is None or value == old:
            continue
        if key.startswith("optout_"):  # an opt-out is never lifted (SPEC 4.6), as `collect import` keeps it:
            existing[key] = old or value  # a true anywhere stands, whichever row or file says false
            continue
        if old is not None and not override:
            column = next((c for c, a in CUSTOMER_FIELDS.items() if a == key), key)
            cells.problem(column, f"customer {cells.raw('customer_id')} already has {key} '{old}' from an earlier "
                          f"row; this row says '{value}'")
            continue
        existing[key] = value


def _invoices(table: Table, book: Portfolio, customers: dict, custom: dict, currency: str) -> None:
    first_row: dict[str, int] = {}
    # a customer's columns repeat on each of its invoices: parse them again only when they differ, or
    # when they had a problem (every bad row is reported, each with its own row number)
    customer_cells = [i for name, i in table.index.items() if name in CUSTOMER_COLUMNS or name in custom["customer"]]
    seen_cells: dict[str, list] = {}  # customer -> the cells of its last row parsed without a problem
    known = set(INVOICE_COLUMNS) | set(CUSTOMER_COLUMNS) | set(custom["customer"])
    typed = [(name, kind) for name, kind in custom["invoice"].items() if name in table.index]
    untyped = table.extra(known | set(custom["invoice"]))
    for cells in table:
        iid, cid = cells.ident("invoice_id"), cells.ident("customer_id")
        amount = cells.money("amount", True)
        balance = cells.money("balance")
        due, issued = cells.date("due_date", True), cells.date("issue_date")
        status = (cells.text("status") or "open").lower()
        if status not in STATUSES:
            cells.problem("status", f"unknown status '{cells.text('status')}' (expected {', '.join(STATUSES)})")
        if due and issued and due < issued:
            cells.problem("due_date", f"due date {due} is before the issue date {issued}")
        if iid in first_row:
            cells.problem("invoice_id", f"duplicate invoice id '{iid}' (first seen on row {first_row[iid]})")
            continue
        if iid is not None:
            first_row[iid] = cells.number  # even when the row has other problems
        signature = [cells.row[i] if i < len(cells.row) else "" for i in customer_cells]
        if cid and seen_cells.get(cid) != signature:
            before = len(table.problems)
            _merge(customers.setdefault(cid, {"attrs": {}}), _customer_from(cells, custom), cells, override=False)
            if len(table.problems) == before:
                seen_cells[cid] = signature
            else:
                seen_cells.pop(cid, None)
        attrs = {name: cells.typed(name, kind) for name, kind in typed}
        attrs.update(cells.texts(untyped))
        number, own_currency = cells.text("number"), cells.currency()  # checked whatever else is wrong
        if iid is None or cid is None or amount is None or due is None:
            if iid is not None:
                book.unreadable.add(iid)
            continue
        book.invoices[iid] = Invoice(iid, cid, amount, amount if balance is None else balance, due,
                                     number, own_currency or currency, issued, status, attrs)


def _customers(table: Table, customers: dict, custom: dict) -> None:
    seen: dict[str, int] = {}
    for cells in table:
        cid = cells.ident("customer_id")
        if cid is None:
            continue
        if cid in seen:
            cells.problem("customer_id", f"duplicate customer id '{cid}' (first seen on row {seen[cid]})")
            continue
        seen[cid] = cells.number
        known = set(CUSTOMER_COLUMNS) | {"customer_id"} | set(custom["customer"])
        values = _customer_from(cells, custom)
        values["attrs"].update(cells.texts(table.extra(known)))
        _merge(customers.setdefault(cid, {"attrs": {}}), values, cells, override=True)


def _known_invoice(cells: Cells, book: Portfolio, required: bool = True) -> str | None:
    iid = cells.text("invoice_id", required)
    if iid in book.unreadable:
        return None  # its row's own error says what is wrong; "unknown invoice" would point elsewhere
    if iid is not None and iid not in book.invoices:
        where = getattr(book.invoices, "missing", "not in the portfolio")
        cells.problem("invoice_id", f"unknown invoice '{iid}' ({where})")
        return None
    return iid


def _payments(table: Table, book: Portfolio) -> None:
    if not table.headers or not table.require("invoice_id", "amount", "paid_at"):
        return
    seen: dict[str, tuple] = {}
    extra = table.extra(PAYMENT_COLUMNS)
    for cells in table:
        iid, amount = _known_invoice(cells, book), cells.money("amount", True)
        paid_at = cells.date("paid_at", True, with_time=True)
        # without a payment_id, the payment is named by what it is, so the same line in tomorrow's
        # export (whatever the file's name or the line's place) is recognised and not counted twice
        pid = cells.text("payment_id") or _content_id(iid, amount, paid_at)
        currency, method = cells.currency(), cells.text("method")  # checked whatever else is wrong
        facts = tuple(map(_canonical, (iid, amount, paid_at)))  # values, not their text: 100 is 100.00
        if pid in seen:  # the same payment twice in one file counts once; two different ones is a mistake
            if seen[pid] != facts:
                cells.problem("payment_id", f"payment '{pid}' is already in this file with another invoice, "
                                            "amount or date")
            continue
        seen[pid] = facts
        if iid and amount is not None and paid_at is not None:
            book.payments.append(Payment(pid, iid, amount, paid_at, currency, method,
                                         cells.texts(extra), cells.number))


def _content_id(*parts) -> str:
    import hashlib

    return "auto-" + hashlib.sha256("|".join(map(_canonical, parts)).encode()).hexdigest()[:20]


def _canonical(value) -> str:
    """One text per value, however the file wrote it: 500, 500.0 and 500.00 are one amount; a date
    alone is its midnight, as the readers take it."""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return str(dt.datetime.combine(value, dt.time()))
    return str(value)


def _made_after(made, promised: dt.date | None) -> bool:
    """Was a promise made after the day it promised? Swapped dates would make it broken at once. A time
    with its own offset is on another clock than the customer's, whose day may be one earlier: only a
    day and more after is sure."""
    if made is None or promised is None:
        return False
    if isinstance(made, dt.datetime):
        return made.date() > promised + dt.timedelta(days=1 if made.tzinfo is not None else 0)
    return made > promised


def _promises(table: Table, book: Portfolio) -> None:
    if not table.headers or not table.require("amount", "promised_date"):
        return
    seen = set()
    extra = table.extra(PROMISE_COLUMNS)
    for cells in table:
        iid = _known_invoice(cells, book, required=False)
        cid = cells.text("customer_id")
        if cells.raw("invoice_id") is None and cells.raw("customer_id") is None:  # not: a bad one
            cells.problem("invoice_id", "a promise needs an invoice_id or a customer_id")
        if cid is not None and cid not in book.customers:
            where = getattr(book.customers, "missing", "not in the portfolio")  # as _known_invoice says it
            cells.problem("customer_id", f"unknown customer '{cid}' ({where})")
            cid = None
        # a promise is its customer's (the store keeps it by customer): one about another's invoice is a
        # mistake that the decision core would never see
        owner = getattr(book.invoices.get(iid), "customer_id", None) if iid else None
        if cid is not None and owner is not None and cid != owner:
            cells.problem("customer_id", f"invoice '{iid}' belongs to customer '{owner}', not '{cid}'")
            cid = iid = None
        amount, promised = cells.money("amount", True), cells.date("promised_date", True)
        made = cells.date("made_at", with_time=True)
        channel = cells.text("channel")
        if _made_after(made, promised):  # as a dispute resolved before it was opened
            cells.problem("made_at", f"made on {made.date() if isinstance(made, dt.datetime) else made}, after "
                          f"its promised date {promised}")
            continue
        if not ((iid or cid) and amount is not None and promised is not None):
            continue
        promise = Promise(iid, cid, amount, promised, made, channel, cells.texts(extra))
        # named as the store names it (its customer, the default made_at): the same promise written two
        # ways, with and without its invoice's customer or made_at, counts once, as in the store
        name = (iid, cid or owner, _canonical(amount), promised, _canonical(promise.made()))  # values, not text
        if name not in seen:
            seen.add(name)
            book.promises.append(promise)


def _disputes(table: Table, book: Portfolio) -> None:
    """A dispute is named by its invoice and opening time (the store updates it by them)."""
    if not table.headers or not table.require("invoice_id", "opened_at"):
        return
    first: dict[tuple, tuple[int, tuple]] = {}
    extra = table.extra(DISPUTE_COLUMNS)
    for cells in table:
        iid = _known_invoice(cells, book)
        opened, resolved = cells.date("opened_at", True, with_time=True), cells.date("resolved_at", with_time=True)
        if not iid or opened is None:
            continue
        if resolved is not None and _surely_before(resolved, opened):  # swapped dates would pause nothing
            cells.problem("resolved_at", f"resolved at {resolved}, before the dispute was opened ({opened})")
            continue
        dispute = Dispute(iid, opened, cells.text("reason"), resolved, cells.texts(extra))
        # values, not their text: 2026-11-30 and 2026-11-30T00:00 open one dispute
        key, facts = (iid, _canonical(opened)), (dispute.reason, _canonical(resolved), dispute.attrs)
        if key in first:
            row, earlier = first[key]
            if earlier != facts:
                cells.problem("opened_at", f"the dispute of invoice {iid} opened at {opened} is on row {row} "
                              "already, with other values")
            continue
        first[key] = (cells.number, facts)
        book.disputes.append(dispute)


def _surely_before(a, b) -> bool:
    """Is the date or time `a` before `b`? A time without an offset is the customer's clock, whose zone a
    reader may not know yet: against one with an offset, only a gap longer than two UTC offsets can differ
    (-12:00 to +14:00) is sure."""
    a, b = (v if isinstance(v, dt.datetime) else dt.datetime.combine(v, dt.time()) for v in (a, b))
    if (a.tzinfo is None) == (b.tzinfo is None):
        return a < b
    return a.replace(tzinfo=None) < b.replace(tzinfo=None) - dt.timedelta(hours=27)


class _Owned:
    """A stored invoice as a file's references see it: its owner."""

    __slots__ = ("customer_id",)

    def __init__(self, customer_id: str | None):
        self.customer_id = customer_id


class _Known(dict):
    """Stands in for the store's invoices/customers when checking references in a single file: ids, or
    invoice id -> its customer's id."""

    def __init__(self, ids, missing: str):
        pairs = ids.items() if isinstance(ids, Mapping) else ((i, None) for i in ids)
        super().__init__((i, _Owned(owner)) for i, owner in pairs)
        self.missing = missing  # what an unknown reference is told, after its id


def read_one(kind: str, path, *, fields: dict[str, str], colmap: ColumnMap, known_invoices=(), known_customers=(),
             against_store=None):
    """One file of one kind (for `collect import`): customers, payments, promises or disputes.

    References are checked against the ids already in the store: `known_invoices` their ids, or better a
    mapping of each to its customer's id (a promise's customer must own its invoice). `against_store`:
    the problems of the good rows with what the store holds (a function of them), reported with the
    others. Raises CsvError with every problem."""
    problems: list[Problem] = []
    table = Table(Path(path), colmap, problems)
    book = Portfolio()
    book.invoices = _Known(known_invoices, NOT_STORED_INVOICE)
    book.customers = _Known(known_customers, NOT_STORED_CUSTOMER)
    result = None
    if table.headers:
        if kind == "customers":
            values: dict[str, dict] = {}
            custom = {ns: {k.split(".", 1)[1]: v for k, v in fields.items() if k.startswith(ns + ".")}
                      for ns in ("customer", "invoice")}
            if table.require("customer_id"):
                _customers(table, values, custom)
            result = {cid: _customer(cid, v) for cid, v in values.items()}
        else:
            {"payments": _payments, "promises": _promises, "disputes": _disputes}[kind](table, book)
            result = {"payments": book.payments, "promises": book.promises, "disputes": book.disputes}[kind]
    if against_store is not None and result:
        problems += against_store(result)
        problems.sort(key=lambda p: p.row)
    problems[:0] = unmatched_value_columns(colmap, [table])  # first: a map's mistake may cause row errors
    if problems:
        raise CsvError(problems)
    return result


def extra_columns(path: Path, colmap: ColumnMap) -> list[str]:
    """The columns of a portfolio or customers file that are not standard (SPEC section 7): without a
    policy nobody says whether they describe the customer or the invoice, nor their type."""
    import csv

    from .portfolio import _sniff

    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            first = handle.readline()
    except (OSError, UnicodeDecodeError):
        return []  # the import itself reports an unreadable file
    headers = next(csv.reader([first], delimiter=colmap.delimiter or _sniff(first)), [])
    source_of = colmap.source_of()
    standard = set(INVOICE_COLUMNS) | set(CUSTOMER_COLUMNS) | {"customer_id"}
    return [h.strip() for h in headers if h.strip() and source_of.get(h.strip(), h.strip()) not in standard]

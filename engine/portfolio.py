"""Portfolio CSV files (SPEC section 7): invoices, customers, payments, promises, disputes.

Everything is validated before anything is returned: every bad row of every file is collected as
`FILE:ROW: column COL: reason` and raised together as CsvError, so a bad file never yields a
half-loaded portfolio. ROW is the line of the file where the row starts (the header is line 1): a quoted
cell may hold a line break, and the number still points at the line an editor shows. `--map`
(ColumnMap) reads ERP exports as they come: other column names, a delimiter, a strptime date format,
decimal and thousands separators.

Customer columns may come on the invoice rows or from a customers CSV keyed by customer_id; where both
give a value, the customers CSV wins. Unknown extra columns, in every file, are kept as text attributes
(`attrs`). An empty cell says nothing (None: a stored value is kept); for the true/false columns too, so
that a file that does not know a customer's `do_not_contact` never clears it.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from functools import lru_cache
from itertools import islice
from pathlib import Path

from ..dsl.diagnostics import near_typo, suggest
from ..dsl.fields import currency_problem
from ..dsl.timeparse import time_zones

STATUSES = ("open", "paid", "disputed", "written_off")
OPTOUT_CHANNELS = ("email", "sms", "whatsapp", "voice", "letter")
CUSTOMER_COLUMNS = ("customer_name", "email", "phone", "whatsapp", "timezone", "country", "language",
                    "do_not_contact", "legal_status", *(f"optout_{c}" for c in OPTOUT_CHANNELS),
                    *(f"consent_{c}" for c in OPTOUT_CHANNELS))
INVOICE_COLUMNS = ("invoice_id", "customer_id", "amount", "due_date", "number", "currency", "issue_date", "balance",
                   "status")
# the known columns of the other files (docs/files.md); any other column is kept as a text attribute
PAYMENT_COLUMNS = ("invoice_id", "amount", "paid_at", "payment_id", "currency", "method")
PROMISE_COLUMNS = ("invoice_id", "customer_id", "amount", "promised_date", "made_at", "channel")
DISPUTE_COLUMNS = ("invoice_id", "opened_at", "reason", "resolved_at")
EVENT_COLUMNS = ("at", "channel", "type", "contact_id", "customer_id", "detail")
MAP_KEYS = ("columns", "delimiter", "date_format", "datetime_format", "decimal", "thousands", "values")
KNOWN_COLUMNS = frozenset(INVOICE_COLUMNS + CUSTOMER_COLUMNS + PAYMENT_COLUMNS + PROMISE_COLUMNS + DISPUTE_COLUMNS
                          + EVENT_COLUMNS)
TRUE, FALSE = {"true", "1", "yes", "y"}, {"false", "0", "no", "n"}
MAX_DIGITS = 15  # digits before the point of an amount or balance: more is a broken cell, not money
MONEY_PLACES = 6  # an amount's decimal places, in the store and in a simulation: every ISO 4217 currency has at most 4
FIELD_DIGITS = 28  # of a custom number field (an 18-digit account number is fine): Decimal's precision
# The store's column sizes (engine/store.py) that a standard column's text is kept in: a longer value is a
# row error, in `collect simulate` too, not a value that SQLite keeps and PostgreSQL refuses. The other
# standard columns are Text or JSON, or are checked against short lists (timezone, country, currency,
# status, an event's type and channel).
SIZES = {"invoice_id": 100, "customer_id": 100, "payment_id": 200, "language": 16, "legal_status": 32,
         "channel": 32}
IDS = ("invoice_id", "customer_id", "payment_id")  # identifiers: shown in tables, keys and logs
# the columns that decide whether a customer may be contacted or an invoice chased: a misspelt one would
# be kept as an attribute and silently do nothing (Table.misspelt)
GUARDED = frozenset({"status", "balance", "do_not_contact", "legal_status", *(f"optout_{c}" for c in OPTOUT_CHANNELS),
                     *(f"consent_{c}" for c in OPTOUT_CHANNELS)})
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")  # control characters (Unicode category Cc)
FIRST_YEAR, LAST_YEAR = 1900, 2199  # dates the calendar can add steps, horizons and holidays to
HEAD_LINES = 10  # the first lines looked at for a header under a title line (Table.header_below)


@dataclass(frozen=True)
class Problem:
    file: str
    row: int
    column: str | None
    reason: str

    def __str__(self) -> str:
        where = f" column {self.column}:" if self.column else ""
        # one problem per line, every character visible: a value quoted in a reason may hold a line break
        # (a quoted cell can) or a control character, which a terminal would hide or act on
        reason = self.reason.translate(_VISIBLE)
        return f"{self.file}:{self.row}:{where} {reason}"


# control characters as Python writes them in a string: \n, \r, \t, \x01, \x7f, \x85
_VISIBLE = {code: repr(chr(code))[1:-1] for code in [*range(32), *range(127, 160)]}


class CsvError(Exception):
    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(map(str, problems)))


@dataclass(frozen=True, slots=True)
class Customer:
    id: str
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    whatsapp: str | None = None
    timezone: str | None = None
    country: str | None = None
    language: str | None = None
    do_not_contact: bool | None = None  # None: no file said (a new customer: false; a stored one keeps its own)
    optouts: frozenset = frozenset()  # channels whose optout_ cell said true
    attrs: dict = field(default_factory=dict)
    consents: frozenset | None = None  # channels agreed to explicitly; None: the file keeps no consent
    legal_status: str | None = None  # sued, insolvent ...
    # the optout_*/consent_* columns whose cell said true or false: the store changes only those channels
    answered: frozenset = frozenset()


@dataclass(frozen=True, slots=True)
class Invoice:
    id: str
    customer_id: str
    amount: Decimal
    balance: Decimal
    due_date: dt.date
    number: str | None = None
    currency: str | None = None
    issue_date: dt.date | None = None
    status: str = "open"
    attrs: dict = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Payment:
    payment_id: str
    invoice_id: str
    amount: Decimal
    paid_at: dt.date | dt.datetime  # naive: the customer's local time; aware when the file gave an offset
    currency: str | None = None
    method: str | None = None
    attrs: dict = field(default_factory=dict)  # the file's other columns, as text
    line: int = field(default=0, compare=False)  # where the row starts in its file, for problems


@dataclass(frozen=True, slots=True)
class Promise:
    invoice_id: str | None
    customer_id: str | None
    amount: Decimal
    promised_date: dt.date
    made_at: dt.date | dt.datetime | None = None
    channel: str | None = None
    attrs: dict = field(default_factory=dict)

    def made(self) -> dt.date | dt.datetime:
        """When the promise was made. A row without `made_at` counts as made a week before the promised
        date, in `simulate` and in the store alike, so that both pause the cadence over the same days."""
        return self.made_at or self.promised_date - dt.timedelta(days=7)


@dataclass(frozen=True, slots=True)
class Dispute:
    invoice_id: str
    opened_at: dt.date | dt.datetime
    reason: str | None = None
    resolved_at: dt.date | dt.datetime | None = None
    attrs: dict = field(default_factory=dict)


@dataclass
class Portfolio:
    customers: dict[str, Customer] = field(default_factory=dict)
    invoices: dict[str, Invoice] = field(default_factory=dict)
    payments: list[Payment] = field(default_factory=list)
    promises: list[Promise] = field(default_factory=list)
    disputes: list[Dispute] = field(default_factory=list)
    # invoices whose own row is in error: a payment or promise about one is not an error of its own
    unreadable: set[str] = field(default_factory=set)
    absent_fields: list[str] = field(default_factory=list)  # declared fields no file has a column for


@dataclass(frozen=True)
class ColumnMap:
    # canonical name -> its header in the files: one, or several when the exports read with one map name
    # it differently (the invoices' `Importe`, the payments' `Monto`); a file has one of them
    columns: dict[str, tuple[str, ...]] = field(default_factory=dict)
    delimiter: str | None = None
    date_format: str | None = None
    decimal: str = "."
    thousands: str = ""
    datetime_format: str | None = None  # for the date-time columns (paid_at, made_at ...), else date_format
    values: dict[str, dict[str, str]] = field(default_factory=dict)  # column -> {file's value: ours}
    source: str = "the column map"  # the map's file, for its problems
    lines: dict[str, int] = field(default_factory=dict, compare=False)  # `values:` column -> its line in the map

    def __post_init__(self):
        object.__setattr__(self, "columns", {name: (headers,) if isinstance(headers, str) else tuple(headers)
                                             for name, headers in self.columns.items()})

    def headers_of(self, name: str) -> tuple[str, ...]:
        return self.columns.get(name, (name,))

    def shown(self, name: str) -> str:
        """The header(s) a file would have for our column `name`, as messages name it."""
        return " or ".join(self.headers_of(name))

    def source_of(self) -> dict[str, str]:
        """The file's header -> our name, for the headers the map names."""
        return {header: name for name, headers in self.columns.items() for header in headers}


def load_map(path: str | Path) -> ColumnMap:
    """Read a column map; every problem is reported at the line of the key or value it is about."""
    from ..dsl.yamlload import load_yaml_file_located

    path = Path(path)
    try:
        located = load_yaml_file_located(path)
    except (OSError, ValueError) as exc:
        raise CsvError([Problem(str(path), 1, None, f"cannot read the column map: {exc}")]) from None
    data = located.data if located else {}
    if not isinstance(data, dict):
        raise CsvError([Problem(str(path), 1, None, "a column map is a mapping (columns:, delimiter:, ...)")])
    reasons = []  # (the YAML path of the key or value it is about, reason)
    for key in data:
        if key not in MAP_KEYS:
            hint = suggest(str(key), MAP_KEYS)
            reasons.append(((key,), f"unknown key '{key}'" + (f" ({hint})" if hint else "")))
    columns = data.get("columns") or {}
    if not isinstance(columns, dict) or not all(map(_headers, columns.values())):
        wrong = next((k for k, v in columns.items() if not _headers(v)), None) if isinstance(columns, dict) else None
        reasons.append((("columns",) if wrong is None else ("columns", wrong),
                        "columns maps canonical names to the file's headers: a header, or a list of the headers "
                        "different files give it (amount: [Importe, Monto])"))
    else:
        reasons += _shared_header_problems(columns)
    reasons += _map_value_problems(data)
    if reasons:
        raise CsvError([Problem(str(path), located.span(where, prefer_key=len(where) == 1).line, None, reason)
                        for where, reason in reasons])
    values = {str(column): {key.strip(): ours for key, ours in mapping.items()}
              for column, mapping in (data.get("values") or {}).items()}
    lines = {str(column): located.span(("values", column), prefer_key=True).line for column in values} if located else {}
    return ColumnMap({str(k): v for k, v in columns.items()}, data.get("delimiter"), data.get("date_format"),
                     str(data.get("decimal", ".")), str(data.get("thousands", "")), data.get("datetime_format"),
                     values, str(path), lines)


def _headers(value) -> bool:
    """A header, or a non-empty list of headers (one per export that names the column its own way)."""
    return isinstance(value, str) or (isinstance(value, list) and bool(value) and all(isinstance(v, str) for v in value))


def _short(value) -> str:
    """A value as a message may quote it: cut short (an alias may stand for a huge list)."""
    import reprlib

    return reprlib.repr(value)


def _shared_header_problems(columns: dict) -> list[tuple[tuple, str]]:
    """Two of our columns given the same header (`amount: Importe, balance: Importe`). A header is one
    column of the file, read as one of ours: the others would be reported missing under the very header
    the file has, a message that contradicts itself. Said once per header, naming every column."""
    names_of: dict[str, list[str]] = {}
    for name, headers in columns.items():
        for header in [headers] if isinstance(headers, str) else dict.fromkeys(headers):
            names_of.setdefault(header, []).append(str(name))
    reasons = []
    for header, names in names_of.items():
        if len(names) > 1:
            listed = ", ".join(f"'{n}'" for n in names[:-1]) + f" and '{names[-1]}'"
            every = "both" if len(names) == 2 else "all"
            reasons.append((("columns", names[-1]), f"columns: {listed} {every} name the header '{header}': a "
                            "header is read as one column; keep one of them"))
    return reasons


def _separator_problems(data: dict) -> list[tuple[tuple, str]]:
    """`decimal` and `thousands` the same character: the thousands separator is removed first, so the
    decimal one would be gone too and `12,50` read as 1250, a hundredfold amount, silently. `decimal`
    defaults to '.', so `thousands: '.'` alone is that mistake as well."""
    decimal, thousands = data.get("decimal", "."), data.get("thousands")
    if not (isinstance(decimal, str) and isinstance(thousands, str)) or not thousands or thousands != decimal:
        return []
    example = f"12{decimal}50 would be read as 1250"
    if "decimal" not in data:
        return [(("thousands",), f"thousands: '{thousands}' is also the decimal separator ('.' unless the map "
                 f"says another, e.g. decimal: ','): {example}")]
    return [(("thousands",), f"decimal and thousands are both '{decimal}': a number has one decimal separator "
             f"and another thousands one ({example})")]


def _map_value_problems(data: dict) -> list[tuple[tuple, str]]:
    """Values the csv module or strptime would reject with a traceback, said as map errors."""
    reasons = []
    delimiter = data.get("delimiter")
    if delimiter is not None and (not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in '"\r\n'):
        reasons.append((("delimiter",), "delimiter must be one character, not a quote or a line break "
                        f"(got {_short(delimiter)})"))
    for key in ("date_format", "datetime_format"):
        if data.get(key) is not None and not isinstance(data[key], str):
            reasons.append(((key,), f"{key} must be a strptime format text such as '%d/%m/%Y' "
                            f"(got {_short(data[key])})"))
        elif isinstance(data.get(key), str) and (problem := _format_problem(data[key])):
            reasons.append(((key,), f"{key}: {problem}"))
    for key, empty in (("decimal", False), ("thousands", True)):
        value = data.get(key)
        if value is not None and not (isinstance(value, str) and len(value) <= 1 and (empty or value)):
            reasons.append(((key,), f"{key} must be one character (got {_short(value)})"))
    return reasons + _separator_problems(data) + _value_map_problems(data.get("values"))


def _format_problem(fmt: str) -> str:
    """Why a date format cannot read dates ("" if it can): said once at the map, not at every cell of every
    row (an unknown directive such as %Q, or a format without the year, month or day)."""
    # aware: %z and %Z write nothing for a naive time, and then could not read back what they wrote
    sample = dt.datetime(2026, 11, 20, 15, 4, 5, tzinfo=dt.timezone.utc)
    try:
        read = dt.datetime.strptime(sample.strftime(fmt), fmt)
    except ValueError as exc:
        return f"'{fmt}' is not a strptime format ({exc}); e.g. '%d/%m/%Y'"
    if read.date() != sample.date():
        return (f"'{fmt}' does not read a whole date: {sample:%Y-%m-%d} written with it ('{sample.strftime(fmt)}') "
                f"reads back as {read:%Y-%m-%d}; it needs the day, the month and the year, e.g. '%d/%m/%Y'")
    return ""


def _value_map_problems(values) -> list[tuple[tuple, str]]:
    """`values:` is column -> {file's value: ours}. The file's values are keys, read as written; ours
    must be text, as a cell is: YAML reads an unquoted 1.50 as the number 1.5 and true as a boolean, which
    would not say which text is meant."""
    if values is None:
        return []
    example = "e.g. values: {status: {ABIERTA: open, PAGADA: paid}}"
    if not isinstance(values, dict):
        return [(("values",), f"values maps column names to the file's values and ours ({example}), "
                 f"got {_short(values)}")]
    reasons = []
    for column, mapping in values.items():
        if not isinstance(mapping, dict) or not mapping:
            reasons.append((("values", column), f"values: {column}: a mapping of the file's values to ours ({example})"))
            continue
        for key, ours in mapping.items():
            if not isinstance(ours, str):
                reasons.append((("values", column, key), f"values: {column}: {key}: the value is not text (YAML "
                                f"read {_short(ours)}); quote it, e.g. '1.50', or '' for an empty cell"))
    return reasons


def unmatched_value_columns(cmap: ColumnMap, tables: list["Table"]) -> list[Problem]:
    """A `values:` column that is neither a column of the files read nor a known column of any file (which
    a map shared between files may name): a misspelt name would otherwise translate nothing, unnoticed.

    `values:` is keyed by our names, which are the file's headers but for the columns that `columns:`
    renames: such a header names no column of any file read with the map, and is said to be one."""
    seen = {name for table in tables for name in table.index if name}
    renamed = {header: name for header, name in cmap.source_of().items() if header != name}
    problems = []
    for column in cmap.values:
        if column in renamed and column not in cmap.columns:
            ours = renamed[column]
            problems.append(Problem(cmap.source, cmap.lines.get(column, 1), None, f"values: '{column}' is the file's header of column "
                                    f"'{ours}': key values by our name (values: {{{ours}: ...}})"))
        elif column not in seen and column not in KNOWN_COLUMNS:
            hint = suggest(column, sorted(seen | KNOWN_COLUMNS))
            problems.append(Problem(cmap.source, cmap.lines.get(column, 1), None, f"values: column '{column}' is in none of the files read"
                                    + (f" ({hint})" if hint else "")))
    return problems


# -- cell parsing -----------------------------------------------------------------------------------

class Cells:
    """Typed access to one row, recording every problem instead of stopping at the first."""

    def __init__(self, reader: "Table", row: list[str], number: int):
        self.t, self.row, self.number = reader, row, number

    def raw(self, name: str) -> str | None:
        index = self.t.index.get(name)
        if index is None or index >= len(self.row):
            return None
        return self.row[index] or None  # cells are stripped once per row (Table.__iter__)

    def texts(self, names) -> dict[str, str | None]:
        """These columns' cells as text, an empty one None: a file's extra columns, kept untyped (and
        checked as every cell is: no NUL)."""
        return {name: self.text(name, sized=False) for name in names}

    def problem(self, name: str, reason: str) -> None:
        self.t.problems.append(Problem(self.t.file, self.number, self.t.header_of(name), reason))

    def text(self, name: str, required: bool = False, sized: bool = True) -> str | None:
        """The cell as text. A standard column kept in a sized column of the store (SIZES; not `sized`:
        a custom field, kept as JSON) holds at most that many characters; no cell holds a NUL
        character, which PostgreSQL cannot store."""
        value = self.raw(name)
        if value is None:
            if required:
                self.problem(name, "a value is required")
            return None
        if "\x00" in value:
            self.problem(name, "a NUL character (0x00) cannot be stored")
            return None
        if name in IDS and _CONTROL.search(value):  # it would break every table and log line it is shown in
            self.problem(name, f"'{value}': an id cannot contain a line break, a tab or another control character")
            return None
        return self.fits(name, value) if sized else value

    def fits(self, name: str, value: str | None) -> str | None:
        """The value, if it fits the store's column of `name` (SIZES); else a problem, and None."""
        size = SIZES.get(name)
        if value is not None and size is not None and len(value) > size:
            self.problem(name, f"at most {size} characters")
            return None
        return value

    def ident(self, name: str) -> str | None:
        """A required invoice or customer id. Contacts list their invoice ids `;`-joined (SPEC 7), so an
        id holding `;` would come back as two unknown ids."""
        value = self.text(name, required=True)
        if value is not None and ";" in value:
            self.problem(name, f"'{value}': an id cannot contain ';' (contacts list invoice ids ';'-joined)")
            return None
        return value

    def currency(self, name: str = "currency") -> str | None:
        """An ISO 4217 code (PEN, USD), as the policy's `currency:`; a wrong one would format every amount."""
        value = self.text(name)
        if value is not None and (problem := currency_problem(value)) is not None:
            self.problem(name, problem)
            return None
        return value

    def decimal(self, name: str, required: bool = False, negative: bool = False,
                digits: int = MAX_DIGITS) -> Decimal | None:
        """A number as written: exact, whatever its decimal places (the store rounds an amount to
        MONEY_PLACES, `money`); at most `digits` before the point (1E+999999999 is finite, but no sum or int()
        survives it)."""
        value = self.text(name, required)
        if value is None:
            return None
        cmap = self.t.cmap
        cleaned = value.replace(cmap.thousands, "") if cmap.thousands else value
        try:
            if cmap.decimal != "." and "." in cleaned:  # the map says '.' is not the point: 1.200 is no 1.2
                raise InvalidOperation
            if cmap.thousands and cmap.decimal in value and value.rfind(cmap.thousands) > value.find(cmap.decimal):
                raise InvalidOperation  # a separator after the point: 1,200.50 read with decimal ',' is no 1.2005
            if cmap.thousands and cmap.thousands in value and not _grouped(value, cmap.thousands, cmap.decimal):
                raise InvalidOperation  # 55.94 under thousands '.' is a slip, not 5594: a hundredfold amount
            plain = cleaned.replace(cmap.decimal, ".") if cmap.decimal != "." else cleaned
            if not _PLAIN_NUMBER.fullmatch(plain):  # Decimal also reads 1_000, 1E+5, Infinity
                raise InvalidOperation
            number = Decimal(plain)
        except InvalidOperation:
            hint = separator_hint(value, cmap.decimal)
            extra = f"; use --map {hint}" if hint else ""
            if re.fullmatch(r"[+-]?[\d.,]+[eE][+-]?\d+", value):
                extra = "; scientific notation: write the digits out (a spreadsheet's 1.23457E+11 lost some)"
            grouping = f", thousands separator '{cmap.thousands}' between groups of three digits" if cmap.thousands else ""
            self.problem(name, f"'{value}' is not a number (decimal separator '{cmap.decimal}'{grouping}{extra})")
            return None
        if number < 0 and not negative:
            self.problem(name, f"amount cannot be negative ({value})")
            return None
        if number and number.adjusted() >= digits:
            self.problem(name, f"'{value}' is too large (at most {digits} digits before the decimal point)")
            return None
        return number

    def money(self, name: str, required: bool = False) -> Decimal | None:
        """An amount (invoice, payment, promise), rounded as the store keeps it (`money`): within
        MAX_DIGITS before the point once rounded too (999999999999999.9999999 rounds up to 16 digits)."""
        value = money(self.decimal(name, required))
        if value is not None and value.adjusted() >= MAX_DIGITS:
            self.problem(name, f"'{self.text(name)}' is too large (at most {MAX_DIGITS} digits before the decimal "
                         f"point, once rounded to {MONEY_PLACES} decimal places)")
            return None
        return value

    def date(self, name: str, required: bool = False, with_time: bool = False, bounded: bool = True):
        """A date or date-time; `bounded`: within FIRST_YEAR..LAST_YEAR, for the dates the calendar adds
        steps and horizons to (a custom field may hold an ERP's open-ended 9999-12-31)."""
        value = self.text(name, required)
        if value is None:
            return None
        cmap = self.t.cmap
        # an export may write its dates and its date-times differently (`datetime_format`)
        formats = [f for f in (cmap.datetime_format if with_time else None, cmap.date_format) if f]
        try:
            parsed = self._parse_date(value, formats, with_time)
        except ValueError:
            expected = " or ".join(formats) or (
                "YYYY-MM-DD, or YYYY-MM-DDTHH:MM with an optional UTC offset" if with_time else "YYYY-MM-DD")
            self.problem(name, f"'{value}' is not a date (expected {expected})")
            return None
        if bounded and not FIRST_YEAR <= parsed.year <= LAST_YEAR:  # 9999-12-31 + a day overflows
            self.problem(name, f"'{value}' is out of range (years {FIRST_YEAR} to {LAST_YEAR})")
            return None
        return parsed

    @staticmethod
    def _parse_date(value: str, formats: list[str], with_time: bool):
        """A date, or a date-time when the value has a time: with a UTC offset it keeps its instant; a
        naive one is the customer's local time."""
        for fmt in formats:
            try:
                parsed = dt.datetime.strptime(value, fmt)
            except ValueError:
                continue
            return parsed if with_time and (parsed.hour or parsed.minute or parsed.tzinfo) else parsed.date()
        if formats:
            raise ValueError(value)
        if not _ISO_DAY.match(value):  # fromisoformat also takes 20261120 and 2026-W47-5, which no doc names
            raise ValueError(value)
        if with_time and ("T" in value or " " in value):
            return dt.datetime.fromisoformat(value)
        return dt.date.fromisoformat(value)

    def boolean(self, name: str) -> bool | None:
        """True/False; None for an empty cell (the file does not know: a stored value is kept) or a bad
        value (reported), so that neither is merged as a real answer."""
        value = self.raw(name)
        if value is None:
            return None
        if value.lower() in TRUE:
            return True
        if value.lower() in FALSE:
            return False
        self.problem(name, f"'{value}' is not a boolean (true/false, 1/0, yes/no, y/n)")
        return None

    def typed(self, name: str, kind: str):
        if kind in ("decimal", "float", "int"):
            number = self.decimal(name, negative=True, digits=FIELD_DIGITS)
            if number is None:
                return None
            if kind == "int":
                if number != number.to_integral_value():
                    self.problem(name, f"'{self.raw(name)}' is not a whole number")
                    return None
                return int(number)
            return float(number) if kind == "float" else number
        if kind == "bool":
            return self.boolean(name)
        if kind in ("date", "datetime"):
            return self.date(name, with_time=kind == "datetime", bounded=False)
        return self.text(name, sized=False)


_GROUPED = {  # digits in groups of three (the first of one to three, not 0), then maybe a fraction
    (",", "."): re.compile(r"[1-9]\d{0,2}(,\d{3})+(\.\d+)?"),
    (".", ","): re.compile(r"[1-9]\d{0,2}(\.\d{3})+(,\d+)?"),
}


def money(value: Decimal | None) -> Decimal | None:
    """An amount as the store keeps it: beyond MONEY_PLACES decimal places (a float's 0.30000000000000004
    from an export) rounded half-even. The CSV reader rounds so too, so that a simulation reads the
    amounts `collect run` will: a payment of 99.9949999 on 100 leaves nothing open in both."""
    if value is None or value.as_tuple().exponent >= -MONEY_PLACES:
        return value
    return value.quantize(Decimal(1).scaleb(-MONEY_PLACES), rounding=ROUND_HALF_EVEN)


# a number as an export writes it once the separators are read: digits, one point, a sign. Excel's
# scientific notation (1.23457E+11) has lost digits of the amount; Decimal would take it, and 1_000 too.
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")
_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}(?!\d)")  # YYYY-MM-DD, then a time or nothing


@lru_cache(maxsize=None)
def _groups(thousands: str) -> re.Pattern:
    t = re.escape(thousands)  # 1.234.567, or the Indian 12,34,567 (lakhs and crores): three digits last; 0.500 is no 500
    return re.compile(rf"[1-9]\d{{0,2}}({t}\d{{3}})+|[1-9]\d?({t}\d{{2}})*{t}\d{{3}}")


def _grouped(value: str, thousands: str, decimal: str) -> bool:
    """Are the digits before the decimal separator grouped as a thousands separator says?"""
    whole = value.lstrip("+-").split(decimal, 1)[0]
    return _groups(thousands).fullmatch(whole) is not None


def separator_hint(value: str, decimal: str) -> str:
    """The map keys that would read a number written with other separators, or "": `1,200.50` has a
    thousands comma (thousands: ','), `12,5` a decimal comma (decimal: ','), `1.200,50` both the other way.
    A single comma followed by exactly three digits (`1,200`) is taken for a thousands one."""
    digits = value.lstrip("+-")
    if decimal == ".":
        if _GROUPED[",", "."].fullmatch(digits):
            return "thousands: ','"
        if _GROUPED[".", ","].fullmatch(digits):
            return "decimal: ',' and thousands: '.'"
        if re.fullmatch(r"\d+,\d+", digits):  # not grouped: 12,5 or 0,500 or 1234,567
            return "decimal: ','"
    elif decimal == ",":
        if _GROUPED[".", ","].fullmatch(digits):
            return "thousands: '.'"
        if _GROUPED[",", "."].fullmatch(digits):
            return "decimal: '.' and thousands: ','"
    return ""


def _unclosed(source: io.StringIO, line: int, delimiter: str) -> bool:
    """Does a quote opened in the file's last row, which starts on `line`, run to the end of the file?
    The csv reader then reads every line after it into one cell of that row without a word (a stray
    quote in one cell of an ERP export would drop every row below it); its strict mode says so."""
    source.seek(0)
    tail = "".join(islice(source, line - 1, None))
    try:
        for _ in csv.reader(io.StringIO(tail, newline=""), delimiter=delimiter, strict=True):
            pass
    except csv.Error as exc:  # strict also refuses text after a closing quote, which the file may have
        return "unexpected end of data" in str(exc)
    return False


class Table:
    """One CSV file: its header, the column map applied, and the problems found."""

    def __init__(self, path: Path, cmap: ColumnMap, problems: list[Problem]):
        self.file, self.cmap, self.problems = str(path), cmap, problems
        self.rows: list[tuple[int, list[str]]] = []  # (line where the row starts, cells)
        self.index: dict[str, int] = {}
        self._looked: set[str] = set()  # headers already checked for a misspelling (`extra` runs per row)
        self.headers: list[str] = []
        self.translate: dict[int, dict[str, str]] = {}
        self.head: list[str] = []  # the first lines as written, for a header below a title
        self.delimiter = cmap.delimiter or ","
        self._full = True
        try:
            data = path.read_bytes()
            text = data.decode("utf-8-sig")
        except OSError as exc:
            problems.append(Problem(self.file, 1, None, f"cannot read the file: {exc}"))
            return
        except UnicodeDecodeError as exc:  # an export in Windows-1252 or Latin-1, as many ERPs write
            at = exc.start + (3 if data.startswith(b"\xef\xbb\xbf") else 0)  # the codec skipped a BOM
            line = data[:at].count(b"\n") + 1
            problems.append(Problem(self.file, line, None, f"the file is not UTF-8 text (byte 0x{data[at]:02x}): "
                                    "save it as UTF-8 (in Excel: CSV UTF-8)"))
            return
        # the csv reader, not str.splitlines, finds the rows: a quoted cell may hold a line break. Its limit on
        # a cell (128 KiB) would stop the whole file at a long one with no column named; the file is in memory
        # already, and the columns' own limits say which cell is too long (an unclosed quote: `_unclosed`)
        csv.field_size_limit(max(csv.field_size_limit(), len(text) + 1))
        source = io.StringIO(text, newline="")
        delimiter = self.delimiter = cmap.delimiter or _sniff(source.readline().rstrip("\r\n"))
        source.seek(0)
        reader, rows, start = csv.reader(source, delimiter=delimiter), [], 1
        try:
            for row in reader:
                rows.append((start, row))
                start = reader.line_num + 1
        except csv.Error as exc:
            problems.append(Problem(self.file, start, None, f"cannot read the file: {exc}"))
            return
        # asked of the last row even on one line: a file cut short inside a quoted cell ("b@exam) ends there
        if rows and _unclosed(source, rows[-1][0], delimiter):
            problems.append(Problem(self.file, rows[-1][0], None, "a quote (\") opened in the row that starts on "
                                    "this line is never closed, so every line after it would be read as one "
                                    "cell (close it; a quote inside a quoted cell is written twice: \"\")"))
            return
        source.seek(0)
        self.head = list(islice(source, HEAD_LINES))  # lines as the reader counts them (\n, \r\n or \r)
        if not any(cell.strip() for _, row in rows for cell in row):
            problems.append(Problem(self.file, 1, None, "the file is empty" + (" (blank lines only)" if rows else "")))
            return
        if not any(cell.strip() for cell in rows[0][1]):
            # some exports put a blank line before the header: the first line is the header (docs/files.md),
            # and a header of no names would read the rows as no columns at all, an empty file, silently
            problems.append(Problem(self.file, 1, None, "the first line is the header, and it names no column "
                                    "(remove the blank lines before the header)"))
            return
        self.headers = [h.strip() for h in rows[0][1]]
        named = [i for i, h in enumerate(self.headers) if h]
        for i in range(named[-1]):  # a trailing delimiter names nothing; a column amid named ones holds data
            if not self.headers[i]:
                after = f" (after '{self.headers[i - 1]}')" if i and self.headers[i - 1] else ""
                problems.append(Problem(self.file, 1, None, f"column {i + 1} has no header{after}: name it, or "
                                        "remove the column (its cells would be lost)"))
        source_of = cmap.source_of()
        for i, h in enumerate(self.headers):
            name = source_of.get(h, h)
            if name and name in self.index:  # which of the two cells holds the value? Neither may be lost
                problems.append(Problem(self.file, 1, h, f"column '{name}' appears twice (columns "
                                        f"{self.index[name] + 1} and {i + 1})"))
            self.index.setdefault(name, i)
        self.rows = rows[1:]
        self._full = False  # rows with too many cells not checked yet: when first read, after the header's checks
        # the map's `values:` by column position, so that a row is translated once, before any reading
        self.translate = {self.index[name]: table for name, table in cmap.values.items() if name in self.index}

    def header_of(self, name: str) -> str:
        index = self.index.get(name)
        return self.headers[index] if index is not None else self.cmap.shown(name)

    def extra(self, known) -> list[str]:
        """The columns (by the map's names) that are none of `known`. A column without a header (a
        trailing delimiter, as some exports write) names nothing and is left out. One a slip of the keyboard
        from a known column the file lacks is a problem (`misspelt`)."""
        extra = [name for name in self.index if name and name not in known]
        for name in extra:
            self.misspelt(name, known)
        return extra

    def misspelt(self, name: str, known) -> None:
        """`do_not_contatc` kept as a text attribute left every customer contactable, and `statuss` left
        paid invoices open: an extra column one slip from a column that decides whether a customer may be
        contacted or an invoice chased (GUARDED), which the file does not have, is refused. Other near
        names are columns of their own (`county`, `made_by`), and so is `phone2`, a known name and a number."""
        if name in self._looked:
            return
        self._looked.add(name)
        meant = near_typo(name, [k for k in known if k in GUARDED and k not in self.index])
        if meant is None or re.fullmatch(re.escape(meant) + r"[\W_]*\d+", name):
            return
        self.problems.append(Problem(self.file, 1, self.header_of(name), f"not a column collect knows (did you "
                                     f"mean '{meant}'?); a column of your own must not be named so close to "
                                     f"'{meant}': rename it, or map it to '{meant}' with --map"))

    def require(self, *names: str) -> bool:
        missing = [n for n in names if n not in self.index]
        below = self.header_below(names) if missing else None
        if below:  # one error that says where the header is, not every column "missing" from a title line
            before = "the line" if below == 2 else f"the {below - 1} lines"
            self.problems.append(Problem(self.file, 1, None, f"the header is on line {below}, but the first line "
                                         f"must be the header: remove {before} before it (a title?)"))
            return False
        for name in missing:
            headers, source_of = self.cmap.headers_of(name), self.cmap.source_of()
            taken = next((h for h in headers if h in self.headers and source_of.get(h, name) != name), None)
            if taken is not None:  # the map reads that header as another column
                hint = f"the column map reads the header '{taken}' as '{source_of[taken]}'"
            else:
                hint = next(filter(None, (suggest(h, self.headers) for h in headers)), "")
            self.problems.append(Problem(self.file, 1, self.cmap.shown(name),
                                         "required column is missing" + (f" ({hint})" if hint else "")))
        return not missing

    def header_below(self, names) -> int | None:
        """The line (2 to HEAD_LINES) that names every one of `names` (after the map), if any: an ERP export
        with a title over its header. Not skipped: the first line is the header (docs/files.md), and a
        guess at where a file starts would be a silent fallback. Each line is split by the delimiter it
        has itself: the file's was guessed from line 1, and a title has none."""
        source_of = self.cmap.source_of()
        for number, line in enumerate(self.head[1:], start=2):
            if not all(any(h in line for h in self.cmap.headers_of(n)) for n in names):
                continue  # cheap: most lines are rows, not worth guessing a delimiter for
            line = line.rstrip("\r\n")
            try:
                cells = next(csv.reader([line], delimiter=self.cmap.delimiter or _sniff(line)), [])
            except csv.Error:  # a cell beyond the csv module's size limit: not a header
                continue
            if set(names) <= {source_of.get(c.strip(), c.strip()) for c in cells}:
                return number
        return None

    def _overfull(self) -> None:
        """Rows with a value beyond the header's columns: `1,200.50` unquoted in a comma file moves the
        cells after it over by one. Each is a problem, said once, and is left out of the rows read."""
        width, kept = len(self.headers), []
        for number, row in self.rows:
            if any(cell.strip() for cell in row[width:]):
                self.problems.append(Problem(self.file, number, None, f"{len(row)} cells but the header names "
                                             f"{width} columns: is a value holding the delimiter "
                                             f"'{self.delimiter}' without quotes (write \"1,200.50\")?"))
            else:
                kept.append((number, row))
        self.rows = kept

    def __iter__(self):
        if not self._full:
            self._overfull()
            self._full = True
        for number, row in self.rows:
            row = [cell.strip() for cell in row]
            if any(row):
                for index, table in self.translate.items():
                    if index < len(row):
                        row[index] = table.get(row[index], row[index])
                yield Cells(self, row, number)


def _sniff(header: str) -> str:
    """The delimiter of a header line, among `,` `;` tab `|`: the one that occurs most outside quoted
    names; on a tie, one never followed by a space (`Factura;Importe, S/;Fecha, dd/mm`: the delimiters
    of an export are not spaced, a comma in a name is), then the first. csv.Sniffer, given one line, took
    `,` for a `;` file with one `Importe, S/` in its header, and every column was then missing."""
    bare = re.sub(r'"[^"]*"', "", header)

    def rank(candidate: str) -> tuple[int, bool]:
        n = bare.count(candidate)
        return n, n > 0 and candidate + " " not in bare
    best = max(",;\t|", key=rank)  # max keeps the first of equals: `,` when nothing tells
    return best if rank(best)[0] else ","


_zones = time_zones  # the readers' check of a row's timezone


# -- files ------------------------------------------------------------------------------------------

def read_portfolio(portfolio_csv, customers_csv=None, payments_csv=None, promises_csv=None, disputes_csv=None, *,
                   fields: dict[str, str], default_timezone: str, default_currency: str,
                   colmap: ColumnMap | None = None) -> Portfolio:
    """Read and validate every file; raise CsvError with all problems, else return the portfolio."""
    from .portfolio_rows import read_all

    return read_all(portfolio_csv, customers_csv, payments_csv, promises_csv, disputes_csv, fields=fields,
                     default_timezone=default_timezone, default_currency=default_currency,
                     colmap=colmap or ColumnMap())

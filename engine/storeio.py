"""Moving data in and out of the store: imports (all or nothing, upserts) and customer states.

Every import marks the customers it touches as due (`next_action_at = NULL`), so the next tick decides
them again with the new facts (a changed due date, a payment, a promise).
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import and_, or_, select, update
from sqlalchemy.engine import Connection, Engine

from . import store as s
from .portfolio import (EVENT_COLUMNS, FALSE, OPTOUT_CHANNELS, TRUE, ColumnMap, CsvError, Problem, Table,
                        unmatched_value_columns)
from .state import (CustomerInfo, CustomerState, DisputeInfo, InvoiceInfo, PaymentInfo, PromiseInfo, SentContact)

KINDS = ("customers", "invoices", "payments", "promises", "disputes", "events")
EVENT_TYPES = ("delivered", "read", "clicked", "replied", "bounced", "failed", "opted_out", "conversation")
NO_CONVERSATION = ("webhook", "letter")  # channels no one answers on
UTC = dt.timezone.utc
UPDATED_KINDS = ("customers", "invoices", "disputes")  # imported again, a row updates the stored one


@dataclass(frozen=True)
class Imported:
    """What an import did with the file's rows (a row repeated within the file counts once): `new` rows
    the store did not have, and `stored` ones it had already, which customers, invoices and disputes
    update with the file's values (`updated`) and payments, promises and events ignore."""

    kind: str
    new: int
    stored: int = 0
    # the customers the file gave, as stored after it (id, timezone, country): zones.off_clock reads them
    customers: tuple = field(default=(), repr=False, compare=False)

    @property
    def rows(self) -> int:
        return self.new + self.stored

    @property
    def updated(self) -> bool:
        return self.kind in UPDATED_KINDS

    def message(self, path) -> str:
        """`imported 2 new payments from pagos.csv (3 already stored)`, `imported 5 invoices from erp.csv
        (1 new, 4 updated)`."""
        def count(n: int, new: str = "") -> str:
            noun = self.kind if n != 1 else self.kind.removesuffix("s")
            return f"{n} {new}{noun}"
        if self.updated:
            text = f"imported {count(self.rows)} from {path}"
            return text + (f" ({self.new} new, {self.stored} updated)" if self.stored else "")
        text = f"imported {count(self.new, 'new ')} from {path}"
        return text + (f" ({self.stored} already stored)" if self.stored else "")


def _upsert(conn: Connection, table, rows: list[dict], keys: list[str], keep: tuple[str, ...] = ()) -> None:
    """Insert the rows, or update the existing ones (but for the `keep` columns)."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    statement = insert(table)
    columns = [c for c in rows[0] if c not in keys and c not in keep]
    statement = statement.on_conflict_do_update(index_elements=keys, set_={c: statement.excluded[c] for c in columns})
    conn.execute(statement, rows)


def _insert_new(conn: Connection, table, rows: list[dict], keys: list[str]) -> None:
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    conn.execute(insert(table).on_conflict_do_nothing(index_elements=keys), rows)


def _customer_row(c) -> dict:
    return {"id": c.id, "name": c.name, "email": c.email, "phone": c.phone, "whatsapp": c.whatsapp,
            "timezone": c.timezone, "country": c.country, "language": c.language,
            "do_not_contact": c.do_not_contact, "optouts": sorted(c.optouts), "attrs": _jsonable(c.attrs),
            "consents": sorted(c.consents) if c.consents is not None else None, "legal_status": c.legal_status,
            "next_action_at": None}


def _jsonable(attrs: dict) -> dict:
    return {k: (v.isoformat() if isinstance(v, (dt.date, dt.datetime)) else str(v) if not isinstance(
        v, (int, float, bool, str, type(None))) else v) for k, v in attrs.items()}


def _merge_customers(conn: Connection, found: dict) -> tuple[int, tuple]:
    """Upsert customers keeping stored values where the file gave none: a column the file lacks or a cell
    left empty says nothing (SPEC 4.6: a do_not_contact or an opt-out is never lost that way). Returns
    how many were stored already, and the customers as stored now (id, timezone and country)."""
    existing = {}
    for chunk in _chunks(list(found), 900):  # SQLite limits the number of bound parameters
        existing.update({r.id: r._mapping for r in conn.execute(select(s.customers).where(s.customers.c.id.in_(chunk))
                                                                .with_for_update())})
    rows = []
    for cid, customer in found.items():
        row = _customer_row(customer)
        old = existing.get(cid)
        if old is None:
            row["do_not_contact"] = bool(row["do_not_contact"])  # nobody said so: a new customer may be contacted
        else:
            row = {k: (old[k] if v in (None, [], {}) else v) for k, v in row.items()}
            # an import adds opt-outs and never lifts one: an ERP export that says `false` everywhere must
            # not undo a customer's STOP (SPEC 4.6: an opt-out is absolute)
            row["optouts"] = sorted(set(old["optouts"] or ()) | set(customer.optouts))
            row["consents"] = _answered(old["consents"], customer.consents, customer.answered, "consent_")
            row["attrs"] = {**(old["attrs"] or {}), **row["attrs"]}
            row["next_action_at"] = None
        rows.append(row)
    for chunk in _chunks(rows):
        _upsert(conn, s.customers, chunk, ["id"])
    return len(existing), tuple(Where(r["id"], r["timezone"], r["country"]) for r in rows)


@dataclass(frozen=True)
class Where:
    """Where a customer is, as stored: what zones.off_clock reads of it."""

    id: str
    timezone: str | None
    country: str | None


def _answered(stored: list | None, given, answered: frozenset, prefix: str) -> list | None:
    """A stored channel list (consents) changed only for the channels whose column said true or false;
    none said: the stored list. A customer with no record yet (None) takes the file's, when it has such
    columns: agreed where a cell says true, not agreed elsewhere (docs/files.md, Consent), as a customer
    imported new, and as `collect simulate` reads the file."""
    if stored is None and given is not None:
        return sorted(given)
    said = {c for c in OPTOUT_CHANNELS if prefix + c in answered}
    if not said:
        return stored
    return sorted((set(stored or ()) - said) | set(given or ()))


def _chunks(rows: list, size: int = 5000):
    for i in range(0, len(rows), size):
        yield rows[i:i + size]


def _zone_of(conn: Connection, default_tz: str):
    zones = {r.id: r.timezone for r in conn.execute(select(s.customers.c.id, s.customers.c.timezone))}
    owners = {r.id: r.customer_id for r in conn.execute(select(s.invoices.c.id, s.invoices.c.customer_id))}

    def zone(invoice_id=None, customer_id=None) -> ZoneInfo:
        cid = customer_id or owners.get(invoice_id)
        return ZoneInfo(zones.get(cid) or default_tz)
    return zone, owners


def _aware(value, tz: ZoneInfo) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=tz)
    return dt.datetime.combine(value, dt.time(), tz)


def import_file(engine: Engine, kind: str, path: Path, *, fields: dict[str, str], colmap: ColumnMap,
                default_tz: str = "UTC", default_currency: str = "USD") -> Imported:
    """Validate the whole file, then write it in one transaction; returns what it did (new rows, rows
    stored already).

    Raises CsvError for the file's problems. The readers keep every value within the store's columns;
    should the database still refuse one (sqlalchemy DataError: a value too long, a character it cannot
    store), nothing is written and that is a CsvError too, one line without the SQL."""
    from sqlalchemy.exc import DataError

    from .store import one_line

    try:
        return _import_file(engine, kind, path, fields=fields, colmap=colmap, default_tz=default_tz,
                            default_currency=default_currency)
    except DataError as exc:
        raise CsvError([Problem(str(path), 1, None, f"the store refused a value of the file: {one_line(exc)}")]) \
            from exc


def _import_file(engine: Engine, kind: str, path: Path, *, fields: dict[str, str], colmap: ColumnMap,
                 default_tz: str, default_currency: str) -> Imported:
    from .portfolio import read_portfolio
    from .portfolio_rows import read_one

    # The customers are read, merged and written back (opt-outs, consents): on SQLite the transaction
    # takes the write lock before it reads, and on PostgreSQL the rows are read FOR UPDATE, so an opt-out
    # a tick records meanwhile waits for the import and is kept, not overwritten by what it read.
    s.immediate(engine)
    book = None
    if kind == "invoices":  # parsed first: the store is locked only while it is written
        book = read_portfolio(path, fields=fields, default_timezone=default_tz, default_currency=None, colmap=colmap)
    with engine.begin() as conn:
        if kind == "invoices":
            _, customers = _merge_customers(conn, book.customers)
            rows = [{"id": i.id, "customer_id": i.customer_id, "number": i.number, "amount": i.amount,
                     "balance": i.balance, "currency": i.currency, "issue_date": i.issue_date, "due_date": i.due_date,
                     "status": i.status, "attrs": _jsonable(i.attrs)} for i in book.invoices.values()]
            stored = len(_stored(conn, s.invoices, s.invoices.c.id, [r["id"] for r in rows]))
            _mark_due(conn, _move_step_memory(conn, rows))
            given = [r for r in rows if r["currency"] is not None]
            # a row without a currency takes the default when new, and keeps the stored one when not
            unsaid = [{**r, "currency": default_currency} for r in rows if r["currency"] is None]
            for chunk in _chunks(given):
                _upsert(conn, s.invoices, chunk, ["id"])
            for chunk in _chunks(unsaid):
                _upsert(conn, s.invoices, chunk, ["id"], keep=("currency",))
            return Imported(kind, len(rows) - stored, stored, customers)
        zone, owners = _zone_of(conn, default_tz)  # the other kinds refer to stored invoices and customers
        if kind == "events":
            new, stored = _import_events(conn, path, colmap, zone)
            return Imported(kind, new, stored)
        known_customers = {r.id for r in conn.execute(select(s.customers.c.id))}
        conflicts = partial(_payment_conflicts, conn, path, colmap.shown("payment_id")) if kind == "payments" else None
        found = read_one(kind, path, fields=fields, colmap=colmap, known_invoices=owners,
                         known_customers=known_customers, against_store=conflicts)
        if kind == "customers":
            stored, customers = _merge_customers(conn, found)
            return Imported(kind, len(found) - stored, stored, customers)
        touched, new, stored = set(), len(found), 0
        if kind == "payments":
            rows = [{"payment_id": p.payment_id, "invoice_id": p.invoice_id, "amount": p.amount,
                     "paid_at": _aware(p.paid_at, zone(p.invoice_id)), "currency": p.currency, "method": p.method,
                     "attrs": p.attrs}
                    for p in found]
            known = _stored(conn, s.payments, s.payments.c.payment_id, [r["payment_id"] for r in rows])
            stored = len(known) + _restated(conn, rows, {r.payment_id for r in known})
            new -= stored
            _insert_new(conn, s.payments, rows, ["payment_id"])  # a payment seen before is ignored
            touched = {owners[p.invoice_id] for p in found}
        elif kind == "promises":
            rows = [{"invoice_id": p.invoice_id, "customer_id": p.customer_id or owners.get(p.invoice_id),
                     "amount": p.amount, "promised_date": p.promised_date, "channel": p.channel, "attrs": p.attrs,
                     "made_at": _aware(p.made(), zone(p.invoice_id, p.customer_id))} for p in found]
            rows, stored = _new_promises(conn, rows)
            conn.execute(s.promises.insert(), rows) if rows else None
            touched, new = {r["customer_id"] for r in rows}, len(rows)
        elif kind == "disputes":
            rows = [{"invoice_id": d.invoice_id, "opened_at": _aware(d.opened_at, zone(d.invoice_id)), "reason": d.reason,
                     "resolved_at": _aware(d.resolved_at, zone(d.invoice_id)) if d.resolved_at else None,
                     "attrs": d.attrs} for d in found]
            stored = _upsert_disputes(conn, rows, [not isinstance(d.opened_at, dt.datetime) for d in found],
                                      [zone(d.invoice_id) for d in found])
            new -= stored
            touched = {owners[d.invoice_id] for d in found}
        _mark_due(conn, touched)
        return Imported(kind, new, stored)


def _payment_conflicts(conn: Connection, path: Path, header: str, found) -> list[Problem]:
    """A stored payment id is ignored in a file, as the same payment imported again; another invoice or
    amount under it is a row error: an id names one payment, and that one would be lost unnoticed.
    `header`: the file's name of the payment_id column."""
    stored = {r.payment_id: r for r in _stored(conn, s.payments, s.payments.c.payment_id,
                                                [p.payment_id for p in found])}
    return [Problem(str(path), p.line, header, f"payment '{p.payment_id}' is stored already, for "
                    f"invoice '{known.invoice_id}' and amount {known.amount}: a payment id names one payment")
            for p in found if (known := stored.get(p.payment_id)) is not None
            and (known.invoice_id, known.amount) != (p.invoice_id, p.amount)]


def _restated(conn: Connection, rows: list[dict], known: set[str]) -> int:
    """Payments without an id of their own are named by what they are (invoice, amount, moment); one
    stored for the same invoice, amount and moment under another such name (written 500.00 yesterday
    and 500 today, or named before names were canonical) is the same payment: the row takes its name,
    so that it is not stored twice. Returns how many rows were such payments."""
    loose = [r for r in rows if r["payment_id"].startswith("auto-") and r["payment_id"] not in known]
    if not loose:
        return 0
    named = {(p.invoice_id, p.amount, p.paid_at): p.payment_id  # amounts and aware moments: equal by value
             for p in _stored(conn, s.payments, s.payments.c.invoice_id, [r["invoice_id"] for r in loose])
             if p.payment_id.startswith("auto-")}
    found = 0
    for r in loose:
        if (same := named.get((r["invoice_id"], r["amount"], r["paid_at"]))) is not None:
            r["payment_id"], found = same, found + 1
    return found


def _stored(conn: Connection, table, column, values) -> list:
    """The stored rows whose `column` is one of `values`."""
    rows = []
    for chunk in _chunks(sorted(set(values) - {None}), 900):
        rows += conn.execute(select(table).where(column.in_(chunk))).all()
    return rows


# A date without a time zone is read in the customer's zone, which may change between two imports of the
# same file (a customers file with `timezone` imported later, another --timezone): the same row then
# reads as an instant up to this far from the stored one (UTC-12 to UTC+14).
ZONE_SPREAD = dt.timedelta(hours=26)


def _new_promises(conn: Connection, rows: list[dict]) -> tuple[list[dict], int]:
    """The promises not stored yet, and how many are. The file has no promise id, so a promise is named by
    what it says: the same file imported twice must not make one promise two (two reminders, a doubled
    amount). `made_at` names it to within ZONE_SPREAD: the same promise restated within a day is one."""
    def ident(r) -> tuple:
        return r["customer_id"], r["invoice_id"], r["amount"], r["promised_date"]
    stored: dict[tuple, list[dt.datetime]] = {}
    for r in _stored(conn, s.promises, s.promises.c.customer_id, [r["customer_id"] for r in rows]):
        stored.setdefault(ident(r._mapping), []).append(r.made_at)
    fresh, seen, known = [], {}, set()
    for row in rows:
        key = ident(row)
        hit = _near(row["made_at"], stored.get(key, ()))
        if hit is not None:
            known.add((key, hit))
        elif _near(row["made_at"], seen.get(key, ())) is None:  # else a repeat within the file
            seen.setdefault(key, []).append(row["made_at"])
            fresh.append(row)
    return fresh, len(known)


def _near(moment: dt.datetime, moments) -> dt.datetime | None:
    """The first of `moments` less than ZONE_SPREAD from `moment`: the same date read in another zone."""
    return next((m for m in moments if abs(m - moment) < ZONE_SPREAD), None)


def _unseen(rows: list[dict], stored: set, ident) -> tuple[list[dict], int]:
    """The rows whose identity is neither stored nor repeated earlier in the file, and how many of the
    file's rows (a repeated one counted once) are stored already."""
    fresh, seen, known = [], set(), set()
    for row in rows:
        name = ident(row)
        if name in stored:
            known.add(name)
        elif name not in seen:
            seen.add(name)
            fresh.append(row)
    return fresh, len(known)


def _upsert_disputes(conn: Connection, rows: list[dict], dated: list[bool], zones: list) -> int:
    """A dispute is named by its invoice and opening time: imported again, it is the same dispute, and
    what the file now adds (a resolution, a reason, an attribute) updates it; an empty cell keeps the
    stored value. An opening given as a date (`dated`) names it to within ZONE_SPREAD: that date read in
    another zone is the same dispute; two disputes of one invoice in a day have their times. Returns how
    many were stored already."""
    stored: dict[str, list] = {}
    for r in _stored(conn, s.disputes, s.disputes.c.invoice_id, [r["invoice_id"] for r in rows]):
        stored.setdefault(r.invoice_id, []).append(r)
    fresh, timed = [], set()  # timed: the stored disputes a row of this file gave their time
    for row, day, tz in zip(rows, dated, zones):
        spread = ZONE_SPREAD if day else dt.timedelta(0)
        same = [r for r in stored.get(row["invoice_id"], ()) if abs(r.opened_at - row["opened_at"]) <= spread]
        given = {k: row[k] for k in ("reason", "resolved_at") if row[k] is not None}
        if not same and not day:  # stored from a date alone (its local midnight), now given with its time
            same = [r for r in stored.get(row["invoice_id"], ())
                    if r.id not in timed and _midnight_of(r.opened_at, row["opened_at"], tz)][:1]
            timed |= {r.id for r in same}  # the first timed row of that day is it; another is another dispute
            given["opened_at"] = row["opened_at"]  # the time, from now on named exactly
        known = min(same, key=lambda r: abs(r.opened_at - row["opened_at"]), default=None)
        attrs = {k: v for k, v in row["attrs"].items() if v is not None}
        if known is None:
            fresh.append(row)
            continue
        if attrs:
            given["attrs"] = {**(known.attrs or {}), **attrs}
        if given:
            conn.execute(update(s.disputes).where(s.disputes.c.id == known.id).values(**given))
    if fresh:
        conn.execute(s.disputes.insert(), fresh)
    return len(rows) - len(fresh)


def _midnight_of(stored: dt.datetime, moment: dt.datetime, tz) -> bool:
    """Is `stored` the midnight that starts `moment`'s day in the invoice's zone `tz` (where a date alone
    was read)? `moment` may carry another offset (`14:30Z`)."""
    return stored == dt.datetime.combine(moment.astimezone(tz).date(), dt.time(), tz)


def _move_step_memory(conn: Connection, rows: list[dict]) -> set[str]:
    """An invoice that a re-import gives to another customer takes its step memory and its promises
    along: both are loaded by customer, and a step fires at most once per invoice whoever owns it (SPEC
    4.4). Returns the former owners."""
    owners: dict[str, str] = {}
    for chunk in _chunks([r["id"] for r in rows], 900):
        owners.update(conn.execute(select(s.invoices.c.id, s.invoices.c.customer_id)
                                   .where(s.invoices.c.id.in_(chunk))).all())
    moved = {r["id"]: r["customer_id"] for r in rows if owners.get(r["id"], r["customer_id"]) != r["customer_id"]}
    former = {owners[i] for i in moved}
    keys: dict[str, list[str]] = {}  # new owner -> step keys
    for r in _stored(conn, s.steps, s.steps.c.customer_id, former):
        iid = _invoice_of(r.key, moved)
        if iid is not None:
            keys.setdefault(moved[iid], []).append(r.key)
    for owner, owned in keys.items():
        for chunk in _chunks(owned, 900):
            conn.execute(update(s.steps).where(s.steps.c.key.in_(chunk)).values(customer_id=owner))
    for iid, owner in moved.items():  # its promises too: they are loaded by customer, and pause the invoice
        conn.execute(update(s.promises).where(s.promises.c.invoice_id == iid).values(customer_id=owner))
    return former


def _invoice_of(key: str, invoices) -> str | None:
    """Which of `invoices` a step key names. Keys are `step_id|invoice_id[|occurrence]`; step ids hold no
    `|`, invoice ids and occurrences may, so the longest id that fits wins."""
    parts = key.split("|")[1:]
    return next((iid for n in range(len(parts), 0, -1) if (iid := "|".join(parts[:n])) in invoices), None)


def _mark_due(conn: Connection, customer_ids) -> None:
    ids = list(customer_ids)
    for chunk in _chunks(ids):
        conn.execute(update(s.customers).where(s.customers.c.id.in_(chunk)).values(next_action_at=None))


STOP_WORDS = frozenset({"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "optout", "revoke", "baja",
                        "alto", "parar", "cancelar"})  # carriers' and Twilio's opt-out keywords, and Spanish ones
# two-word keywords, as their words: "OPT OUT", "Opt-out" (the FCC's list of revocation words has it)
STOP_PHRASES = frozenset({("opt", "out")})
_LETTERS = re.compile(r"[^\W\d_]+")  # a word: a run of letters (any script); anything else separates words


def reply_words(text: str | None, n: int = 2) -> tuple[str, ...]:
    """The first `n` words of a reply, compared without case or accents: `¡Alto!` -> ("alto",),
    `Opt-out, please` -> ("opt", "out"). Punctuation, digits, emoji and line breaks only separate words."""
    plain = "".join(ch for ch in unicodedata.normalize("NFKD", text or "") if not unicodedata.combining(ch))
    words = []
    for match in _LETTERS.finditer(plain.casefold()):
        words.append(match.group())
        if len(words) == n:
            break
    return tuple(words)


def is_stop_reply(text: str | None) -> bool:
    """Does a reply revoke consent (TCPA: by any reasonable means)? Yes when it starts with an opt-out
    keyword: its first word is one of STOP_WORDS (`Stop, please`, `stop?`, `STOP` then more lines,
    `¡ALTO!`), or its first two words are one of STOP_PHRASES (`Opt out`, `opt-out`). Only the start
    counts: `please don't stop` or `I paid, stop` are not keywords (an operator records such an opt-out
    with an `opted_out` event)."""
    words = reply_words(text)
    return bool(words) and (words[0] in STOP_WORDS or words in STOP_PHRASES)


DELIVERY_TYPES = ("delivered", "read", "clicked", "replied")
PROVIDER_REPORTS = (*DELIVERY_TYPES, "bounced", "failed")  # about one message a provider took
NEVER_SENT = ("deferred", "skipped")  # a contact row that no provider ever saw


def _import_events(conn: Connection, path: Path, colmap: ColumnMap, zone) -> tuple[int, int]:
    """Provider reports (SPEC 7, events). Each is stored, and acts:
    delivered/read/clicked/replied update the contact's delivery; a reply that starts with an opt-out
    keyword (is_stop_reply: STOP, `Opt out`, `¡Alto!` ...) or an `opted_out` report is an opt-out for that
    channel; bounced/failed fail a sent contact and make its step fall back to the next channel on the
    next tick (the contact still counts toward caps: it was placed); conversations feed the caps' cooldowns.
    Re-importing the same file adds nothing. Returns the number of new reports, and of those stored
    already."""
    from .compiler import known_channels

    problems: list[Problem] = []
    table = Table(Path(path), colmap, problems)
    rows = []
    if table.headers and table.require("at", "channel", "type"):
        rows = _event_rows(conn, table, set(known_channels()), zone)
    problems[:0] = unmatched_value_columns(colmap, [table])  # first: a map's mistake may cause row errors
    if problems:
        raise CsvError(problems)
    rows, stored = _new_events(conn, rows)
    if rows:
        conn.execute(s.provider_events.insert(), [{k: v for k, v in r.items() if k != "contact"} for r in rows])
    now = max((r["at"] for r in rows), default=None)
    for row in rows:
        _apply_event(conn, row, now)
    _mark_due(conn, {r["customer_id"] for r in rows})
    return len(rows), stored


def _event_rows(conn: Connection, table: Table, channels: set[str], zone) -> list[dict]:
    from ..dsl.diagnostics import suggest
    from .portfolio_rows import NOT_STORED_CUSTOMER

    contacts, customers = _referenced(conn, table)
    rows = []
    extra = table.extra(EVENT_COLUMNS)
    for cells in table:
        kind, channel = (cells.text("type", True) or "").lower(), cells.text("channel", True)
        contact_id, cid = cells.text("contact_id"), cells.text("customer_id")
        contact = contacts.get(contact_id) if contact_id else None
        if kind and kind not in EVENT_TYPES:
            hint = suggest(kind, EVENT_TYPES)
            cells.problem("type", f"unknown event type '{kind}' ({hint or 'expected ' + ', '.join(EVENT_TYPES)})")
        if channel and channel not in channels:
            hint = suggest(channel, channels)
            cells.problem("channel", f"unknown channel '{channel}'" + (f" ({hint})" if hint else ""))
        elif kind == "conversation" and channel in NO_CONVERSATION:  # it would start a call lock for nothing
            cells.problem("channel", f"a conversation is with a person: not on '{channel}' (a call is on voice, "
                          "an agent's on agent)")
        if contact_id and contact is None:
            cells.problem("contact_id", f"unknown contact '{contact_id}' (neither a contact key nor a provider id)")
        elif contact is not None and contact.status in NEVER_SENT and kind in PROVIDER_REPORTS:
            cells.problem("contact_id", f"contact '{contact_id}' was {contact.status}, never sent: no provider "
                          f"can report it {kind}")
        # a report about a contact is about its customer: a STOP must not opt out another one
        elsewhere = contact is not None and cid is not None and cid != contact.customer_id
        cid = cid or (contact.customer_id if contact else None)
        if cid is None and not contact_id and cells.raw("customer_id") is None:  # not: a bad one
            cells.problem("customer_id", "an event needs a contact_id or a customer_id")
        elif cid is not None and cid not in customers:
            cells.problem("customer_id", f"unknown customer '{cid}' ({NOT_STORED_CUSTOMER})")
        elif elsewhere:
            cells.problem("customer_id", f"contact '{contact_id}' belongs to customer '{contact.customer_id}', "
                          f"not '{cid}'")
        at = cells.date("at", True, with_time=True)
        if at is not None and cid in customers and kind in EVENT_TYPES and channel in channels and not elsewhere:
            rows.append({"at": _aware(at, zone(customer_id=cid)), "channel": channel, "type": kind,
                         "contact_id": contact.key if contact else None, "customer_id": cid,
                         "detail": cells.text("detail"), "attrs": cells.texts(extra), "contact": contact})
    return rows


def _referenced(conn: Connection, table: Table) -> tuple[dict, set]:
    """The stored contacts (by key and by provider id) and customers that the file's rows name, read in
    chunks: a store holds millions of contacts, an events file a few of them."""
    contact_ids = sorted({c.raw("contact_id") for c in table} - {None})
    columns = (s.contacts.c.key, s.contacts.c.provider_id, s.contacts.c.customer_id, s.contacts.c.status,
               s.contacts.c.steps, s.contacts.c.channel)
    contacts: dict = {}
    for chunk in _chunks(contact_ids, 400):  # two lists of bound parameters per query
        for r in conn.execute(select(*columns).where(or_(s.contacts.c.key.in_(chunk),
                                                        s.contacts.c.provider_id.in_(chunk)))):
            contacts[r.key] = r
            if r.provider_id:
                contacts.setdefault(r.provider_id, r)
    named = {c.raw("customer_id") for c in table} | {r.customer_id for r in contacts.values()}
    customers: set = set()
    for chunk in _chunks(sorted(named - {None}), 900):
        customers |= {r.id for r in conn.execute(select(s.customers.c.id).where(s.customers.c.id.in_(chunk)))}
    return contacts, customers


def _new_events(conn: Connection, rows: list[dict]) -> tuple[list[dict], int]:
    """The rows not already stored (the same report imported twice counts once), and how many are."""
    def ident(r) -> tuple:
        return r["at"], r["channel"], r["type"], r["contact_id"], r["customer_id"], r["detail"] or None
    stored = _stored(conn, s.provider_events, s.provider_events.c.customer_id, [r["customer_id"] for r in rows])
    return _unseen(rows, {ident(r._mapping) for r in stored}, ident)


def _apply_event(conn: Connection, row: dict, now: dt.datetime) -> None:
    from .delivery import add_optout, reopen

    kind, contact = row["type"], row["contact"]
    stop = kind == "replied" and is_stop_reply(row["detail"])
    if kind == "opted_out" or stop:
        add_optout(conn, row["customer_id"], row["channel"])
    if contact is None:
        return
    c = s.contacts.c
    # the store's current row decides, not `contact` as read before the file: a file may hold several
    # reports of one contact, in any order. A bounce is final; a later report replaces an earlier one.
    if kind in DELIVERY_TYPES:
        conn.execute(update(s.contacts).where(c.key == contact.key, c.status != "failed",
                                              or_(c.delivery_at.is_(None), c.delivery_at <= row["at"]))
                     .values(delivery=kind, delivery_at=row["at"]))
    elif kind in ("bounced", "failed"):
        reason = f"{kind}: {row['detail'] or 'reported by the provider'}"
        done = conn.execute(update(s.contacts).where(c.key == contact.key, c.status == "sent").values(
            status="failed", reason=reason, delivery=kind, delivery_at=row["at"]))
        if done.rowcount:
            reopen(conn, [(contact.customer_id, tuple(contact.steps or ()), contact.channel, reason)], now)


# -- states for the decision core ---------------------------------------------------------------------

def _typed(attrs: dict, kinds: dict[str, str]) -> dict:
    """Custom fields are stored as JSON; give them the types the policy declares."""
    from decimal import Decimal, InvalidOperation

    out = dict(attrs)
    for name, kind in kinds.items():
        value = out.get(name)
        if value is None or not isinstance(value, str):
            continue
        try:
            if kind in ("float", "decimal", "int"):
                number = Decimal(value)
                out[name] = float(number) if kind == "float" else int(number) if kind == "int" else number
            elif kind == "bool":  # as the CSV reader reads it: another word is no answer, not false
                out[name] = True if value.lower() in TRUE else False if value.lower() in FALSE else None
            elif kind == "date":
                out[name] = dt.date.fromisoformat(value[:10])
            elif kind == "datetime":
                out[name] = dt.datetime.fromisoformat(value)
        except (InvalidOperation, ValueError):
            out[name] = None  # not of the declared type: null, so comparisons with it are false
    return out


def placed():
    """The contacts that count as made, for the caps, the compliance guard and `contacts.*` (Reg F counts
    calls placed, answered or not): those sent or being sent, and those the provider took and reported
    `bounced` or `failed` afterwards (an unanswered call). A contact whose provider refused it when it was
    handed over (a permanent error, retries used up) never reached the network and does not count.

    The two kinds of `failed` rows differ in `delivery`: a report sets it (_apply_event fails only `sent`
    rows, and writes the report's type there), while a refusal at send time (delivery.record) leaves it
    NULL and no later report can set it on a `failed` row. Any report at all proves the provider had it."""
    c = s.contacts.c
    return or_(c.status.in_(("sent", "sending")), and_(c.status == "failed", c.delivery.is_not(None)))


def load_states(conn: Connection, ids: list[str], fields: dict[str, str] | None = None) -> dict[str, CustomerState]:
    """The decision core's view of these customers, read in a few queries (custom fields typed)."""
    kinds = {ns: {k.split(".", 1)[1]: v for k, v in (fields or {}).items() if k.startswith(ns + ".")}
             for ns in ("customer", "invoice")}
    states: dict[str, CustomerState] = {}
    for r in conn.execute(select(s.customers).where(s.customers.c.id.in_(ids))):
        consents = frozenset(r.consents) if r.consents is not None else None
        states[r.id] = CustomerState(CustomerInfo(r.id, r.name, r.email, r.phone, r.whatsapp, r.timezone, r.country,
                                                  r.language, bool(r.do_not_contact), frozenset(r.optouts or []),
                                                  consents, _typed(r.attrs or {}, kinds["customer"]), r.legal_status))
    for r in conn.execute(select(s.invoices).where(s.invoices.c.customer_id.in_(ids))):
        states[r.customer_id].invoices[r.id] = InvoiceInfo(r.id, r.customer_id, r.amount, r.balance, r.due_date,
                                                           r.number, r.currency, r.issue_date, r.status,
                                                           _typed(r.attrs or {}, kinds["invoice"]))
    owner = {iid: cid for cid, st in states.items() for iid in st.invoices}
    for r in conn.execute(select(s.payments).where(s.payments.c.invoice_id.in_(list(owner))).order_by(s.payments.c.paid_at)):
        states[owner[r.invoice_id]].payments.append(PaymentInfo(r.payment_id, r.invoice_id, r.amount, r.paid_at))
    for r in conn.execute(select(s.promises).where(s.promises.c.customer_id.in_(ids)).order_by(s.promises.c.id)):
        states[r.customer_id].promises.append(PromiseInfo(f"promise-{r.id}", r.amount, r.promised_date, r.made_at,
                                                          r.invoice_id))
    for r in conn.execute(select(s.disputes).where(s.disputes.c.invoice_id.in_(list(owner))).order_by(s.disputes.c.id)):
        states[owner[r.invoice_id]].disputes.append(DisputeInfo(f"dispute-{r.id}", r.invoice_id, r.opened_at,
                                                                r.resolved_at))
    # a conversation is about the debts of the contact it answered (Reg F blocks calls about those only);
    # one reported without a contact is about all of them (no invoice ids)
    ev, about = s.provider_events.c, s.contacts.c.invoice_ids
    for r in conn.execute(select(ev.customer_id, ev.at, ev.channel, ev.type, about)
                          .outerjoin(s.contacts, s.contacts.c.key == ev.contact_id)
                          .where(ev.customer_id.in_(ids), ev.type.in_(("conversation", "replied"))).order_by(ev.at)):
        facts = states[r.customer_id].conversations if r.type == "conversation" else states[r.customer_id].replies
        facts.append(SentContact(r.at, r.channel, tuple(r.invoice_ids.split(";")) if r.invoice_ids else ()))
    for r in conn.execute(select(s.contacts.c.customer_id, s.contacts.c.at, s.contacts.c.channel, s.contacts.c.invoice_ids)
                          .where(s.contacts.c.customer_id.in_(ids), placed())
                          .order_by(s.contacts.c.at, s.contacts.c.id)):
        if r.channel not in ("", "webhook", "agent"):
            states[r.customer_id].sent.append(SentContact(r.at, r.channel, tuple(r.invoice_ids.split(";"))))
    for r in conn.execute(select(s.steps).where(s.steps.c.customer_id.in_(ids))):
        state = states[r.customer_id]
        (state.done if r.state == "done" else state.pending)[r.key] = r.status
        if r.failed:
            state.failed[r.key] = dict(r.failed)
    # by invoice: a `stop` holds for the invoice, whichever customer owns it now
    for r in conn.execute(select(s.stopped).where(s.stopped.c.invoice_id.in_(list(owner)))):
        states[owner[r.invoice_id]].stopped.add(r.invoice_id)
    return states

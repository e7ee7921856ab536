"""`collect history`: the contacts table in the contacts-file schema of SPEC section 7."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from zoneinfo import ZoneInfo

from sqlalchemy import select

from . import store as s
from .files import spreadsheet_safe
from .simrun import CONTACT_COLUMNS

# the audit log's own columns after those of the contacts file (SPEC section 7): the key that provider
# reports refer to, and what the provider answered
AUDIT_COLUMNS = (*CONTACT_COLUMNS, "contact_id", "provider_id", "attempts", "error_code", "cost", "delivery")


def history_rows(engine, since: dt.date | None = None):
    """The contacts in time order; `since`: those whose `at` in the customer's local time (as shown) is on
    or after that date."""
    query = select(s.contacts).order_by(s.contacts.c.at, s.contacts.c.id)
    if since is not None:
        # the store's `at` is UTC and zones run from UTC-12 to UTC+14: a day earlier in UTC surely holds
        # every local `since`; the exact cut is on the local date below
        day_before = dt.datetime.combine(since - dt.timedelta(days=1), dt.time(), dt.timezone.utc)
        query = query.where(s.contacts.c.at >= day_before)
    with engine.connect() as conn:
        for r in conn.execute(query):
            at = r.at.astimezone(ZoneInfo(r.tz))
            if since is not None and at.date() < since:
                continue
            yield {"at": at.isoformat(timespec="seconds"), "customer_id": r.customer_id,
                   "invoice_ids": r.invoice_ids, "stage": r.stage or "", "step": r.step or "", "channel": r.channel or "",
                   "template": r.template or "", "status": r.status, "reason": r.reason or "", "plan_hash": r.plan_hash,
                   "contact_id": r.key, "provider_id": r.provider_id or "", "attempts": r.attempts,
                   "error_code": r.error_code or "", "cost": "" if r.cost is None else str(r.cost),
                   "delivery": r.delivery or ""}


def history_text(engine, since: dt.date | None, fmt: str) -> str:
    rows = list(history_rows(engine, since))
    if fmt == "jsonl":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=AUDIT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: spreadsheet_safe(v) if isinstance(v, str) else v for k, v in r.items()} for r in rows)
    return out.getvalue()

"""An import and a tick at the same time on one store: what the tick records about a customer (a
provider's opt-out) is never overwritten by what the import read before. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import textwrap
import threading

from sqlalchemy import select

from collect.adapters.base import DeliveryResult
from collect.engine import store as s
from collect.engine import storeio
from collect.engine.channels import Channels
from collect.engine.compiler import compile_policy
from collect.engine.portfolio import ColumnMap
from collect.engine.runner import Runner
from collect.engine.storeio import import_file

UTC = dt.timezone.utc
POLICY = """\
    policy: o
    timezone: America/Lima
    windows: { default: { mon-sun: "00:00-23:59" }, holidays: open }
    templates: { m: { sms: "Hola" } }
    stages:
      s:
        when: true
        steps:
          - { id: s1, at: due, send: sms, template: m }
    """
INVOICES = "invoice_id,customer_id,amount,due_date,phone\nF1,C1,100,2026-11-16,+51987654321\n"


class Unsubscribed:
    """Twilio's 21610: the customer replied STOP to an earlier message."""

    name = "unsubscribed"
    supports_html = supports_templates = False
    free_text = True
    dedupes = False

    def __init__(self):
        self.calls = 0

    def send(self, message):
        self.calls += 1
        return DeliveryResult.permanent("21610", "Attempt to send to unsubscribed recipient", opted_out=True)


def test_a_provider_opt_out_recorded_during_an_import_is_kept(db_url, tmp_path, monkeypatch):
    path = tmp_path / "policy.yaml"
    path.write_text(textwrap.dedent(POLICY))
    plan = compile_policy(path).plan
    csv = tmp_path / "invoices.csv"
    csv.write_text(INVOICES)
    import_file(s.connect(db_url), "invoices", csv, fields={}, colmap=ColumnMap(), default_tz="America/Lima")
    channels = Channels()
    provider = channels.instances["sms"] = Unsubscribed()
    now = dt.datetime(2026, 11, 16, 15, tzinfo=UTC)
    ticking = []
    real_upsert = storeio._upsert

    def upsert_while_a_tick_runs(conn, table, rows, keys, keep=()):
        """The import has read the customers: a `collect run` in another process starts now."""
        if table is s.customers and not ticking:
            tick = threading.Thread(target=Runner(s.connect(db_url), plan, channels).tick, args=(now,))
            ticking.append(tick)
            tick.start()
            tick.join(1.0)  # it finishes, or waits for the import's lock
        return real_upsert(conn, table, rows, keys, keep)

    monkeypatch.setattr(storeio, "_upsert", upsert_while_a_tick_runs)
    import_file(s.connect(db_url), "invoices", csv, fields={}, colmap=ColumnMap(), default_tz="America/Lima")
    ticking[0].join(60)
    monkeypatch.undo()
    Runner(s.connect(db_url), plan, channels).tick(now)  # where the first tick left the customer alone
    with s.connect(db_url).connect() as conn:
        optouts = conn.execute(select(s.customers.c.optouts).where(s.customers.c.id == "C1")).scalar()
    assert provider.calls == 1 and "sms" in optouts

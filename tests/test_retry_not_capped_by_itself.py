"""A contact that waits for a provider retry is already counted among the customer's contacts (the store
loads `sending` rows as sent); when it finally goes, the caps must count the contacts made meanwhile, not
this one (engine/decide.py, held_now). Counted against itself, a retry under a `max: 1` cap would wait a
whole cap period for nothing. The suite's late-delivery cap test retried only after the period had passed."""

from __future__ import annotations

import datetime as dt
import textwrap
from zoneinfo import ZoneInfo

from coretools import Flaky, customer, invoice, runtime
from sqlalchemy import select

from collect.engine import store as s
from collect.engine.channels import Channels
from collect.engine.compiler import compile_policy
from collect.engine.decide import held_now
from collect.engine.portfolio import ColumnMap
from collect.engine.runner import Runner
from collect.engine.state import SentContact
from collect.engine.storeio import import_file

LIMA = ZoneInfo("America/Lima")
UTC = dt.timezone.utc
POLICY = """\
    policy: c
    timezone: America/Lima
    windows: { default: { mon-sun: "00:00-23:59" }, holidays: open }
    caps:
      - { channel: sms, max: 1, per: 1d }
    templates: { m: { sms: "Hola" } }
    stages:
      s:
        when: true
        steps:
          - { id: s1, at: due+1d 10:00, send: sms, template: m }
    """




def test_a_retry_goes_at_its_time_under_a_cap_of_one(db_url, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "policy.yaml"
    path.write_text(textwrap.dedent(POLICY))
    plan = compile_policy(path).plan
    engine = s.connect(db_url)
    (tmp_path / "i.csv").write_text("invoice_id,customer_id,amount,due_date,phone\nA,C1,100,2026-11-02,+51987654321\n")
    import_file(engine, "invoices", tmp_path / "i.csv", fields={}, colmap=ColumnMap(), default_tz="America/Lima")
    channels = Channels()
    provider = channels.instances["sms"] = Flaky(free_text=True)
    runner = Runner(engine, plan, channels)

    def tick(day, hour, minute=0):
        provider.now = dt.datetime(2026, 11, day, hour, minute, tzinfo=LIMA)
        return runner.tick(provider.now)
    tick(3, 10)  # s1 decided; the provider answers 503
    for hour in range(11, 15):
        tick(3, hour)
    assert provider.tries == 2 and len(provider.placed) == 1
    assert provider.placed[0] < dt.datetime(2026, 11, 3, 15, tzinfo=LIMA)
    with engine.connect() as conn:
        row = conn.execute(select(s.contacts).where(s.contacts.c.step == "s1")).one()
    assert row.status == "sent" and "held by" not in (row.reason or "")


def test_held_now_does_not_count_the_contact_itself(tmp_path):
    rt = runtime("""
    caps:
      - { channel: sms, max: 1, per: 1d }
    stages:
      s:
        when: true
        steps:
          - { id: s1, at: due+1d 10:00, send: sms, template: m }
    """, tmp_path)
    c = customer()
    invoice(c, "F1", "2026-11-02")
    decided = dt.datetime(2026, 11, 3, 10, tzinfo=LIMA)
    c.sent.append(SentContact(decided.astimezone(UTC), "sms", ("F1",)))  # the row waiting for its retry
    retry = decided + dt.timedelta(hours=1)
    assert held_now(rt, c, retry, ["F1"], "sms", decided) is None
    # another SMS sent meanwhile does hold it, until a day after that one
    other = decided + dt.timedelta(minutes=30)
    c.sent.append(SentContact(other.astimezone(UTC), "sms", ("F1",)))
    reason, until = held_now(rt, c, retry, ["F1"], "sms", decided)
    assert reason.startswith("cap:") and until == other + dt.timedelta(days=1)

"""Helpers for run-path tests: a channel provider in this process, and a store of SMS customers under one
policy, ticked at Lima times of November 2026."""

from __future__ import annotations

import datetime as dt
import textwrap
from zoneinfo import ZoneInfo

from collect.adapters.base import DeliveryResult
from collect.engine import store as s
from collect.engine.channels import Channels
from collect.engine.compiler import compile_policy
from collect.engine.portfolio import ColumnMap
from collect.engine.runner import Runner
from collect.engine.storeio import import_file

LIMA = ZoneInfo("America/Lima")
DOWN = DeliveryResult.transient("503", "service unavailable")  # retried at a later tick
REFUSED = DeliveryResult.account("20003", "authentication failed")  # a rotated token: waits, unattempted

# one SMS a day after the due date, any time of any day
SIMPLE = """\
    policy: r
    timezone: America/Lima
    windows: { default: { mon-sun: "00:00-23:59" }, holidays: open }
    templates: { m: { sms: "Hola" } }
    stages:
      s:
        when: true
        steps:
          - { id: s1, at: due+1d 10:00, send: sms, template: m }
    """

# two SMS two days apart under a cap of one contact a day
ONE_A_DAY = """\
    policy: c
    timezone: America/Lima
    windows: { default: { mon-sun: "00:00-23:59" }, holidays: open }
    caps:
      - { channel: any, max: 1, per: 1d }
    templates: { m: { sms: "Hola", email: { subject: "s", body: "b" } } }
    stages:
      s:
        when: true
        steps:
          - { id: z1, at: due+1d 10:00, send: sms, template: m }
          - { id: a3, at: due+3d 10:00, send: sms, template: m }
    """


class Provider:
    """A provider in this process: answers `down` (a DeliveryResult) while it is set, else sends.
    `placed`: the messages it sent; `sent_at`: (channel, the `now` the test set) of each; `calls`: every
    attempt, sent or not."""

    name = "provider"
    supports_html = supports_templates = False
    free_text = True
    dedupes = False

    def __init__(self, down: DeliveryResult | None = DOWN):
        self.down, self.placed, self.sent_at, self.calls, self.now = down, [], [], 0, None

    def send(self, message):
        self.calls += 1
        if self.down is not None:
            return self.down
        self.placed.append(message)
        self.sent_at.append((message.channel, self.now))
        return DeliveryResult.sent(f"p-{self.calls}")

    def close(self):
        pass


def sms_store(url: str, tmp_path, policy: str, rows: str = "A,C1,100,2026-11-02,+51987654321\n",
              provider: Provider | None = None, **channels_kw):
    """(engine, plan, channels, provider, tick(day, hour, minute=0)) for customers with an SMS number
    (`rows` of invoice_id,customer_id,amount,due_date,phone) under `policy`, their SMS on `provider` (by
    default one that is down); each tick sets `provider.now` to its Lima time of November 2026."""
    path = tmp_path / "policy.yaml"
    path.write_text(textwrap.dedent(policy))
    compiled = compile_policy(path)
    assert compiled.plan is not None, [str(d) for d in compiled.diagnostics.items]
    engine = s.connect(url)
    (tmp_path / "i.csv").write_text("invoice_id,customer_id,amount,due_date,phone\n" + rows)
    import_file(engine, "invoices", tmp_path / "i.csv", fields={}, colmap=ColumnMap(), default_tz="America/Lima")
    channels = Channels(**channels_kw)
    provider = channels.instances["sms"] = provider or Provider()
    runner = Runner(engine, compiled.plan, channels)

    def tick(day, hour, minute=0):
        provider.now = dt.datetime(2026, 11, day, hour, minute, tzinfo=LIMA)
        return runner.tick(provider.now)
    tick.runner = runner
    return engine, compiled.plan, channels, provider, tick

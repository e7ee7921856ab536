"""The core decides on instants, not on the zone they are written in.

The simulator keeps payments in UTC (the behavior model's and, converted, the portfolio's), `collect run`
gets them as the store gives them, and the core compares them with UTC or local times as is quickest.
Whatever zone the payments, promises and disputes of a customer are written in, the decisions must be
the same."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

from coretools import customer, invoice, run, runtime
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collect.engine.state import DisputeInfo, PaymentInfo, PromiseInfo

LIMA = ZoneInfo("America/Lima")
ZONES = (LIMA, dt.timezone.utc, ZoneInfo("Asia/Tokyo"), ZoneInfo("America/New_York"))
POLICY = """
stages:
  early:
    when: invoice.days_past_due between 1 and 10
    steps:
      - { id: od-1, at: due+1d, send: email, template: m }
      - { id: od-4, at: due+4d 10:00, send: [sms, email], template: m }
  late:
    when: invoice.days_past_due > 10
    steps:
      - { id: od-12, at: due+12d, escalate: { queue: q } }
events:
  payment_partial: [ { id: thanks, at: event 10:00, send: email, template: m } ]
  promise_made:    [ { id: pm-rem, at: promise-1d 10:00, send: email, template: m } ]
  promise_broken:  [ { id: pb, at: event 10:00, send: email, template: m } ]
  dispute_resolved: [ { id: dr, at: event+1d, send: email, template: m } ]
pause_when: [promise_active, disputed]
"""
START = dt.datetime(2026, 11, 2, tzinfo=LIMA)

# minutes after the start, within the three weeks simulated
moments = st.integers(0, 21 * 24 * 60).map(lambda m: START + dt.timedelta(minutes=m))
payments = st.lists(st.tuples(st.sampled_from(["F1", "F2"]), st.integers(50, 1200), moments), max_size=3)
promises = st.lists(st.tuples(st.sampled_from(["F1", "F2", None]), st.integers(100, 2000), moments,
                              st.integers(1, 6)), max_size=2)
disputes = st.lists(st.tuples(st.sampled_from(["F1", "F2"]), moments, st.none() | st.integers(1, 5 * 24 * 60)),
                    max_size=1)


def decided(tmp_path, facts, zone) -> list[tuple]:
    """The decisions of three weeks for a customer whose dated facts are written in `zone`."""
    pays, proms, disps = facts
    c = customer()
    invoice(c, "F1", "2026-11-03")
    invoice(c, "F2", "2026-11-08", amount="2000")
    c.payments = sorted((PaymentInfo(f"P{n}", iid, Decimal(amount), when.astimezone(zone))
                         for n, (iid, amount, when) in enumerate(pays)), key=lambda p: p.at)
    c.promises = [PromiseInfo(f"R{n}", Decimal(amount), (made + dt.timedelta(days=days)).date(),
                              made.astimezone(zone), iid) for n, (iid, amount, made, days) in enumerate(proms)]
    c.disputes = [DisputeInfo(f"D{n}", iid, opened.astimezone(zone),
                              None if lasts is None else (opened + dt.timedelta(minutes=lasts)).astimezone(zone))
                  for n, (iid, opened, lasts) in enumerate(disps)]
    result = run(runtime(POLICY, tmp_path), [c], "2026-11-02", 21)
    return [(d.at.isoformat(), d.step, d.invoice_ids, d.channel, d.status, d.reason) for d in result.decisions]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payments, promises, disputes, st.sampled_from(ZONES[1:]))
def test_the_decisions_do_not_depend_on_the_zone_facts_are_written_in(tmp_path, pays, proms, disps, zone):
    facts = (pays, proms, disps)
    assert decided(tmp_path, facts, zone) == decided(tmp_path, facts, LIMA)

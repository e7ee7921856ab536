"""A promise is broken only once its promised date has ended unpaid (engine/events.py: "the day after the
promised date"): a `promise_broken` step never fires on or before the promised date, fires once when the
promise is not kept, and never when it is. The suite's test looked at the customer only when the promise
woke it (the day after), so a core that broke promises a day early passed; here other invoices wake the
customer every day."""

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from coretools import BASE, customer, invoice, run, runtime
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collect.engine.state import PaymentInfo, PromiseInfo

LIMA = ZoneInfo("America/Lima")
ALL_WEEK = BASE.replace('default: { mon-fri: "08:00-19:00", sat: "09:00-13:00" }', 'default: { mon-sun: "08:00-19:00" }')
POLICY = """
stages:
  daily:
    when: invoice.days_past_due >= -40
    steps:
      - { id: d0, at: due, send: email, template: m }
events:
  promise_broken: [ { id: pb, at: event, send: sms, template: m } ]
"""


@pytest.fixture(scope="module")
def rt(tmp_path_factory):
    return runtime(POLICY, tmp_path_factory.mktemp("broken"), base=ALL_WEEK)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(promised_in=st.integers(1, 10), paid=st.none() | st.integers(-1, 12), made_hour=st.integers(0, 23))
def test_promise_broken_fires_only_after_the_promised_date(rt, promised_in, paid, made_hour):
    start = dt.date(2026, 11, 2)
    c = customer()
    invoice(c, "F1", "2026-10-20", "500")
    for day in range(20):  # one invoice due each day: the customer is looked at every day
        invoice(c, f"W{day}", (start + dt.timedelta(days=day)).isoformat(), "10")
    made = dt.datetime.combine(start, dt.time(made_hour), LIMA)
    promised = start + dt.timedelta(days=promised_in)
    c.promises.append(PromiseInfo("pr1", Decimal("500"), promised, made, "F1"))
    kept = False
    if paid is not None:
        at = dt.datetime.combine(promised + dt.timedelta(days=paid), dt.time(12), LIMA)
        c.payments.append(PaymentInfo("p1", "F1", Decimal("500"), max(at, made + dt.timedelta(minutes=1))))
        kept = paid <= 0
    result = run(rt, [c], start.isoformat(), 20)
    broken = [d for d in result.decisions if d.step == "pb" and d.status == "sent"]
    if kept:
        assert broken == []
    else:
        assert len(broken) == 1
        assert broken[0].at.date() == promised + dt.timedelta(days=1)

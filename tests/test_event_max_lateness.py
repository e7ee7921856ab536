"""`catch_up: none` drops an event step only when it is seen later than `max_lateness` after its trigger
(SPEC 4.3); one seen within it still goes. The suite tested max_lateness only for stage steps."""

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from coretools import BASE, customer, invoice, runtime
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collect.engine.decide import decide
from collect.engine.state import PaymentInfo

LIMA = ZoneInfo("America/Lima")
ALL_DAY = BASE.replace('default: { mon-fri: "08:00-19:00", sat: "09:00-13:00" }', 'default: { mon-sun: "00:00-24:00" }')
POLICY = """
catch_up: none
max_lateness: 2d
stages:
  s:
    when: invoice.days_past_due >= 0
    steps:
      - { id: far, at: due+300d, send: email, template: m }
events:
  payment_partial: [ { id: thanks, at: event 09:00, send: email, template: m } ]
"""


@pytest.fixture(scope="module")
def rt(tmp_path_factory):
    return runtime(POLICY, tmp_path_factory.mktemp("late-event"), base=ALL_DAY)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(paid_min=st.integers(0, 24 * 60 - 1), seen_after_min=st.integers(0, 4 * 24 * 60))
def test_an_event_step_is_missed_exactly_when_seen_later_than_max_lateness(rt, paid_min, seen_after_min):
    c = customer()
    invoice(c, "F1", "2026-11-01")
    paid = dt.datetime(2026, 11, 18, tzinfo=LIMA) + dt.timedelta(minutes=paid_min)
    c.payments.append(PaymentInfo("p1", "F1", Decimal("400"), paid))
    trigger = dt.datetime(2026, 11, 18, 9, tzinfo=LIMA)
    now = max(paid, trigger) + dt.timedelta(minutes=seen_after_min)
    out = [d for d in decide(rt, c, now).decisions if d.step == "thanks"]
    assert len(out) == 1
    # due from 09:00, or from the payment when it came later: lateness counts from then
    if now - max(paid, trigger) > dt.timedelta(days=2):
        assert (out[0].status, out[0].reason) == ("skipped", "missed")
    else:
        assert out[0].status == "sent"


def test_a_payment_after_the_window_opened_is_not_late_when_it_happens(tmp_path):
    """`at: event` is due from the window's opening (08:00) of the payment's day, but the payment came at
    15:00: with max_lateness 2h it is thanked at 15:00, not missed for being 7 hours late."""
    policy = POLICY.replace("max_lateness: 2d", "max_lateness: 2h").replace("at: event 09:00", "at: event")
    rt = runtime(policy, tmp_path)  # windows: mon-fri 08:00-19:00 (the 18th is a Wednesday)
    c = customer()
    invoice(c, "F1", "2026-11-01")
    paid = dt.datetime(2026, 11, 18, 15, tzinfo=LIMA)
    c.payments.append(PaymentInfo("p1", "F1", Decimal("400"), paid))
    out = [(d.status, d.reason) for d in decide(rt, c, paid).decisions if d.step == "thanks"]
    assert out == [("sent", "")]

"""`pause_when: promise_active` (the default) pauses the cadence from the promise until its promised date
has ended; it resumes the day after when the promise is not kept (engine/decide.py, _paused). The suite's
test looked at the customer only when the promise woke it, so a pause that ended a day early passed;
here the invoice has a step every day, so the customer is looked at daily."""

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from coretools import BASE, customer, invoice, run, runtime
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collect.engine.state import PromiseInfo

LIMA = ZoneInfo("America/Lima")
ALL_WEEK = BASE.replace('default: { mon-fri: "08:00-19:00", sat: "09:00-13:00" }', 'default: { mon-sun: "08:00-19:00" }')
STEPS = "\n".join(f"      - {{ id: s{k}, at: due+{k}d, send: email, template: m }}" for k in range(1, 31))
POLICY = f"""
catch_up: latest
stages:
  overdue:
    when: invoice.days_past_due >= 1
    steps:
{STEPS}
"""


@pytest.fixture(scope="module")
def rt(tmp_path_factory):
    return runtime(POLICY, tmp_path_factory.mktemp("pause"), base=ALL_WEEK)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(made_day=st.integers(2, 8), made_hour=st.integers(0, 23), length=st.integers(0, 8))
def test_no_cadence_contact_while_a_promise_is_active(rt, made_day, made_hour, length):
    c = customer()
    invoice(c, "F1", "2026-11-01")
    made = dt.datetime(2026, 11, made_day, made_hour, tzinfo=LIMA)
    promised = made.date() + dt.timedelta(days=length)
    c.promises.append(PromiseInfo("pr1", Decimal("1000"), promised, made, "F1"))
    result = run(rt, [c], "2026-11-02", 25)
    sent = [d.at for d in result.decisions if d.status == "sent"]
    assert not [at for at in sent if made <= at and at.date() <= promised], (made, promised, sent)
    # unpaid: the cadence resumes on the day after the promised date, at the window's opening
    assert dt.datetime.combine(promised + dt.timedelta(days=1), dt.time(8), LIMA) in sent

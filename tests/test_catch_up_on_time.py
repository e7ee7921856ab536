"""`catch_up: latest` supersedes only steps older than one tick (ON_TIME, an hour): a step an hourly tick
would have seen by itself is on time and goes, an older one seen late (a new invoice, a run after
downtime) is superseded by the newest; and a step caught up late is not said to have waited for its
window (SPEC 4.2, 4.3). The suite only checked the "on time" side."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from coretools import BASE, customer, invoice, runtime
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collect.engine.decide import decide

LIMA = ZoneInfo("America/Lima")
ALL_DAY = BASE.replace('default: { mon-fri: "08:00-19:00", sat: "09:00-13:00" }', 'default: { mon-sun: "00:00-24:00" }')
POLICY = """
catch_up: latest
stages:
  s:
    when: invoice.days_past_due >= 0
    steps:
      - { id: a, at: due 08:00, send: email, template: m }
      - { id: b, at: due 08:30, send: email, template: m }
"""


@pytest.fixture(scope="module")
def rt(tmp_path_factory):
    return runtime(POLICY, tmp_path_factory.mktemp("ontime"), base=ALL_DAY)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(minutes=st.integers(0, 24 * 60))
def test_latest_supersedes_exactly_the_steps_older_than_a_tick(rt, minutes):
    c = customer()
    invoice(c, "F1", "2026-11-18")
    now = dt.datetime(2026, 11, 18, 8, 30, tzinfo=LIMA) + dt.timedelta(minutes=minutes)  # first look
    out = decide(rt, c, now)
    by_step = {d.step: (d.status, d.reason) for d in out.decisions}
    assert by_step["b"] == ("sent", "")
    a_is_late = now - dt.datetime(2026, 11, 18, 8, tzinfo=LIMA) > dt.timedelta(hours=1)
    assert by_step["a"] == (("skipped", "superseded") if a_is_late else ("sent", ""))


def test_a_step_caught_up_hours_late_is_not_said_to_have_waited_for_its_window(tmp_path):
    rt = runtime("""
    catch_up: all
    stages:
      s:
        when: invoice.days_past_due >= 0
        steps:
          - { id: a, at: due 06:00, send: email, template: m }
    """, tmp_path)  # windows open at 08:00 on weekdays
    c = customer()
    invoice(c, "F1", "2026-11-18")  # a Wednesday
    late = decide(rt, c, dt.datetime(2026, 11, 18, 11, tzinfo=LIMA))  # first seen 5 h after the trigger
    assert [(d.step, d.status, d.reason) for d in late.decisions] == [("a", "sent", "")]
    c = customer()
    invoice(c, "F1", "2026-11-18")
    on_time = decide(rt, c, dt.datetime(2026, 11, 18, 6, 30, tzinfo=LIMA))
    assert [(d.step, d.status, d.reason) for d in on_time.decisions] == [("a", "deferred", "window")]

"""A cap's `cooldown_after_conversation`: no contact on the cap's channel until the cooldown after a
conversation has passed (docs/language.md, caps). Nothing else in the suite exercises it in the core."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from coretools import BASE, customer, invoice, run, runtime
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collect.engine.state import SentContact

LIMA = ZoneInfo("America/Lima")
UTC = dt.timezone.utc
OPEN_ALL_DAY = BASE.replace('default: { mon-fri: "08:00-19:00", sat: "09:00-13:00" }', 'default: { mon-sun: "00:00-24:00" }')
POLICY = """
caps:
  - { channel: sms, max: 9, per: 7d, cooldown_after_conversation: 3d }
group_by: invoice
catch_up: all
stages:
  s:
    when: invoice.days_past_due >= 0
    steps:
      - { id: a, at: due 08:00, send: sms, template: m }
      - { id: b, at: due+1d 08:00, send: sms, template: m }
      - { id: c, at: due+2d 08:00, send: sms, template: m }
      - { id: d, at: due+5d 08:00, send: sms, template: m }
      - { id: e, at: due+1d 09:00, send: email, template: m }
"""


@pytest.fixture(scope="module")
def rt(tmp_path_factory):
    return runtime(POLICY, tmp_path_factory.mktemp("cooldown"), base=OPEN_ALL_DAY)


def test_a_conversation_holds_the_cap_s_channel_for_the_cooldown(rt):
    c = customer()
    invoice(c, "F1", "2026-11-10")
    talk = dt.datetime(2026, 11, 10, 12, tzinfo=LIMA)  # after `a`, before `b` and `c`
    c.conversations.append(SentContact(talk.astimezone(UTC), "sms", ("F1",)))
    result = run(rt, [c], "2026-11-09", 10)
    sent = {d.step: d.at for d in result.decisions if d.status == "sent"}
    assert sent["a"] == dt.datetime(2026, 11, 10, 8, tzinfo=LIMA)
    # b (11th 08:00) and c (12th 08:00) wait until the cooldown ends on the 13th at 12:00
    assert sent["b"] == sent["c"] == dt.datetime(2026, 11, 13, 12, tzinfo=LIMA)
    assert sent["d"] == dt.datetime(2026, 11, 15, 8, tzinfo=LIMA)
    assert sent["e"] == dt.datetime(2026, 11, 11, 9, tzinfo=LIMA)  # email: not the cap's channel
    deferred = {d.step: d.reason for d in result.decisions if d.status == "deferred"}
    assert set(deferred) == {"b", "c"} and all(r.startswith("cap:") for r in deferred.values())


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(talk_minutes=st.lists(st.integers(0, 9 * 24 * 60), min_size=1, max_size=3))
def test_no_contact_on_the_channel_inside_a_cooldown(rt, talk_minutes):
    c = customer()
    invoice(c, "F1", "2026-11-10")
    start = dt.datetime(2026, 11, 9, tzinfo=LIMA).astimezone(UTC)
    talks = sorted(start + dt.timedelta(minutes=m) for m in talk_minutes)
    c.conversations.extend(SentContact(t, "sms", ("F1",)) for t in talks)
    result = run(rt, [c], "2026-11-09", 30)
    sms = [d.at.astimezone(UTC) for d in result.decisions if d.status == "sent" and d.channel == "sms"]
    assert len(sms) == 4  # every step goes, later if it must (on_cap: defer)
    for at in sms:
        for t in talks:
            assert not (t <= at < t + dt.timedelta(days=3)), (at, t)

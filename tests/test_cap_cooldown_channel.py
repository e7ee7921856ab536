"""Which conversations start a cap's `cooldown_after_conversation`: those on a channel the cap counts
(docs/language.md, caps; engine/decide.py, _cap_block). A talk on WhatsApp does not stop the SMS cap's
channel; a talk on SMS does."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from coretools import BASE, customer, invoice, run, runtime

from collect.engine.state import SentContact

LIMA = ZoneInfo("America/Lima")
UTC = dt.timezone.utc
ALL_DAY = BASE.replace('default: { mon-fri: "08:00-19:00", sat: "09:00-13:00" }', 'default: { mon-sun: "00:00-24:00" }')
POLICY = """
caps:
  - { channel: sms, max: 9, per: 7d, cooldown_after_conversation: 3d }
stages:
  s:
    when: invoice.days_past_due >= 0
    steps:
      - { id: a, at: due+1d 08:00, send: sms, template: m }
"""


@pytest.fixture(scope="module")
def rt(tmp_path_factory):
    return runtime(POLICY, tmp_path_factory.mktemp("cooldown-channel"), base=ALL_DAY)


@pytest.mark.parametrize("talk_channel, sent_at", [
    ("whatsapp", dt.datetime(2026, 11, 11, 8, tzinfo=LIMA)),  # not the cap's channel: no cooldown
    ("sms", dt.datetime(2026, 11, 13, 12, tzinfo=LIMA)),  # the cap's channel: waits 3 days after the talk
])
def test_only_a_conversation_on_the_cap_s_channel_starts_its_cooldown(rt, talk_channel, sent_at):
    c = customer()
    invoice(c, "F1", "2026-11-10")
    c.conversations.append(SentContact(dt.datetime(2026, 11, 10, 12, tzinfo=LIMA).astimezone(UTC), talk_channel, ("F1",)))
    result = run(rt, [c], "2026-11-09", 10)
    assert [d.at for d in result.decisions if d.status == "sent"] == [sent_at]

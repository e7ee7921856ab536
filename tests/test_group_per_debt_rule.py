"""A law's rule about one debt holds back a group message only for that debt's invoices (SPEC 5: Reg F's
no call about a debt for 7 days after a telephone conversation about it; docs/compliance.md).

With `group_by: customer`, a call due for invoice B was joined to the same step of invoice A, held back
by a conversation about A: the call about B waited five days, then went out as one call about both."""

import datetime as dt
from zoneinfo import ZoneInfo

from coretools import customer, invoice, rows, run, runtime

from collect.engine.state import SentContact

NY = ZoneInfo("America/New_York")
US = """
policy: t
timezone: America/New_York
currency: USD
compliance: [us-reg-f]
group_by: customer
windows:
  default: { mon-sun: "08:00-20:00" }
  holidays: open
templates:
  t: { voice: "Hello, please call us back." }
stages:
  s:
    when: invoice.days_past_due >= 1
    steps:
      - { id: c-1, at: due+1d 10:00, send: voice, template: t }
      - { id: c-2, at: due+2d 10:00, send: voice, template: t }
      - { id: c-3, at: due+3d 10:00, send: voice, template: t }
"""


def _customer(talk_about):
    c = customer(phone="+12125550111", timezone="America/New_York", country="US")
    invoice(c, "A", "2026-11-11")
    invoice(c, "B", "2026-11-12")
    c.conversations.append(SentContact(dt.datetime(2026, 11, 12, 10, 5, tzinfo=NY).astimezone(dt.timezone.utc),
                                       "voice", talk_about))
    return c


def test_a_conversation_about_one_debt_does_not_hold_back_calls_about_another(tmp_path):
    rt = runtime("", tmp_path, base=US)
    sent = rows(run(rt, [_customer(("A",))], "2026-11-12", 10))
    about_b = [(at, step, ids) for at, step, _, ids, _ in sent if "B" in ids]
    assert about_b == [("2026-11-13 10:00", "c-1", ("B",)), ("2026-11-14 10:00", "c-2", ("B",)),
                       ("2026-11-15 10:00", "c-3", ("B",))]
    # A's later calls wait the 7 days after the conversation (to the start of the 8th local day)
    about_a = [(at[:10], step, ids) for at, step, _, ids, _ in sent if "A" in ids]
    assert about_a == [("2026-11-12", "c-1", ("A",)), ("2026-11-19", "c-2", ("A",)), ("2026-11-19", "c-3", ("A",))]


def test_a_conversation_about_every_debt_holds_the_group_back_whole(tmp_path):
    """An agent's conversation (no invoice named) is about all the customer's debts: nothing to split."""
    rt = runtime("", tmp_path, base=US)
    result = run(rt, [_customer(())], "2026-11-12", 10)
    first_after = min(d.at for d in result.decisions if d.status == "sent" and d.at > dt.datetime(2026, 11, 12, 11, tzinfo=NY))
    assert first_after >= dt.datetime(2026, 11, 19, tzinfo=NY)

"""The `promise` a message's template sees (docs/language.md, Templates): for a step of a promise event,
that event's promise (kept or broken, too); for any other step, the active promise about the message's
invoices, if any. A customer-wide promise is not about an invoice issued after it was made."""

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

from coretools import BASE, customer, invoice, run, runtime

from collect.engine.messages import build_message
from collect.engine.state import PaymentInfo, PromiseInfo

LIMA = ZoneInfo("America/Lima")
SAYS = ('{% if promise.active %}active {{ promise.amount }} by {{ promise.date }}'
        '{% elif promise.amount %}inactive {{ promise.amount }}{% else %}none{% endif %}')
TEXT = BASE.replace('    sms: "sms {{ customer.name }}"\n', f'    sms: "{SAYS}"\n')
POLICY = """
catch_up: all
group_by: invoice
stages:
  overdue:
    when: invoice.days_past_due >= 1
    steps:
      - { id: s1, at: due+1d, send: sms, template: m }
events:
  promise_made: [ { id: pm, at: event, send: sms, template: m } ]
  promise_kept: [ { id: pk, at: event, send: sms, template: m } ]
  promise_broken: [ { id: pb, at: event, send: sms, template: m } ]
"""


def bodies(tmp_path, c, start, days):
    rt = runtime(POLICY, tmp_path, base=TEXT)
    result = run(rt, [c], start, days)
    return [(d.step, d.invoice_ids, build_message(rt, rt.plan, d, c, "https://pay/{customer_id}").body)
            for d in result.decisions if d.status == "sent"]


def test_a_message_about_an_invoice_issued_after_a_customer_wide_promise_does_not_cite_it(tmp_path):
    c = customer()
    invoice(c, "OLD", "2026-10-20", issue_date=dt.date(2026, 10, 1))
    invoice(c, "NEW", "2026-11-12", issue_date=dt.date(2026, 11, 10))
    c.promises.append(PromiseInfo("pr1", Decimal("5000"), dt.date(2026, 11, 20),
                                  dt.datetime(2026, 11, 5, 10, tzinfo=LIMA), None))
    sent = bodies(tmp_path, c, "2026-11-10", 5)
    assert ("s1", ("NEW",), "none") in sent
    assert not [b for step, ids, b in sent if ids == ("NEW",) and "5000" in b]


def kept_promise(invoice_id: str):
    """A customer whose invoice due 2026-11-02 was promised 300 by 11-06 on 11-04, paid on 11-05."""
    c = customer()
    invoice(c, invoice_id, "2026-11-02")
    c.promises.append(PromiseInfo("pr1", Decimal("300"), dt.date(2026, 11, 6), dt.datetime(2026, 11, 4, 10, tzinfo=LIMA),
                                  invoice_id))
    c.payments.append(PaymentInfo("pay1", invoice_id, Decimal("300"), dt.datetime(2026, 11, 5, 12, tzinfo=LIMA)))
    return c


def test_a_promise_event_message_cites_its_own_promise_and_a_cadence_one_only_an_active_one(tmp_path):
    c = kept_promise("F1")
    c.promises.append(PromiseInfo("pr2", Decimal("700"), dt.date(2026, 11, 12), dt.datetime(2026, 11, 9, 10, tzinfo=LIMA),
                                  "F1"))
    sent = bodies(tmp_path, c, "2026-11-02", 14)
    assert sent == [("s1", ("F1",), "none"),  # due+1d, before any promise
                    ("pm", ("F1",), "active 300 by 2026-11-06"),
                    ("pk", ("F1",), "inactive 300"),  # kept: no longer active, still the one it thanks for
                    ("pm", ("F1",), "active 700 by 2026-11-12"),
                    ("pb", ("F1",), "inactive 700")]


def test_a_promise_event_message_finds_its_promise_for_an_invoice_id_holding_a_bar(tmp_path):
    """Step keys are step|invoice|occurrence, and an invoice id may hold `|`."""
    sent = bodies(tmp_path, kept_promise("F001|17"), "2026-11-03", 5)
    assert ("pk", ("F001|17",), "inactive 300") in sent


def test_a_promise_replaced_by_a_newer_one_is_not_the_active_one_in_its_message():
    """As promise_active sees it: the newest promise of the invoice is the active one."""
    from types import SimpleNamespace

    from collect.engine.messages import _promise

    c = customer()
    invoice(c, "F1", "2026-11-02")
    first = PromiseInfo("promise-1", Decimal("300"), dt.date(2026, 11, 12), dt.datetime(2026, 11, 4, 9, tzinfo=LIMA), "F1")
    newer = PromiseInfo("promise-2", Decimal("500"), dt.date(2026, 11, 14), dt.datetime(2026, 11, 4, 9, 30, tzinfo=LIMA),
                        "F1")
    c.promises += [first, newer]
    message = SimpleNamespace(at=dt.datetime(2026, 11, 4, 10, tzinfo=LIMA), invoice_ids=("F1",), stage="promise_made",
                              keys=("pm|F1|promise-1",))
    assert _promise(c, message, ()) == (first, False)
    assert _promise(c, SimpleNamespace(**{**vars(message), "stage": "overdue", "keys": ()}), ()) == (newer, True)

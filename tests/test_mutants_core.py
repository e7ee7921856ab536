"""Rules of the decision core that hand mutation testing showed no test would catch (mutants of
engine/decide.py, calendar.py, events.py, state.py, runtime.py, compliance.py and behavior.py that the
suite let through): each test here fails with its mutant and passes on the code as written."""

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

from coretools import BASE, customer, invoice, rows, run, runtime

from collect.engine.decide import decide
from collect.engine.state import SentContact

LIMA = ZoneInfo("America/Lima")
UTC = dt.timezone.utc
ALL_DAY = BASE.replace('default: { mon-fri: "08:00-19:00", sat: "09:00-13:00" }', 'default: { mon-sun: "00:00-24:00" }')


def _at(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=LIMA)


def _sent(c, *args, channel="email"):
    c.sent.append(SentContact(_at(*args).astimezone(UTC), channel, tuple(c.invoices)))


def _outcome(out):
    return [(d.step, d.channel, d.status, d.reason) for d in out.decisions]


def test_an_invoice_marked_paid_gets_nothing_whatever_its_balance(tmp_path):
    """SPEC 4.6 / docs/files.md: status `paid` gets nothing more (stop_when), even with a balance left in the file."""
    rt = runtime("""
    stages:
      s:
        when: invoice.days_past_due >= 0
        steps:
          - { id: d0, at: due, send: email, template: m }
    """, tmp_path)
    c = customer()
    invoice(c, "F1", "2026-11-23", status="paid")  # balance is still the amount
    assert rows(run(rt, [c], "2026-11-22", 5), None) == []


def test_a_send_of_this_tick_is_not_counted_by_a_cap_as_of_the_earlier_trigger(tmp_path):
    """SPEC 4.2: a cap at a step's trigger counts the sends made by then, not the ones made later in the same tick."""
    rt = runtime("""
    caps: [ { channel: any, max: 2, per: 1d } ]
    stages:
      s:
        when: invoice.days_past_due >= 0
        steps:
          - { id: a, at: due 08:30, send: email, template: m }
          - { id: b, at: due 08:30, send: sms, template: m }
    """, tmp_path, base=ALL_DAY)
    c = customer()
    invoice(c, "F1", "2026-11-18")
    _sent(c, 2026, 11, 17, 8, 40)  # inside the day before 08:30, outside the day before 09:00
    out = decide(rt, c, _at(2026, 11, 18, 9, 0))
    assert _outcome(out) == [("a", "email", "sent", ""), ("b", "sms", "sent", "")]


def test_catch_up_latest_keeps_a_step_sharing_the_newest_trigger_through_its_window(tmp_path):
    """SPEC 4.3 / decide._catch_up: steps due together (one at 08:00, one at its window's 08:00 opening) never supersede each other."""
    rt = runtime("""
    catch_up: latest
    stages:
      s:
        when: invoice.days_past_due >= 0
        steps:
          - { id: a, at: due+1d 08:00, send: email, template: m }
          - { id: b, at: due+1d, send: sms, template: m }
    """, tmp_path)
    c = customer()
    invoice(c, "F1", "2026-11-16")  # a Monday: due+1d is Tuesday, the window opens at 08:00
    out = decide(rt, c, _at(2026, 11, 18, 10, 0))  # first seen a day late
    assert sorted(_outcome(out)) == [("a", "email", "sent", ""), ("b", "sms", "sent", "")]


def test_catch_up_none_sends_a_stage_step_seen_exactly_max_lateness_late(tmp_path):
    """SPEC 4.3 none: only steps whose trigger is OLDER than max_lateness never fire (stage steps, boundary)."""
    rt = runtime("""
    catch_up: none
    max_lateness: 2d
    stages:
      s:
        when: invoice.days_past_due >= 0
        steps:
          - { id: d0, at: due 09:00, send: email, template: m }
    """, tmp_path, base=ALL_DAY)
    c = customer()
    invoice(c, "F1", "2026-11-16")
    assert _outcome(decide(rt, c, _at(2026, 11, 18, 9, 0))) == [("d0", "email", "sent", "")]
    c2 = customer()
    invoice(c2, "F1", "2026-11-16")
    assert _outcome(decide(rt, c2, _at(2026, 11, 18, 9, 1))) == [("d0", "", "skipped", "missed")]


def test_a_condition_on_an_empty_yes_no_field_is_not_true_for_steps_caught_up(tmp_path):
    """docs/language.md null safety: a condition that is not true (a null bool field) leaves the step out, caught up late too."""
    rt = runtime("""
    fields: { customer.vip: bool }
    catch_up: all
    stages:
      s:
        when: invoice.days_past_due >= 0
        steps:
          - { id: a, at: due 08:00, send: email, template: m, if: customer.vip }
          - { id: b, at: due+1d 08:00, send: email, template: m, if: customer.vip }
    """, tmp_path, base=ALL_DAY)
    c = customer()  # no vip value
    invoice(c, "F1", "2026-11-16")
    out = decide(rt, c, _at(2026, 11, 20, 9, 0))
    assert out.decisions == [] and sorted(out.silent) == ["a|F1", "b|F1"]


def test_a_grouped_escalation_carries_the_highest_priority_of_its_invoices(tmp_path):
    """docs/language.md escalate: priority is `higher first`; a task for several invoices takes the highest of theirs."""
    rt = runtime("""
    stages:
      s:
        when: invoice.days_past_due >= 0
        steps:
          - { id: e, at: due+1d 09:00, escalate: { queue: agents, priority: invoice.balance } }
    """, tmp_path, base=ALL_DAY)
    c = customer()
    invoice(c, "F1", "2026-11-16", "100")
    invoice(c, "F2", "2026-11-16", "500")
    [task] = decide(rt, c, _at(2026, 11, 17, 9, 0)).decisions
    assert (task.status, task.invoice_ids, task.priority) == ("escalated", ("F1", "F2"), 500.0)


def test_a_promise_reminder_due_the_instant_the_promise_is_made_goes_out(tmp_path):
    """decide.not_for_this_invoice: only a reminder due BEFORE its promise was made is none (boundary: made at the trigger)."""
    from collect.engine.state import PromiseInfo
    rt = runtime("""
    stages: {}
    events:
      promise_made: [ { id: rem, at: promise-3d 08:00, send: email, template: m } ]
    """, tmp_path, base=ALL_DAY)
    c = customer()
    invoice(c, "F1", "2026-11-01")
    c.promises.append(PromiseInfo("p1", Decimal("1000"), dt.date(2026, 11, 19), _at(2026, 11, 16, 8, 0), "F1"))
    out = decide(rt, c, _at(2026, 11, 16, 8, 0))
    assert _outcome(out) == [("rem", "email", "sent", "")]


def test_a_webhook_is_no_contact_for_contacts_count_7d(tmp_path):
    """SPEC 4.7 / runtime.NOT_CONTACTS: a webhook is our own system, not a contact: contacts.count_7d does not count it."""
    rt = runtime("""
    stages:
      s:
        when: invoice.days_past_due >= 0
        steps:
          - { id: hook, at: due 08:00, webhook: crm }
          - { id: a, at: due+1d 08:00, send: email, template: m, if: contacts.count_7d == 0 }
    """, tmp_path, base=ALL_DAY)
    c = customer()
    invoice(c, "F1", "2026-11-16")
    result = run(rt, [c], "2026-11-16", 3)
    assert [(d.step, d.channel, d.status) for d in result.decisions] == [
        ("hook", "webhook", "sent"), ("a", "email", "sent")]


def test_a_window_is_closed_at_its_closing_minute():
    """SPEC 4.2: a window "08:00-19:00" is open up to, not including, 19:00 (the calendar oracle the invariants use)."""
    from collect.engine.calendar import ContactCalendar
    cal = ContactCalendar({"default": {d: [(480, 1140)] for d in ("mon", "tue", "wed", "thu", "fri")}})
    assert cal.is_open("sms", _at(2026, 11, 16, 18, 59), LIMA)
    assert not cal.is_open("sms", _at(2026, 11, 16, 19, 0), LIMA)


def test_a_balance_of_one_cent_is_not_paid(tmp_path):
    """SPEC 4.6: paid is a balance <= 0.005 in currency units; a cent left (0.01) is still owed and reminded."""
    rt = runtime("""
    stages:
      s:
        when: invoice.days_past_due >= 0
        steps:
          - { id: d0, at: due, send: email, template: m }
    """, tmp_path)
    c = customer()
    invoice(c, "F1", "2026-11-23", balance="0.01")
    assert [(r[1], r[2]) for r in rows(run(rt, [c], "2026-11-22", 3))] == [("d0", "email")]


def test_a_payment_leaving_no_more_than_half_a_cent_is_no_partial_payment(tmp_path):
    """events.occurrences: payment_partial is a payment that leaves a balance; one leaving <= 0.005 paid the invoice."""
    from collect.engine.state import PaymentInfo
    rt = runtime("""
    stop_when: [written_off]  # so that events of a paid invoice still run
    stages: {}
    events:
      payment_received: [ { id: thanks, at: event, send: email, template: m } ]
      payment_partial: [ { id: rest, at: event, send: email, template: m } ]
    """, tmp_path, base=ALL_DAY)
    c = customer()
    invoice(c, "F1", "2026-11-16", "100")
    c.payments.append(PaymentInfo("p1", "F1", Decimal("99.996"), _at(2026, 11, 17, 10, 0).astimezone(UTC)))
    out = decide(rt, c, _at(2026, 11, 17, 10, 0))
    assert [(d.step, d.status) for d in out.decisions] == [("thanks", "sent")]


def test_a_promise_paid_to_within_half_a_cent_is_kept(tmp_path):
    """SPEC 4.6 epsilon for promises (events.kept_at): payments within 0.005 of the promised amount keep it."""
    from collect.engine.state import PaymentInfo, PromiseInfo
    rt = runtime("""
    stages: {}
    events:
      promise_kept: [ { id: kept, at: event, send: email, template: m } ]
      promise_broken: [ { id: broken, at: event 09:00, send: email, template: m } ]
    """, tmp_path, base=ALL_DAY)
    c = customer()
    invoice(c, "F1", "2026-11-01", "500")
    c.promises.append(PromiseInfo("p1", Decimal("100"), dt.date(2026, 11, 18), _at(2026, 11, 16, 9, 0), "F1"))
    c.payments.append(PaymentInfo("pay1", "F1", Decimal("99.996"), _at(2026, 11, 17, 10, 0).astimezone(UTC)))
    result = run(rt, [c], "2026-11-16", 5)
    assert [(d.step, d.status) for d in result.decisions] == [("kept", "sent")]


def test_a_promise_is_not_broken_on_its_promised_date(tmp_path):
    """docs/language.md events: a promise is broken the day after the promised date; on that date broken_promises_12m is 0."""
    from collect.engine.events import Facts
    from collect.engine.state import PromiseInfo
    rt = runtime("stages: {}\n", tmp_path)
    c = customer()
    invoice(c, "F1", "2026-11-01")
    c.promises.append(PromiseInfo("p1", Decimal("100"), dt.date(2026, 11, 18), _at(2026, 11, 16, 9, 0), "F1"))
    assert Facts(rt, c, _at(2026, 11, 18, 23, 0))["customer.broken_promises_12m"] == 0
    assert Facts(rt, c, _at(2026, 11, 19, 0, 0))["customer.broken_promises_12m"] == 1


def test_a_dispute_resolved_step_fires_when_the_dispute_is_resolved(tmp_path):
    """docs/language.md events: dispute_resolved happens the day the dispute is resolved; its step goes out then, once."""
    from collect.engine.state import DisputeInfo
    rt = runtime("""
    stages: {}
    events:
      dispute_resolved: [ { id: sorry, at: event, send: email, template: m } ]
    """, tmp_path, base=ALL_DAY)
    c = customer()
    invoice(c, "F1", "2026-11-01")
    c.disputes.append(DisputeInfo("d1", "F1", _at(2026, 11, 16, 9, 0), _at(2026, 11, 18, 15, 0)))
    assert [r[:3] for r in rows(run(rt, [c], "2026-11-16", 5), None)] == [("2026-11-18 15:00", "sorry", "email")]


# -- a contact decided earlier and delivered late (a provider retry): decide.withdrawn / decide.held_now --

ONE_STEP = """
stages:
  s:
    when: invoice.days_past_due >= 0
    steps:
      - { id: a, at: due 09:00, send: [sms, email], template: m }
"""


def test_a_late_delivery_is_withdrawn_once_a_law_stops_all_contact(tmp_path):
    """SPEC 5: a lasting block of a profile (cl-sernac, the debtor sued) stops a waiting message too."""
    from collect.engine.decide import withdrawn
    rt = runtime("compliance: [cl-sernac]\n" + ONE_STEP, tmp_path)
    c = customer(country="CL", timezone="America/Santiago", legal_status="sued")
    invoice(c, "F1", "2026-11-16")
    why = withdrawn(rt, c, dt.datetime(2026, 11, 16, 10, 0, tzinfo=ZoneInfo("America/Santiago")), ("F1",), "email")
    assert why is not None and why.startswith("compliance:cl-sernac:")


def test_a_late_delivery_held_by_a_cap_falls_back_with_on_cap_skip(tmp_path):
    """SPEC 4.2/4.5: with on_cap: skip a cap never makes a contact wait: a held retry falls back (no until)."""
    from collect.engine.decide import held_now
    rt = runtime("on_cap: skip\ncaps: [ { channel: sms, max: 1, per: 1d } ]\n" + ONE_STEP, tmp_path, base=ALL_DAY)
    c = customer()
    invoice(c, "F1", "2026-11-16")
    _sent(c, 2026, 11, 16, 8, 0, channel="sms")  # another contact on the channel, before this one's decision
    assert held_now(rt, c, _at(2026, 11, 16, 10, 0), ("F1",), "sms", _at(2026, 11, 16, 9, 0)) == (
        "cap:sms-1-per-1d", None)


def test_a_payment_on_the_due_date_is_not_a_late_payment(tmp_path):
    """customer.late_payments_12m counts invoices paid after their due date (local day); paid on it is on time."""
    from collect.engine.events import Facts
    from collect.engine.state import PaymentInfo
    rt = runtime("stages: {}\n", tmp_path)
    c = customer()
    invoice(c, "F1", "2026-11-10")
    invoice(c, "F2", "2026-11-10")
    c.payments.append(PaymentInfo("p1", "F1", Decimal("10"), _at(2026, 11, 10, 23, 0).astimezone(UTC)))
    c.payments.append(PaymentInfo("p2", "F2", Decimal("10"), _at(2026, 11, 11, 0, 30).astimezone(UTC)))
    assert Facts(rt, c, _at(2026, 11, 20, 9, 0))["customer.late_payments_12m"] == 1


def test_a_law_that_names_plugins_limits_a_plugin_channel_and_counts_its_contacts():
    """SPEC 5 / compliance.covers: cl-sernac's message rules list `plugins`: a plugin channel is held and counted like email."""
    from collect.engine.compliance import Guard, resolve
    from collect.engine.state import CustomerInfo
    santiago = ZoneInfo("America/Santiago")
    guard, debtor = Guard(resolve(["cl-sernac"])), CustomerInfo("c1", country="CL")
    monday = dt.datetime(2026, 11, 23, 10, tzinfo=santiago)
    block = guard.check(debtor, "telegram", (), monday + dt.timedelta(hours=5), [SentContact(monday, "email")], [])
    assert block is not None and block.rule == "messages-two-days-apart"
    block = guard.check(debtor, "email", (), monday + dt.timedelta(hours=5), [SentContact(monday, "telegram")], [])
    assert block is not None and block.rule == "messages-two-days-apart"


def test_a_written_off_invoice_with_nothing_left_reads_written_off_not_paid(tmp_path):
    """events._status: invoice.status is derived as paid from a balance <= 0.005, except that written_off stays written_off."""
    from collect.engine.events import Context, Facts
    rt = runtime("stages: {}\n", tmp_path)
    c = customer()
    off = invoice(c, "F1", "2026-11-01", balance="0", status="written_off")
    paid = invoice(c, "F2", "2026-11-01", balance="0")
    facts = Facts(rt, c, _at(2026, 11, 20, 9, 0))
    assert (Context(facts, off)["invoice.status"], Context(facts, paid)["invoice.status"]) == ("written_off", "paid")


def test_a_step_with_for_and_if_needs_both_to_hold(tmp_path):
    """docs/language.md: `for` and `if` are both conditions of the step: it applies only when both are true."""
    rt = runtime("""
    stages:
      s:
        when: invoice.days_past_due >= 0
        steps:
          - { id: a, at: due 09:00, send: email, template: m, for: invoice.amount >= 1000, if: invoice.balance < 10 }
          - { id: b, at: due 09:00, send: sms, template: m, for: invoice.amount < 10, if: invoice.balance > 10 }
          - { id: c, at: due 09:00, send: whatsapp, template: m, for: invoice.amount >= 1000, if: invoice.balance > 10 }
    """, tmp_path, base=ALL_DAY)
    c = customer(whatsapp="+51987654321")
    invoice(c, "F1", "2026-11-16")
    out = decide(rt, c, _at(2026, 11, 16, 9, 0))
    assert [(d.step, d.status) for d in out.decisions] == [("c", "sent")]


def test_a_step_without_a_time_is_due_at_the_opening_of_its_first_channel_s_window(tmp_path):
    """docs/language.md triggers: without a time, a step is due at the opening of its FIRST channel's window that day."""
    rt = runtime("""
    stages:
      s:
        when: invoice.days_past_due >= 0
        steps:
          - { id: a, at: due, send: [email, sms], template: m }
    """, tmp_path, base=BASE.replace('sat: "09:00-13:00" }', 'sat: "09:00-13:00" }\n  sms: { mon-fri: "11:00-19:00" }'))
    c = customer()
    invoice(c, "F1", "2026-11-16")  # a Monday: email opens at 08:00, sms at 11:00
    assert rows(run(rt, [c], "2026-11-16", 1)) == [("2026-11-16 08:00", "a", "email", ("F1",), "")]


def test_a_behavior_model_s_delay_can_be_its_longest_number_of_days():
    """docs/simulate.md behavior: delay_days [fewest, most] is uniform over whole days, both ends included."""
    from collect.engine.behavior import BehaviorModel, BehaviorSpec
    from collect.engine.decide import Decision
    model = BehaviorModel(BehaviorSpec(pay_probability=1.0, delay_days=(1, 2)), seed=7)
    c = customer()
    now = _at(2026, 11, 16, 9, 0)
    sends = []
    for n in range(40):
        iid = f"F{n}"
        invoice(c, iid, "2026-11-10")
        sends.append(Decision(now, "c1", (iid,), "s", "a", "email", "m", "sent", keys=(f"a|{iid}",)))
    delays = {(p.at - now).days for p in model.react(None, c, sends, now)}
    assert delays == {1, 2}


def test_only_a_contact_on_a_sending_channel_can_lead_to_a_payment():
    """docs/simulate.md behavior: a webhook (our own system, no contact) never makes the customer pay."""
    from collect.engine.behavior import BehaviorModel, BehaviorSpec
    from collect.engine.decide import Decision
    model = BehaviorModel(BehaviorSpec(pay_probability=1.0), seed=7)
    c = customer()
    invoice(c, "F1", "2026-11-10")
    now = _at(2026, 11, 16, 9, 0)
    hook = Decision(now, "c1", ("F1",), "s", "h", "webhook", None, "sent", keys=("h|F1",))
    mail = hook._replace(step="a", channel="email", template="m", keys=("a|F1",))
    assert model.react(None, c, [hook], now) == []
    assert len(model.react(None, c, [mail], now)) == 1


def test_a_partial_payment_pays_its_fraction_of_the_balance():
    """docs/simulate.md behavior: partial_fraction: a partial payment pays this fraction of the balance (rounded to cents)."""
    from collect.engine.behavior import BehaviorModel, BehaviorSpec
    from collect.engine.decide import Decision
    model = BehaviorModel(BehaviorSpec(pay_probability=1.0, partial_share=1.0, partial_fraction=0.25), seed=7)
    c = customer()
    invoice(c, "F1", "2026-11-10", "1000", balance="333.33")
    now = _at(2026, 11, 16, 9, 0)
    mail = Decision(now, "c1", ("F1",), "s", "a", "email", "m", "sent", keys=("a|F1",))
    [payment] = model.react(None, c, [mail], now)
    assert payment.amount == Decimal("83.33")


def test_contacts_count_7d_is_a_rolling_window_like_a_cap_s(tmp_path):
    """docs/language.md: a message sent exactly 7 days before the decision is out of contacts.count_7d, one
    a minute later is in (the boundary a cap's rolling window has)."""
    rt = runtime("""
    stages:
      s:
        when: invoice.days_past_due >= 0
        steps:
          - { id: a, at: due 09:00, send: email, template: m, if: contacts.count_7d == 0 }
    """, tmp_path, base=ALL_DAY)
    outcomes = []
    for minute in (0, 1):
        c = customer()
        invoice(c, "F1", "2026-11-18")
        _sent(c, 2026, 11, 11, 9, minute)
        outcomes.append(_outcome(decide(rt, c, _at(2026, 11, 18, 9, 0))))
    assert [[o[2] for o in out] for out in outcomes] == [["sent"], []]

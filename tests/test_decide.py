"""The decision core, rule by rule (SPEC section 4), through short simulations."""

import datetime as dt
from decimal import Decimal
from textwrap import dedent
from zoneinfo import ZoneInfo

import pytest

from coretools import BASE as BASE_WINDOWS
from coretools import customer, invoice, rows, run, runtime

from collect.engine.state import DisputeInfo, PaymentInfo, PromiseInfo

LIMA = ZoneInfo("America/Lima")

PREVENTIVE = """
stages:
  preventive:
    when: invoice.days_past_due <= 0
    steps:
      - { id: pre-5, at: due-5d, send: email, template: m }
      - { id: pre-1, at: due-1d 10:00, send: [whatsapp, sms, email], template: m }
  early:
    when: invoice.days_past_due between 1 and 30
    steps:
      - { id: od-1, at: due+1d, send: email, template: m }
      - { id: od-3, at: due+3d, send: sms, template: m }
      - { id: od-7, at: due+7d, send: email, template: m }
"""


def test_steps_fire_at_trigger_in_customer_local_time(tmp_path):
    rt = runtime(PREVENTIVE, tmp_path)
    c = customer()
    invoice(c, "F1", "2026-11-20")  # a Friday
    result = run(rt, [c], "2026-11-10", 20)
    assert rows(result, None) == [
        ("2026-11-15 00:00", "pre-5", "email", ("F1",), "window"),  # due-5d is a Sunday: no window
        ("2026-11-16 08:00", "pre-5", "email", ("F1",), "window"),
        ("2026-11-19 10:00", "pre-1", "whatsapp", ("F1",), ""),  # WhatsApp on the phone number
        ("2026-11-21 09:00", "od-1", "email", ("F1",), ""),  # Saturday: the window opens at 09:00
        ("2026-11-23 08:00", "od-3", "sms", ("F1",), ""),
        ("2026-11-27 08:00", "od-7", "email", ("F1",), ""),
    ]


def test_window_and_weekend_defer(tmp_path):
    rt = runtime("""
    stages:
      early:
        when: invoice.days_past_due >= 1
        steps:
          - { id: od-1, at: due+1d, send: email, template: m }
    """, tmp_path)
    c = customer()
    invoice(c, "F1", "2026-11-21")  # Saturday; due+1d is Sunday (closed), so Monday 08:00
    result = run(rt, [c], "2026-11-20", 5)
    assert rows(result, "deferred") == [("2026-11-22 00:00", "od-1", "email", ("F1",), "window")]
    assert rows(result) == [("2026-11-23 08:00", "od-1", "email", ("F1",), "window")]


def test_holiday_defers_with_reason(tmp_path):
    rt = runtime("""
    calendar: { country: PE }
    stages:
      s:
        when: invoice.days_past_due >= 0
        steps:
          - { id: due, at: due, send: email, template: m }
    """, tmp_path)
    c = customer()
    invoice(c, "F1", "2026-07-28")  # Fiestas Patrias (a Tuesday); the 29th is a holiday too
    result = run(rt, [c], "2026-07-27", 5)
    assert [r[4] for r in rows(result, "deferred")] == ["holiday"]
    assert rows(result)[0][:2] == ("2026-07-30 08:00", "due")


def test_cap_defers_and_records_the_rule(tmp_path):
    rt = runtime("""
    caps:
      - { channel: sms, max: 1, per: 1d }
    stages:
      s:
        when: invoice.days_past_due >= 0
        steps:
          - { id: a, at: due 08:00, send: sms, template: m }
          - { id: b, at: due 10:00, send: sms, template: m }
    group_by: invoice
    catch_up: all
    """, tmp_path)
    c = customer()
    invoice(c, "F1", "2026-11-23")
    result = run(rt, [c], "2026-11-22", 3)
    assert rows(result, "deferred") == [("2026-11-23 10:00", "b", "sms", ("F1",), "cap:sms-1-per-1d")]
    sent = rows(result)
    assert [(r[0], r[1]) for r in sent] == [("2026-11-23 08:00", "a"), ("2026-11-24 08:00", "b")]


def test_a_cap_of_days_counts_days_on_the_customer_s_clock_across_dst(tmp_path):
    """1 SMS per 1d and an SMS at 09:00 each day, in New York across 2026-03-08 (a 23-hour day): each
    goes at 09:00. In elapsed time the second came an hour early and was deferred, and so were the rest."""
    rt = runtime("""
    caps:
      - { channel: sms, max: 1, per: 1d }
    stages:
      s:
        when: invoice.days_past_due >= 0
        steps:
          - { id: d1, at: due+1d 09:00, send: sms, template: m }
          - { id: d2, at: due+2d 09:00, send: sms, template: m }
          - { id: d3, at: due+3d 09:00, send: sms, template: m }
    """, tmp_path, base=BASE_WINDOWS.replace('mon-fri: "08:00-19:00", sat: "09:00-13:00"', 'mon-sun: "08:00-19:00"'))
    c = customer(timezone="America/New_York", phone="+12025550143")
    invoice(c, "F1", "2026-03-06")
    result = run(rt, [c], "2026-03-06", 5)
    assert [(d.at.astimezone(ZoneInfo("America/New_York")).strftime("%m-%d %H:%M"), d.step, d.status)
            for d in result.decisions] == [("03-07 09:00", "d1", "sent"), ("03-08 09:00", "d2", "sent"),
                                          ("03-09 09:00", "d3", "sent")]


CAPPED_SKIP = """
    caps:
      - { channel: any, max: 1, per: 7d }
    on_cap: skip
    stages:
      s:
        when: invoice.days_past_due >= 0
        steps:
          - { id: a, at: due, send: email, template: m }
          - { id: b, at: due+1d, send: [sms, email], template: m%s }
"""


def test_on_cap_skip_falls_back_then_skips(tmp_path):
    rt = runtime(CAPPED_SKIP % "", tmp_path)
    c = customer()
    invoice(c, "F1", "2026-11-23")
    result = run(rt, [c], "2026-11-22", 4)
    assert [r[1] for r in rows(result)] == ["a"]
    skipped = rows(result, "skipped")
    assert skipped[0][1] == "b" and "cap:any-1-per-1w" in skipped[0][4]


@pytest.mark.parametrize("phone, status, tasks", [
    ("+51987654321", "skipped", 0),  # both channels held back by the cap only: skipped, no task
    (None, "failed", 1),  # sms has no address, email is capped: a failure, and its task
])
def test_on_exhausted_opens_a_task_for_a_failure_not_for_caps_that_skip(tmp_path, phone, status, tasks):
    """docs/language.md, Fallback: an agent's task would go around the very cap that held the message back."""
    rt = runtime(CAPPED_SKIP % ", on_exhausted: escalate", tmp_path)
    c = customer(phone=phone)
    invoice(c, "F1", "2026-11-23")
    result = run(rt, [c], "2026-11-22", 4)
    [b] = [d for d in result.decisions if d.step == "b" and d.channel != "agent"]
    assert b.status == status and "email: cap:any-1-per-1w" in b.reason
    assert len([d for d in result.decisions if d.status == "escalated"]) == tasks


def test_on_cap_skip_passes_over_a_closed_channel_its_cap_will_still_hold_when_it_opens(tmp_path):
    """Saturday 10:00: SMS is closed until Monday and its cap (1 a week, one sent Wednesday) will still
    hold then; the email, open on Saturdays, goes at once instead of waiting for Monday."""
    rt = runtime("""
    caps:
      - { channel: sms, max: 1, per: 7d }
    on_cap: skip
    stages:
      s:
        when: invoice.days_past_due > 0
        steps:
          - { id: a, at: due+1d 10:00, send: sms, template: m }
          - { id: b, at: due+4d 10:00, send: [sms, email], template: m }
    """, tmp_path, base=BASE_WINDOWS.replace('sat: "09:00-13:00"', 'sat: "09:00-13:00" }\n  sms: { mon-fri: "08:00-19:00"'))
    c = customer()
    invoice(c, "F1", "2026-11-24")  # a Tuesday
    result = run(rt, [c], "2026-11-24", 7)
    assert [(d.at.strftime("%a %H:%M"), d.step, d.channel, d.status) for d in result.decisions] == [
        ("Wed 10:00", "a", "sms", "sent"), ("Sat 10:00", "b", "email", "sent")]


def test_catch_up_latest_keeps_the_steps_written_with_the_newest_at(tmp_path):
    """An escalation and an email both `at: due+15d`, first seen 16 days past due: the task (local
    midnight, having no window) and the email (08:00) share the trigger; only od-1 is superseded."""
    rt = runtime("""
    stages:
      s:
        when: invoice.days_past_due > 0
        steps:
          - { id: od-1, at: due+1d, send: email, template: m }
          - { id: od-15-task, at: due+15d, escalate: { queue: agents } }
          - { id: od-15-mail, at: due+15d, send: email, template: m }
    """, tmp_path)
    c = customer()
    invoice(c, "F1", "2026-11-01")
    result = run(rt, [c], "2026-11-17", 1)  # a Tuesday
    assert [(d.step, d.status, d.reason) for d in result.decisions if d.status != "deferred"] == [
        ("od-1", "skipped", "superseded"), ("od-15-task", "escalated", ""), ("od-15-mail", "sent", "window")]


def test_catch_up_latest_supersedes_older_steps(tmp_path):
    rt = runtime(PREVENTIVE, tmp_path)
    c = customer()
    invoice(c, "F1", "2026-11-01")  # 20 days past due when first seen
    result = run(rt, [c], "2026-11-21", 2)
    assert [(r[1], r[4]) for r in rows(result, "skipped")] == [("od-1", "superseded"), ("od-3", "superseded")]
    assert [r[1] for r in rows(result)] == ["od-7"]


def test_catch_up_none_skips_missed_steps(tmp_path):
    rt = runtime(PREVENTIVE + "\ncatch_up: none\nmax_lateness: 2d\n", tmp_path)
    c = customer()
    invoice(c, "F1", "2026-11-17")  # od-1 (18th) is 3+ days old on the 21st, od-3 (20th) is not
    result = run(rt, [c], "2026-11-21", 1)
    assert [(r[1], r[4]) for r in rows(result, "skipped")] == [("od-1", "missed")]
    assert [r[1] for r in rows(result)] == ["od-3"]


def test_each_step_at_most_once_per_invoice(tmp_path):
    rt = runtime(PREVENTIVE, tmp_path)
    c = customer()
    for i in range(5):
        invoice(c, f"F{i}", f"2026-11-{10 + i * 3:02d}")
    result = run(rt, [c], "2026-11-01", 60, tick_s=900)
    settled = [(step_key) for d in result.decisions if d.status != "deferred" for step_key in d.keys]
    assert len(settled) == len(set(settled))


def test_do_not_contact_is_absolute(tmp_path):
    rt = runtime(PREVENTIVE, tmp_path)
    c = customer(do_not_contact=True)
    invoice(c, "F1", "2026-11-20")
    result = run(rt, [c], "2026-11-10", 30)
    assert rows(result) == []
    assert {r[4] for r in rows(result, "skipped")} == {"do_not_contact"}


def test_fallback_on_missing_invalid_and_opted_out_addresses(tmp_path):
    rt = runtime("""
    stages:
      s:
        when: invoice.days_past_due >= 0
        steps:
          - { id: a, at: due, send: [whatsapp, sms, email], template: m, on_exhausted: escalate }
    """, tmp_path)
    reachable = customer("c1", phone="12", optouts=frozenset({"email"}), whatsapp=None)  # invalid phone
    nobody = customer("c2", phone=None, email="not-an-email")
    email_only = customer("c3", phone="+51 987 654 321", optouts=frozenset({"whatsapp", "sms"}))
    for c in (reachable, nobody, email_only):
        invoice(c, f"F-{c.customer.id}", "2026-11-23")
    result = run(rt, [reachable, nobody, email_only], "2026-11-23", 1)
    outcomes = {(d.customer_id, d.status, d.channel) for d in result.decisions}
    assert ("c3", "sent", "email") in outcomes
    assert ("c1", "failed", "email") in outcomes and ("c1", "escalated", "agent") in outcomes
    failed = next(d for d in result.decisions if d.customer_id == "c2" and d.status == "failed")
    assert "whatsapp: no address" in failed.reason and "email: invalid address" in failed.reason


def test_group_by_customer_sends_one_message(tmp_path):
    rt = runtime(PREVENTIVE, tmp_path)
    c = customer()
    invoice(c, "F1", "2026-11-20")
    invoice(c, "F2", "2026-11-20")
    invoice(c, "F3", "2026-11-24")
    result = run(rt, [c], "2026-11-14", 3)  # pre-5 falls on Sunday the 15th
    assert rows(result) == [("2026-11-16 08:00", "pre-5", "email", ("F1", "F2"), "window")]


def test_paid_invoice_stops_the_cadence(tmp_path):
    rt = runtime(PREVENTIVE, tmp_path)
    c = customer()
    invoice(c, "F1", "2026-11-20")
    c.payments.append(PaymentInfo("p1", "F1", Decimal("999.996"), dt.datetime(2026, 11, 20, 15, tzinfo=LIMA)))
    result = run(rt, [c], "2026-11-10", 30)  # 0.004 left is paid (SPEC 4.6)
    assert [r[1] for r in rows(result)] == ["pre-5", "pre-1"]


def test_partial_payment_keeps_the_cadence_and_fires_its_event(tmp_path):
    rt = runtime(PREVENTIVE + dedent("""
    events:
      payment_partial: [ { id: thanks, at: event, send: email, template: m } ]
    """), tmp_path)
    c = customer()
    invoice(c, "F1", "2026-11-16")
    c.payments.append(PaymentInfo("p1", "F1", Decimal("400"), dt.datetime(2026, 11, 18, 12, tzinfo=LIMA)))
    result = run(rt, [c], "2026-11-17", 10)
    steps = [r[1] for r in rows(result)]
    assert steps == ["od-1", "thanks", "od-3", "od-7"]


def test_promise_pauses_then_broken_promise_event(tmp_path):
    rt = runtime(PREVENTIVE + dedent("""
    events:
      promise_broken: [ { id: pb, at: event, send: sms, template: m } ]
      promise_made: [ { id: pm, at: promise-1d, send: email, template: m } ]
    """), tmp_path)
    c = customer()
    invoice(c, "F1", "2026-11-16")
    c.promises.append(PromiseInfo("pr1", Decimal("1000"), dt.date(2026, 11, 24),
                                  dt.datetime(2026, 11, 17, 9, tzinfo=LIMA), "F1"))
    result = run(rt, [c], "2026-11-17", 14)
    sent = [(r[0][:10], r[1]) for r in rows(result)]
    # od-1 on the 17th fires before the promise is made at 09:00? The promise is made at 09:00,
    # od-1 fires at 08:00; od-3 (19th) and od-7 (23rd) wait; the promise breaks on the 25th.
    assert sent[0] == ("2026-11-17", "od-1")
    assert ("2026-11-23", "pm") in sent
    assert ("2026-11-25", "pb") in sent
    assert not any(step in ("od-3",) and day < "2026-11-25" for day, step in sent)


def test_dispute_pauses_the_cadence(tmp_path):
    rt = runtime(PREVENTIVE, tmp_path)
    c = customer()
    invoice(c, "F1", "2026-11-16")
    c.disputes.append(DisputeInfo("d1", "F1", dt.datetime(2026, 11, 16, 12, tzinfo=LIMA)))
    result = run(rt, [c], "2026-11-17", 20)
    assert rows(result) == []


def test_holdout_gets_no_sends(tmp_path):
    # (that assignments are the same in every process: test_experiment_assignment's pinned ids)
    rt = runtime(PREVENTIVE + dedent("""
    experiments:
      tone: { unit: customer, variants: { soft: 50, holdout: 50 } }
    """), tmp_path)
    assignments = {f"c{i}": rt.variant("tone", f"c{i}") for i in range(200)}
    assert 60 < sum(v == "holdout" for v in assignments.values()) < 140
    held = next(cid for cid, v in assignments.items() if v == "holdout")
    c = customer(held)
    invoice(c, "F1", "2026-11-20")
    result = run(rt, [c], "2026-11-10", 20)
    assert rows(result) == [] and {r[4] for r in rows(result, "skipped")} == {"holdout"}


def test_a_holdout_is_held_out_of_messages_only_unless_a_step_says_so(tmp_path):
    """docs/language.md, experiments: agent tasks and webhooks still happen for a holdout customer; a
    step's `if:` on the variant holds it out of those too."""
    rt = runtime(dedent("""
    experiments:
      tone: { unit: customer, variants: { soft: 50, holdout: 50 } }
    stages:
      late:
        when: invoice.days_past_due >= 1
        steps:
          - { id: mail, at: due+1d, send: email, template: m }
          - { id: task, at: due+2d, escalate: { queue: agents } }
          - { id: hook, at: due+3d, webhook: legal }
          - { id: task-treated, at: due+4d, if: variant("tone") != "holdout", escalate: { queue: agents } }
    """), tmp_path)
    held = next(f"c{i}" for i in range(100) if rt.variant("tone", f"c{i}") == "holdout")
    c = customer(held)
    invoice(c, "F1", "2026-11-20")
    result = run(rt, [c], "2026-11-20", 10)
    assert [(d.step, d.status, d.reason) for d in result.decisions] == [
        ("mail", "skipped", "holdout"), ("task", "escalated", ""), ("hook", "sent", "")]


def test_escalation_priority_expression(tmp_path):
    rt = runtime("""
    fields: { customer.risk_score: float }
    stages:
      s:
        when: invoice.days_past_due >= 0
        steps:
          - { id: e, at: due+15d, escalate: { queue: key-accounts, priority: "invoice.balance * (1 - customer.risk_score)" } }
    """, tmp_path)
    c = customer()
    c.customer.attrs["risk_score"] = 0.25
    invoice(c, "F1", "2026-11-01", "2000")
    result = run(rt, [c], "2026-11-16", 2)
    task = next(d for d in result.decisions if d.status == "escalated")
    assert (task.queue, task.priority, task.channel) == ("key-accounts", 1500.0, "agent")


def test_a_priority_past_a_floats_range_is_no_priority_not_infinity(tmp_path):
    """A decimal of 1e400 is a number to the expressions, but `inf` as a float: it sorted first in
    `collect tasks`, and `tasks --format json` and the agent hand-off wrote `Infinity`, which is no JSON."""
    rt = runtime("""
    stages:
      s:
        when: invoice.days_past_due >= 0
        steps:
          - { id: e, at: due+15d, escalate: { queue: q, priority: "invoice.balance * %s" } }
    """ % ("1" + "0" * 400), tmp_path)
    c = customer()
    invoice(c, "F1", "2026-11-01", "2000")
    task = next(d for d in run(rt, [c], "2026-11-16", 2).decisions if d.status == "escalated")
    assert task.priority is None


def test_a_deferred_contact_goes_out_at_its_slot_whatever_became_due_meanwhile(tmp_path):
    """Catch-up is for steps seen due for the first time: od-1, deferred by the weekend, is not
    superseded on Monday by od-2 (SPEC 4.2: a deferred contact goes at its slot)."""
    rt = runtime("""
    stages:
      early:
        when: invoice.days_past_due >= 1
        steps:
          - { id: od-1, at: due+1d, send: email, template: m }
          - { id: od-2, at: due+2d, send: sms, template: m }
    """, tmp_path)
    c = customer()
    invoice(c, "F1", "2026-11-21")  # od-1 on Sunday 22nd (closed): deferred to Monday, when od-2 is due
    result = run(rt, [c], "2026-11-20", 5)
    assert [(d.at.strftime("%a %H:%M"), d.step, d.status) for d in result.decisions] == [
        ("Sun 00:00", "od-1", "deferred"), ("Mon 08:00", "od-1", "sent"), ("Mon 08:00", "od-2", "sent")]


def test_steps_with_the_same_trigger_do_not_supersede_each_other(tmp_path):
    rt = runtime("""
    stages:
      s:
        when: invoice.days_past_due >= 1
        steps:
          - { id: a-mail, at: due+15d 10:00, send: email, template: m }
          - { id: a-task, at: due+15d 10:00, escalate: { queue: agents } }
    """, tmp_path)
    c = customer()
    invoice(c, "F1", "2026-11-01")  # both due on the 16th, seen from the 10th
    result = run(rt, [c], "2026-11-10", 8)
    assert [(d.step, d.status) for d in result.decisions] == [("a-mail", "sent"), ("a-task", "escalated")]


def test_a_contact_deferred_in_a_stage_the_invoice_has_left_is_closed(tmp_path):
    rt = runtime("""
    stages:
      pre:
        when: invoice.days_past_due <= 0
        steps: [ { id: due-day, at: due, send: email, template: m } ]
      late:
        when: invoice.days_past_due >= 1
        steps: [ { id: od-7, at: due+7d 10:00, send: email, template: m } ]
    """, tmp_path)
    c = customer()
    invoice(c, "F1", "2026-11-22")  # a Sunday: due-day waits for Monday, when the invoice is overdue
    result = run(rt, [c], "2026-11-20", 4)
    assert [(d.at.strftime("%a %H:%M"), d.step, d.status, d.reason) for d in result.decisions] == [
        ("Sun 00:00", "due-day", "deferred", "window"), ("Mon 08:00", "due-day", "skipped", "stage ended")]
    assert "due-day|F1" not in c.pending


def test_holdout_per_invoice_inside_a_grouped_message(tmp_path):
    rt = runtime(PREVENTIVE + dedent("""
    experiments:
      tone: { unit: invoice, variants: { soft: 50, holdout: 50 } }
    """), tmp_path)
    ids = [f"F{i}" for i in range(40)]
    held = [i for i in ids if rt.variant("tone", i) == "holdout"]
    kept = [i for i in ids if i not in held]
    assert held and kept
    c = customer()
    for iid in ids:
        invoice(c, iid, "2026-11-16")  # all due the same day: one grouped message per step
    result = run(rt, [c], "2026-11-17", 1)
    sent = [d for d in result.decisions if d.status == "sent"]
    skipped = [d for d in result.decisions if d.reason == "holdout"]
    assert [sorted(d.invoice_ids) for d in sent] == [sorted(kept)]
    assert [sorted(d.invoice_ids) for d in skipped] == [sorted(held)]


def test_catch_up_all_fires_the_oldest_first_across_invoices(tmp_path):
    rt = runtime(PREVENTIVE + "\ncatch_up: all\ngroup_by: invoice\ncaps: [ { channel: any, max: 1, per: 1d } ]\n",
                 tmp_path)
    c = customer()
    invoice(c, "NEW", "2026-11-16")  # listed first, but due after OLD
    invoice(c, "OLD", "2026-11-02")
    result = run(rt, [c], "2026-11-25", 3)
    first = rows(result)[0]
    assert first[3] == ("OLD",)


def test_a_kept_promise_gets_no_reminder_and_a_customer_promise_is_one_message(tmp_path):
    rt = runtime(PREVENTIVE + dedent("""
    group_by: invoice
    events:
      promise_made: [ { id: pm-rem, at: promise-1d 09:00, send: sms, template: m } ]
    """), tmp_path)
    kept, wide = customer("kept"), customer("wide")
    invoice(kept, "K1", "2026-11-02")
    kept.promises.append(PromiseInfo("p1", Decimal("500"), dt.date(2026, 11, 20),
                                     dt.datetime(2026, 11, 10, 9, tzinfo=LIMA), "K1"))
    kept.payments.append(PaymentInfo("pay1", "K1", Decimal("500"), dt.datetime(2026, 11, 12, 11, tzinfo=LIMA)))
    for iid in ("W1", "W2", "W3"):
        invoice(wide, iid, "2026-11-02")
    wide.promises.append(PromiseInfo("p2", Decimal("3000"), dt.date(2026, 11, 20),
                                     dt.datetime(2026, 11, 10, 9, tzinfo=LIMA)))  # about all the invoices
    result = run(rt, [kept, wide], "2026-11-10", 12)
    reminders = [(d.customer_id, d.invoice_ids) for d in result.decisions if d.step == "pm-rem"]
    assert reminders == [("wide", ("W1", "W2", "W3"))]


def test_a_reminder_deferred_past_its_trigger_does_not_go_out_once_the_promise_is_kept(tmp_path):
    """The reminder of a promise due Monday the 23rd triggers on Sunday (no window): it waits for Monday
    08:00. The customer pays on Sunday at noon: the waiting reminder is closed, `skipped: promise kept`."""
    rt = runtime(PREVENTIVE + dedent("""
    events:
      promise_made: [ { id: pm-rem, at: promise-1d, send: email, template: m } ]
    """), tmp_path)
    c = customer()
    invoice(c, "F1", "2026-12-20")
    c.promises.append(PromiseInfo("p1", Decimal("300"), dt.date(2026, 11, 23),
                                  dt.datetime(2026, 11, 18, 12, tzinfo=LIMA), "F1"))
    c.payments.append(PaymentInfo("pay1", "F1", Decimal("300"), dt.datetime(2026, 11, 22, 12, tzinfo=LIMA)))
    result = run(rt, [c], "2026-11-17", 8)
    reminder = [(d.at.strftime("%a %d %H:%M"), d.status, d.reason) for d in result.decisions if d.step == "pm-rem"]
    assert reminder == [("Sun 22 00:00", "deferred", "window"), ("Sun 22 12:00", "skipped", "promise kept")]


def test_two_occurrences_for_one_invoice_are_two_messages_under_group_by_customer(tmp_path):
    """Two partial payments of F1 in one morning, seen by the same tick (the next day's first): two
    `payment_partial` thank-yous, each listing F1 once (one message listing F1 twice would show twice its
    balance)."""
    rt = runtime(PREVENTIVE + dedent("""
    group_by: customer
    events:
      payment_partial: [ { id: thanks, at: event, send: email, template: m } ]
    """), tmp_path)
    c = customer()
    invoice(c, "F1", "2026-12-20")
    invoice(c, "F2", "2026-12-20")
    for pid, hour in (("a", 9), ("b", 10)):
        c.payments.append(PaymentInfo(pid, "F1", Decimal("100"), dt.datetime(2026, 11, 18, hour, tzinfo=LIMA)))
    c.payments.append(PaymentInfo("c", "F2", Decimal("100"), dt.datetime(2026, 11, 18, 9, tzinfo=LIMA)))
    result = run(rt, [c], "2026-11-19", 2)
    thanks = sorted(d.invoice_ids for d in result.decisions if d.step == "thanks" and d.status == "sent")
    assert thanks == [("F1",), ("F1", "F2")]


def test_a_trigger_in_the_repeated_hour_of_a_fall_back_day_is_due_at_the_first_tick_after_it(tmp_path):
    """Madrid, 2026-10-25: `due 02:30` is the first 02:30 (+02:00), 00:30 UTC. The tick at 01:00 UTC is
    02:00+01:00 on the wall clock, earlier than 02:30, yet half an hour after the trigger: it sends."""
    from coretools import BASE

    base = BASE.replace('default: { mon-fri: "08:00-19:00", sat: "09:00-13:00" }', 'default: { mon-sun: "00:00-24:00" }')
    rt = runtime("""
    stages:
      s:
        when: invoice.days_past_due >= 0
        steps:
          - { id: a, at: due 02:30, send: email, template: m }
    """, tmp_path, base)
    state = customer(timezone="Europe/Madrid")
    invoice(state, "F1", "2026-10-25")
    from collect.engine.decide import decide

    out = decide(rt, state, dt.datetime(2026, 10, 25, 1, 0, tzinfo=dt.timezone.utc))
    assert [d.status for d in out.decisions] == ["sent"]


STOP_POLICY = """
catch_up: {cu}
max_lateness: 2d
stages:
  early:
    when: invoice.days_past_due >= 1
    steps:
      - {{ id: o1, at: due+1d, send: email, template: m }}
      - {{ id: handoff, at: due+5d, stop: true }}
      - {{ id: o9, at: due+9d, send: email, template: m }}
      - {{ id: o15, at: due+15d, send: email, template: m }}
"""


@pytest.mark.parametrize("cu", ["latest", "none", "all"])
def test_a_stop_step_seen_late_still_stops_and_leaves_nothing_waiting(tmp_path, cu):
    """The invoice is first seen at due+10d (at midnight, outside the window): its stop (due+5d) is never
    superseded or missed, steps due after it never go out, and under `all` the step before it, deferred
    to the window's opening, is closed by the stop instead of waiting for ever."""
    rt = runtime(STOP_POLICY.format(cu=cu), tmp_path)
    state = customer()
    invoice(state, "A", "2026-10-25")
    result = run(rt, [state], "2026-11-04", 20)
    assert rows(result) == []
    assert ("handoff", "stopped by step") in {(d.step, d.reason) for d in result.decisions}
    assert not set(state.pending), state.pending  # nothing left deferred for ever
    # o9 (due+9d, already due) is recorded once as stopped, not dropped in silence (docs/language.md,
    # catch-up); o15 is never due for an ended invoice and gets no row
    decided = [(d.step, d.status, d.reason) for d in result.decisions]
    assert [r for r in decided if r[0] == "o9"] == [("o9", "skipped", "stopped by step")], decided
    assert not any(r[0] == "o15" for r in decided)
    assert state.done.get("o9|A") == "skipped"


@pytest.mark.parametrize("zone", ["America/Lima", "Asia/Kolkata", "Asia/Kathmandu"])
def test_latest_does_not_supersede_a_step_due_within_the_same_hourly_tick(tmp_path, zone):
    """Steps at 09:00 and 09:20 of one day fall inside one UTC-aligned hourly tick for a customer at
    +05:30 or +05:45: in normal running both go out (catch-up is for steps seen late)."""
    base = BASE_WINDOWS.replace('default: { mon-fri: "08:00-19:00", sat: "09:00-13:00" }',
                                'default: { mon-sun: "08:00-19:00" }')
    rt = runtime("""
    stages:
      pre:
        when: invoice.days_past_due <= 0
        steps:
          - { id: mail, at: due-1d 09:00, send: email, template: m }
          - { id: text, at: due-1d 09:20, send: sms, template: m }
    """, tmp_path, base)
    state = customer(timezone=zone)
    invoice(state, "F1", "2026-11-20")
    assert sorted(r[1] for r in rows(run(rt, [state], "2026-11-10", 15))) == ["mail", "text"]


@pytest.mark.parametrize("tick_s", [3600, 1800, 900])
def test_a_trigger_before_the_window_is_a_deferral_whatever_the_tick(tmp_path, tick_s):
    """SPEC 4.2: a slot later than the trigger is a deferral (reason `window`); with an hourly tick the
    trigger (07:30) and the opening (08:00) fall in one tick, and the deferral must still be recorded."""
    rt = runtime("""
    stages:
      pre:
        when: invoice.days_past_due <= 0
        steps:
          - { id: p3, at: due-3d 07:30, send: email, template: m }
    """, tmp_path)
    state = customer()
    invoice(state, "F1", "2026-11-20")
    result = run(rt, [state], "2026-11-10", 10, tick_s=tick_s)
    assert [(d.status, d.reason) for d in result.decisions] == [("deferred", "window"), ("sent", "window")]
    assert result.decisions[-1].at.strftime("%H:%M") == "08:00"


def test_a_wait_for_a_compliance_profiles_hours_is_recorded_whatever_the_tick(tmp_path):
    """The policy's window is open at 06:30 but pe-indecopi's hours are not (07:00): the hourly tick at
    07:00 sees the trigger and the lawful opening together, and still records the deferral (SPEC 4.2),
    as a tick at 06:30 would have."""
    rt = runtime("""
    compliance: [pe-indecopi]
    stages:
      preventive:
        when: invoice.days_past_due <= 0
        steps:
          - { id: pre-2, at: due-2d 06:30, send: sms, template: m }
    """, tmp_path, BASE_WINDOWS.replace('mon-fri: "08:00-19:00"', 'mon-fri: "06:00-19:00"'))
    c = customer()
    invoice(c, "F1", "2026-11-20")  # a Friday: due-2d is a Wednesday
    result = run(rt, [c], "2026-11-16", 5)
    hours = rt.guard.check(c.customer, "sms", (), dt.datetime(2026, 11, 18, 6, 30, tzinfo=LIMA), [], [])
    assert hours is not None and hours.reason.endswith(":hours")  # the law, not the policy, holds it
    assert [(d.at.strftime("%H:%M"), d.status, d.reason) for d in result.decisions] == [
        ("07:00", "deferred", hours.reason), ("07:00", "sent", hours.reason)]


def test_a_wait_for_a_cap_is_recorded_whatever_the_tick(tmp_path):
    """A cap frees at 08:30 and the step comes due at 08:15: the tick at 09:00 sees both and records the
    deferral, as a tick at 08:15 would have."""
    rt = runtime("""
    caps: [ { channel: sms, max: 1, per: 1d } ]
    stages:
      early:
        when: invoice.days_past_due >= 0
        steps:
          - { id: a, at: due 08:30, send: sms, template: m }
          - { id: b, at: due+1d 08:15, send: sms, template: m }
    """, tmp_path)
    c = customer()
    invoice(c, "F1", "2026-11-18")  # a Wednesday
    result = run(rt, [c], "2026-11-16", 5)
    assert [(d.at.strftime("%d %H:%M"), d.step, d.status, d.reason) for d in result.decisions] == [
        ("18 09:00", "a", "sent", ""), ("19 09:00", "b", "deferred", "cap:sms-1-per-1d"),
        ("19 09:00", "b", "sent", "cap:sms-1-per-1d")]


def test_with_on_cap_skip_no_cap_deferral_is_ever_recorded(tmp_path):
    """A cap held step b at its trigger (08:30) and freed before the tick (09:00): with `on_cap: skip`
    a cap defers nothing, so the contact is a plain send."""
    rt = runtime("""
    caps: [ { channel: sms, max: 1, per: 1d } ]
    on_cap: skip
    stages:
      early:
        when: invoice.days_past_due >= 0
        steps:
          - { id: a, at: due 09:00, send: sms, template: m }
          - { id: b, at: due+1d 08:30, send: sms, template: m }
    """, tmp_path)
    c = customer()
    invoice(c, "F1", "2026-11-18")  # a Wednesday
    result = run(rt, [c], "2026-11-16", 5)
    assert [(d.step, d.status, d.reason) for d in result.decisions] == [("a", "sent", ""), ("b", "sent", "")]


@pytest.mark.parametrize("tick_s", [1800, 3600])
def test_a_deferral_says_what_held_it_at_its_trigger_whatever_the_tick(tmp_path, tick_s):
    """b is due at 07:30, before the 08:00 opening; at 08:00 a cap holds it until 09:00. Every tick of
    an hour or less records the window, which held it first, not the cap the hourly tick meets."""
    rt = runtime("""
    caps: [ { channel: sms, max: 1, per: 1d } ]
    stages:
      early:
        when: invoice.days_past_due >= 0
        steps:
          - { id: a, at: due 09:00, send: sms, template: m }
          - { id: b, at: due+1d 07:30, send: sms, template: m }
    """, tmp_path)
    c = customer()
    invoice(c, "F1", "2026-11-18")  # a Wednesday
    result = run(rt, [c], "2026-11-16", 5, tick_s=tick_s)
    assert [(d.at.strftime("%d %H:%M"), d.status, d.reason) for d in result.decisions if d.step == "b"] == [
        ("19 07:30" if tick_s == 1800 else "19 08:00", "deferred", "window"), ("19 09:00", "sent", "window")]


def test_a_deferred_contact_whose_invoice_is_paid_meanwhile_is_closed_by_a_row(tmp_path):
    """Due Saturday 14:00, deferred to Monday 08:00 (window); paid on Sunday: a row says what became of
    the deferral, and the step is no longer pending."""
    rt = runtime("""
    stages:
      pre:
        when: invoice.days_past_due <= 0
        steps:
          - { id: p3, at: due-6d 14:00, send: email, template: m }
    """, tmp_path)
    c = customer()
    invoice(c, "F1", "2026-11-20")  # due-6d: Saturday 14 November
    c.payments.append(PaymentInfo("P1", "F1", Decimal("1000"), dt.datetime(2026, 11, 15, 12, tzinfo=LIMA)))
    result = run(rt, [c], "2026-11-10", 10)
    assert [(d.at.strftime("%a %H:%M"), d.status, d.reason) for d in result.decisions] == [
        ("Sat 14:00", "deferred", "window"), ("Sun 12:00", "skipped", "paid")]
    assert c.pending == {} and c.done == {"p3|F1": "skipped"}


def test_an_invoice_is_not_contacted_before_its_issue_date(tmp_path):
    """Issued on the 13th, due on the 20th: the due-10d reminder (the 10th) does not go before the
    invoice exists; on its issue day it is the newest due step and is caught up."""
    rt = runtime("""
    stages:
      preventive:
        when: invoice.days_past_due <= 0
        steps:
          - { id: pre-10, at: due-10d, send: email, template: m }
    """, tmp_path)
    c = customer()
    invoice(c, "F1", "2026-11-20", issue_date=dt.date(2026, 11, 13))
    result = run(rt, [c], "2026-11-05", 10)
    assert rows(result) == [("2026-11-13 08:00", "pre-10", "email", ("F1",), "window")]


def test_catch_up_latest_supersedes_a_step_added_behind_one_already_sent(tmp_path):
    """od-7 went out; the policy then gains od-3, due 4 days before it: the cadence is past od-3, so
    under `latest` it is superseded, not sent after od-7."""
    old = """
    stages:
      s:
        when: invoice.days_past_due > 0
        steps:
          - { id: od-1, at: due+1d, send: email, template: m }
          - { id: od-7, at: due+7d, send: email, template: m }
    """
    c = customer()
    invoice(c, "F1", "2026-11-02")
    run(runtime(old, tmp_path), [c], "2026-11-02", 10)
    assert c.done == {"od-1|F1": "sent", "od-7|F1": "sent"}
    new = old.replace("- { id: od-7", "- { id: od-3, at: due+3d, send: email, template: m }\n          - { id: od-7")
    c.memo.clear()  # `collect run` builds the state anew at each tick, with the plan of the tick
    result = run(runtime(new, tmp_path), [c], "2026-11-12", 2)
    assert [(d.step, d.status, d.reason) for d in result.decisions] == [("od-3", "skipped", "superseded")]
    # one added with the same `at` as the step sent shares its trigger: it goes
    c.memo.clear()
    same = old.replace("- { id: od-7", "- { id: od-7-task, at: due+7d, escalate: { queue: q } }\n          - { id: od-7")
    result = run(runtime(same, tmp_path), [c], "2026-11-12", 2)
    assert [(d.step, d.status) for d in result.decisions] == [("od-7-task", "escalated")]


def test_an_invoice_not_issued_yet_is_not_one_of_the_customer_s_open_invoices(tmp_path):
    from collect.engine.events import Facts

    rt = runtime("stages: {}\n", tmp_path)
    c = customer()
    invoice(c, "F1", "2026-11-20")
    invoice(c, "F2", "2026-12-20", issue_date=dt.date(2026, 12, 1))
    facts = Facts(rt, c, dt.datetime(2026, 11, 3, 12, tzinfo=LIMA))
    assert (facts["customer.open_invoices"], facts["customer.open_balance"]) == (1, Decimal(1000))

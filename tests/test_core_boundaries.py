"""Boundaries of the decision core's rules that nothing else pinned (found by hand mutation testing):
variant percentages, the paid epsilon, written-off invoices, the on-time hour, max_lateness exactly,
a stop closing what it deferred in the same call, a grouped message counting once, a resolved dispute,
an agent's conversation and an `any` cap's cooldown."""

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

from coretools import BASE, customer, invoice, rows, run, runtime

from collect.engine.decide import decide
from collect.engine.state import DisputeInfo, PaymentInfo, SentContact

LIMA = ZoneInfo("America/Lima")
UTC = dt.timezone.utc
ALL_DAY = BASE.replace('default: { mon-fri: "08:00-19:00", sat: "09:00-13:00" }', 'default: { mon-sun: "00:00-24:00" }')


def test_variant_percentages_are_exact_bucket_by_bucket(tmp_path):
    """SPEC 2: variants { soft: 45, firm: 45, holdout: 10 } are percentages: of the 100 buckets, exactly 10 hold out."""
    from collect.engine.runtime import _bucket
    rt = runtime("""
    experiments:
      tone: { unit: customer, variants: { soft: 45, firm: 45, holdout: 10 } }
    stages: {}
    """, tmp_path)
    seen = {}
    i = 0
    while len(seen) < 100:
        seen.setdefault(_bucket("tone", f"c{i}"), f"c{i}")
        i += 1
    variants = [rt.variant("tone", seen[b]) for b in range(100)]
    assert (variants.count("firm"), variants.count("holdout"), variants.count("soft")) == (45, 10, 45)


PRE = """
stages:
  early:
    when: invoice.days_past_due >= 0
    steps:
      - { id: d0, at: due, send: email, template: m }
      - { id: d2, at: due+2d, send: email, template: m }
"""


def test_a_balance_of_exactly_half_a_cent_is_paid(tmp_path):
    """SPEC 4.6: Paid (balance <= 0.005 in currency units) ... get nothing more."""
    rt = runtime(PRE, tmp_path)
    c = customer()
    invoice(c, "F1", "2026-11-23", balance="0.005")
    assert rows(run(rt, [c], "2026-11-22", 5), None) == []


def test_a_written_off_invoice_gets_nothing(tmp_path):
    """SPEC 4.6: Paid ..., written-off invoices get nothing more (stop_when default [paid, written_off])."""
    rt = runtime(PRE, tmp_path)
    c = customer()
    invoice(c, "F1", "2026-11-23", status="written_off")
    assert rows(run(rt, [c], "2026-11-22", 5), None) == []


def test_a_step_exactly_one_tick_old_is_on_time(tmp_path):
    """decide.py ON_TIME: a step due within an hour before now is on time, not superseded (boundary: exactly 1h)."""
    rt = runtime("""
    catch_up: latest
    stages:
      s:
        when: invoice.days_past_due >= 0
        steps:
          - { id: a, at: due 08:00, send: email, template: m }
          - { id: b, at: due 08:30, send: email, template: m }
    """, tmp_path, base=ALL_DAY)
    c = customer()
    invoice(c, "F1", "2026-11-18")
    out = decide(rt, c, dt.datetime(2026, 11, 18, 9, 0, tzinfo=LIMA))
    assert {d.step: d.status for d in out.decisions} == {"a": "sent", "b": "sent"}


def test_an_event_step_seen_exactly_max_lateness_late_still_goes(tmp_path):
    """SPEC 4.3 none: steps whose trigger is OLDER than max_lateness never fire; exactly max_lateness is not older."""
    rt = runtime("""
    catch_up: none
    max_lateness: 2d
    stages:
      s:
        when: invoice.days_past_due >= 0
        steps:
          - { id: far, at: due+300d, send: email, template: m }
    events:
      payment_partial: [ { id: thanks, at: event 09:00, send: email, template: m } ]
    """, tmp_path, base=ALL_DAY)
    c = customer()
    invoice(c, "F1", "2026-11-01")
    c.payments.append(PaymentInfo("p1", "F1", Decimal("400"), dt.datetime(2026, 11, 18, tzinfo=LIMA)))
    out = [d.status for d in decide(rt, c, dt.datetime(2026, 11, 20, 9, tzinfo=LIMA)).decisions if d.step == "thanks"]
    assert out == ["sent"]


def test_a_stop_closes_what_it_deferred_in_the_same_call(tmp_path):
    """catch_up: all, first seen at due+10d 00:00 (window closed): o1 is deferred, then the stop (due+5d)
    ends the invoice: in that same decision o1 is closed ('stopped by step'), nothing stays pending."""
    from collect.engine.decide import apply
    rt = runtime("""
    catch_up: all
    stages:
      early:
        when: invoice.days_past_due >= 1
        steps:
          - { id: o1, at: due+1d, send: email, template: m }
          - { id: handoff, at: due+5d, stop: true }
    """, tmp_path)
    c = customer()
    invoice(c, "A", "2026-10-25")
    out = decide(rt, c, dt.datetime(2026, 11, 4, 0, 0, tzinfo=LIMA))
    apply(c, out)
    assert [(d.step, d.status, d.reason) for d in out.decisions] == [
        ("o1", "deferred", "window"), ("handoff", "skipped", "stopped by step"), ("o1", "skipped", "stopped by step")]
    assert c.pending == {}


def test_an_agents_conversation_starts_the_cooldown_of_a_cap_on_any(tmp_path):
    """docs/language.md: a cap on `any` waits after a conversation on any channel; an agent's call or
    visit is one (it started no cooldown: agent tasks are no contacts the cap counts)."""
    rt = runtime("""
    caps:
      - { channel: any, max: 9, per: 7d, cooldown_after_conversation: 3d }
    stages:
      s:
        when: invoice.days_past_due >= 0
        steps:
          - { id: a, at: due+1d 08:00, send: sms, template: m }
    """, tmp_path, base=ALL_DAY)
    c = customer()
    invoice(c, "F1", "2026-11-10")
    c.conversations.append(SentContact(dt.datetime(2026, 11, 10, 12, tzinfo=LIMA).astimezone(UTC), "agent", ("F1",)))
    result = run(rt, [c], "2026-11-09", 10)
    assert [d.at for d in result.decisions if d.status == "sent"] == [dt.datetime(2026, 11, 13, 12, tzinfo=LIMA)]


def test_a_grouped_message_counts_once_for_caps(tmp_path):
    """SPEC 4.4: Consolidated messages (group_by: customer) count as one contact for caps."""
    rt = runtime("""
    group_by: customer
    caps: [ { channel: any, max: 2, per: 7d } ]
    stages:
      s:
        when: invoice.days_past_due >= 0
        steps:
          - { id: d0, at: due 09:00, send: email, template: m }
          - { id: d1, at: due+1d 09:00, send: email, template: m }
    """, tmp_path, base=ALL_DAY)
    c = customer()
    invoice(c, "F1", "2026-11-18")
    invoice(c, "F2", "2026-11-18")
    result = run(rt, [c], "2026-11-17", 4)
    assert [(d.at.strftime("%d %H:%M"), d.step, d.status, d.invoice_ids) for d in result.decisions] == [
        ("18 09:00", "d0", "sent", ("F1", "F2")), ("19 09:00", "d1", "sent", ("F1", "F2"))]


def test_the_cadence_resumes_once_the_dispute_is_resolved(tmp_path):
    """SPEC 4.6: WHILE the invoice is disputed the cadence pauses: resolved, it resumes."""
    rt = runtime("""
    stages:
      early:
        when: invoice.days_past_due >= 1
        steps:
          - { id: od-1, at: due+1d, send: email, template: m }
          - { id: od-7, at: due+7d, send: email, template: m }
    """, tmp_path)
    c = customer()
    invoice(c, "F1", "2026-11-16")
    c.disputes.append(DisputeInfo("d1", "F1", dt.datetime(2026, 11, 16, 12, tzinfo=LIMA),
                                  dt.datetime(2026, 11, 20, 12, tzinfo=LIMA)))
    result = run(rt, [c], "2026-11-17", 10)
    assert [(r[0], r[1]) for r in rows(result)] == [("2026-11-20 12:00", "od-1"), ("2026-11-23 08:00", "od-7")]


def _facts_at_decision(tmp_path, field: str, history) -> list[bool]:
    """For each `history(customer)`, is `field == 1` at a decision on 2026-11-18 09:00 Lima (F1's due step)?"""
    rt = runtime(f"""
    stages:
      s:
        when: invoice.days_past_due >= 0
        steps:
          - {{ id: a, at: due 09:00, send: email, template: m, if: "{field} == 1" }}
    """, tmp_path, base=ALL_DAY)
    seen = []
    for fill in history:
        c = customer()
        invoice(c, "F0", "2025-11-01", status="written_off")
        invoice(c, "F1", "2026-11-18")
        fill(c)
        out = decide(rt, c, dt.datetime(2026, 11, 18, 9, 0, tzinfo=LIMA))
        seen.append([d.status for d in out.decisions] == ["sent"])
    return seen


def test_late_payments_12m_counts_a_payment_exactly_365_days_before_the_decision(tmp_path):
    """docs/language.md: invoices paid late by a payment of the last 365 days, that boundary included."""
    from collect.engine.state import PaymentInfo

    def paid(minute):
        def fill(c):
            at = (dt.datetime(2025, 11, 18, 8, 59, tzinfo=LIMA) + dt.timedelta(minutes=minute)).astimezone(UTC)
            c.payments.append(PaymentInfo("p1", "F0", Decimal("1000"), at))
        return fill
    assert _facts_at_decision(tmp_path, "customer.late_payments_12m", [paid(0), paid(1)]) == [False, True]


def test_broken_promises_12m_counts_a_promised_date_365_days_before_the_day_of_the_decision(tmp_path):
    """docs/language.md: promises broken whose promised date is at most 365 days before the decision's day."""
    from collect.engine.state import PromiseInfo

    def promised(day):
        def fill(c):
            made = dt.datetime(2025, 11, 1, 9, 0, tzinfo=LIMA).astimezone(UTC)
            c.promises.append(PromiseInfo("p1", Decimal("1000"), dt.date(2025, 11, day), made, "F0"))
        return fill
    assert _facts_at_decision(tmp_path, "customer.broken_promises_12m", [promised(17), promised(18)]) == [False, True]

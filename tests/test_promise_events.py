"""Event steps in the cases a customer's history brings (docs/language.md, Promises and Catch-up): old
payments and promises seen at the first tick, a payment imported days late, a promise renegotiated
before its date, a reminder due before its promise was made, a promise about all the invoices and an
invoice that arrives later."""

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

from coretools import customer, invoice, rows, run, runtime

from collect.engine.events import Facts
from collect.engine.simulate import run_customer
from collect.engine.state import PaymentInfo, PromiseInfo

LIMA = ZoneInfo("America/Lima")
EVENTS = """
stages:
  s:
    when: invoice.days_past_due >= 1
    steps:
      - { id: od-1, at: due+1d, send: email, template: m }
events:
  promise_made:   [ { id: pm-rem, at: promise-1d 10:00, send: email, template: m } ]
  promise_broken: [ { id: pb, at: event 10:00, send: email, template: m } ]
"""


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=LIMA)


def promise(pid: str, amount: int, day: str, made: str, invoice_id: str | None = "F1") -> PromiseInfo:
    return PromiseInfo(pid, Decimal(amount), dt.date.fromisoformat(day), at(made), invoice_id)


def steps(result, *names) -> list[tuple]:
    return [(d.step, d.status, d.reason) for d in result.decisions if d.step in names]


def test_old_promises_at_the_first_tick_send_only_the_latest_broken_one(tmp_path):
    """A July and an August promise, both broken, seen at the first tick in November: their reminders,
    whose dates are over, and the July 'promise broken', since followed by the August promise, are moot;
    the August 'promise broken' is the latest event and goes, as `latest` sends the newest due step
    (under `none`, it is older than max_lateness: missed)."""
    for catch_up, expected in (("latest", [("pb", "deferred", "window"), ("pb", "sent", "window")]),
                               ("none", [("pb", "skipped", "missed")])):
        rt = runtime(EVENTS + f"catch_up: {catch_up}\n", tmp_path)
        c = customer()
        invoice(c, "F1", "2026-06-01")
        c.promises += [promise("A", 1000, "2026-07-15", "2026-07-10T12:00"),
                       promise("B", 1000, "2026-08-20", "2026-08-10T12:00")]
        result = run(rt, [c], "2026-11-02", 3)
        assert steps(result, "pm-rem", "pb") == expected, catch_up
        assert all(d.invoice_ids == ("F1",) for d in result.decisions)
        assert {k: v for k, v in c.done.items() if k.startswith(("pm-rem", "pb"))} == {
            "pm-rem|F1|A": "not applicable", "pm-rem|F1|B": "not applicable", "pb|F1|A": "not applicable",
            "pb|F1|B": "sent" if catch_up == "latest" else "skipped"}


def test_a_promise_replaced_before_its_date_is_neither_reminded_nor_broken(tmp_path):
    """A (for the 12th) is renegotiated on the 6th into B (for the 25th), which is kept: no reminder of A on
    the 11th, no 'promise broken' on the 13th, and A is no broken promise of the customer."""
    rt = runtime(EVENTS, tmp_path)
    c = customer()
    invoice(c, "F1", "2026-11-02")
    c.promises += [promise("A", 1000, "2026-11-12", "2026-11-03T12:00"),
                   promise("B", 1000, "2026-11-25", "2026-11-06T12:00")]
    c.payments.append(PaymentInfo("p1", "F1", Decimal(1000), at("2026-11-24T12:00")))
    result = run(rt, [c], "2026-11-01", 30)
    assert rows(result) == [("2026-11-03 08:00", "od-1", "email", ("F1",), ""),
                            ("2026-11-24 10:00", "pm-rem", "email", ("F1",), "")]  # B's reminder only
    assert Facts(rt, c, at("2026-11-20T12:00"))["customer.broken_promises_12m"] == 0


def test_the_cadence_resumes_when_the_newer_promise_of_a_renegotiation_is_kept(tmp_path):
    """A (1000 by the 28th) is renegotiated on the 6th into B (300 by the 9th), kept on the 8th: A no
    longer pauses the cadence, so due+12d goes on the 14th (it was skipped as superseded until the 29th)."""
    policy = EVENTS.replace("- { id: od-1, at: due+1d, send: email, template: m }",
                            "- { id: od-1, at: due+1d, send: email, template: m }\n"
                            "      - { id: od-12, at: due+12d, send: email, template: m }")
    rt = runtime(policy, tmp_path)
    c = customer()
    invoice(c, "F1", "2026-11-02")
    c.promises += [promise("A", 1000, "2026-11-28", "2026-11-04T10:00"),
                   promise("B", 300, "2026-11-09", "2026-11-06T10:00")]
    c.payments.append(PaymentInfo("p1", "F1", Decimal(300), at("2026-11-08T12:00")))
    result = run(rt, [c], "2026-11-01", 20)
    assert steps(result, "od-12", "pb") == [("od-12", "sent", "")]


def test_a_reminder_due_before_its_promise_was_made_is_not_sent(tmp_path):
    """promise-3d of a promise made the day before its date: the reminder went out at once."""
    rt = runtime(EVENTS.replace("promise-1d 10:00", "promise-3d 10:00"), tmp_path)
    c = customer()
    invoice(c, "F1", "2026-11-02")
    c.promises.append(promise("A", 1000, "2026-11-12", "2026-11-11T16:00"))
    c.payments.append(PaymentInfo("p1", "F1", Decimal(1000), at("2026-11-12T09:00")))
    result = run(rt, [c], "2026-11-09", 6)
    assert steps(result, "pm-rem") == []


def test_a_promise_about_all_invoices_is_not_new_to_an_invoice_that_arrives_later(tmp_path):
    """W covers every invoice: broken, it is one message for F1 and F2. F3, in the portfolio from the
    16th, got a second 'promise broken' for the same promise."""
    rt = runtime(EVENTS, tmp_path)
    c = customer()
    invoice(c, "F1", "2026-11-02")
    invoice(c, "F2", "2026-11-02")
    c.promises.append(promise("W", 1500, "2026-11-12", "2026-11-05T12:00", None))
    utc = dt.timezone.utc
    decisions = run_customer(rt, c, at("2026-11-10T00:00").astimezone(utc), at("2026-11-16T00:00").astimezone(utc), 3600)
    invoice(c, "F3", "2026-11-20")
    decisions += run_customer(rt, c, at("2026-11-16T00:00").astimezone(utc), at("2026-11-20T00:00").astimezone(utc), 3600)
    assert [(d.step, d.invoice_ids, d.status) for d in decisions if d.step == "pb"] == [
        ("pb", ("F1", "F2"), "sent")]


def test_a_reminder_waiting_for_all_invoices_still_goes_when_one_of_them_is_paid(tmp_path):
    """The reminder of a promise about F1 and F2 waits over a Sunday; F1 is paid on Sunday. F2's
    reminder was closed silently as if it had gone out with F1's."""
    rt = runtime(EVENTS, tmp_path)
    c = customer()
    invoice(c, "F1", "2026-12-01")
    invoice(c, "F2", "2026-12-01")
    c.promises.append(promise("W", 1500, "2026-11-16", "2026-11-10T12:00", None))
    c.payments.append(PaymentInfo("p1", "F1", Decimal(1000), at("2026-11-15T12:00")))
    result = run(rt, [c], "2026-11-14", 3)
    assert [(d.at.strftime("%a %H:%M"), d.invoice_ids, d.status, d.reason) for d in result.decisions] == [
        ("Sun 10:00", ("F1", "F2"), "deferred", "window"), ("Sun 12:00", ("F1",), "skipped", "paid"),
        ("Mon 08:00", ("F2",), "sent", "window")]


HISTORY = """
stages:
  s:
    when: invoice.days_past_due >= 1
    steps:
      - { id: od-1, at: due+1d, send: email, template: m }
events:
  promise_broken:  [ { id: pb, at: event+1d 10:00, send: email, template: m } ]
  promise_kept:    [ { id: pk, at: event, send: email, template: m } ]
  payment_partial: [ { id: pp, at: event, send: email, template: m } ]
"""


def test_a_history_seen_at_the_first_tick_sends_one_event_message_not_one_per_event(tmp_path):
    """Four partial payments, a kept promise and a broken one, months old: under `latest` only the
    newest event step goes (SPEC 2, max_lateness: the latest applicable one), the others are missed;
    under `all`, all of them go."""
    for catch_up, sent in (("latest", ["pb"]), ("all", ["pk", "pp", "pp", "pp", "pp", "pb"])):
        rt = runtime(HISTORY + f"catch_up: {catch_up}\n", tmp_path)
        c = customer()
        invoice(c, "F1", "2026-01-10", "5000")
        for i, day in enumerate(["2026-02-10", "2026-03-10", "2026-04-10", "2026-05-10"]):
            c.payments.append(PaymentInfo(f"P{i}", "F1", Decimal(500), at(day + "T12:00")))
        c.promises += [promise("A", 500, "2026-03-10", "2026-03-01T12:00"),
                       promise("B", 900, "2026-06-20", "2026-06-10T12:00")]
        result = run(rt, [c], "2026-11-02", 2)
        assert sorted(d.step for d in result.decisions if d.status == "sent" and d.step != "od-1") == sorted(sent)
        if catch_up == "latest":
            assert sorted(steps(result, "pk", "pp")) == [("pk", "skipped", "missed")] + [("pp", "skipped", "missed")] * 4


def test_a_payment_imported_days_late_still_gets_its_step(tmp_path):
    """A Thursday partial payment that reaches the store with Monday's export, past max_lateness (3
    days): it is the invoice's newest event, so its message goes."""
    rt = runtime(HISTORY, tmp_path)
    c = customer()
    invoice(c, "F1", "2026-11-30", "1000")
    c.payments.append(PaymentInfo("P1", "F1", Decimal(300), at("2026-11-12T08:00")))
    result = run(rt, [c], "2026-11-16", 1)  # first seen on Monday: the state arrives with the export
    assert steps(result, "pp") == [("pp", "deferred", "window"), ("pp", "sent", "window")]


def test_a_payment_dated_by_day_counts_from_the_day_of_the_promise_to_the_end_of_its_date(tmp_path):
    """Payments dated by day only are read as local midnight. One dated the day the promise was made (at
    11:20) keeps it; one dated the day after the promised date comes too late: the promise is broken."""
    for paid, broken in (("2026-11-05T00:00", False), ("2026-11-13T00:00", True)):
        rt = runtime(EVENTS, tmp_path)
        c = customer()
        invoice(c, "F1", "2026-11-02")
        c.promises.append(promise("A", 500, "2026-11-12", "2026-11-05T11:20"))
        c.payments.append(PaymentInfo("p1", "F1", Decimal(500), at(paid)))
        result = run(rt, [c], "2026-11-04", 12)
        assert steps(result, "pb") == ([("pb", "sent", "")] if broken else []), paid
        assert steps(result, "pm-rem") == ([("pm-rem", "sent", "")] if broken else []), paid


def test_a_promise_about_an_invoice_the_erp_marks_paid_is_not_broken(tmp_path):
    """The export marks F1 paid without the payment: after the promised date the promise is not counted
    broken (the other invoice would get 'you broke your promise'), nor in the KPIs as due."""
    from collect.engine.kpis import promise_outcome

    c = customer()
    invoice(c, "F1", "2026-11-02", status="paid")
    invoice(c, "F2", "2026-11-16")
    c.promises.append(promise("A", 500, "2026-11-20", "2026-11-12T10:00"))
    c.payments.append(PaymentInfo("p0", "F1", Decimal(200), at("2026-11-05T10:00")))  # before the promise
    rt = runtime(EVENTS, tmp_path)
    assert Facts(rt, c, at("2026-11-25T12:00"))["customer.broken_promises_12m"] == 0
    assert promise_outcome(c, c.promises[0], dt.date(2026, 11, 1), dt.date(2026, 11, 30), LIMA)[1] is False
    # still owed, written off, or paid with the payment in view (a late one): broken, and due in the KPIs
    for status, paid in (("open", None), ("written_off", None), ("paid", "2026-11-24T10:00")):
        c.invoices["F1"].status = status
        c.payments = [PaymentInfo("p1", "F1", Decimal(500), at(paid))] if paid else []
        c.memo.clear()
        assert Facts(rt, c, at("2026-11-25T12:00"))["customer.broken_promises_12m"] == 1, status
        assert promise_outcome(c, c.promises[0], dt.date(2026, 11, 1), dt.date(2026, 11, 30), LIMA)[1] is True

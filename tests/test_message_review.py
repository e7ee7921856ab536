"""What a message says, found by review of the messages `collect run` sends: a task handed off again after
a provider failure, a group message sent again after one invoice was paid, a webhook body sent again,
built-in fields, several currencies in one message, a customer language written as a BCP 47 tag, dates of date-time
fields, and `send: agent`."""

from __future__ import annotations

import datetime as dt

from coretools import BASE, customer, invoice, run, runtime
from test_delivery import MONDAY, OK, contacts, setup  # noqa: F401 (setup: a fixture)

from collect.adapters.base import DeliveryResult
from collect.engine.compiler import compile_policy
from collect.engine.messages import build_message
from collect.engine.portfolio import ColumnMap
from collect.engine.storeio import import_file
from collect.engine.templates import render

DOWN = DeliveryResult.transient("503", "service unavailable")


def test_a_task_handed_off_again_after_a_provider_failure_goes_out(setup):
    """An `on_exhausted` task kept the send step's template; sent again, it looked for that template's
    `agent` body and failed for good (`KeyError: 'agent'`): the CRM never got the task."""
    run, engine = setup(whatsapp=[DeliveryResult.permanent("21211", "invalid")], sms=[DeliveryResult.permanent("21211", "invalid")],
                        email=[DeliveryResult.permanent("550", "no mailbox")], agent=[DOWN, OK])
    run.tick(MONDAY)
    run.tick(MONDAY + dt.timedelta(minutes=5))
    assert ("d0", "agent", "escalated", 2) in contacts(engine)
    assert len(run.channels("agent").sent) == 2 and "Escalation of step d0" in run.channels("agent").sent[1].body


def _sent_twice(run, engine, tmp_path, payment: str, later: dt.timedelta):
    """A tick whose WhatsApp message the provider refuses for now, a payment, and the tick that sends it
    again: both messages as the provider got them."""
    run.tick(MONDAY)
    pay = tmp_path / "pay.csv"
    pay.write_text(f"invoice_id,amount,paid_at\n{payment}\n", encoding="utf-8")
    import_file(engine, "payments", pay, fields={}, colmap=ColumnMap())
    run.tick(MONDAY + later)
    return run.channels("whatsapp").sent


def test_a_group_message_sent_again_leaves_out_an_invoice_paid_meanwhile(setup, tmp_path):
    """Its text and its invoice_ids both: a receiver acting on invoice_ids (a webhook's, a CRM's) was told
    about the paid invoice."""
    run, engine = setup(rows="F1,C1,100,2026-11-16,ACME,pagos@acme.pe,+51987654321\n"
                             "F2,C1,250,2026-11-16,ACME,pagos@acme.pe,+51987654321\n", whatsapp=[DOWN, OK])
    first, again = _sent_twice(run, engine, tmp_path, "F1,220,2026-11-16T10:30-05:00", dt.timedelta(hours=1))
    assert first.invoice_ids == ("F1", "F2") and again.invoice_ids == ("F2",)
    assert first.params[1].endswith("350.00") and again.params[1].endswith("250.00")  # F1 overpaid: not -20


def test_a_webhook_body_sent_again_is_the_same_bytes(setup, tmp_path):
    """The receiver drops a key it has had, and refuses one with another body: a retry rebuilt a day
    later with a new balance and date would fail for good. It is built as of the decision."""
    from collect.adapters.webhook import body_bytes

    run, engine = setup(whatsapp=[DOWN, OK])
    run.channels.instances["whatsapp"].dedupes = True  # as the webhook adapter
    first, again = _sent_twice(run, engine, tmp_path, "F1,30,2026-11-17T09:00-05:00", dt.timedelta(days=1))
    assert body_bytes(first) == body_bytes(again)


def test_a_webhook_body_sent_again_after_a_policy_edit_and_a_backdated_payment_is_the_same_bytes(setup, tmp_path):
    """The body carries the plan's hash and the template's text, and was built again as of the decision
    with the payments known then: a policy edited between the tries, or a payment dated before the
    decision and imported after it, changed the bytes under the same key, which the receiver refuses for
    good (and the step fell back to another channel: a second contact)."""
    from collect.adapters.webhook import body_bytes
    from collect.engine.runner import Runner

    run, engine = setup(whatsapp=[DOWN, OK])
    run.channels.instances["whatsapp"].dedupes = True  # as the webhook adapter
    run.tick(MONDAY)
    edited = tmp_path / "edited.yaml"
    edited.write_text((tmp_path / "policy.yaml").read_text(encoding="utf-8").replace(
        '"{{ customer.name }}", "{{ total_balance | money }}"', '"Sr(a). {{ customer.name }}", "{{ total_balance | money }}"'),
        encoding="utf-8")
    pay = tmp_path / "pay.csv"
    pay.write_text("invoice_id,amount,paid_at\nF1,30,2026-11-16T09:00-05:00\n", encoding="utf-8")  # before the try
    import_file(engine, "payments", pay, fields={}, colmap=ColumnMap())
    later = Runner(engine, compile_policy(edited).plan, run.channels)
    assert later.rt.plan_hash != run.rt.plan_hash
    later.tick(MONDAY + dt.timedelta(hours=1))
    first, again = run.channels("whatsapp").sent
    assert body_bytes(first) == body_bytes(again) and again.params[0] == "ACME"
    assert ("d0", "whatsapp", "sent", 2) in contacts(engine)


def test_a_kept_message_stays_kept_while_it_waits_and_goes_once_sent(setup, tmp_path):
    """A tick that left the message waiting (behind a rate limit) wrote JSON null over the kept message,
    and the try after it was built from the edited policy."""
    from sqlalchemy import select

    from collect.adapters.webhook import body_bytes
    from collect.engine import store as s
    from collect.engine.runner import Runner

    limit = DeliveryResult.transient("130429", "throughput rate limit reached", retry_after=60, throttled=True)
    rows = "F1,C1,100,2026-11-16,ACME,a@acme.pe,+51987654321\nF2,C2,100,2026-11-16,BETA,b@acme.pe,+51987654322\n"
    run, engine = setup(rows=rows, whatsapp=[DOWN, DOWN, limit, OK])
    run.channels.instances["whatsapp"].dedupes = True
    run.tick(MONDAY)  # both wait for a retry
    run.tick(MONDAY + dt.timedelta(hours=1))  # C1 is rate-limited, so C2 waits untried
    edited = tmp_path / "edited.yaml"
    edited.write_text((tmp_path / "policy.yaml").read_text(encoding="utf-8").replace(
        '"{{ customer.name }}", "{{ total_balance | money }}"', '"Sr(a). {{ customer.name }}", "{{ total_balance | money }}"'),
        encoding="utf-8")
    Runner(engine, compile_policy(edited).plan, run.channels).tick(MONDAY + dt.timedelta(hours=2))
    tries = {}
    for message in run.channels("whatsapp").sent:
        tries.setdefault(message.customer_id, []).append(body_bytes(message))
    assert {cid: (len(bodies), len(set(bodies))) for cid, bodies in tries.items()} == {"C1": (3, 1), "C2": (2, 1)}
    with engine.connect() as conn:
        assert [(r.status, r.message) for r in conn.execute(select(s.contacts).where(s.contacts.c.channel == "whatsapp"))
                ] == [("sent", None), ("sent", None)]  # settled: nothing kept


def test_a_webhook_body_sent_again_after_a_crash_and_a_policy_edit_is_the_same_bytes(setup, tmp_path):
    """A deduping channel's outcomes are stored at the end of the tick: a tick that died after the
    receiver took the message left no outcome, and the recovery built the body from the edited policy."""
    import pytest

    from collect.adapters.webhook import body_bytes
    from collect.engine.runner import Runner

    run, engine = setup()
    provider, sent = run.channels("whatsapp"), []
    provider.dedupes = True

    def dies_after_sending(message):
        sent.append(message)
        raise KeyboardInterrupt  # the receiver has it; the process dies before the outcome is stored
    provider.send = dies_after_sending
    with pytest.raises(KeyboardInterrupt):
        run.tick(MONDAY)
    edited = tmp_path / "edited.yaml"
    edited.write_text((tmp_path / "policy.yaml").read_text(encoding="utf-8").replace(
        '"{{ customer.name }}", "{{ total_balance | money }}"', '"Sr(a). {{ customer.name }}", "{{ total_balance | money }}"'),
        encoding="utf-8")
    provider.send = lambda message: sent.append(message) or OK
    Runner(engine, compile_policy(edited).plan, run.channels).tick(MONDAY + dt.timedelta(hours=1))
    assert len(sent) == 2 and body_bytes(sent[0]) == body_bytes(sent[1])
    assert ("d0", "whatsapp", "sent", 1) in contacts(engine)


def test_a_kept_message_comes_back_equal_through_json():
    import json

    from collect.adapters.base import Message, frozen, thawed

    at = dt.datetime(2026, 11, 16, 15, 0, 0, 123456, tzinfo=dt.timezone.utc)
    message = Message("k|1", "webhook", "C1", ("F1", "Nº 2"), None, subject="s", body="b", params=("a", "b"),
                      metadata={"now": at, "last_inbound_at": at.astimezone(dt.timezone(dt.timedelta(hours=-5))),
                                "task": {"queue": "q", "priority": 0.1 + 0.2, "reason": "r"}, "webhook": None})
    assert thawed(json.loads(json.dumps(frozen(message)))) == message


POLICY = """
fields: { invoice.region: str }
stages:
  s:
    when: invoice.days_to_due <= 2
    steps:
      - { id: s1, at: due-2d 10:00, send: email, template: f }
"""
FIELDS = BASE + """
  f:
    email: { subject: "{{ invoice.days_to_due }}|{{ customer.open_balance }}|{{ customer.open_invoices }}|{{ customer.timezone }}|{{ invoice.region }}", body: "{% for i in invoices %}{{ i.balance | money }};{% endfor %}{{ total_balance | money }}|{{ currency }}" }
"""


def _sent(tmp_path, c, start="2026-11-08", days=4):
    rt = runtime(POLICY, tmp_path, base=FIELDS)
    result = run(rt, [c], start, days)
    return [build_message(rt, rt.plan, d, c, "https://pay/{customer_id}") for d in result.decisions if d.status == "sent"]


def test_built_in_fields_reach_templates_as_expressions_read_them(tmp_path):
    c = customer()
    invoice(c, "A", "2026-11-12", "100", attrs={"region": "norte"})
    invoice(c, "B", "2026-12-30", "200")
    (message,) = _sent(tmp_path, c)
    assert message.subject == "2|300|2|America/Lima|norte"  # the customer has no zone: the policy's


def test_invoices_in_two_currencies_are_each_in_its_own_and_the_total_is_one_per_currency(tmp_path):
    """group_by: customer put USD and PEN invoices in one message (as it should: one message, one cap
    unit) and formatted every amount, and a total across both, in the first invoice's currency."""
    c = customer()
    invoice(c, "A", "2026-11-12", "100", currency="USD")
    invoice(c, "B", "2026-11-12", "5000", currency="PEN")
    invoice(c, "C", "2026-11-12", "7")  # none: the policy's (PEN)
    (message,) = _sent(tmp_path, c)
    assert message.invoice_ids == ("A", "B", "C")
    assert message.body == "USD\xa0100.00;S/\xa05,000.00;S/\xa07.00;USD\xa0100.00 + S/\xa05,007.00|USD"


OPEN = BASE + """
  f:
    email: { subject: "{{ customer.open_balance | money }}", body: "{{ customer.open_balance }}" }
"""
ESCALATE = """
stages:
  s:
    when: invoice.days_to_due <= 2
    steps:
      - { id: s1, at: due-2d 10:00, escalate: { queue: cuentas } }
"""


def test_the_open_balance_of_a_customer_in_two_currencies_is_one_total_per_currency(tmp_path):
    """Soles and dollars were added into one number, written in the first invoice's currency: a customer
    owing S/ 5,007 and US$ 100 read S/ 5,107.00. The agent's task said `balance 5107`, without a currency."""
    def owing():
        c = customer()
        invoice(c, "A", "2026-11-12", "100", currency="USD")
        invoice(c, "B", "2026-11-12", "5000", currency="PEN")
        invoice(c, "C", "2026-12-30", "7")  # none: the policy's (PEN); not in the message, open all the same
        return c
    rt, c = runtime(POLICY, tmp_path, base=OPEN), owing()
    [sent] = [d for d in run(rt, [c], "2026-11-08", 4).decisions if d.status == "sent"]
    message = build_message(rt, rt.plan, sent, c, "https://pay/{customer_id}")
    assert (message.subject, message.body) == ("USD\xa0100.00 + S/\xa05,007.00", "5107")  # a number as it is
    rt, c = runtime(ESCALATE, tmp_path, base=OPEN), owing()
    [task] = [d for d in run(rt, [c], "2026-11-08", 4).decisions if d.status == "escalated"]
    body = build_message(rt, rt.plan, task, c, "https://pay/{customer_id}").body
    assert body.endswith("invoices A, B, balance 100 USD + 5000 PEN"), body


def test_a_language_written_as_a_bcp_47_tag_formats_in_that_locale():
    for language, country in (("es-PE", None), ("es_PE", "PE"), ("es", "PE")):
        ctx = {"customer": {"language": language, "country": country}, "currency": "PEN"}
        assert render("{{ 1234.5 | money }} | {{ d | date }}", {**ctx, "d": dt.date(2026, 11, 5)}) == \
            "S/\xa01,234.50 | 5 nov. 2026"


def test_the_date_of_a_date_time_field_is_the_customers_local_date():
    at = dt.datetime(2026, 11, 10, 2, tzinfo=dt.timezone.utc)  # 21:00 on the 9th in Lima
    ctx = {"customer": {"language": "es", "country": "PE", "timezone": "America/Lima"}}
    assert render("{{ at | date }}", {**ctx, "at": at}) == "9 nov. 2026"


def test_send_agent_is_an_error_that_points_to_escalate(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(BASE + """
stages:
  s:
    when: invoice.days_past_due >= 0
    steps:
      - { id: s1, at: due, send: [sms, agent], template: m }
""", encoding="utf-8")
    result = compile_policy(path)
    (error,) = result.diagnostics.sorted()  # no second error asking for a template body for `agent`
    assert error.code == "send-agent" and result.plan is None and "escalate: { queue: QUEUE }" in error.render()

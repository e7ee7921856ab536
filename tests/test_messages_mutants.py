"""What a message says and carries (engine/messages.py), found by a round of mutation testing: the promise
cited among several, a task handed off again after its invoice was paid, what an agent's task says, the
WhatsApp 24-hour window, the customer's and the template's language, and a `webhook` step's message."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from coretools import customer, invoice, run, runtime
from test_delivery import MONDAY, OK, _import, setup  # noqa: F401 (setup: a fixture)
from test_message_review import DOWN
from test_mutants_reports import GROUPED, SAYS_PROMISE

from collect.adapters.base import DeliveryResult, inside_window
from collect.engine.messages import build_message
from collect.engine.state import PromiseInfo, SentContact

LIMA = ZoneInfo("America/Lima")
PAY_LINK = "https://pay/{customer_id}"


def built(rt, c, start: str, days: int, status: str = "sent"):
    """The messages of the decisions with that status, each built as `collect run` builds it."""
    return [build_message(rt, rt.plan, d, c, PAY_LINK, d.keys) for d in run(rt, [c], start, days).decisions
            if d.status == status]


def test_a_message_about_several_promised_invoices_cites_the_promise_made_last(tmp_path):
    """The newest promise is the one made last: not the largest, nor the one promised for the latest date."""
    c = customer()
    for iid, amount, promised, made in (("A", "500", 28, 3), ("B", "200", 21, 4)):
        invoice(c, iid, "2026-11-02")
        c.promises.append(PromiseInfo(f"p{iid}", Decimal(amount), dt.date(2026, 11, promised),
                                      dt.datetime(2026, 11, made, 10, tzinfo=LIMA), iid))
    [message] = built(runtime(GROUPED, tmp_path, base=SAYS_PROMISE), c, "2026-11-02", 5)
    assert message.body == "200 by 2026-11-21"


def test_a_task_handed_off_again_after_its_invoice_was_paid_still_names_the_invoice(setup, tmp_path):
    """A retry leaves out the invoices paid meanwhile, but not all of them: the CRM got a task about no
    invoice (`invoices , balance 0 PEN` and no invoice_ids)."""
    refused = DeliveryResult.permanent("21211", "invalid")
    runner, engine = setup(whatsapp=[refused], sms=[refused], email=[DeliveryResult.permanent("550", "no mailbox")],
                           agent=[DOWN, OK])
    runner.tick(MONDAY)
    _import(engine, tmp_path, "payments", "invoice_id,amount,paid_at\nF1,100,2026-11-16T10:01-05:00\n")
    runner.tick(MONDAY + dt.timedelta(minutes=5))
    first, again = runner.channels("agent").sent
    assert (first.invoice_ids, again.invoice_ids) == (("F1",), ("F1",))
    assert "invoices F1, balance" in again.body


@pytest.mark.parametrize("priority, said", [("invoice.balance * 1.5", 1500.0), ("invoice.balance * 0", 0.0)])
def test_an_agents_task_says_its_queue_customer_invoices_balance_and_priority(tmp_path, priority, said):
    """The one-line summary a person reads, and `metadata.task` a CRM files it by; a priority of 0 is one too."""
    rt = runtime(f"""
stages:
  s:
    when: invoice.days_to_due <= 2
    steps:
      - {{ id: s1, at: due-2d 10:00, escalate: {{ queue: cuentas, priority: "{priority}" }} }}
""", tmp_path)
    c = customer()
    invoice(c, "A", "2026-11-12")
    [task] = built(rt, c, "2026-11-08", 4, status="escalated")
    assert task.body == f"Escalation of step s1 to queue cuentas: customer c1 (ACME), invoices A, balance 1000 PEN, " \
                        f"priority {said:g}"
    assert task.metadata["task"] == {"queue": "cuentas", "priority": said, "reason": ""}


WHATSAPP = """
stages:
  s:
    when: invoice.days_to_due <= 2
    steps:
      - { id: w1, at: due-2d 10:00, send: whatsapp, template: m }
"""


@pytest.mark.parametrize("channel, hours, inside", [("whatsapp", -1, True), ("sms", -1, False), ("whatsapp", 1, False)])
def test_only_a_whatsapp_message_received_before_the_message_opens_the_24_hour_window(tmp_path, channel, hours, inside):
    """A WhatsApp message in free text goes only inside the window (docs/channels.md): a reply by SMS does
    not open it, nor does one that came after the moment the message is built for (a retry, a simulation)."""
    rt, c = runtime(WHATSAPP, tmp_path), customer()
    invoice(c, "A", "2026-11-12")
    [decision] = [d for d in run(rt, [c], "2026-11-08", 4).decisions if d.status == "sent"]
    c.replies.append(SentContact(decision.at + dt.timedelta(hours=hours), channel, ()))
    message = build_message(rt, rt.plan, decision, c, PAY_LINK, decision.keys)
    assert inside_window(message.metadata) is inside


def test_a_whatsapp_message_carries_the_customers_language_and_its_templates(tmp_path):
    """Two things: the approved template's language code, and the customer's (a voice call speaks it)."""
    c = customer(language="en")
    invoice(c, "A", "2026-11-12")
    [message] = built(runtime(WHATSAPP, tmp_path), c, "2026-11-08", 4)
    assert (message.template_name, message.template_language, message.language) == ("w", "es", "en")


def test_a_webhook_steps_message_is_empty_and_names_its_notification_step_and_stage(tmp_path):
    """docs/language.md: the body is empty, `metadata.webhook` says which notification it is."""
    rt = runtime("""
stages:
  overdue:
    when: invoice.days_past_due >= 1
    steps:
      - { id: od-1, at: due+1d, webhook: legal-handoff }
""", tmp_path)
    c = customer()
    invoice(c, "A", "2026-11-02")
    [message] = built(rt, c, "2026-11-02", 3)
    assert (message.channel, message.invoice_ids, message.body) == ("webhook", ("A",), "")
    assert {k: message.metadata[k] for k in ("webhook", "step", "stage", "plan_hash")} == {
        "webhook": "legal-handoff", "step": "od-1", "stage": "overdue", "plan_hash": rt.plan_hash}

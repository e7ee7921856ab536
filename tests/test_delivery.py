"""What `collect run` does with a provider's answer (SPEC 4.5): fallback to the next channel through the
decision core, retries across ticks with backoff, opt-outs, a template that cannot be rendered, a
failing provider that does not hold up the others; and the whole path over real protocols on
loopback (Twilio, WhatsApp Cloud, SMTP)."""

from __future__ import annotations

import datetime as dt
import textwrap
import time

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from collect.adapters.base import DeliveryResult
from collect.cli import app
from collect.engine import store as s
from collect.engine.channels import Channels, Retry
from collect.engine.compiler import compile_policy
from collect.engine.portfolio import ColumnMap
from collect.engine.runner import Runner
from collect.engine.storeio import import_file
from collect.views import show_tick

UTC = dt.timezone.utc
MONDAY = dt.datetime(2026, 11, 16, 15, tzinfo=UTC)  # 10:00 in Lima

POLICY = """
policy: delivery
timezone: America/Lima
currency: PEN
windows:
  default: { mon-sun: "08:00-20:00" }
templates:
  m:
    email: { subject: "Factura {{ invoice.number }}", body: "Hola {{ customer.name }}" }
    sms: "Hola {{ customer.name }}: {{ total_balance | money }}"
    whatsapp: { template_name: recordatorio_pago, language: es, params: ["{{ customer.name }}", "{{ total_balance | money }}"] }
stages:
  due:
    when: invoice.days_past_due >= 0
    steps:
      - { id: d0, at: due, send: [whatsapp, sms, email], template: m, on_exhausted: escalate }
"""


class Scripted:
    """A channel whose answers are given in advance, one per send (the last repeats)."""

    def __init__(self, *answers: DeliveryResult):
        self.answers, self.sent = list(answers), []

    def send(self, message):
        self.sent.append(message)
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


OK = DeliveryResult.sent("p-1")
INVALID = DeliveryResult.permanent("21211", "The 'To' number is not a valid phone number.")
BUSY = DeliveryResult.transient("429", "Too Many Requests", retry_after=120)
STOP = DeliveryResult.permanent("21610", "Attempt to send to unsubscribed recipient", opted_out=True)


@pytest.fixture
def setup(db_url, tmp_path):
    def make(policy: str = POLICY, rows: str = "F1,C1,100,2026-11-16,ACME,pagos@acme.pe,+51987654321\n", **answers):
        path = tmp_path / "policy.yaml"
        path.write_text(textwrap.dedent(policy), encoding="utf-8")
        plan = compile_policy(path).plan
        csv = tmp_path / "p.csv"
        csv.write_text("invoice_id,customer_id,amount,due_date,customer_name,email,phone\n" + rows, encoding="utf-8")
        engine = s.connect(db_url)
        import_file(engine, "invoices", csv, fields={}, colmap=ColumnMap(), default_tz="America/Lima",
                    default_currency="PEN")
        channels = Channels(retry=Retry(attempts=3, backoff=60))
        answers.setdefault("agent", [OK])  # agent tasks are handed off too
        channels.instances.update({name: Scripted(*answer) for name, answer in answers.items()})
        return Runner(engine, plan, channels), engine
    return make


def contacts(engine) -> list[tuple]:
    with engine.connect() as conn:
        rows = conn.execute(select(s.contacts).order_by(s.contacts.c.id))
        return [(r.step, r.channel, r.status, r.attempts) for r in rows]


def test_a_permanent_failure_falls_back_to_the_next_channel_in_the_same_tick(setup):
    run, engine = setup(whatsapp=[INVALID], sms=[OK], email=[OK])
    summary = run.tick(MONDAY)
    assert contacts(engine) == [("d0", "whatsapp", "failed", 1), ("d0", "sms", "sent", 1)]
    assert run.channels("email").sent == [] and summary.provider_failures
    assert run.tick(MONDAY + dt.timedelta(hours=1)).statuses == {}  # the step is settled: nothing more


def test_every_channel_failing_fails_the_step_and_escalates(setup):
    run, engine = setup(whatsapp=[INVALID], sms=[INVALID], email=[DeliveryResult.permanent("550", "no mailbox")])
    run.tick(MONDAY)
    rows = contacts(engine)
    assert [r[:3] for r in rows] == [("d0", "whatsapp", "failed"), ("d0", "sms", "failed"), ("d0", "email", "failed"),
                                     ("d0", "email", "failed"), ("d0", "agent", "escalated")]
    with engine.connect() as conn:
        task = conn.execute(select(s.agent_tasks)).one()
    assert task.reason == "channels exhausted" and task.customer_id == "C1"
    (handed,) = run.channels("agent").sent  # the task went out on the agent channel (a CRM webhook)
    assert handed.metadata["task"] == {"queue": "collections", "priority": None, "reason": "channels exhausted"}
    assert "Escalation of step d0" in handed.body and "F1" in handed.body


def test_a_task_handed_off_says_how_its_customer_may_be_reached(setup):
    """The agent who takes the task must not text a customer who just opted out of SMS."""
    run, engine = setup(whatsapp=[INVALID], sms=[STOP], email=[DeliveryResult.permanent("550", "no mailbox")])
    run.tick(MONDAY)
    (handed,) = run.channels("agent").sent
    assert handed.body.endswith("; opted out of sms")


def test_a_transient_failure_is_retried_after_the_backoff_then_falls_back(setup):
    run, engine = setup(whatsapp=[BUSY], sms=[OK])
    run.tick(MONDAY)
    assert contacts(engine) == [("d0", "whatsapp", "sending", 1)]
    run.tick(MONDAY + dt.timedelta(seconds=90))  # Retry-After asked for 120 s: not yet
    assert len(run.channels("whatsapp").sent) == 1
    run.tick(MONDAY + dt.timedelta(minutes=3))  # second attempt, busy again: next wait 120 s (2 x 60)
    run.tick(MONDAY + dt.timedelta(minutes=6))  # third attempt: attempts used up -> fall back to sms
    assert contacts(engine) == [("d0", "whatsapp", "failed", 3), ("d0", "sms", "sent", 1)]
    with engine.connect() as conn:
        reason = conn.execute(select(s.contacts.c.reason).where(s.contacts.c.channel == "whatsapp")).scalar()
    assert reason.startswith("gave up after 3 attempts")


def _history(engine) -> list[tuple]:
    from collect.engine.history import history_rows

    return [(r["channel"], r["status"], r["reason"]) for r in history_rows(engine)]


def test_a_sent_contact_keeps_the_reason_it_was_deferred_first_also_through_retries(setup):
    """docs/files.md: a `sent` row's reason is the reason it was deferred first, as in `collect simulate`;
    delivery wrote the provider's (empty) answer over it, and a retry's note meanwhile."""
    run, engine = setup(POLICY.replace("at: due,", "at: due 06:30,"), whatsapp=[BUSY, OK])
    run.tick(dt.datetime(2026, 11, 16, 12, tzinfo=UTC))  # 07:00 in Lima: the window opens at 08:00
    assert _history(engine) == [("whatsapp", "deferred", "window")]
    run.tick(MONDAY)  # 10:00: it goes out and the provider is busy: a retry's note meanwhile
    assert _history(engine)[1][1] == "sending" and _history(engine)[1][2].startswith("retrying from ")
    run.tick(MONDAY + dt.timedelta(minutes=3))  # the retry goes through
    assert _history(engine) == [("whatsapp", "deferred", "window"), ("whatsapp", "sent", "window")]


def test_a_send_on_the_next_channel_after_a_provider_refused_one_was_not_deferred(setup):
    run, engine = setup(whatsapp=[INVALID], sms=[OK])
    run.tick(MONDAY)
    assert _history(engine)[-1] == ("sms", "sent", "")  # not the step memory's `failed:whatsapp`


def test_a_handed_off_escalation_keeps_its_reason(setup):
    run, engine = setup(whatsapp=[INVALID], sms=[INVALID], email=[DeliveryResult.permanent("550", "no mailbox")])
    run.tick(MONDAY)
    assert _history(engine)[-1] == ("agent", "escalated", "channels exhausted")  # as `collect simulate` says


def test_a_provider_opt_out_is_recorded_and_respected(setup):
    run, engine = setup(whatsapp=[STOP], sms=[OK])
    run.tick(MONDAY)
    with engine.connect() as conn:
        assert conn.execute(select(s.customers.c.optouts)).scalar() == ["whatsapp"]
    assert contacts(engine)[-1][:3] == ("d0", "sms", "sent")


def test_a_template_that_cannot_be_rendered_fails_that_channel_not_the_tick(setup, monkeypatch, capsys):
    from collect.engine import messages

    render = messages.render_channel

    def broken_for_sms(template, context):
        if isinstance(template, str) and template.startswith("Hola"):  # the sms template of POLICY
            raise ZeroDivisionError("division by zero in the template")
        return render(template, context)
    monkeypatch.setattr(messages, "render_channel", broken_for_sms)
    policy = POLICY.replace("send: [whatsapp, sms, email]", "send: [sms, email]")
    run, engine = setup(policy, sms=[OK], email=[OK])
    summary = run.tick(MONDAY)
    with engine.connect() as conn:
        failed = conn.execute(select(s.contacts).where(s.contacts.c.channel == "sms")).one()
    assert failed.status == "failed" and failed.error_code == "render" and "ZeroDivisionError" in failed.reason
    assert contacts(engine)[-1][:3] == ("d0", "email", "sent") and run.channels("sms").sent == []
    # the policy's failure, not the provider's (`collect run` prints `error: KEY: ...`, exit 3)
    assert summary.provider_failures == [] and summary.errors == [f"{failed.key}: {failed.reason}"]
    # and the tick's table counts it as such, not as `provider failed`
    assert summary.delivery == {"template not rendered": 1, "sent": 1}
    show_tick(summary, dry_run=False)
    table = capsys.readouterr().out
    assert "template not rendered" in table and "provider failed" not in table


def test_a_failing_provider_is_left_alone_and_does_not_hold_up_the_others(setup):
    rows = "".join(f"F{i},C{i},100,2026-11-16,N{i},c{i}@acme.pe,+5198765432{i}\n" for i in range(6))
    policy = POLICY.replace("send: [whatsapp, sms, email]", "send: whatsapp").replace(
        "      - { id: d0", "      - { id: e0, at: due, send: email, template: m }\n      - { id: d0") + "catch_up: all\n"
    run, engine = setup(policy, rows, whatsapp=[BUSY], email=[OK])
    summary = run.tick(MONDAY)
    assert len(run.channels("whatsapp").sent) == 3  # then the breaker: the other three wait for a later tick
    assert len(run.channels("email").sent) == 6 and summary.by_channel["email"] == 6
    assert summary.delivery == {"sent": 6, "retry": 3, "waiting": 3}


def test_a_rate_limit_holds_the_channel_s_messages_until_retry_after_without_using_attempts(setup):
    rows = "".join(f"F{i},C{i},100,2026-11-16,N{i},c{i}@acme.pe,+5198765432{i}\n" for i in range(4))
    throttled = DeliveryResult.transient("130429", "throughput rate limit reached", retry_after=7200, throttled=True)
    run, engine = setup(POLICY.replace("send: [whatsapp, sms, email]", "send: whatsapp"), rows, whatsapp=[throttled, OK])
    summary = run.tick(MONDAY)
    assert len(run.channels("whatsapp").sent) == 1 and summary.delivery == {"retry": 1, "waiting": 3}
    assert sorted(contacts(engine)) == [("d0", "whatsapp", "sending", 0)] * 3 + [("d0", "whatsapp", "sending", 1)]
    run.tick(MONDAY + dt.timedelta(hours=1))  # within the provider's two hours: nothing is tried
    assert len(run.channels("whatsapp").sent) == 1
    run.tick(MONDAY + dt.timedelta(hours=2))
    assert len(run.channels("whatsapp").sent) == 5 and {r[2] for r in contacts(engine)} == {"sent"}


def test_over_real_protocols_refused_whatsapp_and_sms_fall_back_to_email(tmp_path, monkeypatch):
    """WhatsApp Cloud answers 131026 (undeliverable), Twilio 21211 (invalid number): the mail goes out."""
    from providers import (TWILIO_SID, TWILIO_TOKEN, WA_PHONE_ID, WA_TOKEN, WA_UNDELIVERABLE, ProviderServer,
                           smtp_server)

    with ProviderServer() as server, smtp_server() as (mail, port):
        (tmp_path / "policy.yaml").write_text(textwrap.dedent(POLICY), encoding="utf-8")
        (tmp_path / "p.csv").write_text("invoice_id,customer_id,amount,due_date,customer_name,email,phone,whatsapp\n"
                                        f"F1,C1,100,2026-11-16,ACME,pagos@acme.pe,+15005550001,{WA_UNDELIVERABLE}\n",
                                        encoding="utf-8")
        monkeypatch.setenv("TWILIO_TOKEN", TWILIO_TOKEN)
        monkeypatch.setenv("WA_TOKEN", WA_TOKEN)
        (tmp_path / "channels.yaml").write_text(textwrap.dedent(f"""
            channels:
              whatsapp: {{ adapter: whatsapp_cloud, phone_number_id: "{WA_PHONE_ID}", token: "${{WA_TOKEN}}",
                          base_url: "{server.url}/v21.0" }}
              sms: {{ adapter: twilio, account_sid: "{TWILIO_SID}", auth_token: "${{TWILIO_TOKEN}}",
                     from: "+15005550006", base_url: "{server.url}" }}
              email: {{ adapter: smtp, host: 127.0.0.1, port: {port}, starttls: false, from: "Cobranzas <c@example.pe>" }}
            costs: {{ email: 0.001, sms: 0.045, whatsapp: 0.03 }}
            """), encoding="utf-8")
        db = f"sqlite:///{tmp_path / 'c.db'}"
        monkeypatch.chdir(tmp_path)
        cli = CliRunner()
        assert cli.invoke(app, ["import", "invoices", "p.csv", "--db", db, "--timezone", "America/Lima"]).exit_code == 0
        result = cli.invoke(app, ["run", "policy.yaml", "--db", db, "--channels", "channels.yaml",
                                  "--now", MONDAY.isoformat()])
        engine = s.connect(db)
        with engine.connect() as conn:
            rows = {r.channel: r for r in conn.execute(select(s.contacts))}
    assert result.exit_code == 3, result.output  # providers refused two messages
    assert TWILIO_TOKEN not in result.output and WA_TOKEN not in result.output
    assert (rows["whatsapp"].status, rows["whatsapp"].error_code) == ("failed", "131026")
    assert (rows["sms"].status, rows["sms"].error_code) == ("failed", "21211")
    assert rows["email"].status == "sent" and str(rows["email"].cost) == "0.001"
    (received,) = mail.mails
    assert received.rcpt_tos == ["pagos@acme.pe"] and received.message["Subject"] == "Factura F1"


def test_secrets_never_reach_history_or_output(tmp_path, monkeypatch):
    """A provider error that echoes a secret is masked before it is stored or printed."""
    monkeypatch.setenv("SECRET_TOKEN", "s3cr3t-value-123")
    channels = Channels({"sms": {"adapter": "file", "path": str(tmp_path / "o.jsonl")}})
    channels._secrets.add("s3cr3t-value-123")
    from collect.engine.delivery import Delivery, deliver_all

    class Leaky:
        def send(self, message):
            return DeliveryResult.permanent("401", "bad token s3cr3t-value-123")

    channels.instances["sms"] = Leaky()
    (result,) = deliver_all([Delivery("k", "sms", "C1", ("d0|F1",), 0, lambda: None)], channels)
    assert "s3cr3t-value-123" not in result.reason and "***" in result.reason


def test_each_outcome_is_kept_before_the_channel_sends_its_next_message(tmp_path):
    """A crash during delivery must not send again what a provider already took: the tick stores each
    outcome as it comes (deliver_all's on_result), not the batch's at the end."""
    from collect.engine.delivery import Delivery, deliver_all

    channels = Channels({"sms": {"adapter": "file", "path": str(tmp_path / "o.jsonl")}})
    events = []

    class Provider:
        def send(self, message):
            events.append(("send", message))
            return DeliveryResult.sent(f"id-{message}")

    channels.instances["sms"] = Provider()
    keys = ("k1", "k2", "k3")
    deliver_all([Delivery(k, "sms", "C1", (f"d0|{k}",), 0, lambda k=k: k) for k in keys], channels,
                lambda result: events.append(("kept", result.delivery.key)))
    assert events == [(what, k) for k in keys for what in ("send", "kept")]


def test_a_tick_stores_an_outcome_before_the_next_message_goes(setup):
    run, engine = setup(rows="F1,C1,100,2026-11-16,ACME,pagos@acme.pe,+51987654321\n"
                             "F2,C2,100,2026-11-16,BETA,pagos@beta.pe,+51987654322\n"
                             "F3,C3,100,2026-11-16,GAMA,pagos@gama.pe,+51987654323\n", whatsapp=[OK])
    seen = []
    provider = run.channels("whatsapp")
    send = provider.send

    def watching(message):  # what the store says of the contacts when each message is handed over
        with engine.connect() as conn:
            seen.append(sorted(r.status for r in conn.execute(select(s.contacts.c.status))))
        return send(message)
    provider.send = watching
    run.tick(MONDAY)
    assert len(seen) == 3 and [statuses.count("sent") for statuses in seen] == [0, 1, 2]


def test_example_channels_yaml_costs_are_recorded(setup):
    run, engine = setup(whatsapp=[OK])
    run.channels.costs = {"whatsapp": __import__("decimal").Decimal("0.03")}
    run.tick(MONDAY)
    with engine.connect() as conn:
        assert str(conn.execute(select(s.contacts.c.cost)).scalar()) == "0.03"
    from collect.engine.report import report

    assert report(engine, dt.date(2026, 11, 16))["contacts"]["whatsapp"]["cost_per_contact"] == "0.0300"


# -- provider reports: collect import events ---------------------------------------------------------

def _events(engine, tmp_path, text: str):
    path = tmp_path / "events.csv"
    path.write_text(text, encoding="utf-8")
    return import_file(engine, "events", path, fields={}, colmap=ColumnMap(), default_tz="America/Lima")


def test_a_bounce_fails_the_contact_and_the_next_tick_falls_back(setup, tmp_path):
    run, engine = setup(whatsapp=[OK], sms=[OK])
    run.tick(MONDAY)
    with engine.connect() as conn:
        key = conn.execute(select(s.contacts.c.key).where(s.contacts.c.channel == "whatsapp")).scalar()
    _events(engine, tmp_path, f"at,channel,type,contact_id,detail\n2026-11-16T10:05,whatsapp,bounced,{key},131026\n")
    run.tick(MONDAY + dt.timedelta(hours=1))
    assert contacts(engine) == [("d0", "whatsapp", "failed", 1), ("d0", "sms", "sent", 1)]


def test_a_stop_reply_is_an_opt_out_for_that_channel(setup, tmp_path):
    run, engine = setup(whatsapp=[OK])
    run.tick(MONDAY)
    _events(engine, tmp_path, "at,channel,type,customer_id,detail\n2026-11-16T10:05,whatsapp,replied,C1,Stop.\n"
                              "2026-11-16T10:06,sms,replied,C1,stopped paying? no\n")
    with engine.connect() as conn:
        assert conn.execute(select(s.customers.c.optouts)).scalar() == ["whatsapp"]


def test_delivery_reports_update_the_contact_and_importing_twice_adds_nothing(setup, tmp_path):
    run, engine = setup(whatsapp=[DeliveryResult.sent("wamid.1")])
    run.tick(MONDAY)
    report = "at,channel,type,contact_id\n2026-11-16T10:01,whatsapp,delivered,wamid.1\n2026-11-16T10:09,whatsapp,read,wamid.1\n"
    assert (_events(engine, tmp_path, report).new, _events(engine, tmp_path, report).new) == (2, 0)
    with engine.connect() as conn:
        row = conn.execute(select(s.contacts)).one()
        assert conn.execute(select(s.provider_events)).all().__len__() == 2
    assert row.delivery == "read" and row.status == "sent"


def test_events_with_unknown_channels_customers_or_contacts_are_refused_whole(setup, tmp_path):
    from collect.engine.portfolio import CsvError

    run, engine = setup(whatsapp=[OK])
    with pytest.raises(CsvError) as info:
        _events(engine, tmp_path, "at,channel,type,customer_id,contact_id\n2026-11-16T10:00,fax,read,C1,\n"
                                  "2026-11-16T10:00,sms,read,C9,\n2026-11-16T10:00,sms,read,,nope\n"
                                  "2026-11-16T10:00,whatsap,delivered,C1,\n2026-11-16T10:00,sms,delivred,C1,\n"
                                  "2026-11-16T10:00,sms,seen,C1,\n")
    assert [(p.row, p.column) for p in info.value.problems] == [(2, "channel"), (3, "customer_id"), (4, "contact_id"),
                                                                 (5, "channel"), (6, "type"), (7, "type")]
    assert "did you mean 'whatsapp'" in str(info.value.problems[3])
    assert info.value.problems[4].reason == "unknown event type 'delivred' (did you mean 'delivered'?)"
    assert info.value.problems[5].reason.startswith("unknown event type 'seen' (expected delivered, ")
    with engine.connect() as conn:
        assert conn.execute(select(s.provider_events)).all() == []


def test_the_message_carries_the_customers_last_whatsapp_message_for_the_24h_window(setup, tmp_path):
    run, engine = setup(whatsapp=[OK])
    _events(engine, tmp_path, "at,channel,type,customer_id,detail\n2026-11-16T08:30,whatsapp,replied,C1,hola\n")
    run.tick(MONDAY)
    (message,) = run.channels("whatsapp").sent
    assert message.metadata["last_inbound_at"] == dt.datetime(2026, 11, 16, 13, 30, tzinfo=UTC)
    assert (message.template_name, message.template_language, message.params[0]) == ("recordatorio_pago", "es", "ACME")


# -- the world changes between the decision and a late delivery (a retry, a crash before the call) ----

def _import(engine, tmp_path, kind: str, text: str) -> None:
    path = tmp_path / f"{kind}.csv"
    path.write_text(text, encoding="utf-8")
    import_file(engine, kind, path, fields={}, colmap=ColumnMap(), default_tz="America/Lima")


@pytest.mark.parametrize("change, then", [
    ("events", [("d0", "whatsapp", "skipped", 1), ("d0", "sms", "sent", 1)]),  # opted out: the next channel
    ("customers", [("d0", "whatsapp", "skipped", 1), ("d0", "", "skipped", 0)]),  # do_not_contact: closed
    ("payments", [("d0", "whatsapp", "skipped", 1), ("d0", "", "skipped", 0)]),  # paid: closed, nothing more
])
def test_a_retry_is_withdrawn_when_the_customer_can_no_longer_be_contacted(setup, tmp_path, change, then):
    """SPEC 4.6: an opt-out and do_not_contact are absolute and a paid invoice gets nothing more, also
    for a message decided before and waiting for its provider retry."""
    run, engine = setup(whatsapp=[BUSY, OK], sms=[OK])
    run.tick(MONDAY)
    _import(engine, tmp_path, change, {
        "events": "at,channel,type,customer_id\n2026-11-16T10:01,whatsapp,opted_out,C1\n",
        "customers": "customer_id,do_not_contact\nC1,true\n",
        "payments": "payment_id,invoice_id,amount,paid_at\nP1,F1,100,2026-11-16T10:01\n"}[change])
    run.tick(MONDAY + dt.timedelta(minutes=3))
    assert len(run.channels("whatsapp").sent) == 1  # the first attempt only
    assert contacts(engine) == then
    with engine.connect() as conn:
        reason = conn.execute(select(s.contacts.c.reason).where(s.contacts.c.channel == "whatsapp")).scalar()
    assert reason.startswith("withdrawn before delivery")


def test_a_contact_already_made_is_not_delivered_again_whatever_the_step_memory_says(setup):
    """Exactly once is by contact key: even with the step memory lost (an invoice moved to another
    customer keeps its step keys), the same contact is not written or delivered twice."""
    run, engine = setup(whatsapp=[OK])
    run.tick(MONDAY)
    with engine.begin() as conn:
        conn.execute(s.steps.delete())
        conn.execute(s.customers.update().values(next_action_at=None))
    run.tick(MONDAY + dt.timedelta(hours=1))
    assert len(run.channels("whatsapp").sent) == 1
    assert contacts(engine) == [("d0", "whatsapp", "sent", 1)]


def test_a_changed_policy_decides_every_customer_again(setup, tmp_path):
    """The wake times were worked out under the old plan (nothing ahead: never): a step the new plan
    adds must still fire when due, in the real tick and in the dry run alike."""
    run, engine = setup(whatsapp=[OK])
    run.tick(MONDAY)
    path = tmp_path / "policy.yaml"
    path.write_text(textwrap.dedent(POLICY) + "      - { id: d3, at: due+3d, send: whatsapp, template: m }\n")
    later = Runner(engine, compile_policy(path).plan, run.channels)
    thursday = MONDAY + dt.timedelta(days=3)
    assert [d.step for d in later.tick(thursday, dry_run=True).decisions] == ["d3"]
    later.tick(thursday)
    assert contacts(engine) == [("d0", "whatsapp", "sent", 1), ("d3", "whatsapp", "sent", 1)]
    assert later.tick(thursday + dt.timedelta(hours=1)).customers == 0  # decided: back to its wake time


def test_a_retry_is_withdrawn_when_a_profile_stops_all_contact_meanwhile(setup, tmp_path):
    """cl-sernac stops collection contact once the debtor is sued (a lasting block): a waiting retry
    must not go out either."""
    policy = textwrap.dedent(POLICY).replace("currency: PEN\n", "currency: PEN\ncompliance: [cl-sernac]\n")
    run, engine = setup(policy, whatsapp=[BUSY, OK], sms=[OK], email=[OK])
    run.tick(MONDAY)
    assert contacts(engine) == [("d0", "whatsapp", "sending", 1)]
    _import(engine, tmp_path, "customers", "customer_id,legal_status\nC1,sued\n")
    run.tick(MONDAY + dt.timedelta(minutes=3))
    assert len(run.channels("whatsapp").sent) == 1 and run.channels("sms").sent == [] == run.channels("email").sent
    assert contacts(engine)[0][:3] == ("d0", "whatsapp", "skipped")


def test_an_endless_retry_after_waits_a_day_and_loses_no_other_outcome(setup):
    """An infinite Retry-After made record() raise OverflowError: no outcome of the batch was written, the
    rows stayed `sending` and the messages went out again on every tick."""
    rows = ("F1,C1,100,2026-11-16,ACME,pagos@acme.pe,+51987654321\n"
            "F2,C2,100,2026-11-16,Beta,pagos@beta.pe,+51987654322\n")
    endless = DeliveryResult.transient("429", "Too Many Requests", retry_after=float("inf"))
    run, engine = setup(rows=rows, whatsapp=[endless, OK])
    run.tick(MONDAY)
    assert contacts(engine) == [("d0", "whatsapp", "sending", 1), ("d0", "whatsapp", "sent", 1)]
    with engine.connect() as conn:
        waits = [r.next_attempt_at for r in conn.execute(select(s.contacts.c.next_attempt_at))]
    assert waits[0].replace(tzinfo=UTC) == MONDAY + dt.timedelta(days=1) and waits[1] is None
    run.tick(MONDAY + dt.timedelta(hours=1))
    assert len(run.channels("whatsapp").sent) == 2


def test_an_answer_that_is_no_delivery_result_loses_no_other_outcome(setup):
    """A plugin returning None crashed the channel's thread after its send, so the tick recorded none of
    the batch's outcomes; now that message is retried as an adapter error and the others are recorded."""
    rows = ("F1,C1,100,2026-11-16,ACME,pagos@acme.pe,+51987654321\n"
            "F2,C2,100,2026-11-16,Beta,pagos@beta.pe,+51987654322\n")
    run, engine = setup(rows=rows, whatsapp=[None, OK])
    run.tick(MONDAY)
    assert contacts(engine) == [("d0", "whatsapp", "sending", 1), ("d0", "whatsapp", "sent", 1)]
    with engine.connect() as conn:
        assert conn.execute(select(s.contacts.c.error_code).order_by(s.contacts.c.id)).scalars().first() == "adapter"


def test_customer_markup_is_escaped_in_the_html_part_of_the_email_sent(setup):
    """The email's HTML part was rendered unescaped: a customer name from the CSV put a link in the email."""
    policy = POLICY.replace('body: "Hola {{ customer.name }}" }',
                            'body: "Hola {{ customer.name }}", html: "<p>Hola {{ customer.name }}</p>" }')
    policy = policy.replace("send: [whatsapp, sms, email]", "send: [email]")
    rows = 'F1,C1,100,2026-11-16,"Acme <a href=""https://evil.example"">Pay</a>",pagos@acme.pe,+51987654321\n'
    run, _engine = setup(policy, rows=rows, email=[OK])
    run.tick(MONDAY)
    (message,) = run.channels("email").sent
    assert message.body == 'Hola Acme <a href="https://evil.example">Pay</a>'
    assert message.html == "<p>Hola Acme &lt;a href=&#34;https://evil.example&#34;&gt;Pay&lt;/a&gt;</p>"


def test_a_template_past_its_budget_fails_that_channel_at_once_and_the_tick_goes_on(setup):
    """Templates that validate could hang `collect run` (nested loops, huge numbers) or build huge messages."""
    costly = '{% for a in "x" | center(10000) %}{% for b in "x" | center(1000) %}{% endfor %}{% endfor %}'
    policy = POLICY.replace('sms: "Hola {{ customer.name }}: {{ total_balance | money }}"', f"sms: '{costly}'")
    policy = policy.replace("send: [whatsapp, sms, email]", "send: [sms, email]")
    run, engine = setup(policy, sms=[OK], email=[OK])
    run.tick(MONDAY)  # the loops' ten million steps are refused at the ten-thousandth, with the reason below
    with engine.connect() as conn:
        failed = conn.execute(select(s.contacts).where(s.contacts.c.channel == "sms")).one()
    assert failed.status == "failed" and failed.error_code == "render" and "10,000 times" in failed.reason
    assert contacts(engine)[-1][:3] == ("d0", "email", "sent") and run.channels("sms").sent == []


def test_reports_of_one_contact_in_any_order_leave_its_last_word_and_a_bounce_final(setup, tmp_path):
    """A file lists a bounce (10:05) before a delivered report (10:00): the contact is failed, not
    delivered too; and an older report never replaces a newer one."""
    run, engine = setup(whatsapp=[DeliveryResult.sent("wamid.1")], sms=[OK])
    run.tick(MONDAY)
    _events(engine, tmp_path, "at,channel,type,contact_id\n2026-11-16T10:05,whatsapp,bounced,wamid.1\n"
                              "2026-11-16T10:00,whatsapp,delivered,wamid.1\n")
    with engine.connect() as conn:
        row = conn.execute(select(s.contacts).where(s.contacts.c.channel == "whatsapp")).one()
    assert (row.status, row.delivery) == ("failed", "bounced")


def test_an_older_report_never_replaces_a_newer_one(setup, tmp_path):
    run, engine = setup(whatsapp=[DeliveryResult.sent("wamid.2")])
    run.tick(MONDAY)
    _events(engine, tmp_path, "at,channel,type,contact_id\n2026-11-16T10:09,whatsapp,read,wamid.2\n"
                              "2026-11-16T10:01,whatsapp,delivered,wamid.2\n")
    with engine.connect() as conn:
        assert conn.execute(select(s.contacts.c.delivery).where(s.contacts.c.provider_id == "wamid.2")).scalar() == "read"


def test_a_contact_decided_before_the_store_kept_its_reason_keeps_it_through_a_retry(setup):
    """A `sending` row left by a crash before migration 0004 has the decision's reason in `reason` and
    none in `decided_reason`: the recovered delivery stores it before a retry's note replaces `reason`."""
    from sqlalchemy import update

    run, engine = setup(POLICY.replace("at: due,", "at: due 06:30,"), whatsapp=[BUSY, BUSY, OK])
    run.tick(dt.datetime(2026, 11, 16, 12, tzinfo=dt.timezone.utc))  # 07:00 in Lima: deferred, window
    run.tick(MONDAY)  # the send is decided; the provider is busy
    with engine.begin() as conn:  # the row as a store written before 0004 has it after the upgrade
        conn.execute(update(s.contacts).where(s.contacts.c.status == "sending").values(
            reason="window", decided_reason=None, next_attempt_at=None, tick_id=None, attempts=0))
    run.tick(MONDAY + dt.timedelta(minutes=1))  # recovered: busy again, a retry's note over `reason`
    assert _history(engine)[-1][2].startswith("retrying from ")
    run.tick(MONDAY + dt.timedelta(minutes=10))  # the retry goes through
    assert _history(engine) == [("whatsapp", "deferred", "window"), ("whatsapp", "sent", "window")]


def test_a_sending_contact_of_a_store_from_before_0002_still_falls_back(setup, db_url):
    """Migration 0002 left contacts.steps empty on the rows it found: a contact left `sending` by an old
    collect, refused for good after the upgrade, must still open its step's next channel."""
    from alembic import command

    class Dies:
        def send(self, message):
            raise KeyboardInterrupt  # the process dies before the provider is called

    run, engine = setup(whatsapp=[INVALID], sms=[OK], email=[OK])
    run.channels.instances["whatsapp"] = Dies()
    with pytest.raises(KeyboardInterrupt):
        run.tick(MONDAY)
    with engine.begin() as conn:  # the store as collect 0.1 left it: no steps column, its own key format
        command.downgrade(s._alembic_config(conn), "0001")
        key = conn.execute(select(s.contacts.c.key)).scalar()
        conn.execute(s.contacts.update().values(key=f"{key.split('|')[0]}|d0|F1|sent"))
    s.migrate(engine)  # collect db upgrade
    run.channels.instances["whatsapp"] = Scripted(INVALID)
    run.tick(MONDAY.replace(hour=16))
    run.tick(MONDAY.replace(hour=17))
    assert ("d0", "sms", "sent", 1) in contacts(engine)


def test_explain_tells_a_fallback_after_a_refusal_from_a_deferral(setup, db_url, tmp_path):
    run, engine = setup(whatsapp=[INVALID], sms=[OK])
    run.tick(MONDAY)
    out = CliRunner().invoke(app, ["explain", str(tmp_path / "policy.yaml"), "--invoice", "F1", "--db", db_url,
                                   "--now", MONDAY.replace(hour=17).isoformat()], env={"COLUMNS": "250"})
    assert out.exit_code == 0, out.output
    line = next(line for line in out.output.splitlines() if " d0 " in line)
    assert "on sms after whatsapp failed (21211 The 'To' number is not a valid phone number.)" in line
    assert "deferral" not in line and "next_look never" in out.output  # nothing ahead: not year 9999


def test_explain_says_a_contact_waiting_for_a_retry_is_still_being_sent(setup, db_url, tmp_path):
    run, engine = setup(whatsapp=[BUSY])
    run.tick(MONDAY)
    out = CliRunner().invoke(app, ["explain", str(tmp_path / "policy.yaml"), "--invoice", "F1", "--db", db_url,
                                   "--now", MONDAY.replace(minute=1).isoformat()], env={"COLUMNS": "250"})
    assert out.exit_code == 0, out.output
    line = next(line for line in out.output.splitlines() if " d0 " in line)
    assert " sending " in line and "fired" not in line
    assert "on whatsapp: retrying from" in line and "429 Too Many Requests" in line


def test_a_channel_whose_receiver_dedupes_is_stored_at_the_end_of_the_tick(setup):
    """The file and webhook adapters drop a key they have had: their outcomes are stored together at the
    end (one transaction), which a crash cannot turn into a duplicate."""
    run, engine = setup(rows="F1,C1,100,2026-11-16,ACME,pagos@acme.pe,+51987654321\n"
                             "F2,C2,100,2026-11-16,BETA,pagos@beta.pe,+51987654322\n", whatsapp=[OK])
    provider, seen = run.channels("whatsapp"), []
    provider.dedupes, send = True, provider.send

    def watching(message):
        with engine.connect() as conn:
            seen.append(sorted(r.status for r in conn.execute(select(s.contacts.c.status))))
        return send(message)
    provider.send = watching
    run.tick(MONDAY)
    assert [statuses.count("sent") for statuses in seen] == [0, 0]
    assert [c[2] for c in contacts(engine)] == ["sent", "sent"]


def test_a_fallback_that_waits_for_its_window_is_recorded_deferred(setup, tmp_path):
    """The WhatsApp bounce comes in after closing time: the SMS it falls back to waits until the morning.
    It went out with no `deferred` row, and explain said `waiting: failed:whatsapp`."""
    run, engine = setup(whatsapp=[OK], sms=[OK])
    run.tick(MONDAY)
    with engine.connect() as conn:
        key = conn.execute(select(s.contacts.c.key).where(s.contacts.c.channel == "whatsapp")).scalar()
    _events(engine, tmp_path, f"at,channel,type,contact_id,detail\n2026-11-16T20:30,whatsapp,bounced,{key},131026\n")
    evening = MONDAY + dt.timedelta(hours=11)  # 21:00 in Lima
    run.tick(evening)
    run.tick(evening + dt.timedelta(hours=1))  # decided again: no second deferral row
    run.tick(evening + dt.timedelta(hours=11))  # 08:00
    with engine.connect() as conn:
        rows = [(r.channel, r.status, r.reason) for r in conn.execute(select(s.contacts).order_by(s.contacts.c.id))]
    assert rows[1:] == [("sms", "deferred", "window"), ("sms", "sent", "window")]
    from collect.engine.explain import explain

    lines = explain(engine, run.plan, "F1", evening + dt.timedelta(hours=12))[1]
    assert [(line.step, line.why) for line in lines] == [
        ("d0", "on sms after deferral (window) after whatsapp failed (bounced: 131026)")]


# only a PostgreSQL tick can lose its lock and live on (an SQLite tick's file lock lasts as long as its process)
POSTGRESQL_ONLY = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


THREE = ("F1,C1,100,2026-11-16,ACME,pagos@acme.pe,+51987654321\n"
         "F2,C2,100,2026-11-16,BETA,pagos@beta.pe,+51987654322\n"
         "F3,C3,100,2026-11-16,GAMA,pagos@gama.pe,+51987654323\n")


@POSTGRESQL_ONLY
def test_a_tick_whose_lock_session_is_dropped_sends_no_more_and_the_next_tick_sends_the_rest(setup, db_url):
    """Another tick takes a tick whose advisory lock is free for dead and delivers its `sending` rows: a
    tick that lost its lock's session (the server dropped it) while it lives on must stop sending, or
    both send the same messages."""
    from sqlalchemy import text

    from collect.engine.runner import ADVISORY_KEY, TickLost

    run, engine = setup(rows=THREE, whatsapp=[OK])
    provider = run.channels("whatsapp")
    send = provider.send

    def dropping(message):  # the server drops the lock's session while the first message is sent
        if not provider.sent:
            with engine.connect() as conn:
                conn.execute(text("SELECT pg_terminate_backend(pid, 5000) FROM pg_locks WHERE locktype = 'advisory' "
                                  "AND classid = :a AND database = (SELECT oid FROM pg_database "
                                  "WHERE datname = current_database())"), {"a": ADVISORY_KEY})  # this test's only
        return send(message)
    provider.send = dropping
    with pytest.raises(TickLost, match="lost the session that holds its lock"):
        run.tick(MONDAY)
    assert len(provider.sent) == 1  # the message in flight, and nothing after it
    provider.send = send
    Runner(engine, run.plan, run.channels).tick(MONDAY + dt.timedelta(minutes=5))
    assert sorted(m.recipient for m in provider.sent) == ["+51987654321", "+51987654322", "+51987654323"]
    assert [status for _, channel, status, _ in contacts(engine) if channel == "whatsapp"] == ["sent"] * 3


@POSTGRESQL_ONLY
def test_a_slow_tick_keeps_its_lock_session_from_idling_out(setup, db_url, monkeypatch):
    """A server that ends idle sessions (`idle_session_timeout`) would end the unused session holding a
    long tick's lock, and another tick would deliver the rows this one is still sending."""
    from sqlalchemy import text

    from collect.engine import runner

    monkeypatch.setattr(runner, "HEARTBEAT_S", 0.1)
    database = db_url.rsplit("/", 1)[1]
    with s.connect(db_url).connect() as conn:
        conn.execute(text(f"ALTER DATABASE \"{database}\" SET idle_session_timeout = '400ms'"))
        conn.commit()
    run, engine = setup(rows=THREE, whatsapp=[OK])
    provider = run.channels("whatsapp")
    send = provider.send

    def slow(message):
        time.sleep(0.6)  # longer than the server lets a session idle
        return send(message)
    provider.send = slow
    run.tick(MONDAY)
    assert len(provider.sent) == 3
    assert [status for _, channel, status, _ in contacts(engine) if channel == "whatsapp"] == ["sent"] * 3


def test_an_error_code_longer_than_its_column_still_falls_back(setup):
    """A gateway's code of 80 characters: PostgreSQL refused the row, and every tick failed on it."""
    code = "GATEWAY_" + "X" * 72
    run, engine = setup(whatsapp=[DeliveryResult.permanent(code, "refused by the gateway")], sms=[OK])
    run.tick(MONDAY)
    assert contacts(engine)[:2] == [("d0", "whatsapp", "failed", 1), ("d0", "sms", "sent", 1)]
    with engine.connect() as conn:
        stored = conn.execute(select(s.contacts.c.error_code, s.contacts.c.reason)
                              .where(s.contacts.c.channel == "whatsapp")).one()
    assert stored.error_code == code[:64] and code in stored.reason  # the whole code is kept in the reason


@POSTGRESQL_ONLY
@pytest.mark.parametrize("answer", [BUSY, INVALID])
def test_a_tick_that_lost_its_lock_stores_no_outcome_over_the_row_another_tick_delivered(setup, db_url, answer):
    """While the first tick's provider call is in flight, the server drops its lock's session and a second
    tick takes the row over and delivers it. The first tick's answer (a 429 to retry, or a refusal that
    would reopen the step for a fallback) must not replace the second tick's `sent`: a later tick would
    contact the customer again for a step already delivered."""
    from sqlalchemy import text

    from collect.engine.runner import ADVISORY_KEY, TickLost

    first, engine = setup(whatsapp=[answer])
    second = Runner(engine, first.plan, Channels(retry=Retry(attempts=3, backoff=60)))
    second.channels.instances.update({name: Scripted(OK) for name in ("whatsapp", "sms", "email", "agent")})
    provider = first.channels("whatsapp")
    send = provider.send

    def lost_meanwhile(message):
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(pid, 5000) FROM pg_locks WHERE locktype = 'advisory' "
                              "AND classid = :a AND database = (SELECT oid FROM pg_database "
                              "WHERE datname = current_database())"), {"a": ADVISORY_KEY})
        second.tick(MONDAY + dt.timedelta(seconds=30))
        return send(message)
    provider.send = lost_meanwhile
    with pytest.raises(TickLost):
        first.tick(MONDAY)
    assert contacts(engine) == [("d0", "whatsapp", "sent", 1)]
    later = Runner(engine, first.plan, second.channels)
    later.tick(MONDAY + dt.timedelta(minutes=10))
    assert contacts(engine) == [("d0", "whatsapp", "sent", 1)]
    assert [len(second.channels(name).sent) for name in ("whatsapp", "sms", "email")] == [1, 0, 0]


def test_a_template_that_fails_at_delivery_says_which_template_part_and_line(setup):
    costly = "{% for a in 'x' | center(10000) %}{% for b in 'x' | center(1000) %}{% endfor %}{% endfor %}"
    policy = POLICY.replace('sms: "Hola {{ customer.name }}: {{ total_balance | money }}"',
                            f'sms: "Hola\\n{{{{ customer.name }}}}\\n{costly}"')
    policy = policy.replace("send: [whatsapp, sms, email]", "send: [sms, email]")
    run, engine = setup(policy, sms=[OK], email=[OK])
    run.tick(MONDAY)
    with engine.connect() as conn:
        failed = conn.execute(select(s.contacts).where(s.contacts.c.channel == "sms")).one()
    assert failed.error_code == "render"
    assert failed.reason.startswith("template m.sms: body, line 3: the template is too costly: "), failed.reason
    assert contacts(engine)[-1][:3] == ("d0", "email", "sent")


def test_an_sms_amount_is_written_with_a_plain_space_so_the_message_stays_gsm_7(setup):
    policy = POLICY.replace("send: [whatsapp, sms, email]", "send: [sms, email]").replace(
        "total_balance | money }}\"", "total_balance | money(locale='es_PE') }} y {{ 1234567 | money('EUR', 'fr_FR') }}\"")
    run, _engine = setup(policy, sms=[OK], email=[OK])
    run.tick(MONDAY)
    (message,) = run.channels("sms").sent
    assert message.body == "Hola ACME: S/ 100.00 y 1 234 567,00 €"  # babel writes S/\xa0100.00, which is not GSM 7-bit


def test_rows_another_tick_took_over_are_neither_held_nor_withdrawn_nor_counted(setup):
    from collect.engine.runner import TickSummary

    run, engine = setup(whatsapp=[OK])
    run.tick(MONDAY)
    with engine.begin() as conn:  # a later tick owns the row now
        conn.execute(s.contacts.update().values(status="sending", tick_id=999, reason="theirs"))
        row = conn.execute(select(s.contacts).where(s.contacts.c.channel == "whatsapp")).one()
    key = row.key
    run.tick_id, summary = 7, TickSummary()
    run._hold([(row, "window", MONDAY + dt.timedelta(hours=1))], summary)
    run._withdraw([(row, "paid")], MONDAY, summary)
    assert summary.statuses["held"] == 0 and summary.statuses["withdrawn"] == 0
    with engine.connect() as conn:
        mine = conn.execute(select(s.contacts).where(s.contacts.c.key == key)).one()
    assert (mine.status, mine.tick_id, mine.reason) == ("sending", 999, "theirs")

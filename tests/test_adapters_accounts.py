"""Account-level refusals: a provider that refuses the channel's credentials or account (Twilio 401/20003,
a suspended account; WhatsApp 190, a locked, unpaid or policy-blocked business account; a webhook's
401/403; SMTP 535/530; a server certificate nobody trusts) refuses every message alike. The adapters say
so (`DeliveryResult.account_level`), and a tick then stops that channel: one request, not one per
contact; the contacts wait (`sending`, no attempt used) for a later tick instead of failing for good and
falling back; and one line names the channel and says to check it in channels.yaml."""

from __future__ import annotations

import datetime as dt
import textwrap

import pytest
from providers import (SMTP_PASSWORD, SMTP_USER, TWILIO_SID, TWILIO_TOKEN, WA_PHONE_ID, WA_TOKEN, WEBHOOK_SECRET,
                       ProviderServer, graph_error, smtp_server, twilio_error)
from sqlalchemy import select
from typer.testing import CliRunner

from collect.adapters.base import DeliveryResult, Message
from collect.adapters.smtp import SmtpChannel
from collect.adapters.twilio import TwilioChannel
from collect.adapters.twilio_voice import TwilioVoiceChannel
from collect.adapters.webhook import WebhookChannel
from collect.adapters.whatsapp_cloud import WhatsAppCloudChannel
from collect.engine import store as s
from collect.engine.channels import Channels, Retry
from collect.engine.compiler import compile_policy
from collect.engine.delivery import Delivery, deliver_all, failure_lines
from collect.engine.portfolio import ColumnMap
from collect.engine.runner import Runner
from collect.engine.storeio import import_file

UTC = dt.timezone.utc
MONDAY = dt.datetime(2026, 11, 16, 15, tzinfo=UTC)  # 10:00 in Lima


@pytest.fixture
def server():
    with ProviderServer() as running:
        yield running


def message(channel="sms", recipient="+51987654321", **fields) -> Message:
    return Message(key=fields.pop("key", "pb:d0:C001:2026-11-16"), channel=channel, customer_id="C001",
                   invoice_ids=("F001-00017",), recipient=recipient, **{"body": "Hola Ana", **fields})


def twilio(server, **settings) -> TwilioChannel:
    return TwilioChannel("sms", **{"account_sid": TWILIO_SID, "auth_token": TWILIO_TOKEN, "from": "+15005550006",
                                   "base_url": server.url, **settings})


def whatsapp(server, **settings) -> WhatsAppCloudChannel:
    return WhatsAppCloudChannel("whatsapp", **{"phone_number_id": WA_PHONE_ID, "token": WA_TOKEN,
                                               "base_url": f"{server.url}/v21.0", **settings})


def account(result: DeliveryResult, code: str) -> bool:
    """An account-level refusal, still `permanent` for code that does not know the flag."""
    return (result.status, result.error_code, result.account_level) == ("permanent", code, True)


# -- the adapters say which refusals are the account's ---------------------------------------------

def test_twilio_refused_credentials_are_account_level_and_not_printed(server):
    result = twilio(server, auth_token="rotated-token-4411").send(message())
    assert account(result, "20003")
    assert "auth_token" in result.error and "rotated-token-4411" not in repr(result)


@pytest.mark.parametrize("status, code", [
    (401, 20005),  # account not active (funds, trial)
    (403, 10001),  # account suspended
    (404, 20404),  # account (or messaging service) not found
    (400, 21212),  # invalid From: the channel's `from`
    (400, 21660),  # From does not belong to this account
    (403, 99999),  # a code we do not know, with HTTP 403: the credentials
])
def test_twilio_account_refusals(server, status, code):
    server.respond_next(*twilio_error(status, code, "refused"))
    assert account(twilio(server).send(message()), str(code))


def test_twilio_message_refusals_stay_per_message(server):
    result = twilio(server).send(message(recipient="+15005550001"))  # invalid To: 21211
    assert (result.status, result.error_code, result.account_level) == ("permanent", "21211", False)


def test_twilio_voice_refused_credentials_are_account_level(server):
    voice = TwilioVoiceChannel("voice", account_sid=TWILIO_SID, auth_token="wrong-token-9", base_url=server.url,
                               **{"from": "+15005550006"})
    assert account(voice.send(message("voice")), "20003")


def test_whatsapp_refused_token_is_account_level(server):
    result = whatsapp(server, token="EAAexpired-token-77").send(message("whatsapp", template_name="hello_world"))
    assert account(result, "190") and "token" in result.error and "EAAexpired-token-77" not in repr(result)


@pytest.mark.parametrize("status, code, hint", [
    (403, 368, "policy"),  # temporarily blocked for policy violations
    (400, 131031, "locked"),  # business account locked
    (400, 131042, "payment"),  # payment / eligibility problem
    (403, 200, "permission"),  # API permission (200-299)
    (403, 10, "permission"),
    (400, 133010, "not registered"),
    (400, 33, "phone_number_id"),
])
def test_whatsapp_business_account_refusals_are_account_level(server, status, code, hint):
    server.respond_next(*graph_error(status, code, f"(#{code}) refused"), headers={"Retry-After": "60"})
    result = whatsapp(server).send(message("whatsapp", template_name="hello_world"))
    assert account(result, str(code)) and hint in result.error and result.retry_after == 60.0


@pytest.mark.parametrize("status, code", [(400, 131021), (400, 131026), (403, 130497)])  # 130497: a country
def test_whatsapp_recipient_refusals_stay_per_message(server, status, code):
    server.respond_next(*graph_error(status, code, "refused"))
    result = whatsapp(server).send(message("whatsapp", template_name="hello_world"))
    assert (result.status, result.account_level) == ("permanent", False)


@pytest.mark.parametrize("status", [401, 403])
def test_webhook_refused_credentials_are_account_level(server, status):
    server.respond_next(status, {"error": "no"})
    result = WebhookChannel("webhook", url=f"{server.url}/hooks/x", secret=WEBHOOK_SECRET).send(message())
    assert account(result, f"http_{status}") and "secret" in result.error


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_smtp_refused_login_and_authentication_required_are_account_level():
    def email(port, **settings):
        return SmtpChannel("email", host="127.0.0.1", port=port, starttls=False, **{"from": "c@example.pe"},
                           **settings)

    with smtp_server(auth=True) as (mail, port):
        refused = email(port, username=SMTP_USER, password="rotated-pass-31").send(message("email", "a@example.pe"))
        anonymous = email(port).send(message("email", "a@example.pe"))
        ok = email(port, username=SMTP_USER, password=SMTP_PASSWORD).send(message("email", "a@example.pe"))
    assert account(refused, "auth") and "password" in refused.error and "rotated-pass-31" not in repr(refused)
    assert account(anonymous, "530")  # authentication required: the settings, for every message
    assert ok.status == "sent"


def test_smtp_refused_recipient_stays_per_message():
    with smtp_server() as (mail, port):
        gone = SmtpChannel("email", host="127.0.0.1", port=port, starttls=False,
                           **{"from": "c@example.pe"}).send(message("email", "gone@example.com"))
    assert (gone.status, gone.error_code, gone.account_level) == ("permanent", "550", False)


# -- a tick stops the channel -----------------------------------------------------------------------

class Scripted:
    def __init__(self, *answers):
        self.answers, self.sent = list(answers), []

    def send(self, m):
        self.sent.append(m)
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def refused() -> DeliveryResult:
    return DeliveryResult.account("20003", "Twilio refused the credentials (HTTP 401): check account_sid and "
                                           "auth_token")


def test_deliver_all_stops_a_refused_channel_and_says_so_once(tmp_path):
    channels = Channels({"sms": {"adapter": "file", "path": str(tmp_path / "o.jsonl")}})
    sms, email = Scripted(refused()), Scripted(DeliveryResult.sent("m"))
    channels.instances.update(sms=sms, email=email)
    deliveries = [Delivery(f"k{i}|{ch}", ch, f"C{i}", (f"d0|F{i}",), 0, lambda: None)
                  for i in range(4) for ch in ("sms", "email")]
    stopped: dict = {}
    results = deliver_all(deliveries, channels, stopped=stopped)
    assert len(sms.sent) == 1 and len(email.sent) == 4  # one request; the other channel goes on
    assert [r.status for r in results if r.delivery.channel == "sms"] == ["stopped", "waiting", "waiting", "waiting"]
    assert set(stopped) == {"sms"}
    (line,) = failure_lines(results)  # one line for the channel, none per waiting message
    assert "channel sms stopped" in line and "channels.sms in channels.yaml" in line and "20003" in line
    # a later call of the same tick (new decisions after the recovered rows) does not try the channel again
    again = deliver_all([Delivery("k9|sms", "sms", "C9", ("d0|F9",), 0, lambda: None)], channels, stopped=stopped)
    assert len(sms.sent) == 1 and again[0].status == "waiting" and failure_lines(again) == []


def test_a_rate_limited_sender_stops_its_channel_for_the_tick_and_its_messages_wait_out_retry_after(tmp_path):
    """A 429 was one message's retry: the channel went on sending into the limit, each message using an
    attempt and none waiting for the provider's Retry-After (ticks are often shorter than it)."""
    channels = Channels({"sms": {"adapter": "file", "path": str(tmp_path / "o.jsonl")}})
    sms = Scripted(DeliveryResult.transient("20429", "too many requests", retry_after=5400, throttled=True))
    email = Scripted(DeliveryResult.sent("m"))
    channels.instances.update(sms=sms, email=email)
    deliveries = [Delivery(f"k{i}|{ch}", ch, f"C{i}", (f"d0|F{i}",), 0, lambda: None)
                  for i in range(3) for ch in ("sms", "email")]
    stopped: dict = {}
    results = deliver_all(deliveries, channels, stopped=stopped)
    assert len(sms.sent) == 1 and len(email.sent) == 3
    waiting = [r for r in results if r.delivery.channel == "sms"]
    assert [(r.status, r.retry_after) for r in waiting] == [("retry", 5400), ("waiting", 5400), ("waiting", 5400)]
    assert failure_lines(results) == ["k0|sms: 20429 too many requests",
                                      "channel sms is rate-limited by its provider (20429 too many requests): its "
                                      "other messages wait at least 5400 s for a later tick without using an attempt"]
    again = deliver_all([Delivery("k9|sms", "sms", "C9", ("d0|F9",), 0, lambda: None)], channels, stopped=stopped)
    assert len(sms.sent) == 1 and (again[0].status, again[0].retry_after) == ("waiting", 5400)


def test_other_failures_are_still_listed_by_key():
    class Answer:
        def __init__(self, result):
            self.result = result

        def send(self, m):
            return self.result

    channels = Channels()
    channels.instances.update(sms=Answer(DeliveryResult.permanent("21211", "invalid To")),
                              email=Answer(DeliveryResult.transient("451", "later")))
    results = deliver_all([Delivery("a", "sms", "C1", (), 0, lambda: None),
                           Delivery("b", "email", "C1", (), 0, lambda: None)], channels)
    assert failure_lines(results) == ["a: 21211 invalid To", "b: 451 later"]


POLICY = """
policy: auth
timezone: America/Lima
currency: PEN
windows:
  default: { mon-sun: "08:00-20:00" }
templates:
  m:
    sms: "Hola {{ customer.name }}"
    email: { subject: "Factura", body: "Hola {{ customer.name }}" }
stages:
  due:
    when: invoice.days_past_due >= 0
    steps:
      - { id: d0, at: due, send: [sms, email], template: m }
"""
ROWS = "".join(f"F{i},C{i},100,2026-11-16,Cust{i},c{i}@acme.pe,+5198765432{i}\n" for i in range(5))


def _store(tmp_path, db_url):
    path = tmp_path / "policy.yaml"
    path.write_text(textwrap.dedent(POLICY), encoding="utf-8")
    csv = tmp_path / "p.csv"
    csv.write_text("invoice_id,customer_id,amount,due_date,customer_name,email,phone\n" + ROWS, encoding="utf-8")
    engine = s.connect(db_url)
    import_file(engine, "invoices", csv, fields={}, colmap=ColumnMap(), default_tz="America/Lima",
                default_currency="PEN")
    return compile_policy(path).plan, engine


def test_a_rotated_token_stops_the_channel_and_the_contacts_wait_for_a_fixed_one(server, tmp_path, db_url):
    plan, engine = _store(tmp_path, db_url)
    channels = Channels(retry=Retry(attempts=3, backoff=60))
    email = Scripted(DeliveryResult.sent("m"))
    channels.instances.update(sms=twilio(server, auth_token="rotated-token-4411"), email=email)
    run = Runner(engine, plan, channels)
    summary = run.tick(MONDAY)
    assert len(server.requests) == 1  # one refused request, not one per contact
    with engine.connect() as conn:
        rows = list(conn.execute(select(s.contacts).order_by(s.contacts.c.id)))
    assert [(r.channel, r.status, r.attempts) for r in rows] == [("sms", "sending", 0)] * 5  # no fallback, no attempt
    assert all(r.next_attempt_at is not None and "channel sms stopped" in r.reason for r in rows)
    assert email.sent == []
    assert summary.delivery == {"stopped": 1, "waiting": 4}
    assert any("channel sms stopped" in f and "channels.yaml" in f for f in summary.provider_failures)
    assert not any("rotated-token-4411" in f for f in summary.provider_failures)
    # the token is fixed in channels.yaml: the next tick after the wait delivers them, first attempt each
    channels.instances["sms"].close()
    channels.instances["sms"] = twilio(server)
    run.tick(MONDAY + dt.timedelta(minutes=2))
    with engine.connect() as conn:
        rows = list(conn.execute(select(s.contacts).order_by(s.contacts.c.id)))
    assert [(r.channel, r.status, r.attempts) for r in rows] == [("sms", "sent", 1)] * 5
    channels.close()


def test_collect_run_names_the_refused_channel_and_exits_3(server, tmp_path, monkeypatch):
    from collect.cli import app

    (tmp_path / "policy.yaml").write_text(textwrap.dedent(POLICY), encoding="utf-8")
    (tmp_path / "p.csv").write_text("invoice_id,customer_id,amount,due_date,customer_name,email,phone\n" + ROWS,
                                    encoding="utf-8")
    monkeypatch.setenv("TWILIO_TOKEN", "rotated-token-4411")
    (tmp_path / "channels.yaml").write_text(textwrap.dedent(f"""
        channels:
          sms: {{ adapter: twilio, account_sid: "{TWILIO_SID}", auth_token: "${{TWILIO_TOKEN}}",
                 from: "+15005550006", base_url: "{server.url}" }}
          email: {{ adapter: file, path: out/email.jsonl }}
        """), encoding="utf-8")
    db = f"sqlite:///{tmp_path / 'c.db'}"
    monkeypatch.chdir(tmp_path)
    cli = CliRunner()
    assert cli.invoke(app, ["import", "invoices", "p.csv", "--db", db, "--timezone", "America/Lima"]).exit_code == 0
    result = cli.invoke(app, ["run", "policy.yaml", "--db", db, "--channels", "channels.yaml", "--now",
                              MONDAY.isoformat(), "-q"])
    assert result.exit_code == 3, result.output
    assert len(server.requests) == 1 and "rotated-token-4411" not in result.output
    stopped = [line for line in result.output.splitlines() if "channel sms stopped" in line]
    assert stopped and "channels.sms in channels.yaml" in stopped[0] and "auth_token" in stopped[0]
    assert not (tmp_path / "out" / "email.jsonl").exists()  # nothing fell back to email

"""The HTTP adapters (twilio, twilio_voice, whatsapp_cloud, webhook) against loopback servers that speak
the providers' APIs: what the provider receives, and how each answer is classified."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import socket
import xml.etree.ElementTree as ET

import pytest
from providers import (TWILIO_SID, TWILIO_TOKEN, WA_PHONE_ID, WA_STOPPED_MARKETING, WA_TOKEN, WA_UNDELIVERABLE,
                       WEBHOOK_SECRET, ProviderServer, graph_error, twilio_error)

from collect.adapters.base import Channel, DeliveryResult, Message
from collect.adapters.http import retry_after
from collect.adapters.file import FileChannel
from collect.adapters.twilio import TwilioChannel
from collect.adapters.twilio_voice import TwilioVoiceChannel, say_language
from collect.adapters.webhook import WebhookChannel
from collect.adapters.whatsapp_cloud import WhatsAppCloudChannel

NOW = dt.datetime(2026, 11, 16, 15, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
def server():
    with ProviderServer() as running:
        yield running


def message(channel="sms", recipient="+51987654321", **fields) -> Message:
    return Message(key=fields.pop("key", "pb:od-3:C001:2026-11-16"), channel=channel, customer_id="C001",
                   invoice_ids=("F001-00017",), recipient=recipient, **{"body": "Hola Ana: paga S/ 1,250.00", **fields})


def twilio(server, channel="sms", **settings) -> TwilioChannel:
    return TwilioChannel(channel, **{"account_sid": TWILIO_SID, "auth_token": TWILIO_TOKEN, "from": "+15005550006",
                                     "base_url": server.url, **settings})


def whatsapp(server, **settings) -> WhatsAppCloudChannel:
    return WhatsAppCloudChannel("whatsapp", **{"phone_number_id": WA_PHONE_ID, "token": WA_TOKEN,
                                               "base_url": f"{server.url}/v21.0", **settings})


def webhook(server, **settings) -> WebhookChannel:
    return WebhookChannel("webhook", **{"url": f"{server.url}/hooks/collect", "secret": WEBHOOK_SECRET, **settings})


def test_builtins_satisfy_the_channel_protocol(server):
    for adapter in (twilio(server), whatsapp(server), webhook(server),
                    TwilioVoiceChannel("voice", account_sid=TWILIO_SID, auth_token=TWILIO_TOKEN, **{"from": "+1"})):
        assert isinstance(adapter, Channel)
    assert whatsapp(server).free_text is False and twilio(server).supports_templates is False
    assert twilio(server, channel="whatsapp", content_sids={"t": "HX1"}).supports_templates is True
    assert twilio(server).free_text is True and twilio(server, channel="whatsapp").free_text is False


# -- twilio ---------------------------------------------------------------------------------------

def test_twilio_sms_posts_the_form_with_basic_auth(server):
    result = twilio(server, status_callback="https://example.com/status").send(message())
    assert result.status == "sent" and result.provider_id.startswith("SM")
    [request] = server.requests
    assert request.path == f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"
    assert request.form == {"To": "+51987654321", "From": "+15005550006", "Body": "Hola Ana: paga S/ 1,250.00",
                            "StatusCallback": "https://example.com/status"}


def test_twilio_whatsapp_prefixes_addresses_and_sends_templates_as_content(server):
    adapter = twilio(server, channel="whatsapp", content_sids={"recordatorio_pago": "HX" + "a" * 32})
    # free text only inside the 24-hour window: the customer wrote an hour ago
    inside = {"last_inbound_at": NOW - dt.timedelta(hours=1), "now": NOW}
    assert adapter.send(message("whatsapp", metadata=inside)).status == "sent"
    templated = message("whatsapp", template_name="recordatorio_pago", params=("Ana", "S/ 1,250.00"))
    assert adapter.send(templated).status == "sent"
    free, template = (r.form for r in server.requests)
    assert free["To"] == "whatsapp:+51987654321" and free["From"] == "whatsapp:+15005550006"
    assert template["ContentSid"] == "HX" + "a" * 32 and "Body" not in template
    assert json.loads(template["ContentVariables"]) == {"1": "Ana", "2": "S/ 1,250.00"}


def test_twilio_whatsapp_template_without_content_sid_is_refused_before_sending(server):
    result = twilio(server, channel="whatsapp").send(message("whatsapp", template_name="recordatorio_pago"))
    assert (result.status, result.error_code) == ("permanent", "no_content_sid") and not server.requests


def test_twilio_refuses_a_body_longer_than_1600_characters_before_sending(server):
    adapter = twilio(server)
    assert adapter.send(message(body="x" * 1600)).status == "sent"  # the limit itself goes
    result = adapter.send(message(body="ñ" * 1601))
    assert (result.status, result.error_code) == ("permanent", "body_too_long") and len(server.requests) == 1
    assert "1,601 characters" in result.error and "21617" in result.error
    # the same answer without an adapter, its settings or a network: what `simulate --render` asks
    assert TwilioChannel.refuses("sms", message(body="ñ" * 1601)) == result
    # a WhatsApp template goes as a Content SID and its variables: no body is sent
    long_param = message("whatsapp", template_name="t", params=("x",), body="x" * 2000)
    assert TwilioChannel.refuses("whatsapp", long_param) is None


def test_twilio_messaging_service_replaces_from(server):
    adapter = TwilioChannel("sms", account_sid=TWILIO_SID, auth_token=TWILIO_TOKEN, base_url=server.url,
                            messaging_service_sid="MG" + "2" * 32)
    assert adapter.send(message()).status == "sent"
    assert server.requests[0].form["MessagingServiceSid"] == "MG" + "2" * 32 and "From" not in server.requests[0].form


@pytest.mark.parametrize("number, code, opted_out", [
    ("+15005550001", "21211", False),  # invalid To
    ("+15005550002", "21612", False),  # not reachable from this sender
    ("+15005550003", "21408", False),  # no permission for the region
    ("+15005550009", "21614", False),  # not a mobile number
    ("+15005550004", "21610", True),  # unsubscribed (STOP)
])
def test_twilio_error_codes_are_permanent_and_stop_is_an_opt_out(server, number, code, opted_out):
    result = twilio(server).send(message(recipient=number))
    assert (result.status, result.error_code, result.opted_out) == ("permanent", code, opted_out)
    assert result.error


def test_twilio_429_is_transient_and_keeps_retry_after(server):
    server.respond_next(*twilio_error(429, 20429, "Too Many Requests"), headers={"Retry-After": "7"})
    result = twilio(server).send(message())
    assert (result.status, result.error_code, result.retry_after, result.throttled) == ("transient", "20429", 7.0, True)


def test_twilio_server_error_is_transient(server):
    server.respond_next(500, {"code": 20500, "message": "Internal Server Error", "status": 500})
    result = twilio(server).send(message())
    assert (result.status, result.error_code, result.retry_after) == ("transient", "20500", None)


def test_twilio_bad_credentials_are_permanent_and_not_printed(server):
    result = twilio(server, auth_token="wrong-token-123456").send(message())
    assert (result.status, result.error_code) == ("permanent", "20003")
    assert "auth_token" in result.error and "wrong-token-123456" not in repr(result)


def test_twilio_voice_says_the_escaped_text_in_the_customer_language(server):
    voice = TwilioVoiceChannel("voice", account_sid=TWILIO_SID, auth_token=TWILIO_TOKEN, base_url=server.url,
                               voice="Polly.Mia", **{"from": "+15005550006"})
    body = 'Smith & Sons <Ltd> "debe" S/ 1,250.00</Say><Hangup/>'
    result = voice.send(message("voice", body=body, language="es"))
    assert result.status == "sent" and result.provider_id.startswith("CA")
    [request] = server.requests
    assert request.path.endswith("/Calls.json") and request.form["To"] == "+51987654321"
    say = ET.fromstring(request.form["Twiml"]).find("Say")
    assert say.text == body and say.get("language") == "es-MX" and say.get("voice") == "Polly.Mia"
    assert len(ET.fromstring(request.form["Twiml"])) == 1  # the body could not add a verb


def test_say_language_prefers_settings_then_known_locales():
    assert say_language("es-PE", {}, "en-US") == "es-MX"
    assert say_language("es_PE", {"es-PE": "es-US"}, "en-US") == "es-US"
    assert say_language("pt", {}, "en-US") == "pt-BR"
    assert say_language(None, {}, "en-GB") == say_language("xx", {}, "en-GB") == "en-GB"


def test_nothing_listening_is_transient():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    adapter = TwilioChannel("sms", account_sid=TWILIO_SID, auth_token=TWILIO_TOKEN, base_url=f"http://127.0.0.1:{port}",
                            **{"from": "+1"})
    result = adapter.send(message())
    assert (result.status, result.error_code) == ("transient", "network")
    assert TWILIO_SID not in result.error and TWILIO_TOKEN not in result.error


def test_a_provider_that_does_not_answer_is_a_transient_timeout():
    with socket.socket() as sock:  # accepts connections (backlog) and never answers
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        adapter = webhook_at(f"http://127.0.0.1:{sock.getsockname()[1]}/hooks/x", timeout="300ms")
        result = adapter.send(message())
    assert (result.status, result.error_code) == ("transient", "timeout")


def webhook_at(url, **settings):
    return WebhookChannel("webhook", url=url, secret=WEBHOOK_SECRET, **settings)


def test_retry_after_reads_seconds_and_http_dates():
    import httpx

    def answer(value):
        return httpx.Response(503, headers={"Retry-After": value})

    assert retry_after(answer("120")) == 120.0
    assert retry_after(answer("Mon, 16 Nov 2026 15:01:30 GMT"), now=NOW) == 90.0
    assert retry_after(answer("soon")) is None and retry_after(httpx.Response(503)) is None


# -- whatsapp_cloud ---------------------------------------------------------------------------------

def test_whatsapp_template_message_has_the_cloud_api_shape(server):
    sent = whatsapp(server).send(message("whatsapp", template_name="recordatorio_pago", template_language="es",
                                         params=("Ana", "S/ 1,250.00")))
    assert sent.status == "sent" and sent.provider_id.startswith("wamid.")
    [request] = server.requests
    assert request.path == f"/v21.0/{WA_PHONE_ID}/messages"
    assert request.headers["authorization"] == f"Bearer {WA_TOKEN}"
    assert request.json == {
        "messaging_product": "whatsapp", "recipient_type": "individual", "to": "+51987654321",
        "biz_opaque_callback_data": "pb:od-3:C001:2026-11-16", "type": "template",
        "template": {"name": "recordatorio_pago", "language": {"code": "es"}, "components": [
            {"type": "body", "parameters": [{"type": "text", "text": "Ana"},
                                            {"type": "text", "text": "S/ 1,250.00"}]}]}}


@pytest.mark.parametrize("adapter", ["cloud", "twilio"])
def test_an_empty_whatsapp_template_parameter_is_refused_before_sending(server, adapter):
    """WhatsApp answers HTTP 400 to an empty parameter (a customer without a name): the message fails for
    good saying which parameter and how to give it a value, without a call."""
    channel = whatsapp(server) if adapter == "cloud" else twilio(
        server, channel="whatsapp", content_sids={"recordatorio_pago": "HX" + "a" * 32})
    result = channel.send(message("whatsapp", template_name="recordatorio_pago", params=("Ana", " ")))
    assert (result.status, result.error_code) == ("permanent", "empty_param") and not server.requests
    assert "parameter 2 of the WhatsApp template 'recordatorio_pago' is empty" in result.error
    assert "default(" in result.error


def test_whatsapp_template_language_falls_back_on_the_message_language(server):
    whatsapp(server).send(message("whatsapp", template_name="hello_world", language="en-US"))
    assert server.requests[0].json["template"] == {"name": "hello_world", "language": {"code": "en_US"}}


@pytest.mark.parametrize("last_inbound", [None, NOW - dt.timedelta(hours=24), "2026-11-15T14:59:59+00:00", "garbage"])
def test_whatsapp_refuses_free_text_outside_the_24h_window(server, last_inbound):
    result = whatsapp(server).send(message("whatsapp", metadata={"last_inbound_at": last_inbound, "now": NOW}))
    assert (result.status, result.error_code) == ("permanent", "outside_24h_window")
    assert not server.requests  # refused here, not by Meta


@pytest.mark.parametrize("last_inbound", [NOW - dt.timedelta(hours=23, minutes=59), "2026-11-16T10:00:00-05:00"])
def test_whatsapp_sends_free_text_inside_the_window(server, last_inbound):
    result = whatsapp(server).send(message("whatsapp", metadata={"last_inbound_at": last_inbound,
                                                                 "now": NOW.isoformat()}))
    assert result.status == "sent"
    assert server.requests[0].json["text"] == {"body": "Hola Ana: paga S/ 1,250.00", "preview_url": False}


def test_whatsapp_window_uses_the_clock_without_now(server):
    recent = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    assert whatsapp(server).send(message("whatsapp", metadata={"last_inbound_at": recent})).status == "sent"


@pytest.mark.parametrize("template, params, code", [
    ("no_such_template", ("Ana",), "132001"),
    ("recordatorio_pago", ("Ana",), "132000"),
])
def test_whatsapp_template_errors_are_permanent(server, template, params, code):
    result = whatsapp(server).send(message("whatsapp", template_name=template, template_language="es", params=params))
    assert (result.status, result.error_code) == ("permanent", code)
    assert "does not" in result.error and "fbtrace_id" in result.error


def test_whatsapp_undeliverable_and_stopped_marketing(server):
    adapter = whatsapp(server)
    gone = adapter.send(message("whatsapp", recipient=WA_UNDELIVERABLE, template_name="hello_world"))
    stopped = adapter.send(message("whatsapp", recipient=WA_STOPPED_MARKETING, template_name="hello_world"))
    assert (gone.status, gone.error_code, gone.opted_out) == ("permanent", "131026", False)
    assert (stopped.status, stopped.error_code, stopped.opted_out) == ("permanent", "131050", True)


@pytest.mark.parametrize("status, code, sender_wide", [(400, 130429, True), (400, 131056, False), (400, 131048, True),
                                                      (500, 131000, False), (429, 4, True), (400, 80007, True)])
def test_whatsapp_rate_limits_are_transient(server, status, code, sender_wide):
    """Only a limit of the app, the account or its number throttles the channel; 131056 is one recipient's."""
    server.respond_next(*graph_error(status, code, "(#130429) Rate limit hit"), headers={"Retry-After": "30"})
    result = whatsapp(server).send(message("whatsapp", template_name="hello_world"))
    assert (result.status, result.error_code, result.retry_after) == ("transient", str(code), 30.0)
    assert result.throttled is sender_wide


def test_whatsapp_unknown_error_code_follows_the_http_status(server):
    server.respond_next(*graph_error(503, 999999, "Service temporarily unavailable"))
    assert whatsapp(server).send(message("whatsapp", template_name="hello_world")).status == "transient"
    server.respond_next(*graph_error(400, 999998, "Something we do not know"))
    assert whatsapp(server).send(message("whatsapp", template_name="hello_world")).status == "permanent"


def test_whatsapp_bad_token_is_permanent_and_not_printed(server):
    result = whatsapp(server, token="EAAexpiredtoken").send(message("whatsapp", template_name="hello_world"))
    assert (result.status, result.error_code) == ("permanent", "190")
    assert "token" in result.error and "EAAexpiredtoken" not in repr(result)


# -- webhook ----------------------------------------------------------------------------------------

def test_webhook_signs_the_exact_body_and_sends_the_idempotency_key(server):
    task = message("agent", recipient=None, body="", metadata={"queue": "key-accounts", "priority": "1250.00"})
    result = webhook(server).send(task)
    assert result == DeliveryResult("sent", provider_id="evt_0")
    [request] = server.requests
    assert request.headers["idempotency-key"] == task.key
    expected = hmac.new(WEBHOOK_SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.headers["x-collect-signature"] == f"sha256={expected}"
    assert request.json["metadata"] == {"queue": "key-accounts", "priority": "1250.00"}
    assert request.json["invoice_ids"] == ["F001-00017"] and request.json["key"] == task.key


def test_webhook_and_file_write_dates_and_times_in_iso_8601(server, tmp_path):
    """Receivers outside Python parse ISO 8601: `2026-11-16T09:00:00-05:00`, not str()'s space for the T."""
    now = dt.datetime(2026, 11, 16, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    metadata = {"now": now, "due": dt.date(2026, 11, 20)}
    webhook(server).send(message("agent", recipient=None, metadata=metadata))
    expected = {"now": "2026-11-16T09:00:00-05:00", "due": "2026-11-20"}
    assert server.requests[0].json["metadata"] == expected
    outbox = tmp_path / "sms.jsonl"
    assert FileChannel("sms", path=str(outbox)).send(message(metadata=metadata)).status == "sent"
    assert json.loads(outbox.read_text(encoding="utf-8"))["metadata"] == expected


def test_webhook_repeat_is_byte_identical_and_answered_once(server):
    adapter = webhook(server)
    first, again = adapter.send(message()), adapter.send(message())
    assert first.provider_id == again.provider_id
    assert server.requests[0].body == server.requests[1].body and len(server.state.webhook_seen) == 1


def test_webhook_wrong_secret_is_permanent_and_not_printed(server):
    result = webhook(server, secret="not-the-secret").send(message())
    assert (result.status, result.error_code) == ("permanent", "http_401")
    assert "not-the-secret" not in repr(result)


def test_webhook_statuses(server):
    server.respond_next(503, {"error": "down"}, headers={"Retry-After": "12"})
    server.respond_next(422, {"error": "invoice_ids must not be empty"})
    busy, invalid = webhook(server).send(message()), webhook(server).send(message())
    assert (busy.status, busy.error_code, busy.retry_after) == ("transient", "http_503", 12.0)
    assert (invalid.status, invalid.error_code) == ("permanent", "http_422")
    assert "invoice_ids must not be empty" in invalid.error


def test_webhook_extra_headers_are_sent(server):
    webhook(server, headers={"Authorization": "Bearer crm-token-55"}).send(message())
    assert server.requests[0].headers["authorization"] == "Bearer crm-token-55"


def test_retry_after_takes_only_delay_seconds_or_a_date_and_at_most_a_day():
    """`inf`, `1e12` or an endless number of seconds crashed every tick with OverflowError."""
    import httpx

    def answer(value):
        return retry_after(httpx.Response(429, headers={"Retry-After": value}), now=NOW)

    assert [answer(v) for v in ("inf", "1e12", "1.5", "-5", "nan")] == [None] * 5
    assert answer("99999999999999") == answer("9" * 5000) == 86400.0
    assert answer("Fri, 31 Dec 9999 23:59:59 GMT") == 86400.0


@pytest.mark.parametrize("code", [21611, 30001, 14107, 63017, 63038])
def test_twilio_throughput_limits_answered_as_400_are_transient(server, code):
    """21611 (the From number's queue holds 10 hours of messages) came back as HTTP 400 and was taken as
    permanent, so the step fell back or failed where Twilio's page says to slow down and send again.
    14107 limits one pair of numbers; the others the account or the sender, which throttles the channel."""
    server.respond_next(*twilio_error(400, code, "This 'From' number has exceeded the maximum number of queued "
                                                 "messages"))
    result = twilio(server).send(message())
    assert (result.status, result.error_code, result.throttled) == ("transient", str(code), code != 14107)


@pytest.mark.parametrize("answer, adapter", [
    ({"sid": ["SM1"]}, "twilio"), ({"sid": None}, "twilio"), ({"messages": [None]}, "whatsapp"),
    ({"messages": "wamid.1"}, "whatsapp"), ({"sid": 12345}, "twilio"),
])
def test_an_accepted_message_with_a_malformed_answer_is_sent_not_retried(server, answer, adapter):
    """A 2xx is the provider's acceptance: an id that is no text (a list) stopped every later delivery
    (it could not be stored) and the message went again at every tick; `[null]` raised, and the accepted
    WhatsApp went three times. The id is kept when it reads as one, else left out."""
    server.respond_next(201 if adapter == "twilio" else 200, answer)
    send = twilio(server).send(message()) if adapter == "twilio" else whatsapp(server).send(
        message("whatsapp", template_name="recordatorio_pago", template_language="es", params=("Ana", "S/ 1")))
    assert send.status == "sent"
    assert send.provider_id == ("12345" if answer.get("sid") == 12345 else None)


@pytest.mark.parametrize("status, answer, adapter, expected", [
    (400, {"code": {"a": 1}, "message": "bad"}, "twilio", "permanent"),
    (503, {"code": [1]}, "twilio", "transient"),
    (400, {"error": {"code": {"a": 1}}}, "whatsapp", "permanent"),
    (500, {"error": "boom"}, "whatsapp", "transient"),
])
def test_a_malformed_error_answer_is_classified_by_its_status_not_an_adapter_crash(server, status, answer, adapter,
                                                                                   expected):
    server.respond_next(status, answer)
    send = twilio(server).send(message()) if adapter == "twilio" else whatsapp(server).send(
        message("whatsapp", template_name="recordatorio_pago", template_language="es", params=("Ana", "S/ 1")))
    assert send.status == expected and send.error_code == f"http_{status}"

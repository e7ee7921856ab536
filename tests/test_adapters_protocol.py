"""What the adapters put on the wire and how they read protocol-level trouble: a non-ASCII contact key in a
webhook's Idempotency-Key, a webhook's 409 for a key still being processed, WhatsApp free text through
Twilio outside the 24-hour window, a TLS handshake the server drops, a private CA for the HTTP
adapters (ca_file, SSL_CERT_FILE), a certificate nobody trusts, and 7-bit mail bodies."""

from __future__ import annotations

import datetime as dt
import hashlib
import http.server
import json
import socket
import ssl
import threading

import pytest
from providers import TWILIO_SID, TWILIO_TOKEN, WEBHOOK_SECRET, ProviderServer, free_port, smtp_server

from collect.adapters.base import Message
from collect.adapters.http import tls_context
from collect.adapters.smtp import SmtpChannel
from collect.adapters.twilio import TwilioChannel
from collect.adapters.twilio_voice import TwilioVoiceChannel
from collect.adapters.webhook import WebhookChannel, idempotency_key
from collect.adapters.whatsapp_cloud import WhatsAppCloudChannel

NOW = dt.datetime(2026, 11, 16, 15, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
def server():
    with ProviderServer() as running:
        yield running


def message(channel="webhook", recipient=None, **fields) -> Message:
    return Message(key=fields.pop("key", "pb|h0|F001-00017|sent|webhook"), channel=channel, customer_id="C001",
                   invoice_ids=fields.pop("invoice_ids", ("F001-00017",)), recipient=recipient,
                   **{"body": "Hola Ana", **fields})


def webhook(url, **settings) -> WebhookChannel:
    return WebhookChannel("webhook", url=url, secret=WEBHOOK_SECRET, **settings)


# -- webhook: Idempotency-Key ------------------------------------------------------------------------

def test_a_non_ascii_key_goes_in_the_header_as_its_sha256_and_as_it_is_in_the_body(server):
    key = "pb|h0|Nº001-5|sent|webhook"
    adapter = webhook(f"{server.url}/hooks/x")
    first = adapter.send(message(key=key, invoice_ids=("Nº001-5",)))
    again = adapter.send(message(key=key, invoice_ids=("Nº001-5",)))
    assert first.status == again.status == "sent" and first.provider_id == again.provider_id  # deduplicated
    header = server.requests[0].headers["idempotency-key"]
    assert header == hashlib.sha256(key.encode("utf-8")).hexdigest() == server.requests[1].headers["idempotency-key"]
    assert server.requests[0].json["key"] == key and server.requests[0].json["invoice_ids"] == ["Nº001-5"]


@pytest.mark.parametrize("key, kept", [
    ("pb|h0|F001-00017|sent|webhook", True),
    ("pb|h0|F 1|sent|webhook", True),  # an inner space is printable ASCII
    ("pb|h0|F\"1|sent|webhook", False),  # " and \ would need escaping in an sf-string
    ("pb|h0|F\\1|sent|webhook", False),
    ("pb|h0|F\t1|sent|webhook", False),  # a control character
    (" pb|h0|F1 ", False),  # a header value loses spaces at its ends
    ("pb|h0|Nº001-5|sent|webhook", False),
])
def test_idempotency_key_is_printable_ascii_and_stable(key, kept):
    value = idempotency_key(key)
    assert value == idempotency_key(key) and value.isascii() and value.isprintable()
    assert (value == key) is kept
    if not kept:
        assert value == hashlib.sha256(key.encode("utf-8")).hexdigest()


# -- webhook: 409 -------------------------------------------------------------------------------------

def test_409_for_a_key_still_being_processed_is_transient_and_422_permanent(server):
    server.respond_next(409, {"title": "A request is outstanding for this Idempotency-Key"},
                        headers={"Retry-After": "5"})
    server.respond_next(422, {"title": "Idempotency-Key reused with another payload"})
    adapter = webhook(f"{server.url}/hooks/x")
    busy, reused = adapter.send(message()), adapter.send(message())
    assert (busy.status, busy.error_code, busy.retry_after) == ("transient", "http_409", 5.0)
    assert "outstanding" in busy.error
    assert (reused.status, reused.error_code, reused.account_level) == ("permanent", "http_422", False)


# -- twilio on WhatsApp: the 24-hour window ----------------------------------------------------------

def twilio_whatsapp(server, **settings) -> TwilioChannel:
    return TwilioChannel("whatsapp", **{"account_sid": TWILIO_SID, "auth_token": TWILIO_TOKEN, "from": "+14155238886",
                                        "base_url": server.url, **settings})


@pytest.mark.parametrize("last_inbound", [None, NOW - dt.timedelta(hours=24), "garbage"])
def test_twilio_whatsapp_refuses_free_text_outside_the_window_without_calling_twilio(server, last_inbound):
    result = twilio_whatsapp(server).send(message("whatsapp", "+51987654321",
                                                  metadata={"last_inbound_at": last_inbound, "now": NOW}))
    assert (result.status, result.error_code, result.account_level) == ("permanent", "outside_24h_window", False)
    assert server.requests == []  # Twilio would take it (201) and fail it later with 63016, unheard


def test_twilio_whatsapp_sends_free_text_inside_the_window_and_templates_always(server):
    adapter = twilio_whatsapp(server, content_sids={"recordatorio_pago": "HX" + "a" * 32})
    inside = adapter.send(message("whatsapp", "+51987654321",
                                  metadata={"last_inbound_at": NOW - dt.timedelta(hours=23), "now": NOW}))
    template = adapter.send(message("whatsapp", "+51987654321", template_name="recordatorio_pago",
                                    metadata={"last_inbound_at": None, "now": NOW}))
    assert inside.status == template.status == "sent" and len(server.requests) == 2


def test_twilio_sms_free_text_needs_no_window(server):
    adapter = TwilioChannel("sms", account_sid=TWILIO_SID, auth_token=TWILIO_TOKEN, base_url=server.url,
                            **{"from": "+15005550006"})
    assert adapter.send(message("sms", "+51987654321", metadata={"last_inbound_at": None})).status == "sent"


# -- HTTP adapters: the certificates to trust --------------------------------------------------------

@pytest.fixture(scope="module")
def ca():
    trustme = pytest.importorskip("trustme")
    return trustme.CA()


@pytest.fixture
def https(ca, tmp_path):
    """An https receiver on 127.0.0.1 whose certificate a private CA signed: (url, path of the CA's PEM)."""
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            payload = json.dumps({"id": "evt_1", "sid": "SM" + "b" * 32}).encode()
            self.send_response(201)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    srv.socket = context.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    tls_context.cache_clear()
    yield f"https://127.0.0.1:{srv.server_address[1]}", str(ca_file)
    srv.shutdown()
    srv.server_close()
    tls_context.cache_clear()


def test_http_adapters_trust_a_private_ca_given_as_ca_file(https):
    url, ca_file = https
    hook = webhook(f"{url}/hooks/x", ca_file=ca_file).send(message())
    sms = TwilioChannel("sms", account_sid=TWILIO_SID, auth_token=TWILIO_TOKEN, base_url=url, ca_file=ca_file,
                        **{"from": "+15005550006"}).send(message("sms", "+51987654321"))
    assert hook.status == sms.status == "sent"
    for cls, settings in ((WhatsAppCloudChannel, {"phone_number_id": "1", "token": "t"}),
                          (TwilioVoiceChannel, {"account_sid": TWILIO_SID, "auth_token": "t", "from": "+1"})):
        assert cls("x", ca_file=ca_file, **settings).settings.ca_file == ca_file


def test_http_adapters_honour_ssl_cert_file_like_httpx(https, monkeypatch):
    url, ca_file = https
    monkeypatch.setenv("SSL_CERT_FILE", ca_file)
    assert webhook(f"{url}/hooks/x").send(message()).status == "sent"


def test_an_untrusted_certificate_is_account_level_not_a_network_error_to_retry(https):
    url, _ = https
    result = webhook(f"{url}/hooks/x").send(message())
    assert (result.status, result.error_code, result.account_level) == ("permanent", "tls", True)
    assert "ca_file" in result.error and "127.0.0.1" in result.error


def test_a_ca_file_that_cannot_be_read_is_account_level(tmp_path):
    result = webhook("https://127.0.0.1:9/hooks/x", ca_file=str(tmp_path / "missing.pem")).send(message())
    assert (result.status, result.error_code, result.account_level) == ("permanent", "tls", True)
    assert "missing.pem" in result.error


def test_https_to_a_plain_http_port_is_account_level(server):
    result = webhook(server.url.replace("http://", "https://") + "/hooks/x").send(message())
    assert (result.error_code, result.account_level) == ("tls", True)


# -- TLS dropped during the handshake ---------------------------------------------------------------

@pytest.fixture
def dropper():
    """Accepts TCP connections and closes them during the TLS handshake (a server at its connection limit,
    a load balancer draining): the client reads EOF where the ServerHello should be."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(5)

    def loop():
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            conn.settimeout(2)
            try:
                conn.recv(65536)  # the whole ClientHello, so the close is a clean FIN
                conn.shutdown(socket.SHUT_WR)
                conn.recv(65536)
            except OSError:
                pass
            conn.close()
    threading.Thread(target=loop, daemon=True).start()
    yield srv.getsockname()[1]
    srv.close()


def test_smtp_tls_handshake_dropped_is_transient(dropper):
    adapter = SmtpChannel("email", host="127.0.0.1", port=dropper, ssl=True, timeout="3s", **{"from": "c@example.pe"})
    result = adapter.send(message("email", "ana@example.pe"))
    assert (result.status, result.error_code, result.account_level) == ("transient", "network", False)


def test_https_handshake_dropped_is_transient(dropper):
    result = webhook(f"https://127.0.0.1:{dropper}/hooks/x", timeout="3s").send(message())
    assert (result.status, result.error_code) == ("transient", "network")


def test_smtp_untrusted_certificate_plain_port_and_unreadable_ca_file_are_account_level(ca, tmp_path):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    with smtp_server(tls_context=context, implicit_tls=True) as (mail, tls_port), smtp_server() as (_, plain_port):
        untrusted = SmtpChannel("email", host="127.0.0.1", port=tls_port, ssl=True,
                                **{"from": "c@example.pe"}).send(message("email", "a@example.pe"))
        plain = SmtpChannel("email", host="127.0.0.1", port=plain_port, ssl=True, timeout="3s",
                            **{"from": "c@example.pe"}).send(message("email", "a@example.pe"))
        unreadable = SmtpChannel("email", host="127.0.0.1", port=tls_port, ssl=True, ca_file=str(tmp_path / "no.pem"),
                                 **{"from": "c@example.pe"}).send(message("email", "a@example.pe"))
    assert (untrusted.error_code, untrusted.account_level) == ("tls", True) and "ca_file" in untrusted.error
    assert (plain.error_code, plain.account_level) == ("tls", True)
    assert (unreadable.error_code, unreadable.account_level) == ("tls", True) and "no.pem" in unreadable.error


# -- SMTP: 7-bit bodies -------------------------------------------------------------------------------

@pytest.fixture
def raw_smtp():
    """An SMTP server that keeps each envelope as received (bytes and MAIL FROM parameters)."""
    from aiosmtpd.controller import Controller

    class Keep:
        envelopes: list = []

        async def handle_DATA(self, server, session, envelope):
            self.envelopes.append(envelope)
            return "250 OK"

    handler = Keep()
    handler.envelopes = []
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield handler.envelopes, controller.port
    controller.stop()


def test_smtp_sends_non_ascii_text_as_7bit_quoted_printable(raw_smtp):
    import email
    import email.policy

    envelopes, port = raw_smtp
    body = "Hola Ana, tu factura F1 vence el miércoles. Monto: S/ 1,250.00 — gracias"
    result = SmtpChannel("email", host="127.0.0.1", port=port, starttls=False,
                         **{"from": "Tesorería <c@example.pe>"}).send(
        message("email", "ana@example.pe", subject="Factura F1 vence el miércoles", body=body,
                html="<p>Vence el <b>miércoles</b></p>", key="pb|d0|Nº001-5|sent|email"))
    assert result.status == "sent"
    (envelope,) = envelopes
    raw = envelope.original_content
    # no 8-bit data, which RFC 6152 allows only with BODY=8BITMIME (and only to a server that offers it)
    assert all(b < 128 for b in raw), [line for line in raw.splitlines() if any(b > 127 for b in line)][:3]
    received = email.message_from_bytes(raw, policy=email.policy.default)
    text, html = received.iter_parts()
    assert text["Content-Transfer-Encoding"] in ("quoted-printable", "base64")
    assert text.get_content().strip() == body and "miércoles" in html.get_content()
    assert received["Subject"] == "Factura F1 vence el miércoles" and received["From"] == "Tesorería <c@example.pe>"
    assert received["X-Collect-Key"] == "pb|d0|Nº001-5|sent|email"


def test_smtp_ascii_text_stays_7bit_as_it_is(raw_smtp):
    envelopes, port = raw_smtp
    SmtpChannel("email", host="127.0.0.1", port=port, starttls=False, **{"from": "c@example.pe"}).send(
        message("email", "ana@example.pe", subject="Factura", body="Hola Ana"))
    (envelope,) = envelopes
    assert b"Content-Transfer-Encoding: 7bit" in envelope.original_content
    assert envelope.original_content.rstrip().endswith(b"Hola Ana")

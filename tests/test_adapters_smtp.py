"""The smtp adapter against a real SMTP server on loopback (aiosmtpd): plain, STARTTLS and implicit TLS
with a throwaway CA (trustme), login, multipart bodies, Message-ID, and how refusals are classified."""

from __future__ import annotations

import ssl

import pytest
from providers import SMTP_PASSWORD, SMTP_USER, free_port, smtp_server
from pydantic import ValidationError

from collect.adapters.base import Message
from collect.adapters.smtp import SmtpChannel, SmtpSettings, message_id

pytest.importorskip("aiosmtpd")
FROM = "Cobranzas <cobranzas@example.com>"


def message(recipient="ana@example.com", **fields) -> Message:
    return Message(key=fields.pop("key", "pb:od-1:C001:2026-11-16"), channel="email", customer_id="C001",
                   invoice_ids=("F001-00017",), recipient=recipient,
                   **{"subject": "Factura F001-00017 vencida", "body": "Hola Ana, su factura vence hoy.", **fields})


def plain(port, **settings) -> SmtpChannel:
    return SmtpChannel("email", host="127.0.0.1", port=port, starttls=False, **{"from": FROM}, **settings)


@pytest.fixture(scope="module")
def ca():
    trustme = pytest.importorskip("trustme")
    return trustme.CA()


@pytest.fixture
def tls(ca, tmp_path):
    """(server TLS context for 127.0.0.1, path of the CA certificate a client must trust)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return context, str(ca_file)


def test_html_goes_as_multipart_alternative_with_headers():
    with smtp_server() as (server, port):
        result = plain(port, reply_to="pagos@example.com").send(message(html="<p>Hola <b>Ana</b></p>"))
    assert result.status == "sent"
    [mail] = server.mails
    assert mail.mail_from == "cobranzas@example.com" and mail.rcpt_tos == ["ana@example.com"]
    m = mail.message
    assert (m["From"], m["To"], m["Subject"], m["Reply-To"]) == (FROM, "ana@example.com", "Factura F001-00017 vencida",
                                                                 "pagos@example.com")
    assert m.get_content_type() == "multipart/alternative"
    text, html = m.iter_parts()
    assert text.get_content_type() == "text/plain" and text.get_content().strip() == "Hola Ana, su factura vence hoy."
    assert html.get_content_type() == "text/html" and "<b>Ana</b>" in html.get_content()
    assert m["Message-ID"] == result.provider_id == message_id("pb:od-1:C001:2026-11-16", "example.com")
    assert m["X-Collect-Key"] == "pb:od-1:C001:2026-11-16" and m["Date"]


def test_text_only_is_a_single_part_and_a_repeat_keeps_its_message_id():
    with smtp_server() as (server, port):
        adapter = plain(port, message_id_domain="mail.example.org")
        first, again, other = adapter.send(message()), adapter.send(message()), adapter.send(message(key="other"))
        adapter.close()
    assert [m.message.get_content_type() for m in server.mails] == ["text/plain"] * 3
    ids = [m.message["Message-ID"] for m in server.mails]
    assert ids[0] == ids[1] == first.provider_id == again.provider_id != ids[2] == other.provider_id
    assert ids[0].endswith("@mail.example.org>")


def test_a_line_break_in_the_subject_cannot_add_a_header():
    with smtp_server() as (server, port):
        result = plain(port).send(message(subject="Hola\r\nBcc: everyone@example.com"))
    assert result.status == "sent"
    assert server.mails[0].message["Bcc"] is None and server.mails[0].rcpt_tos == ["ana@example.com"]


def test_550_is_permanent_and_451_transient():
    with smtp_server() as (server, port):
        adapter = plain(port)
        gone, later, fine = (adapter.send(message(r)) for r in ("gone@example.com", "later@example.com",
                                                                 "ana@example.com"))
    assert (gone.status, gone.error_code) == ("permanent", "550") and "User unknown" in gone.error
    assert (later.status, later.error_code) == ("transient", "451")
    assert fine.status == "sent" and len(server.mails) == 1  # the connection recovered after the refusals


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_login_and_a_refused_login_that_does_not_print_the_password():
    with smtp_server(auth=True) as (server, port):
        ok = plain(port, username=SMTP_USER, password=SMTP_PASSWORD).send(message())
        bad = plain(port, username=SMTP_USER, password="wrong-password-77").send(message())
        anonymous = plain(port).send(message())
    assert ok.status == "sent" and server.mails[0].login == SMTP_USER
    assert (bad.status, bad.error_code) == ("permanent", "auth") and "wrong-password-77" not in repr(bad)
    assert anonymous.status == "permanent" and anonymous.error_code == "530"  # authentication required


def test_starttls_with_a_private_ca_and_login(tls):
    context, ca_file = tls
    with smtp_server(auth=True, tls_context=context, starttls=True) as (server, port):
        adapter = SmtpChannel("email", host="127.0.0.1", port=port, starttls=True, ca_file=ca_file,
                              username=SMTP_USER, password=SMTP_PASSWORD, **{"from": FROM})
        result = adapter.send(message())
        untrusted = SmtpChannel("email", host="127.0.0.1", port=port, **{"from": FROM}).send(message())
        refused = plain(port).send(message())  # the server requires STARTTLS first
    assert result.status == "sent" and server.mails[0].login == SMTP_USER
    assert (untrusted.status, untrusted.error_code) == ("permanent", "tls")
    assert (refused.status, refused.error_code) == ("permanent", "530")


def test_implicit_tls(tls):
    context, ca_file = tls
    with smtp_server(tls_context=context, implicit_tls=True) as (server, port):
        result = SmtpChannel("email", host="127.0.0.1", port=port, ssl=True, ca_file=ca_file,
                             **{"from": FROM}).send(message())
        unverified = SmtpChannel("email", host="127.0.0.1", port=port, ssl=True, verify=False,
                                 **{"from": FROM}).send(message())
    assert result.status == unverified.status == "sent" and len(server.mails) == 2


def test_no_server_is_transient():
    result = plain(free_port(), timeout="2s").send(message())
    assert (result.status, result.error_code) == ("transient", "network")


def test_no_address_is_permanent_without_connecting():
    result = plain(1).send(message(recipient=None))
    assert (result.status, result.error_code) == ("permanent", "no_recipient")


def test_settings_defaults_and_conflicts():
    assert SmtpSettings(host="h", **{"from": FROM}).effective_port == 587
    assert SmtpSettings(host="h", ssl=True, **{"from": FROM}).effective_port == 465
    assert SmtpSettings(host="h", starttls=False, **{"from": FROM}).effective_port == 25
    with pytest.raises(ValidationError, match="not both"):
        SmtpSettings(host="h", ssl=True, starttls=True, **{"from": FROM})
    with pytest.raises(ValidationError, match="go together"):
        SmtpSettings(host="h", username="u", **{"from": FROM})
    adapter = SmtpChannel("email", host="h", username="u", password="s3cret", **{"from": FROM})
    assert "s3cret" not in repr(adapter.settings) and "s3cret" not in repr(adapter)


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_a_temporary_login_failure_454_is_transient():
    """RFC 4954: 454 is a temporary authentication failure; it was classified permanent `auth`, so the
    step fell back to its next channel while the mail server's auth backend was down for a moment."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult
    from providers import _SmtpHandler

    def temporary(server, session, envelope, mechanism, auth_data):
        return AuthResult(success=False, handled=False, message="454 4.7.0 Temporary authentication failure")

    port = free_port()
    controller = Controller(_SmtpHandler(), hostname="127.0.0.1", port=port, auth_required=True,
                            auth_require_tls=False, authenticator=temporary)
    controller.start()
    try:
        result = plain(port, username=SMTP_USER, password=SMTP_PASSWORD).send(message())
    finally:
        controller.stop()
    assert (result.status, result.error_code) == ("transient", "454") and SMTP_PASSWORD not in repr(result)

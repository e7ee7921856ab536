"""Loopback stand-ins for the providers, speaking their real protocols, for the adapter tests.

- `ProviderServer`: one HTTP server on 127.0.0.1 that implements the Twilio Messages and Calls
  endpoints (basic auth, form fields, the JSON shapes with `sid`, Twilio's magic test numbers and their
  error codes), the WhatsApp Cloud messages endpoint (bearer token, template checks, Graph error
  bodies) and a webhook receiver (HMAC signature and Idempotency-Key checked, repeats answered once).
  `respond_next(...)` makes the next request get a canned answer (429 with Retry-After, 500, ...).
- `SmtpServer`: an aiosmtpd server (plain, STARTTLS or implicit TLS, optional AUTH) that keeps what
  it receives and refuses some recipients with 550 / 451.

Everything binds to 127.0.0.1 only and stops when the test ends.
"""

from __future__ import annotations

import base64
import contextlib
import email
import email.policy
import hashlib
import hmac
import itertools
import json
import re
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

TWILIO_SID = "AC" + "1" * 32
TWILIO_TOKEN = "twilio-test-token-0f3c"
WA_PHONE_ID = "106540352242922"
WA_TOKEN = "EAAtesttokenwhatsapp"
WEBHOOK_SECRET = "whsec-test-7f2a"

# Twilio's magic 'To' numbers (test credentials page) and the errors they produce.
TWILIO_MAGIC = {
    "+15005550001": (21211, "The 'To' number +15005550001 is not a valid phone number."),
    "+15005550002": (21612, "The 'To' phone number: +15005550002, is not currently reachable using the "
                            "'From' phone number: +15005550006 via SMS."),
    "+15005550003": (21408, "Permission to send an SMS has not been enabled for the region indicated by "
                            "the 'To' number: +15005550003."),
    "+15005550004": (21610, "Attempt to send to unsubscribed recipient"),
    "+15005550009": (21614, "'To' number is not a valid mobile number"),
}
WA_UNDELIVERABLE = "+14155550026"  # answered with 131026
WA_STOPPED_MARKETING = "+14155550050"  # answered with 131050


@dataclass
class Received:
    method: str
    path: str
    headers: dict  # lower-case names
    body: bytes

    @property
    def form(self) -> dict:
        return {k: v[0] for k, v in parse_qs(self.body.decode("utf-8"), keep_blank_values=True).items()}

    @property
    def json(self):
        return json.loads(self.body)


@dataclass
class ProviderState:
    requests: list[Received] = field(default_factory=list)
    canned: list[tuple[int, dict, dict]] = field(default_factory=list)
    wa_templates: dict = field(default_factory=lambda: {("recordatorio_pago", "es"): 2, ("hello_world", "en_US"): 0})
    webhook_seen: dict = field(default_factory=dict)
    ids: itertools.count = field(default_factory=itertools.count)


def _hex(n: int, seed: str) -> str:
    return hashlib.sha256(f"{seed}{n}".encode()).hexdigest()[:32]


def twilio_error(status: int, code: int, message: str) -> tuple[int, dict]:
    return status, {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}",
                    "status": status}


def graph_error(status: int, code: int, message: str, details: str | None = None) -> tuple[int, dict]:
    error = {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "AbCdEf123"}
    if details:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    return status, {"error": error}


class _Handler(BaseHTTPRequestHandler):
    server: "ProviderServer"

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        request = Received("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        state = self.server.state
        state.requests.append(request)
        if state.canned:
            status, data, headers = state.canned.pop(0)
            return self._answer(status, data, headers)
        status, data = self._route(request)
        self._answer(status, data)

    def _answer(self, status: int, data: dict, headers: dict | None = None):
        payload = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _route(self, request: Received) -> tuple[int, dict]:
        twilio = re.fullmatch(r"/2010-04-01/Accounts/([^/]+)/(Messages|Calls)\.json", request.path)
        if twilio:
            return twilio_api(self.server.state, request, twilio.group(1), twilio.group(2))
        whatsapp = re.fullmatch(r"/v21\.0/([^/]+)/messages", request.path)
        if whatsapp:
            return whatsapp_api(self.server.state, request, whatsapp.group(1))
        if request.path.startswith("/hooks/"):
            return webhook_receiver(self.server.state, request)
        return 404, {"error": "no such endpoint"}


def twilio_api(state: ProviderState, request: Received, sid: str, resource: str) -> tuple[int, dict]:
    expected = "Basic " + base64.b64encode(f"{TWILIO_SID}:{TWILIO_TOKEN}".encode()).decode()
    if request.headers.get("authorization") != expected or sid != TWILIO_SID:
        return twilio_error(401, 20003, "Authenticate")
    form = request.form
    if "To" not in form:
        return twilio_error(400, 21604, "A 'To' phone number is required.")
    if not form.get("From") and not form.get("MessagingServiceSid"):
        return twilio_error(400, 21603, "A 'From' phone number is required.")
    if resource == "Messages" and not form.get("Body") and not form.get("ContentSid"):
        return twilio_error(400, 21602, "Message body is required.")
    if resource == "Calls" and not form.get("Twiml") and not form.get("Url"):
        return twilio_error(400, 21205, "Url parameter is required.")
    number = form["To"].removeprefix("whatsapp:")
    if number in TWILIO_MAGIC:
        return twilio_error(400, *TWILIO_MAGIC[number])
    prefix = "SM" if resource == "Messages" else "CA"
    return 201, {"sid": prefix + _hex(next(state.ids), resource), "account_sid": sid, "to": form["To"],
                 "from": form.get("From"), "body": form.get("Body"), "status": "queued",
                 "uri": f"/2010-04-01/Accounts/{sid}/{resource}/x.json"}


def whatsapp_api(state: ProviderState, request: Received, phone_id: str) -> tuple[int, dict]:
    if request.headers.get("authorization") != f"Bearer {WA_TOKEN}":
        return graph_error(401, 190, "Invalid OAuth access token - Cannot parse access token")
    if phone_id != WA_PHONE_ID:
        return graph_error(400, 100, f"Unsupported post request. Object with ID '{phone_id}' does not exist")
    data = request.json
    if data.get("messaging_product") != "whatsapp" or not data.get("to"):
        return graph_error(400, 100, "(#100) Invalid parameter")
    if data["to"] == WA_UNDELIVERABLE:
        return graph_error(400, 131026, "Message undeliverable")
    if data["to"] == WA_STOPPED_MARKETING:
        return graph_error(400, 131050, "Unable to deliver the message. This recipient has chosen to stop "
                                        "receiving marketing messages on WhatsApp from your business")
    problem = _template_problem(state, data) if data.get("type") == "template" else None
    if data.get("type") == "text" and not (data.get("text") or {}).get("body"):
        problem = graph_error(400, 100, "(#100) The parameter text['body'] is required.")
    if problem:
        return problem
    return 200, {"messaging_product": "whatsapp", "contacts": [{"input": data["to"], "wa_id": data["to"].lstrip("+")}],
                 "messages": [{"id": "wamid." + _hex(next(state.ids), "wa"), "message_status": "accepted"}]}


def _template_problem(state: ProviderState, data: dict):
    template = data.get("template") or {}
    key = (template.get("name"), (template.get("language") or {}).get("code"))
    if key not in state.wa_templates:
        return graph_error(404, 132001, "(#132001) Template name does not exist in the translation",
                           f"template name ({key[0]}) does not exist in {key[1]}")
    given = sum(len(c.get("parameters", [])) for c in template.get("components", []) if c.get("type") == "body")
    if given != state.wa_templates[key]:
        return graph_error(400, 132000, "(#132000) Number of parameters does not match the expected number of params",
                           f"body: number of localizable_params ({given}) does not match the expected number "
                           f"of params ({state.wa_templates[key]})")
    return None


def webhook_receiver(state: ProviderState, request: Received) -> tuple[int, dict]:
    expected = "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(request.headers.get("x-collect-signature", ""), expected):
        return 401, {"error": "bad signature"}
    key = request.headers.get("idempotency-key")
    if not key:
        return 400, {"error": "Idempotency-Key is required"}
    if key in state.webhook_seen:
        return 200, {"id": state.webhook_seen[key], "duplicate": True}
    state.webhook_seen[key] = f"evt_{next(state.ids)}"
    return 200, {"id": state.webhook_seen[key]}


class ProviderServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = ProviderState()
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    @property
    def requests(self) -> list[Received]:
        return self.state.requests

    def respond_next(self, status: int, data: dict, headers: dict | None = None) -> None:
        self.state.canned.append((status, data, headers or {}))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.shutdown()
        self.server_close()


# -- SMTP -------------------------------------------------------------------------------------------

SMTP_USER, SMTP_PASSWORD = "mailer", "smtp-test-secret-91"
REFUSED = {"gone@example.com": "550 5.1.1 <gone@example.com>: Recipient address rejected: User unknown",
           "later@example.com": "451 4.3.0 Mailbox temporarily unavailable, try again later"}


@dataclass
class Mail:
    mail_from: str
    rcpt_tos: list[str]
    message: email.message.EmailMessage
    login: str | None


class _SmtpHandler:
    def __init__(self):
        self.mails: list[Mail] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in REFUSED:
            return REFUSED[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        login = session.auth_data.login.decode() if session.authenticated and session.auth_data else None
        self.mails.append(Mail(envelope.mail_from, list(envelope.rcpt_tos), message, login))
        return "250 Message accepted for delivery"


def _authenticator(server, session, envelope, mechanism, auth_data):
    from aiosmtpd.smtp import AuthResult

    ok = auth_data.login == SMTP_USER.encode() and auth_data.password == SMTP_PASSWORD.encode()
    return AuthResult(success=ok, handled=False, auth_data=auth_data)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def smtp_server(*, auth: bool = False, tls_context=None, starttls: bool = False, implicit_tls: bool = False):
    """An aiosmtpd server on 127.0.0.1; yields (handler with .mails, port)."""
    from aiosmtpd.controller import Controller

    handler = _SmtpHandler()
    options = {"auth_required": auth, "auth_require_tls": starttls, "authenticator": _authenticator}
    if starttls:
        options.update(tls_context=tls_context, require_starttls=True)
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port,
                            ssl_context=tls_context if implicit_tls else None, **options)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()

"""The `twilio` adapter: SMS, and WhatsApp through Twilio, with the Programmable Messaging API.

POST {base_url}/2010-04-01/Accounts/{account_sid}/Messages.json, HTTP basic auth account_sid:auth_token,
form fields To, From (or MessagingServiceSid), Body, StatusCallback. On the `whatsapp` channel the
addresses get the `whatsapp:` prefix, and a message with a provider template is sent as the Content
SID configured for it (`content_sids`) with its parameters as ContentVariables {"1": ..., "2": ...}.
Free text on WhatsApp goes only inside the 24-hour customer service window (as `whatsapp_cloud`):
outside it the message is refused here, `outside_24h_window`, since Twilio would accept it and fail it
later (63016) where collect does not hear.

Twilio has no idempotency key on this API: a send that timed out after Twilio accepted it can be
repeated by the runner's retry. Errors are classified from Twilio's error code (JSON body
`{"code": 21211, "message": ..., "more_info": ..., "status": 400}`); a refusal of the account (credentials,
suspension, a sender not of this account) is account-level: the channel stops for the tick.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import httpx
from pydantic import Field, SecretStr, model_validator

from .base import DeliveryResult, HttpUrl, Message, Seconds, Settings, empty_param, inside_window, secret
from .http import ErrorCodes, HttpAdapter, json_body, provider_code

# Error codes and what they mean. Source: Twilio's error dictionary, one page per code at
# https://www.twilio.com/docs/api/errors/<code> (e.g. /docs/api/errors/21211).
# Refusals of the account itself (credentials, an account suspended, a sender not of this account): no
# message of the channel would get past them, so they stop the channel instead of failing each contact.
ACCOUNT = {
    10001: "the account is not active (suspended: balance, or a policy review)",
    20003: "authentication failed: check account_sid and auth_token",
    20005: "the account is not active (funds, or a trial not activated)",
    20404: "not found: check account_sid (and messaging_service_sid)",
    21212: "invalid 'From' phone number: check `from`",
    21660: "the 'From' number does not belong to this account: check `from`",
}
PERMANENT = {
    21211: "invalid 'To' phone number",
    21214: "'To' phone number cannot be reached",
    21215: "no permission to call this region (Geo Permissions)",
    21216: "call blocked by Twilio",
    21217: "'To' phone number does not appear to be valid",
    21219: "'To' phone number is not verified (trial account)",
    21401: "invalid phone number",
    21408: "no permission to send to this region (Geo Permissions)",
    21602: "message body is required",
    21606: "'From' is not a message-capable Twilio number for this destination",
    21608: "'To' phone number is not verified (trial account)",
    21612: "'To' phone number is not reachable from this sender",
    21614: "'To' phone number is not a mobile number",
    21617: "message body exceeds 1600 characters",
    21635: "'To' phone number is a landline",
    63016: "WhatsApp: free-form message outside the 24-hour window; send a template",
    63024: "WhatsApp: invalid message recipient",
}
# Throughput limits are transient: Twilio's pages for each say to slow down and send again later.
# 30001 and 14107 usually reach the status callback after the message was created, not the request.
TRANSIENT = {
    14107: "send rate limit between these two numbers exceeded (blocked for 30 seconds)",
    20429: "too many requests",
    20500: "Twilio internal error",
    20503: "Twilio service unavailable",
    21611: "the 'From' number's queue is full (10 hours of messages): slow down",
    22005: "call queue full (24 hours of calls)",
    30001: "queue overflow: too many messages too quickly",
    63017: "account rate limit exceeded",
    63018: "WhatsApp rate limit exceeded",
    63038: "account daily message limit reached",
}
# the limits of the account or the sending number (not 14107, one pair of numbers): nothing else would go
THROTTLED = frozenset({20429, 21611, 22005, 30001, 63017, 63018, 63038})
CODES = ErrorCodes(PERMANENT, TRANSIENT,
                   opted_out={21610: "the recipient unsubscribed from this sender (replied STOP)"}, account=ACCOUNT,
                   throttled=THROTTLED)


MAX_BODY = 1600  # characters of `Body` Twilio takes (https://www.twilio.com/docs/api/errors/21617)


class TwilioSettings(Settings):
    account_sid: str
    auth_token: SecretStr
    from_: str | None = Field(None, alias="from")  # E.164 number (without `whatsapp:`)
    messaging_service_sid: str | None = None  # instead of `from`: Twilio picks the sender
    status_callback: HttpUrl | None = None  # URL Twilio calls with delivery status updates
    content_sids: dict[str, str] = {}  # WhatsApp: provider template name -> Content SID (HX...)
    base_url: HttpUrl = "https://api.twilio.com"
    timeout: Seconds = 10.0
    ca_file: str | None = None  # PEM file of a private CA to trust (default: SSL_CERT_FILE, else certifi's)

    @model_validator(mode="after")
    def _sender(self):
        if not self.from_ and not self.messaging_service_sid:
            raise ValueError("give `from` or `messaging_service_sid`")
        return self


class TwilioBase(HttpAdapter):
    """The Twilio REST API: the account's resource URLs, basic auth, and its error classification."""

    def client_options(self) -> dict:
        s = self.settings
        return {"base_url": s.base_url, "auth": httpx.BasicAuth(s.account_sid, secret(s.auth_token))}

    def resource(self, name: str) -> str:
        return f"/2010-04-01/Accounts/{quote(self.settings.account_sid, safe='')}/{name}.json"

    def create(self, name: str, form: dict) -> DeliveryResult:
        response = self.post(self.resource(name), data={k: v for k, v in form.items() if v is not None})
        if isinstance(response, DeliveryResult):
            return response
        body = json_body(response)
        if response.is_success:
            return DeliveryResult.sent(body.get("sid"))
        return self.failure(response, body)

    def failure(self, response: httpx.Response, body: dict) -> DeliveryResult:
        code, status = provider_code(body.get("code")), response.status_code
        if status == 401 or code == 20003:
            # the credentials themselves are never part of the message
            return DeliveryResult.account(str(code or f"http_{status}"), f"Twilio refused the credentials "
                                          f"(HTTP {status}): check account_sid and auth_token")
        message = self.scrub(str(body.get("message") or CODES.meaning(code) or f"Twilio answered HTTP {status}"))
        return self.by_code(response, CODES, code, message)


class TwilioChannel(TwilioBase):
    name = "twilio"
    supports_html = False
    Settings = TwilioSettings

    @property
    def supports_templates(self) -> bool:
        return bool(self.settings.content_sids)

    @property
    def free_text(self) -> bool:
        return not self.whatsapp()  # WhatsApp takes free text only inside the 24-hour window

    @classmethod
    def refuses(cls, channel: str, message: Message) -> DeliveryResult | None:
        if not message.recipient:
            return DeliveryResult.permanent("no_recipient", f"no phone number for {channel}")
        if channel == "whatsapp" and not message.template_name and not inside_window(message.metadata):
            # Twilio would take it (201 queued) and fail it later with 63016, which only the status callback
            # hears: the contact would read `sent` and never fall back
            return DeliveryResult.permanent("outside_24h_window", "free text is allowed only within 24 hours "
                                            "of the customer's last message; give the step a WhatsApp template "
                                            "(and its Content SID in content_sids)")
        if channel == "whatsapp" and (empty := empty_param(message)):
            return empty
        if not message.template_name and len(message.body) > MAX_BODY:
            # Twilio answers 21617; said here, `collect simulate --render` foresees it (a customer's many
            # invoices listed in one SMS)
            return DeliveryResult.permanent("body_too_long", f"the message is {len(message.body):,} characters "
                                            f"long and Twilio takes at most {MAX_BODY:,} (its error 21617)")
        return None

    def send(self, message: Message) -> DeliveryResult:
        if (refused := self.refuses(self.channel, message)) is not None:
            return refused
        form = {"To": self.address(message.recipient), "StatusCallback": self.settings.status_callback}
        form.update(self.sender())
        content = self.content(message)
        if isinstance(content, DeliveryResult):
            return content
        form.update(content)
        return self.create("Messages", form)

    def check(self, plan) -> list[str]:
        """What this configuration lacks for the policy `plan` (called by `collect run`/`serve` before the
        first tick): on the `whatsapp` channel, a Content SID for each WhatsApp template the policy sends
        on it; without one, each of its messages would fail for good (`no_content_sid`)."""
        if not self.whatsapp():
            return []
        steps = [step for stage in plan["stages"] for step in stage["steps"]]
        steps += [step for event in sorted(plan["events"]) for step in plan["events"][event]]
        missing: dict[str, list[str]] = {}  # template name -> the steps that send it
        for step in steps:
            if step["action"] != "send" or self.channel not in step["channels"] or not step["template"]:
                continue
            doc = (plan["templates"].get(step["template"]) or {}).get(self.channel)
            if doc and doc.get("kind") == "whatsapp" and doc["template_name"] not in self.settings.content_sids:
                missing.setdefault(doc["template_name"], []).append(step["id"])
        return [f"content_sids: no Content SID for the WhatsApp template '{name}' (sent by "
                f"{'step' if len(ids) == 1 else 'steps'} {', '.join(ids)}): Twilio cannot send it; add "
                f"{name}: HX... to content_sids" for name, ids in missing.items()]

    def whatsapp(self) -> bool:
        return self.channel == "whatsapp"

    def address(self, number: str) -> str:
        if self.whatsapp() and not number.startswith("whatsapp:"):
            return f"whatsapp:{number}"
        return number

    def sender(self) -> dict:
        s = self.settings
        if s.messaging_service_sid:
            return {"MessagingServiceSid": s.messaging_service_sid}
        return {"From": self.address(s.from_)}

    def content(self, message: Message) -> dict | DeliveryResult:
        """Body, or for a WhatsApp provider template its Content SID and variables."""
        if not message.template_name:
            return {"Body": message.body}
        sid = self.settings.content_sids.get(message.template_name)
        if sid:
            variables = {str(i): value for i, value in enumerate(message.params, start=1)}
            return {"ContentSid": sid, "ContentVariables": json.dumps(variables, ensure_ascii=False)}
        if self.whatsapp():
            return DeliveryResult.permanent("no_content_sid", f"no Content SID configured for the WhatsApp "
                                            f"template '{message.template_name}' (content_sids)")
        return {"Body": message.body}

"""The `whatsapp_cloud` adapter: Meta's WhatsApp Cloud API.

POST {base_url}/{phone_number_id}/messages with a bearer token and a JSON body. A message with a provider
template (`template_name`) is sent as a `template` message whose body parameters are the rendered
params, in order. WhatsApp lets a business send free text only inside the customer service window, 24
hours after the customer's last message: free text outside it is refused here, before any request,
as a permanent failure `outside_24h_window` (so the runner falls back to the next channel), instead of
being sent and failing with 131047. The contact key travels as `biz_opaque_callback_data`, which Meta
echoes in the status webhooks. A refusal of the token or of the business account (locked, unpaid,
blocked for policy, number not registered) is account-level: the channel stops for the tick and its
messages wait, instead of each failing for good.
"""

from __future__ import annotations

from urllib.parse import quote

import httpx
from pydantic import SecretStr

from .base import (WHATSAPP_WINDOW, DeliveryResult, HttpUrl, Message, Seconds, Settings, empty_param, inside_window,
                   secret)
from .http import ErrorCodes, HttpAdapter, json_body, provider_code, retry_after

WINDOW = WHATSAPP_WINDOW  # the customer service window (fixed by Meta, not a setting)

# Error codes. Source: WhatsApp Cloud API, "Error codes"
# https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes
TRANSIENT = {
    1: "API unknown error",
    2: "API service temporarily unavailable",
    4: "application request limit reached",
    80007: "WhatsApp Business Account rate limit reached",
    130429: "throughput rate limit reached",
    131000: "something went wrong at Meta",
    131016: "service unavailable",
    131048: "spam rate limit hit: too many messages were blocked or flagged",
    131056: "too many messages to this recipient (pair rate limit)",
    131057: "business account in maintenance mode",
    133004: "server temporarily unavailable",
}
# Refusals of the business account or its token, not of the message: every message would get the same
# answer until someone fixes the account (WhatsApp Manager, Business Support Home) or channels.yaml, so
# they stop the channel for the tick instead of failing each contact for good.
ACCOUNT = {
    0: "authentication failed: renew `token`",
    3: "the token lacks a capability or permission: check the system user's permissions",
    10: "permission denied: check the token's permissions",
    33: "phone_number_id does not exist or is not reachable with this token: check `phone_number_id`",
    190: "access token expired or invalid: renew `token`",
    368: "the business account is temporarily blocked for policy violations (see Business Support Home)",
    131005: "access denied: check the token's permissions",
    131031: "the business account is locked (policy violation, or a two-step PIN that does not match)",
    131042: "payment problem on the business account (eligibility): fix the payment method in WhatsApp Manager",
    131045: "the phone number's certificate is wrong: register the number again",
    133010: "the phone number is not registered on the Cloud API: register it",
    **{code: "permission not granted or removed: check the token's permissions" for code in range(200, 300)},
}
PERMANENT = {
    100: "invalid parameter",
    130497: "the business account may not message users in this country",  # HTTP 403, but per recipient
    131008: "required parameter missing",
    131009: "parameter value not valid",
    131021: "recipient cannot be the sender",
    131026: "message undeliverable (no WhatsApp account, old app, or terms not accepted)",
    131047: "more than 24 hours since the customer last replied: send a template",
    131049: "Meta chose not to deliver this marketing message (per-user limit)",
    131051: "unsupported message type",
    132000: "template parameter count does not match the template",
    132001: "template does not exist in this language",
    132005: "template text too long once the parameters are filled in",
    132007: "template violates the format character policy",
    132012: "template parameter format mismatch",
    132015: "template paused for low quality",
    132016: "template disabled for low quality",
    135000: "generic user error",
}
# the limits of the app, the business account or its number (not 131056, one recipient): nothing else would go
THROTTLED = frozenset({4, 80007, 130429, 131048})
CODES = ErrorCodes(PERMANENT, TRANSIENT, opted_out={131050: "the user stopped marketing messages from this business"},
                   account=ACCOUNT, throttled=THROTTLED)
AUTH = frozenset({0, 190})


class WhatsAppCloudSettings(Settings):
    phone_number_id: str
    token: SecretStr
    base_url: HttpUrl = "https://graph.facebook.com/v21.0"
    default_language: str = "en_US"  # template language when the message has none
    timeout: Seconds = 10.0
    ca_file: str | None = None  # PEM file of a private CA to trust (default: SSL_CERT_FILE, else certifi's)


class WhatsAppCloudChannel(HttpAdapter):
    name = "whatsapp_cloud"
    supports_html = False
    supports_templates = True
    free_text = False  # only inside the 24-hour customer service window
    Settings = WhatsAppCloudSettings

    def client_options(self) -> dict:
        return {"base_url": self.settings.base_url,
                "headers": {"Authorization": f"Bearer {secret(self.settings.token)}"}}

    @classmethod
    def refuses(cls, channel: str, message: Message) -> DeliveryResult | None:
        if not message.recipient:
            return DeliveryResult.permanent("no_recipient", f"no WhatsApp number for {channel}")
        if not message.template_name and not inside_window(message.metadata):
            return DeliveryResult.permanent("outside_24h_window", "free text is allowed only within 24 hours "
                                            "of the customer's last message; give the step a WhatsApp template")
        return empty_param(message)

    def send(self, message: Message) -> DeliveryResult:
        if (refused := self.refuses(self.channel, message)) is not None:
            return refused
        path = f"/{quote(self.settings.phone_number_id, safe='')}/messages"
        response = self.post(path, json=self.payload(message))
        if isinstance(response, DeliveryResult):
            return response
        body = json_body(response)
        if response.is_success:
            sent = body.get("messages")  # accepted: a malformed body must not make it look failed and go again
            first = sent[0] if isinstance(sent, list) and sent and isinstance(sent[0], dict) else {}
            return DeliveryResult.sent(first.get("id"))
        error = body.get("error") or {}
        return self.failure(response, error if isinstance(error, dict) else {"message": str(error)})

    def payload(self, message: Message) -> dict:
        data = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": message.recipient,
                "biz_opaque_callback_data": message.key}
        if not message.template_name:
            return {**data, "type": "text", "text": {"body": message.body, "preview_url": False}}
        template = {"name": message.template_name, "language": {"code": self.language(message)}}
        if message.params:
            template["components"] = [{"type": "body", "parameters": [{"type": "text", "text": p}
                                                                      for p in message.params]}]
        return {**data, "type": "template", "template": template}

    def language(self, message: Message) -> str:
        code = message.template_language or message.language or self.settings.default_language
        return code.replace("-", "_")  # Meta writes locales with an underscore: es_MX

    def failure(self, response: httpx.Response, error: dict) -> DeliveryResult:
        code, status = provider_code(error.get("code")), response.status_code
        text = self.describe(code, error) or f"WhatsApp answered HTTP {status}"
        if code in AUTH or status == 401:
            return DeliveryResult.account(str(code if code is not None else "http_401"),
                                          f"WhatsApp refused the token ({text}): renew `token`")
        if code in CODES.account:  # Meta's message, and what to do about it
            hint = CODES.account[code]
            return DeliveryResult.account(str(code), text if hint in text else f"{text}: {hint}",
                                          retry_after(response))
        return self.by_code(response, CODES, code, text)

    def describe(self, code, error: dict) -> str:
        data = error.get("error_data")
        details = data.get("details") if isinstance(data, dict) else None
        parts = [error.get("message") or CODES.meaning(code), details,
                 f"fbtrace_id {error['fbtrace_id']}" if error.get("fbtrace_id") else None]
        return self.scrub("; ".join(str(p) for p in parts if p))

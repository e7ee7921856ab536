"""The `whatsapp_cloud` adapter: Meta's WhatsApp Cloud API.

POST {base_url}/{phone_number_id}/messages with a bearer token and a JSON body. A message with a provider
template (`template_name`) is sent as a `template` message whose body parameters are the rendered
params, in order. WhatsApp lets a business send free text only inside the customer service window, 24
hours after the customer's last message: free text outside it is refused here, before any request,
as a permanent failure `outside_24h_window` (so the runner falls back to the next channel), instead of
being sent and failing with 131047. The contact key travels as `biz_opaque_callback_data`, which Meta
echoes in the status webhooks.
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import quote

import httpx
from pydantic import SecretStr

from .base import DeliveryResult, HttpUrl, Message, Seconds, Settings, moment, secret
from .http import ErrorCodes, HttpAdapter, json_body

WINDOW = dt.timedelta(hours=24)  # the customer service window (fixed by Meta, not a setting)

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
PERMANENT = {
    0: "authentication failed: check token",
    3: "the token lacks a capability or permission",
    10: "permission denied",
    33: "phone_number_id does not exist or is not reachable with this token",
    100: "invalid parameter",
    190: "access token expired or invalid",
    200: "permission not granted",
    368: "temporarily blocked for policy violations",
    131005: "access denied",
    131008: "required parameter missing",
    131009: "parameter value not valid",
    131021: "recipient cannot be the sender",
    131026: "message undeliverable (no WhatsApp account, old app, or terms not accepted)",
    131031: "business account locked",
    131042: "payment problem on the business account",
    131045: "phone number certificate problem",
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
    133010: "phone number not registered on the Cloud API",
    135000: "generic user error",
}
CODES = ErrorCodes(PERMANENT, TRANSIENT, opted_out={131050: "the user stopped marketing messages from this business"})
AUTH = frozenset({0, 190})


class WhatsAppCloudSettings(Settings):
    phone_number_id: str
    token: SecretStr
    base_url: HttpUrl = "https://graph.facebook.com/v21.0"
    default_language: str = "en_US"  # template language when the message has none
    timeout: Seconds = 10.0


def inside_window(metadata: dict) -> bool:
    """Did the customer write to us in the last 24 hours (as of metadata["now"], else the clock)?"""
    try:
        last = moment(metadata.get("last_inbound_at"))
        now = moment(metadata.get("now")) or dt.datetime.now(dt.timezone.utc)
    except (TypeError, ValueError):
        return False  # unreadable: we cannot show the window is open, so it is not
    return last is not None and now - last < WINDOW


class WhatsAppCloudChannel(HttpAdapter):
    name = "whatsapp_cloud"
    supports_html = False
    supports_templates = True
    free_text = False  # only inside the 24-hour customer service window
    Settings = WhatsAppCloudSettings

    def client_options(self) -> dict:
        return {"base_url": self.settings.base_url,
                "headers": {"Authorization": f"Bearer {secret(self.settings.token)}"}}

    def send(self, message: Message) -> DeliveryResult:
        if not message.recipient:
            return DeliveryResult.permanent("no_recipient", f"no WhatsApp number for {self.channel}")
        if not message.template_name and not inside_window(message.metadata):
            return DeliveryResult.permanent("outside_24h_window", "free text is allowed only within 24 hours "
                                            "of the customer's last message; give the step a WhatsApp template")
        path = f"/{quote(self.settings.phone_number_id, safe='')}/messages"
        response = self.post(path, json=self.payload(message))
        if isinstance(response, DeliveryResult):
            return response
        body = json_body(response)
        if response.is_success:
            sent = body.get("messages") or [{}]
            return DeliveryResult.sent(sent[0].get("id"))
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
        code, status = error.get("code"), response.status_code
        text = self.describe(code, error) or f"WhatsApp answered HTTP {status}"
        if code in AUTH or status == 401:
            return DeliveryResult.permanent(str(code if code is not None else "http_401"),
                                            f"WhatsApp refused the token ({text}): renew `token`")
        return self.by_code(response, CODES, code, text)

    def describe(self, code, error: dict) -> str:
        data = error.get("error_data")
        details = data.get("details") if isinstance(data, dict) else None
        parts = [error.get("message") or CODES.meaning(code), details,
                 f"fbtrace_id {error['fbtrace_id']}" if error.get("fbtrace_id") else None]
        return self.scrub("; ".join(str(p) for p in parts if p))

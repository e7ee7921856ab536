"""The `webhook` adapter: the message as a signed JSON POST to another system (an ERP, a CRM's task queue).

The body is the message as JSON (for agent tasks and letters, whatever their metadata carries). The
receiver checks `X-Collect-Signature: sha256=<hex HMAC-SHA256 of the exact body bytes with the secret>`
before trusting it, and uses `Idempotency-Key` (the contact key) to process a repeated delivery once:
the runner may deliver the same contact again after a crash or a timeout.
"""

from __future__ import annotations

import hashlib
import hmac
import json

from pydantic import SecretStr

from .base import DeliveryResult, HttpUrl, Message, Seconds, Settings, message_dict, secret
from .http import HttpAdapter, json_body


class WebhookSettings(Settings):
    url: HttpUrl
    secret: SecretStr  # shared with the receiver, for the HMAC signature
    headers: dict[str, SecretStr] = {}  # extra headers, e.g. {Authorization: "Bearer ${CRM_TOKEN}"}
    timeout: Seconds = 10.0


def body_bytes(message: Message) -> bytes:
    """Canonical JSON (sorted keys, no spaces) so that a repeated delivery is byte-for-byte the same."""
    return json.dumps(message_dict(message), ensure_ascii=False, sort_keys=True, separators=(",", ":"),
                      default=str).encode("utf-8")


def signature(body: bytes, key: str) -> str:
    return "sha256=" + hmac.new(key.encode("utf-8"), body, hashlib.sha256).hexdigest()


class WebhookChannel(HttpAdapter):
    name = "webhook"
    supports_html = True
    supports_templates = True
    free_text = True
    dedupes = True  # the body carries Idempotency-Key: the receiver drops a key it has had
    Settings = WebhookSettings

    def client_options(self) -> dict:
        return {"headers": {name: secret(value) for name, value in self.settings.headers.items()}}

    def send(self, message: Message) -> DeliveryResult:
        body = body_bytes(message)
        headers = {"Content-Type": "application/json", "Idempotency-Key": message.key,
                   "X-Collect-Signature": signature(body, secret(self.settings.secret))}
        response = self.post(self.settings.url, content=body, headers=headers)
        if isinstance(response, DeliveryResult):
            return response
        if response.is_success:
            answer = json_body(response).get("id")
            return DeliveryResult.sent(str(answer) if answer is not None else message.key)
        status = response.status_code
        if status in (401, 403):
            return DeliveryResult.permanent(f"http_{status}", f"{self.host(self.settings.url)} refused the "
                                            f"request (HTTP {status}): check `secret` and `headers`")
        return self.by_status(response, f"http_{status}", f"{self.host(self.settings.url)} answered HTTP "
                                                           f"{status}{self.reason(response)}")

    def reason(self, response) -> str:
        """A short excerpt of the receiver's answer, which may explain a 4xx."""
        text = " ".join(response.text.split())[:200]
        return f": {self.scrub(text)}" if text else ""

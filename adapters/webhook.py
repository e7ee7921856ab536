"""The `webhook` adapter: the message as a signed JSON POST to another system (an ERP, a CRM's task queue).

The body is the message as JSON (for agent tasks and letters, whatever their metadata carries). The
receiver checks `X-Collect-Signature: sha256=<hex HMAC-SHA256 of the exact body bytes with the secret>`
before trusting it, and uses `Idempotency-Key` to process a repeated delivery once: the runner may
deliver the same contact again after a crash or a timeout. The header is the contact key when that is
printable ASCII (an HTTP header cannot carry more), else the hex SHA-256 of the key's UTF-8 bytes; the
same key always gives the same header, and the body's `key` is the key as it is.

409 Conflict is what a receiver answers while it still processes an earlier request with the same
Idempotency-Key (draft-ietf-httpapi-idempotency-key-header, "Error Scenarios"): exactly the retry
collect makes after its own timeout, so it is transient. 422 (the same key with another body) is not.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re

from pydantic import SecretStr, field_validator

from .base import DeliveryResult, HttpUrl, Message, Seconds, Settings, json_value, message_dict, secret
from .http import HttpAdapter, json_body, retry_after

# Printable ASCII but `"` and `\`: what an RFC 8941 sf-string holds between its quotes; with no space at
# either end (a header value loses it), a key of these characters goes in the header as it is.
_HEADER_SAFE = re.compile(r"[!#-\[\]-~](?:[ !#-\[\]-~]*[!#-\[\]-~])?")


class WebhookSettings(Settings):
    url: HttpUrl
    secret: SecretStr  # shared with the receiver, for the HMAC signature
    headers: dict[str, SecretStr] = {}  # extra headers, e.g. {Authorization: "Bearer ${CRM_TOKEN}"}
    timeout: Seconds = 10.0
    ca_file: str | None = None  # PEM file of a private CA to trust (default: SSL_CERT_FILE, else certifi's)

    @field_validator("headers")
    @classmethod
    def _ascii(cls, headers):
        """HTTP sends header names and values as ASCII: another character failed every delivery."""
        bad = sorted(name for name, value in headers.items() if not (name + secret(value)).isascii())
        if bad:
            raise ValueError(f"headers {', '.join(bad)}: an HTTP header holds only ASCII characters")
        return headers


def body_bytes(message: Message) -> bytes:
    """Canonical JSON (sorted keys, no spaces) so that a repeated delivery is byte-for-byte the same."""
    return json.dumps(message_dict(message), ensure_ascii=False, sort_keys=True, separators=(",", ":"),
                      default=json_value).encode("utf-8")


def idempotency_key(key: str) -> str:
    """The Idempotency-Key header for a contact key: the key itself when it is printable ASCII without
    `"` or `\\`, else the hex SHA-256 of its UTF-8 bytes (an invoice id `Nº001-5` cannot go in a header)."""
    if _HEADER_SAFE.fullmatch(key):
        return key
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


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
        headers = {"Content-Type": "application/json", "Idempotency-Key": idempotency_key(message.key),
                   "X-Collect-Signature": signature(body, secret(self.settings.secret))}
        response = self.post(self.settings.url, content=body, headers=headers)
        if isinstance(response, DeliveryResult):
            return response
        if response.is_success:
            answer = json_body(response).get("id")
            return DeliveryResult.sent(str(answer) if answer is not None else message.key)
        status = response.status_code
        if status in (401, 403):
            return DeliveryResult.account(f"http_{status}", f"{self.host(self.settings.url)} refused the "
                                          f"request (HTTP {status}): check `secret` and `headers`")
        if status == 409:  # the receiver still processes an earlier request with this key: ask again later
            return DeliveryResult.transient("http_409", f"{self.host(self.settings.url)} is still processing "
                                            f"this key (HTTP 409){self.reason(response)}", retry_after(response))
        return self.by_status(response, f"http_{status}", f"{self.host(self.settings.url)} answered HTTP "
                                                           f"{status}{self.reason(response)}")

    def reason(self, response) -> str:
        """A short excerpt of the receiver's answer, which may explain a 4xx."""
        text = " ".join(response.text.split())[:200]
        return f": {self.scrub(text)}" if text else ""

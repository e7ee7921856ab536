"""What the HTTP providers share: one httpx client per adapter, explicit timeouts, and the classification
that does not depend on the provider (network trouble, 429 and 5xx are transient; 401/403 permanent).

Error strings name the host, never the full URL (Twilio puts the account SID in the path) and never a
header (they carry the credentials); whatever text comes from an exception is scrubbed of the
adapter's secrets as well.
"""

from __future__ import annotations

import datetime as dt
import functools
import ssl
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

import httpx

from .base import MAX_WAIT, Adapter, DeliveryResult

# Statuses worth trying again later (RFC 9110: timeout, too early, too many requests; and 5xx).
RETRYABLE = frozenset({408, 425, 429})


class HttpAdapter(Adapter):
    """Subclasses give `client_options()` (base_url, auth, headers) and their settings a `timeout`."""

    def __init__(self, channel: str, **settings):
        super().__init__(channel, **settings)
        timeout = self.settings.timeout
        # connecting should never take the whole budget: a dead host fails fast and is retried later
        self.client = httpx.Client(timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)), verify=tls_context(),
                                   follow_redirects=False, **self.client_options())

    def client_options(self) -> dict:
        return {}

    def close(self) -> None:
        self.client.close()

    def post(self, url: str, **kwargs) -> httpx.Response | DeliveryResult:
        """The provider's response, or a transient result when the request did not get an answer."""
        try:
            return self.client.post(url, **kwargs)
        except httpx.TimeoutException as exc:
            # a read timeout may hide a message the provider did accept; the runner's retry may then
            # repeat it, which for a reminder is better than losing it
            return DeliveryResult.transient("timeout", f"no answer from {self.host(url)} in time "
                                                       f"({type(exc).__name__})")
        except httpx.HTTPError as exc:
            return DeliveryResult.transient("network", f"cannot reach {self.host(url)}: "
                                                       f"{type(exc).__name__}: {self.scrub(str(exc))}")

    def host(self, url: str) -> str:
        return self.client.base_url.join(url).host or "the provider"

    def by_status(self, response: httpx.Response, code: str, error: str) -> DeliveryResult:
        """The classification every provider shares, for errors its own table does not know."""
        status = response.status_code
        if status in RETRYABLE or status >= 500:
            return DeliveryResult.transient(code, error, retry_after(response))
        return DeliveryResult.permanent(code, error)

    def by_code(self, response: httpx.Response, codes: "ErrorCodes", code, error: str) -> DeliveryResult:
        """Classify by the provider's own error code, then by HTTP status for a code the table lacks."""
        error_code = str(code if code is not None else f"http_{response.status_code}")
        if code in codes.opted_out:
            return DeliveryResult.permanent(error_code, error, opted_out=True)
        if code in codes.transient:
            return DeliveryResult.transient(error_code, error, retry_after(response))
        if code in codes.permanent:
            return DeliveryResult.permanent(error_code, error)
        return self.by_status(response, error_code, error)


@dataclass(frozen=True)
class ErrorCodes:
    """A provider's error codes by outcome, each with a short meaning for people."""

    permanent: dict = field(default_factory=dict)
    transient: dict = field(default_factory=dict)
    opted_out: dict = field(default_factory=dict)  # permanent, and the recipient unsubscribed

    def meaning(self, code) -> str | None:
        return self.opted_out.get(code) or self.permanent.get(code) or self.transient.get(code)


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One certificate store for every client: loading it takes longer than making the client."""
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


def retry_after(response: httpx.Response, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (RFC 9110 10.2.3), at most MAX_WAIT.

    Only the two forms the RFC allows: delay-seconds (digits only; float() would also take "inf" or
    "1e12") or an HTTP date. Anything else is no advice at all."""
    value = (response.headers.get("Retry-After") or "").strip()
    if value.isascii() and value.isdigit():
        return min(float(value), MAX_WAIT)  # float(): int() refuses over 4300 digits
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return min(max(0.0, (when - (now or dt.datetime.now(dt.timezone.utc))).total_seconds()), MAX_WAIT)


def json_body(response: httpx.Response) -> dict:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}

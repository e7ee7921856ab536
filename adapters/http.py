"""What the HTTP providers share: one httpx client per adapter, explicit timeouts, the certificates to
trust, and the classification that does not depend on the provider (network trouble, 429 and 5xx are
transient; 401/403 mean the channel's credentials are refused, an account-level failure).

Error strings name the host, never the full URL (Twilio puts the account SID in the path) and never a
header (they carry the credentials); whatever text comes from an exception is scrubbed of the
adapter's secrets as well.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import ssl
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

import httpx

from .base import MAX_WAIT, Adapter, DeliveryResult

# Statuses worth trying again later (RFC 9110: timeout, too early, too many requests; and 5xx).
RETRYABLE = frozenset({408, 425, 429})
# Statuses that refuse the credentials: every message of the channel would get the same answer.
REFUSED = frozenset({401, 403})
# A TLS connection the other end closed or reset during the handshake (a server at its connection limit,
# a load balancer draining): a transport hiccup like a reset TCP connection, not a settings problem.
TLS_DROPPED = (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError)


class CaFileError(OSError):
    """The CA certificates to trust cannot be read: no connection can be verified."""


class HttpAdapter(Adapter):
    """Subclasses give `client_options()` (base_url, auth, headers) and their settings a `timeout` and a
    `ca_file`. The client is made at the first request: that is when the CA file is read, as the smtp
    adapter does."""

    def __init__(self, channel: str, **settings):
        super().__init__(channel, **settings)
        self._client: httpx.Client | None = None

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            timeout = self.settings.timeout
            # connecting should never take the whole budget: a dead host fails fast and is retried later
            self._client = httpx.Client(timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
                                        verify=tls_context(getattr(self.settings, "ca_file", None)),
                                        follow_redirects=False, **self.client_options())
        return self._client

    def client_options(self) -> dict:
        return {}

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def post(self, url: str, **kwargs) -> httpx.Response | DeliveryResult:
        """The provider's response, or a result when the request did not get an answer: transient for
        network trouble, account-level when TLS cannot work with these settings."""
        try:
            client = self.client
        except CaFileError as exc:
            return DeliveryResult.account("tls", self.scrub(str(exc)))
        try:
            return client.post(url, **kwargs)
        except httpx.TimeoutException as exc:
            # a read timeout may hide a message the provider did accept; the runner's retry may then
            # repeat it, which for a reminder is better than losing it
            return DeliveryResult.transient("timeout", f"no answer from {self.host(url)} in time "
                                                       f"({type(exc).__name__})")
        except httpx.HTTPError as exc:
            tls = tls_failure(exc)
            if tls is not None and not isinstance(tls, TLS_DROPPED):
                return DeliveryResult.account("tls", self.tls_error(url, tls))
            return DeliveryResult.transient("network", f"cannot reach {self.host(url)}: "
                                                       f"{type(exc).__name__}: {self.scrub(str(exc))}")

    def tls_error(self, url: str, exc: ssl.SSLError) -> str:
        """Why TLS with the provider cannot work, and what to change: no retry would get past it."""
        host = self.host(url)
        if isinstance(exc, ssl.SSLCertVerificationError):
            return (f"cannot verify the TLS certificate of {host} ({self.scrub(str(exc.verify_message or exc))}): "
                    f"if a private CA signed it, give that CA's PEM file as `ca_file` (or set SSL_CERT_FILE)")
        return (f"TLS with {host} failed ({self.scrub(exc.reason or str(exc))}): check that the URL's port "
                f"speaks https")

    def host(self, url: str) -> str:
        base = self.client_options().get("base_url")
        return (httpx.URL(base).join(url) if base else httpx.URL(url)).host or "the provider"

    def by_status(self, response: httpx.Response, code: str, error: str) -> DeliveryResult:
        """The classification every provider shares, for errors its own table does not know."""
        status = response.status_code
        if status in RETRYABLE or status >= 500:  # 429: the sender sends too much, whatever the message
            return DeliveryResult.transient(code, error, retry_after(response), throttled=status == 429)
        if status in REFUSED:
            return DeliveryResult.account(code, error, retry_after(response))
        return DeliveryResult.permanent(code, error)

    def by_code(self, response: httpx.Response, codes: "ErrorCodes", code, error: str) -> DeliveryResult:
        """Classify by the provider's own error code, then by HTTP status for a code the table lacks."""
        error_code = str(code if code is not None else f"http_{response.status_code}")
        if code in codes.account:
            return DeliveryResult.account(error_code, error, retry_after(response))
        if code in codes.opted_out:
            return DeliveryResult.permanent(error_code, error, opted_out=True)
        if code in codes.transient:
            return DeliveryResult.transient(error_code, error, retry_after(response), throttled=code in codes.throttled)
        if code in codes.permanent:
            return DeliveryResult.permanent(error_code, error)
        return self.by_status(response, error_code, error)


@dataclass(frozen=True)
class ErrorCodes:
    """A provider's error codes by outcome, each with a short meaning for people."""

    permanent: dict = field(default_factory=dict)
    transient: dict = field(default_factory=dict)
    opted_out: dict = field(default_factory=dict)  # permanent, and the recipient unsubscribed
    account: dict = field(default_factory=dict)  # the channel's credentials or account: nothing can be sent
    throttled: frozenset = frozenset()  # transient codes that rate-limit the sender, not one recipient

    def meaning(self, code) -> str | None:
        return (self.account.get(code) or self.opted_out.get(code) or self.permanent.get(code)
                or self.transient.get(code))


def tls_context(ca_file: str | None = None) -> ssl.SSLContext:
    """The certificates a client trusts: `ca_file` when the channel names one, else those of
    SSL_CERT_FILE or SSL_CERT_DIR when set (as httpx itself, and OpenSSL, read them), else certifi's.
    One store per source for every client: loading it takes longer than making the client. Raises
    CaFileError when the certificates cannot be read."""
    cert_file = os.environ.get("SSL_CERT_FILE") or None
    cert_dir = os.environ.get("SSL_CERT_DIR") or None
    return _tls_context(ca_file or None, None if ca_file else cert_file, None if ca_file or cert_file else cert_dir)


@functools.lru_cache(maxsize=16)
def _tls_context(ca_file: str | None, cert_file: str | None, cert_dir: str | None) -> ssl.SSLContext:
    if ca_file or cert_file or cert_dir:
        where = (f"{ca_file} (`ca_file`)" if ca_file else f"{cert_file} (SSL_CERT_FILE)" if cert_file
                 else f"{cert_dir} (SSL_CERT_DIR)")
        try:
            return ssl.create_default_context(cafile=ca_file or cert_file, capath=cert_dir)
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise CaFileError(f"cannot read the CA certificates in {where}: {type(exc).__name__}: "
                              f"{getattr(exc, 'strerror', None) or exc}") from exc
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


tls_context.cache_clear = _tls_context.cache_clear  # type: ignore[attr-defined]  # forget the stores read


def tls_failure(exc: BaseException) -> ssl.SSLError | None:
    """The TLS error behind an httpx error (httpx wraps httpcore's, which wraps the ssl module's)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, ssl.SSLError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


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


def provider_code(value) -> int | str | None:
    """A provider's error code as its answer gave it, or None when it is no number or text (a list, a
    mapping): an answer that malformed is classified by its HTTP status alone, never an adapter crash."""
    return value if isinstance(value, (int, str)) and not isinstance(value, bool) else None


def json_body(response: httpx.Response) -> dict:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}

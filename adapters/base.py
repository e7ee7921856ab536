"""The channel adapter interface (SPEC 6): `Message` in, `DeliveryResult` out, one attempt per call.

A channel receives a rendered `Message` carrying the contact's unique key as its idempotency key and
returns a `DeliveryResult`. `send` makes exactly one attempt and never sleeps: the runner decides when
to try again (from `status == "transient"` and `retry_after`), when to fall back to the next
channel (`"permanent"`), and when to leave the whole channel alone for the tick (`account_level`: the
credentials or the account are refused, which no other message would get past). Adapters register
by name through the entry point group `collect.channels` (see registry.py); the built-in ones are
registered the same way in pyproject.toml.

This module imports nothing from the rest of collect, so a third-party channel can depend on it alone.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field, fields
from typing import Annotated, ClassVar, Literal, Protocol, runtime_checkable
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, SecretStr

# Settings whose values are secrets wherever they appear (also nested, e.g. webhook headers).
SECRET_KEYS = frozenset({"password", "token", "auth_token", "secret", "api_key", "headers"})
MASK = "***"
# The longest wait before trying a message again, whatever a provider's Retry-After or the backoff says:
# a day is longer than any real throttling, and a bounded wait can never overflow a date.
MAX_WAIT = 86400.0


@dataclass(frozen=True)
class Message:
    key: str  # idempotency key: the same key is never delivered twice
    channel: str
    customer_id: str
    invoice_ids: tuple[str, ...]
    recipient: str | None  # address on the channel (email, E.164 phone), None for letters/tasks
    subject: str | None = None
    body: str = ""
    html: str | None = None
    params: tuple[str, ...] = ()  # rendered template parameters, in order ({{1}}, {{2}}, ...)
    template: str | None = None  # the policy's template name (for the record)
    metadata: dict = field(default_factory=dict)  # step, stage, plan_hash, webhook; last_inbound_at, now
    language: str | None = None  # the customer's language: "es", "es-PE", "en_US"
    template_name: str | None = None  # provider-side template (WhatsApp): absent means free text
    template_language: str | None = None  # the provider template's language code, e.g. "es" or "es_MX"


Status = Literal["sent", "transient", "permanent"]


@dataclass(frozen=True)
class DeliveryResult:
    status: Status  # sent | transient (try again later) | permanent (fall back, never retry)
    provider_id: str | None = None
    error_code: str | None = None  # the provider's code ("21211", "131047", "550") or ours ("network")
    error: str | None = None  # for people; never carries a secret
    retry_after: float | None = None  # seconds the provider asked us to wait (HTTP Retry-After)
    opted_out: bool = False  # the provider says the recipient unsubscribed from this sender
    # the failure is the channel's, not the message's (credentials refused, account locked or unpaid, a
    # server certificate nobody trusts): nothing can go out on this channel until someone fixes it. The
    # runner stops the channel for the tick and the message waits, without using an attempt. Its status
    # is `permanent`, so that code which does not know this field never retries it in a loop.
    account_level: bool = False
    # a transient failure that is the sender's, not the message's: a rate limit of the account or the
    # sending number (HTTP 429). Any other message would get the same answer now, so the runner sends
    # nothing more on the channel this tick; its messages wait at least `retry_after`, no attempt used.
    throttled: bool = False

    @classmethod
    def sent(cls, provider_id) -> "DeliveryResult":
        """Accepted. `provider_id` as the provider's answer gave it: text or a number is the id, anything
        else (a list, null) is none we can read: the message went all the same, and must not go again."""
        return cls("sent", provider_id=readable_id(provider_id))

    @classmethod
    def transient(cls, code: str, error: str, retry_after: float | None = None,
                  throttled: bool = False) -> "DeliveryResult":
        return cls("transient", error_code=code, error=error, retry_after=retry_after, throttled=throttled)

    @classmethod
    def permanent(cls, code: str, error: str, opted_out: bool = False) -> "DeliveryResult":
        return cls("permanent", error_code=code, error=error, opted_out=opted_out)

    @classmethod
    def account(cls, code: str, error: str, retry_after: float | None = None) -> "DeliveryResult":
        """The channel cannot send anything now (see `account_level`); `error` says what to fix."""
        return cls("permanent", error_code=code, error=error, retry_after=retry_after, account_level=True)


@runtime_checkable
class Channel(Protocol):
    name: str  # the adapter's registered name (smtp, twilio, ...)
    supports_html: bool  # sends message.html as such
    supports_templates: bool  # sends message.template_name as a provider template
    free_text: bool  # may send message.body without a provider template
    # optional, default False: the receiving end drops a message whose key it has had (the file adapter;
    # a webhook with its Idempotency-Key), so a crash that sends it again is harmless
    dedupes: bool

    def send(self, message: Message) -> DeliveryResult: ...


# -- settings -------------------------------------------------------------------------------------

_SECONDS = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def seconds(value) -> float:
    """A duration in seconds from 30, 2.5, "30s", "500ms", "5m", "1h" or "1d"."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 10s or 2m")
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    match = _SECONDS.match(text.removeprefix("-"))
    if not match:
        # no value in the message: it may have come from ${ENV}, and validation errors get printed
        raise ValueError("not a duration; write 10s, 500ms, 2m or 1h")
    # `-5s` is a duration, negative: the caller says why it cannot be, as it does for -5
    return float(match.group(1)) * _UNIT[match.group(2) or "s"] * (-1 if text.startswith("-") else 1)


def _timeout(value) -> float:
    """A timeout: a duration of more than 0 (0 would make a socket non-blocking, a negative one invalid)."""
    found = seconds(value)
    if not found > 0:
        raise ValueError("a timeout must be more than 0, e.g. 10s")
    return found


Seconds = Annotated[float, BeforeValidator(_timeout)]  # the adapters' timeouts


def http_url(value: str) -> str:
    """An http(s) URL with a host; a typo here would otherwise look like a network failure forever."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("expected an http:// or https:// URL")
    return value


HttpUrl = Annotated[str, AfterValidator(http_url)]


class Settings(BaseModel):
    """Base of each adapter's channels.yaml settings: unknown keys are errors, secrets are SecretStr
    (so repr() and model_dump() show `**********`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, hide_input_in_errors=True)


class Adapter:
    """Optional base for channel classes: validated settings, a safe repr, close().

    Subclasses set `name`, the capability flags and `Settings`; the constructor takes the channel name
    (email, sms, ...) and the channel's settings from channels.yaml, ${ENV} references already expanded.
    """

    name: ClassVar[str] = ""
    supports_html: ClassVar[bool] = False
    supports_templates: ClassVar[bool] = False
    free_text: ClassVar[bool] = True
    dedupes: ClassVar[bool] = False
    Settings: ClassVar[type[Settings]] = Settings

    def __init__(self, channel: str, **settings):
        self.channel = channel
        self.settings = self.Settings(**settings)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} channel={self.channel!r}>"

    @classmethod
    def refuses(cls, channel: str, message: Message) -> DeliveryResult | None:
        """The permanent failure this adapter returns for the message on `channel` without calling anyone
        (no address, free WhatsApp text outside the 24-hour window, an empty template parameter), else
        None. From the message alone, no settings: `collect simulate --render` asks it without the
        channels' secrets, and `send` asks it first, so a simulation fails what a real send fails."""
        return None

    def secrets(self) -> list[str]:
        """The secret values in this adapter's settings, to keep them out of error strings."""
        return [s.get_secret_value() for s in _secret_leaves(self.settings) if s.get_secret_value()]

    def scrub(self, text: str) -> str:
        return redact(text, self.secrets())

    def close(self) -> None:
        """Release connections; the adapter must not be used afterwards."""


def _secret_leaves(value):
    if isinstance(value, SecretStr):
        yield value
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _secret_leaves(getattr(value, name))
    elif isinstance(value, dict):
        for item in value.values():
            yield from _secret_leaves(item)


# A secret shorter than this is masked only where it stands alone, not inside a longer word.
SHORT_SECRET = 4


def redact(text: str, secrets) -> str:
    """`text` with every secret replaced by ***, longest first so that a secret containing another is
    masked whole. Also the secret as Python escapes it (an HTTP library's error shows a header value as
    b'Bearer tok\\r'), so a secret with an odd character cannot slip past in an error message."""
    forms = {form for s in secrets if s for form in (s, repr(s)[1:-1], repr(s.encode("utf-8"))[2:-1])}
    for secret in sorted(forms, key=len, reverse=True):
        if len(secret) < SHORT_SECRET:  # masked inside words, `secret: s` would turn every https into http***
            text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(secret)}(?![A-Za-z0-9])", MASK, text)
        else:
            text = text.replace(secret, MASK)
    return text


def secret(value: SecretStr | None) -> str:
    return value.get_secret_value() if value is not None else ""


# -- helpers shared by adapters -------------------------------------------------------------------

def message_dict(message: Message) -> dict:
    """The message as JSON-ready data (file lines, webhook bodies). Shallow: asdict() deep-copies every
    value, which cost more than writing the line."""
    data = {f.name: getattr(message, f.name) for f in fields(message)}
    data["invoice_ids"] = list(message.invoice_ids)
    data["params"] = list(message.params)
    return data


def json_value(value) -> str:
    """`json.dumps`'s `default` for message data: dates and times in ISO 8601 (`2026-11-16T09:00:00-05:00`,
    which every JSON reader's date parser takes; str() would put a space for the T), else the text."""
    return value.isoformat() if isinstance(value, (dt.date, dt.time)) else str(value)


def frozen(message: Message) -> dict:
    """The message as JSON data (its date-times tagged), to be sent again exactly as it was (thawed)."""
    data = message_dict(message)
    data["metadata"] = {name: {"datetime": value.isoformat()} if isinstance(value, dt.datetime) else value
                        for name, value in message.metadata.items()}
    return data


def thawed(data: dict) -> Message:
    def value(v):
        return dt.datetime.fromisoformat(v["datetime"]) if isinstance(v, dict) and set(v) == {"datetime"} else v
    return Message(**{**data, "invoice_ids": tuple(data["invoice_ids"]), "params": tuple(data["params"]),
                      "metadata": {name: value(v) for name, v in data["metadata"].items()}})


def moment(value) -> dt.datetime | None:
    """An aware datetime from a datetime or an ISO 8601 string (naive ones are taken as UTC)."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if not isinstance(value, dt.datetime):
        raise ValueError(f"not a date-time: {value!r}")
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


# WhatsApp's customer service window (fixed by Meta, not a setting): free text only this long after the
# customer's last message, through any provider (Meta's Cloud API, Twilio)
WHATSAPP_WINDOW = dt.timedelta(hours=24)


def inside_window(metadata: dict) -> bool:
    """Did the customer write to us in the last 24 hours (as of metadata["now"], else the clock)?"""
    try:
        last = moment(metadata.get("last_inbound_at"))
        now = moment(metadata.get("now")) or dt.datetime.now(dt.timezone.utc)
    except (TypeError, ValueError):
        return False  # unreadable: we cannot show the window is open, so it is not
    return last is not None and now - last < WHATSAPP_WINDOW


def empty_param(message: Message) -> DeliveryResult | None:
    """WhatsApp refuses a template whose parameter is empty (a customer without a name): say which, and
    how to give it a value, instead of the provider's HTTP 400. None when every parameter has text."""
    empty = [n for n, param in enumerate(message.params, start=1) if not param.strip()]
    if not message.template_name or not empty:
        return None
    return DeliveryResult.permanent("empty_param", f"parameter {empty[0]} of the WhatsApp template "
                                    f"'{message.template_name}' is empty, and WhatsApp refuses empty parameters; "
                                    "give it a default in the policy: {{ customer.name | default(\"cliente\") }}")


def readable_id(value) -> str | None:
    """A provider's message id as text, or None when the answer holds none that reads as one."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None

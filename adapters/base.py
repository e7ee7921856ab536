"""The channel adapter interface (SPEC 6; provider adapters come with issue 5).

A channel receives a rendered `Message` carrying the contact's unique key as its idempotency key and
returns a `DeliveryResult`. Adapters register by name through the entry point group `collect.channels`;
the built-in ones are registered the same way in pyproject.toml.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


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
    params: tuple[str, ...] = ()
    template: str | None = None
    metadata: dict = field(default_factory=dict)


@dataclass(frozen=True)
class DeliveryResult:
    status: str  # sent | transient | permanent
    provider_id: str | None = None
    error_code: str | None = None
    error: str | None = None


class Channel(Protocol):
    name: str

    def send(self, message: Message) -> DeliveryResult: ...


def registry() -> dict[str, type]:
    """Adapter classes by name: built-ins and installed plugins (entry point group collect.channels)."""
    from importlib.metadata import entry_points

    from .file import FileChannel

    found: dict[str, type] = {"file": FileChannel}
    for ep in entry_points(group="collect.channels"):
        found.setdefault(ep.name, ep.load())
    return found

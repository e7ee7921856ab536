"""The execution plan: what a policy compiles to, as canonical JSON with a stable hash.

The plan is the contract between the compiler and everything that executes a policy (run, simulate,
explain): it holds canonical expression text, normalised durations (minutes) and windows (minutes after
local midnight), so that two spellings of one policy (YAML or text DSL, `7d` or `1w`) give the same
`plan_hash`. The hash is recorded on every contact, which ties each message to the policy that sent it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping

SCHEMA_VERSION = 1


def canonical_json(doc: Any) -> str:
    """Sorted keys, no insignificant whitespace, UTF-8 kept readable: the bytes that are hashed."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


@dataclass(frozen=True)
class Plan:
    """An immutable plan. `doc` is read-only (mappings are proxies, lists are tuples)."""

    doc: Mapping[str, Any]
    plan_hash: str

    @classmethod
    def from_doc(cls, doc: dict) -> "Plan":
        body = {**doc, "schema_version": SCHEMA_VERSION}
        body.pop("plan_hash", None)
        digest = hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()
        return cls(_freeze(body), digest)

    @classmethod
    def from_json(cls, text: str) -> "Plan":
        """Load a plan written by `collect compile -o`; the stored hash must match its content."""
        doc = json.loads(text)
        stored = doc.pop("plan_hash", None)
        plan = cls.from_doc(doc)
        if stored is not None and stored != plan.plan_hash:
            raise ValueError(f"plan_hash {stored} does not match the plan's content ({plan.plan_hash})")
        return plan

    def to_dict(self) -> dict:
        return {**_thaw(self.doc), "plan_hash": self.plan_hash}

    def to_json(self, indent: int | None = 2) -> str:
        if indent is None:
            return canonical_json(self.to_dict())
        return json.dumps(self.to_dict(), sort_keys=True, indent=indent, ensure_ascii=False)

    def __getitem__(self, key: str) -> Any:
        return self.doc[key]

    def steps(self):
        """Every step of the plan, stage steps first (in stage order), then event steps."""
        for stage in self.doc["stages"]:
            yield from stage["steps"]
        for event in sorted(self.doc["events"]):
            yield from self.doc["events"][event]

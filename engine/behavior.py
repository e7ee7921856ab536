"""Behavior models for `collect simulate --behavior FILE`: how customers respond to contacts.

A model is a small YAML file (documented in docs/simulate.md):

    pay_probability: 0.05          # chance that one sent contact leads to a payment
    by_channel: { whatsapp: 0.12, voice: 0.15, sms: 0.06, email: 0.04, letter: 0.08 }   # replaces it per channel
    by_stage:   { preventive: 1.2, late: 0.5 }   # multipliers by stage (or event type)
    by_segment: { risky: 0.5 }                  # multipliers when the customer's invoice is in the segment
    delay_days: [1, 5]             # the payment arrives this many days after the contact (uniform)
    partial_share: 0.2             # share of payments that are partial
    partial_fraction: 0.5          # a partial payment pays this fraction of the balance

Randomness is seeded per (seed, customer, step, invoice), not by processing order, so a run is
deterministic for a given `--seed` and one customer's luck does not depend on the others.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, ValidationError, field_validator

from .state import PAID_EPSILON, PaymentInfo, balance_at

SENDING = ("email", "sms", "whatsapp", "voice", "letter")


class BehaviorError(Exception):
    pass


def _problem(error: dict, located) -> str:
    """`FILE:LINE:COL: key: reason` for one pydantic error, at the key or value it is about."""
    from ..dsl.diagnostics import suggest
    from ..dsl.loader import plain_message

    loc = tuple(error["loc"])
    where = ".".join(map(str, loc))
    span = located.span(loc, prefer_key=error["type"] == "extra_forbidden")
    place = f"{span.file}:{span.line}:{span.col}"
    if error["type"] == "extra_forbidden":
        hint = suggest(str(loc[-1]), list(BehaviorSpec.model_fields))
        return f"{place}: {where}: unknown key" + (f" ({hint})" if hint else "")
    return f"{place}: {where}: {plain_message(error)}"


# strict: YAML's `true` is no number (lax pydantic reads it as 1); a strict float still takes 1 for 1.0
Chance = Annotated[StrictFloat, Field(ge=0, le=1)]
Multiplier = Annotated[StrictFloat, Field(ge=0)]
# a payment drawn further out than any simulation runs changes nothing, and one millions of days out
# overflows the calendar (year 9999) when it is dated: ten years, the limit of a policy's offsets too
MAX_DELAY_DAYS = 3650


class BehaviorSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    pay_probability: Chance = 0.05
    by_channel: dict[str, Chance] = {}
    by_stage: dict[str, Multiplier] = {}
    by_segment: dict[str, Multiplier] = {}
    delay_days: tuple[StrictInt, StrictInt] = (1, 5)
    partial_share: Chance = 0.0
    partial_fraction: StrictFloat = Field(0.5, gt=0, lt=1)

    @field_validator("by_channel")
    @classmethod
    def _sending(cls, value: dict) -> dict:
        # only a contact on a sending channel can lead to a payment: another name would do nothing
        from ..dsl.diagnostics import suggest

        for name in value:
            if name not in SENDING:
                hint = suggest(name, SENDING)
                raise ValueError(f"'{name}' is not a sending channel ({', '.join(SENDING)})"
                                 + (f" ({hint})" if hint else ""))
        return value

    @field_validator("delay_days", mode="before")
    @classmethod
    def _two_numbers(cls, value):
        if isinstance(value, (list, tuple)) and len(value) != 2:  # pydantic would say "Field required" of [1]
            raise ValueError(f"must be [fewest, most]: two whole numbers of days, such as [1, 5], not {list(value)}")
        return value

    @field_validator("delay_days")
    @classmethod
    def _delay(cls, value: tuple[int, int]) -> tuple[int, int]:
        if not 0 <= value[0] <= value[1]:  # a payment before its contact, or an empty range
            raise ValueError(f"must be [fewest, most] days with 0 <= fewest <= most, not {list(value)}")
        if value[1] > MAX_DELAY_DAYS:
            raise ValueError(f"must be at most {MAX_DELAY_DAYS} days (ten years), not {value[1]}")
        return value


class BehaviorModel:
    def __init__(self, spec: BehaviorSpec, seed: int):
        self.spec, self.seed = spec, seed
        self._ceilings: dict[tuple[str, str], float] = {}  # (channel, stage) -> `_most_likely`

    @classmethod
    def load(cls, path: str | Path, seed: int) -> "BehaviorModel":
        from ..dsl.yamlload import load_yaml_file_located

        try:
            located = load_yaml_file_located(path)
            data = located.data if located is not None and located.data is not None else {}
        except (OSError, ValueError) as exc:
            raise BehaviorError(f"{path}: cannot read the behavior model: {exc}") from None
        if not isinstance(data, dict):
            raise BehaviorError(f"{path}: a behavior model is a mapping of keys (pay_probability: 0.05 ...), "
                                f"not a {type(data).__name__}")
        try:
            return cls(BehaviorSpec.model_validate(data), seed)
        except ValidationError as exc:
            # one line per problem, each at its place, as a policy's problems are reported
            raise BehaviorError("\n".join(_problem(error, located) for error in exc.errors())) from None

    def unknown_names(self, plan) -> list[str]:
        """Warnings for the `by_stage` and `by_segment` names that are not the policy's: they would change
        nothing, silently (a model may serve several policies, as with --compare: so not an error)."""
        from ..dsl.diagnostics import suggest
        from ..dsl.model import EVENT_TYPES

        known = {"by_stage": [s["name"] for s in plan["stages"]] + list(EVENT_TYPES),
                 "by_segment": [s["name"] for s in plan["segments"]]}
        warnings = []
        for key, names in known.items():
            for name in getattr(self.spec, key):
                if name not in names:
                    hint = suggest(name, names)
                    what = "a stage or event type" if key == "by_stage" else "a segment"
                    warnings.append(f"{key}: '{name}' is not {what} of policy '{plan['policy']}', so it changes "
                                    "nothing" + (f" ({hint})" if hint else ""))
        return warnings

    def _draws(self, *parts: str) -> tuple[float, float, float]:
        """Three uniform numbers in [0, 1) from a hash of the parts: as random as a seeded generator, and
        without building one for every sent contact."""
        digest = hashlib.sha256("|".join((str(self.seed), *parts)).encode()).digest()
        scale = 2 ** 64
        return (int.from_bytes(digest[:8], "big") / scale, int.from_bytes(digest[8:16], "big") / scale,
                int.from_bytes(digest[16:24], "big") / scale)

    def probability(self, rt, decision, ctx_segments: set[str]) -> float:
        spec = self.spec
        p = spec.by_channel.get(decision.channel, spec.pay_probability)
        p *= spec.by_stage.get(decision.stage, 1.0)
        for segment in ctx_segments:
            p *= spec.by_segment.get(segment, 1.0)
        return min(max(p, 0.0), 1.0)

    def _most_likely(self, decision) -> float:
        """The highest probability the decision's channel and stage allow, for any segments: every
        multiplier above 1 applied (the exact one needs the segments, which cost more than the draw)."""
        found = self._ceilings.get((decision.channel, decision.stage))
        if found is None:
            found = self._ceilings[decision.channel, decision.stage] = self._ceiling(decision)
        return found

    def _ceiling(self, decision) -> float:
        spec = self.spec
        p = spec.by_channel.get(decision.channel, spec.pay_probability) * spec.by_stage.get(decision.stage, 1.0)
        for factor in spec.by_segment.values():
            p *= max(factor, 1.0)
        return min(max(p * (1 + 1e-9), 0.0), 1.0)  # a margin for the rounding of products in another order

    def react(self, rt, state, decisions, now: dt.datetime) -> list[PaymentInfo]:
        """Payments caused by the contacts just sent (one draw per invoice of each sent message)."""
        payments = []
        for d in decisions:
            if d.status != "sent" or d.channel not in SENDING:
                continue
            for invoice_id in d.invoice_ids:
                payment = self._draw(rt, state, d, invoice_id, now, payments)
                if payment is not None:
                    payments.append(payment)
        return payments

    def _draw(self, rt, state, d, invoice_id: str, now: dt.datetime,
              drawn: list[PaymentInfo] = ()) -> PaymentInfo | None:
        """`drawn`: the payments already drawn in the same call, not yet in `state.payments` (two contacts
        about one invoice in the same tick must not each pay the whole balance)."""
        # the invoice's own key only: whether another invoice shares the message must not change its luck
        own = d.keys if len(d.invoice_ids) == 1 else [k for k in d.keys if k.split("|", 2)[1] == invoice_id]
        pays, delay, partial = self._draws(state.customer.id, d.step, invoice_id, *own)
        if pays >= self._most_likely(d):
            return None  # no payment whatever the segments: most draws end here, without evaluating them
        invoice = state.invoices[invoice_id]
        balance = balance_at(state, invoice, now) - sum(
            (p.amount for p in state.payments if p.invoice_id == invoice_id and p.at > now), Decimal(0)) - sum(
            (p.amount for p in drawn if p.invoice_id == invoice_id), Decimal(0))
        if balance <= PAID_EPSILON:
            return None
        segments = self._segments(rt, state, invoice, now) if self.spec.by_segment else set()
        if pays >= self.probability(rt, d, segments):
            return None
        low, high = self.spec.delay_days
        at = now + dt.timedelta(days=low + int(delay * (high - low + 1)))
        amount = balance
        if partial < self.spec.partial_share:
            amount = (balance * Decimal(str(self.spec.partial_fraction))).quantize(Decimal("0.01"), ROUND_HALF_UP)
        return PaymentInfo(f"sim-{d.step}-{invoice_id}-{at:%Y%m%d%H}", invoice_id, amount, at)

    def _segments(self, rt, state, invoice, now) -> set[str]:
        from zoneinfo import ZoneInfo

        from .events import Context, Facts

        now = now.astimezone(ZoneInfo(state.customer.timezone or rt.timezone))  # days count in local time
        ctx = Context(Facts(rt, state, now), invoice)
        return {name for name in self.spec.by_segment if name in rt.segments and rt.segments[name](ctx) is True}

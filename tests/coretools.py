"""Helpers for decision-core tests: compile a policy from text, build customers, run a simulation."""

from __future__ import annotations

import datetime as dt
import functools
import textwrap
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from collect.adapters.base import DeliveryResult
from collect.engine.compiler import compile_policy
from collect.engine.runtime import Runtime
from collect.engine.simulate import simulate, start_moment
from collect.engine.state import CustomerInfo, CustomerState, InvoiceInfo

UTC = dt.timezone.utc


@functools.lru_cache(maxsize=None)
def dst_changes(zone: str, years: tuple[int, ...] = (2026,)) -> tuple[dt.datetime, ...]:
    """The instants (to the minute, UTC) of `years` at which the zone's UTC offset changes; none for a
    zone without daylight-saving time."""
    tz, found = ZoneInfo(zone), []
    at = dt.datetime(years[0], 1, 1, tzinfo=UTC)
    while at.year <= years[-1]:
        nxt = at + dt.timedelta(hours=1)
        if at.astimezone(tz).utcoffset() != nxt.astimezone(tz).utcoffset():
            found.append(next(at + dt.timedelta(minutes=m) for m in range(1, 61) if (
                at + dt.timedelta(minutes=m)).astimezone(tz).utcoffset() == nxt.astimezone(tz).utcoffset()))
        at = nxt
    return tuple(found)

BASE = """
policy: t
timezone: America/Lima
currency: PEN
windows:
  default: { mon-fri: "08:00-19:00", sat: "09:00-13:00" }
templates:
  m:
    email: { subject: "s {{ invoice.number }}", body: "b {{ customer.name }}" }
    sms: "sms {{ customer.name }}"
    whatsapp: { template_name: w, language: es, params: ["{{ customer.name }}"] }
"""


def runtime(body: str, tmp_path: Path, base: str = BASE) -> Runtime:
    path = tmp_path / "policy.yaml"
    path.write_text(textwrap.dedent(base) + textwrap.dedent(body), encoding="utf-8")
    result = compile_policy(path)
    assert result.plan is not None, "\n".join(d.render() for d in result.diagnostics.sorted())
    return Runtime(result.plan)


def customer(cid: str = "c1", **kw) -> CustomerState:
    info = dict(name="ACME", email="pagos@acme.pe", phone="+51987654321", whatsapp=None, timezone=None,
                country="PE", language="es")
    info.update(kw)
    return CustomerState(CustomerInfo(cid, **info))


def invoice(state: CustomerState, iid: str, due: str, amount: str = "1000", **kw) -> InvoiceInfo:
    inv = InvoiceInfo(iid, state.customer.id, Decimal(amount), Decimal(kw.pop("balance", amount)),
                      dt.date.fromisoformat(due), **kw)
    state.invoices[iid] = inv
    return inv


def run(rt: Runtime, states, start: str, days: int, **kw):
    states = {s.customer.id: s for s in states} if isinstance(states, list) else states
    return simulate(rt, states, start_moment(dt.date.fromisoformat(start), rt.timezone), days, **kw)


def rows(result, status: str | None = "sent"):
    """(local datetime text, step, channel, invoice ids) of the decisions with that status."""
    return [(d.at.strftime("%Y-%m-%d %H:%M"), d.step, d.channel, d.invoice_ids, d.reason)
            for d in result.decisions if status is None or d.status == status]


class Flaky:
    """A channel adapter in this process that answers 503 the first time, then sends; `placed` notes the
    `now` the test set before each tick that sent. `free_text`: the channel takes text without a
    provider template (an SMS does; the calls here do not)."""

    name = "flaky"
    supports_html = supports_templates = False
    dedupes = False

    def __init__(self, free_text: bool = False):
        self.free_text = free_text
        self.now, self.placed, self.tries = None, [], 0

    def send(self, message):
        self.tries += 1
        if self.tries == 1:
            return DeliveryResult.transient("503", "service unavailable")
        self.placed.append(self.now)
        return DeliveryResult.sent(f"msg-{self.tries}")

    def close(self):
        pass

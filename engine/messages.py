"""A decision made concrete: the rendered message for its channel, addressed to the customer."""

from __future__ import annotations

from urllib.parse import quote  # an ERP's customer id may hold / ? # or spaces: it is one path segment of the link

from types import SimpleNamespace
from zoneinfo import ZoneInfo

from ..adapters.base import Message
from ..dsl.fields import schema_for
from .contacts import address, restrictions
from .decide import stopped
from .events import Context, Facts, open_invoices, promise_active
from .state import balance_at
from .templates import TemplateRenderError, Total, make_context, money_total, render_channel


# babel writes a no-break space in amounts (S/\xa0100.00, 1\u202f234,50\xa0€); neither is in the GSM 7-bit
# alphabet, so one would send the whole SMS as UCS-2: 70 characters a part instead of 160, two or three
# times the parts and the cost, for a character nobody wrote
_PLAIN_SPACES = str.maketrans({"\xa0": " ", "\u202f": " ", "\u2007": " "})


def _template_object(doc: dict):
    """The plan's template entry in the shape render_channel takes."""
    if doc["kind"] == "text":
        return doc["body"] if "subject" not in doc else {"subject": doc["subject"], "body": doc["body"]}
    if doc["kind"] == "whatsapp":
        return SimpleNamespace(template_name=doc["template_name"], language=doc["language"], params=doc.get("params", []))
    return {"subject": doc.get("subject"), "body": doc["body"], **({"html": doc["html"]} if doc.get("html") else {})}


PROMISE_EVENTS = ("promise_made", "promise_kept", "promise_broken")


def _promise(state, decision, steps) -> tuple[object | None, bool]:
    """The promise a template sees, and whether it is active: a promise event step's own promise (kept or
    broken too), else the newest active promise about the message's invoices, as the core sees it."""
    if not state.promises:
        return None, False
    active = []  # each invoice's active promise (kept_at keeps its answer for the moment: no rescan)
    for invoice_id in decision.invoice_ids:
        found = promise_active(state, state.invoices[invoice_id], decision.at)
        if found is not None and found not in active:
            active.append(found)
    if decision.stage in PROMISE_EVENTS:  # keys: step|invoice|occurrence; a promise's occurrence is its id
        ids = {key.rsplit("|", 1)[1] for key in (steps or decision.keys)}
        own = next((p for p in state.promises if p.id in ids), None)
        if own is not None:
            return own, own in active
    newest = max(active, key=lambda p: p.made_at, default=None)
    return newest, newest is not None


def _fields(ctx, prefix: str, schema) -> dict:
    """A template record: the schema's fields of a namespace, read from an expression context."""
    return {name[len(prefix):]: ctx[name] for name in schema if name.startswith(prefix)}


def unbuildable(exc: Exception) -> str:
    """The reason a message could not be built (a failure of its channel for good), as the contacts
    history says it in `collect run` and in `collect simulate --render`."""
    return str(exc) if isinstance(exc, TemplateRenderError) else f"template: {type(exc).__name__}: {exc}"


def refused(outcome) -> str:
    """A delivery's failure (a `DeliveryResult`) as the contacts history says it: its code, then why."""
    return f"{outcome.error_code or ''} {outcome.error or ''}".strip()


def recipient(customer, channel: str) -> str | None:
    return address(customer, channel)


def build_message(rt, plan, decision, state, pay_link: str, steps=()) -> Message:
    """The message of a decision; `steps`: the step instances it settles (their keys), which name the
    promise of a promise event step."""
    c = state.customer
    schema = schema_for(dict(plan["fields"]))
    # the fields as the decision core's expressions read them (built-in ones such as days_to_due and
    # open_balance included), at the moment the message goes, in the customer's zone
    now = decision.at.astimezone(ZoneInfo(c.timezone or rt.timezone))
    facts = Facts(rt, state, now)
    listed = [state.invoices[i] for i in decision.invoice_ids]
    # a message rebuilt for a retry leaves out the invoices paid or written off meanwhile (the runner
    # withdraws it when all of them are)
    listed = [inv for inv in listed if not stopped(rt, state, inv, now)] or listed
    listed_ids = tuple(inv.id for inv in listed)  # what the receiver is told about (the contact row keeps the decision's)
    invoices = [_fields(Context(facts, inv), "invoice.", schema) for inv in listed]
    customer = _fields(facts, "customer.", schema)
    currency = (invoices[0]["currency"] if invoices else None) or rt.currency
    if "open_balance" in customer:  # as total_balance: `money` writes one total per currency, never their sum
        customer["open_balance"] = money_total(((i.currency or rt.currency, balance_at(state, i, now))
                                                for i in open_invoices(state, now)), currency)
    promise, active = _promise(state, decision, steps)
    context = make_context(customer, invoices, pay_link=pay_link.format(customer_id=quote(c.id, safe="")), today=now.date(),
                           currency=currency, schema=schema,
                           promise={"amount": promise.amount, "date": promise.promised_date, "active": active} if promise else None)
    subject = body = html = template_name = template_language = None
    params: tuple = ()
    if decision.template:
        doc = plan["templates"][decision.template][decision.channel]
        try:
            rendered = render_channel(_template_object(dict(doc)), context)
        except TemplateRenderError as exc:  # which template: the reason is read in `collect history`
            raise TemplateRenderError(f"template {decision.template}.{decision.channel}: {exc}") from None
        subject, body, html, params = rendered.subject, rendered.body, rendered.html, rendered.params
        if decision.channel == "sms":
            body = body.translate(_PLAIN_SPACES)
        if doc["kind"] == "whatsapp":  # a provider-approved template, sent by name with its parameters
            template_name, template_language = doc["template_name"], doc["language"]
    if decision.channel == "agent":  # a task for a person: what to do, for whom, how urgent
        body = (f"Escalation of step {decision.step} to queue {decision.queue or 'collections'}: customer {c.id}"
                f"{f' ({c.name})' if c.name else ''}, invoices {', '.join(listed_ids)}, "
                f"balance {_plain(money_total(((i['currency'] or currency, i['balance']) for i in invoices), currency))}"
                + (f", priority {decision.priority:.15g}" if decision.priority is not None else "")
                + "".join(f"; {r}" for r in restrictions(c.do_not_contact, c.optouts, c.consents, c.legal_status)))
    replies = [r.at for r in state.replies if r.channel == decision.channel and r.at <= decision.at]
    return Message(key=decision.contact_key, channel=decision.channel, customer_id=c.id,
                   invoice_ids=listed_ids, recipient=recipient(c, decision.channel), subject=subject,
                   body=body or "", html=html, params=params, template=decision.template, language=c.language,
                   template_name=template_name, template_language=template_language,
                   metadata={"step": decision.step, "stage": decision.stage, "plan_hash": rt.plan_hash,
                             "webhook": decision.webhook, "now": decision.at,
                             "last_inbound_at": max(replies, default=None),
                             **({"task": {"queue": decision.queue or "collections", "priority": decision.priority,
                                          "reason": decision.reason}} if decision.channel == "agent" else {})})


def _plain(total) -> str:
    """A total as plain text, each currency's part with its code: `1234.50 PEN + 100.00 USD`."""
    parts = total.parts if isinstance(total, Total) else {total.currency: total}
    return " + ".join(f"{value} {code}" for code, value in parts.items())


def message_builder(rt, pay_link: str | None = None, refusals=None, redact=str):
    """`(decision, state) -> None, or why its message cannot be built or would be refused`, for `simulate
    --render` and `run --dry-run`: each message built as the tick builds it before delivering it (the same
    function); one that cannot be built is that channel's failure for good, with the tick's reason, and so
    is one its adapter refuses without calling anyone (`refusals`: channels.Refusals, from channels.yaml).
    `pay_link`: channels.yaml's, else the example one; `redact`: Channels.redact, as the tick masks secrets."""
    from .channels import EXAMPLE_PAY_LINK

    pay_link = pay_link or EXAMPLE_PAY_LINK

    def build(decision, state) -> str | None:
        try:
            message = build_message(rt, rt.plan, decision, state, pay_link, decision.keys)
        except Exception as exc:  # noqa: BLE001 - as in `collect run`: whatever building raises fails the channel
            return redact(unbuildable(exc))
        refusal = refusals(message) if refusals is not None else None
        return redact(refused(refusal)) if refusal is not None else None
    return build

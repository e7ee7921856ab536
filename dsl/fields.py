"""The field schema that expressions and templates are checked against.

Built-in fields come from the portfolio (CSV columns or the store) or are derived by the decision
core at the moment of a decision (`invoice.days_past_due`, `customer.open_balance`, ...). A policy adds
its own columns with `fields:`; they are typed so that `customer.risk_score < 0.3` is checked at
compile time and read with the right conversion from CSV.
"""

from __future__ import annotations

from functools import lru_cache

# name -> type; types are the names of FIELD_TYPES in dsl.model
BUILTIN_FIELDS: dict[str, str] = {
    "invoice.id": "str",
    "invoice.number": "str",
    "invoice.customer_id": "str",
    "invoice.amount": "decimal",
    "invoice.balance": "decimal",
    "invoice.currency": "str",
    "invoice.issue_date": "date",
    "invoice.due_date": "date",
    "invoice.status": "str",  # open | paid | disputed | written_off
    "invoice.days_past_due": "int",  # today - due_date, in the customer's local calendar
    "invoice.days_to_due": "int",  # due_date - today
    "customer.id": "str",
    "customer.name": "str",
    "customer.email": "str",
    "customer.phone": "str",
    "customer.whatsapp": "str",
    "customer.timezone": "str",
    "customer.country": "str",
    "customer.language": "str",
    "customer.do_not_contact": "bool",
    "customer.open_balance": "decimal",
    "customer.open_invoices": "int",
    "customer.broken_promises_12m": "int",
    "customer.late_payments_12m": "int",
    "contacts.last_channel": "str",
    "contacts.count_7d": "int",
    "promise.active": "bool",
    "promise.amount": "decimal",
    "promise.date": "date",
}

NAMESPACES = ("invoice", "customer", "contacts", "promise")


def schema_for(custom: dict[str, str] | None = None) -> dict[str, str]:
    """The built-in fields plus a policy's `fields:` (a custom field may not redefine a built-in one)."""
    schema = dict(BUILTIN_FIELDS)
    for name, kind in (custom or {}).items():
        schema.setdefault(name, kind)
    return schema


def currency_problem(code: str) -> str | None:
    """Why `code` is no ISO 4217 currency code (the policy's `currency:`, a CSV's currency column,
    --currency), or None. Checked against CLDR's (babel's, which formats the amounts), not only its
    shape: a `UDS` typo would split every report into two currencies."""
    known = _currencies()
    if len(code) == 3 and code.isascii() and code.isalpha() and code.isupper() and code in known:
        return None
    from babel.numbers import list_currencies

    if code in list_currencies() and code.startswith("X"):  # XXX, XTS, XAU: ISO's codes that are no money
        return (f"'{code}' is no country's currency (ISO 4217's code for no currency, a test, a precious metal "
                "or a unit of account); give the invoice's currency, e.g. PEN, USD")
    if code in list_currencies():  # MXP, the Mexican peso of before 1993
        return f"'{code}' is a currency no country has used since 2000 (a typo of today's code?)"
    # lower case, or two letters swapped (UDS); not any code one letter away (EUO: ERN? EUR?)
    upper = code.upper()
    guesses = [upper] + [upper[:i] + upper[i + 1] + upper[i] + upper[i + 2:] for i in range(len(upper) - 1)]
    meant = next((g for g in guesses if len(g) == 3 and g in known), None)
    return f"'{code}' is not an ISO 4217 currency code ({f'did you mean {meant!r}?' if meant else 'e.g. PEN, USD'})"


@lru_cache(maxsize=1)
def _currencies() -> frozenset[str]:
    """The currencies some country has used since 2000 (CLDR's territory data, funds such as Chile's CLF
    included): not MXP, the Mexican peso of before 1993, which a MXN invoice means, nor XXX (no currency)."""
    import datetime as dt

    from babel.core import get_global
    from babel.numbers import get_territory_currencies

    # ZZ (unknown region) lists ISO's metals, test and fund codes; AQ (Antarctica) and CP list XXX, "no currency"
    return frozenset(code for territory in get_global("territory_currencies") if territory not in ("ZZ", "AQ", "CP")
                     for code in get_territory_currencies(territory, dt.date(2000, 1, 1), dt.date.today(),
                                                          non_tender=True))

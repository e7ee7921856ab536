"""Can this customer be reached on this channel? Addresses, consent and opt-outs (SPEC 4.5, 4.6).

Phones must be valid numbers (E.164 after parsing with the customer's country as the region hint),
emails valid addresses (syntax only: no DNS lookups inside the decision core). Results are cached by
value because a simulation asks the same question for the same customer many times.
"""

from __future__ import annotations

from functools import lru_cache

from .state import CustomerInfo

# channel -> customer attributes that can carry its address, in order of preference
ADDRESS_FIELDS = {"email": ("email",), "sms": ("phone",), "voice": ("phone",), "whatsapp": ("whatsapp", "phone")}


def address_problem(customer: CustomerInfo, channel: str) -> str | None:
    """None when the channel can be used for this customer, else the reason it cannot."""
    if channel in customer.optouts:
        return "opted out"
    if customer.consents is not None and channel in ADDRESS_FIELDS and channel not in customer.consents:
        return "no consent"
    fields = ADDRESS_FIELDS.get(channel)
    if fields is None:  # letter (postal address kept by the ERP), webhook, agent, plugins
        return None
    if not any(getattr(customer, f) for f in fields):
        return "no address"
    return None if address(customer, channel) else "invalid address"


def restrictions(do_not_contact, optouts, consents, legal_status) -> list[str]:
    """What an agent working a task must know before reaching out: an escalation still opens a task for a
    customer nobody may contact (a legal hand-off may be due), so the task says so."""
    said = ["do not contact"] if do_not_contact else []
    if optouts:
        said.append(f"opted out of {', '.join(sorted(optouts))}")
    if consents is not None and (unagreed := sorted(set(ADDRESS_FIELDS) - set(consents) - set(optouts or ()))):
        said.append(f"no consent for {', '.join(unagreed)}")
    if legal_status:
        said.append(f"legal status {legal_status}")
    return said


def address(customer: CustomerInfo, channel: str) -> str | None:
    """The customer's first valid address for the channel (phones in E.164), in order of preference;
    the message goes where the decision found the customer reachable."""
    for name in ADDRESS_FIELDS.get(channel, ()):
        value = getattr(customer, name)
        if not value:
            continue
        if channel == "email":
            if valid_email(value):
                return value
        elif (number := e164(value, customer.country)) is not None:
            return number
    return None


@lru_cache(maxsize=200_000)
def e164(number: str, country: str | None = None) -> str | None:
    """The number in E.164 form, or None when it is not a valid phone number."""
    import phonenumbers

    try:
        parsed = phonenumbers.parse(number, (country or "").upper() or None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


@lru_cache(maxsize=200_000)
def valid_email(address: str) -> bool:
    from email_validator import EmailNotValidError, validate_email

    try:
        validate_email(address, check_deliverability=False)
    except EmailNotValidError:
        return False
    return True

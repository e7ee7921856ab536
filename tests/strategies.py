"""Hypothesis strategies: random valid policies (as plain data, as YAML would give them)."""

from __future__ import annotations

from hypothesis import strategies as st

NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,7}", fullmatch=True).filter(
    lambda n: n not in {"if", "for", "send", "escalate", "webhook", "stop", "and", "or", "not", "in", "is", "null",
                        "true", "false", "between", "none", "at", "with", "to", "priority", "else"})
STEP_IDS = st.from_regex(r"[a-z][a-z0-9]{0,4}(-[0-9]{1,2})?", fullmatch=True)
CHANNELS = st.sampled_from(["email", "sms", "whatsapp", "voice", "letter"])
CONDITIONS = st.sampled_from([
    "invoice.amount >= 1000", "customer.risk_score < 0.3 and invoice.balance > 0", "not customer.do_not_contact",
    'customer.country in ["PE", "CO"]', "invoice.days_past_due between 1 and 30", "customer.email is not null",
    'lower(customer.name) == "acme"', "days_since(invoice.issue_date) > 40", "contacts.count_7d < 3",
])
TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), whitelist_characters="\n\t"), max_size=40)
DAY_SPECS = st.sampled_from(["mon-fri", "sat", "sun", "mon,wed,fri", "tue-thu", "mon-sun"])
HOURS = st.sampled_from(["08:00-19:00", "09:00-13:00", "07:00-12:00, 14:00-21:00", "00:00-24:00", "closed"])
DURATIONS = st.sampled_from(["30m", "12h", "1d", "3d", "7d", "2w"])


@st.composite
def templates(draw, channels):
    body = {}
    for channel in channels:
        if channel == "email":
            body[channel] = {"subject": draw(TEXT), "body": draw(TEXT) + " {{ customer.name }}"}
        elif channel == "whatsapp":
            body[channel] = {"template_name": draw(NAMES), "language": "es",
                             "params": draw(st.lists(st.just("{{ total_balance | money }}"), max_size=2))}
        else:
            body[channel] = draw(TEXT)
    return body


@st.composite
def steps(draw, anchor: str, ids: set, template: str, low: int, high: int):
    out = []
    for _ in range(draw(st.integers(0, 3))):
        step_id = draw(STEP_IDS.filter(lambda s: s not in ids))
        ids.add(step_id)
        days = draw(st.integers(low, high))
        at = anchor + (f"{days:+d}d" if days else "")
        if draw(st.booleans()):
            at += f" {draw(st.integers(0, 23)):02d}:{draw(st.sampled_from([0, 15, 30])):02d}"
        step = {"id": step_id, "at": at}
        if draw(st.booleans()):
            step["if"] = draw(CONDITIONS)
        if draw(st.booleans()):
            step["for"] = draw(CONDITIONS)
        kind = draw(st.sampled_from(["send", "send", "escalate", "webhook", "stop"]))
        if kind == "send":
            step["send"] = draw(st.lists(st.sampled_from(["email", "sms"]), min_size=1, max_size=2, unique=True))
            step["template"] = template
            if draw(st.booleans()):
                step["on_exhausted"] = draw(st.sampled_from(["escalate", {"queue": "agents"}]))
        elif kind == "escalate":
            step["escalate"] = {"queue": draw(NAMES)}
            if draw(st.booleans()):
                step["escalate"]["priority"] = "invoice.balance * 2"
        elif kind == "webhook":
            step["webhook"] = draw(NAMES)
        else:
            step["stop"] = True
        out.append(step)
    return out


@st.composite
def policies(draw):
    ids: set = set()
    data = {"policy": draw(NAMES), "timezone": draw(st.sampled_from(["America/Lima", "Europe/Madrid", "UTC"])),
            "currency": draw(st.sampled_from(["PEN", "USD", "EUR"])),
            "fields": {"customer.risk_score": "float"},
            "templates": {"t": draw(templates(["email", "sms"]))}}
    if draw(st.booleans()):
        data["description"] = draw(TEXT)
    if draw(st.booleans()):
        data["calendar"] = {"country": draw(st.sampled_from(["PE", "US", "CO"])),
                            "extra_holidays": draw(st.lists(st.sampled_from(["2026-12-24", "2026-12-31"]), unique=True)),
                            "weekend": draw(st.lists(st.sampled_from(["sat", "sun", "fri"]), unique=True, min_size=1))}
        if draw(st.booleans()):
            data["calendar"]["holidays_by"] = draw(st.sampled_from(["policy", "customer"]))
    windows = {"default": {draw(DAY_SPECS): draw(HOURS.filter(lambda h: h != "closed"))}}  # so that plans compile
    for channel in draw(st.lists(st.sampled_from(["email", "sms"]), unique=True)):
        days = draw(st.lists(DAY_SPECS, unique=True, max_size=1))
        windows[channel] = {d: draw(HOURS) for d in days}
    windows["holidays"] = draw(st.sampled_from(["open", "closed"]))
    data["windows"] = windows
    data["caps"] = [{"channel": draw(st.sampled_from(["any", "sms", "email"])), "max": draw(st.integers(1, 9)),
                     "per": draw(DURATIONS)} for _ in range(draw(st.integers(0, 2)))]
    for key, options in (("on_cap", ["defer", "skip"]), ("group_by", ["customer", "invoice"]),
                         ("catch_up", ["latest", "all", "none"]), ("max_lateness", ["3d", "1w", "12h"])):
        if draw(st.booleans()):
            data[key] = draw(st.sampled_from(options))
    data["segments"] = {name: draw(CONDITIONS) for name in draw(st.lists(NAMES, unique=True, max_size=2))}
    data["stages"] = {"pre": {"when": "invoice.days_past_due <= 0", "steps": draw(steps("due", ids, "t", -9, 0))},
                      "late": {"when": "invoice.days_past_due > 0", "steps": draw(steps("due", ids, "t", 1, 60))}}
    if draw(st.booleans()):
        data["events"] = {"promise_made": draw(steps("promise", ids, "t", -2, 0))}
    if draw(st.booleans()):
        data["experiments"] = {"tone": {"unit": "customer", "variants": {"soft": 50, "firm": 40, "holdout": 10}}}
    if draw(st.booleans()):
        data["pause_when"] = draw(st.lists(st.sampled_from(["promise_active", "disputed"]), unique=True))
    if draw(st.booleans()):
        data["compliance"] = draw(st.sampled_from(["auto", ["us-reg-f"], []]))
    if draw(st.booleans()):
        data["compliance_settings"] = draw(st.dictionaries(
            st.sampled_from(["co-ley-2300", "cl-sernac", "us-reg-f"]),
            st.dictionaries(NAMES, SETTING_VALUES, max_size=3), max_size=2))
    return data


SETTING_VALUES = st.one_of(
    st.sampled_from(["rolling", "calendar", "2d", "08:00", "two words", "3", "true", "-1", "none", "1e5"]),
    st.integers(-1000, 10**6), st.booleans(), st.floats(allow_nan=False, allow_infinity=False, width=32), TEXT)


# -- damaged policies: valid ones with a few random changes -------------------------------------------

JUNK = st.one_of(
    st.none(), st.booleans(), st.integers(-10**30, 10**30), st.floats(allow_nan=False, allow_infinity=False),
    TEXT, NAMES, st.lists(st.integers(0, 9), max_size=2), st.dictionaries(NAMES, st.integers(0, 9), max_size=2),
    st.sampled_from(["due+99999999999999999999d", "due+1x", "7x", "99999999999w", "25:00", "", "mon-fry", "escalate",
                     "auto", "closed", "{{ customer.__class__ }}", "{{ x | attr('y') }}", "{% include 'x' %}",
                     "customer.nmae > 1", "invoice.amount > 10 and invoice.amount < 5", "1 >", "((((", "true"]))


def _paths(data, path=()):
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for key, value in items:
        yield path + (key,)
        yield from _paths(value, path + (key,))


@st.composite
def damaged(draw, data: dict):
    """`data` with one to four random changes: a value replaced by junk, a key removed, a key added."""
    import copy

    data = copy.deepcopy(data)
    for _ in range(draw(st.integers(1, 4))):
        paths = list(_paths(data))
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = data
        for part in path[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["replace", "replace", "remove", "add"]))
        if action == "replace" or not isinstance(parent, dict):
            parent[path[-1]] = draw(JUNK)
        elif action == "remove":
            del parent[path[-1]]
        else:
            parent[draw(NAMES)] = draw(JUNK)
    return data

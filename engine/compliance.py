"""Compliance profiles (SPEC 5): a jurisdiction's contact rules as data, and the guard that applies them.

- `load_profile(name)` reads and validates one packaged file, engine/profiles/<name>.yaml;
- `resolve(selection, settings)` gives the JSON-ready docs a plan embeds (minutes, day maps like the
  plan's windows), so a profile change changes the plan_hash;
- `Guard(docs, auto, default_country)` checks one contact against the docs that apply to a customer and
  says which rule blocks it and until when.

Pure: no clock, no I/O except reading the packaged profile files. See docs/compliance.md.
"""

from __future__ import annotations

import copy
import datetime as dt
import re
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

from ..dsl.timeparse import DAYS, parse_days, parse_duration, parse_time_ranges
from .calendar import local_instant
from .runtime import NOT_CONTACTS  # not a contact with the debtor: no profile applies
from .state import SentContact

PROFILE_DIR = Path(__file__).parent / "profiles"
CHANNELS = ("email", "sms", "whatsapp", "voice", "letter")
PLUGINS = "plugins"  # in a rule's channels: every channel an installed plugin adds
HORIZON_DAYS = 400  # a rule that does not open within this never will (same horizon as the calendar)
DAY = dt.timedelta(days=1)

TOP_KEYS = {"profile": True, "title": True, "country": True, "verified": True, "sources": True,
            "not_covered": True, "rules": True, "settings": False, "applies_to": False}
SOURCE_KEYS = {"id": True, "title": True, "url": True, "says": True, "copies": False}
SETTING_KEYS = {"default": True, "values": True, "note": False}
RULE_KEYS = {"id": True, "kind": True, "source": True, "channels": False, "note": False}
KINDS = {  # kind -> its own keys (True: required)
    "window": {"days": True, "holidays": False},
    "cap": {"max": True, "period": True, "scope": False, "after_conversation": False},
    "after_conversation": {"days": True, "scope": False, "conversations": False},
    "distinct_channels": {"max": True, "period": True, "after_conversation": False},
    "min_spacing": {"spacing": True},
    "consent_required": {"channels": True},
    "stop_states": {"states": True},
}


class ProfileError(ValueError):
    """A profile file, selection or setting that cannot be used; the message names the file or profile and key."""


# -- loading and validation ------------------------------------------------------------------------


def profile_names() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


@lru_cache(maxsize=1)
def legal_states() -> frozenset[str]:
    """The `legal_status` values some built-in profile acts on (`sued`, `insolvent`): the only ones that
    mean anything to collect."""
    return frozenset(state for name in profile_names() for rule in load_profile(name)["rules"]
                     if rule["kind"] == "stop_states" for state in rule["states"])


def load_profile(name: str, directory: Path | str | None = None) -> dict:
    """The validated profile as written in its file (`verified` as an ISO date string)."""
    folder = Path(directory) if directory is not None else PROFILE_DIR
    path = folder / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in folder.glob("*.yaml"))
        raise ProfileError(f"unknown compliance profile '{name}'; known profiles: {', '.join(known) or 'none'}")
    return copy.deepcopy(_load(str(path)))


@lru_cache(maxsize=None)
def _load(path: str) -> dict:
    import yaml

    try:
        with open(path, encoding="utf-8") as handle:
            doc = yaml.safe_load(handle)
    except yaml.YAMLError as exc:
        raise ProfileError(f"{path}: not valid YAML: {exc}") from None
    doc = _check_top(doc, path)
    for values in _setting_variants(doc):  # every allowed setting value must give a valid profile
        _normalize(doc, values, path)
    return doc


def _fail(origin: str, where: str, problem: str) -> ProfileError:
    return ProfileError(f"{origin}: {where}: {problem}")


def _check_keys(value, spec: dict, origin: str, where: str) -> dict:
    if not isinstance(value, dict):
        raise _fail(origin, where, "must be a mapping")
    for key in value:
        if key not in spec:
            raise _fail(origin, where, f"unknown key '{key}' (allowed: {', '.join(spec)})")
    for key, required in spec.items():
        if required and key not in value:
            raise _fail(origin, where, f"missing key '{key}'")
    return value


def _check_top(doc, path: str) -> dict:
    _check_keys(doc, TOP_KEYS, path, "profile")
    if doc["profile"] != Path(path).stem:
        raise _fail(path, "profile", f"'{doc['profile']}' must match the file name '{Path(path).stem}'")
    if not re.fullmatch(r"[A-Z]{2}", str(doc["country"])):
        raise _fail(path, "country", f"'{doc['country']}' is not an ISO 3166 alpha-2 code such as CO")
    doc["verified"] = _date_text(doc["verified"], path)
    _check_list(doc["not_covered"], path, "not_covered", str)
    for i, source in enumerate(_check_list(doc["sources"], path, "sources", dict)):
        _check_keys(source, SOURCE_KEYS, path, f"sources[{i}]")
        _check_list(source.setdefault("copies", []), path, f"sources[{i}].copies", str, empty=True)
    for name, setting in (doc.setdefault("settings", {}) or {}).items():
        _check_keys(setting, SETTING_KEYS, path, f"settings.{name}")
        if not isinstance(setting["values"], dict):
            raise _fail(path, f"settings.{name}", "values must be a mapping of setting value: rule parameter")
        setting["values"] = {str(k): v for k, v in setting["values"].items()}  # YAML may give 7 for "7"
        if str(setting["default"]) not in setting["values"]:
            raise _fail(path, f"settings.{name}", f"default '{setting['default']}' is not one of its values")
    _check_list(doc["rules"], path, "rules", dict)
    return doc


def _check_list(value, origin: str, where: str, item_type, empty: bool = False) -> list:
    if not isinstance(value, list) or not (value or empty) or not all(isinstance(v, item_type) for v in value):
        what = "mappings" if item_type is dict else "texts"
        raise _fail(origin, where, f"must be a {'' if empty else 'non-empty '}list of {what}")
    return value


def _date_text(value, origin: str) -> str:
    if isinstance(value, dt.date):
        return value.isoformat()
    try:
        return dt.date.fromisoformat(str(value)).isoformat()
    except ValueError:
        raise _fail(origin, "verified", f"'{value}' is not a date (YYYY-MM-DD)") from None


def _setting_variants(doc: dict) -> list[dict]:
    """The defaults, and each allowed value of each setting with the others at their defaults."""
    defaults = {name: str(s["default"]) for name, s in doc["settings"].items()}
    variants = [defaults]
    for name, setting in doc["settings"].items():
        variants += [{**defaults, name: str(value)} for value in setting["values"] if str(value) != defaults[name]]
    return variants


# -- resolving: settings applied, durations in minutes, windows as day maps ---------------------------


def resolve(selection, settings: dict | None = None) -> list[dict]:
    """Resolved docs for `compliance: [names]` or `compliance: auto` (every profile; the guard picks by
    customer.country at run time). `settings` maps profile -> {setting: value} over the defaults."""
    names = profile_names() if selection == "auto" else _selected(selection)
    settings = settings or {}
    for name in settings:
        if name not in names:
            raise ProfileError(f"compliance_settings: profile '{name}' is not selected"
                               f" (selected: {', '.join(names) or 'none'})")
    return [resolve_profile(load_profile(name), settings.get(name) or {}) for name in names]


def _selected(selection) -> list[str]:
    names = [selection] if isinstance(selection, str) else list(selection or [])
    known = profile_names()
    for name in names:
        if name not in known:
            raise ProfileError(f"unknown compliance profile '{name}'; known profiles: {', '.join(known)}, or auto")
        if names.count(name) > 1:
            raise ProfileError(f"compliance profile '{name}' is listed twice")
    return names


def resolve_profile(doc: dict, overrides: dict) -> dict:
    """One validated profile doc with its settings applied (`overrides` are checked here)."""
    name, values = doc["profile"], {k: str(s["default"]) for k, s in doc["settings"].items()}
    if not isinstance(overrides, dict):
        raise ProfileError(f"compliance_settings.{name}: must be a mapping of setting: value")
    for key, value in overrides.items():
        setting = doc["settings"].get(key)
        if setting is None:
            allowed = ", ".join(doc["settings"]) or "none"
            raise ProfileError(f"compliance_settings.{name}: unknown setting '{key}' (settings of {name}: {allowed})")
        if str(value) not in setting["values"]:
            raise ProfileError(f"compliance_settings.{name}.{key}: '{value}' is not allowed; "
                               f"use one of {', '.join(map(str, setting['values']))}")
        values[key] = str(value)
    return _normalize(doc, values, name)


def _normalize(doc: dict, values: dict, origin: str) -> dict:
    rules, seen = [], set()
    source_ids = {s["id"] for s in doc["sources"]}
    for i, rule in enumerate(doc["rules"]):
        where = f"rules[{i}]" + (f" ({rule['id']})" if isinstance(rule, dict) and "id" in rule else "")
        out = _rule(rule, values, doc["settings"], source_ids, origin, where)
        if out["id"] in seen:
            raise _fail(origin, where, f"rule id '{out['id']}' is used twice")
        seen.add(out["id"])
        rules.append(out)
    return {
        "profile": doc["profile"], "title": doc["title"], "country": doc["country"], "verified": doc["verified"],
        "applies_to": doc.get("applies_to"), "settings": dict(values), "rules": rules,
        "sources": [{k: copy.deepcopy(s.get(k)) for k in SOURCE_KEYS} for s in doc["sources"]],
        "not_covered": list(doc["not_covered"]),
    }


def _rule(rule, values: dict, settings: dict, source_ids: set, origin: str, where: str) -> dict:
    if not isinstance(rule, dict) or rule.get("kind") not in KINDS:
        kind = rule.get("kind") if isinstance(rule, dict) else None
        raise _fail(origin, where, f"unknown rule kind '{kind}' (kinds: {', '.join(KINDS)})")
    kind = rule["kind"]
    _check_keys(rule, {**RULE_KEYS, **KINDS[kind]}, origin, where)
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", str(rule["id"])):
        raise _fail(origin, where, f"id '{rule['id']}' must be lower-case letters, digits and dashes")
    sources = [rule["source"]] if isinstance(rule["source"], str) else rule["source"]
    for source in sources if isinstance(sources, list) else [sources]:
        if not isinstance(source, str) or source not in source_ids:
            raise _fail(origin, where, f"source '{source}' is not one of the profile's sources")

    def param(key, default=None):
        value = rule.get(key, default)
        if isinstance(value, str) and value.startswith("$"):
            if value[1:] not in settings:
                raise _fail(origin, where, f"{key}: '{value}' names no setting of this profile")
            value = settings[value[1:]]["values"][values[value[1:]]]
        return value

    try:
        body = {"channels": _channels(param("channels", "any")), **PARSERS[kind](param)}
    except ProfileError:
        raise
    except ValueError as exc:
        raise _fail(origin, where, str(exc)) from None
    return {"id": rule["id"], "kind": kind, **body, "source": list(sources), "note": rule.get("note")}


def _channels(value) -> list[str]:
    """`any` (every contact with the debtor), or built-in channels and `plugins`: every channel an
    installed plugin adds (a law that names the media it limits still covers a medium it did not know)."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise ValueError("channels: give a channel, a list of channels, or any")
    for channel in items:
        if channel not in ("any", PLUGINS) and channel not in CHANNELS:
            raise ValueError(f"channels: unknown channel '{channel}' (use {', '.join(CHANNELS)}, {PLUGINS} or any)")
    return ["any"] if "any" in items else [c for c in (*CHANNELS, PLUGINS) if c in items]


def _talk_channels(value) -> list[str]:
    """The channels whose conversations start a lock: `any`, or names (`agent`: an agent's call or visit)."""
    items = [value] if isinstance(value, str) else value
    known = (*CHANNELS, "agent")
    if not isinstance(items, list) or not items or not all(c == "any" or c in known for c in items):
        raise ValueError(f"conversations: give any or a list of channels among {', '.join(known)}")
    return ["any"] if "any" in items else list(items)


def _count(value, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{key}: '{value}' must be a whole number of at least 1")
    return value


def _choice(value, key: str, allowed: tuple):
    if value not in allowed:
        raise ValueError(f"{key}: '{value}' is not one of {', '.join(map(str, allowed))}")
    return value


def _period(value) -> dict:
    """rolling <duration> | calendar_day | calendar_week (local, weeks from Monday)."""
    text = str(value).strip()
    if text in ("calendar_day", "calendar_week"):
        return {"period": text, "period_minutes": None}
    kind, _, length = text.partition(" ")
    if kind != "rolling":
        raise ValueError(f"period: '{value}' is not rolling <duration> (e.g. rolling 7d), "
                         "calendar_day or calendar_week")
    return {"period": "rolling", "period_minutes": parse_duration(length)}


def _spacing(value) -> dict:
    """calendar Nd: the next contact from the start of the local day N days after the last one's date;
    rolling <duration>: that long after the last one."""
    kind, _, length = str(value).strip().partition(" ")
    if kind == "calendar" and re.fullmatch(r"\d+d", length) and int(length[:-1]) >= 1:
        return {"spacing": "calendar", "spacing_days": int(length[:-1]), "spacing_minutes": None}
    if kind == "rolling":
        return {"spacing": "rolling", "spacing_days": None, "spacing_minutes": parse_duration(length)}
    raise ValueError(f"spacing: '{value}' is not calendar <N>d (e.g. calendar 2d) "
                     "or rolling <duration> (e.g. rolling 48h)")


def _days(value) -> dict:
    if not isinstance(value, dict) or not value:
        raise ValueError("days: give a mapping of days to hours, e.g. { mon-fri: \"08:00-19:00\" }")
    out: dict[str, list] = {}
    for spec, hours in value.items():
        ranges = parse_time_ranges(hours)
        for day in parse_days(spec):
            out[day] = _merge(out.get(day, []) + [list(r) for r in ranges])
    return {d: out[d] for d in DAYS if d in out}


def _merge(ranges: list) -> list:
    merged: list = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    return merged


def _states(value) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(s, str) and s.strip() for s in items):
        raise ValueError("states: give a list of legal states, e.g. [sued, insolvent]")
    return sorted({s.strip().lower() for s in items})


def _flag(value, key: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{key}: '{value}' must be true or false")
    return value


PARSERS = {
    "window": lambda p: {"days": _days(p("days")),
                         "holidays": _choice(p("holidays", "closed"), "holidays", ("closed", "open"))},
    "cap": lambda p: {"max": _count(p("max"), "max"), **_period(p("period")),
                      "scope": _choice(p("scope", "customer"), "scope", ("customer", "debt")),
                      "after_conversation": _flag(p("after_conversation", False), "after_conversation")},
    "after_conversation": lambda p: {"days": _count(p("days"), "days"),
                                     "scope": _choice(p("scope", "customer"), "scope", ("customer", "debt")),
                                     "conversations": _talk_channels(p("conversations", "any"))},
    "distinct_channels": lambda p: {"max": _count(p("max"), "max"), **_period(p("period")),
                                    "after_conversation": _flag(p("after_conversation", False), "after_conversation")},
    "min_spacing": lambda p: _spacing(p("spacing")),
    "consent_required": lambda p: {},
    "stop_states": lambda p: {"states": _states(p("states"))},
}


# -- the guard --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    """A contact a profile's rule forbids now. `until`: the earliest instant at which this rule could stop
    blocking with the same history (None: not without a change of state, e.g. consent or legal status)."""

    profile: str
    rule: str
    until: dt.datetime | None
    reason: str = ""  # compliance:<profile>:<rule>

    def __post_init__(self):
        if not self.reason:
            object.__setattr__(self, "reason", f"compliance:{self.profile}:{self.rule}")


@dataclass
class _Ask:
    """One question to the guard, with the history cut at `now` (facts after it are not known yet)."""

    customer: object
    channel: str
    ids: frozenset
    now: dt.datetime
    history: list  # the contacts sent, and (`conversations`) the conversations, up to `utc` or later
    conversations: list
    utc: dt.datetime | None = None  # `now` in UTC, as the contacts are: aware times of two zones subtract slowly

    # cut at `utc` when a rule first asks: most rules (a window of hours) never look at the history
    @cached_property
    def sent(self) -> list:
        return [c for c in self.history if c.at <= self.utc] if self.utc is not None else self.history

    @cached_property
    def talks(self) -> list:
        return [c for c in self.conversations if c.at <= self.utc] if self.utc is not None else self.conversations

    @property
    def tz(self):
        return self.now.tzinfo

    @property
    def direct(self) -> list:
        """The contacts a rule about direct contact counts: those sent, and an agent's conversations (an
        agent's call or visit, `agent`), a contact of the collector's that collect did not send: the day's
        and the week's contact too, on the phone channel (`voice`). A customer calling in is no contact
        of the collector's, and a conversation on a contact collect sent is that contact."""
        return self.sent + [SentContact(t.at, "voice", t.invoice_ids) for t in self.talks if t.channel == "agent"]


class Guard:
    """Checks contacts against resolved profile docs. With `auto`, a customer gets the profiles of its
    country (customer.country, else `default_country`); otherwise every doc applies to every customer."""

    def __init__(self, docs: list[dict], auto: bool = False, default_country: str | None = None):
        self.profiles = tuple(_Profile(doc) for doc in docs)
        self.auto = auto
        self.default_country = (default_country or "").upper() or None
        self._by_country: dict[str, tuple] = {}

    def _applicable(self, customer) -> tuple:
        if not self.auto:
            return self.profiles
        country = (getattr(customer, "country", None) or self.default_country or "").upper()
        found = self._by_country.get(country)
        if found is None:
            found = self._by_country[country] = tuple(p for p in self.profiles if p.country == country)
        return found

    def profiles_for(self, customer) -> tuple[str, ...]:
        return tuple(p.name for p in self._applicable(customer))

    def without_consents(self, customers) -> list[str]:
        """`profile rule-id` of each rule that needs recorded consent and applies to some of `customers`,
        none of whom has any consent record: every contact to them would be held back (a portfolio
        without consent_* columns, say)."""
        found: dict[str, bool] = {}  # rule -> all of its customers without records so far
        for customer in customers:
            for profile in self._applicable(customer):
                for rule in profile.rules:
                    if isinstance(rule, _ConsentRequired):
                        key = f"{rule.profile} {rule.id}"
                        found[key] = found.get(key, True) and getattr(customer, "consents", None) is None
        return [key for key, none in found.items() if none]

    def check(self, customer, channel: str, invoice_ids, now: dt.datetime, sent, conversations,
              utc: dt.datetime | None = None) -> Block | None:
        """The block on sending `channel` now about `invoice_ids` (empty: all the customer's debts), or None.

        `now` is aware, in the customer's zone (`utc`: the same instant in UTC, if the caller has it). When
        several rules block, the one with the latest `until` is returned (None counts as latest): the
        contact cannot go before every blocking rule frees it."""
        profiles = self._applicable(customer)
        if not profiles or channel in NOT_CONTACTS:
            return None
        if utc is None:  # contacts are UTC instants: compared in one zone, it is quicker
            utc = now.astimezone(dt.timezone.utc)
        ask = _Ask(customer, channel, frozenset(invoice_ids or ()), now, sent, conversations, utc)
        worst = None
        for profile in profiles:
            for rule in profile.rules:
                block = rule.check(ask)
                if block is not None and (worst is None or _later(block, worst)):
                    if block.until is None:
                        return block
                    worst = block
        return worst

    def consent_block(self, customer, channel: str) -> Block | None:
        """The block of a profile that requires consent for `channel` (the customer has none for it), or
        None: the law's reason for what the core finds as `no consent`, so that both read the same."""
        ask = _Ask(customer, channel, frozenset(), None, [], [])
        return next((block for profile in self._applicable(customer) for rule in profile.rules
                     if isinstance(rule, _ConsentRequired) and (block := rule.check(ask)) is not None), None)

    def next_open(self, customer, channel: str, earliest: dt.datetime) -> dt.datetime | None:
        """The first instant >= earliest (aware, customer's zone) inside every applicable window rule for
        the channel: where the core can look for a lawful slot. None: no such instant within the horizon."""
        windows = [r for p in self._applicable(customer) for r in p.windows if r.covers(channel)]
        at, limit = earliest, earliest + HORIZON_DAYS * DAY
        while at <= limit:
            moved = False
            for window in windows:
                opening = window.next_open(at)
                if opening is None:
                    return None
                if opening > at:
                    at, moved = opening, True
            if not moved:
                return at
        return None

    def next_lawful(self, customer, channel: str, invoice_ids, earliest: dt.datetime, sent,
                    conversations) -> dt.datetime | None:
        """The first instant >= earliest at which `check` lets the contact through, with the same history."""
        at, limit = earliest, earliest + HORIZON_DAYS * DAY
        while at <= limit:
            block = self.check(customer, channel, invoice_ids, at, sent, conversations)
            if block is None:
                return at
            if block.until is None:
                return None
            at = block.until.astimezone(earliest.tzinfo)
        return None


def _later(a: Block, b: Block) -> bool:
    if b.until is None:
        return False
    return a.until is None or a.until > b.until


class _Profile:
    def __init__(self, doc: dict):
        self.name, self.country = doc["profile"], doc["country"].upper()
        self.rules = tuple(RULES[r["kind"]](self.name, self.country, r) for r in doc["rules"])
        self.windows = tuple(r for r in self.rules if isinstance(r, _Window))


def covers(channels, channel: str) -> bool:
    """Does a rule whose `channels` are these (resolved: ["any"], or names and `plugins`) limit contacts on
    `channel`? The guard asks it at run time and the compile-time checks alike."""
    if channel in NOT_CONTACTS:
        return False
    return "any" in channels or channel in channels or (PLUGINS in channels and channel not in CHANNELS)


class _Rule:
    def __init__(self, profile: str, country: str, doc: dict):
        self.profile, self.country, self.id = profile, country, doc["id"]
        self.channels = frozenset(doc["channels"])

    def covers(self, channel: str) -> bool:
        return covers(self.channels, channel)

    def block(self, until: dt.datetime | None) -> Block:
        return Block(self.profile, self.id, until)


class _Window(_Rule):
    def __init__(self, profile, country, doc):
        super().__init__(profile, country, doc)
        self.days = tuple(tuple(map(tuple, doc["days"].get(d, ()))) for d in DAYS)
        self.closed_on_holidays = doc["holidays"] == "closed"
        # asked for every send, at the same few tick instants for every customer of a zone; the zone is
        # part of the key because equal instants in two zones are equal datetimes. The fold need not be:
        # hours are read on the wall clock, as the calendar's windows (tests/test_cap_dst.py)
        self._opening = lru_cache(maxsize=16384)(lambda at, tz: self._next_open(at))

    def next_open(self, at: dt.datetime) -> dt.datetime | None:
        return self._opening(at, at.tzinfo)

    def _next_open(self, at: dt.datetime) -> dt.datetime | None:
        for offset in range(HORIZON_DAYS):
            date = at.date() + offset * DAY
            if self.closed_on_holidays and is_holiday(self.country, date):
                continue
            for lo, hi in self.days[date.weekday()]:
                start = max(local_instant(date, lo, at.tzinfo), at)
                if start < local_instant(date, hi, at.tzinfo):
                    return start
        return None

    def check(self, ask: _Ask) -> Block | None:
        if not self.covers(ask.channel):
            return None
        opening = self.next_open(ask.now)
        return None if opening == ask.now else self.block(opening)


class _Period:
    """Which past contacts fall in the current period, and when one of them leaves it."""

    def __init__(self, doc: dict):
        self.kind = doc["period"]
        self.length = dt.timedelta(minutes=doc["period_minutes"] or 0)

    def _start_date(self, date: dt.date) -> dt.date:
        return date - date.weekday() * DAY if self.kind == "calendar_week" else date

    def holds(self, at: dt.datetime, ask: _Ask) -> bool:
        if self.kind == "rolling":
            return ask.utc - at < self.length
        return self._start_date(at.astimezone(ask.tz).date()) == self._start_date(ask.now.date())

    def frees(self, at: dt.datetime, ask: _Ask) -> dt.datetime:
        if self.kind == "rolling":
            return elapsed_after(at, self.length)
        days = 7 if self.kind == "calendar_week" else 1
        return local_instant(self._start_date(ask.now.date()) + days * DAY, 0, ask.tz)


def elapsed_after(at: dt.datetime, length: dt.timedelta) -> dt.datetime:
    """`at` plus `length` of elapsed time, in `at`'s zone: a rolling week is 168 hours across a
    daylight-saving change too, where a time of a zone plus 7 days moves on its wall clock (an hour off)."""
    return (at.astimezone(dt.timezone.utc) + length).astimezone(at.tzinfo)


_ANY_DEBT = object()  # the key of contacts about all the customer's debts only


def _debt_keys(scope: str, ids: frozenset, contacts: list) -> list:
    """The debts whose count decides: per customer one count; per debt, each debt the contact is about
    (about all debts: every debt seen in the history, and the count of the all-debts contacts alone)."""
    if scope == "customer":
        return [None]
    if ids:
        return list(ids)
    return list({i for c in contacts for i in c.invoice_ids}) + [_ANY_DEBT]


def _concerns(contact, key) -> bool:
    return key is None or not contact.invoice_ids or key in contact.invoice_ids


class _Cap(_Rule):
    def __init__(self, profile, country, doc):
        super().__init__(profile, country, doc)
        self.max, self.scope, self.after_talk = doc["max"], doc.get("scope", "customer"), doc["after_conversation"]
        self.period = _Period(doc)

    def check(self, ask: _Ask) -> Block | None:
        if not self.covers(ask.channel) or (self.after_talk and not ask.talks):
            return None
        history = ask.direct if self.after_talk else ask.sent
        inside = [c for c in history if self.covers(c.channel) and self.period.holds(c.at, ask)]
        until = None
        for key in _debt_keys(self.scope, ask.ids, inside):
            times = sorted(c.at for c in inside if _concerns(c, key))
            if len(times) + 1 > self.max:  # the contact being decided is one more
                free = self.period.frees(times[len(times) - self.max], ask)
                until = free if until is None else max(until, free)
        return None if until is None else self.block(until)


class _AfterConversation(_Rule):
    def __init__(self, profile, country, doc):
        super().__init__(profile, country, doc)
        self.days, self.scope = doc["days"], doc["scope"]
        talks = doc.get("conversations", ["any"])
        self.talks = None if "any" in talks else frozenset(talks)  # Reg F: telephone conversations only

    def check(self, ask: _Ask) -> Block | None:
        if not self.covers(ask.channel):
            return None
        until = None
        for talk in ask.talks:
            if self.talks is not None and talk.channel not in self.talks:
                continue
            if self.scope == "debt" and talk.invoice_ids and ask.ids and not ask.ids.intersection(talk.invoice_ids):
                continue
            # the conversation's day is day 1: the lock ends when day `days` ends, in local time
            end = local_instant(talk.at.astimezone(ask.tz).date() + self.days * DAY, 0, ask.tz)
            if end > ask.now:
                until = end if until is None else max(until, end)
        return None if until is None else self.block(until)


class _DistinctChannels(_Rule):
    def __init__(self, profile, country, doc):
        super().__init__(profile, country, doc)
        self.max, self.after_talk, self.period = doc["max"], doc["after_conversation"], _Period(doc)

    def check(self, ask: _Ask) -> Block | None:
        if not self.covers(ask.channel) or (self.after_talk and not ask.talks):
            return None
        last: dict[str, dt.datetime] = {}
        for c in ask.direct if self.after_talk else ask.sent:
            if self.covers(c.channel) and self.period.holds(c.at, ask):
                last[c.channel] = max(last.get(c.channel, c.at), c.at)
        # the channels of the period with this one must stay within max: contacts made before the rule
        # applied (before a conversation) may already use more, and then even a used channel must wait
        others = [at for channel, at in last.items() if channel != ask.channel]
        if len(others) < self.max:
            return None
        leaves = sorted(self.period.frees(at, ask) for at in others)
        return self.block(leaves[len(others) - self.max])  # enough other channels gone to make room for this one


class _MinSpacing(_Rule):
    def __init__(self, profile, country, doc):
        super().__init__(profile, country, doc)
        self.days = doc["spacing_days"]
        self.gap = dt.timedelta(minutes=doc["spacing_minutes"] or 0)

    def check(self, ask: _Ask) -> Block | None:
        if not self.covers(ask.channel):
            return None
        times = [c.at for c in ask.sent if self.covers(c.channel)]
        if not times:
            return None
        last = max(times)
        if self.days is not None:
            free = local_instant(last.astimezone(ask.tz).date() + self.days * DAY, 0, ask.tz)
        else:
            free = elapsed_after(last, self.gap)
        return self.block(free) if free > ask.utc else None


class _ConsentRequired(_Rule):
    def check(self, ask: _Ask) -> Block | None:
        if not self.covers(ask.channel):
            return None
        consents = getattr(ask.customer, "consents", None)
        return None if consents is not None and ask.channel in consents else self.block(None)


class _StopStates(_Rule):
    def __init__(self, profile, country, doc):
        super().__init__(profile, country, doc)
        self.states = frozenset(doc["states"])

    def check(self, ask: _Ask) -> Block | None:
        status = (getattr(ask.customer, "legal_status", None) or "").strip().lower()
        return self.block(None) if status in self.states and self.covers(ask.channel) else None


RULES = {"window": _Window, "cap": _Cap, "after_conversation": _AfterConversation,
         "distinct_channels": _DistinctChannels, "min_spacing": _MinSpacing,
         "consent_required": _ConsentRequired, "stop_states": _StopStates}


@lru_cache(maxsize=None)
def _holiday_table(country: str):
    import holidays

    return holidays.country_holidays(country)


@lru_cache(maxsize=65536)
def is_holiday(country: str, date: dt.date) -> bool:
    """A public holiday of the profile's country (the `holidays` package; Colombia's moved-to-Monday ones too)."""
    return date in _holiday_table(country)

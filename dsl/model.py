"""The typed policy model (pydantic, frozen, unknown keys forbidden).

Validators normalise the literal syntaxes (durations, times, triggers, day ranges) so that two
spellings of the same policy (`7d` / `1w`, YAML / text DSL) give the same model and the same plan.
Expressions and templates stay text here; the compiler checks them against the field schema.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal, Union

from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, StrictBool,
                      StrictFloat, StrictInt, StrictStr, Tag, ValidationInfo, WithJsonSchema, field_validator,
                      model_validator)

from . import holidaycheck, timeparse
from .fields import BUILTIN_FIELDS, currency_problem

BUILTIN_CHANNELS = ("email", "sms", "whatsapp", "voice", "letter", "webhook", "agent")
EVENT_TYPES = ("promise_broken", "promise_made", "promise_kept", "payment_partial", "payment_received",
               "dispute_opened", "dispute_resolved")
FIELD_TYPES = ("str", "int", "float", "decimal", "bool", "date", "datetime")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


class Model(BaseModel):
    # A key is read only as the file writes it: no populate_by_name, or a step's `if_:` / `for_:` (the Python
    # names of `if` / `for`) would be taken silently where `collect schema` and the docs say unknown key.
    model_config = ConfigDict(extra="forbid", frozen=True)


def _duration(value) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError("expected a duration such as 7d, 12h, 30m or 2w")
    return timeparse.format_duration(timeparse.parse_duration(str(value)))


def _trigger(value) -> str:
    if not isinstance(value, str):
        raise ValueError("expected a trigger such as due-5d, due+1d 10:00 or event+1d")
    return str(timeparse.parse_trigger(value))


def _identifier(value) -> str:
    if isinstance(value, str) and _IDENT.match(value):
        return value
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        raise ValueError(f"'{value}' is not a valid name: use letters, digits, '_' and '-', starting with a letter")
    # not text at all: say what YAML read, in YAML's words (`true`, not Python's `True`)
    raise ValueError(f"expected a name (letters, digits, '_' and '-', starting with a letter), not {_yaml_kind(value)}")


def _yaml_kind(value) -> str:
    if isinstance(value, bool):
        return f"the boolean {'true' if value else 'false'}"
    if value is None:
        return "an empty value"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    return "a list" if isinstance(value, list) else "a mapping" if isinstance(value, dict) else type(value).__name__


def _one_or_many(value):
    return [value] if isinstance(value, str) else value


def _expression(value):
    """YAML reads `when: true` or `priority: 5` as a boolean or a number: take them as the literal."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return value


# The JSON Schema (`collect schema`) describes the file as written, so each literal syntax says what
# it accepts before normalisation (see file_schema).
_DAY = "|".join("".join(f"[{c}{c.upper()}]" for c in day) for day in timeparse.DAYS)
_DAYS_RX = rf"^\s*(?:{_DAY})(?:-(?:{_DAY}))?(?:\s*,\s*(?:{_DAY})(?:-(?:{_DAY}))?)*\s*$"
_HOURS_RX = r"^\s*\d{1,2}:\d{2}\s*-\s*\d{1,2}:\d{2}(?:\s*,\s*\d{1,2}:\d{2}\s*-\s*\d{1,2}:\d{2})*\s*$"
_NAME_SCHEMA = {"type": "string", "pattern": _IDENT.pattern, "maxLength": 100}
_EXPR_SCHEMA = {"anyOf": [{"type": "string", "minLength": 1}, {"type": "boolean"}, {"type": "number"}],
                "description": "an expression (docs/language.md#expressions)"}

Duration = Annotated[str, BeforeValidator(_duration), WithJsonSchema(
    {"type": "string", "pattern": r"^\s*\d+\s*[mhdw]\s*$", "description": "a duration: 30m, 12h, 7d, 2w"})]
# a length of time that must be more than none (a cap's window, a cooldown): `0d` is an error, not "off"
PositiveDuration = Annotated[str, BeforeValidator(_duration), WithJsonSchema(
    {"type": "string", "pattern": r"^\s*0*[1-9]\d*\s*[mhdw]\s*$",
     "description": "a duration of more than 0: 30m, 12h, 7d, 2w"})]
TriggerText = Annotated[str, BeforeValidator(_trigger), WithJsonSchema(
    {"type": "string", "pattern": r"^\s*(?:due|event|promise)\s*(?:[+-]\s*\d+\s*d)?\s*(?:\s\d{1,2}:\d{2})?\s*$",
     "description": "due±Nd, event±Nd or promise±Nd, optionally followed by a local time HH:MM"})]
# at most 100 characters: the store keeps step, stage, template, queue and policy names in columns that long
Name = Annotated[str, BeforeValidator(_identifier), Field(max_length=100), WithJsonSchema(_NAME_SCHEMA)]
Expr = Annotated[str, BeforeValidator(_expression), Field(min_length=1), WithJsonSchema(_EXPR_SCHEMA)]
Channels = Annotated[list[str], BeforeValidator(_one_or_many), WithJsonSchema(
    {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}],
     "description": "a channel, or channels tried in order"})]


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"'{text}' is not a date; write YYYY-MM-DD, e.g. 2026-12-24") from None


def _holiday(value):
    if isinstance(value, str):
        return _date(value)
    if isinstance(value, (bool, int, float)):  # pydantic would read a number as seconds since 1970
        raise ValueError(f"expected a date, YYYY-MM-DD (e.g. 2026-12-24), not {_yaml_kind(value)}")
    return value


HolidayDate = Annotated[dt.date, BeforeValidator(_holiday)]  # checked one by one: an error points at its date


class Calendar(Model):
    country: str | None = None
    subdivision: str | None = None
    extra_holidays: list[HolidayDate] = []
    weekend: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = ["sat", "sun"]
    # whose public holidays close the windows: the policy's `country` for everyone, or each customer's
    # own `customer.country` (the policy's for a customer without one)
    holidays_by: Literal["policy", "customer"] = "policy"

    @field_validator("country")
    @classmethod
    def _known_country(cls, value):
        # the run takes the public holidays from the `holidays` package, which fails on a code it does not know
        problem = value and holidaycheck.country_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("subdivision")
    @classmethod
    def _known_subdivision(cls, value, info: ValidationInfo):
        # without a valid country there is nothing to look it up in: a bad country is reported on its own (and
        # a country left out cannot be told from one that error recovery took out, so no error for that here)
        country = info.data.get("country")
        if value is None or not country:
            return value
        problem = holidaycheck.subdivision_problem(country, value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("extra_holidays")
    @classmethod
    def _sorted(cls, value):
        return sorted(set(value))


class Cap(Model):
    channel: str = "any"
    max: StrictInt = Field(gt=0, le=10_000)  # strict: YAML's `true` is no count (lax pydantic reads it as 1)
    per: PositiveDuration
    cooldown_after_conversation: PositiveDuration | None = None

    @field_validator("per")
    @classmethod
    def _some_period(cls, value):
        if timeparse.parse_duration(value) == 0:  # a window of no length: the cap would never hold anything
            raise ValueError("per must be more than 0: a cap counts the contacts of a period such as 1d or 7d")
        return value

    @field_validator("cooldown_after_conversation")
    @classmethod
    def _some_cooldown(cls, value):
        if value is not None and timeparse.parse_duration(value) == 0:
            raise ValueError("cooldown_after_conversation must be more than 0 (for no cooldown, leave it out)")
        return value


class Escalation(Model):
    queue: Name
    priority: Expr | None = None


def _exhausted_schema(schema: dict) -> None:
    """`on_exhausted: escalate`, `{ queue, priority }` or `{ escalate: { queue, priority } }`."""
    escalation = dict(schema["anyOf"][0])  # the reference to Escalation, as pydantic writes it
    schema["anyOf"] += [{"const": "escalate"},
                        {"type": "object", "additionalProperties": False, "required": ["escalate"],
                         "properties": {"escalate": escalation}}]


class Step(Model):
    id: Name
    at: TriggerText
    for_: Expr | None = Field(None, alias="for")
    if_: Expr | None = Field(None, alias="if")
    send: Channels | None = None
    template: Name | None = None
    escalate: Escalation | None = None
    webhook: Name | None = None
    stop: StrictBool = False  # strict: only true/false, as YAML reads them (`stop: no` is the text "no")
    on_exhausted: Escalation | None = Field(None, json_schema_extra=_exhausted_schema)

    @field_validator("on_exhausted", mode="before")
    @classmethod
    def _exhausted(cls, value):
        if value == "escalate":  # shorthand: a task in the default queue
            return {"queue": "collections"}
        if isinstance(value, dict) and set(value) == {"escalate"}:
            return value["escalate"]
        return value

    @model_validator(mode="after")
    def _one_action(self):
        if self.send is not None and not self.send:  # before the count, which takes `send: []` for none
            raise ValueError("send needs at least one channel")
        actions = [name for name in ("send", "escalate", "webhook") if getattr(self, name)]
        actions += ["stop"] if self.stop else []
        if len(actions) != 1:
            found = ", ".join(actions) or "none"
            raise ValueError(f"a step does exactly one of send, escalate, webhook, stop (found: {found})")
        if self.send and not self.template:
            raise ValueError("a send step needs a template")
        if self.template and not self.send:
            raise ValueError("only a send step takes a template")
        if self.on_exhausted and not self.send:
            raise ValueError("on_exhausted applies to send steps only")
        return self

    @property
    def action(self) -> str:
        return "send" if self.send else "escalate" if self.escalate else "webhook" if self.webhook else "stop"

    @property
    def trigger(self) -> timeparse.Trigger:
        return timeparse.parse_trigger(self.at)


class Stage(Model):
    when: Expr
    steps: list[Step] = []


class EmailTemplate(Model):
    subject: str
    body: str
    html: str | None = None


class WhatsAppTemplate(Model):
    template_name: str
    language: str
    params: list[str] = []


class BodyTemplate(Model):
    body: str


def _template_kind(value) -> str | None:
    if isinstance(value, str):
        return "text"
    if isinstance(value, dict):
        if {"template_name", "language", "params"} & set(value):
            return "whatsapp"
        # one key and no subject: a channel's { body } with a misspelt key, not an email without its subject
        return "email" if {"subject", "html"} & set(value) or len(value) > 1 else "body"
    return None


# Dispatch on the shape, so that a wrong template gets one clear error instead of one per union member.
ChannelTemplate = Annotated[
    Union[
        Annotated[str, Tag("text")],
        Annotated[EmailTemplate, Tag("email")],
        Annotated[WhatsAppTemplate, Tag("whatsapp")],
        Annotated[BodyTemplate, Tag("body")],
    ],
    Discriminator(_template_kind, custom_error_type="template", custom_error_message=(
        "a template is text, { subject, body } for email, or { template_name, language, params } for WhatsApp")),
]


def _percentage(value: int) -> int:
    if value < 0:
        raise ValueError("variant percentages cannot be negative")
    return value


class Experiment(Model):
    unit: Literal["customer", "invoice"] = "customer"
    # each percentage checked on its own, so that the total is checked only when they are all valid
    # strict: `true` is no percentage (lax pydantic reads it as 1)
    variants: dict[Name, Annotated[StrictInt, AfterValidator(_percentage)]]

    @field_validator("variants")
    @classmethod
    def _percentages(cls, value):
        if sum(value.values()) != 100:
            raise ValueError(f"variant percentages must add up to 100 (they add up to {sum(value.values())})")
        return value


def _day_spec(value) -> str:
    """A window's key as written (`mon-fri`), once it reads as days: `_per_day` spreads it, and tells a
    day given twice at the key that gives it again (two spellings of one set of days, `mon-wed` and
    `mon,tue,wed`, stay two keys instead of one silently replacing the other)."""
    timeparse.parse_days(str(value))
    return str(value)


def _time_ranges(value) -> list[list[int]]:
    if value in ("closed", None, ""):
        return []
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        value = ", ".join(value)  # ["08:00-12:00", "14:00-18:00"] says the same as "08:00-12:00, 14:00-18:00"
    if not isinstance(value, str):
        raise ValueError('expected hours such as "08:00-19:00" (or several: "08:00-12:00, 14:00-18:00")')
    return [list(r) for r in timeparse.parse_time_ranges(value)]


class AtKey(ValueError):
    """A mapping's error that belongs to one of its keys: reported at that key, not at the mapping."""

    def __init__(self, message: str, key: str):
        super().__init__(message)
        self.key = key


def _per_day(spec: dict[str, list[list[int]]]) -> dict[str, list[list[int]]]:
    """{'mon-tue': ranges} -> {'mon': ranges, 'tue': ranges}. A day given twice is an error at the key that
    gives it again (`mon-fri` then `wed`): on the second line of a channel written in two `window`
    statements. It comes after the keys' and hours' own errors (this runs once they are all valid)."""
    days: dict[str, list[list[int]]] = {}
    for key, ranges in spec.items():
        for day in timeparse.parse_days(key):
            if day in days:
                raise AtKey(f"'{day}' appears twice in this window", key)
            days[day] = ranges
    return {d: days[d] for d in timeparse.DAYS if d in days}


_HOURS_SCHEMA = {"anyOf": [{"type": "string", "pattern": _HOURS_RX}, {"enum": ["closed", ""]}, {"type": "null"},
                          {"type": "array", "items": {"type": "string", "pattern": _HOURS_RX}, "minItems": 1}],
                 "description": 'hours such as "08:00-19:00" or "08:00-12:00, 14:00-18:00", or closed'}
ChannelWindow = Annotated[
    dict[Annotated[str, BeforeValidator(_day_spec)], Annotated[list[list[int]], BeforeValidator(_time_ranges)]],
    AfterValidator(_per_day),
    WithJsonSchema({"type": "object", "propertyNames": {"pattern": _DAYS_RX}, "additionalProperties": _HOURS_SCHEMA,
                    "description": "days (mon-fri, sat, mon,wed) -> hours"}),
]


class Windows(Model):
    """Per channel: days -> hours, normalised to {day: [[start, end], ...]} in minutes after midnight."""

    model_config = ConfigDict(extra="allow", frozen=True)
    __pydantic_extra__: dict[str, ChannelWindow]
    holidays: Literal["closed", "open"] = "closed"

    def channels(self) -> dict[str, dict[str, list[list[int]]]]:
        return dict(self.model_extra or {})


# a compliance setting's value, typed as YAML types it (the text DSL reads bare words the same way)
Setting = Annotated[
    StrictBool | StrictInt | Annotated[StrictFloat, Field(allow_inf_nan=False)] | StrictStr,
    WithJsonSchema({"type": ["string", "number", "boolean"], "description": "a word, a number or a duration"}),
]
_FIELD_NAME = re.compile(r"^(customer|invoice)\.[a-z_][a-z0-9_]*$")


def _field_name(name: str) -> str:
    """Checked one by one, so that a bad name does not take the other custom fields with it."""
    if not _FIELD_NAME.match(name):
        raise ValueError(f"custom field '{name}' must be named customer.<name> or invoice.<name> (lowercase)")
    if name in BUILTIN_FIELDS:  # the readers and the expressions would each take a different type
        raise ValueError(f"'{name}' is a built-in field ({BUILTIN_FIELDS[name]}): leave it out of fields, or "
                         "give the column another name")
    return name


# the compliance profiles by name, or `auto`: told apart by shape, so a mistake gets one error, not one per form
Compliance = Annotated[
    Union[Annotated[Literal["auto"], Tag("auto")], Annotated[list[str], Tag("list")]],
    Discriminator(lambda v: "list" if isinstance(v, list) else "auto"),
]
_FIELDS_SCHEMA = {"type": "object", "propertyNames": {"pattern": _FIELD_NAME.pattern},
                  "additionalProperties": {"enum": list(FIELD_TYPES)}}


class Policy(Model):
    policy: Name
    description: str = ""
    timezone: str
    currency: str = Field("USD", json_schema_extra={"pattern": "^[A-Z]{3}$"})
    calendar: Calendar = Calendar()
    fields: Annotated[dict[Annotated[str, AfterValidator(_field_name)], Literal[FIELD_TYPES]],  # type: ignore[valid-type]
                      WithJsonSchema(_FIELDS_SCHEMA)] = {}
    compliance: Compliance = []
    # profile -> setting -> value; which profiles and settings exist is the compliance pass's business
    compliance_settings: dict[Name, dict[Name, Setting]] = {}
    windows: Windows = Windows()
    caps: list[Cap] = []
    on_cap: Literal["defer", "skip"] = "defer"
    segments: dict[Name, Expr] = {}
    group_by: Literal["customer", "invoice"] = "customer"
    catch_up: Literal["latest", "all", "none"] = "latest"
    max_lateness: Duration = "3d"
    templates: dict[Name, dict[str, ChannelTemplate]] = {}
    templates_dir: str | None = None
    stages: dict[Name, Stage]
    events: dict[Literal[EVENT_TYPES], list[Step]] = {}  # type: ignore[valid-type]
    pause_when: list[Literal["promise_active", "disputed"]] = ["promise_active", "disputed"]
    stop_when: list[Literal["paid", "written_off"]] = ["paid", "written_off"]
    experiments: dict[Name, Experiment] = {}

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value):
        if value not in timeparse.time_zones():
            found = timeparse.closest_zone(value) if isinstance(value, str) else None
            raise ValueError(f"'{value}' is not an IANA time zone ({f'did you mean {found!r}?' if found else 'e.g. America/Lima'})")
        return value

    @field_validator("currency")
    @classmethod
    def _currency(cls, value):
        if (problem := currency_problem(value)) is not None:
            raise ValueError(problem)
        return value

    def all_steps(self):
        """(path, stage or event name, step) for every step, in file order."""
        for stage_name, stage in self.stages.items():
            for i, step in enumerate(stage.steps):
                yield ("stages", stage_name, "steps", i), stage_name, step
        for event, steps in self.events.items():
            for i, step in enumerate(steps):
                yield ("events", event, i), event, step


def file_schema() -> dict:
    """The JSON Schema of a policy file as people write it (for editors: `collect schema`)."""
    schema = Policy.model_json_schema(mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema,
            "description": "A collect policy (docs/language.md)."}

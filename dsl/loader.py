"""Load a policy file (YAML or text DSL) into the typed model, with every problem as a Diagnostic."""

from __future__ import annotations

import copy
import reprlib
import types
import typing
from pathlib import Path

from pydantic import BaseModel, ValidationError

from . import holidaycheck
from .diagnostics import Diagnostics, PolicyError, Span, closest, suggest
from .model import AtKey, Policy
from .recovery import replace
from .source import Located

TEXT_SUFFIXES = (".collect",)
YAML_SUFFIXES = (".yaml", ".yml")


def is_text_dsl(file: str | Path) -> bool:
    """A .collect file (any case): parsed by the text front end, its hints written in its syntax."""
    return Path(file).suffix.lower() in TEXT_SUFFIXES
MAX_ROUNDS = 8  # stand-ins can uncover checks that did not run yet (a model's own rules); a few rounds do


def read_source(path: str | Path, diags: Diagnostics, text: str | None = None) -> Located | None:
    """Parse a file into a Located document, choosing the front end by its suffix."""
    path = Path(path)
    name = str(path)
    # the portfolio given for the policy, say; a name without a suffix (/dev/stdin) is read as YAML
    if path.suffix and path.suffix.lower() not in TEXT_SUFFIXES + YAML_SUFFIXES:
        diags.error("not-a-policy", f"a policy file is named *.yaml or *.yml (YAML) or *.collect (the text DSL), "
                    f"not {path.name}", Span(name, 1, 1))
        return None
    if text is None:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            diags.error("file-unreadable", f"cannot read the policy file: {exc}", Span(name, 1, 1))
            return None
    if is_text_dsl(path):
        from .text import load_text

        return load_text(text, name, diags)
    from .yamlload import load_yaml

    return load_yaml(text, name, diags)


def validate(located: Located, diags: Diagnostics, recover: bool = False) -> Policy | None:
    """Validate located data against the model; pydantic errors become positioned diagnostics.

    Returns None when the file has errors, unless `recover`: then each value that fails is replaced by
    a harmless stand-in (its path noted in `located.broken`) and the rest validated again, so that the
    compiler can still check names, expressions and templates and one run reports every error. Such a
    model is only good for finding more errors.
    """
    if not isinstance(located.data, dict):
        diags.error("not-a-mapping", "a policy file is a mapping of keys (policy:, timezone:, stages: ...)",
                    located.span(()))
        return None
    data = located.data
    calendar_ok = _check_calendar(located, diags)
    reported: set = set()
    unsure: set = set()  # mappings that had an unknown key removed: their own rules may not hold without it
    for _ in range(MAX_ROUNDS):
        try:
            policy = Policy.model_validate(data)
            return policy if recover or (calendar_ok and not reported) else None
        except ValidationError as exc:
            errors = [e for e in exc.errors(include_url=False) if _key(e) not in reported]
        reported.update(map(_key, errors))
        _report_all(errors, located, diags, data, unsure)
        if not recover or not errors:
            return None
        data = copy.deepcopy(data) if data is located.data else data  # stand-ins go into a copy
        for error in errors:
            if error["type"] == "extra_forbidden":
                unsure.add(_data_path(tuple(error["loc"]), data)[:-1])
            replace(error, data, located)
    return None


def _key(error: dict) -> tuple:
    return tuple(map(str, error["loc"])), error["type"]


def _check_calendar(located: Located, diags: Diagnostics) -> bool:
    """Report a subdivision written without a country (False when it does). Checked here, on the file as
    written: in the model a country left out cannot be told from one that error recovery took out."""
    calendar = located.data.get("calendar")
    if not isinstance(calendar, dict):
        return True
    problem = holidaycheck.lone_subdivision_problem(calendar.get("country"), calendar.get("subdivision"))
    if problem:
        diags.error("bad-value", problem, located.span(("calendar", "subdivision")))
    return not problem


def _report_all(errors: list[dict], located: Located, diags: Diagnostics, data, unsure: set) -> None:
    # a value that fits none of a union's types (a setting: true or false, a number or text) gets one
    # pydantic error per type; the reader gets one message that lists them
    expected: dict[tuple, list[str]] = {}
    for error in errors:
        if _is_type_error(error["type"]):
            alternatives = expected.setdefault(_data_path(tuple(error["loc"]), data), [])
            if (what := _expected(error)) not in alternatives:
                alternatives.append(what)
    misspelt = _misspelt_required(errors)
    for error in errors:
        path = _data_path(tuple(error["loc"]), data)
        if located.is_broken(path) or path in unsure:  # about a stand-in, not about the file
            continue
        if error["type"] == "missing" and tuple(error["loc"]) in misspelt:
            continue  # `bdy:` for `body:`: the unknown key's "did you mean 'body'?" says it, once
        if _is_type_error(error["type"]):
            if path not in expected:
                continue  # said with the first of its union's errors
            error = {**error, "expected": _either(expected.pop(path))}
        _report(error, located, diags, data)


def _misspelt_required(errors: list[dict]) -> set[tuple]:
    """The locations of required keys that are missing because an unknown key beside them is their
    misspelling."""
    meant = set()  # (parent, key) that an unknown key's "did you mean" names, as _unknown_key says it
    for error in errors:
        if error["type"] == "extra_forbidden":
            parent = tuple(error["loc"][:-1])
            model = _model_at(parent)
            if model is not None and (found := closest(str(error["loc"][-1]), _allowed_keys(model))):
                meant.add(parent + (found,))
    return {tuple(e["loc"]) for e in errors if e["type"] == "missing" and tuple(e["loc"]) in meant}


def _is_type_error(kind: str) -> bool:
    return kind.endswith("_type") or kind.endswith("_parsing") or kind == "int_from_float"


def _expected(error: dict) -> str:
    """What a type error expected, in a YAML writer's words."""
    message = error["msg"].lower().removeprefix("input should be ")
    return _EXPECTED.get(error["type"].split("_")[0], message)


# what a .collect file lacks, said in its own syntax rather than as a YAML key
_TEXT_LINES = {"policy": "a `policy NAME` line", "timezone": "a `timezone ZONE` line (timezone America/Lima)",
               "stages": "at least one stage: stage NAME when EXPRESSION { ID at due+1d: ... }"}


def plain_message(error: dict) -> str:
    """One pydantic error of a side file (a behavior model) in a YAML writer's words, as a policy's are
    said: "wrong type: expected a whole number, got true", not "Input should be a valid integer"."""
    kind = error["type"]
    if _is_type_error(kind):
        return f"wrong type: expected {_expected(error)}, got {_found(error.get('input'))}"
    message = error["msg"].removeprefix("Value error, ")
    return "must be " + message[len("Input should be "):] if message.startswith("Input should be ") else message


def _either(alternatives: list[str]) -> str:
    return alternatives[0] if len(alternatives) == 1 else ", ".join(alternatives[:-1]) + " or " + alternatives[-1]


def _report(error: dict, located: Located, diags: Diagnostics, data) -> None:
    loc = tuple(error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        _unknown_key(loc, located, diags, data)
        return
    # pydantic appends the union tag or "[key]" to the location; positions live on the real path
    path = _data_path(loc, data)
    prefer_key = "[key]" in loc
    if isinstance(error.get("ctx", {}).get("error"), AtKey):  # an error of one key of the mapping at `path`
        path, prefer_key = path + (error["ctx"]["error"].key,), True
    span = located.span(path, prefer_key=prefer_key)
    message = error["msg"].removeprefix("Value error, ")
    if kind == "missing":
        field = loc[-1]
        parent = _data_path(loc[:-1], data)
        if not parent and field in _TEXT_LINES and is_text_dsl(located.file):
            diags.error("missing-key", f"a policy needs {_TEXT_LINES[field]}", located.span(parent))
            return
        where = "/".join(str(p) for p in parent) or "the policy"
        diags.error("missing-key", f"'{field}' is required in {where}", located.span(parent))
        return
    value = error.get("input")
    if kind == "literal_error" and loc[-1:] == ("auto",):  # `compliance:`: auto, else a list of profiles
        message = f"expected auto or a list of profiles, got {_found(value)}"
    elif kind == "literal_error":
        # a choice left blank or written true reads as YAML's null or boolean: say so, not None or True
        shown = f"'{value}'" if isinstance(value, str) else _found(value)
        message = f"{shown} is not allowed here; expected {error['ctx']['expected']}"
    elif kind in _LIMITS:
        subject = f"the name '{path[-1]}'" if prefer_key else path[-1] if path else "the value"  # a mapping's key
        message = f"{subject} " + _LIMITS[kind].format(**error.get("ctx", {}))
    elif _is_type_error(kind):
        message = f"wrong type: expected {error['expected']}, got {_found(error.get('input'))}"
    hint = None
    if len(path) == 2 and path[0] == "windows" and _is_type_error(kind):  # `holiday: open` is read as a channel
        hint = suggest(str(path[1]), ("holidays",))
    elif path[-1:] in (("escalate",), ("on_exhausted",)) and _is_type_error(kind) and isinstance(value, str):
        # `on_exhausted: escalte` is the short form misspelt; `escalate: agents` names no key
        short = suggest(value, ("escalate",)) if path[-1] == "on_exhausted" else None
        hint = short or f"the queue goes in `queue:`, as {{ queue: {value} }}"
    if kind == "literal_error" and loc[-1:] == ("auto",) and isinstance(value, str):
        # `automatic` means auto; `none` no profile; any other word is taken for a profile's name
        hint = ("write [] for no profile" if value == "none" else suggest(value, ("auto",)) or f"write [{value}]")
    elif kind == "literal_error" and isinstance(value, str):  # a misspelt word, not a blank
        options = [o.strip(" '") for o in error["ctx"]["expected"].replace(" or ", ",").split(",")]
        hint = suggest(value, options)
    diags.error(_code(kind), message, span, hint)


# What a type error expected, by the first word of pydantic's error type (int_type, int_parsing, int_from_float
# ...), said as a YAML writer would: not pydantic's message, which names Python's types.
_EXPECTED = {"int": "a whole number", "float": "a number", "decimal": "a number", "bool": "true or false",
             "string": "text", "date": "a date (YYYY-MM-DD)", "datetime": "a date and time", "list": "a list",
             "tuple": "a list", "set": "a list", "dict": "a mapping (key: value)", "model": "a mapping (key: value)"}


class _YamlRepr(reprlib.Repr):
    """A value cut short (an alias may stand for a huge list), with YAML's true, false and null."""

    def repr_bool(self, value, level):
        return "true" if value else "false"

    def repr_NoneType(self, value, level):
        return "null"


def _found(value) -> str:
    """What YAML (or the text DSL) read, in its words: never a Python type name (str, NoneType ...)."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "true" if value else "false"
    kind = ("text" if isinstance(value, str) else "the number" if isinstance(value, (int, float))
            else "a list" if isinstance(value, list) else "a mapping" if isinstance(value, dict) else "the value")
    return f"{kind} {_YamlRepr().repr(value)}"


_LIMITS = {"greater_than": "must be more than {gt}", "less_than_equal": "must be at most {le}",
           "too_short": "must not be empty", "string_too_short": "must not be empty",
           "too_long": "is longer than {max_length} characters (the store keeps names of up to {max_length})"}


def _data_path(loc: tuple, data) -> tuple:
    """Drop the parts pydantic adds to a location (union tags, "[key]") that are not in the data."""
    path = []
    for part in loc:
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        else:
            continue
        path.append(part)
    return tuple(path)


def _code(kind: str) -> str:
    return {"value_error": "bad-value", "literal_error": "bad-choice", "template": "bad-template",
            **dict.fromkeys(_LIMITS, "bad-value")}.get(kind, "wrong-type")


def _unknown_key(loc: tuple, located: Located, diags: Diagnostics, data) -> None:
    key = loc[-1]
    parent_model = _model_at(loc[:-1])
    allowed = _allowed_keys(parent_model) if parent_model else []
    parent = _data_path(loc[:-1], data)
    where = "at the top level" if not parent else f"in {'/'.join(str(p) for p in parent)}"
    diags.error("unknown-key", f"unknown key '{key}' {where}", located.span(parent + (key,), prefer_key=True),
                suggest(str(key), allowed))


def _allowed_keys(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def _model_at(loc: tuple) -> type[BaseModel] | None:
    """Follow the model's annotations along a pydantic location to the model that owns its last key."""
    from .model import Policy

    annotation = Policy
    for part in loc:
        annotation = _step_into(annotation, part)
        if annotation is None:
            return None
    annotation = _unwrap(annotation)
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _unwrap(annotation):
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _step_into(annotation, part):
    annotation = _unwrap(annotation)
    origin = typing.get_origin(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        for name, field in annotation.model_fields.items():
            if part in (name, field.alias):
                return field.annotation
        return None
    if origin is dict:
        return typing.get_args(annotation)[1]
    if origin is list:
        return typing.get_args(annotation)[0]
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):  # a union tag names the member that was tried
            if any(getattr(meta, "tag", None) == part for meta in getattr(arg, "__metadata__", ())):
                return _unwrap(arg)
        members = [a for a in map(_unwrap, typing.get_args(annotation)) if a is not type(None)]
        return _step_into(members[0], part) if len(members) == 1 else None
    return None


def load_policy(path: str | Path, text: str | None = None,
                recover: bool = False) -> tuple[Policy | None, Located | None, Diagnostics]:
    """Read and validate a policy. Returns the model (None on errors unless `recover`, see validate),
    its positions and the diagnostics."""
    diags = Diagnostics()
    located = read_source(path, diags, text)
    if located is None or (diags.errors and not recover):
        return None, located, diags
    return validate(located, diags, recover), located, diags


def load_policy_or_raise(path: str | Path) -> tuple[Policy, Located]:
    policy, located, diags = load_policy(path)
    if policy is None:
        raise PolicyError(diags.sorted())
    return policy, located

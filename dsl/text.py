"""The text DSL (*.collect): parse into the same plain data as the YAML form, with positions; and print.

`load_text` turns the lark tree of dsl/policy.lark into exactly the dict the YAML loader would produce
for the same policy, so validation, compilation and their diagnostics are shared. Unknown settings
and block items flow into the data as keys, so they are reported as `unknown-key` with a suggestion.
`dump_text` prints a Policy model back as a .collect file that loads to an equal model.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from .diagnostics import Diagnostics, Span
from .expr import _cache_file
from .source import Located

TOP_LISTS = {"pause_when", "stop_when", "compliance"}
BLOCK_LISTS = {"extra_holidays", "weekend", "params"}
_WORDS = {"WORD": "a name or value", "STRING": "a quoted string", "TIME": "a time (HH:MM)", "HOURS": "hours (08:00-19:00)",
          "DAYS": "days (mon-fri)", "CLOSED": "closed", "EXPR_EOL": "an expression", "EXPR_BRACE": "an expression",
          "EXPR_COND": "an expression", "_NL": "the end of the line", "$END": "the end of the file",
          "LBRACE": "'{'", "RBRACE": "'}'", "COMMA": "','", "COLON": "':'", "EQUAL": "'='"}


@lru_cache(maxsize=1)
def _parser():
    from lark import Lark

    grammar = (Path(__file__).parent / "policy.lark").read_text(encoding="utf-8")
    return Lark(grammar, parser="lalr", propagate_positions=True, cache=_cache_file("policy"))


def _expected(names) -> str:
    words = sorted({_WORDS.get(n, n.lower().strip("_")) for n in names})
    return ", ".join(words[:8])


def load_text(text: str, file: str, diags: Diagnostics) -> Located | None:
    from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedToken

    if not text.strip():
        diags.error("empty-policy", "the policy file is empty", Span(file, 1, 1))
        return None
    try:
        tree = _parser().parse(text if text.endswith("\n") else text + "\n")
    except UnexpectedToken as exc:
        token = {"$END": "end of the file", "_NL": "end of the line"}.get(exc.token.type, f"'{exc.token}'")
        diags.error("syntax", f"unexpected {token.strip()}: expected {_expected(exc.expected)}",
                    Span(file, exc.line if exc.line > 0 else 1, exc.column if exc.column > 0 else 1))
        return None
    except UnexpectedCharacters as exc:
        char = text[exc.pos_in_stream] if exc.pos_in_stream < len(text) else "?"
        message = "unterminated string" if char == '"' else f"unexpected character '{char}'"
        allowed = _expected(exc.allowed) if exc.allowed else ""
        diags.error("syntax", message + (f": expected {allowed}" if allowed else ""), Span(file, exc.line, exc.column))
        return None
    except UnexpectedEOF as exc:
        diags.error("syntax", f"the file ends too early: expected {_expected(exc.expected)}", Span(file, 1, 1))
        return None
    except RecursionError:
        diags.error("syntax", "the file is nested too deeply", Span(file, 1, 1))
        return None
    builder = _Builder(file, diags)
    for statement in tree.children:
        builder.statement(statement)
    return builder.located


class _Builder:
    def __init__(self, file: str, diags: Diagnostics):
        self.file, self.diags = file, diags
        self.located = Located({}, file)
        self.data = self.located.data

    # -- positions ------------------------------------------------------------------------------

    def span(self, item) -> Span:
        if hasattr(item, "line") and not hasattr(item, "meta"):  # a Token
            return Span(self.file, item.line, item.column, item.end_line or item.line, item.end_column or item.column)
        meta = item.meta
        return Span(self.file, meta.line, meta.column, meta.end_line, meta.end_column)

    def value(self, token):
        """A token's value: strings unquoted, everything else as written."""
        text = str(token)
        if token.type == "STRING":
            if text.startswith('"""'):
                return text[3:-3]
            try:
                return json.loads(text)
            except json.JSONDecodeError:
                self.diags.error("syntax", "invalid escape in string (use \\\\, \\\" or \\n)", self.span(token))
                return text[1:-1]
        if token.type in ("EXPR_EOL", "EXPR_BRACE", "EXPR_COND"):
            return text.strip()
        return text

    def put(self, container: dict, path: tuple, key: str, value, where, key_where=None) -> None:
        """Set container[key] with its positions; a key given twice is an error, as in YAML."""
        full = path + (key,)
        if key in container:
            self.diags.error("duplicate-key", f"duplicate key '{key}'", self.span(key_where or where),
                             "a key may appear once; the second one would silently replace the first")
            return
        container[key] = value
        self.located.keys[full] = self.span(key_where or where)
        self.located.values[full] = self.span(where)
        if hasattr(where, "type"):
            self.located.text_offset[full] = _text_offset(where)

    def mark(self, path: tuple, where) -> None:
        self.located.values[path] = self.span(where)
        if hasattr(where, "type"):
            self.located.text_offset[path] = _text_offset(where)

    def section(self, key: str, node) -> dict:
        section = self.data.setdefault(key, {})
        if not isinstance(section, dict):
            return {}
        self.located.keys.setdefault((key,), self.span(node))
        self.located.values.setdefault((key,), self.span(node))
        return section

    # -- statements -----------------------------------------------------------------------------

    def statement(self, node) -> None:
        getattr(self, f"_{node.data}")(node)

    def _policy(self, node) -> None:
        name, *description = node.children
        self.put(self.data, (), "policy", self.value(name), name, node)
        if description:
            self.put(self.data, (), "description", self.value(description[0]), description[0], node)

    def _setting(self, node) -> None:
        key_token, *values = node.children
        key = str(key_token)
        parsed = [self.value(v) for v in values]
        if key == "holidays":
            section = self.section("windows", node)
            self.put(section, ("windows",), "holidays", parsed[0] if len(parsed) == 1 else parsed, values[0], key_token)
            return
        listed = key in TOP_LISTS and not (key == "compliance" and parsed == ["auto"])
        value = parsed if listed or len(parsed) > 1 else parsed[0]
        if listed and parsed == ["none"]:
            value = []  # an explicitly empty list
        self.put(self.data, (), key, value, values[0], key_token)
        if isinstance(value, list):
            for i, token in enumerate(values):
                self.mark((key, i), token)

    def _calendar(self, node) -> None:
        calendar = self.section("calendar", node)
        for child in node.children:
            if hasattr(child, "type"):
                self.put(calendar, ("calendar",), "country", self.value(child), child, node)
            else:
                self._block_into(calendar, ("calendar",), child)

    def _block_into(self, target: dict, path: tuple, block) -> None:
        for item in block.children:
            key_token, *values = item.children
            key = str(key_token)
            parsed = [self.value(v) for v in values]
            value = parsed if key in BLOCK_LISTS or len(parsed) > 1 else parsed[0]
            if key in BLOCK_LISTS and parsed == ["none"]:
                value = []
            self.put(target, path, key, value, values[0], key_token)
            if isinstance(value, list):
                for i, token in enumerate(values):
                    self.mark(path + (key, i), token)

    def _field(self, node) -> None:
        name, kind = node.children
        self.put(self.section("fields", node), ("fields",), str(name), str(kind), kind, name)

    def _window(self, node) -> None:
        channel_token, *days = node.children
        windows = self.section("windows", node)
        channel = str(channel_token)
        spec = windows.setdefault(channel, {})
        self.located.keys.setdefault(("windows", channel), self.span(channel_token))
        self.located.values.setdefault(("windows", channel), self.span(node))
        for day_hours in days:
            if hasattr(day_hours, "type"):  # `window email closed`: a channel that never opens
                continue
            day, hours = day_hours.children
            self.put(spec, ("windows", channel), str(day), str(hours), hours, day)

    def _cap(self, node) -> None:
        channel, maximum, per, *cooldown = node.children
        caps = self.data.setdefault("caps", [])
        index = len(caps)
        self.located.keys.setdefault(("caps",), self.span(node))
        cap: dict = {}
        caps.append(cap)
        self.located.values[("caps", index)] = self.span(node)
        self.put(cap, ("caps", index), "channel", str(channel), channel)
        self.put(cap, ("caps", index), "max", _int(str(maximum)), maximum)
        self.put(cap, ("caps", index), "per", str(per), per)
        if cooldown:
            token = cooldown[0].children[0]
            self.put(cap, ("caps", index), "cooldown_after_conversation", str(token), token, cooldown[0])

    def _segment(self, node) -> None:
        name, expr = node.children
        self.put(self.section("segments", node), ("segments",), str(name), self.value(expr), expr, name)

    def _template(self, node) -> None:
        name, channel, body = node.children
        templates = self.section("templates", node)
        entry = templates.setdefault(str(name), {})
        self.located.keys.setdefault(("templates", str(name)), self.span(name))
        self.located.values.setdefault(("templates", str(name)), self.span(node))
        path = ("templates", str(name))
        if hasattr(body, "type"):
            self.put(entry, path, str(channel), self.value(body), body, channel)
            return
        block: dict = {}
        self.put(entry, path, str(channel), block, body, channel)
        self._block_into(block, path + (str(channel),), body)

    def _experiment(self, node) -> None:
        name, *rest = node.children
        experiment: dict = {}
        self.put(self.section("experiments", node), ("experiments",), str(name), experiment, node, name)
        path = ("experiments", str(name))
        if len(rest) == 2:
            self.put(experiment, path, "unit", str(rest[0]), rest[0])
        variants: dict = {}
        self.put(experiment, path, "variants", variants, rest[-1])
        self._block_into(variants, path + ("variants",), rest[-1])
        for key, value in variants.items():
            variants[key] = _int(value) if isinstance(value, str) else value

    def _stage(self, node) -> None:
        name, when, *steps = node.children
        stage: dict = {}
        self.put(self.section("stages", node), ("stages",), str(name), stage, node, name)
        path = ("stages", str(name))
        self.put(stage, path, "when", self.value(when), when)
        stage["steps"] = [self._step(step, path + ("steps", i)) for i, step in enumerate(steps)]
        self.located.values[path + ("steps",)] = self.span(node)

    def _event(self, node) -> None:
        name, *steps = node.children
        events = self.section("events", node)
        self.put(events, ("events",), str(name), [], node, name)
        path = ("events", str(name))
        if isinstance(events.get(str(name)), list) and not events[str(name)]:
            events[str(name)] = [self._step(step, path + (i,)) for i, step in enumerate(steps)]

    def _step(self, node, path: tuple) -> dict:
        step: dict = {}
        self.located.values[path] = self.span(node)
        step_id, trigger, *rest = node.children
        self.put(step, path, "id", str(step_id), step_id)
        at = str(trigger)
        if rest and hasattr(rest[0], "type") and rest[0].type == "TIME":
            at = f"{at} {rest.pop(0)}"
        self.put(step, path, "at", at, trigger)
        for part in rest:
            getattr(self, f"_step_{part.data}")(step, path, part)
        return step

    def _step_for_clause(self, step, path, part) -> None:
        self.put(step, path, "for", self.value(part.children[0]), part.children[0], part)

    def _step_if_clause(self, step, path, part) -> None:
        self.put(step, path, "if", self.value(part.children[0]), part.children[0], part)

    def _step_send(self, step, path, part) -> None:
        *channels, template = part.children
        self.put(step, path, "send", [str(c) for c in channels], channels[0], part)
        for i, token in enumerate(channels):
            self.mark(path + ("send", i), token)
        self.put(step, path, "template", str(template), template)

    def _escalation(self, part, path: tuple) -> dict:
        escalation: dict = {}
        for child in part.children:
            if hasattr(child, "type"):
                self.put(escalation, path, "queue", str(child), child)
            else:  # priority
                expr = child.children[0]
                self.put(escalation, path, "priority", self.value(expr), expr, child)
        return escalation

    def _step_escalate(self, step, path, part) -> None:
        self.put(step, path, "escalate", self._escalation(part, path + ("escalate",)), part)

    def _step_webhook(self, step, path, part) -> None:
        self.put(step, path, "webhook", str(part.children[0]), part.children[0], part)

    def _step_stop(self, step, path, part) -> None:
        self.put(step, path, "stop", True, part)

    def _step_exhausted(self, step, path, part) -> None:
        escalation = self._escalation(part, path + ("on_exhausted",))
        self.put(step, path, "on_exhausted", escalation or "escalate", part)


def _text_offset(token) -> int:
    """Where the text of a value starts inside its token: after the quotes, or the leading blanks of an
    expression (expression tokens run from the keyword before them)."""
    text = str(token)
    if token.type == "STRING":
        return 3 if text.startswith('"""') else 1
    return len(text) - len(text.lstrip())


def _int(text: str):
    return int(text) if text.isdigit() else text


from .textdump import dump_text  # noqa: E402  (printing lives in its own module)

__all__ = ["load_text", "dump_text"]

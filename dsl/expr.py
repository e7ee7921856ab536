"""Expressions (SPEC section 3): parse with positions, type-check, fold constants, compile to closures.

    parse(text) -> Node                       syntax errors raise ExprError(code="expr-syntax")
    analyze(text, schema, segments, experiments, expect) -> Checked   never raises; errors in .errors
    compile_expr(node, segment_fns) -> fn(ctx) -> value

Semantics, chosen so that a rule never crashes at run time:
- a comparison (==, !=, <, in, between ...) with a null operand is false; `is null` tests for null;
- arithmetic with a null operand is null, and so is a division by zero;
- `and`, `or`, `not` treat anything that is not `true` as false (so `not (x > 1)` is true when x is null);
- numbers are exact decimals; `date - date` is a number of days, `date ± 7d` a date.
The evaluation context is a mapping: "invoice.amount" -> value, "variant:tone" -> the unit's variant,
"today" -> the local date (for days_since).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from .source import SURROGATE
from .timeparse import parse_duration

NUMBER_TYPES = {"int": "number", "float": "number", "decimal": "number"}
FUNCTIONS = {"variant": 1, "segment": 1, "days_since": 1, "lower": 1}
NOT_CONSTANT = object()
MAX_DEPTH = 200  # `a and b and ...` nests one level per `and`


class ExprError(Exception):
    def __init__(self, code: str, message: str, offset: int = 0, length: int = 1, hint: str | None = None):
        super().__init__(message)
        self.code, self.message, self.offset, self.length, self.hint = code, message, offset, length, hint


@dataclass(frozen=True)
class Node:
    kind: str  # literal, field, name, call, list, and, or, not, compare, in, not_in, between, is_null, ...
    offset: int
    length: int
    value: Any = None  # literal value, field/segment/function name, operator
    args: tuple["Node", ...] = ()


@dataclass
class Checked:
    type: str = "any"
    errors: list[ExprError] = field(default_factory=list)
    fields: set[str] = field(default_factory=set)
    segments: set[str] = field(default_factory=set)
    experiments: set[str] = field(default_factory=set)
    constant: Any = NOT_CONSTANT
    canonical: str = ""
    node: Node | None = None


def is_constant(checked: Checked) -> bool:
    return checked.constant is not NOT_CONSTANT


# -- parsing ------------------------------------------------------------------------------------

class GluedWords(Exception):
    """A keyword written against the word next to it (`isnotnull`, `ifbig`, `and3`), or with a letter
    too many (`sendd`, `iff`): its message says which."""

    def __init__(self, first, second):
        self.first = first  # the first lark token
        self.glued = re.match(r"\w*", str(second)).group()  # what touches it of the next one
        self.word = f"{first}{self.glued}"
        if self.glued.isalpha() and len(self.glued) == 1 and _keyword(first):  # `sendd`: no word `d` is meant
            super().__init__(f"unexpected '{self.word}' (did you mean '{first}'?)")
        else:
            super().__init__(f"unexpected '{self.word}': write a space between '{first}' and '{self.glued}'")


class KeywordSpacing:
    """Lark post-lexer: a keyword touching a word on either side is an error. Where the parser expects a
    keyword and no name, lark's contextual lexer reads the keyword's letters off the front of a longer word:
    `ifbig` was `if big` and `isnotnull` `is not null`, and a misspelt `iff big` got a confusing error."""

    always_accept = ()

    def process(self, stream):
        before = None
        for token in stream:
            if before is not None and before.end_pos == token.start_pos and _wordy(before[-1:]) \
                    and _wordy(token[:1]) and (_keyword(before) or _keyword(token)):
                raise GluedWords(before, token)
            yield token
            before = token


def _keyword(token) -> bool:
    """A literal word of the grammar (`and`, `send`), whose terminal lark names after it (AND, SEND)."""
    return token.isalpha() and token.type == token.upper()


def _wordy(char: str) -> bool:
    return char.isalnum() or char == "_"


@lru_cache(maxsize=1)
def _parser():
    from lark import Lark

    grammar = (Path(__file__).parent / "expr.lark").read_text(encoding="utf-8")
    return Lark(grammar, parser="lalr", propagate_positions=True, maybe_placeholders=False, cache=_cache_file("expr"),
                postlex=KeywordSpacing())


_TOKEN_WORDS = {"COMPARE": "a comparison", "ADD": "'+' or '-'", "MUL": "'*' or '/'", "NAME": "a name",
                "NUMBER": "a number", "STRING": "a string", "DATE": "a date", "DURATION": "a duration",
                "RPAR": "')'", "LPAR": "'('", "RSQB": "']'", "LSQB": "'['", "COMMA": "','", "DOT": "'.'",
                "$END": "the end of the expression"}


def _describe(expected) -> str:
    if set(expected) == {"LSQB"}:  # only after `in` / `not in`: a list is the one thing that may follow
        return """'[': 'in' takes a list in brackets, e.g. in ["PE", "CO"]"""
    words = sorted({_TOKEN_WORDS.get(t, t.lower() if not t.startswith("__") else "") for t in expected} - {""})
    value_words = {"a name", "a number", "a string", "a date", "a duration", "'('", "'['"}
    if value_words & set(words):
        return "a value (a field, number, string, date, duration or '(')"
    return ", ".join(words[:6]) or "something else"


def _cache_file(name: str) -> str | bool:
    """Where lark keeps its compiled parse tables between runs (it checks the grammar's hash itself),
    so that a command does not rebuild them at every start."""
    import os
    import tempfile

    folder = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    try:
        os.makedirs(os.path.join(folder, "collect"), exist_ok=True)
        return os.path.join(folder, "collect", f"{name}.lark.cache")
    except OSError:
        return os.path.join(tempfile.gettempdir(), f"collect-{name}.lark.cache")


@lru_cache(maxsize=4096)
def parse(text: str) -> Node:
    from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

    if not text.strip():
        raise ExprError("expr-syntax", "the expression is empty", 0, 1)
    try:
        tree = _parser().parse(text)
    except GluedWords as exc:
        raise ExprError("expr-syntax", str(exc), exc.first.start_pos, len(exc.word)) from None
    except UnexpectedToken as exc:
        if exc.token.type == "$END":
            raise ExprError("expr-syntax", f"the expression ends too early: expected {_describe(exc.expected)}",
                            len(text.rstrip()), 1) from None
        raise ExprError("expr-syntax", f"unexpected '{exc.token}': expected {_describe(exc.expected)}",
                        exc.token.start_pos or 0, max(len(str(exc.token)), 1)) from None
    except UnexpectedCharacters as exc:
        char = text[exc.pos_in_stream] if exc.pos_in_stream < len(text) else ""
        message = "unterminated string" if char in "\"'" else f"unexpected character '{char}'"
        raise ExprError("expr-syntax", message, exc.pos_in_stream, 1) from None
    except UnexpectedEOF:
        raise ExprError("expr-syntax", "the expression ends too early", len(text), 1) from None
    except UnexpectedInput as exc:  # pragma: no cover - other lark input errors
        raise ExprError("expr-syntax", str(exc).splitlines()[0], getattr(exc, "pos_in_stream", 0) or 0) from None
    return _build(tree, text)


def _span(item) -> tuple[int, int]:
    if hasattr(item, "start_pos"):  # a Token
        return item.start_pos, len(item)
    meta = item.meta
    return meta.start_pos, meta.end_pos - meta.start_pos


def _build(item, text: str) -> Node:
    from lark import Token

    if isinstance(item, Token):
        raise AssertionError(f"unexpected token {item!r}")
    off, length = _span(item)
    kind, ch = item.data, item.children
    if kind in ("number", "string", "date", "duration", "true", "false", "null"):
        return Node("literal", off, length, _literal(kind, ch[0] if ch else None, off))
    if kind == "field":
        return Node("field", off, length, ".".join(str(t) for t in ch))
    if kind == "name":
        return Node("name", off, length, str(ch[0]))
    if kind == "call":
        return Node("call", off, length, str(ch[0]), tuple(_build(c, text) for c in ch[1:] if c is not None))
    if kind == "list":
        return Node("list", off, length, None, tuple(_build(c, text) for c in ch if c is not None))
    if kind in ("compare", "arith"):
        return Node(kind, off, length, str(ch[1]), (_build(ch[0], text), _build(ch[2], text)))
    names = {"or_op": "or", "and_op": "and", "not_op": "not", "in_op": "in", "not_in_op": "not_in",
             "between": "between", "is_null": "is_null", "is_not_null": "is_not_null", "neg": "neg"}
    return Node(names[kind], off, length, None, tuple(_build(c, text) for c in ch))


def _literal(kind: str, token, offset: int):
    if kind == "number":
        return Decimal(str(token))
    if kind == "string":
        return unescape(str(token)[1:-1], offset + 1)
    if kind == "date":
        try:
            return dt.date.fromisoformat(str(token))
        except ValueError:
            raise ExprError("expr-syntax", f"'{token}' is not a valid date", offset, len(token)) from None
    if kind == "duration":
        try:
            return dt.timedelta(minutes=parse_duration(str(token)))
        except ValueError as exc:
            raise ExprError("bad-value", str(exc), offset, len(token)) from None
    return {"true": True, "false": False, "null": None}[kind]


# JSON's escapes, plus \\' for single-quoted strings: the canonical text (exprcheck.literal_text) writes
# strings as JSON, and the plan's expressions are parsed again at run time, so this must read it back exactly
_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_PAIR = r"u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}"  # one character beyond \uffff
_ESCAPE = re.compile(rf"\\({_PAIR}|u[0-9a-fA-F]{{4}}|.)", re.S)


def unescape(raw: str, offset: int = 0) -> str:
    """The text of a string literal without its quotes; `offset` is where `raw` starts in the expression."""
    if "\\" not in raw:
        return raw
    parts, end = [], 0
    for match in _ESCAPE.finditer(raw):
        char = _escaped(match.group(1))
        if char is None:
            raise _bad_escape(match.group(), offset + match.start())
        parts += [raw[end:match.start()], char]
        end = match.end()
    return "".join(parts) + raw[end:]


def _bad_escape(escape: str, offset: int) -> ExprError:
    if len(escape) == 6:
        return ExprError("expr-syntax", f"'{escape}' is half of a surrogate pair, not a character", offset, 6,
                         "a character beyond \\uffff is written as a pair, e.g. \\ud83d\\ude00 (or typed as is)")
    return ExprError("expr-syntax", f"invalid escape '{escape}' in a string", offset, len(escape),
                     'the escapes are \\", \\\', \\\\, \\/, \\b, \\f, \\n, \\r, \\t and \\uXXXX; '
                     'write a backslash as \\\\')


def _escaped(code: str) -> str | None:
    """The character an escape (without its backslash) stands for; None if unknown or a lone surrogate."""
    if len(code) == 11:
        return bytes.fromhex(code[1:5] + code[7:]).decode("utf-16-be")
    if len(code) == 5:
        char = chr(int(code[1:], 16))
        return None if SURROGATE.match(char) else char
    return _ESCAPES.get(code)


# -- checking -----------------------------------------------------------------------------------

def analyze(text: str, schema: dict[str, str], segments: set[str], experiments: dict[str, set[str]],
            expect: str = "bool", text_dsl: bool = False) -> Checked:
    """Parse and type-check one expression; never raises (problems are in `.errors`). `text_dsl`: hints
    are written for a .collect file rather than YAML."""
    too_deep = Checked(errors=[ExprError("expr-syntax", f"the expression is nested more than {MAX_DEPTH} levels "
                                                        "deep; split it into segments")], canonical=text.strip())
    try:
        node = parse(text)
        if _depth(node) > MAX_DEPTH:  # evaluating it later must not run out of stack either
            return too_deep
        from .exprcheck import Checker

        return Checker(schema, segments, experiments, text_dsl, text).run(node, expect)
    except ExprError as err:
        return Checked(errors=[err], canonical=text.strip())
    except RecursionError:
        return too_deep


def _depth(node: Node) -> int:
    deepest, stack = 0, [(node, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack += [(arg, depth + 1) for arg in node.args]
    return deepest


def compile_expr(node: Node, segment_fns: dict[str, Callable]) -> Callable[[Any], Any]:
    from .exprcompile import compile_node

    return compile_node(node, segment_fns)


def to_number(value):
    """Exact arithmetic: floats from CSV columns become decimals by their shortest repr."""
    if isinstance(value, float):
        try:
            return Decimal(repr(value))
        except InvalidOperation:
            return None
    return value

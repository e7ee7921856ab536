"""The text DSL (*.collect): parse into the same plain data as the YAML form, with positions; and print.

`load_text` turns the lark tree of dsl/policy.lark into exactly the dict the YAML loader would produce
for the same policy, so validation, compilation and their diagnostics are shared. Unknown settings
and block items flow into the data as keys, so they are reported as `unknown-key` with a suggestion.
Syntax errors are reported for every broken statement and step, in words rather than grammar token
names; when the broken parts are only steps, caps, `on` blocks, or segments and templates whose name
can be read (kept defined by a stand-in), the rest of the file is built too.
`dump_text` (dsl/textdump.py) prints a Policy model back as a .collect file that loads to an equal model.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .diagnostics import Diagnostics, Span, suggest
from .expr import GluedWords, KeywordSpacing, _cache_file
from .source import Located, join_surrogates, typed_scalar

TOP_LISTS = {"pause_when", "stop_when", "compliance"}  # always lists, even with one value
BLOCK_LISTS = {"extra_holidays", "weekend", "params"}
STATEMENTS = ("policy", "calendar", "field", "window", "cap", "segment", "template", "experiment", "stage", "on",
              "compliance_settings")
SETTINGS = ("description", "timezone", "currency", "compliance", "holidays", "on_cap", "group_by", "catch_up",
            "max_lateness", "templates_dir", "pause_when", "stop_when")
_YAML_NAMES = {"events": "on", "event": "on", "windows": "window", "caps": "cap", "fields": "field",
               "segments": "segment", "templates": "template", "stages": "stage", "experiments": "experiment"}


@lru_cache(maxsize=1)
def _parser():
    from lark import Lark

    grammar = (Path(__file__).parent / "policy.lark").read_text(encoding="utf-8")
    return Lark(grammar, parser="lalr", propagate_positions=True, cache=_cache_file("policy"),
                postlex=KeywordSpacing())


def load_text(text: str, file: str, diags: Diagnostics) -> Located | None:
    """Parse a .collect file. On syntax errors (reported as `syntax` diagnostics) the rest of the file is
    still built when the broken parts can be left out without changing what it means (see LEAVE_OUT);
    else None."""
    from lark.exceptions import LarkError

    text = text.removeprefix("\ufeff")  # an editor's byte order mark is invisible: columns stay right
    if not text.strip():
        diags.error("empty-policy", "the policy file is empty", Span(file, 1, 1))
        return None
    ranges: list[_LeftOut] | None = []
    try:
        tree = _parser().parse(text if text.endswith("\n") else text + "\n")
    except (LarkError, RecursionError, GluedWords):
        ranges = _report_syntax(text, file, diags)
        tree = _parse_without(text, ranges)
        if tree is None:
            return None
    builder = _Builder(file, diags)
    builder.located.source = text
    stand_ins = [r for r in ranges or () if r.stand_in is not None]  # in file order, as the statements
    for statement in tree.children:
        while stand_ins and stand_ins[0].begin < getattr(statement.meta, "start_pos", 0):
            builder.stand_in(*stand_ins.pop(0).stand_in)
        builder.statement(statement)
    for left_out in stand_ins:
        builder.stand_in(*left_out.stand_in)
    return builder.located


# -- syntax errors --------------------------------------------------------------------------------
# On a failed parse, each top-level statement is parsed on its own, and each step of a stage or `on`
# block too, so that every broken statement is reported (not only the first) and a mistake in one
# cannot hide, or cause, errors in the next.

# Known mistakes: the parser state at an error picks the message to show (as lark's match_examples does).
YAML_HINT = ("this looks like YAML; in a .collect file a setting is written without ':' (timezone America/Lima), "
             "or rename the file to .yaml")
MISTAKES = {
    YAML_HINT: ["timezone: UTC\n", "policy: x\n", "stages:\n"],
    "a stage needs a condition and a block: stage NAME when EXPRESSION {": [
        "stage s {\n", "stage s\n", "stage s when x\n"],
    "a segment is written segment NAME = EXPRESSION": ["segment a b\n", "segment a\n"],
    "a window lists days and their hours: window CHANNEL mon-fri 08:00-19:00, sat 09:00-13:00 (or closed)": [
        "window default 08:00-19:00\n", "window default mon-fri\n", "window default\n", "window default mon-fri 8\n",
        "window default mon-fri 08:00-19:00 sat 09:00-13:00\n"],
    "a cap is written cap CHANNEL MAX per DURATION, e.g. cap sms 1 per 1d": [
        "cap sms 1 1d\n", "cap sms 1\n", "cap 1 per 1d\n", "cap sms\n"],
    "a template is a string or a { ... } block: template NAME CHANNEL \"text\"": [
        "template t sms\n", "template t sms x\n", "template t\n"],
    "a field is declared as field customer.NAME: TYPE": ["field customer.x\n", "field customer.x: \n"],
    "an experiment is written experiment NAME per customer { VARIANT PERCENT; ... }": [
        "experiment e\n", "experiment e per customer\n"],
    "event steps go in a block: on EVENT { ID at event+1d send ... }": ["on promise_made\n", "on\n"],
    "a profile's settings go in a block: compliance_settings PROFILE { SETTING VALUE; ... }": [
        "compliance_settings p week rolling\n", "compliance_settings p\n", "compliance_settings\n"],
    "a block item is written NAME VALUE (or NAME VALUE, VALUE)": ["calendar { weekend }\n", "calendar { 1 }\n"],
}
# mistakes inside a step, tried in both kinds of step block
_STEP_MISTAKES = {
    "a step starts with its id and its trigger: ID at due+1d ...": ["send email with t", "a send email with t"],
    "a step needs an action: send CHANNELS with TEMPLATE, escalate to QUEUE, webhook NAME or stop": [
        "a at due", "a at due 10:00", "a at due if x", "a at due for x if x", "a at due:", "a at due if x:"],
    "name the template after the channels: send email, sms with TEMPLATE": ["a at due send sms", "a at due send sms t"],
    "write escalate to QUEUE (optionally followed by priority EXPRESSION)": ["a at due escalate q"],
}
MISTAKES.update({message: [f"{head} {{\n  {line}\n}}\n" for line in lines
                           for head in ("stage s when x", "on promise_made")]
                 for message, lines in _STEP_MISTAKES.items()})
_STATEMENT_START = "a statement (policy, timezone, calendar, field, window, cap, segment, template, stage, on, ...)"
_ACTION = {"SEND", "ESCALATE", "WEBHOOK", "STOP"}
_WORDS = {"WORD": "a name or value", "STRING": "a quoted string", "TIME": "a time (10:00)",
          "HOURS": "hours (08:00-19:00)", "DAYS": "days (mon-fri)", "EXPR_EOL": "an expression",
          "EXPR_BRACE": "an expression", "EXPR_COND": "an expression", "_NL": "the end of the line",
          "$END": "the end of the file"}
_THING = re.compile(r'"""|"|\'|[A-Za-z0-9_+\-/.]+|\S')  # what an analyst sees as one "thing" at an error
_FIRST_WORD = re.compile(r"\s*([A-Za-z_][\w-]*)(?![\w-])(?!\s*:)")
_SCAN = re.compile(r'"""(?:(?!""").)*(?:"""|\Z)|"(?:\\.|[^"\\\n])*"?|#[^\n]*|[{}\n]', re.S)


@dataclass(frozen=True)
class _Problem:
    line: int  # inside the statement, from 1
    col: int
    message: str
    hint: str | None = None
    at_end: bool = False  # found at the end of the statement: a missing '}' explains it better


def _report_syntax(text: str, file: str, diags: Diagnostics) -> list[_LeftOut] | None:
    """Report the syntax errors of each statement; return the character ranges of the broken parts when
    every one of them can be left out (see _left_out), else None."""
    seen: set[tuple[int, int]] = set()
    read_well = False  # whether a statement before was fine: then a YAML-looking line is a slip, not a YAML file
    left_out: list[_LeftOut] | None = []
    start = 0
    for first_line, chunk, structural in _statements(text):
        problems = [p for p in _block_problems(chunk) if not (structural and p.at_end)]
        read_well = read_well or (not problems and not structural and bool(_FIRST_WORD.match(chunk)))
        if structural:  # an unclosed string hides the rest; an unclosed '{' may follow real mistakes
            problems = [structural] if structural.message.startswith('the """') else problems + [structural]
        if problems and left_out is not None:
            ranges = None if structural else _left_out(chunk, start, problems, file, first_line)
            left_out = None if ranges is None else left_out + ranges
        start += len(chunk)
        for problem in problems:
            span = Span(file, first_line + problem.line, problem.col)
            if (span.line, span.col) not in seen:
                seen.add((span.line, span.col))
                diags.error("syntax", problem.message, span, problem.hint)
            if not read_well and problem.message.endswith(YAML_HINT):
                return None  # a YAML file with the wrong suffix: one error says it all
    if not seen:  # cannot happen if the split is right; never leave a failed parse unexplained
        diags.error("syntax", "the file cannot be read as a policy", Span(file, 1, 1))
        return None
    return left_out


# Broken statements that can be left out while the rest of the file is still checked: nothing else refers
# to them, so leaving them out cannot cause an error elsewhere (a broken `policy` or `timezone` would be a
# missing key). The steps of a stage or `on` block whose first line is right are left out one by one.
LEAVE_OUT = ("cap", "on", "description")
# Broken statements that define a name the rest of the file uses: left out, but with a stand-in under
# their name, as YAML's recovery does (dsl/recovery.py), so that the uses are not reported as unknown; the
# stand-in's path is marked broken, so no check looks at it. Without a readable name they stop the checks.
NAMED = {"segment": re.compile(r"\s*segment\s+([A-Za-z_][A-Za-z0-9_]*)(?![\w.-])"),
         "template": re.compile(r"\s*template\s+([A-Za-z_][A-Za-z0-9_]*)\s+([A-Za-z_][A-Za-z0-9_]*)(?![\w.-])")}


@dataclass(frozen=True)
class _LeftOut:
    begin: int  # character range of the file to blank out
    end: int
    stand_in: tuple | None = None  # (path, value, span) put in its place


def _left_out(chunk: str, start: int, problems: list[_Problem], file: str, first_line: int) -> list[_LeftOut] | None:
    """The parts of the statement `chunk` (at `start` in the file, on line `first_line` + 1) to leave out,
    or None if it cannot be."""
    word = _FIRST_WORD.match(chunk)
    kind = word.group(1) if word else None
    lines = chunk.split("\n")
    alone = _alone(chunk)
    if kind in ("stage", "on") and all(p.line > 1 for p in problems):
        broken = [lines[p.line - 1] for p in problems]
        if any("{" in line or "}" in line or _statement_word(line) for line in broken):
            return None  # the line also opens or closes a block, or is a statement left inside one
        begins = [start + sum(len(line) + 1 for line in lines[:p.line - 1]) for p in problems]
        return [_LeftOut(begin, begin + len(line)) for begin, line in zip(begins, broken)]
    if kind == "on" or (kind in LEAVE_OUT and "{" not in chunk):  # nothing else hidden in a block
        return [_LeftOut(start, start + len(chunk))] if alone else None
    named = NAMED[kind].match(chunk) if kind in NAMED else None
    if named and alone and not any(_statement_word(line) for line in lines[1:]):  # none left in its block
        return [_LeftOut(start, start + len(chunk), _stand_in(kind, named, Span(file, first_line + 1,
                                                                                named.start(1) + 1)))]
    return None


_SEPARATORS = re.compile(r'"""(?:(?!""").)*(?:"""|\Z)|"(?:\\.|[^"\\\n])*"?|#[^\n]*|[{};]', re.S)


def _alone(chunk: str) -> bool:
    """No other statement shares the chunk: no ';' outside its blocks, strings and comments."""
    depth = 0
    for match in _SEPARATORS.finditer(chunk):
        token = match.group()
        if token == "{":
            depth += 1
        elif token == "}":
            depth = max(depth - 1, 0)
        elif token == ";" and depth == 0:
            return False
    return True


def _stand_in(kind: str, named: re.Match, span: Span) -> tuple:
    from .recovery import _template

    if kind == "segment":
        return ("segments", named.group(1)), "true", span
    return ("templates", named.group(1), named.group(2)), _template(named.group(2)), span


def _statement_word(line: str) -> bool:
    word = _FIRST_WORD.match(line)
    return bool(word) and word.group(1) in STATEMENTS + SETTINGS


def _parse_without(text: str, ranges: list[_LeftOut] | None):
    """The tree of `text` with `ranges` blanked out (so every position stays the same), or None."""
    from lark.exceptions import LarkError

    if not ranges:
        return None
    for begin, end, _ in ((r.begin, r.end, r.stand_in) for r in ranges):
        text = text[:begin] + re.sub(r"[^\n]", " ", text[begin:end]) + text[end:]
    try:
        return _parser().parse(text if text.endswith("\n") else text + "\n")
    except (LarkError, RecursionError, GluedWords):
        return None


def _statements(text: str):
    """Yield (lines before it, its text, a structural problem or None) for each top-level statement.
    A statement ends at a new line outside braces and triple-quoted strings."""
    opened: list[int] = []  # positions of the '{' not yet closed
    start = lines_before = 0
    for match in _SCAN.finditer(text):
        token, pos = match.group(), match.start()
        if token.startswith('"""') and (len(token) < 6 or not token.endswith('"""')):
            yield lines_before, text[start:], _problem_at(
                text, pos, start, 'the """ string that starts here is never closed', 'end it with """')
            return
        if token == "{":
            opened.append(pos)
        elif token == "}" and opened:
            opened.pop()
        elif token == "\n" and not opened:
            chunk = text[start:match.end()]
            yield lines_before, chunk, None
            start, lines_before = match.end(), lines_before + chunk.count("\n")
    if opened:
        yield lines_before, text[start:], _problem_at(text, opened[0], start, "this '{' is never closed",
                                                      "add the matching '}'")
    elif text[start:].strip():
        yield lines_before, text[start:] + "\n", None


def _problem_at(text: str, pos: int, start: int, message: str, hint: str) -> _Problem:
    col = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return _Problem(text.count("\n", start, pos) + 1, col, message, hint)


def _block_problems(chunk: str) -> list[_Problem]:
    """The problems of one statement; for a block of steps, one per broken step line."""
    first = _problem(chunk)
    if first is None or not re.match(r"\s*(stage|on)\b", chunk) or chunk.count("\n") < 3:
        return [first] if first else []
    problems = [first] if first.line == 1 else []
    for number, line in enumerate(chunk.split("\n")[1:], start=2):
        if line.strip() in ("", "}") or line.strip().startswith("#"):
            continue
        step = _problem(f"on promise_made {{\n{line}\n}}\n")  # a step line parsed on its own
        word = _FIRST_WORD.match(line)
        if step is not None and word and word.group(1) in STATEMENTS and not re.match(r"\s*\S+\s+at\b", line):
            # `segment x = ...` inside a stage is not a step with the id `segment`
            step = _Problem(2, word.start(1) + 1, f"a '{word.group(1)}' statement cannot be inside a stage or "
                            "an on block: only steps go there", "move it out of the block")
        if step is not None and step.line == 2:
            problems.append(_Problem(number, step.col, step.message, step.hint))
    return problems or [first]


def _problem(chunk: str) -> _Problem | None:
    """The first syntax error of one statement, in words, or None if it parses."""
    from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedInput

    try:
        _parser().parse(chunk)
        return None
    except RecursionError:
        return _Problem(1, 1, "this statement is nested too deeply")
    except GluedWords as exc:  # `ifbig:`, `sendsms`, `withoverdue`
        return _Problem(exc.first.line, exc.first.column, str(exc))
    except UnexpectedInput as exc:
        line, col = max(exc.line, 1), max(exc.column, 1)
        lines = chunk.split("\n")
        thing = _thing(exc, lines[line - 1] if line <= len(lines) else "", col)
        if isinstance(exc, UnexpectedCharacters) and thing == '"':
            return _Problem(line, col, "this string is not closed on its line",
                            'text over several lines goes in """ ... """')
        unknown = _unknown_statement(chunk)
        if unknown:
            return unknown
        expected = getattr(exc, "accepts", None) or getattr(exc, "expected", None) or exc.allowed or set()
        mistake = _known_mistake(exc)
        if mistake == YAML_HINT and ":" not in chunk and (first := _FIRST_WORD.match(chunk)):
            mistake = f"'{first.group(1)}' needs a value: {first.group(1)} VALUE"  # `description` and no more
        message = f"unexpected {_name(thing)}: " + (mistake or f"expected {_expected(expected)}")
        at_end = getattr(getattr(exc, "token", None), "type", "") == "$END"
        return _Problem(line, col, message, _keyword_hint(thing, expected), at_end)
    except LarkError as exc:  # pragma: no cover - lark raises UnexpectedInput for every input error
        return _Problem(1, 1, f"this statement cannot be read: {exc}")


def _thing(exc, line_text: str, col: int) -> str:
    """What the analyst wrote at the error: a word, a quote or a character; '' for the end of the line."""
    token = getattr(exc, "token", None)
    if token is not None and token.type == "$END":
        return ""
    if token is not None and token.type == "_NL":
        return ";" if str(token).startswith(";") else ""
    match = _THING.match(line_text, col - 1)
    return match.group() if match else ""


def _name(thing: str) -> str:
    return f"'{thing}'" if thing else "end of the line"


def _unknown_statement(chunk: str) -> _Problem | None:
    """A statement that starts with a word the language does not know (a typo, or a YAML key)."""
    match = _FIRST_WORD.match(chunk)
    if not match or match.group(1) in STATEMENTS + SETTINGS:
        return None
    word = match.group(1)
    hint = (f"write one '{_YAML_NAMES[word]}' line per entry" if word in _YAML_NAMES
            else suggest(word, STATEMENTS + SETTINGS) or "see docs/language.md for the statements")
    line = chunk.count("\n", 0, match.start(1)) + 1
    col = match.start(1) - (chunk.rfind("\n", 0, match.start(1)) + 1) + 1
    return _Problem(line, col, f"'{word}' is not a statement of the policy language", hint)


def _known_mistake(exc) -> str | None:
    """The MISTAKES message whose example fails in the same parser state (what lark's match_examples
    does, with the examples parsed once instead of at every error)."""
    return _mistake_table().get(_state(exc)) if getattr(exc, "state", None) is not None else None


@lru_cache(maxsize=1)
def _mistake_table() -> dict:
    from lark.exceptions import UnexpectedInput

    table: dict = {}
    for message, examples in MISTAKES.items():
        for example in examples:
            try:
                _parser().parse(example)
            except UnexpectedInput as exc:
                table.setdefault(_state(exc), message)
    return table


def _state(exc) -> tuple:
    stack = getattr(exc.state, "state_stack", None) or [exc.state]
    return len(stack), stack[-1] if stack else None, frozenset(getattr(exc, "accepts", None) or ())


def _expected(names) -> str:
    names = set(names)
    if "_NL" in names:  # the end of the line or of the file: the same to whoever reads the message
        names.discard("$END")
    if {"POLICY", "STAGE"} <= names:
        return _STATEMENT_START
    words = []
    if _ACTION <= names:
        names -= _ACTION
        words.append("an action (send, escalate, webhook or stop)")
    words += [_WORDS.get(name) or _keyword(name) or name.lower() for name in sorted(names)]
    return ", ".join(dict.fromkeys(words)) or "something else"


def _keyword(name: str) -> str | None:
    """The text of a keyword or punctuation terminal, quoted: 'send', '{'."""
    from lark.lexer import PatternStr

    try:
        pattern = _parser().get_terminal(name).pattern
    except KeyError:
        return None
    return f"'{pattern.value}'" if isinstance(pattern, PatternStr) else None


def _keyword_hint(thing: str, expected) -> str | None:
    """'did you mean' for a misspelt keyword (sned -> send, wiht -> with)."""
    keywords = [k[1:-1] for k in map(_keyword, expected) if k and k[1:-1].isalpha()]
    return suggest(thing, keywords) if thing and keywords else None


# -- building the data ----------------------------------------------------------------------------

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
        """A token's value: strings unquoted, expressions without surrounding blanks, the rest as written."""
        text = str(token)
        if token.type == "STRING":
            if text.startswith('"""'):
                return text[3:-3]
            value = _unquote(text)
            if value is None:
                self.diags.error("syntax", "invalid escape in a string (use \\\\, \\\", \\n, \\t or \\uXXXX; a "
                                 "surrogate \\ud800-\\udfff only as a pair)", self.span(token),
                                 'or write the text in """ ... """, which keeps \\ as is')
                return text[1:-1]
            return value
        if token.type.startswith("EXPR_"):
            return text.strip()
        return text

    def put(self, container: dict, path: tuple, key: str, value, where, key_where=None) -> None:
        """Set container[key] with its positions; a key given twice is an error, as in YAML."""
        full = path + (key,)
        if key in container:
            self.diags.error("duplicate-key", f"'{key}' is given twice", self.span(key_where or where),
                             "a key may appear once; the second one would silently replace the first")
            return
        container[key] = value
        self.located.keys[full] = self.span(key_where or where)
        self.mark(full, where)

    def mark(self, path: tuple, where) -> None:
        self.located.values[path] = self.span(where)
        if hasattr(where, "type"):
            self.located.text_offset[path] = _text_offset(where)
            if where.type == "STRING" and not where.startswith('"""') and "\\" in where:
                # escapes make the text shorter than the source: trace positions inside it (as for YAML)
                value = _unquote(str(where))
                if value is not None:
                    self.located.scalars[path] = (where.start_pos, where.end_pos, '"', value)

    def put_list(self, container: dict, path: tuple, key: str, tokens: list, key_where) -> None:
        values = [] if [str(t) for t in tokens] == ["none"] else [self.value(t) for t in tokens]
        self.put(container, path, key, values, tokens[0], key_where)
        if values:
            for i, token in enumerate(tokens):
                self.mark(path + (key, i), token)

    def section(self, key: str, node) -> dict:
        """A top-level mapping that several statements add to (fields, windows, segments ...)."""
        section = self.data.setdefault(key, {})
        if not isinstance(section, dict):
            return {}  # e.g. `windows x` given as a setting first: already reported by validation
        self.located.keys.setdefault((key,), self.span(node))
        self.located.values.setdefault((key,), self.span(node))
        return section

    def entry(self, section: str, name_token, node) -> tuple[dict, tuple]:
        """The mapping of one named entry in a section (a template or a window), created on first use."""
        name = str(name_token)
        target = self.section(section, node).setdefault(name, {})
        self.located.keys.setdefault((section, name), self.span(name_token))
        self.located.values.setdefault((section, name), self.span(node))
        return (target if isinstance(target, dict) else {}), (section, name)

    def stand_in(self, path: tuple, value, span: Span) -> None:
        """Put a broken statement's stand-in at `path` (see NAMED), unless the name is defined elsewhere."""
        container = self.data
        for depth, key in enumerate(path[:-1]):
            container = container.setdefault(key, {})
            if not isinstance(container, dict):
                return
            self.located.keys.setdefault(path[:depth + 1], span)
        if path[-1] not in container:
            container[path[-1]] = value
            self.located.keys[path] = self.located.values[path] = span
            self.located.broken.add(path)

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
        if values and not hasattr(values[0], "type"):  # `key { ... }`: a mapping
            block: dict = {}
            self.put(self.data, (), key, block, values[0], key_token)
            self._block_into(block, (key,), values[0])
            return
        if key == "holidays":
            self.put(self.section("windows", node), ("windows",), key, self._one_or_many(values), values[0], key_token)
        elif key in TOP_LISTS and [str(v) for v in values] != ["auto"]:
            self.put_list(self.data, (), key, values, key_token)
        else:
            self.put(self.data, (), key, self._one_or_many(values), values[0], key_token)

    def _one_or_many(self, tokens: list):
        parsed = [self.value(t) for t in tokens]
        return parsed[0] if len(parsed) == 1 else parsed

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
            if key in BLOCK_LISTS:
                self.put_list(target, path, key, values, key_token)
            else:
                self.put(target, path, key, self._one_or_many(values), values[0], key_token)

    def _field(self, node) -> None:
        name, kind = node.children
        self.put(self.section("fields", node), ("fields",), str(name), str(kind), kind, name)

    def _window(self, node) -> None:
        channel, *days = node.children
        spec, path = self.entry("windows", channel, node)
        for day_hours in days:
            if hasattr(day_hours, "type"):  # `window email closed`: a channel that never opens
                continue
            day, hours = day_hours.children
            self.put(spec, path, str(day), str(hours), hours, day)

    def _cap(self, node) -> None:
        channel, maximum, per, *cooldown = node.children
        caps = self.data.setdefault("caps", [])
        if not isinstance(caps, list):
            return
        path = ("caps", len(caps))
        self.located.keys.setdefault(("caps",), self.span(node))
        cap: dict = {}
        caps.append(cap)
        self.located.values[path] = self.span(node)
        self.put(cap, path, "channel", str(channel), channel)
        self.put(cap, path, "max", _int(str(maximum)), maximum)
        self.put(cap, path, "per", str(per), per)
        if cooldown:
            token = cooldown[0].children[0]
            self.put(cap, path, "cooldown_after_conversation", str(token), token, cooldown[0])

    def _segment(self, node) -> None:
        name, expr = node.children
        self.put(self.section("segments", node), ("segments",), str(name), self.value(expr), expr, name)

    def _template(self, node) -> None:
        name, channel, body = node.children
        entry, path = self.entry("templates", name, node)
        if hasattr(body, "type"):
            self.put(entry, path, str(channel), self.value(body), body, channel)
            return
        block: dict = {}
        self.put(entry, path, str(channel), block, body, channel)
        self._block_into(block, path + (str(channel),), body)

    def _compliance_settings(self, node) -> None:
        """compliance_settings PROFILE { SETTING VALUE ... }: values typed as YAML types them."""
        profile, block = node.children
        settings: dict = {}
        self.put(self.section("compliance_settings", node), ("compliance_settings",), str(profile), settings, node,
                 profile)
        path = ("compliance_settings", str(profile))
        for item in block.children:
            key, *values = item.children
            typed = [self.value(v) if v.type == "STRING" else typed_scalar(str(v)) for v in values]
            self.put(settings, path, str(key), typed[0] if len(typed) == 1 else typed, values[0], key)

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
        stages = self.section("stages", node)
        again = str(name) in stages  # the second `stage X`: its error, and not its steps' places over the first's
        self.put(stages, ("stages",), str(name), stage, node, name)
        if again:
            return
        path = ("stages", str(name))
        self.put(stage, path, "when", self.value(when), when)
        stage["steps"] = [self._step(step, path + ("steps", i)) for i, step in enumerate(steps)]
        self.located.values[path + ("steps",)] = self.span(node)

    def _event(self, node) -> None:
        name, *steps = node.children
        events = self.section("events", node)
        if str(name) in events:  # the second `on X { }` of the same event
            self.put(events, ("events",), str(name), [], node, name)
            return
        path = ("events", str(name))
        self.put(events, ("events",), str(name), [self._step(s, path + (i,)) for i, s in enumerate(steps)], node, name)

    def _step(self, node, path: tuple) -> dict:
        step: dict = {}
        self.located.values[path] = self.span(node)
        step_id, trigger, *rest = node.children
        self.put(step, path, "id", str(step_id), step_id)
        at = str(trigger)
        if rest and hasattr(rest[0], "type"):  # the TIME of `at due+1d 10:00`
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
        if escalation and "queue" not in escalation:  # `else escalate priority EXPR`: the default queue
            escalation = {"queue": "collections", **escalation}
        self.put(step, path, "on_exhausted", escalation or "escalate", part)


def _text_offset(token) -> int:
    """Where the text of a value starts inside its token: after the quotes, or after the blanks that
    an expression token takes from the keyword before it."""
    text = str(token)
    if token.type == "STRING":
        return 3 if text.startswith('"""') else 1
    return len(text) - len(text.lstrip())


def _unquote(text: str) -> str | None:
    """A "..." string's text, or None when an escape in it is invalid or stands for half a character."""
    try:
        value = json.loads(text, strict=False)  # strict would refuse a tab typed as is
    except json.JSONDecodeError:
        return None
    return value if join_surrogates(value) == value else None


def _int(text: str):
    return int(text) if text.isascii() and text.isdigit() else text


from .textdump import dump_text  # noqa: E402  (printing lives in its own module)

__all__ = ["load_text", "dump_text"]

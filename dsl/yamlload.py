"""YAML front end: compose the node tree (which keeps marks) and build plain data plus positions.

We resolve scalars the YAML 1.2 way: `08:00` stays a string (YAML 1.1 would read it as the
sexagesimal number 480), only true/false are booleans (`no` and `on` stay strings) and dates stay
text (the model reads them, and reports `2026-13-01` like any other bad value).
Anchors and aliases are allowed, but a document that expands to more than MAX_NODES nodes (an alias
"bomb") or nests deeper than MAX_DEPTH (or refers to itself) is refused before it is built.
"""

from __future__ import annotations

import re

import yaml

from .diagnostics import Diagnostics, Span
from .source import BOOL, FLOAT, INT, Located, join_surrogates

try:  # the C loader is several times faster; fall back quietly to the pure one
    _Base = yaml.CSafeLoader
except AttributeError:  # pragma: no cover
    _Base = yaml.SafeLoader


class _Loader(_Base):
    pass


_YAML11 = ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:timestamp")
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in _YAML11]
    for first, resolvers in _Base.yaml_implicit_resolvers.items()
}
for _tag, _rx, _first in (("tag:yaml.org,2002:bool", BOOL, "tTfF"), ("tag:yaml.org,2002:int", INT, "-+0123456789"),
                          ("tag:yaml.org,2002:float", FLOAT, "-+0123456789.")):
    _Loader.add_implicit_resolver(_tag, _rx, list(_first))


MAX_NODES = 200_000  # a 200-step policy has about 2,000
MAX_DEPTH = 64  # a policy nests about 8 deep


_ALIAS = re.compile(r"\*[^\s*]")  # maybe an alias (*name); a false alarm only costs a linear check


class _TooBig(Exception):
    pass


def _span(file: str, node: yaml.Node) -> Span:
    start, end = node.start_mark, node.end_mark
    return Span(file, start.line + 1, start.column + 1, end.line + 1, end.column + 1)


def load_yaml(text: str, file: str, diags: Diagnostics) -> Located | None:
    """Parse YAML text; syntax errors and duplicate keys become diagnostics."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        if "maximum nesting depth" in str(exc.problem):  # libyaml's own limit (seen with PyYAML 6.0.4)
            diags.error("yaml-too-large", f"the document nests deeper than {MAX_DEPTH} levels", Span(file, 1, 1))
            return None
        mark = exc.problem_mark or exc.context_mark
        span = Span(file, mark.line + 1, mark.column + 1) if mark else Span(file, 1, 1)
        diags.error("yaml-syntax", f"YAML syntax error: {exc.problem or exc}", span, syntax_hint(text, exc))
        return None
    except yaml.reader.ReaderError as exc:  # a control character: said where it is, not at 1:1 with an offset
        at = exc.position
        span = Span(file, text.count("\n", 0, at) + 1, at - text.rfind("\n", 0, at))
        diags.error("yaml-syntax", f"YAML cannot hold the control character U+{exc.character:04X} "
                    "(write it as an escape in a double-quoted string, such as \\x07, or leave it out)", span)
        return None
    except yaml.YAMLError as exc:
        diags.error("yaml-syntax", f"YAML error: {exc}", Span(file, 1, 1))
        return None
    except RecursionError:
        diags.error("yaml-too-large", f"the document nests deeper than {MAX_DEPTH} levels", Span(file, 1, 1))
        return None
    finally:
        loader.dispose()
    if node is None:
        diags.error("empty-policy", "the policy file is empty", Span(file, 1, 1))
        return None
    located = Located(None, file, source=text)
    try:
        if _ALIAS.search(text):  # only aliases can make a short text expand to a huge document
            _expanded_size(node, {}, 0)
        located.data = _build(node, (), located, loader, diags)
    except _TooBig as exc:
        diags.error("yaml-too-large", str(exc), _span(file, node),
                    "write the values out instead of repeating aliases (*name) or nesting so deep")
        return None
    return located


# -- what a syntax error most likely means ---------------------------------------------------------
# YAML reports where the parser gave up, which is often a line after the mistake and in its own words.
# Two mistakes are recognised when the pattern leaves no doubt; for anything else the message stays as is.

_BREAK = re.compile(r"\r\n|[\n\r\x85\u2028\u2029]")  # YAML's line breaks (marks count lines by them)
_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")  # a key as policies write them: when, mon-fri, customer.tier
# `key: some words` (plain text, so it could go on over the next lines)
_PLAIN_VALUE = re.compile(r"^\s*(?:-\s+)?[A-Za-z0-9_][^:#]*:\s+[^\s'\"{\[|>&*!#%@`][^#]*?\s\S[^#]*$")
_TOP_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*:(\s|$)")  # `stages:`, at the start of a line
MAX_SCAN_LINES = 5000
_FLOWS = {"while parsing a flow mapping": ("{", "}"), "while parsing a flow sequence": ("[", "]")}


def syntax_hint(text: str, exc: yaml.MarkedYAMLError) -> str | None:
    """A hint that names the line to fix, for a key written without its ':' and for a '{' or '[' that is
    never closed; None when the error does not match one of them beyond doubt."""
    mark = exc.problem_mark
    if mark is None:
        return None
    text = text.removeprefix("\ufeff")  # the parser's marks do not count a byte order mark
    lines = _BREAK.split(text)
    try:
        if exc.context in _FLOWS and exc.context_mark is not None:
            return _unclosed_flow(lines, exc.context_mark, mark, *_FLOWS[exc.context])
        if str(exc.problem or "").startswith("mapping values are not allowed"):
            return _missing_colon(text, lines, mark)
        if (exc.context == "while scanning a simple key" and exc.context_mark is not None
                and str(exc.problem or "").startswith("could not find expected ':'")
                and exc.context_mark.line < mark.line):
            # a line where a key belongs, in a mapping that already has one: it is reported at the next line
            return _no_colon_after(lines, exc.context_mark.line, exc.context_mark.column)
    except Exception:  # noqa: BLE001 - a hint is a bonus: a pattern that does not fit after all gives none
        return None
    return None


def _unclosed_flow(lines: list[str], opened, mark, opener: str, closer: str) -> str | None:
    """`- { id: a, at: due` and the next item on the following line: the parser only notices at that line.
    Recognised when the line where it gave up is back at (or left of) the indentation of the line that
    opened the collection, so it starts the next thing and cannot be more of the collection (a missing ','
    inside a collection written over several lines is indented further), and closes nothing it did not open."""
    if mark.line <= opened.line or lines[opened.line][opened.column:opened.column + 1] != opener:
        return None
    here = lines[mark.line] if mark.line < len(lines) else ""
    if here.strip() and (_indent(here) > _indent(lines[opened.line]) or _net_closing(here) > 0):
        return None
    last = next(n for n in range(mark.line - 1, opened.line - 1, -1)
                if lines[n].strip() and not lines[n].lstrip().startswith("#"))
    inside = [line for line in lines[opened.line + 1:last + 1] if line.strip() and not line.lstrip().startswith("#")]
    if any(_indent(line) <= _indent(lines[opened.line]) for line in inside) or "#" in lines[last]:
        return None  # a line in between belongs to something else: where the closer goes is not certain
    fixed = lines[:last] + [lines[last].rstrip() + closer] + lines[last + 1:]
    try:  # the advice must mend the file (an unclosed quote looks the same to the parser, and is not)
        yaml.compose("\n".join(fixed), Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    return (f"the '{opener}' opened on line {opened.line + 1}, column {opened.column + 1} is never closed: "
            f"add the missing '{closer}' at the end of line {last + 1}")


def _missing_colon(text: str, lines: list[str], mark) -> str | None:
    """`when invoice.days_past_due > 30` then `steps:`: without its ':', the first line and the next key run
    together into one plain text, and the parser only objects at the next ':'. Recognised from the tokens:
    the text before the ':' is plain, starts where a key starts (first on its line, or after '- '), on an
    earlier line, and its first word is a key."""
    # scan again from the top-level key before the error (where the scanner's state is plain) to the end of
    # its line; a policy's sections are short, and a section too long to scan quickly gets no hint
    first = next((n for n in range(mark.line - 1, -1, -1) if _TOP_KEY.match(lines[n])), 0)
    if mark.line - first > MAX_SCAN_LINES:
        return None
    starts = [0] + [m.end() for m in _BREAK.finditer(text)]
    end = starts[mark.line + 1] if mark.line + 1 < len(starts) else len(text)
    last = None
    try:
        for token in yaml.scan(text[starts[first]:end], Loader=yaml.SafeLoader):
            last = token
    except yaml.MarkedYAMLError:
        pass
    if not isinstance(last, yaml.ScalarToken) or not last.plain:
        return None
    start, column = first + last.start_mark.line, last.start_mark.column
    if start >= mark.line or first + last.end_mark.line != mark.line:
        return None
    more = any(lines[n].strip() for n in range(start + 1, mark.line))  # the text went on over more lines
    return _no_colon_after(lines, start, column, more, aligned=_indent(lines[mark.line]) == column)


def _no_colon_after(lines: list[str], number: int, column: int, more: bool = False,
                    aligned: bool = True) -> str | None:
    """The hint for line `number`, where a key starts at `column` but no ':' follows it. `aligned`: the key
    that comes next is at the same column; a key written with its value must be, a parent key need not."""
    line = lines[number]
    if line[:column].strip() not in ("", "-"):  # a value (`when: x` then an over-indented key) is not this mistake
        return None
    key, _, value = line[column:].split(" #")[0].strip().partition(" ")
    if not _KEY.fullmatch(key):
        return None
    if not value.strip():
        return f"line {number + 1} has no ':' after '{key}'"
    if not aligned:
        return None
    hint = f"line {number + 1} has no ':' after '{key}': write {key}: {value.strip()}{' ...' if more else ''}"
    above = next((n for n in range(number - 1, -1, -1) if lines[n].strip() and not lines[n].lstrip().startswith("#")),
                 None)
    if above is not None and _PLAIN_VALUE.match(lines[above].split(" #")[0].rstrip()):  # may go on with its text
        hint += f"; or, if it goes on with the text of line {above + 1}, indent it further"
    return hint


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _net_closing(line: str) -> int:
    """How many more '}' and ']' than '{' and '[' a line has, outside quotes and comments."""
    depth = lowest = 0
    quote = None
    i = 0
    while i < len(line):
        char = line[i]
        if quote:
            if char == "\\" and quote == '"':
                i += 1  # the escaped character
            elif char == quote and line[i + 1:i + 2] == quote == "'":
                i += 1  # '' is a quote inside single quotes
            elif char == quote:
                quote = None
        elif char in "'\"" and (i == 0 or line[i - 1] in " \t{[,"):  # an apostrophe inside a word is text
            quote = char
        elif char == "#" and (i == 0 or line[i - 1] in " \t"):
            break
        elif char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
            lowest = min(lowest, depth)
        i += 1
    return -lowest


def _expanded_size(node, memo: dict, depth: int) -> int:
    """How many nodes the document has once every alias is expanded; raises _TooBig past the limits.
    Shared nodes are counted once per use but computed once, so a bomb is caught in linear time."""
    if depth > MAX_DEPTH:
        raise _TooBig(f"the document nests deeper than {MAX_DEPTH} levels")
    key = id(node)
    if key in memo:
        if memo[key] is None:
            raise _TooBig("an alias refers to a node that contains it, so the document never ends")
        return memo[key]
    memo[key] = None
    children = node.value if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) else ()
    parts = [n for pair in children for n in pair] if isinstance(node, yaml.MappingNode) else children
    size = 1 + sum(_expanded_size(child, memo, depth + 1) for child in parts)
    if size > MAX_NODES:
        raise _TooBig(f"the document expands to more than {MAX_NODES:,} values (through aliases)")
    memo[key] = size
    return size


def _build(node, path, located: Located, loader, diags: Diagnostics):
    if len(path) > MAX_DEPTH:
        raise _TooBig(f"the document nests deeper than {MAX_DEPTH} levels")
    located.values[path] = _span(located.file, node)
    if isinstance(node, yaml.MappingNode):
        return _build_mapping(node, path, located, loader, diags)
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, path + (i,), located, loader, diags) for i, item in enumerate(node.value)]
    if node.style in ("'", '"'):
        located.text_offset[path] = 1
    try:
        value = loader.construct_object(node, deep=True)
    except yaml.constructor.ConstructorError as exc:
        diags.error("yaml-value", f"cannot read this value: {exc.problem}", located.values[path])
        return None
    except (ValueError, TypeError, OverflowError) as exc:  # an explicit tag on a value that does not fit it
        diags.error("yaml-value", f"cannot read this value: {exc}", located.values[path])
        return None
    if isinstance(value, str):
        value = _whole_characters(value, located.values[path], diags)
        _trace_scalar(node, path, value, located)
    return value


def _whole_characters(value: str, span: Span, diags: Diagnostics) -> str:
    """A "\\ud83d\\ude00" escape as one character; a lone surrogate ("\\ud800") is an error, since no file
    or plan_hash can encode it, and is replaced so that the other checks still run."""
    joined = join_surrogates(value)
    if joined is None:
        diags.error("yaml-value", "this text holds a lone surrogate (\\ud800-\\udfff), which is not a character",
                    span, "a character beyond \\uffff is written as a pair, e.g. \\ud83d\\ude00 (or typed as is)")
        return value.encode("utf-8", "replace").decode("utf-8")
    return joined


def _trace_scalar(node, path, value: str, located: Located) -> None:
    """Keep where a scalar is in the source when its text is not a plain copy of it (folded, literal,
    multi-line or escaped), so that an error inside an expression or template finds its real place."""
    start, end = node.start_mark.index, node.end_mark.index
    raw = located.source[start:end]
    quoted = node.style in ("'", '"')
    if (raw[1:-1] if quoted else raw) != value:
        located.scalars[path] = (start, end, node.style or "", value)


def _build_mapping(node, path, located: Located, loader, diags: Diagnostics) -> dict:
    _drop_bad_merges(node, located.file, diags)
    written, merged = _merge_pairs(node, located.file, diags)
    # YAML merge keys: a key written in the mapping overrides a merged one, and among merged mappings the
    # first to give a key wins (`<<: [*a, *b]`: a's). Only a key written twice by hand is a duplicate.
    # Resolved here rather than by PyYAML's flatten_mapping, whose order of merged pairs differs by version.
    chosen: dict = {}  # key -> (key node, value node), in the order the keys first appear
    for key_node, value_node in merged:
        chosen.setdefault(_key(key_node, path, located, loader, diags), (key_node, value_node))
    seen: set = set()
    for key_node, value_node in written:
        key = _key(key_node, path, located, loader, diags)
        if key in seen:
            diags.error("duplicate-key", f"duplicate key '{key}'", _span(located.file, key_node),
                        "a key may appear once in a mapping; the second one would silently replace the first")
            continue
        seen.add(key)
        chosen[key] = (key_node, value_node)
    result: dict = {}
    for key, (key_node, value_node) in chosen.items():
        located.keys[path + (key,)] = _span(located.file, key_node)  # the winning key: an error points at it
        result[key] = _build(value_node, path + (key,), located, loader, diags)
    return result


def _key(key_node, path, located: Located, loader, diags: Diagnostics):
    key = _build(key_node, path + ("<key>",), located, loader, diags)
    located.values.pop(path + ("<key>",), None)
    if not isinstance(key, (str, int, float, bool)) and key is not None:
        key = str(key)
    return key if isinstance(key, str) else _scalar_key(key, key_node)


_MERGE = "tag:yaml.org,2002:merge"


def _merge_pairs(node, file: str, diags: Diagnostics | None) -> tuple[list, list]:
    """The pairs written in a mapping, and those its `<<` brings in, most important first: the mappings
    of a list in their order, each one's own keys before those it merges in turn. `diags` is None for a
    merged mapping, whose own mistakes are reported where it is written."""
    written, merged = [], []
    merges = 0
    for key, value in node.value:
        if key.tag != _MERGE:
            if key.tag == "tag:yaml.org,2002:value":  # a `=` key is plain text (as flatten_mapping has it)
                key.tag = "tag:yaml.org,2002:str"
            written.append((key, value))
            continue
        merges += 1
        if merges > 1 and diags is not None:  # which of two `<<` would win is anyone's guess: one takes a list
            diags.error("duplicate-key", "duplicate key '<<'", _span(file, key),
                        "merge several mappings with one '<<' and a list, e.g. <<: [*a, *b]; the first one wins")
        for item in value.value if isinstance(value, yaml.SequenceNode) else [value]:
            own, inherited = _merge_pairs(item, file, None)
            merged += own + inherited
    return written, merged


def _drop_bad_merges(node, file: str, diags: Diagnostics) -> None:
    """Report and leave out each `<<` whose value cannot be merged, so that the other keys still count."""
    kept = []
    for key, value in node.value:
        if key.tag == "tag:yaml.org,2002:merge":
            items = value.value if isinstance(value, yaml.SequenceNode) else [value]
            if not all(isinstance(item, yaml.MappingNode) for item in items):
                diags.error("yaml-value", "'<<' merges a mapping into this one: give it a mapping or a list of them",
                            _span(file, key), "e.g. <<: *defaults, with defaults: &defaults { ... }")
                continue
            for item in items:  # a merged mapping may merge others in turn
                _drop_bad_merges(item, file, diags)
        kept.append((key, value))
    node.value = kept


def _scalar_key(key, key_node) -> str:
    """Keys such as `2026-12-24` or `1` are used by their text, as written."""
    return key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key)


def load_yaml_file(path) -> object:
    """A side file (a column map, a behavior model, channels.yaml's costs) read with the policy's limits:
    no alias bomb, no nesting past MAX_DEPTH. None for an empty file; ValueError `FILE:LINE:COL: reason`
    for the first problem; OSError when it cannot be read."""
    located = load_yaml_file_located(path)
    return located.data if located else None


def load_yaml_file_located(path) -> Located | None:
    """`load_yaml_file` with the places of its keys and values, for problems that say their line."""
    from pathlib import Path

    text = Path(path).read_text(encoding="utf-8")
    if not text.strip():
        return None
    diags = Diagnostics()
    located = load_yaml(text, str(path), diags)
    if diags.items:
        first = diags.items[0]
        hint = f" ({first.hint})" if first.hint and first.code == "yaml-syntax" else ""  # the line to fix
        raise ValueError(f"{first.span.file}:{first.span.line}:{first.span.col}: {first.message}{hint}")
    return located

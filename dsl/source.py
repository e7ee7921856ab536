"""A policy as plain data plus a map from every node's path to its place in the file.

Both front ends (YAML and the text DSL) produce a `Located` document, so that validation and
compilation are written once and still report `FILE:LINE:COL` for any value or key.
A path is a tuple of mapping keys and list indexes, e.g. ("stages", "early", "steps", 2, "at").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import re

from .diagnostics import Span

Path = tuple

# YAML 1.2 core schema scalars, as both front ends read them: `08:00` is text, `no` is text, `1e5` is text
BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
INT = re.compile(r"^[-+]?(?:0|[1-9][0-9_]*)$")
FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*)?\.[0-9_]+(?:[eE][-+]?[0-9]+)?$")
SURROGATE = re.compile("[\ud800-\udfff]")


def join_surrogates(text: str) -> str | None:
    """`text` with UTF-16 surrogate pairs (YAML reads "\\ud83d\\ude00" as two) joined into one character;
    None when a surrogate stands alone: no file, hash or terminal can encode it."""
    if not SURROGATE.search(text):
        return text
    try:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le")
    except UnicodeDecodeError:
        return None


def typed_scalar(text: str):
    """A bare word read as YAML 1.2 reads a plain scalar: a boolean, a number, or the text itself."""
    if BOOL.match(text):
        return text.lower() == "true"
    if INT.match(text):
        return int(text.replace("_", ""))
    return float(text.replace("_", "")) if FLOAT.match(text) else text


@dataclass
class Located:
    data: Any
    file: str
    values: dict[Path, Span] = field(default_factory=dict)  # path -> span of the value
    keys: dict[Path, Span] = field(default_factory=dict)  # path -> span of the mapping key
    # path -> column offset of the text inside the value (1 for a quoted scalar), for expressions
    text_offset: dict[Path, int] = field(default_factory=dict)
    # YAML scalars whose value is not a plain copy of one line of the file (folded, literal, multi-line,
    # escaped): path -> (start, end, style, value), `start`/`end` being character indexes in `source`
    source: str = ""
    scalars: dict[Path, tuple[int, int, str, str]] = field(default_factory=dict)
    # paths whose value failed validation and was replaced so that the other checks could still run
    broken: set[Path] = field(default_factory=set)

    def span(self, path: Path, prefer_key: bool = False) -> Span:
        """The closest known place for `path`: the node itself, else its nearest ancestor."""
        path = tuple(path)
        while True:
            if prefer_key and path in self.keys:
                return self.keys[path]
            if path in self.values:
                return self.values[path]
            if path in self.keys:
                return self.keys[path]
            if not path:
                return Span(self.file, 1, 1)
            path = path[:-1]

    def expr_span(self, path: Path, offset: int, length: int = 1) -> Span:
        """The place of character `offset` inside the expression text stored at `path`."""
        path = tuple(path)
        if path in self.scalars:
            line, col = self._traced(path, offset)
            return Span(self.file, line, col, line, col + max(length, 1))
        base = self.span(path)
        return base.shifted(self.text_offset.get(path, 0) + offset, length)

    def _traced(self, path: Path, offset: int) -> tuple[int, int]:
        start, end, style, value = self.scalars[path]
        index = source_index(self.source, (start, end), style, value, offset)
        line = self.source.count("\n", 0, index) + 1
        return line, index - (self.source.rfind("\n", 0, index) + 1) + 1

    def is_broken(self, path: Path) -> bool:
        """Whether `path` or a node containing it was replaced after failing validation."""
        if not self.broken:  # the usual case, asked for every step
            return False
        path = tuple(path)
        return any(path[:n] in self.broken for n in range(len(path) + 1))

    def broken_within(self, path: Path) -> bool:
        """Whether anything at or below `path` was replaced after failing validation."""
        if not self.broken:
            return False
        path = tuple(path)
        return self.is_broken(path) or any(b[:len(path)] == path for b in self.broken)


def source_index(source: str, where: tuple[int, int], style: str, value: str, offset: int) -> int:
    """Where character `offset` of a scalar's value is in the source text.

    The value is matched against the source greedily: its characters appear in order, except that
    folding turns a line break and indentation into one blank, and an escape (`\\n`) stands for one
    character. Anything that does not match leaves the position at the last character matched.
    """
    start, end = where
    if style in ("|", ">"):
        i = source.find("\n", start, end) + 1 or start  # the text starts after the `|` / `>` header line
    else:
        i = start + (style in ("'", '"'))  # after the opening quote
    for char in value[:offset]:
        found = _match(source, i, end, char, style == '"')
        if found < 0:
            return max(i - 1, start)
        i = found + 1
    if offset >= len(value):
        return i
    found = _match(source, i, end, value[offset], style == '"')
    return found if found >= 0 else max(i - 1, start)


def _match(source: str, i: int, end: int, char: str, escapes: bool) -> int:
    """The index of the next source character that stands for `char`, or -1."""
    blank = char.isspace()
    while i < end:
        here = source[i]
        if escapes and here == "\\":  # `\n`, `\"`, `\u00e1`: the escape stands for the character
            return i + _ESCAPE_LENGTH.get(source[i + 1:i + 2], 2) - 1
        if here == char or (blank and here.isspace()):
            return i
        i += 1
    return -1


_ESCAPE_LENGTH = {"x": 4, "u": 6, "U": 10}  # the others are a backslash and one character

"""A policy as plain data plus a map from every node's path to its place in the file.

Both front ends (YAML and the text DSL) produce a `Located` document, so that validation and
compilation are written once and still report `FILE:LINE:COL` for any value or key.
A path is a tuple of mapping keys and list indexes, e.g. ("stages", "early", "steps", 2, "at").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .diagnostics import Span

Path = tuple


@dataclass
class Located:
    data: Any
    file: str
    values: dict[Path, Span] = field(default_factory=dict)  # path -> span of the value
    keys: dict[Path, Span] = field(default_factory=dict)  # path -> span of the mapping key
    # path -> column offset of the text inside the value (1 for a quoted scalar), for expressions
    text_offset: dict[Path, int] = field(default_factory=dict)

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
        base = self.span(path)
        return base.shifted(self.text_offset.get(tuple(path), 0) + offset, length)

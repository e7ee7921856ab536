"""One Diagnostic type for every user-facing problem, rendered compiler-style.

Tests assert on `code` and `span`; `message` is prose for people.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import asdict, dataclass, field
from typing import Iterable


@dataclass(frozen=True, order=True)
class Span:
    """A place in a source file. Lines and columns are 1-based, like editors show them."""

    file: str
    line: int
    col: int
    end_line: int = 0
    end_col: int = 0

    def shifted(self, offset: int, length: int = 0) -> "Span":
        """The span `offset` characters into a single-line value (used for expression errors)."""
        col = self.col + offset
        return Span(self.file, self.line, col, self.line, col + max(length, 1))


@dataclass(frozen=True)
class Diagnostic:
    code: str
    severity: str  # "error" | "warning"
    message: str
    span: Span | None = None
    hint: str | None = None

    def render(self) -> str:
        where = f"{self.span.file}:{self.span.line}:{self.span.col}: " if self.span else ""
        text = f"{where}{self.severity}: {self.message}"
        if self.hint:
            text += f" ({self.hint})"
        return f"{text} [{self.code}]"

    def to_json(self) -> dict:
        data = asdict(self)
        span = data["span"]
        if span and (span["end_line"], span["end_col"]) < (span["line"], span["col"]):
            # a place known only by its start (a syntax error, a file): one character, never an end before it
            span["end_line"], span["end_col"] = span["line"], span["col"] + 1
        return data


@dataclass
class Diagnostics:
    """An ordered collection of diagnostics: collect all, report all."""

    items: list[Diagnostic] = field(default_factory=list)

    def error(self, code: str, message: str, span: Span | None = None, hint: str | None = None) -> None:
        self.items.append(Diagnostic(code, "error", message, span, hint))

    def warning(self, code: str, message: str, span: Span | None = None, hint: str | None = None) -> None:
        self.items.append(Diagnostic(code, "warning", message, span, hint))

    def extend(self, other: Iterable[Diagnostic]) -> None:
        self.items.extend(other)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity == "error"]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity == "warning"]

    def sorted(self) -> list[Diagnostic]:
        far = Span("", 10**9, 0)
        return sorted(self.items, key=lambda d: (d.span or far, d.code))

    def __bool__(self) -> bool:
        return bool(self.items)


class PolicyError(Exception):
    """Raised when a policy cannot be loaded or compiled; carries every diagnostic."""

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = diagnostics
        super().__init__("\n".join(d.render() for d in diagnostics))


def suggest(name: str, candidates: Iterable[str]) -> str | None:
    """A 'did you mean' hint for a misspelt name, or None when nothing is close."""
    found = closest(name, candidates)
    return f"did you mean '{found}'?" if found else None


def closest(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate most like `name`, if any is alike enough for a 'did you mean'."""
    found = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.6)
    return found[0] if found else None


def near_typo(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate `name` is a slip of the keyboard away from (a letter or two added, dropped, changed or
    swapped; one for names of up to five letters), or None. Stricter than `suggest`, which also finds
    names that merely look alike ('segmento' and 'name')."""
    limit = 1 if len(name) <= 5 else 2
    best = min(((edits(name, c), c) for c in sorted(set(candidates)) if abs(len(c) - len(name)) <= limit),
               default=None)
    return best[1] if best and best[0] <= limit else None


def edits(a: str, b: str) -> int:
    """Insertions, deletions, substitutions and swaps of two neighbours that turn `a` into `b`."""
    before, row = None, list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            cost = min(row[j] + 1, current[j - 1] + 1, row[j - 1] + (x != y))
            if before is not None and i > 1 and j > 1 and x == b[j - 2] and a[i - 2] == y:
                cost = min(cost, before[j - 2] + 1)
            current.append(cost)
        before, row = row, current
    return row[-1]


def diagnostics_json(diagnostics: Iterable[Diagnostic]) -> str:
    return json.dumps([d.to_json() for d in diagnostics], indent=2)

"""Can a condition ever hold? A small analysis that answers "never" only when it can prove it.

It looks at `and` / `or` of comparisons between one field and constants (`invoice.amount > 10 and
invoice.amount < 5`, `x between 9 and 3`, `x == "a" and x in ["b", "c"]`, `x is null and x > 0`), follows
segment references, and treats everything else as possible. Comparisons with null are false (SPEC 3),
so a field compared with anything cannot be null at the same time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .expr import Node

FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}


@dataclass
class _Range:
    """What one field may be, given the comparisons of a conjunction."""

    low: tuple | None = None  # (value, inclusive)
    high: tuple | None = None
    allowed: set | None = None  # from == and in [...]
    excluded: set = field(default_factory=set)  # from !=
    compared: bool = False  # some comparison must hold: then the field is not null
    null: bool = False  # `is null` must hold

    def empty(self) -> bool:
        if self.null and self.compared:
            return True
        if self.allowed is not None:
            return not any(self._inside(v) and v not in self.excluded for v in self.allowed)
        if self.low and self.high:
            (lo, lo_in), (hi, hi_in) = self.low, self.high
            return lo > hi or (lo == hi and not (lo_in and hi_in)) or (lo == hi and lo in self.excluded)
        return False

    def _inside(self, value) -> bool:
        low_ok = self.low is None or value > self.low[0] or (value == self.low[0] and self.low[1])
        high_ok = self.high is None or value < self.high[0] or (value == self.high[0] and self.high[1])
        return low_ok and high_ok


def may_hold(node: Node, segments: dict[str, Node], seen: frozenset = frozenset()) -> bool:
    """False only when `node` is provably never true; `segments` maps names to their folded nodes."""
    try:
        return _may_hold(node, segments, seen)
    except (TypeError, RecursionError):  # constants that do not compare (a date with a number): unknown
        return True


def _may_hold(node: Node, segments: dict[str, Node], seen: frozenset) -> bool:
    if node.kind == "literal":
        return node.value is True
    if node.kind == "or":
        return any(_may_hold(a, segments, seen) for a in node.args)
    if node.kind == "and" or _segment(node):
        conjuncts = list(_conjuncts(node, segments, seen))
        return all(_may_hold(c, segments, seen) for c in conjuncts if c.kind == "or") and _consistent(conjuncts)
    return _consistent([node])


def _segment(node: Node) -> str | None:
    if node.kind == "name":
        return node.value
    if node.kind == "call" and node.value == "segment" and node.args and node.args[0].kind == "literal":
        return node.args[0].value
    return None


def _conjuncts(node: Node, segments: dict[str, Node], seen: frozenset):
    """The parts of an `and`, with segment references replaced by their own conditions."""
    name = _segment(node)
    if name is not None and name in segments and name not in seen:
        yield from _conjuncts(segments[name], segments, seen | {name})
    elif node.kind == "and":
        for arg in node.args:
            yield from _conjuncts(arg, segments, seen)
    else:
        yield node


def _consistent(conjuncts: list[Node]) -> bool:
    ranges: dict[str, _Range] = {}
    for node in conjuncts:
        if node.kind == "literal" and node.value is not True:
            return False
        constraint = _constraint(node)
        if constraint is not None:
            name, apply = constraint
            apply(ranges.setdefault(name, _Range()))
    return not any(r.empty() for r in ranges.values())


def _constraint(node: Node):
    """(field, a function narrowing its range) for a comparison of a field with constants, else None."""
    args = node.args
    if node.kind in ("is_null", "is_not_null") and args[0].kind == "field":
        return args[0].value, (_null if node.kind == "is_null" else _nothing)
    if node.kind == "compare":
        left, right = args
        if left.kind == "literal" and right.kind == "field":
            left, right, op = right, left, FLIP[node.value]
        else:
            op = node.value
        if left.kind == "field" and right.kind == "literal" and right.value is not None:
            return left.value, lambda r: _compare(r, op, right.value)
    if node.kind == "between" and args[0].kind == "field" and all(a.kind == "literal" for a in args[1:]):
        return args[0].value, lambda r: (_compare(r, ">=", args[1].value), _compare(r, "<=", args[2].value))
    if node.kind == "in" and args[0].kind == "field" and all(a.kind == "literal" for a in args[1].args):
        return args[0].value, lambda r: _within(r, {a.value for a in args[1].args if a.value is not None})
    return None


def _null(r: _Range) -> None:
    r.null = True


def _nothing(r: _Range) -> None:
    pass


def _within(r: _Range, values: set) -> None:
    r.compared = True
    r.allowed = values if r.allowed is None else r.allowed & values


def _compare(r: _Range, op: str, value) -> None:
    r.compared = True
    if op == "==":
        _within(r, {value})
    elif op == "!=":
        r.excluded.add(value)
    elif op in (">", ">="):
        bound = (value, op == ">=")
        r.low = bound if r.low is None or _tighter(bound, r.low, higher=True) else r.low
    else:
        bound = (value, op == "<=")
        r.high = bound if r.high is None or _tighter(bound, r.high, higher=False) else r.high


def _tighter(new: tuple, old: tuple, higher: bool) -> bool:
    if new[0] == old[0]:
        return not new[1]  # an exclusive bound is tighter than an inclusive one at the same value
    return new[0] > old[0] if higher else new[0] < old[0]

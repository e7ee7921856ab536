"""Expressions compiled to nested closures: built once per plan, then called millions of times.

Null-safety lives here (see dsl/expr.py): comparisons with null are false, arithmetic with null is null,
logic treats anything but `true` as false. No evaluation raises: type mismatches that the checker could
not see (a CSV column holding text where a number was declared) also give false / null.
"""

from __future__ import annotations

import datetime as dt
import operator
from decimal import Decimal, DivisionByZero, InvalidOperation
from typing import Any, Callable

from .expr import Node, to_number

Fn = Callable[[Any], Any]
COMPARE = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt,
           ">=": operator.ge}


def compile_node(node: Node, segments: dict[str, Fn]) -> Fn:
    return _COMPILERS[node.kind](node, segments)


def _literal(node: Node, segments) -> Fn:
    value = node.value
    return lambda ctx: value


def _field(node: Node, segments) -> Fn:
    name = node.value

    def read(ctx):
        # a subscript, not get(): the engine's lazy contexts compute a missing value in __missing__
        # without a Python-level get() call; a plain dict without the field gives null
        try:
            return ctx[name]
        except KeyError:
            return None
    return read


def _name(node: Node, segments) -> Fn:
    name = node.value
    # looked up at call time: segments are compiled in dependency order into the same dict
    return lambda ctx: segments[name](ctx) is True


def _call(node: Node, segments) -> Fn:
    name = node.value
    if name == "segment":
        return _name(Node("name", node.offset, node.length, node.args[0].value), segments)
    if name == "variant":
        key = f"variant:{node.args[0].value}"
        return lambda ctx: ctx.get(key)
    arg = compile_node(node.args[0], segments)
    if name == "lower":
        return lambda ctx: v.lower() if isinstance(v := arg(ctx), str) else None

    def days_since(ctx):
        value, today = arg(ctx), ctx.get("today")
        if not isinstance(value, dt.date) or not isinstance(today, dt.date):
            return None
        if isinstance(value, dt.datetime):
            value = value.date()
        return Decimal((today - value).days)
    return days_since


def _list(node: Node, segments) -> Fn:
    items = [compile_node(a, segments) for a in node.args]
    return lambda ctx: [f(ctx) for f in items]


def _and(node: Node, segments) -> Fn:
    a, b = (compile_node(x, segments) for x in node.args)
    return lambda ctx: a(ctx) is True and b(ctx) is True


def _or(node: Node, segments) -> Fn:
    a, b = (compile_node(x, segments) for x in node.args)
    return lambda ctx: a(ctx) is True or b(ctx) is True


def _not(node: Node, segments) -> Fn:
    a = compile_node(node.args[0], segments)
    return lambda ctx: a(ctx) is not True


_NEEDS_ALIGNING = (float, dt.datetime)


def _safe_compare(op, x, y) -> bool:
    if x is None or y is None:
        return False
    # int, Decimal and date compare natively; only floats (exact by their repr) and datetime vs date
    # need aligning, and this runs for every comparison of every decision
    if type(x) is not type(y) and (type(x) in _NEEDS_ALIGNING or type(y) in _NEEDS_ALIGNING):
        x, y = _align(x, y)
    try:
        return op(x, y)
    except TypeError:
        return False


def _align(x, y):
    """Make mixed values comparable: float vs Decimal, date vs datetime (compared by local date)."""
    if isinstance(x, float) or isinstance(y, float):
        return to_number(x), to_number(y)
    if isinstance(x, dt.datetime) and not isinstance(y, dt.datetime) and isinstance(y, dt.date):
        return x.date(), y
    if isinstance(y, dt.datetime) and not isinstance(x, dt.datetime) and isinstance(x, dt.date):
        return x, y.date()
    return x, y


def _compare(node: Node, segments) -> Fn:
    a, b = (compile_node(x, segments) for x in node.args)
    op = COMPARE[node.value]
    left, right = node.args
    if right.kind == "literal" and right.value is not None:
        value = right.value  # no call for the constant side
        if left.kind == "field" and type(value) not in _NEEDS_ALIGNING:
            return _field_vs_literal(left.value, op, value)
        return lambda ctx: _safe_compare(op, a(ctx), value)
    return lambda ctx: _safe_compare(op, a(ctx), b(ctx))


def _field_vs_literal(name: str, op, value) -> Fn:
    """The usual `field <op> literal` in one call: the field read (as `_field`) and `_safe_compare`
    inlined, for a literal that needs no aligning (so only a field value that does needs it)."""
    def compare(ctx):
        try:
            x = ctx[name]
        except KeyError:
            return False
        if type(x) in _NEEDS_ALIGNING:
            return _safe_compare(op, x, value)
        try:
            return x is not None and op(x, value)
        except TypeError:
            return False
    return compare


def _in(node: Node, segments) -> Fn:
    a = compile_node(node.args[0], segments)
    items = [compile_node(x, segments) for x in node.args[1].args]

    def contains(ctx):
        value = a(ctx)
        return value is not None and any(_safe_compare(operator.eq, value, f(ctx)) for f in items)
    return contains


def _not_in(node: Node, segments) -> Fn:
    a = compile_node(node.args[0], segments)
    contains = _in(node, segments)
    return lambda ctx: a(ctx) is not None and not contains(ctx)


def _between(node: Node, segments) -> Fn:
    a, lo, hi = (compile_node(x, segments) for x in node.args)
    if node.args[1].kind == node.args[2].kind == "literal":  # the usual `x between 1 and 30`
        low, high = node.args[1].value, node.args[2].value
        if node.args[0].kind == "field" and all(b is not None and type(b) not in _NEEDS_ALIGNING for b in (low, high)):
            return _field_between(node.args[0].value, low, high)

        def between_literals(ctx):  # no calls for the bounds
            value = a(ctx)
            return (value is not None and _safe_compare(operator.ge, value, low)
                    and _safe_compare(operator.le, value, high))
        return between_literals

    def between(ctx):
        value = a(ctx)
        if value is None:
            return False
        return _safe_compare(operator.ge, value, lo(ctx)) and _safe_compare(operator.le, value, hi(ctx))
    return between


def _field_between(name: str, low, high) -> Fn:
    """`field between literal and literal` in one call, as `_field_vs_literal`: bounds that need no
    aligning, so only a field value that does needs `_safe_compare`."""
    def between(ctx):
        try:
            x = ctx[name]
        except KeyError:
            return False
        if x is None:
            return False
        if type(x) in _NEEDS_ALIGNING:
            return _safe_compare(operator.ge, x, low) and _safe_compare(operator.le, x, high)
        try:
            return x >= low and x <= high
        except TypeError:
            return False
    return between


def _is_null(node: Node, segments) -> Fn:
    a = compile_node(node.args[0], segments)
    return lambda ctx: a(ctx) is None


def _is_not_null(node: Node, segments) -> Fn:
    a = compile_node(node.args[0], segments)
    return lambda ctx: a(ctx) is not None


def _neg(node: Node, segments) -> Fn:
    a = compile_node(node.args[0], segments)

    def neg(ctx):
        value = to_number(a(ctx))
        try:
            return None if value is None else -value
        except TypeError:
            return None
    return neg


def _arithmetic(op: str, x, y):
    if x is None or y is None:
        return None
    x, y = to_number(x), to_number(y)
    if type(x) is not type(y) and isinstance(x, dt.date) and isinstance(y, dt.date):
        x, y = _align(x, y)  # date - datetime: days between local dates, as comparisons align them
    if isinstance(x, dt.timedelta) and isinstance(y, Decimal):
        y = float(y)  # durations scale by plain numbers
    try:
        if op == "+":
            return x + y
        if op == "-":
            result = x - y
            return Decimal(result.days) if isinstance(result, dt.timedelta) and isinstance(x, dt.date) else result
        if op == "*":
            return x * y
        return x / y
    except (TypeError, ZeroDivisionError, DivisionByZero, InvalidOperation, OverflowError, ValueError):
        return None


def _arith(node: Node, segments) -> Fn:
    a, b = (compile_node(x, segments) for x in node.args)
    op = node.value
    return lambda ctx: _arithmetic(op, a(ctx), b(ctx))


_COMPILERS = {"literal": _literal, "field": _field, "name": _name, "call": _call, "list": _list, "and": _and,
              "or": _or, "not": _not, "compare": _compare, "in": _in, "not_in": _not_in, "between": _between,
              "is_null": _is_null, "is_not_null": _is_not_null, "neg": _neg, "arith": _arith}

"""What rendering one message template may cost (engine/templates.py), and the hooks that hold it to that.

Policy authors are trusted with what a message says, not with the machine that renders it: a template
that validates must render in a moment, into a message of sensible size, whatever it computes. So:
- every value a template builds is bounded by what it would print as (printing, joining or comparing it
  is where a large value costs): MAX_TEXT characters, MAX_BITS for an integer;
- a size that an operation allocates at once (`"x" * n`, `n ** m`, `center(n)`, `"%0*d"`) is checked
  before it runs, the rest once built;
- one part's render has a budget of loop steps (nested loops multiply: MAX_STEPS) and of work
  (MAX_BUILT: characters built or gone through, a filter call, and for a loop step the size of the
  loop's body, which together bound its time: about a second at most), and its output is at most
  MAX_TEXT.
Arithmetic past a limit gives null, as on a division by zero (engine/templates.py `_binop`); anything else
raises TemplateLimitError, which fails that message (engine/delivery.py makes it a permanent failure of the
channel) instead of holding up the tick.

Jinja's sandbox intercepts attribute access, calls and operators, not loops, `~`, literals, slices or
captured output: the code generator here adds those hooks, and the filters and tests are wrapped.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from decimal import Decimal

MAX_TEXT = 100_000     # characters of one rendered part, and of any value a template builds
MAX_STEPS = 10_000     # loop iterations while one part renders, all loops together
MAX_BUILT = 1_000_000  # work while one part renders, in characters built or gone through (~0.3-1 µs each)
MAX_BITS = 10_000      # an integer a template computes: about 3,000 digits
_POWER_COST = 100      # a power of decimals takes ~50 µs; most operations ~1 µs per character they spend

_FORMAT_SIZE = re.compile(r"%%|%(?:\([^)]*\))?[-#0 +]*(\*|\d*)(?:\.(\*|\d*))?")  # width, precision
# What a filter's time grows with: text filters make their value text, so it is measured as it would print
# (and bounded); item filters go through its items. The others take the same time whatever the value.
TEXT_FILTERS = frozenset({"capitalize", "center", "e", "escape", "indent", "lower", "money", "replace",
                          "string", "striptags", "title", "trim", "truncate", "upper", "urlencode", "wordcount",
                          "wordwrap"})
ITEM_FILTERS = frozenset({"batch", "dictsort", "items", "join", "list", "map", "max", "min", "reject",
                          "rejectattr", "reverse", "select", "selectattr", "slice", "sort", "sum", "unique"})


class TemplateLimitError(Exception):
    pass


class _Budget:
    """What the part being rendered has spent: loop steps, characters built."""

    def __init__(self):
        self.steps = self.built = 0


_BUDGET: ContextVar[_Budget] = ContextVar("template_budget")


@contextmanager
def render_budget():
    """A fresh budget for the part rendered inside."""
    token = _BUDGET.set(_Budget())
    try:
        yield
    finally:
        _BUDGET.reset(token)


def output(chunks) -> str:
    """A part's text from Template.generate(), stopped as soon as it is longer than a part may be."""
    text, length = [], 0
    for chunk in chunks:
        length += len(chunk)
        check(length, "the message part would be")
        text.append(chunk)
    return "".join(text)


def check(amount, what: str, limit: int = MAX_TEXT, unit: str = "characters") -> None:
    if isinstance(amount, (int, float)) and amount > limit:
        raise TemplateLimitError(f"{what} over {limit:,} {unit}")


def spend(amount: int, what: str | None = None) -> None:
    """`amount` characters built: within MAX_TEXT if `what` names the value, and within the part's MAX_BUILT."""
    if what:
        check(amount, what)
    budget = _BUDGET.get()
    budget.built += amount
    check(budget.built, "the template would build", MAX_BUILT)


def size(value, limit: int = MAX_TEXT) -> int:
    """About how many characters `value` prints as, counted no further than past `limit`."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, int):
        return value.bit_length() // 3 + 1  # digits, from above
    if not isinstance(value, (list, tuple, dict)):
        return 1
    total = len(value)
    for item in (value.values() if isinstance(value, dict) else value):
        if total > limit:
            break
        total += size(item, limit - total)
    return total


def arithmetic_result(operator: str, result):
    """`result` spent, or None if it is over MAX_TEXT (`+` and `%` give at most their operands: measured once
    built)."""
    amount = size(result)
    spend(min(amount, MAX_TEXT + 1) + (_POWER_COST if operator == "**" else 0))
    return None if amount > MAX_TEXT else result


def _length(value) -> int:
    return len(value) if isinstance(value, (str, list, tuple, dict)) else 1


def too_big(operator: str, left, right) -> bool:
    """Would `left operator right` be too large? Asked before it is built: building it is the cost."""
    ints = isinstance(left, int) and isinstance(right, int)
    if operator == "**":
        return ints and right > 0 and max(left.bit_length(), 1) * right > MAX_BITS
    if operator == "*" and ints:
        return left.bit_length() + right.bit_length() > MAX_BITS
    if operator == "*":
        count, repeated = (right, left) if isinstance(right, int) else (left, right)
        return isinstance(count, int) and isinstance(repeated, (str, list, tuple)) and size(repeated) * count > MAX_TEXT
    if operator == "%" and isinstance(left, str):  # "%0100000000d" % 1 builds its padding first
        sizes = [n for spec in _FORMAT_SIZE.findall(left) for n in spec if n]
        return any(n == "*" or len(n) > 6 or int(n) > MAX_TEXT for n in sizes) or size(right) > MAX_TEXT
    return False


def absent(value) -> bool:
    """Null, or an item that is not there (`invoices[1]` of a message about one invoice, `loop.previtem`
    on the first pass): printed as nothing, and its fields are null. A field name no record has stays an
    error (strict), as the compile check says."""
    from jinja2 import Undefined

    return value is None or (isinstance(value, Undefined) and not isinstance(value._undefined_name, str))


def finalize(value):
    """What `{{ }}` prints: null and absent items as nothing (as expressions do), and nothing over the
    limit."""
    if absent(value):
        return ""
    check(size(value), "a printed value would be")
    return value


class _Buffer(list):
    """The output a {% set %} or {% filter %} block captures, which generate() never sees: bounded alike."""
    length = 0

    def append(self, text):
        self._grow(len(text))
        super().append(text)

    def extend(self, texts):
        texts = list(texts)
        self._grow(sum(map(len, texts)))
        super().extend(texts)

    def _grow(self, amount: int) -> None:
        self.length += amount
        check(self.length, "a {% set %} or {% filter %} block would capture")
        spend(amount)


# -- the environment's hooks ------------------------------------------------------------------------

class EnvironmentHooks:
    """Methods of the message environment, called by the code that MessageCodeGenerator (below) writes."""

    def loop_steps(self, iterable, weight: int):
        """A loop's items, each a step, and `weight` spent: what its body runs besides what it spends. A
        loop over null (an empty field, a filter given null) has no items: rendering never fails because
        a field is empty."""
        if absent(iterable):
            return
        budget = _BUDGET.get()
        for item in iterable:
            budget.steps += 1
            check(budget.steps, "the template's loops would run", MAX_STEPS, "times")
            spend(weight)
            yield item

    def bounded_concat(self, parts: tuple, autoescape: bool):
        """`a ~ b`, measured before its parts are made text; null joins as nothing, as it prints."""
        from jinja2.runtime import markup_join, str_join

        spend(sum(size(part) for part in parts), "'~' would give")
        return (markup_join if autoescape else str_join)(["" if part is None else part for part in parts])

    def bounded_literal(self, value):
        spend(size(value), "a [list] or {record} would print as")
        return value

    def gone_through(self, value):
        """A slice (a copy, which Jinja makes without the sandbox) or an operand of `in`, `==` ..."""
        spend(_length(value))
        return value

    def output_buffer(self):
        return _Buffer()


@functools.lru_cache(maxsize=1)
def code_generator_class():
    """Jinja's code generator, with the hooks that the sandbox has no place for."""
    from jinja2 import nodes
    from jinja2.compiler import CodeGenerator

    class MessageCodeGenerator(CodeGenerator):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            # id of an expression node -> the hook its value goes through, and the hook's other arguments
            self.hooks: dict[int, tuple[str, str]] = {}

        def visit(self, node, *args, **kwargs):
            if id(node) not in self.hooks:
                return super().visit(node, *args, **kwargs)
            hook, arguments = self.hooks.pop(id(node))
            self._through(hook, super().visit, node, *args, arguments=arguments)

        def visit_For(self, node, frame):  # a step weighs one per node of the body: attribute lookups, `if` ...
            body = [part for part in (*node.body, node.test) if part is not None]
            weight = sum(1 + sum(1 for _ in part.find_all(nodes.Node)) for part in body)
            self.hooks[id(node.iter)] = ("loop_steps", f", {weight}")
            super().visit_For(node, frame)

        def visit_Compare(self, node, frame):  # `a < b`: environment.compare(a, "lt", b), null-safe
            self.write("environment.compare(")
            for operand in (node.expr, *(op.expr for op in node.ops)):
                self.hooks[id(operand)] = ("gone_through", "")
            self.visit(node.expr, frame)
            for op in node.ops:
                self.write(f", {op.op!r}, ")
                self.visit(op.expr, frame)
            self.write(")")

        def visit_Getitem(self, node, frame):
            if not isinstance(node.arg, nodes.Slice):
                return super().visit_Getitem(node, frame)
            self._through("gone_through", super().visit_Getitem, node, frame)

        def visit_Concat(self, node, frame):  # Jinja's, with the parts measured before they are made text
            self.write("environment.bounded_concat((")
            for part in node.nodes:
                self.visit(part, frame)
                self.write(", ")
            self.write("), context.eval_ctx.autoescape)")

        # `{% set b = [a, a] %}` doubles what b prints as without an operator: literals are measured too
        def visit_List(self, node, frame):
            self._through("bounded_literal", super().visit_List, node, frame)

        def visit_Dict(self, node, frame):
            self._through("bounded_literal", super().visit_Dict, node, frame)

        def visit_Tuple(self, node, frame):
            if node.ctx != "load":  # the target of an assignment
                return super().visit_Tuple(node, frame)
            self._through("bounded_literal", super().visit_Tuple, node, frame)

        def _through(self, hook: str, visit, node, *args, arguments: str = "") -> None:
            self.write(f"environment.{hook}(")
            visit(node, *args)
            self.write(f"{arguments})")

        def buffer(self, frame):
            frame.buffer = self.temporary_identifier()
            self.writeline(f"{frame.buffer} = environment.output_buffer()")

        def visit_EvalContextModifier(self, node, frame):  # templatecheck reports it; this is the sandbox's turn
            self.fail("'{% autoescape %}' is not available in message templates", node.lineno)

        visit_ScopedEvalContextModifier = visit_EvalContextModifier

    return MessageCodeGenerator


# -- filters and tests ------------------------------------------------------------------------------

def bounded_filters(filters: dict) -> dict:
    """The filters, each measuring what it goes through and what it gives."""
    wrappers = _filter_wrappers()
    return {name: _bounded_filter(name, wrappers[name](fn) if name in wrappers else fn)
            for name, fn in filters.items()}


def bounded_tests(tests: dict) -> dict:
    return {name: _bounded_test(fn) for name, fn in tests.items()}


def _bounded_filter(name: str, fn):
    position = 1 if hasattr(fn, "jinja_pass_arg") else 0  # after the context/environment Jinja passes
    check_arguments = _ARGUMENT_CHECKS.get(name)

    @functools.wraps(fn)
    def bounded(*args, **kwargs):
        value = args[position] if len(args) > position else None
        if name in TEXT_FILTERS:
            spend(size(value), f"the value given to '{name}' is")
        spend(1 + (_length(value) if name in ITEM_FILTERS else 0))  # the call, and the items it goes through
        if check_arguments:
            check_arguments(*args[position:], **kwargs)
        result = fn(*args, **kwargs)
        if isinstance(result, (str, list, tuple)):
            spend(len(result), f"'{name}' would give")
        elif isinstance(result, Iterator):  # `select`, `unique` ... give their items as they are used
            result = _items_spent(result)
        return result
    return bounded


def _items_spent(items):
    """Lazy items, each a step of the work of whatever goes through them (a chain of filters, say)."""
    for item in items:
        spend(1)
        yield item


def _bounded_test(fn):
    @functools.wraps(fn)
    def bounded(*args, **kwargs):
        spend(sum(map(_length, args)))
        return fn(*args, **kwargs)
    return bounded


def _bounded_items(items, what: str, between: int = 0):
    """`items`, failing as soon as they would print longer than MAX_TEXT (with `between` between them)."""
    total = 0
    for item in items:
        amount = size(item) + between
        total += amount
        check(total, what)
        spend(amount)
        yield item


# Checks of a filter's arguments before it runs: what it would allocate at once. Each takes the filter's
# own arguments.

def _center(value, width=80):
    check(width, "'center' would give")


def _truncate(s, length=255, killwords=False, end="...", leeway=None):
    check(length, "'truncate' would give")


def _batch(value, linecount, fill_with=None):  # the last batch is filled up to linecount
    if isinstance(linecount, int):
        check(linecount * size(fill_with), "'batch' would give")


def _slice(value, slices, fill_with=None):
    if isinstance(slices, int):
        check(slices * size(fill_with), "'slice' would give")


def _round(value, precision=0, method="common"):  # Python computes 10 ** precision
    if isinstance(precision, int):
        check(abs(precision) * 4, "'round' would compute a number of", MAX_BITS, "bits")


def _replace(s, old, new, count=None):
    check(size(old) + size(new), "the text given to 'replace' is")
    text, old, new = str(s), str(old), str(new)
    times = text.count(old) if not isinstance(count, int) or count < 0 else min(count, text.count(old))
    check(len(text) + times * (len(new) - len(old)), "'replace' would give")


def _sum(iterable, attribute=None, start=0):  # adding lists or texts one to the next is quadratic
    if not isinstance(start, (int, float, Decimal)):
        raise TemplateLimitError("'sum' adds numbers: its start must be a number")


_ARGUMENT_CHECKS = {"center": _center, "truncate": _truncate, "batch": _batch, "slice": _slice, "round": _round,
                    "replace": _replace, "sum": _sum}


def _filter_wrappers() -> dict:
    """Filters whose size is only known as they run: run in a way that measures it as it grows."""
    from jinja2 import pass_context, pass_environment, pass_eval_context
    from jinja2.filters import make_attrgetter
    from markupsafe import escape

    def join(original):
        @pass_eval_context
        def bounded(eval_ctx, value, d="", attribute=None):
            if attribute is not None:
                value = map(make_attrgetter(eval_ctx.environment, attribute), value)
            return original(eval_ctx, list(_bounded_items(value, "'join' would give", size(d))), d)
        return bounded

    def map_(original):
        @pass_context
        def bounded(context, value, *args, **kwargs):
            return _bounded_items(original(context, value, *args, **kwargs), "'map' would give")
        return bounded

    def wordwrap(original):  # wrapped at "\n" first, so that the size with wrapstring is known before it is built
        @pass_environment
        def bounded(environment, s, width=79, break_long_words=True, wrapstring=None, break_on_hyphens=True):
            check(width, "'wordwrap' would give")
            lines = original(environment, s, width, break_long_words, "\n", break_on_hyphens).split("\n")
            wrapstring = environment.newline_sequence if wrapstring is None else wrapstring
            check(sum(map(len, lines)) + size(wrapstring) * (len(lines) - 1), "'wordwrap' would give")
            return wrapstring.join(lines)
        return bounded

    def indent(original):
        @pass_eval_context
        def bounded(eval_ctx, s, width=4, first=False, blank=False):
            if eval_ctx.autoescape:  # Jinja makes a text `width` markup as it is: escape it, and the text
                s, width = escape(s), escape(width) if isinstance(width, str) else width
            unit = len(width) if isinstance(width, str) else width
            if isinstance(unit, int):
                text = str(s)
                check(len(text) + (text.count("\n") + 1) * unit, "'indent' would give")
            return original(s, width, first, blank)
        return bounded

    return {"join": join, "map": map_, "wordwrap": wordwrap, "indent": indent}

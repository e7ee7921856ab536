"""Type checking, constant folding and canonical text of expressions (see dsl/expr.py for semantics)."""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal

from .diagnostics import closest, near_typo, suggest
from .expr import FUNCTIONS, NUMBER_TYPES, Checked, ExprError, Node
from .fields import NAMESPACES
from .timeparse import MAX_DAYS, format_duration

# binding strength, loosest first; an operand binding looser than its operator needs parentheses
LEVEL = {"or": 1, "and": 2, "not": 3, "compare": 4, "in": 4, "not_in": 4, "between": 4, "is_null": 4,
         "is_not_null": 4, "arith+": 5, "arith-": 5, "arith*": 6, "arith/": 6, "neg": 7}
ORDERED = {"number", "date", "datetime", "str", "duration"}
DYNAMIC_CALLS = {"variant", "segment", "days_since"}
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # NAME in dsl/expr.lark
KEYWORDS = {"and", "or", "not", "in", "between", "is", "null", "true", "false"}
CUSTOM_FIELD = re.compile(r"(customer|invoice)\.[a-z_][a-z0-9_]*")  # what `fields:` may declare (dsl/model.py)


class Checker:
    def __init__(self, schema: dict[str, str], segments: set[str], experiments: dict[str, set[str]],
                 text_dsl: bool = False, source: str = ""):
        self.schema = {k: NUMBER_TYPES.get(v, v) for k, v in schema.items()}
        self.segments, self.experiments = segments, experiments
        self.text_dsl = text_dsl  # hints are written in the syntax of the file: `field x: str` or `fields: {...}`
        self.source = source  # the expression as written, which messages quote
        self.out = Checked()

    def show(self, node: Node) -> str:
        """A part of the expression as the file has it (`7d`, not the canonical `1w`), else canonical."""
        written = self.source[node.offset:node.offset + node.length].strip()
        return written if written and "\n" not in written else render(node)  # a message stays on one line

    def run(self, node: Node, expect: str) -> Checked:
        out = self.out
        out.node = node
        out.type = self.type_of(node)
        if out.type not in ("any", expect) and not (out.type == "null" and expect == "number"):
            wanted = {"bool": "a condition must be true or false", "number": "a priority must be a number"}[expect]
            self.error("type-error", f"{wanted}; this expression is {_article(out.type)}", node)
        folded = self.fold(node)
        if folded.kind == "literal" and not out.errors:
            out.constant = folded.value
        out.canonical = render(folded)
        return out

    def error(self, code: str, message: str, node: Node, hint: str | None = None) -> None:
        self.out.errors.append(ExprError(code, message, node.offset, node.length, hint))

    # -- types ----------------------------------------------------------------------------------

    def type_of(self, node: Node) -> str:
        method = getattr(self, f"_t_{node.kind}", None)
        return method(node) if method else self._t_operator(node)

    def _t_literal(self, node: Node) -> str:
        return value_type(node.value)

    def _t_field(self, node: Node) -> str:
        if node.value in self.schema:
            self.out.fields.add(node.value)
            return self.schema[node.value]
        self.error("unknown-field", f"unknown field '{node.value}'", node, self._field_hint(node.value))
        return "any"

    def _field_hint(self, name: str) -> str | None:
        """A near-typo of a known field: did you mean it. A name that could be a column of the CSV: how to
        declare it, after a 'did you mean' if a field's name is alike. Else the fields of its namespace.
        Names are compared after the namespace, which every field of it shares: `customer.segmento` is not
        like `customer.name`."""
        namespace, _, attr = name.partition(".")
        if namespace not in NAMESPACES:  # custmer.name
            return suggest(name, self.schema) or f"fields start with {', '.join(n + '.' for n in NAMESPACES)}"
        siblings = {f.partition(".")[2]: f for f in self.schema if f.partition(".")[0] == namespace}
        typo = near_typo(attr, siblings)
        if typo is not None:
            return f"did you mean '{siblings[typo]}'?"
        alike = closest(attr, siblings)
        other = next((f for f in sorted(self.schema) if f.partition(".")[2] == attr), None)  # invoice.name
        similar = f"did you mean '{siblings[alike] if alike else other}'?" if alike or other else None
        lower = name.lower()
        if CUSTOM_FIELD.fullmatch(lower):
            declare = f"field {lower}: str" if self.text_dsl else f"fields: {{ {lower}: str }}"
            where = "with a field line" if self.text_dsl else "under fields"
            case = "" if lower == name else f"; custom field names are lowercase, so write {lower}"
            if similar:
                return f"{similar} If it is a column of your CSV, declare it {where}, e.g. {declare}{case}"
            return f"a column of your CSV must be declared {where} before use, e.g. {declare}{case}"
        return similar or f"fields of {namespace}: {', '.join(sorted(siblings.values()))}"

    def _t_name(self, node: Node) -> str:
        if node.value in self.segments:
            self.out.segments.add(node.value)
            return "bool"
        fields = [f for f in self.schema if f.split(".", 1)[1] == node.value]
        hint = suggest(node.value, self.segments) or (f"did you mean '{fields[0]}'?" if fields else None)
        self.error("unknown-segment", f"unknown segment '{node.value}'", node, hint)
        return "any"

    def _t_list(self, node: Node) -> str:
        for item in node.args:
            self.type_of(item)
        return "list"

    def _t_call(self, node: Node) -> str:
        name = node.value
        if name not in FUNCTIONS:
            self.error("unknown-function", f"unknown function '{name}'", node,
                       suggest(name, FUNCTIONS) or f"functions: {', '.join(FUNCTIONS)}")
            return "any"
        if len(node.args) != FUNCTIONS[name]:
            self.error("bad-arguments", f"{name}() takes exactly one argument", node)
            return "any"
        arg = node.args[0]
        if name in ("variant", "segment"):
            if arg.kind != "literal" or not isinstance(arg.value, str):
                self.error("bad-arguments", f'{name}() takes a quoted name, e.g. {name}("x")', arg)
                return "any"
            if name == "segment":
                return self._t_name(Node("name", arg.offset, arg.length, arg.value))
            if arg.value not in self.experiments:
                self.error("unknown-experiment", f"unknown experiment '{arg.value}'", arg,
                           suggest(arg.value, self.experiments))
                return "any"
            self.out.experiments.add(arg.value)
            return "str"
        kind = self.type_of(arg)
        wanted = ("date", "datetime") if name == "days_since" else ("str",)
        if kind not in (*wanted, "any", "null"):
            self.error("bad-arguments", f"{name}() needs {_article(wanted[0])}, not {_article(kind)}", arg)
        return "number" if name == "days_since" else "str"

    def _t_operator(self, node: Node) -> str:
        kinds = [self.type_of(a) if a.kind != "list" else "list" for a in node.args]
        if node.kind == "list":
            return "list"
        rule = getattr(self, f"_op_{node.kind}")
        return rule(node, kinds)

    def _op_and(self, node, kinds):
        return self._logic(node, kinds)

    _op_or = _op_and

    def _op_not(self, node, kinds):
        return self._logic(node, kinds)

    def _logic(self, node: Node, kinds: list[str]) -> str:
        word = {"and": "'and'", "or": "'or'", "not": "'not'"}[node.kind]
        for arg, kind in zip(node.args, kinds):
            if kind not in ("bool", "any", "null"):
                self.error("type-error", f"{word} needs true/false on each side; {self.show(arg)} is {_article(kind)}", arg)
        return "bool"

    def _op_compare(self, node: Node, kinds: list[str]) -> str:
        a, b = kinds
        left, right = node.args
        if _is_null(left) or _is_null(right):
            # SQL's rule: a comparison with null is never true, so `x != null` would silently never hold
            other = right if _is_null(left) else left
            test = "is not null" if node.value == "!=" else "is null"
            self.error("type-error", "a comparison with null is always false",
                       node, f"write {self.show(other)} {test}")
            return "bool"
        if "any" in kinds or "null" in kinds:
            return "bool"
        if not _comparable(a, b):
            self.error("type-error", f"cannot compare {self.show(left)} ({a}) with {self.show(right)} ({b})", node)
        elif node.value not in ("==", "!=") and a not in ORDERED:
            self.error("type-error", f"'{node.value}' needs numbers, dates or text; {self.show(left)} is {_article(a)}", node)
        self._check_variant_literal(left, right)
        self._check_variant_literal(right, left)
        self._check_lower_literal(left, right)
        self._check_lower_literal(right, left)
        return "bool"

    def _check_lower_literal(self, call: Node, literal: Node) -> None:
        """`lower(x) == "A"` never holds: lower() gives no capital letters."""
        if (call.kind == "call" and call.value == "lower" and literal.kind == "literal"
                and isinstance(literal.value, str) and literal.value != literal.value.lower()):
            self.error("type-error", f"lower(...) gives lower-case text, never {self.show(literal)}", literal,
                       f"write {render(Node('literal', 0, 0, literal.value.lower(), ()))}")

    def _check_variant_literal(self, call: Node, literal: Node) -> None:
        if call.kind != "call" or call.value != "variant" or literal.kind != "literal":
            return
        exp = call.args[0].value if call.args else None
        variants = self.experiments.get(exp)
        if variants is not None and literal.value not in variants:
            self.error("unknown-variant", f"experiment '{exp}' has no variant '{literal.value}'", literal,
                       suggest(str(literal.value), variants) or f"variants: {', '.join(sorted(variants))}")

    def _op_in(self, node: Node, kinds: list[str]) -> str:
        left, items = node.args
        kind = kinds[0]
        for item in items.args:
            if _is_null(item):
                self.error("type-error", "null in a list never matches (a comparison with null is false)", item,
                           f"write {self.show(left)} is null or ...")
                continue
            item_kind = self.type_of(item)
            self._check_lower_literal(left, item)
            if kind != "any" and item_kind not in ("any", "null") and not _comparable(kind, item_kind):
                self.error("type-error", f"{self.show(item)} ({item_kind}) cannot be in a list compared with "
                           f"{self.show(left)} ({kind})", item)
            self._check_variant_literal(left, item)
        return "bool"

    _op_not_in = _op_in

    def _op_between(self, node: Node, kinds: list[str]) -> str:
        value = kinds[0]
        for bound, kind in zip(node.args[1:], kinds[1:]):
            if "any" in (value, kind) or "null" in (value, kind):
                continue
            if value not in ("number", "date", "datetime", "duration") or not _comparable(value, kind):
                self.error("type-error", f"between needs numbers or dates; {self.show(node.args[0])} ({value}) "
                           f"and {self.show(bound)} ({kind}) do not fit", bound)
        return "bool"

    def _op_is_null(self, node, kinds):
        return "bool"

    _op_is_not_null = _op_is_null

    def _op_neg(self, node: Node, kinds: list[str]) -> str:
        if kinds[0] not in ("number", "duration", "any", "null"):
            self.error("type-error", f"cannot negate {_article(kinds[0])}", node)
            return "any"
        return kinds[0] if kinds[0] != "null" else "number"

    def _op_arith(self, node: Node, kinds: list[str]) -> str:
        a, b = kinds
        op = node.value
        if "any" in kinds:
            return "any"
        a = "number" if a == "null" else a
        b = "number" if b == "null" else b
        result = _arith_type(op, a, b)
        if result is None:
            self.error("type-error", f"cannot compute {_article(a)} {op} {_article(b)} "
                       f"({self.show(node.args[0])} {op} {self.show(node.args[1])})", node)
            return "any"
        return result

    # -- folding --------------------------------------------------------------------------------

    def fold(self, node: Node) -> Node:
        """Replace every constant sub-expression by its value (only when the expression type-checks)."""
        if node.kind in ("literal", "field", "name") or self.out.errors:
            return node
        args = tuple(self.fold(a) if a.kind != "list" else Node("list", a.offset, a.length, None,
                                                                   tuple(self.fold(x) for x in a.args))
                     for a in node.args)
        node = Node(node.kind, node.offset, node.length, node.value, args)
        if node.kind == "call" and node.value in DYNAMIC_CALLS:
            return node
        if all(_is_const(a) for a in args):
            from .exprcompile import compile_node

            try:
                value = compile_node(node, {})({})
            except Exception:  # noqa: BLE001 - a constant that cannot be computed stays as written
                return node
            problem = _out_of_range(node, value)
            if problem:
                self.error("bad-value", problem, node)
                return node
            if isinstance(value, dt.timedelta) and value % dt.timedelta(minutes=1):
                return node  # a duration literal is whole minutes: `1d / 7` stays as written, not a cut 205m
            if node.kind != "list":
                return Node("literal", node.offset, node.length, value)
        return node


def _out_of_range(node: Node, value) -> str | None:
    """Why a date or duration computed from constants is refused: the limits on literals (dsl/timeparse.py)
    hold for what they compute too, so nothing in a plan can overflow a date at run time."""
    if isinstance(value, dt.timedelta) and abs(value) > dt.timedelta(days=MAX_DAYS):
        return f"{render(node)} is {abs(value).days} days; durations go up to {MAX_DAYS}d (ten years)"
    temporal = any(isinstance(a.value, (dt.date, dt.timedelta)) for a in node.args)
    by_zero = node.value == "/" and node.args[1].value == 0
    if value is None and node.kind in ("arith", "neg") and temporal and not by_zero:
        return f"{render(node)} is beyond the dates and durations a policy can use"
    return None


def _is_const(node: Node) -> bool:
    return node.kind == "literal" or (node.kind == "list" and all(_is_const(a) for a in node.args))


def value_type(value) -> str:
    """The expression type of a Python value (literals of expressions and of templates)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float, Decimal)):
        return "number"
    if isinstance(value, str):
        return "str"
    if isinstance(value, dt.datetime):
        return "datetime"
    if isinstance(value, dt.date):
        return "date"
    if isinstance(value, dt.timedelta):
        return "duration"
    return "any"


def _comparable(a: str, b: str) -> bool:
    dates = {"date", "datetime"}
    return a == b or (a in dates and b in dates)


def _is_null(node: Node) -> bool:
    return node.kind == "literal" and node.value is None


def _arith_type(op: str, a: str, b: str) -> str | None:
    if a == b == "number":
        return "number"
    if op in "+-" and a in ("date", "datetime") and b == "duration":
        return a
    if op == "+" and a == "duration" and b in ("date", "datetime"):
        return b
    if op == "-" and a in ("date", "datetime") and b in ("date", "datetime"):
        return "number"
    if op in "+-" and a == b == "duration":
        return "duration"
    if op in "*/" and a == "duration" and b == "number":
        return "duration"
    return None


def _article(kind: str) -> str:
    words = {"number": "a number", "str": "text", "bool": "true/false", "date": "a date", "datetime": "a date-time",
             "duration": "a duration", "null": "null", "list": "a list", "any": "unknown"}
    return words.get(kind, kind)




# -- canonical text -----------------------------------------------------------------------------

def render(node: Node) -> str:
    return _render(node)[0]


def literal_text(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        text = format(value.normalize(), "f")
        return text
    if isinstance(value, (int, float)):
        return literal_text(Decimal(repr(value)))
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dt.timedelta):
        return format_duration(int(value.total_seconds() // 60))
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def _bare_segment(node: Node) -> bool:
    """Whether `segment("x")` can be written `x`: x reads back as a name, not as a keyword or a literal."""
    arg = node.args[0] if node.value == "segment" and len(node.args) == 1 else None
    return (arg is not None and arg.kind == "literal" and isinstance(arg.value, str)
            and IDENTIFIER.fullmatch(arg.value) is not None and arg.value not in KEYWORDS)


def _render(node: Node) -> tuple[str, int]:
    kind = node.kind
    if kind == "literal":
        text = literal_text(node.value)
        return (text, 7 if text.startswith("-") else 9)
    if kind in ("field", "name"):
        return node.value, 9
    if kind == "call" and _bare_segment(node):
        return node.args[0].value, 9  # `segment("x")` means `x`: one canonical text, one plan_hash
    if kind == "call":
        return f"{node.value}({', '.join(render(a) for a in node.args)})", 9
    if kind == "list":
        return f"[{', '.join(render(a) for a in node.args)}]", 9
    level = LEVEL[f"arith{node.value}" if kind == "arith" else kind]
    args = node.args

    def sub(child: Node, minimum: int) -> str:
        text, child_level = _render(child)
        return f"({text})" if child_level < minimum else text

    if kind in ("and", "or"):
        return f" {kind} ".join((sub(args[0], level), sub(args[1], level + 1))), level
    if kind == "not":
        return f"not {sub(args[0], level)}", level
    if kind == "neg":
        return f"-{sub(args[0], level)}", level
    if kind == "arith":
        return f"{sub(args[0], level)} {node.value} {sub(args[1], level + 1)}", level
    if kind == "compare":
        return f"{sub(args[0], 5)} {node.value} {sub(args[1], 5)}", level
    if kind in ("in", "not_in"):
        word = "in" if kind == "in" else "not in"
        return f"{sub(args[0], 5)} {word} {render(args[1])}", level
    if kind == "between":
        return f"{sub(args[0], 5)} between {sub(args[1], 5)} and {sub(args[2], 5)}", level
    word = "is null" if kind == "is_null" else "is not null"
    return f"{sub(args[0], 5)} {word}", level

"""Compile-time check of one message template (engine/templates.py): names, fields, filters, types, and
no way out of the sandbox.

A template may read its variables and their fields, index lists by number and records by field name,
apply `money`, `date` and templates.JINJA_FILTERS, and use Jinja's statements (if, for, set, with,
filter blocks). It may not call anything (methods included), load other templates (include, import,
extends), define macros, turn escaping off (autoescape), use `_` names or compute a subscript: the
sandbox would block those when the message renders, and the contact would fail then instead of the
policy now. Kinds of values are followed as far as they
are known, so that a filter or an operator applied to the wrong kind (`customer.name | round`,
`invoices | money`) is an error at compile time as well, and so is an argument of `money` or `date`
written out that could never work (`money("USD", "zz_ZZ")`, `date("dd/MM/yyyy HH:mm")`).

Each problem is reported where the parser read it (templates.SourceMap): inside the {{ ... }} or
{% ... %} that is wrong, not at the same word in the message's text.
"""

from __future__ import annotations

from ..dsl.diagnostics import near_typo, suggest
from ..dsl.exprcheck import CUSTOM_FIELD
from .templates import (FILTER_PARAMETERS, RECORDS, VARIABLES, TemplateIssue, currency_problem,
                        date_format_problem, locale_problem)

ANY = "any"
KINDS = {"customer": "customer", "invoice": "invoice", "promise": "promise", "invoices": "list:invoice",
         "total_balance": "number", "pay_link": "str", "currency": "str", "today": "date"}
CURRENCY_HINT = ("an invoice's currency is invoice.currency, or i.currency in a loop over invoices, and currency "
                 "is the message's first invoice's; `money` already formats an amount in its invoice's currency")
FIELD_KINDS = {"int": "number", "float": "number", "decimal": "number"}
LOOP_ATTRS = ("index", "index0", "revindex", "revindex0", "first", "last", "length", "previtem", "nextitem",
              "depth", "depth0")
DATE_ATTRS = ("year", "month", "day")
# what a filter needs its value to be, by filter name
NEEDS = {**dict.fromkeys(("round", "abs", "money", "filesizeformat"), "number"), "date": "date",
         **dict.fromkeys(("dictsort", "items"), "mapping"),
         **dict.fromkeys(("length", "count", "join", "first", "last", "sum", "sort", "map", "select", "reject",
                          "selectattr", "rejectattr", "list", "unique", "min", "max", "reverse", "batch", "slice"),
                         "sequence")}
# `date` of text failed every message whose text was no ISO date (a name, a number): a field holding
# dates is declared `date` or `datetime`
ACCEPTS = {"number": {"number"}, "date": {"date", "datetime"}, "mapping": set(RECORDS),
           "sequence": {"str", "list", "list:invoice", *RECORDS}}
# what a filter gives, when it does not depend on the value
GIVES = {**dict.fromkeys(("length", "count", "wordcount", "int", "float", "round", "abs", "sum"), "number"),
         **dict.fromkeys(("batch", "slice", "map", "dictsort", "items"), "list")}
SAME = ("sort", "reverse", "unique", "list", "select", "reject", "selectattr", "rejectattr", "default", "d")
ELEMENT = ("first", "last", "min", "max")
ATTRIBUTE_KWARG = ("sort", "sum", "unique", "min", "max", "join", "map")
ORDERING = ("lt", "lteq", "gt", "gteq")


class Walker:
    def __init__(self, where, schema: dict[str, str], env):
        """`where`: the template's templates.SourceMap, which places what is reported."""
        self.where, self.env = where, env
        self.fields = {ns: {k.split(".", 1)[1]: FIELD_KINDS.get(v, v) for k, v in schema.items()
                            if k.startswith(ns + ".")} for ns in RECORDS.values()}
        self.issues: list[TemplateIssue] = []

    def issue(self, code: str, message: str, node, needle: str, hint: str | None = None,
              severity: str = "error", before=None) -> None:
        """Reported at `needle` from `node`'s token on (or its last before the node `before`), else at the
        node's token: inside the {{ ... }} or {% ... %} that is wrong, never in the message's text."""
        line, col = self.where.locate(node, needle, before)
        self.issues.append(TemplateIssue(code, message, line, col, hint, severity))

    def walk(self, tree) -> list[TemplateIssue]:
        self.statements(tree.body, dict(KINDS))
        return sorted(self.issues, key=lambda i: (i.line, i.col))

    # -- statements ---------------------------------------------------------------------------------

    def statements(self, body, scope: dict) -> None:
        for node in body:
            self.statement(node, scope)

    def statement(self, node, scope: dict) -> None:
        from jinja2 import nodes

        loading = {nodes.Include: "include", nodes.Import: "import", nodes.FromImport: "from",
                   nodes.Extends: "extends", nodes.Macro: "macro", nodes.CallBlock: "call"}
        for kind, word in loading.items():
            if isinstance(node, kind):
                self.issue("unsafe-template", f"'{{% {word} %}}' is not available in message templates: a "
                           "message is one self-contained template", node, word)
                return
        if isinstance(node, nodes.EvalContextModifier):
            self.issue("unsafe-template", "'{% autoescape %}' is not available in message templates: an HTML "
                       "part always escapes what it prints, so that data cannot become markup", node, "autoescape")
            return
        handler = getattr(self, f"_stmt_{type(node).__name__.lower()}", None)
        if handler:
            handler(node, scope)
            return
        for child in node.iter_child_nodes():
            self.kind(child, scope) if isinstance(child, nodes.Expr) else self.statement(child, scope)

    def _stmt_output(self, node, scope: dict) -> None:
        from jinja2 import nodes

        for child in node.nodes:
            if not isinstance(child, nodes.TemplateData):
                kind = self.kind(child, scope)
                if kind in RECORDS or kind.startswith("list"):  # went out as Python's text: {'email': ...}
                    self.issue("template-type", f"this prints {_describe(kind)} as Python writes it ({{'name': "
                               "...}, ['F1', ...]), not as a message says it", child, None,
                               "print a field (customer.name), or a list joined: invoices | map(attribute="
                               "'number') | join(', ')")

    def _stmt_for(self, node, scope: dict) -> None:
        items = self.kind(node.iter, scope)
        if items in ("number", "bool", "date", "datetime"):
            self.issue("template-type", f"cannot loop over {_describe(items)}", node, "for")
        inner = dict(scope, loop="loop")
        self.bind(node.target, inner, _element(items))
        if node.test is not None:
            self.kind(node.test, inner)
        self.statements(node.body, inner)
        self.statements(node.else_, scope)

    def _stmt_assign(self, node, scope: dict) -> None:
        self.bind(node.target, scope, self.kind(node.node, scope))

    def _stmt_assignblock(self, node, scope: dict) -> None:
        self.statements(node.body, scope)
        kind = self.filter(node.filter, "str", scope) if node.filter is not None else "str"
        self.bind(node.target, scope, kind)

    def _stmt_with(self, node, scope: dict) -> None:
        inner = dict(scope)
        for target, value in zip(node.targets, node.values):
            self.bind(target, inner, self.kind(value, scope))
        self.statements(node.body, inner)

    def _stmt_filterblock(self, node, scope: dict) -> None:
        self.statements(node.body, scope)
        self.filter(node.filter, "str", scope)

    def bind(self, target, scope: dict, kind: str) -> None:
        from jinja2 import nodes

        if isinstance(target, nodes.Name):
            scope[target.name] = kind
        else:  # unpacking: the parts' kinds are unknown
            for name in target.find_all(nodes.Name):
                scope[name.name] = ANY

    # -- expressions ----------------------------------------------------------------------------------

    def kind(self, node, scope: dict) -> str:
        """Check an expression and say what kind of value it gives (ANY when unknown)."""
        from jinja2 import nodes

        handler = getattr(self, f"_{type(node).__name__.lower()}", None)
        if handler:
            return handler(node, scope)
        if isinstance(node, nodes.BinExpr) and not isinstance(node, (nodes.And, nodes.Or)):
            return self.arithmetic(node, scope)
        kinds = [self.kind(child, scope) for child in node.iter_child_nodes()]
        if isinstance(node, (nodes.And, nodes.Or, nodes.Not)):
            return "bool"
        if isinstance(node, nodes.UnaryExpr):  # - and +
            return self.need_number(node, kinds[0], node.operator)
        return {nodes.Concat: "str", nodes.List: "list", nodes.Tuple: "list"}.get(type(node), ANY)

    def _const(self, node, scope: dict) -> str:
        return _kind_of(node.value)

    def _name(self, node, scope: dict) -> str:
        if node.name.startswith("_"):
            self.issue("unsafe-template", f"'{node.name}' is not available in templates", node, node.name)
        elif node.name not in scope:
            self.issue("unknown-variable", f"unknown variable '{node.name}'", node, node.name,
                       suggest(node.name, scope) or f"variables: {', '.join(VARIABLES)}")
        return scope.get(node.name) or ANY

    def _getattr(self, node, scope: dict) -> str:
        return self.member(node, self.kind(node.node, scope), node.attr)

    def _getitem(self, node, scope: dict) -> str:
        from jinja2 import nodes

        base = self.kind(node.node, scope)
        arg = node.arg
        if isinstance(arg, nodes.Const) and isinstance(arg.value, str):
            return self.member(node, base, arg.value)
        if isinstance(arg, nodes.Const) and isinstance(arg.value, int) and (base in ("list", "str", ANY)
                                                                             or base.startswith("list:")):
            return _element(base)
        if isinstance(arg, nodes.Slice) and all(isinstance(p, nodes.Const) or p is None
                                                for p in (arg.start, arg.stop, arg.step)):
            return base
        self.issue("unsafe-template", "a subscript must be a field name or a number written out "
                   "(customer.name, invoices[0]), not computed", node, "[")
        return ANY

    def member(self, node, base: str, attr: str, needle: str | None = None) -> str:
        """The kind of `base.attr`, reporting attributes that do not exist (at `needle` in the source)."""
        if attr.startswith("_"):
            self.issue("unsafe-template", f"'{attr}' reaches into Python internals; templates cannot use it",
                       node, attr)
            return ANY
        if base == ANY:
            return ANY
        known = self.members(base)
        if known is None:
            # an amount is a number: it carries its invoice's currency for `money` alone
            hint = CURRENCY_HINT if base == "number" and attr == "currency" else None
            self.issue("unknown-attribute", f"{_describe(base)} has no attribute '{attr}'", node, attr, hint)
            return ANY
        if attr not in known:
            what = base if base in RECORDS else _describe(base)
            self.issue("unknown-attribute", f"{what} has no field '{attr}'", node, needle or f".{attr}",
                       _attribute_hint(base, attr, known))
        return known.get(attr, ANY)

    def members(self, base: str) -> dict[str, str] | None:
        if base == "loop":
            return dict.fromkeys(LOOP_ATTRS, ANY)
        if base in ("date", "datetime"):
            return dict.fromkeys(DATE_ATTRS, "number")
        return self.fields.get(base)

    def _call(self, node, scope: dict) -> str:
        for arg in [*node.args, *(k.value for k in node.kwargs), node.dyn_args, node.dyn_kwargs]:
            if arg is not None:
                self.kind(arg, scope)
        name = getattr(node.node, "attr", None) or getattr(node.node, "name", None) or "("
        self.issue("unsafe-template", f"templates cannot call functions or methods ('{name}'); use a filter, "
                   "e.g. invoices | length", node.node, name)
        return ANY

    def _filter(self, node, scope: dict) -> str:
        return self.filter(node, self.kind(node.node, scope), scope)

    def _test(self, node, scope: dict) -> str:
        self.kind(node.node, scope)
        self.arguments(node, scope)
        if node.name not in self.env.tests:
            self.issue("unknown-filter", f"unknown test '{node.name}'", node, node.name,
                       suggest(node.name, self.env.tests))
        return "bool"

    def _compare(self, node, scope: dict) -> str:
        left = self.kind(node.expr, scope)
        for operand in node.ops:
            right = self.kind(operand.expr, scope)
            if operand.op in ORDERING and ANY not in (left, right) and not _comparable(left, right):
                self.issue("template-type", f"cannot compare {_describe(left)} with {_describe(right)}", node,
                           _OPS.get(operand.op, ""), before=operand.expr)
            left = right
        return "bool"

    def _condexpr(self, node, scope: dict) -> str:
        kinds = {self.kind(n, scope) for n in (node.expr1, node.expr2) if n is not None}
        self.kind(node.test, scope)
        return kinds.pop() if len(kinds) == 1 else ANY

    def arithmetic(self, node, scope: dict) -> str:
        from jinja2 import nodes

        left, right = self.kind(node.left, scope), self.kind(node.right, scope)
        op = node.operator
        if op in ("/", "//") and isinstance(node.right, nodes.Const) and node.right.value == 0:
            self.issue("division-by-zero", "division by zero: this prints nothing", node, op, severity="warning",
                       before=node.right)
        if ANY in (left, right) or left == right == "number":
            return "number" if "str" not in (left, right) else ANY
        if (op == "+" and left == right == "str") or (op == "%" and left == "str"):
            return "str"
        if op == "*" and {left, right} == {"str", "number"}:
            return "str"
        if op == "-" and {left, right} <= {"date", "datetime"}:
            return ANY  # a timedelta
        self.issue("template-type", f"cannot compute {_describe(left)} {op} {_describe(right)}", node, op,
                   before=node.right)
        return ANY

    def need_number(self, node, kind: str, op: str) -> str:
        if kind not in ("number", ANY):
            self.issue("template-type", f"'{op}' needs a number, not {_describe(kind)}", node, op)
        return "number"

    # -- filters --------------------------------------------------------------------------------------

    def filter(self, node, value: str, scope: dict) -> str:
        """Check a filter applied to a value of kind `value`; the kind it gives."""
        name = node.name
        given = self.arguments(node, scope)
        if name == "attr":
            self.issue("unsafe-template", "the 'attr' filter reaches around the sandbox's attribute checks; "
                       "write the field out: customer.name", node, name)
            return ANY
        if name not in self.env.filters:
            self.issue("unknown-filter", f"unknown filter '{name}'", node, name, suggest(name, self.env.filters))
            return ANY
        self.names_in_arguments(node, value)
        need = NEEDS.get(name)
        if need and not _accepts(need, value):
            self.issue("template-type", f"the '{name}' filter needs {_NEED_WORDS[need]}, not {_describe(value)}",
                       node, name)
        if name in FILTER_PARAMETERS:
            self.formatting_arguments(node, given)
        else:
            self.call_shape(node, given)
        if name == "sum":
            self.summed(node, value)
        return self.mapped(node, value) if name == "map" else _filter_gives(name, value)

    def attribute_kind(self, node, value: str) -> str | None:
        """The kind of the field an `attribute=` argument names (dotted: `due_date.year`) on the items of
        a list of kind `value`; None without one (an unknown field has been reported already)."""
        from jinja2 import nodes

        attribute = next((k.value for k in node.kwargs if k.key == "attribute"), None)
        if attribute is None and node.name == "sum" and node.args:  # sum(iterable, attribute=None, start=0)
            attribute = node.args[0]
        if attribute is None or (isinstance(attribute, nodes.Const) and attribute.value is None):
            return None
        if not (isinstance(attribute, nodes.Const) and isinstance(attribute.value, str)):
            return ANY
        kind = _element(value)
        for part in attribute.value.split("."):
            known = self.members(kind) if kind != ANY else None
            kind = known.get(part, ANY) if known else ANY
        return kind

    def mapped(self, node, value: str) -> str:
        """What `map` gives: a list of the named field's values, or of what the named filter gives for each
        item, so that a filter later applied to an item (`| first | money`) is checked too."""
        from jinja2 import nodes

        if any(k.key == "default" for k in node.kwargs):  # items without the field get a value of any kind
            return "list"
        item = self.attribute_kind(node, value)
        named = node.args[0].value if node.args and isinstance(node.args[0], nodes.Const) else None
        if item is None and named in self.env.filters:
            # `list`, `sort`, `reverse` ... applied to one item give its characters or keys, not its kind
            item = ANY if named in SAME and named not in ("default", "d") else _filter_gives(named, _element(value))
        return "list" if item in (None, ANY) else f"list:{item}"

    def summed(self, node, value: str) -> None:
        """`sum` adds numbers: of anything else it fails every message that uses the template."""
        item = self.attribute_kind(node, value)
        item = _element(value) if item is None else item
        if item not in (ANY, "number", "bool"):
            self.issue("template-type", f"the 'sum' filter adds numbers, not {_describe(item)}", node, "sum")

    def call_shape(self, node, given: list) -> None:
        """A filter given arguments it cannot take (one missing, one too many, text where it counts) would
        fail every message that uses the template when it renders: an error now. Checked against the
        filter's own signature; an argument known only at render time is taken as it comes."""
        import inspect

        from jinja2 import nodes

        func = self.env.filters[node.name]
        try:
            signature = inspect.signature(func)
        except (TypeError, ValueError):
            return
        # the value, and before it the environment or context Jinja passes (when the signature shows it: an
        # async variant's shows the plain function's)
        first = next(iter(signature.parameters), None)
        passed = getattr(func, "jinja_pass_arg", None) is not None and first in ("environment", "env", "eval_ctx",
                                                                                  "context")
        lead = 2 if passed else 1
        try:
            bound = signature.bind(*[None] * lead, *[arg for key, arg, _ in given if isinstance(key, int)],
                                   **{key: arg for key, arg, _ in given if isinstance(key, str)})
        except TypeError as exc:
            self.issue("template-type", f"the '{node.name}' filter cannot be called so: {exc}", node, node.name)
            return
        for parameter, arg in list(bound.arguments.items())[lead:]:
            if (parameter in NUMBER_PARAMETERS.get(node.name, ()) and isinstance(arg, nodes.Const)
                    and isinstance(arg.value, str)):
                self.issue("template-type", f"the '{node.name}' filter's {parameter} is a number, not the text "
                           f"{arg.value!r}", arg, None)
                continue
            takes, what = ARGUMENT_RULES.get((node.name, parameter), (None, ""))
            if takes is not None and isinstance(arg, nodes.Const) and not takes(arg.value):
                self.issue("template-type", f"the '{node.name}' filter's {parameter} is {what}, not {arg.value!r}",
                           arg, None)

    def arguments(self, node, scope: dict) -> list[tuple[int | str, object, str]]:
        """Check a filter's or test's arguments; each one's position (or keyword), node and kind."""
        given = [(i, arg, self.kind(arg, scope)) for i, arg in enumerate(node.args)]
        given += [(k.key, k.value, self.kind(k.value, scope)) for k in node.kwargs]
        if node.dyn_args is not None or node.dyn_kwargs is not None:
            self.issue("unsafe-template", "write a filter's arguments out (no *args or **kwargs)", node, "*")
        return given

    def formatting_arguments(self, node, given: list) -> None:
        """`money(currency, locale)` and `date(format, locale)`: an argument that could never work (one too
        many, an unknown locale or currency, a date pattern asking for hours) would fail every message that
        uses the template when it renders, so it is an error now, at the argument. A null or empty one
        means the default (the policy's currency, the customer's locale, the medium format)."""
        from jinja2 import nodes

        name, parameters = node.name, FILTER_PARAMETERS[node.name]
        usage = f"{name}({', '.join(repr(p) for p in _EXAMPLES[name])})"
        seen: set[str] = set()
        for key, arg, kind in given:
            parameter = (parameters[key] if key < len(parameters) else None) if isinstance(key, int) else key
            if parameter not in parameters or parameter in seen:
                what = "one argument too many" if parameter is None else (
                    f"'{parameter}' is given twice" if parameter in seen else f"no argument '{parameter}'")
                self.issue("template-type", f"the '{name}' filter takes a {parameters[0]} and a locale: {what}",
                           arg, key if isinstance(key, str) else None, f"e.g. {usage}", before=arg)
                continue
            seen.add(parameter)
            literal = arg.value if isinstance(arg, nodes.Const) else None
            if literal is None and kind in (ANY, "str"):
                continue  # null (the default), or known only when a message renders
            if not isinstance(literal, str) and kind != "str":
                self.issue("template-type", f"the {parameter} given to '{name}' is text such as "
                           f"{_EXAMPLES[name][parameters.index(parameter)]!r}, not {_describe(kind)}", arg, None)
                continue
            check = {"currency": currency_problem, "locale": locale_problem, "format": date_format_problem}
            problem = check[parameter](literal) if literal else None
            if problem:
                message, hint = problem
                self.issue("template-type", f"the '{name}' filter: {message}", arg, None, hint)

    def names_in_arguments(self, node, value: str) -> None:
        """Filters that take an attribute, filter or test by name: the name must be written out and safe."""
        from jinja2 import nodes

        name = node.name
        named = [k.value for k in node.kwargs if k.key == "attribute" and name in ATTRIBUTE_KWARG]
        if name == "sum" and node.args and not named and not _index_or_none(node.args[0]):
            named.append(node.args[0])  # its first argument is the attribute too (a number: an index)
        if name in ("selectattr", "rejectattr") and node.args:
            named.append(node.args[0])
        for arg in named:
            if not (isinstance(arg, nodes.Const) and isinstance(arg.value, str)):
                self.issue("unsafe-template", f"the attribute given to '{name}' must be written out", node, name)
            elif any(part.startswith("_") for part in arg.value.split(".")):
                self.issue("unsafe-template", f"'{arg.value}' reaches into Python internals", node, arg.value)
            elif _element(value) in RECORDS:
                self.member(arg, _element(value), arg.value.split(".")[0], needle=arg.value)
        by_name = {"map": self.env.filters, "select": self.env.tests, "reject": self.env.tests}.get(name)
        if by_name is not None and node.args and not named:
            first = node.args[0]
            if not (isinstance(first, nodes.Const) and first.value in by_name and first.value != "map"):
                self.issue("unsafe-template", f"'{name}' takes the name of a known "
                           f"{'filter' if name == 'map' else 'test'}, written out", node, name)
            elif name == "map":  # `invoices | map('money')`: the filter applies to each item, of a known kind
                need, item = NEEDS.get(first.value), _element(value)
                if need and not _accepts(need, item):
                    self.issue("template-type", f"the '{first.value}' filter needs {_NEED_WORDS[need]}, not "
                               f"{_describe(item)}: map('{first.value}') applies it to each item", node, name)


_EXAMPLES = {"money": ("USD", "es_PE"), "date": ("dd/MM/yyyy", "es_PE")}
# the filters' arguments that only a number will do (a default's type does not say it: `indent` takes
# a width as text too, `int` and `float` a default of any kind)
NUMBER_PARAMETERS = {"round": ("precision",), "center": ("width",), "truncate": ("length", "leeway"),
                     "wordwrap": ("width",), "batch": ("linecount",), "slice": ("slices",), "sum": ("start",),
                     "int": ("base",)}
# written-out values a filter refuses when it renders (each failed every message): what it takes
_POSITIVE = (lambda v: type(v) is int and v >= 1, "a whole number of 1 or more")
ARGUMENT_RULES = {("slice", "slices"): _POSITIVE, ("wordwrap", "width"): _POSITIVE,
                  ("round", "method"): (lambda v: v in ("common", "ceil", "floor"), "'common', 'ceil' or 'floor'")}
_OPS = {"lt": "<", "lteq": "<=", "gt": ">", "gteq": ">="}
_NEED_WORDS = {"number": "a number", "date": "a date", "mapping": "a record", "sequence": "a list or text"}


def _filter_gives(name: str, value: str) -> str:
    if name in GIVES:
        return GIVES[name]
    if name in SAME:
        return value
    return _element(value) if name in ELEMENT else "str"


def _index_or_none(node) -> bool:
    """`sum(0)` over lists of lists, `sum(none)`: no field name to check."""
    from jinja2 import nodes

    return isinstance(node, nodes.Const) and (node.value is None or type(node.value) is int)


def _accepts(need: str, value: str) -> bool:
    """Can a filter that needs `need` take a value of kind `value` (any list is a sequence)?"""
    return value == ANY or value in ACCEPTS[need] or (need == "sequence" and value.startswith("list:"))


def _element(kind: str) -> str:
    return kind.split(":", 1)[1] if kind.startswith("list:") else "str" if kind == "str" else ANY


def _kind_of(value) -> str:
    from ..dsl.exprcheck import value_type

    kind = value_type(value)
    return ANY if kind in ("null", "duration") else kind  # a template literal is never a duration


def _comparable(a: str, b: str) -> bool:
    dates = {"date", "datetime"}
    return a == b or {a, b} <= dates or {a, b} <= {"number", "bool"}


def _describe(kind: str) -> str:
    words = {"number": "a number", "str": "text", "bool": "true/false", "date": "a date", "datetime": "a date-time",
             "list": "a list", "list:invoice": "the list of invoices", "loop": "the loop", ANY: "a value"}
    if kind not in words and kind.startswith("list:"):
        items = {"number": "numbers", "str": "texts", "bool": "true/false values", "date": "dates",
                 "datetime": "date-times"}
        return f"a list of {items.get(kind[5:], kind[5:] + ' records')}"
    return words.get(kind, f"the {kind} record" if kind in RECORDS else kind)


def _attribute_hint(base: str, attr: str, known) -> str | None:
    """As for expressions (dsl/exprcheck.py): a slip of the keyboard gets its 'did you mean'; a name that
    could be a column of the CSV says how to declare it, after a 'did you mean' when a field is alike."""
    typo = near_typo(attr, known)
    if typo is not None:
        return f"did you mean '{typo}'?"
    alike, lower = suggest(attr, known), attr.lower()
    if not CUSTOM_FIELD.fullmatch(f"{base}.{lower}"):  # what `fields:` may declare, as for expressions
        return alike
    how = (f"before use: fields: {{ {base}.{lower}: str }} (in a .collect file: field {base}.{lower}: str)"
           + ("" if lower == attr else "; custom field names are lowercase"))
    if alike:
        return f"{alike} If it is a column of your CSV, declare it {how}"
    return f"a column of your CSV must be declared {how}"

"""Message templates: Jinja2, sandboxed and strict, checked against the field schema at compile time.

A template sees only: customer, invoice (the first of the message's invoices), invoices, total_balance,
pay_link, promise, currency, today. Filters: `money` (babel, currency- and locale-aware; locale from
customer.language + customer.country) and `date` (babel, default format "medium"), plus Jinja's own.
Anything reaching for Python internals (`_`-names) is rejected when the policy compiles, and the
sandbox blocks it again when a message renders.

templates_dir: files named `<name>.<channel>.j2`. An email file starts with a `Subject: ...` line,
then a blank line, then the body.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from ..dsl.diagnostics import suggest

VARIABLES = ("customer", "invoice", "invoices", "total_balance", "pay_link", "promise", "currency", "today")
RECORDS = {"customer": "customer", "invoice": "invoice", "promise": "promise"}  # variable -> schema namespace
CHANNELS = ("email", "sms", "whatsapp", "voice", "letter", "webhook", "agent")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


class TemplateDirError(Exception):
    pass


class TemplateRenderError(Exception):
    pass


@dataclass(frozen=True)
class TemplateIssue:
    code: str
    message: str
    line: int
    col: int
    hint: str | None = None


@dataclass(frozen=True)
class Rendered:
    body: str
    subject: str | None = None
    html: str | None = None
    params: tuple[str, ...] = ()


# -- environment ----------------------------------------------------------------------------------

def _locale(ctx) -> str:
    from babel import Locale, UnknownLocaleError

    customer = ctx.get("customer") or {}
    language = (customer.get("language") or "en").lower()
    country = (customer.get("country") or "").upper()
    for candidate in (f"{language}_{country}", language):
        try:
            Locale.parse(candidate)
            return candidate
        except (UnknownLocaleError, ValueError):
            continue
    return "en"


@lru_cache(maxsize=1)
def environment():
    from jinja2 import StrictUndefined, pass_context
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    @pass_context
    def money(ctx, amount, currency=None, locale=None):
        from babel.numbers import format_currency

        if amount is None:
            return ""
        value = amount if isinstance(amount, Decimal) else Decimal(str(amount))
        return format_currency(value, currency or ctx.get("currency") or "USD", locale=locale or _locale(ctx))

    @pass_context
    def date(ctx, value, format="medium", locale=None):
        from babel.dates import format_date

        if value is None:
            return ""
        if isinstance(value, str):
            value = dt.date.fromisoformat(value)
        return format_date(value, format=format, locale=locale or _locale(ctx))

    env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
    env.filters.update(money=money, date=date)
    return env


# -- compile-time check -----------------------------------------------------------------------------

def _column(source: str, line: int, needle: str) -> int:
    lines = source.splitlines() or [""]
    text = lines[min(max(line, 1), len(lines)) - 1]
    index = text.find(needle)
    return index + 1 if index >= 0 else 1


def check_template(source: str, schema: dict[str, str]) -> list[TemplateIssue]:
    """Every problem of one template: syntax, unknown names, attributes and filters, sandbox escapes."""
    from jinja2 import TemplateSyntaxError

    env = environment()
    try:
        tree = env.parse(source)
    except TemplateSyntaxError as exc:
        return [TemplateIssue("template-syntax", f"template syntax: {exc.message}", exc.lineno or 1, 1)]
    fields = {ns: sorted(k.split(".", 1)[1] for k in schema if k.startswith(ns + ".")) for ns in RECORDS.values()}
    return _Walker(source, fields, env).walk(tree)


class _Walker:
    def __init__(self, source: str, fields: dict[str, list[str]], env):
        self.source, self.fields, self.env = source, fields, env
        self.issues: list[TemplateIssue] = []

    def issue(self, code: str, message: str, node, needle: str, hint: str | None = None) -> None:
        line = getattr(node, "lineno", 1) or 1
        self.issues.append(TemplateIssue(code, message, line, _column(self.source, line, needle), hint))

    def walk(self, tree) -> list[TemplateIssue]:
        self.visit(tree, {name: RECORDS.get(name) for name in VARIABLES})
        return self.issues

    def visit(self, node, scope: dict) -> None:
        from jinja2 import nodes

        if isinstance(node, nodes.For):
            self.visit(node.iter, scope)
            inner = dict(scope, loop=None)
            kind = "invoice" if isinstance(node.iter, nodes.Name) and node.iter.name == "invoices" else None
            for target in _names(node.target):
                inner[target.name] = kind
            for child in [*node.body, *node.else_, *([node.test] if node.test else [])]:
                self.visit(child, inner)
            return
        if isinstance(node, nodes.Assign):
            self.visit(node.node, scope)
            for target in _names(node.target):
                scope[target.name] = None
            return
        if isinstance(node, nodes.Name) and node.ctx == "load":
            self._name(node, scope)
        elif isinstance(node, nodes.Getattr):
            self._attribute(node, node.attr, scope)
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            self._attribute(node, node.arg.value, scope)
        elif isinstance(node, nodes.Filter) and node.name not in self.env.filters:
            self.issue("unknown-filter", f"unknown filter '{node.name}'", node, node.name,
                       suggest(node.name, self.env.filters))
        for child in node.iter_child_nodes():
            self.visit(child, scope)

    def _name(self, node, scope: dict) -> None:
        if node.name.startswith("_"):
            self.issue("unsafe-template", f"'{node.name}' is not available in templates", node, node.name)
        elif node.name not in scope:
            self.issue("unknown-variable", f"unknown variable '{node.name}'", node, node.name,
                       suggest(node.name, scope) or f"variables: {', '.join(VARIABLES)}")

    def _attribute(self, node, attr: str, scope: dict) -> None:
        from jinja2 import nodes

        if attr.startswith("_"):
            self.issue("unsafe-template", f"'{attr}' reaches into Python internals; templates cannot use it",
                       node, attr)
            return
        target = node.node
        namespace = scope.get(target.name) if isinstance(target, nodes.Name) else None
        if namespace is None:
            return
        known = self.fields[namespace]
        if attr not in known:
            self.issue("unknown-attribute", f"{namespace} has no field '{attr}'", node, f".{attr}",
                       suggest(attr, known))


def _names(target) -> list:
    from jinja2 import nodes

    return [target] if isinstance(target, nodes.Name) else list(target.find_all(nodes.Name))


# -- rendering --------------------------------------------------------------------------------------

@lru_cache(maxsize=4096)
def _compiled(source: str):
    return environment().from_string(source)


def render(source: str, context: dict) -> str:
    from jinja2 import TemplateError
    from jinja2.sandbox import SecurityError

    try:
        return _compiled(source).render(context)
    except SecurityError as exc:
        raise TemplateRenderError(f"the template tried something the sandbox forbids: {exc}") from None
    except TemplateError as exc:
        raise TemplateRenderError(f"the template failed: {exc}") from None


def render_channel(template, context: dict) -> Rendered:
    """Render one channel's template (a model object from dsl.model, a string, or a templates_dir dict)."""
    if isinstance(template, str):
        return Rendered(render(template, context))
    if isinstance(template, dict):
        template = _Obj(template)
    if hasattr(template, "template_name"):
        params = tuple(render(p, context) for p in template.params)
        return Rendered(" | ".join(params), params=params)
    subject = getattr(template, "subject", None)
    html = getattr(template, "html", None)
    return Rendered(render(template.body, context), render(subject, context) if subject else None,
                    render(html, context) if html else None)


class _Obj:
    def __init__(self, data: dict):
        self.__dict__.update(data)


def make_context(customer: dict, invoices: list[dict], *, pay_link: str, today: dt.date, currency: str,
                 schema: dict[str, str], promise: dict | None = None) -> dict:
    """Template variables from plain dicts (keys are bare field names); absent fields are None."""
    def record(namespace: str, values: dict | None) -> dict:
        names = [k.split(".", 1)[1] for k in schema if k.startswith(namespace + ".")]
        return {name: (values or {}).get(name) for name in names}

    items = [record("invoice", inv) for inv in invoices]
    total = sum((Decimal(str(i.get("balance") or 0)) for i in items), Decimal(0))
    return {"customer": record("customer", customer), "invoice": items[0] if items else record("invoice", {}),
            "invoices": items, "total_balance": total, "pay_link": pay_link, "today": today,
            "currency": currency, "promise": record("promise", promise)}


# -- templates_dir ----------------------------------------------------------------------------------

def load_templates_dir(directory: str | Path) -> dict[str, dict[str, object]]:
    directory = Path(directory)
    if not directory.is_dir():
        raise TemplateDirError(f"templates_dir {directory} is not a folder")
    found: dict[str, dict[str, object]] = {}
    for path in sorted(directory.glob("*.j2")):
        parts = path.name[:-3].split(".")
        if len(parts) != 2 or not _NAME.match(parts[0]):
            raise TemplateDirError(f"{path}: template files are named <name>.<channel>.j2")
        name, channel = parts
        if channel not in CHANNELS:
            raise TemplateDirError(f"{path}: unknown channel '{channel}'" + (
                f" ({suggest(channel, CHANNELS)})" if suggest(channel, CHANNELS) else ""))
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise TemplateDirError(f"{path}: cannot read: {exc}") from None
        found.setdefault(name, {})[channel] = _email_file(path, text) if channel == "email" else text
    return found


def _email_file(path: Path, text: str) -> dict:
    first, _, rest = text.partition("\n")
    if not first.lower().startswith("subject:"):
        raise TemplateDirError(f"{path}: an email template starts with a 'Subject: ...' line")
    return {"subject": first.split(":", 1)[1].strip(), "body": rest.lstrip("\n")}

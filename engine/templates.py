"""Message templates: Jinja2, sandboxed and strict, checked against the field schema at compile time.

A template sees only: customer, invoice (the first of the message's invoices), invoices, total_balance,
pay_link, promise, currency, today. Filters: `money` (babel, currency- and locale-aware; locale from
customer.language + customer.country) and `date` (babel, default format "medium"), plus Jinja's own.
Anything reaching for Python internals is rejected when the policy compiles (`_` names, the `attr` filter,
computed subscripts, calls, include/import/extends), and the sandbox blocks it again when a message
renders. Rendering never fails on null: an absent field prints as "", null-unsafe filters and arithmetic
give null (as expressions do), and `default` also replaces null.

An email's `html` part renders with autoescape on: whatever it prints is escaped, so customer data cannot
become markup; nothing turns that off (no `safe`, no `{% autoescape %}`). Every other part is plain text.
What a render may cost (sizes, loop steps, output) is bounded: engine/templatelimits.py.

templates_dir: files named `<name>.<channel>.j2`. An email file starts with a `Subject: ...` line,
then a blank line, then the body.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from ..dsl.diagnostics import suggest
from . import templatelimits as limits

VARIABLES = ("customer", "invoice", "invoices", "total_balance", "pay_link", "promise", "currency", "today")
RECORDS = {"customer": "customer", "invoice": "invoice", "promise": "promise"}  # variable -> schema namespace
CHANNELS = ("email", "sms", "whatsapp", "voice", "letter", "webhook", "agent")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


class TemplateDirError(Exception):
    def __init__(self, message: str, template: tuple[str, str] | None = None):
        super().__init__(message)
        self.template = template  # (name, channel) of a file that is named right but cannot be used


class TemplateRenderError(Exception):
    pass


@dataclass(frozen=True)
class TemplateIssue:
    code: str
    message: str
    line: int
    col: int
    hint: str | None = None
    severity: str = "error"


@dataclass(frozen=True)
class Rendered:
    body: str
    subject: str | None = None
    html: str | None = None
    params: tuple[str, ...] = ()


# -- environment ----------------------------------------------------------------------------------

# Jinja's own filters a message may use: they only look at the value they are given. Left out: `attr`
# (a way around attribute checks), `pprint`/`tojson`/`xmlattr`/`format` (object internals, or errors on
# decimals), `random` (a message must be reproducible), `groupby`, and `safe`, `forceescape`, `urlize`
# (markup that an HTML part would print unescaped).
JINJA_FILTERS = ("abs", "batch", "capitalize", "center", "count", "d", "default", "dictsort", "e", "escape",
                 "filesizeformat", "first", "float", "indent", "int", "items", "join", "last", "length", "list",
                 "lower", "map", "max", "min", "reject", "rejectattr", "replace", "reverse", "round", "select",
                 "selectattr", "slice", "sort", "string", "striptags", "sum", "title", "trim", "truncate",
                 "unique", "upper", "urlencode", "wordcount", "wordwrap")


def _locale(ctx):
    customer = ctx.get("customer") or {}
    return _locale_of((customer.get("language") or "en").lower(), (customer.get("country") or "").upper())


@lru_cache(maxsize=1024)  # parsing a locale costs more than formatting with it, for every message
def _locale_of(language: str, country: str):
    """The babel Locale for a customer: language and country, else the language, else English."""
    from babel import Locale, UnknownLocaleError

    for candidate in (f"{language}_{country}", language):
        try:
            return Locale.parse(candidate)
        except (UnknownLocaleError, ValueError):
            continue
    return Locale.parse("en")


def _null_safe(fn):
    """The filter `fn`, giving None for a None value instead of raising."""
    position = 1 if hasattr(fn, "jinja_pass_arg") else 0  # after the context/environment Jinja passes

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return None if len(args) > position and args[position] is None else fn(*args, **kwargs)
    return wrapper


def _default(value, default_value="", boolean=False):
    """Jinja's `default`, except that null (an absent field) also takes the default."""
    from jinja2 import Undefined

    missing = value is None or isinstance(value, Undefined) or (boolean and not value)
    return default_value if missing else value


def _binop(operator: str, left, right):
    """Arithmetic as in expressions: with null, dividing by zero, or a result too large to build
    (engine/templatelimits.py), the result is null, never an error."""
    from jinja2.sandbox import SandboxedEnvironment

    if left is None or right is None or limits.too_big(operator, left, right):
        return None
    try:
        result = SandboxedEnvironment.default_binop_table[operator](left, right)
    except (ArithmeticError, TypeError, ValueError):
        return None
    return limits.arithmetic_result(operator, result)


@lru_cache(maxsize=2)
def environment(html: bool = False):
    """The environment for one kind of part: `html` (an email's HTML part) escapes every value it prints,
    text does not. Nothing else differs, so a template checks the same whichever part it is for."""
    from jinja2 import StrictUndefined

    env = _environment_class()(undefined=StrictUndefined, autoescape=html, keep_trailing_newline=True,
                               finalize=limits.finalize)
    env.filters = _message_filters(env.filters)
    env.tests = limits.bounded_tests(env.tests)
    return env


@lru_cache(maxsize=1)
def _environment_class():
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class MessageEnvironment(limits.EnvironmentHooks, ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})
        intercepted_unops = frozenset({"-", "+"})
        code_generator_class = limits.code_generator_class()

        def call_binop(self, context, operator, left, right):
            return _binop(operator, left, right)

        def call_unop(self, context, operator, arg):
            try:
                return None if arg is None else self.unop_table[operator](arg)
            except TypeError:
                return None

    return MessageEnvironment


def _message_filters(jinja: dict) -> dict:
    """JINJA_FILTERS, null-safe, and `money`, `date`, `default`; all bounded (engine/templatelimits.py)."""
    from jinja2 import pass_context

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

    # null in, null out (printed as ""): an absent field neither raises nor prints "None"
    bounded = limits.bounded_filters({name: jinja[name] for name in JINJA_FILTERS})
    filters = {name: _null_safe(fn) for name, fn in bounded.items()}
    filters.update(limits.bounded_filters({"money": money, "date": date}), default=_default, d=_default)
    return filters


# -- compile-time check -----------------------------------------------------------------------------

def _column(source: str, line: int, needle: str) -> int:
    lines = source.splitlines() or [""]
    text = lines[min(max(line, 1), len(lines)) - 1]
    index = text.find(needle)
    return index + 1 if index >= 0 else 1


def check_template(source: str, schema: dict[str, str], *, html: bool = False) -> list[TemplateIssue]:
    """Every problem of one template: syntax, unknown names, attributes and filters, sandbox escapes,
    values of the wrong type for a filter or an operator. `html`: checked in the environment that will
    render it (the two accept the same templates)."""
    from jinja2 import TemplateSyntaxError

    env = environment(html)
    try:
        tree = env.parse(source)
        from .templatecheck import Walker

        return Walker(source, schema, env).walk(tree)
    except TemplateSyntaxError as exc:
        return [TemplateIssue("template-syntax", f"template syntax: {exc.message}", exc.lineno or 1, 1)]
    except RecursionError:
        return [TemplateIssue("template-syntax", "the template is nested too deeply", 1, 1)]


# -- rendering --------------------------------------------------------------------------------------

@lru_cache(maxsize=4096)
def _compiled(source: str, html: bool):
    return environment(html).from_string(source)


def render(source: str, context: dict, *, html: bool = False) -> str:
    """One part of a message; `html` for an email's HTML part, which escapes what it prints."""
    from jinja2 import TemplateError
    from jinja2.sandbox import SecurityError

    try:
        with limits.render_budget():
            return limits.output(_compiled(source, html).generate(context))
    except SecurityError as exc:
        raise TemplateRenderError(f"the template tried something the sandbox forbids: {exc}") from None
    except TemplateError as exc:
        raise TemplateRenderError(f"the template failed: {exc}") from None
    except limits.TemplateLimitError as exc:
        raise TemplateRenderError(f"the template is too costly: {exc}") from None
    except (ArithmeticError, ValueError, TypeError, LookupError) as exc:  # a value the filters cannot format
        raise TemplateRenderError(f"the template failed: {type(exc).__name__}: {exc}") from None


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
                    render(html, context, html=True) if html else None)


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

MAX_TEMPLATE_BYTES = 256 * 1024  # a message template; a bigger file is not one (and would go out whole)


def load_templates_dir(directory: str | Path, channels=CHANNELS, root: str | Path | None = None
                       ) -> tuple[dict[str, dict[str, object]], list[TemplateDirError]]:
    """The templates of a folder by name and channel, and an error for each file that is not one: a bad
    file is reported on its own and the others still load. `channels` includes those of plugins.

    `root` (the policy's folder): the folder and every file read must lie inside it, links followed. A
    policy change is reviewed in git, where a link to /proc/self/environ or ../../.env is easy to miss;
    read into a template, it would send the process's secrets to customers."""
    directory = Path(directory)
    if root is not None and not _inside(directory, root):
        raise TemplateDirError(f"templates_dir {directory} is outside the policy's folder {root}: templates are "
                               "read only from a folder kept with the policy")
    if not directory.is_dir():
        raise TemplateDirError(f"templates_dir {directory} is not a folder")
    found: dict[str, dict[str, object]] = {}
    problems = []
    for path in sorted(directory.glob("*.j2")):
        try:
            if root is not None and not _inside(path, root):
                raise TemplateDirError(f"{path}: a link to {path.resolve()}, outside the policy's folder {root}: "
                                       "templates are read only from files kept with the policy")
            name, channel, template = _template_file(path, channels)
        except TemplateDirError as exc:
            problems.append(exc)
            continue
        found.setdefault(name, {})[channel] = template
    return found, problems


def _template_file(path: Path, channels) -> tuple[str, str, object]:
    parts = path.name[:-3].split(".")
    if len(parts) != 2 or not _NAME.match(parts[0]):
        raise TemplateDirError(f"{path}: template files are named <name>.<channel>.j2")
    name, channel = parts
    if channel not in channels:
        hint = suggest(channel, channels)
        raise TemplateDirError(f"{path}: unknown channel '{channel}'" + (f" ({hint})" if hint else ""))
    if not path.is_file():
        raise TemplateDirError(f"{path}: not a regular file", (name, channel))
    if path.stat().st_size > MAX_TEMPLATE_BYTES:
        raise TemplateDirError(f"{path}: {path.stat().st_size:,} bytes; a template holds at most "
                               f"{MAX_TEMPLATE_BYTES:,}", (name, channel))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TemplateDirError(f"{path}: cannot read: {exc}", (name, channel)) from None
    if channel == "email" and not text.lower().startswith("subject:"):
        raise TemplateDirError(f"{path}: an email template starts with a 'Subject: ...' line", (name, channel))
    return name, channel, _email_file(text) if channel == "email" else text


def _inside(path: Path, root: str | Path) -> bool:
    return path.resolve().is_relative_to(Path(root).resolve())


def _email_file(text: str) -> dict:
    first, _, rest = text.partition("\n")
    return {"subject": first.split(":", 1)[1].strip(), "body": rest.lstrip("\n")}

"""Message templates: Jinja2, sandboxed and strict, checked against the field schema at compile time.

A template sees only: customer, invoice (the first of the message's invoices), invoices, total_balance,
pay_link, promise, currency, today. Filters: `money` (babel, currency- and locale-aware; locale from
customer.language + customer.country) and `date` (babel, default format "medium"), plus Jinja's own; a
locale given to them may be written `es_PE` or `es-PE`.
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

import bisect
import datetime as dt
import functools
import itertools
import os
import re
from dataclasses import dataclass
from decimal import Decimal, localcontext
from functools import lru_cache
from pathlib import Path

from ..dsl.diagnostics import near_typo, suggest
from . import templatelimits as limits
from .portfolio import FIELD_DIGITS

VARIABLES = ("customer", "invoice", "invoices", "total_balance", "pay_link", "promise", "currency", "today")
RECORDS = {"customer": "customer", "invoice": "invoice", "promise": "promise"}  # variable -> schema namespace
CHANNELS = ("email", "sms", "whatsapp", "voice", "letter", "webhook", "agent")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


class TemplateDirError(Exception):
    def __init__(self, message: str, template: tuple[str, str] | None = None):
        super().__init__(message)
        self.template = template  # (name, channel) of a file that is named right but cannot be used


class TemplateRenderError(Exception):
    def __init__(self, message: str, line: int | None = None):
        super().__init__(message)
        self.line = line  # of the part that failed, when Jinja tells it


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
    country = (customer.get("country") or "").upper()
    return _locale_of((customer.get("language") or _country_language(country)).lower(), country)


@lru_cache(maxsize=256)
def _country_language(country: str) -> str:
    """The language of a customer without one: its country's main language (Chile's Spanish writes
    $6.400.000 and 20-03-2026, where English wrote CLP6,400,000 and Mar 20, 2026), else English."""
    from babel.languages import get_official_languages

    return next(iter(get_official_languages(country, de_facto=True)), "en") if country else "en"


@lru_cache(maxsize=1024)  # parsing a locale costs more than formatting with it, for every message
def _locale_of(language: str, country: str):
    """The babel Locale for a customer: language and country, else the language, else English. A
    language may carry its own region, as a BCP 47 tag or babel writes it (`es-PE`, `pt_BR`): that one first."""
    from babel import Locale, UnknownLocaleError

    base, _, region = language.replace("-", "_").partition("_")
    tagged = (f"{base}_{region.upper()}",) if region else ()
    for candidate in (*tagged, f"{base}_{country}", base):
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
    (engine/templatelimits.py), the result is null, never an error. An amount with a number written
    with decimals (`total_balance * 0.2`) is exact decimal arithmetic, as in expressions: Python refuses
    to mix Decimal and float, which made the result null."""
    from jinja2.sandbox import SandboxedEnvironment

    if left is None or right is None or limits.too_big(operator, left, right):
        return None
    if isinstance(left, Decimal) and isinstance(right, float):
        right = Decimal(repr(right))
    elif isinstance(right, Decimal) and isinstance(left, float):
        left = Decimal(repr(left))
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
    env.filters = _message_filters(env.filters, html)
    tests = dict(env.tests, defined=_defined, undefined=lambda value: not _defined(value))
    env.tests = {name: _false_if_unfit(test) for name, test in limits.bounded_tests(tests).items()}
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

        # a field of null is null (`promise.date.year` without a promise), and so is an item that is not
        # there (`invoices[1]` of a message about one invoice, `loop.previtem` on the first pass): null
        # from the start, so that `if`, `~`, filters and tests treat it as any other null
        def getattr(self, obj, attribute):
            return None if limits.absent(obj) else _null_if_absent(super().getattr(obj, attribute))

        def getitem(self, obj, argument):
            return None if limits.absent(obj) else _null_if_absent(super().getitem(obj, argument))

        def compare(self, left, *chain):
            """`left OP right [OP right ...]`, as in expressions: an order (<, <=, >, >=) with null is
            false, and so is a comparison of values that cannot be compared (a date with a number), never
            an error when the message renders (SPEC 3)."""
            for op, right in zip(chain[::2], chain[1::2]):
                if op in _ORDER and (limits.absent(left) or limits.absent(right)):
                    return False
                try:
                    if not _COMPARE[op](left, right):
                        return False
                except TypeError:
                    return False
                left = right
            return True

    return MessageEnvironment


def _defined(value) -> bool:
    """Jinja's `defined`, and null is not: an absent field, an item that is not there."""
    from jinja2 import Undefined

    return not (value is None or isinstance(value, Undefined))


def _null_if_absent(value):
    return None if limits.absent(value) else value


def _false_if_unfit(test):
    """A test of a value it cannot apply to is false, as a comparison with null is (SPEC 3):
    `customer.risk_score is gt 0.5` with no score, `selectattr("balance", ">", 0)` over an invoice
    without a balance, `none is odd`."""
    @functools.wraps(test)
    def wrapper(*args, **kwargs):
        try:
            return test(*args, **kwargs)
        except (TypeError, ValueError, ArithmeticError):
            return False
    return wrapper


_ORDER = {"lt", "lteq", "gt", "gteq"}
_COMPARE = {"eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "lt": lambda a, b: a < b,
            "lteq": lambda a, b: a <= b, "gt": lambda a, b: a > b, "gteq": lambda a, b: a >= b,
            "in": lambda a, b: a in b, "notin": lambda a, b: a not in b}


def _message_filters(jinja: dict, html: bool = False) -> dict:
    """JINJA_FILTERS, null-safe, and `money`, `date`, `default`; all bounded (engine/templatelimits.py).
    In the HTML part, the filters that make plain text of markup escape what they give (_markup_out)."""
    from jinja2 import pass_context

    @pass_context
    def money(ctx, amount, currency=None, locale=None):
        from babel.numbers import format_currency

        if amount is None:
            return ""
        where = _given_locale(locale) if locale else _locale(ctx)
        # Babel rounds to the currency's places in the current context: at Decimal's default precision
        # (28 digits) a number field of 27 or 28 digits failed with InvalidOperation instead of printing
        with localcontext(prec=2 * FIELD_DIGITS):
            if isinstance(amount, Total) and not currency:
                return " + ".join(format_currency(v, code, locale=where) for code, v in amount.parts.items())
            value = amount if isinstance(amount, Decimal) else Decimal(str(amount))
            code = currency or getattr(amount, "currency", None) or ctx.get("currency") or "USD"
            return format_currency(value, code, locale=where)

    @pass_context
    def date(ctx, value, format="medium", locale=None):
        from babel.dates import format_date

        if value is None:
            return ""
        if isinstance(value, str):
            value = dt.date.fromisoformat(value)
        if isinstance(value, dt.datetime) and value.tzinfo is not None:
            value = value.astimezone(_zone(ctx))  # every date is the customer's local one (SPEC 4.1)
        return format_date(value, format=format or "medium",
                           locale=_given_locale(locale) if locale else _locale(ctx))

    # null in, null out (printed as ""): an absent field neither raises nor prints "None"; nor does it
    # among the items of a list (join, sort, max, min, sum)
    given = {name: jinja[name] for name in JINJA_FILTERS}
    given.update(join=_join_nulls_as_nothing(jinja["join"]), sort=_sort_nulls_last(jinja["sort"]),
                 max=_without_nulls(jinja["max"]), min=_without_nulls(jinja["min"]),
                 sum=_sum_without_nulls(jinja["sum"]))
    bounded = limits.bounded_filters(given)
    filters = {name: _null_safe(fn) for name, fn in bounded.items()}
    if html:
        filters.update({name: _markup_out(name, filters[name]) for name in MARKUP_TO_TEXT})
    filters.update(limits.bounded_filters({"money": money, "date": date}), default=_default, d=_default)
    return filters


# Jinja filters that read markup (what a {% set %} or {% filter %} block captured in the HTML part: the
# template's own tags, and printed values escaped already) as plain text: `title` and `wordwrap` printed
# its escapes escaped a second time (O&amp;#39;Brien) and its tags as text (a literal <p> in the email);
# `truncate` and `center` counted the characters of tags and escapes (and could cut one in half);
# `striptags` gave the text unescaped, and a `{% filter striptags %}` block prints its result as it is:
# a customer's name became live HTML.
MARKUP_TO_TEXT = ("striptags", "title", "wordwrap", "truncate", "center")
# a comment, a <script> or <style> element whole (its content is no text to show), or a tag: `<`, a
# letter, `/` or `!`, then up to the `>` outside quoted attribute values (a `<` followed by a space is text)
_TAG = re.compile(r"""(<!--.*?-->|<(script|style)\b.*?</\2\s*>|<[a-zA-Z/!](?:[^>"']|"[^"]*"|'[^']*')*>)""",
                  re.S | re.I)


def _markup_out(name: str, fn):
    """`fn` given markup works on the text it shows, with the tags kept where they are (striptags gives
    that text alone), and its result is markup again: printed once, never as HTML. Given plain text
    (`customer.name | title`) it is the filter as it is, and what it gives is escaped when printed."""
    from markupsafe import Markup, escape

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        at = 1 if hasattr(fn, "jinja_pass_arg") else 0
        if len(args) <= at or not isinstance(args[at], Markup):
            return fn(*args, **kwargs)
        if name == "striptags":
            return escape(fn(*args, **kwargs))
        pieces = _TAG.split(str(args[at]))  # text, tag, script or style name, text, tag ... text
        texts = [Markup(piece).unescape() for piece in pieces[::3]]
        tags = [Markup(piece) for piece in pieces[1::3]]
        shown = "".join(texts)
        call = lambda text: fn(*args[:at], text, *args[at + 1:], **kwargs)  # noqa: E731
        if name == "center":
            return _centered(args[at], shown, call)
        if name == "truncate":
            texts = _truncated(texts, shown, call)
        elif name == "title" and len(titled := call(shown)) == len(shown):
            texts = _cut_like(titled, texts)  # the text shown as one: `Mc<b>donald</b>` is one word
        else:  # wordwrap (and a title that changed the text's length): each run of text by itself
            texts = [call(text) if text else text for text in texts]
        return Markup("").join(part for text, tag in itertools.zip_longest(texts, tags, fillvalue="")
                               for part in (escape(text), tag))
    return wrapper


def _cut_like(text: str, runs: list[str]) -> list[str]:
    """`text` cut into pieces as long as `runs`, in order."""
    ends = list(itertools.accumulate(map(len, runs)))
    return [text[end - len(run):end] for run, end in zip(runs, ends)]


def _centered(markup, shown: str, center):
    """The markup with the spaces `center` puts around the text it shows."""
    from markupsafe import Markup

    padded = center("x" * len(shown))  # where the padding goes, as center decides it
    left = len(padded) - len(padded.lstrip(" "))
    return Markup(" " * left) + markup + Markup(" " * (len(padded) - len(shown) - left))


def _truncated(texts: list[str], shown: str, truncate) -> list[str]:
    """The runs of text between tags, cut where `truncate` cuts the text they show (`shown`): its end
    mark after the last character kept, the runs after it empty (their tags stay, so each is closed)."""
    result = truncate(shown)
    if result == shown:
        return texts
    keep = len(os.path.commonprefix([result, shown]))
    mark, before = result[keep:], 0
    for cut, text in enumerate(texts):  # the run the last character kept is in (the first, if none is)
        if before + len(text) >= keep and (text or keep == 0):
            break
        before += len(text)
    else:
        return texts[:-1] + [texts[-1] + mark]
    return texts[:cut] + [texts[cut][:keep - before] + mark] + [""] * (len(texts) - cut - 1)


def _join_nulls_as_nothing(join):
    """`join` with null items (`invoices | map(attribute="number")` where one has none) as nothing."""
    from jinja2 import pass_eval_context
    from jinja2.filters import make_attrgetter

    @pass_eval_context
    def wrapper(eval_ctx, value, d="", attribute=None):
        if attribute is not None:
            value = map(make_attrgetter(eval_ctx.environment, attribute), value)
        return join(eval_ctx, ["" if v is None else v for v in value], d)
    return wrapper


def _sort_nulls_last(sort):
    """`sort` with the items whose key is null (an invoice without issue_date) after the others."""
    from jinja2 import pass_environment
    from jinja2.filters import make_multi_attrgetter

    @pass_environment
    def wrapper(environment, value, reverse=False, case_sensitive=False, attribute=None):
        keys = make_multi_attrgetter(environment, attribute) if attribute is not None else (lambda item: [item])
        items = list(value)
        nulls = [i for i in items if any(k is None for k in keys(i))]
        rest = [i for i in items if not any(k is None for k in keys(i))]
        return sort(environment, rest, reverse, case_sensitive, attribute) + nulls
    return wrapper


def _present(environment, items, attribute) -> list:
    """The items whose value (or attribute) is not null."""
    from jinja2.filters import make_attrgetter

    get = make_attrgetter(environment, attribute) if attribute is not None else (lambda item: item)
    return [v for v in items if get(v) is not None]


def _sum_without_nulls(add):
    """`sum` of the items whose value (or attribute) is not null: an empty field adds nothing."""
    from jinja2 import pass_environment

    @pass_environment
    def wrapper(environment, iterable, attribute=None, start=0):
        return add(environment, _present(environment, iterable, attribute), attribute, start)
    return wrapper


def _without_nulls(pick):
    """`max` or `min` of the items whose value (or attribute) is not null."""
    from jinja2 import pass_environment

    @pass_environment
    def wrapper(environment, value, case_sensitive=False, attribute=None):
        return pick(environment, _present(environment, value, attribute), case_sensitive, attribute)
    return wrapper


def _zone(ctx):
    """The customer's time zone (the message's `customer.timezone`: theirs, else the policy's)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    name = (ctx.get("customer") or {}).get("timezone")
    try:
        return ZoneInfo(name) if isinstance(name, str) and name else dt.timezone.utc
    except (ZoneInfoNotFoundError, ValueError):  # a sample value in the compile-time check
        return dt.timezone.utc


@lru_cache(maxsize=256)
def _given_locale(identifier: str):
    """The locale a template names (`money("USD", "es_PE")`): babel's `es_PE`, or the BCP 47 `es-PE`."""
    from babel import Locale

    if not isinstance(identifier, str):
        raise TypeError(f"a locale is written as text such as 'es_PE', not {identifier!r}")
    return Locale.parse(identifier.replace("-", "_"))


# What `money` and `date` can be given, checked when the policy compiles (engine/templatecheck.py): an
# argument written out that could never work would otherwise fail every message that uses it.
FILTER_PARAMETERS = {"money": ("currency", "locale"), "date": ("format", "locale")}
DATE_FORMATS = ("short", "medium", "long", "full")


def locale_problem(identifier: str) -> tuple[str, str | None] | None:
    """Why `identifier` is not a locale `money` or `date` can use (and a hint), or None."""
    from babel import UnknownLocaleError
    from babel.localedata import locale_identifiers

    try:
        _given_locale(identifier)
        return None
    except (UnknownLocaleError, ValueError, TypeError):
        pass
    typo = near_typo(identifier.replace("-", "_"), locale_identifiers())
    return (f"unknown locale '{identifier}'",
            (f"did you mean '{typo}'? " if typo else "") + "a locale is a language and a country: 'es_PE', "
            "'en_US', 'pt-BR'")


def currency_problem(code: str) -> tuple[str, str | None] | None:
    """Why `code` is not a currency `money` knows (and a hint), or None. Empty: the policy's currency."""
    from babel.numbers import list_currencies

    known = list_currencies()
    if not code or code in known:
        return None
    if code.upper() in known:
        return f"unknown currency '{code}'", f"currency codes are upper case: '{code.upper()}'"
    typo = near_typo(code.upper(), known)
    return (f"unknown currency '{code}'",
            (f"did you mean '{typo}'? " if typo else "") + "a currency is an ISO 4217 code: 'PEN', 'USD', 'EUR'")


def date_format_problem(format: str) -> tuple[str, str | None] | None:
    """Why `format` cannot format a date (and a hint), or None: one of DATE_FORMATS, or a babel (CLDR)
    pattern of date fields. The value is always a date (a date-time is formatted as its date), so hours,
    minutes, AM/PM or a time zone can never be filled."""
    from babel.dates import format_date, parse_pattern, tokenize_pattern

    if format in DATE_FORMATS:
        return None
    if format.lower() in DATE_FORMATS or (format.isalpha() and near_typo(format, DATE_FORMATS)):
        named = format.lower() if format.lower() in DATE_FORMATS else near_typo(format, DATE_FORMATS)
        return f"'{format}' is not a date format", f"did you mean '{named}'?"
    try:
        parse_pattern(format)
    except (ValueError, TypeError) as exc:
        return f"'{format}' is not a date pattern: {exc}", _PATTERN_HINT
    sample = dt.date(2000, 1, 1)
    times = []
    for kind, value in tokenize_pattern(format):
        if kind == "field":
            field = value[0] * value[1]
            try:
                format_date(sample, field, locale="en")
            except Exception:  # noqa: BLE001 - babel fails on a date's missing hour, minute, zone ...
                times.append(field)
    if times:
        fields = ", ".join(f"'{t}'" for t in dict.fromkeys(times))
        return (f"the pattern '{format}' asks for a time of day ({fields}), which a date does not have",
                _PATTERN_HINT)
    return None


_PATTERN_HINT = ("a date pattern uses d, M, y, E ... ('dd/MM/yyyy', 'EEEE d MMMM'); put text in quotes: "
                 "\"d 'de' MMMM\"")


# -- compile-time check -----------------------------------------------------------------------------

class _At(int):
    """A token's line number, as Jinja keeps it on the nodes it parses, that also holds the token's offset in
    the source: check_template parses with these, so that each node knows where on its line it is."""

    def __new__(cls, line: int, offset: int):
        at = super().__new__(cls, line)
        at.offset = offset
        return at


_BLANKS = re.compile(r"[ \t]*")


class SourceMap:
    """Where a template's tokens are: Jinja's lexer gives their lines, this finds their columns."""

    def __init__(self, source: str):
        from jinja2.lexer import newline_re

        self.text = "\n".join(newline_re.split(source)[::2])  # with its newlines as Jinja's lexer sees them
        self.lines = [0] + [m.end() for m in re.finditer("\n", self.text)]  # the offset each line starts at
        self.code: list[tuple[int, int]] = []  # the spans of {{ ... }} and {% ... %}, in order
        self.read = 0  # the offset after the last token found: where the lexer stopped, on a syntax error

    def positioned(self, tokens):
        """Jinja's raw tokens (lexer.tokeniter), each line number an _At. A token's text is the source's,
        less whitespace that `-` strips, so each one is found from where the one before it ended."""
        pos, start = 0, None
        for lineno, kind, value in tokens:
            at = self.text.find(value, pos) if value else -1
            if at >= 0 and self.line_col(at)[0] == lineno:
                pos = at + len(value)
                if kind in ("variable_begin", "block_begin"):
                    start = at
                elif kind in ("variable_end", "block_end") and start is not None:
                    self.code.append((start, pos))
                    start = None
                lineno = _At(lineno, at)
            self.read = pos
            yield lineno, kind, value

    def syntax_error_at(self, lineno) -> tuple[int, int]:
        """The line and column of a syntax error: the token the parser stopped at, else (the lexer found
        no token) the first character after the last one it read, when that is on the error's line."""
        if isinstance(lineno, _At):
            return self.line_col(lineno.offset)
        line = int(lineno or 1)
        at_line, col = self.line_col(_BLANKS.match(self.text, self.read).end())
        return (line, col) if at_line == line else (line, 1)

    def line_col(self, offset: int) -> tuple[int, int]:
        line = bisect.bisect_right(self.lines, offset)
        return line, offset - self.lines[line - 1] + 1

    def span(self, offset: int) -> tuple[int, int]:
        """The {{ ... }} or {% ... %} around `offset` (else just it)."""
        i = bisect.bisect_right(self.code, (offset, len(self.text) + 1)) - 1
        if i >= 0 and self.code[i][0] <= offset < self.code[i][1]:
            return self.code[i]
        return offset, offset + 1

    def locate(self, node, needle: str | None = None, before=None) -> tuple[int, int]:
        """The line and column of `needle` in `node`'s {{ ... }} or {% ... %}, from the node's token on; with
        `before` (an operator's right operand), its last occurrence before that node. Else the node's."""
        if needle and before is not None and (end := start_of(before)) is not None:
            found = self.text.rfind(needle, self.span(end)[0], end)
            if found >= 0:
                return self.line_col(found)
        at = getattr(node, "lineno", None)
        if isinstance(at, _At):
            found = self.text.find(needle, at.offset, self.span(at.offset)[1]) if needle else -1
            return self.line_col(found if found >= 0 else at.offset)
        line = int(at or 1)
        return line, _column(self.text, line, needle or "")


def start_of(node) -> int | None:
    """Where in the source the expression `node` starts: the first of its tokens (check_template's parse)."""
    from jinja2 import nodes

    offsets = [n.lineno.offset for n in (node, *node.find_all(nodes.Node)) if isinstance(n.lineno, _At)]
    return min(offsets, default=None)


def _column(source: str, line: int, needle: str) -> int:
    """The column of `needle` on `line`, when no token says where: its first occurrence inside {{ ... }} or
    {% ... %} (a whole word when it is a name), not in the message's text; else its first anywhere."""
    lines = source.splitlines() or [""]
    text = lines[min(max(line, 1), len(lines)) - 1]
    word = re.compile(rf"(?<![\w.]){re.escape(needle)}(?!\w)" if needle.isidentifier() else re.escape(needle))
    for code in re.finditer(r"\{[{%].*?(?:[}%]\}|$)", text):
        found = word.search(text, code.start(), code.end())
        if found:
            return found.start() + 1
    index = text.find(needle) if needle else -1
    return index + 1 if index >= 0 else 1


def _parse(env, source: str, where: SourceMap):
    """The template's tree, its nodes' line numbers carrying their offsets (_At) in `where`."""
    from jinja2.lexer import TokenStream
    from jinja2.parser import Parser

    parser = Parser(env, source)
    tokens = where.positioned(env.lexer.tokeniter(env.preprocess(source), None))
    parser.stream = TokenStream(env.lexer.wrap(tokens), None, None)
    return parser.parse()


def check_template(source: str, schema: dict[str, str], *, html: bool = False) -> list[TemplateIssue]:
    """Every problem of one template: syntax, unknown names, attributes and filters, sandbox escapes,
    values of the wrong type for a filter or an operator, arguments of `money` and `date` that could never
    work. `html`: checked in the environment that will render it (the two accept the same templates)."""
    from jinja2 import TemplateSyntaxError

    env, where = environment(html), SourceMap(source)
    try:
        tree = _parse(env, source, where)
        from .templatecheck import Walker

        return Walker(where, schema, env).walk(tree)
    except TemplateSyntaxError as exc:
        message = re.sub(r"^(unexpected char .*) at \d+$", r"\1", exc.message or "")  # an offset: the column says
        return [TemplateIssue("template-syntax", f"template syntax: {message}", *where.syntax_error_at(exc.lineno))]
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
        raise TemplateRenderError(f"the template tried something the sandbox forbids: {exc}", _line(exc)) from None
    except TemplateError as exc:
        raise TemplateRenderError(f"the template failed: {exc}", _line(exc)) from None
    except limits.TemplateLimitError as exc:
        raise TemplateRenderError(f"the template is too costly: {exc}", _line(exc)) from None
    except Exception as exc:  # noqa: BLE001 - a value or an argument a filter cannot work with (babel's
        # UnknownLocaleError, AttributeError ...): the template's failure, reported as every other one is
        raise TemplateRenderError(f"the template failed: {type(exc).__name__}: {exc}", _line(exc)) from None


def _line(exc: BaseException) -> int | None:
    """The line of the template where rendering failed, so that the analyst can find it: Jinja re-raises
    with the template's own frames, named <template>, in the traceback (the last is the innermost)."""
    line, tb = None, exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _part(name: str, source: str, context: dict, *, html: bool = False) -> str:
    """One part of a message, its failure named by the part (body, subject, html, parameter N) and line."""
    try:
        return render(source, context, html=html)
    except TemplateRenderError as exc:
        where = f"{name}, line {exc.line}" if exc.line else name
        raise TemplateRenderError(f"{where}: {exc}") from None


_ONE_LINE = re.compile(r"[^\S\xa0\u2007\u202f]+")  # any blanks but the no-break spaces


def render_channel(template, context: dict) -> Rendered:
    """Render one channel's template (a model object from dsl.model, a string, or a templates_dir dict)."""
    if isinstance(template, str):
        return Rendered(_part("body", template, context))
    if isinstance(template, dict):
        template = _Obj(template)
    if hasattr(template, "template_name"):
        # WhatsApp refuses a template parameter with a line break, a tab or more than four spaces in a row
        # (its approved text keeps its own line breaks): each parameter is one line, its blanks single; the
        # no-break spaces `money` and `date` write stay (str.split would take them for blanks)
        params = tuple(_ONE_LINE.sub(" ", _part(f"parameter {i}", p, context)).strip(" ")
                       for i, p in enumerate(template.params, 1))
        return Rendered(" | ".join(params), params=params)
    subject = getattr(template, "subject", None)
    html = getattr(template, "html", None)
    return Rendered(_part("body", template.body, context), _part("subject", subject, context) if subject else None,
                    _part("html", html, context, html=True) if html else None)


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
    for item in items:
        code = item.get("currency") or currency
        for name in ("amount", "balance"):  # `money` formats them in their invoice's currency
            if isinstance(item.get(name), (Decimal, int, float)):
                item[name] = Amount(item[name], code)
    total = money_total(((item.get("currency") or currency, item.get("balance")) for item in items), currency)
    return {"customer": record("customer", customer), "invoice": items[0] if items else record("invoice", {}),
            "invoices": items, "total_balance": total, "pay_link": pay_link, "today": today,
            "currency": currency, "promise": record("promise", promise)}


def money_total(amounts, currency: str) -> "Amount | Total":
    """The sum of (currency, amount) pairs as `money` should write it: one amount, or one total per
    currency (never soles and dollars added into one number); `currency` when there are none."""
    sums: dict[str, Decimal] = {}
    for code, value in amounts:
        sums[code] = sums.get(code, Decimal(0)) + Decimal(str(value or 0))
    if len(sums) > 1:
        return Total(sum(sums.values(), Decimal(0)), sums)
    code, value = next(iter(sums.items()), (currency, Decimal(0)))
    return Amount(value, code)


class Amount(Decimal):
    """An invoice's amount or balance: a number, that `money` formats in its invoice's currency."""

    def __new__(cls, value, currency: str | None):
        self = super().__new__(cls, str(value))
        self.currency = currency
        return self


class Total(Decimal):
    """`total_balance` of a message about invoices in several currencies: `money` writes one total per
    currency (`USD 100.00 + S/ 5,007.00`); as a number it is their plain sum, which means little."""

    def __new__(cls, value, parts: dict[str, Decimal]):
        self = super().__new__(cls, str(value))
        self.parts = dict(parts)
        return self


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
        # utf-8-sig: a byte-order mark (Windows editors write one) is no text of the message; left in, it
        # hid an email's Subject line and turned every SMS into UCS-2
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:  # a template saved as Latin-1 or UTF-16 by a Windows editor
        raise TemplateDirError(f"{path}: not UTF-8 text (byte {exc.start + 1}): save it as UTF-8", (name, channel)) from None
    except OSError as exc:
        raise TemplateDirError(f"{path}: cannot read: {exc}", (name, channel)) from None
    if channel == "email" and not text.lower().startswith("subject:"):
        raise TemplateDirError(f"{path}: an email template starts with a 'Subject: ...' line", (name, channel))
    return name, channel, _email_file(text) if channel == "email" else text


def _inside(path: Path, root: str | Path) -> bool:
    return path.resolve().is_relative_to(Path(root).resolve())


def _email_file(text: str) -> dict:
    first, _, rest = text.partition("\n")
    return {"subject": first.split(":", 1)[1].strip(), "body": rest.lstrip("\n")}


def email_body_line(text: str) -> int:
    """The line of an email template file that its body starts on: after `Subject:` and the blank lines
    `_email_file` leaves out (a mistake in the body is reported on the file's own line)."""
    rest = text.partition("\n")[2]
    return 2 + len(rest) - len(rest.lstrip("\n"))

"""The `collect` command line: parse arguments, call the engine, render. Nothing else lives here.

Exit codes (SPEC 6): 0 ok, 1 the input is wrong (policy errors, bad CSV), 2 usage error,
3 a runtime or provider failure. Heavy modules are imported inside the commands so that
`collect --help` starts fast.
"""

from __future__ import annotations

import contextlib
import os
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(
    name="collect",
    help="Collections policy-as-code: validate, compile, simulate and run dunning policies.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_OK, EXIT_INPUT, EXIT_USAGE, EXIT_RUNTIME = 0, 1, 2, 3


def _check_contacts_file(out: Path | None) -> None:
    """A contacts file is .csv or .jsonl: its name says its format, so another name is a usage error."""
    if out is not None and out.suffix not in (".csv", ".jsonl"):
        # `--out ./` is a folder: say so, and where the file could go, rather than "(got )"
        got = f"{out}, a folder: give a file in it, such as {out / 'contacts.csv'}" if out.is_dir() else out.name
        typer.echo(f"error: --out must end in .csv or .jsonl (got {got})", err=True)
        raise typer.Exit(EXIT_USAGE)


def _not_an_input(out: Path | None, option: str, inputs: dict) -> None:
    """An output file that is one of the command's inputs would be overwritten with the output (the
    portfolio with the contacts, the policy with its plan): a usage error, before anything is read."""
    if out is None:
        return
    # as the path will be once its folders are made: `new/../portfolio.csv` is the portfolio, though
    # `new` does not exist yet (and so neither does the path as given)
    real = Path(os.path.realpath(out))
    if not real.exists():
        return
    for name, path in inputs.items():
        if path is not None and Path(path).exists() and real.samefile(path):
            typer.echo(f"error: {option} {out} is the {name} this command reads; give another file", err=True)
            raise typer.Exit(EXIT_USAGE)


@contextlib.contextmanager
def _writing(path: Path | None):
    """Around the work that writes an output file (written whole or not at all): a folder given as the
    file is a usage error, found before any work; a file that cannot be written (permissions, a full
    disk) is one line and exit 3, not a traceback."""
    if path is None:
        yield
        return
    if path.is_dir():
        typer.echo(f"error: {path} is a folder; give a file name", err=True)
        raise typer.Exit(EXIT_USAGE)
    if (blocked := next((p for p in path.parents if p.exists() and not p.is_dir()), None)) is not None:
        typer.echo(f"error: cannot write {path}: {blocked} is a file, not a folder", err=True)
        raise typer.Exit(EXIT_RUNTIME)  # as any output that cannot be written
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield
    except OSError as exc:
        typer.echo(f"error: cannot write {path}: {exc.strerror or exc}", err=True)  # not our temporary file's name
        raise typer.Exit(EXIT_RUNTIME)


@contextlib.contextmanager
def _store_failure(during: str):
    """A store locked past its busy timeout, or a server gone, during the work: one line and exit 3 (a
    runtime failure the next run gets past), not a traceback, nor exit 1, which cron reads as bad input."""
    from sqlalchemy.exc import DBAPIError

    from .engine.runner import TickLost
    from .engine.store import one_line

    try:
        yield
    except DBAPIError as exc:
        typer.echo(f"error: the store failed during {during}: {one_line(exc)}", err=True)
        raise typer.Exit(EXIT_RUNTIME)
    except TickLost as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_RUNTIME)


class Format(str, Enum):
    text = "text"
    json = "json"


PolicyArg = Annotated[Path, typer.Argument(metavar="POLICY", help="Policy file (.yaml, .yml or .collect).", show_default=False)]
FormatOpt = Annotated[Format, typer.Option("--format", help="Diagnostics as compiler-style text or JSON.")]


def _report(results: list, fmt: Format) -> int:
    """Print diagnostics of compiled files (stderr for text, stdout for JSON); the exit code they imply."""
    from .dsl.diagnostics import diagnostics_json

    diagnostics = [d for r in results for d in r.diagnostics.sorted()]
    if fmt is Format.json:
        typer.echo(diagnostics_json(diagnostics))
    else:
        for diag in diagnostics:
            typer.echo(diag.render(), err=True)
    return EXIT_INPUT if any(d.severity == "error" for d in diagnostics) else EXIT_OK


def _compile(policy: Path, fmt: Format = Format.text, quiet: bool = False):
    """Compile one policy or exit 1 with its diagnostics (errors are printed even when quiet; warnings
    are not, so that cron does not mail them every hour)."""
    return _compile_all([policy], fmt, quiet)[0]


def _compile_all(policies: list[Path], fmt: Format = Format.text, quiet: bool = False) -> list:
    """Compile every policy, or exit 1 with the diagnostics of them all (not of the first one only)."""
    from .engine.compiler import compile_policy

    results = [compile_policy(p) for p in policies]
    if any(r.plan is None for r in results):
        raise typer.Exit(_report(results, fmt))
    if fmt is Format.text and not quiet:
        _report(results, fmt)  # warnings
    return results


@app.command()
def validate(policies: Annotated[list[Path], typer.Argument(metavar="POLICY...", help="One or more policy files.")],
             format: FormatOpt = Format.text,
             quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only problems.")] = False) -> None:
    """Load, type-check and compile policies; print every error and warning."""
    from .engine.compiler import compile_policy

    results = [compile_policy(p) for p in policies]
    code = _report(results, format)
    if format is Format.text and not quiet:
        for path, result in zip(policies, results):
            if result.plan is not None:
                warnings = len(result.diagnostics.warnings)
                steps = sum(1 for _ in result.plan.steps())
                typer.echo(f"{path}: ok, {steps} step{'' if steps == 1 else 's'}, plan {result.plan.plan_hash[:12]}"
                           + (f", {warnings} warning(s)" if warnings else ""), err=True)
    raise typer.Exit(code)


@app.command("compile")
def compile_cmd(policy: PolicyArg,
                output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Write the plan here.")] = None,
                format: FormatOpt = Format.text) -> None:
    """Print the canonical plan JSON (with plan_hash)."""
    result = _compile(policy, format)
    text = result.plan.to_json() + "\n"
    if output is None:
        sys.stdout.write(text)
        return
    from .engine.files import write_atomic

    _not_an_input(output, "-o", {"policy": policy})
    with _writing(output):
        write_atomic(output, text)


@app.command()
def plan(policy: PolicyArg, format: FormatOpt = Format.text) -> None:
    """Show the plan as tables: stages, steps, channels, windows, caps."""
    result = _compile(policy, format)
    from . import views

    views.show_plan(result.plan)


@app.command()
def schema() -> None:
    """Print the JSON Schema of the policy format (for editor completion)."""
    import json

    from .dsl.model import file_schema

    typer.echo(json.dumps(file_schema(), indent=2, sort_keys=True))


@app.command()
def init(directory: Annotated[Path, typer.Argument(metavar="[DIRECTORY]", help="Where to create the project.")] = Path("."),
         force: Annotated[bool, typer.Option("--force", help="Overwrite existing files.")] = False) -> None:
    """Create a working starter project: policy, channels.yaml, a sample portfolio, README."""
    from .engine.scaffold import StarterExists, write_starter

    try:
        written = write_starter(directory, force=force)
    except StarterExists as exc:
        typer.echo(f"error: {exc} (use --force to overwrite)", err=True)
        raise typer.Exit(EXIT_INPUT)
    except OSError as exc:  # files that cannot be written, as for the other commands' output files
        where = exc.filename or directory
        typer.echo(f"error: cannot write the starter project: {where}: {exc.strerror or exc}", err=True)
        raise typer.Exit(EXIT_RUNTIME)
    for path in written:
        typer.echo(f"created {path}")
    typer.echo(f"next: collect validate {directory / 'policy.yaml'}")


@app.command()
def simulate(
    policy: PolicyArg,
    portfolio: Annotated[Path, typer.Option(help="Invoices CSV (docs/files.md).")],
    customers: Annotated[Optional[Path], typer.Option(help="Customers CSV, keyed by customer_id.")] = None,
    payments: Annotated[Optional[Path], typer.Option(help="Payments CSV (used by --behavior historic).")] = None,
    promises: Annotated[Optional[Path], typer.Option(help="Promises to pay CSV.")] = None,
    disputes: Annotated[Optional[Path], typer.Option(help="Disputes CSV.")] = None,
    map: Annotated[Optional[Path], typer.Option("--map", help="Column map YAML for ERP exports.")] = None,
    start: Annotated[Optional[str], typer.Option(help="First day, YYYY-MM-DD (default: today).")] = None,
    days: Annotated[int, typer.Option(min=1, max=3660, help="Horizon in days.")] = 30,
    behavior: Annotated[str, typer.Option(help="none | historic | a behavior model YAML.")] = "none",
    seed: Annotated[int, typer.Option(help="Seed of the behavior model.")] = 0,
    out: Annotated[Optional[Path], typer.Option(help="Write the contacts here (.csv or .jsonl).")] = None,
    compare: Annotated[Optional[Path], typer.Option(
        metavar="OLD", help="The baseline policy (e.g. the one in production) to compare POLICY, the candidate, "
                            "with: both are run and shown side by side, old then new, with new - old.")] = None,
    channels: Annotated[Optional[Path], typer.Option(help="channels.yaml, for message costs (and with --render its pay_link and "
                                                     "what its adapters refuse).")] = None,
    tick: Annotated[int, typer.Option(min=1, max=1440, help="Minutes between ticks (as cron runs `collect run`).")] = 60,
    workers: Annotated[Optional[int], typer.Option(min=1, help="Worker processes (default: one per 8,000 "
                                                 "customers, at most one per core).")] = None,
    render: Annotated[bool, typer.Option("--render", help="Build every message as `collect run` does: one that "
                                         "cannot be rendered, or that --channels' adapter refuses, fails on its "
                                         "channel and the step falls back.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No summary, progress or warnings.")] = False,
    format: FormatOpt = Format.text,
) -> None:
    """Dry run over a horizon: what would be sent, when, and what it does to the KPIs. With --compare OLD,
    the effect of changing OLD into POLICY: old and new side by side, and new - old."""
    import datetime as dt

    from .engine import simrun
    from .engine.portfolio import CsvError

    _check_contacts_file(out)
    _not_an_input(out, "--out", {"policy": policy, "--compare policy": compare, "--portfolio file": portfolio,
                                 "--customers file": customers, "--payments file": payments,
                                 "--promises file": promises, "--disputes file": disputes, "--map file": map,
                                 "--channels file": channels,
                                 "--behavior model": None if behavior in ("none", "historic") else Path(behavior)})
    if behavior not in ("none", "historic") and not Path(behavior).is_file():
        typer.echo(f"error: --behavior is none, historic or a behavior model file; {behavior} is none of these",
                   err=True)
        raise typer.Exit(EXIT_USAGE)
    if behavior not in ("none", "historic"):
        from .engine.behavior import BehaviorError, BehaviorModel

        try:
            model = BehaviorModel.load(behavior, seed)  # checked before any work, as the policies are
        except BehaviorError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(EXIT_INPUT)
    first_day = _date_option("--start", start) if start is not None else dt.date.today()  # '' is no date
    plans = [r.plan for r in _compile_all([policy] + ([compare] if compare else []), format, quiet)]
    costs = _costs(channels) if channels else None  # before the portfolio is read: it takes longer
    pay_link, refusals = _render_channels(channels) if channels and render else (None, None)
    if not quiet and (behavior == "historic") != (payments is not None):  # payments read, or meant, for nothing
        typer.echo("warning: --behavior historic without --payments: nobody pays, as with --behavior none"
                   if payments is None else f"warning: {payments} is used by --behavior historic only: with "
                   f"--behavior {behavior} its payments are not applied", err=True)
    if behavior not in ("none", "historic") and not quiet:
        for plan in plans:  # a name the policy does not have would silently change nothing
            for warning in model.unknown_names(plan):
                typer.echo(f"{behavior}: warning: {warning}", err=True)
    books: list = []
    problems: list = []  # every bad row under either policy's reading, each once
    for plan in plans:  # each policy reads the files by its own `fields:`, time zone and currency
        try:
            books.append(books[0] if books and _reads_alike(plan, plans[0]) else simrun.load_portfolio(
                plan, portfolio, customers=customers, payments=payments, promises=promises, disputes=disputes,
                colmap=map))
        except CsvError as exc:
            problems += [str(p) for p in exc.problems if str(p) not in problems]  # (`map` is --map here)
    if problems:
        for problem in problems:
            typer.echo(problem, err=True)
        raise typer.Exit(EXIT_INPUT)
    if not quiet:
        _clock_warnings(portfolio, [(p["timezone"], b.customers.values()) for p, b in zip(plans, books)],
                        first_day.year)
        _consent_warnings(customers or portfolio, plans, books)
        for warning in dict.fromkeys(w for book in books for w in book.absent_fields):
            typer.echo(f"{portfolio}: warning: {warning}", err=True)
    from . import views

    results = []
    with _writing(out):
        for plan, book in zip(plans, books):
            with views.progress(f"simulating {plan['policy']}", quiet) as advance:
                results.append(simrun.stream_simulation(
                    plan, book, start=first_day, days=days, behavior=behavior, seed=seed, tick_minutes=tick,
                    costs=costs, out=out if plan is plans[0] else None, workers=workers, progress=advance,
                    render=render, pay_link=pay_link, refusals=refusals))
    if not quiet:  # comparing: the baseline (--compare, old) first, then the candidate (POLICY, new)
        names, shown = ([compare, policy], results[::-1]) if compare else ([policy], results)
        views.show_simulation(names, shown, [r.summary for r in shown], kpis=behavior != "none")


def _clock_warnings(path: Path, sides, year: int) -> None:
    """Customers without a time zone in a country that keeps other clocks than the policy's: their
    contacts would follow the policy's hours (engine/zones.py). `sides`: (policy zone, customers) pairs;
    each line once."""
    from .engine.zones import off_clock

    said = set()
    for zone, customers in sides:
        for found in off_clock(customers, zone, year):
            line = f"{path}: warning: {found.line(zone)}"
            if line not in said:
                said.add(line)
                typer.echo(line, err=True)


def _consent_warnings(path: Path, plans, books) -> None:
    """A profile that needs each channel's recorded consent, on customers none of whom has a consent_*
    cell: every contact would be skipped (`compliance:...`), found only row by row in the contacts."""
    from .engine.runtime import Runtime

    said = set()
    for plan, book in zip(plans, books):
        guard = Runtime(plan).guard  # None: no compliance profile
        for rule in guard.without_consents(book.customers.values()) if guard is not None else ():
            if rule not in said:
                said.add(rule)
                typer.echo(f"{path}: warning: {rule.replace(' ', ': rule ', 1)} needs each channel's recorded "
                           "consent, and no customer it applies to has a consent_* cell: every contact to them "
                           "is skipped", err=True)


def _reads_alike(a: dict, b: dict) -> bool:
    """Do two plans read a portfolio into the same values (simrun.load_portfolio)?"""
    return all(a[k] == b[k] for k in ("fields", "timezone", "currency"))


DbOpt = Annotated[Optional[str], typer.Option("--db", help="Store URL (default: $COLLECT_DB, else sqlite:///collect.db).")]


class Kind(str, Enum):
    customers = "customers"
    invoices = "invoices"
    payments = "payments"
    promises = "promises"
    disputes = "disputes"
    events = "events"


def _store(db: str | None, upgrade: bool = True, create: bool = True):
    """Open the store; one line on stderr instead of a traceback when it cannot be opened. `create`: as
    store.connect (False for the commands that only read it)."""
    from .engine.store import StoreError, StoreUrlError, connect

    try:
        return connect(db, upgrade=upgrade, create=create)
    except StoreError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE if isinstance(exc, StoreUrlError) else EXIT_RUNTIME)


def _sqlite_file(db: str | None) -> Path | None:
    """The file of a SQLite store URL, else None (a server's store, or a URL that is no store's)."""
    from sqlalchemy.engine import make_url

    from .engine.store import StoreUrlError, engine_url

    try:
        url = make_url(engine_url(db))
    except StoreUrlError:
        return None
    return Path(url.database) if url.get_backend_name() == "sqlite" and url.database else None


def _check_store_url(db: str | None) -> None:
    """A `--db` that can never work is a usage error, told before the policy is compiled and its warnings
    printed (opening the store comes after: a server that does not answer is no usage error)."""
    from .engine.store import StoreUrlError, engine_url

    try:
        engine_url(db)
    except StoreUrlError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE)


def _check_timezone(zone: str) -> None:
    """A --timezone that is not a time zone is a usage error, before anything is read or written."""
    from .dsl.timeparse import closest_zone, time_zones

    if zone not in time_zones():
        found = closest_zone(zone)
        typer.echo(f"error: --timezone {zone!r} is not a time zone" + (f" (did you mean {found!r}?)" if found else ""),
                   err=True)
        raise typer.Exit(EXIT_USAGE)


@app.command("import")
def import_cmd(kind: Annotated[Kind, typer.Argument(metavar="KIND", help="What the file holds.")],
               csv_file: Annotated[Path, typer.Argument(metavar="CSV", help="The file (docs/files.md).")],
               map: Annotated[Optional[Path], typer.Option("--map", help="Column map YAML.")] = None,
               db: DbOpt = None,
               policy: Annotated[Optional[Path], typer.Option(help="Type custom columns by this policy's fields:.")] = None,
               timezone: Annotated[str, typer.Option(help="Zone of dates without one, for customers without a zone.")] = "UTC",
               currency: Annotated[str, typer.Option(help="Currency of invoices without one.")] = "USD",
               quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only errors (for cron).")] = False) -> None:
    """Import a CSV into the store: all rows or nothing; upserts customers and invoices."""
    from .engine.portfolio import ColumnMap, CsvError, load_map
    from .engine.storeio import import_file

    _check_timezone(timezone)
    from .dsl.fields import currency_problem

    if (problem := currency_problem(currency)) is not None:
        typer.echo(f"error: --currency {problem}", err=True)
        raise typer.Exit(EXIT_USAGE)
    # --quiet: the policy's warnings are not printed (a daily import from cron would mail them every day)
    plan = _compile(policy, quiet=quiet).plan if policy else None
    fields = dict(plan["fields"]) if plan else {}
    try:
        colmap = load_map(map) if map else ColumnMap()
        _readable(csv_file)  # a mistyped name is said before the store is opened, and created
        with _store_failure("the import, nothing imported"):
            done = import_file(_store(db), kind.value, csv_file, fields=fields, colmap=colmap, default_tz=timezone,
                               default_currency=currency)
    except CsvError as exc:
        for problem in exc.problems:
            typer.echo(str(problem), err=True)
        typer.echo(f"nothing imported: {len(exc.problems)} problem(s)", err=True)
        raise typer.Exit(EXIT_INPUT)
    if quiet:
        return
    typer.echo(done.message(csv_file))
    if plan is not None:  # customers on other clocks than the policy's, as simulate warns about them
        import datetime as dt

        _clock_warnings(csv_file, [(plan["timezone"], done.customers)], dt.date.today().year)
    if policy is None and kind in (Kind.invoices, Kind.customers):
        from .engine.portfolio_rows import extra_columns

        extra = extra_columns(csv_file, colmap)
        if extra:
            where = "invoice" if kind is Kind.invoices else "customer"
            typer.echo(f"{csv_file}: warning: columns {', '.join(extra)} were kept as text {where} attributes; "
                       f"import with --policy POLICY to read the fields it declares (customer.* fields go to "
                       f"the customer, with their types)", err=True)


def _readable(path: Path) -> None:
    from .engine.portfolio import CsvError, Problem

    try:
        with open(path, "rb"):
            pass
    except OSError as exc:  # the words the reader would use, without a store created for nothing
        raise CsvError([Problem(str(path), 1, None, f"cannot read the file: {exc}")]) from None


def _parse_now(now: str | None):
    import datetime as dt

    if now is None:
        return dt.datetime.now(dt.timezone.utc)
    try:
        moment = dt.datetime.fromisoformat(now)
    except ValueError:
        typer.echo(f"error: --now {now!r} is not an ISO date-time (2026-11-23T09:00:00+00:00)", err=True)
        raise typer.Exit(EXIT_USAGE)
    _date_option("--now", moment.date().isoformat())  # in the years the calendar can compute with
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def _costs(path: Path):
    """The `costs:` of channels.yaml for `simulate` (nothing else of it is read); exit 1 with every
    problem of `costs:` at its place, as `run` reports them."""
    from .engine.channels import ChannelsError, load_costs

    try:
        return load_costs(path)
    except ChannelsError as exc:  # each line names the file
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_INPUT)


def _render_channels(path: Path):
    """(`pay_link:`, what the adapters refuse) of channels.yaml for `simulate --render`; exit 1 when the link
    is not a payment page's URL or an adapter is unknown."""
    from .engine.channels import ChannelsError, load_pay_link, load_refusals

    try:
        return load_pay_link(path), load_refusals(path)
    except ChannelsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_INPUT)


def _channels(path: Path | None, plan, quiet: bool = False):
    """The adapters of channels.yaml (all to outbox files without one), checked against the policy before
    anything is sent. Exit 1, with every problem at once: a bad file; a step none of whose channels the
    file configures (each of its contacts would fail for good); what an adapter lacks for the policy
    (its `check(plan)`, e.g. a Twilio WhatsApp template without a Content SID); real providers with
    templates that need a payment link the file does not give. A channel the policy sends on that the
    file leaves out, where the step has another channel to fall back to, is a warning: `run --quiet` hides it,
    `serve` prints it once at start whatever its --quiet (a service's start is seen rarely)."""
    from .engine.channels import ChannelsError, load_channels, pay_link_problem, render

    try:
        adapters = load_channels(path)
    except ChannelsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_INPUT)
    try:
        errors, warnings = adapters.check_plan(plan)
        problem = pay_link_problem(adapters, plan)
    except BaseException:
        adapters.close()
        raise
    lines = ([f"{path}: {problem}"] if problem else []) + [render(d) for d in errors]
    if lines:
        typer.echo("error: " + "\n".join(lines), err=True)
    if not quiet or lines:
        for warning in warnings:
            typer.echo(render(warning), err=True)
    if lines:
        adapters.close()
        raise typer.Exit(EXIT_INPUT)
    return adapters


@app.command()
def run(policy: PolicyArg, db: DbOpt = None,
        channels: Annotated[Optional[Path], typer.Option(help="channels.yaml (default: every channel to outbox/<channel>.jsonl).")] = None,
        now: Annotated[Optional[str], typer.Option(help="The tick's moment, ISO 8601 (default: now; UTC if no offset).")] = None,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Decide and print; write and send nothing.")] = False,
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No summary (for cron).")] = False) -> None:
    """One tick: everything due up to now, exactly once. For cron."""
    from .engine.runner import Runner, TickBeforeLast, gone_steps

    moment = _parse_now(now)
    _check_store_url(db)
    plan = _compile(policy, quiet=quiet).plan
    adapters = _channels(channels, plan, quiet)
    try:
        with _store_failure("the tick"):
            store = _store(db, create=not dry_run)  # a dry run writes nothing: not even an empty store
            gone = gone_steps(store, plan) if not quiet else []
            if gone:
                typer.echo(f"{policy}: warning: steps {', '.join(gone)} of the policy's earlier version are gone: "
                           "a step is known by its id, so a step moved or renamed under a new id goes again to the "
                           "invoices that got the old one (keep the id to move a step)", err=True)
            summary = Runner(store, plan, adapters, pay_link=adapters.pay_link).tick(moment, dry_run=dry_run)
    except TickBeforeLast as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE)
    finally:
        adapters.close()
    if not quiet:
        from . import views

        views.show_tick(summary, dry_run)
    for error in summary.errors:
        typer.echo(f"error: {error}", err=True)
    for failure in summary.provider_failures:
        typer.echo(f"provider failure: {failure}", err=True)
    if summary.provider_failures or summary.errors:
        raise typer.Exit(EXIT_RUNTIME)


@app.command()
def history(db: DbOpt = None,
            out: Annotated[Optional[Path], typer.Option(help="Write to a .csv or .jsonl file (default: CSV on stdout).")] = None,
            since: Annotated[Optional[str], typer.Option(help="Only contacts from this date (YYYY-MM-DD).")] = None) -> None:
    """Every contact attempt made, in the contacts schema (docs/files.md): the audit log."""
    from .engine.history import history_text

    first = _date_option("--since", since) if since is not None else None
    _check_contacts_file(out)
    _not_an_input(out, "--out", {"store": _sqlite_file(db)})
    fmt = "jsonl" if out is not None and out.suffix == ".jsonl" else "csv"
    from .engine.files import write_atomic

    with _writing(out):  # a folder given as --out is told before the store is opened
        text = history_text(_store(db, create=False), first, fmt)
        if out is not None:
            write_atomic(out, text)
    if out is None:
        sys.stdout.write(text)


@app.command()
def explain(policy: PolicyArg, invoice: Annotated[str, typer.Option("--invoice", help="The invoice id.")],
            db: DbOpt = None,
            now: Annotated[Optional[str], typer.Option(help="The moment to explain at (default: now).")] = None) -> None:
    """For one invoice: each step, when it fired, or why not."""
    from .engine.explain import ExplainError
    from .engine.explain import explain as explain_invoice

    moment = _parse_now(now)
    _check_store_url(db)
    plan = _compile(policy).plan
    try:
        header, lines = explain_invoice(_store(db, create=False), plan, invoice, moment)
    except ExplainError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_INPUT)
    from . import views

    views.show_explain(header, lines)


@app.command()
def tasks(db: DbOpt = None, queue: Annotated[Optional[str], typer.Option(help="Only this queue.")] = None,
          format: Annotated[Format, typer.Option("--format", help="The task list as a table (text) or JSON.")] = Format.text,
          ) -> None:
    """The agent work queue, highest priority first."""
    from .engine.report import tasks as open_tasks

    if queue is not None and not queue.strip():  # `--queue "$QUEUE"` with the variable unset: not every queue
        typer.echo("error: --queue is empty; give a queue name, or leave --queue out for every queue", err=True)
        raise typer.Exit(EXIT_USAGE)
    rows = open_tasks(_store(db, create=False), queue)
    if format is Format.json:
        import json

        typer.echo(json.dumps([_task_json(row) for row in rows], indent=2))
        return
    from . import views

    views.show_tasks(rows)


def _task_json(row: dict) -> dict:
    """A task with JSON's own types, for a CRM or a script: the priority a number (or null), the invoice
    ids a list, created_at ISO 8601 (`2026-11-24T10:30:00+00:00`), as the agent channel's hand-off has them."""
    priority = None if row["priority"] is None else float(row["priority"])
    return {**row, "priority": priority, "invoice_ids": row["invoice_ids"].split(";"),
            "created_at": row["created_at"].isoformat()}


class ReportFormat(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"
    html = "html"


def _date_option(option: str, value: str):
    """A date option, in the years the files' dates may take (the calendar adds periods to it)."""
    import datetime as dt

    from .engine.portfolio import FIRST_YEAR, LAST_YEAR

    import re

    try:  # YYYY-MM-DD only: fromisoformat also takes 20261101 and 2026-W45-1, which the files refuse
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            raise ValueError(value)
        day = dt.date.fromisoformat(value)
    except ValueError:
        typer.echo(f"error: {option} {value!r} is not a date (YYYY-MM-DD)", err=True)
        raise typer.Exit(EXIT_USAGE)
    if not FIRST_YEAR <= day.year <= LAST_YEAR:
        typer.echo(f"error: {option} {value} is out of range (years {FIRST_YEAR} to {LAST_YEAR})", err=True)
        raise typer.Exit(EXIT_USAGE)
    return day


@app.command()
def report(db: DbOpt = None, format: Annotated[ReportFormat, typer.Option("--format")] = ReportFormat.table,
           date: Annotated[Optional[str], typer.Option(help="As of this date (default: today).")] = None,
           days: Annotated[int, typer.Option(min=1, max=36500, help="The period of CEI, recovery and promises: "
                                                                   "the N days ending with --date.")] = 30,
           timezone: Annotated[str, typer.Option(help="Zone of customers without one (as given to import).")] = "UTC",
           ) -> None:
    """KPIs from the store: aging, DSO, CEI, recovery rate, promises kept, contacts per channel with
    delivery and failure rates, deferrals, agent tasks (formulas in docs/cli.md)."""
    import datetime as dt
    import json

    from .engine.report import report as build

    today = _date_option("--date", date) if date is not None else dt.date.today()
    _check_timezone(timezone)
    data = build(_store(db, create=False), today, days, timezone)
    from . import views

    if format is ReportFormat.json:
        typer.echo(json.dumps(data, indent=2, sort_keys=True))
    elif format is ReportFormat.csv:
        typer.echo(views.report_csv(data), nl=False)
    elif format is ReportFormat.html:
        typer.echo(views.report_html(data))
    else:
        views.show_report(data)


@app.command()
def serve(policy: PolicyArg, db: DbOpt = None,
          channels: Annotated[Optional[Path], typer.Option(help="channels.yaml.")] = None,
          every: Annotated[Optional[str], typer.Option(help="Interval between ticks: 30s, 15m, 1h, 1d (default 15m); the first tick runs at start.")] = None,
          cron: Annotated[Optional[str], typer.Option(help="A crontab expression instead, in local time, e.g. '0 8-20 * * mon-sat': ticks only at those times.")] = None,
          quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No line per tick (failures are still printed).")] = False) -> None:
    """Run the tick on a schedule (APScheduler) until stopped; one tick at a time, misfires coalesced."""
    from . import views
    from .engine.runner import Runner
    from .engine.serve import parse_every
    from .engine.serve import serve as run_forever

    if every is not None and cron is not None:
        typer.echo("error: give --every or --cron, not both", err=True)
        raise typer.Exit(EXIT_USAGE)
    try:  # `is not None`: an empty value (an unset shell variable) is refused, not taken for the default
        from .engine.serve import local_zone

        local_zone()
        if every is not None:
            parse_every(every)
        if cron is not None:
            from .engine.serve import cron_trigger

            cron_trigger(cron)  # read as crontab reads it (0 and 7 are Sunday)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE)
    _check_store_url(db)
    plan = _compile(policy).plan
    adapters = _channels(channels, plan)
    worker = Runner(_store(db), plan, adapters, pay_link=adapters.pay_link)

    def tick(now):
        summary = worker.tick(now)
        if not quiet:
            typer.echo(f"{now.isoformat(timespec='seconds')}: {views.tick_line(summary)}", err=True)
        for error in summary.errors:
            typer.echo(f"error: {error}", err=True)
        for failure in summary.provider_failures:
            typer.echo(f"provider failure: {failure}", err=True)

    run_forever(tick, every=every, cron=cron, log=lambda m: typer.echo(m, err=True), exiting=True)


db_app = typer.Typer(help="Store maintenance.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade(db: DbOpt = None) -> None:
    """Apply pending schema migrations (they are also applied automatically when the store opens)."""
    from .engine.store import StoreError, current_version, migrate

    engine = _store(db, upgrade=False)
    try:
        applied = migrate(engine)
    except StoreError as exc:  # a store newer than this code, as _store reports it for the other commands
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_RUNTIME)
    typer.echo(f"schema revision {current_version(engine)}"
               + (f" (applied {', '.join(applied)})" if applied else " (up to date)"))


def main() -> None:
    app()

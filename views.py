"""Renderings for the command line: rich tables (a plan, summaries, the report), the report as CSV and HTML.
Presentation only."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from rich.cells import cell_len
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from .dsl.timeparse import DAYS, format_duration, format_time


def _console() -> Console:
    return Console(highlight=False)


# Tables keep every value whole. A column of values (ids, keys, names, dates and times, amounts, counts) is
# `no_wrap`: rich never narrows it. A column of free text (expressions, reasons, descriptions) wraps;
# with overflow="fold" it also breaks a word too long for it, without it it breaks lines only between
# words (so its longest word is the narrowest it gets). `_print` fits each table to the console's width:
# the width of the terminal, else $COLUMNS, else 80 (a pipe, a file).

_MEASURE = 1 << 16  # measure cells unbounded: what they need, not what the console has


def _key(table: Table, header: str = "", **options) -> None:
    """A column of values: never wrapped nor cut."""
    table.add_column(_cell(header), no_wrap=True, **options)


def _text(table: Table, header: str = "", fold: bool = True, **options) -> None:
    """A column of free text: wraps (and, with `fold`, breaks a word longer than the column)."""
    table.add_column(_cell(header), overflow="fold" if fold else "ellipsis", **options)


# Rich reads a str cell as console markup: a template shown as "[reminder]" would vanish and a reason with
# "[bold]" would restyle the table. The cells and headings hold names, expressions and reasons from the
# policy, the store and file names, so every one goes in as Text, which rich shows as written.

def _cell(value):
    """A table cell or heading shown as written: a str becomes Text; other renderables are left alone."""
    return Text(value) if isinstance(value, str) else value


def _row(table: Table, *cells, **options) -> None:
    """table.add_row, with each cell shown as written (`_cell`)."""
    table.add_row(*map(_cell, cells), **options)


def _fit(console: Console, table: Table) -> int:
    """Share the console's width among the wrapping columns of `table` (sets their `max_width`) so that no
    value is cut: the `no_wrap` columns keep their widest cell, the wrapping ones get what is left, as evenly
    as their contents allow and each at least its longest word when there is room for that (always, for a
    column that does not fold). Returns the width to print at: the console's, or more when the values alone
    do not fit it (a file keeps the long lines; a terminal wraps them, which still cuts nothing)."""
    options = console.options.update_width(_MEASURE)
    left_pad, right_pad = table.padding[3], table.padding[1]
    fixed = (2 if table.box and table.show_edge else 0) + (len(table.columns) - 1 if table.box else 0)
    wrapping = []  # (column, floor, preferred floor, widest)
    for column in table.columns:
        sizes = [Measurement.get(console, options, cell) for cell in (column.header, *column.cells)]
        widest = max(m.maximum for m in sizes)
        fixed += left_pad + right_pad
        if column.no_wrap:
            fixed += widest
            continue
        longest_word = max(m.minimum for m in sizes)
        header_word = Measurement.get(console, options, column.header).minimum
        # a folding column still keeps its min_width: the width of the names in it, which it must not break
        floor = min(widest, max(1, column.min_width or 0, header_word if column.overflow == "fold" else longest_word))
        wrapping.append((column, floor, min(widest, max(floor, longest_word)), widest))
    width = console.width
    room = width - fixed
    if not wrapping or sum(widest for *_, widest in wrapping) <= room:
        return max(width, fixed)
    floors = [preferred for _, _, preferred, _ in wrapping]
    if sum(floors) > room:
        floors = [floor for _, floor, _, _ in wrapping]
    if sum(floors) > room:  # the values alone nearly fill the console: print wider, words whole
        floors = [preferred for _, _, preferred, _ in wrapping]
        width += sum(floors) - room
        room = sum(floors)

    def shares(level: int) -> list[int]:
        return [min(max(level, floor), widest) for floor, (*_, widest) in zip(floors, wrapping)]
    level = 0
    while sum(shares(level + 1)) <= room and level < max(widest for *_, widest in wrapping):
        level += 1
    for (column, *_), share in zip(wrapping, shares(level)):
        column.max_width = share
    return width


def _print(console: Console, table: Table) -> None:
    """Print `table` fitted to the console (`_fit`), wider than it only when its values need it; at least
    as wide as its title (within the console), which then stays on one line."""
    if isinstance(table.title, str):
        table.min_width = max(table.min_width or 0, cell_len(table.title))
    width = _fit(console, table)
    if width > console.width:
        console = Console(file=console.file, width=width, highlight=False, force_terminal=console.is_terminal,
                          color_system=console.color_system)
    console.print(table)


def _ranges(ranges) -> str:
    return ", ".join(f"{format_time(a)}-{format_time(b)}" for a, b in ranges) or "closed"


def _trigger(t) -> str:
    text = t["anchor"] + (f"{t['days']:+d}d" if t["days"] else "")
    return text + (f" {format_time(t['time_minutes'])}" if t["time_minutes"] is not None else "")


def _action(step) -> str:
    if step["action"] == "send":
        text = " > ".join(step["channels"]) + f"  [{step['template']}]"
        if step["on_exhausted"]:
            text += f"  else escalate {step['on_exhausted']['queue']}"
        return text
    if step["action"] == "escalate":
        esc = step["escalate"]
        return f"escalate {esc['queue']}" + (f" (priority {esc['priority']})" if esc["priority"] else "")
    if step["action"] == "webhook":
        return f"webhook {step['webhook']}"
    return "stop"


def _action_names(step) -> list[str]:
    """The words of `_action` that are names (channels, "[template]", queues, a webhook): never broken."""
    names = list(step["channels"]) + ([f"[{step['template']}]"] if step["template"] else [])
    names += [esc["queue"] for esc in (step["escalate"], step["on_exhausted"]) if esc]
    return names + ([step["webhook"]] if step["webhook"] else [])


def _condition(step) -> str:
    return " and ".join(f"({c})" if " or " in c else c for c in (step["for"], step["if"]) if c) or ""


def steps_table(plan) -> Table:
    table = Table(title="Steps", title_justify="left")
    _text(table, "stage / event", fold=False)  # a name, or "on" and an event's name
    _text(table, "when")
    _key(table, "step")
    _text(table, "at", fold=False)  # "due+1d 10:00": the time may go under the day
    _text(table, "condition")
    _text(table, "action")  # channels, template, queue, and a priority's expression
    for stage in plan["stages"]:
        for i, step in enumerate(stage["steps"]):
            _row(table, stage["name"] if i == 0 else "", stage["when"] if i == 0 else "", step["id"],
                 _trigger(step["trigger"]), _condition(step), _action(step))
        if not stage["steps"]:
            _row(table, stage["name"], stage["when"], "-", "", "", "(no steps)")
    for event, steps in sorted(plan["events"].items()):
        for i, step in enumerate(steps):
            _row(table, f"on {event}" if i == 0 else "", "", step["id"], _trigger(step["trigger"]),
                 _condition(step), _action(step))
    # The action column folds a priority's long expression, but its names stay whole ("collections", not
    # "collecti" / "ons"): a word no wider than the column goes to the next line whole, so the column is
    # made at least as wide as its widest name (`_fit` keeps a column's min_width).
    steps = [step for stage in plan["stages"] for step in stage["steps"]]
    steps += [step for event_steps in plan["events"].values() for step in event_steps]
    table.columns[-1].min_width = max((cell_len(name) for step in steps for name in _action_names(step)), default=None)
    return table


def _day_groups(days) -> list[tuple[str, str]]:
    """(days, hours) with the consecutive days of the same hours together, as a policy writes them:
    ("mon-fri", "08:00-19:00"), ("sat", "09:00-13:00"), ("sun", "closed")."""
    groups: list[list] = []
    for day in DAYS:
        hours = _ranges(days.get(day, ()))
        if groups and groups[-1][2] == hours:
            groups[-1][1] = day
        else:
            groups.append([day, day, hours])
    return [(first if first == last else f"{first}-{last}", hours) for first, last, hours in groups]


def windows_table(plan) -> Table:
    windows, calendar = plan["windows"], plan["calendar"]
    whose = ", by each customer's country" if calendar.get("holidays_by") == "customer" else ""
    table = Table(title=f"Contact windows (customer's local time; holidays {windows['holidays']}{whose})",
                  title_justify="left")
    _key(table, "channel")
    _key(table, "days")
    _text(table, "hours", fold=False)  # time ranges, a line break only between two of them
    for channel, days in sorted(windows["channels"].items()):
        for i, (group, hours) in enumerate(_day_groups(days)):
            _row(table, channel if i == 0 else "", group, hours)
    return table


def caps_table(plan) -> Table:
    table = Table(title=f"Caps (on_cap: {plan['on_cap']})", title_justify="left")
    for column in ("channel", "max", "per", "cooldown after conversation"):
        _key(table, column)
    for cap in plan["caps"]:
        cooldown = cap["cooldown_minutes"]
        _row(table, cap["channel"], str(cap["max"]), _period(cap["per_minutes"]), _period(cooldown) if cooldown else "")
    return table


def _period(minutes: int) -> str:
    """A cap's period in days when it is whole days (`7d`, as policies write it), not the plan's canonical
    weeks (`1w`)."""
    return f"{minutes // 1440}d" if minutes % 1440 == 0 else format_duration(minutes)


def segments_table(plan) -> Table:
    table = Table(title="Segments", title_justify="left")
    _key(table, "segment")
    _text(table, "expression")
    for segment in plan["segments"]:
        _row(table, segment["name"], segment["expr"])
    for name, exp in sorted(plan["experiments"].items()):
        variants = ", ".join(f"{v} {p}%" for v, p in exp["variants"].items())
        _row(table, f"experiment {name}", f"per {exp['unit']}: {variants}")
    return table


def show_plan(plan) -> None:
    console = _console()
    compliance = plan["compliance"]
    # Text: a description with "[...]" in it is shown as written, not read as markup
    console.print(Text.assemble((plan["policy"], "bold"), f"  {plan['description']}"))
    # the hash on a line of its own, never broken (it is copied from the terminal); the rest may wrap
    console.print(Text(f"plan {plan.plan_hash}"), no_wrap=True, overflow="ignore", crop=False)
    console.print(Text(f"time zone {plan['timezone']}  currency {plan['currency']}  "
                       f"group_by {plan['group_by']}  catch_up {plan['catch_up']}  compliance "
                       f"{compliance if isinstance(compliance, str) else ', '.join(compliance) or 'none'}"))
    for table in (steps_table(plan), windows_table(plan), caps_table(plan), segments_table(plan)):
        _print(console, table)


class progress:
    """A progress bar over the portfolio's customers (silent when quiet)."""

    def __init__(self, label: str, quiet: bool):
        self.label, self.quiet = label, quiet
        self.bar = None

    def __enter__(self):
        if self.quiet:
            return None
        from rich.progress import Progress

        self.bar = Progress(console=Console(stderr=True), transient=True)
        self.bar.start()
        task = self.bar.add_task(self.label, total=None)

        def advance(done: int, total: int):
            self.bar.update(task, completed=done, total=total)
        return advance

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()
        return False


def _counter_table(title: str, names: list[str], counters: list, total: bool = True, limit: int | None = None) -> Table:
    """One row per key (in key order), a column per counter. `limit`: at most that many keys, the others
    added up in one row (the reasons of failures may quote data: one row per bad value would be
    endless): the most counted, and comparing two, up to half of them those whose count changed most."""
    table = Table(title=title, title_justify="left")
    _key(table)
    for name in names:  # counts: single words; a long heading (a file's name) breaks between words
        _text(table, name, fold=False, justify="right")
    if len(names) == 2:
        _key(table, DIFFERENCE, justify="right")
    keys = sorted(set().union(*counters))
    rest = []
    if limit is not None and len(keys) > limit + 1:  # a row of one other reason would hide it for nothing
        shown = _top_keys(keys, counters, limit)
        keys, rest = sorted(shown), [k for k in keys if k not in shown]
    rows = [(str(key), [c.get(key, 0) for c in counters]) for key in keys]
    if rest:
        rows.append((f"{len(rest)} other reasons", [sum(c.get(k, 0) for k in rest) for c in counters]))
    for label, values in rows:
        row = [label, *map(str, values)]
        if len(values) == 2:
            row.append(f"{values[1] - values[0]:+d}")
        _row(table, *row)
    if total and keys:
        sums = [sum(c.values()) for c in counters]
        row = ["total", *map(str, sums)] + ([f"{sums[1] - sums[0]:+d}"] if len(sums) == 2 else [])
        _row(table, *row, style="bold")
    return table


def _top_keys(keys, counters, limit: int) -> set:
    """`limit` keys: the most counted, and comparing two counters, up to half of them those whose count
    changed most (a reason new in the candidate policy is what the comparison is for)."""
    def counted(key):
        return -max(c.get(key, 0) for c in counters), key
    shown = []
    if len(counters) == 2:
        def change(key):
            return -abs(counters[1].get(key, 0) - counters[0].get(key, 0)), *counted(key)
        shown = [k for k in sorted(keys, key=change)[:limit // 2] if change(k)[0]]
    shown += [k for k in sorted(keys, key=counted) if k not in shown][:limit - len(shown)]
    return set(shown)


DIFFERENCE = "new - old"  # the heading of the difference column of `simulate --compare`
FAILURE_ROWS = 15  # reasons of failures shown; the contacts file has every one


def compare_labels(old, new) -> list[str]:
    """The column headings of `simulate NEW --compare OLD`: `old: FILE`, `new: FILE`, with as many of the
    files' folders as it takes to tell two files of the same name apart (`old: v1/policy.yaml`)."""
    from pathlib import Path

    old_parts, new_parts = Path(old).resolve().parts, Path(new).resolve().parts
    n = 1
    while old_parts[-n:] == new_parts[-n:] and n < min(len(old_parts), len(new_parts)) and old_parts != new_parts:
        n += 1
    return [f"old: {'/'.join(old_parts[-n:])}", f"new: {'/'.join(new_parts[-n:])}"]


def _horizon(start, end) -> str:
    """The horizon's first and last days, both included, as `collect report` prints its period."""
    last = end.date() - dt.timedelta(days=1)
    return f"{start:%Y-%m-%d} .. {last:%Y-%m-%d} ({(last - start.date()).days + 1} days)"


def show_simulation(names, results, summaries, kpis: bool = True) -> None:
    """The summary of one policy, or of two side by side: `names` (the policy files) are then the baseline
    (`--compare`, old) and the candidate (POLICY, new), in this order, and the difference is new - old."""
    console = _console()
    short = compare_labels(*names) if len(names) == 2 else ["contacts"]
    for label, name, result in zip(short if len(names) == 2 else [""], names, results):
        line = Text.assemble(*((label.split(":")[0], "  ") if len(names) == 2 else ()), (str(name), "bold"),
                             f"  plan {result.plan_hash[:12]}  {_horizon(result.start, result.end)}")
        console.print(line)
    for title, counts in (("Sent per channel", "sent_by_channel"), ("Sent per step", "sent_by_step"),
                          ("Sent per week", "sent_by_week"), ("Outcomes", "status"),
                          ("Deferrals by reason", "deferrals"), ("Skipped by reason", "skipped"),
                          ("Failed by reason", "failures"), ("Agent tasks by queue", "tasks_by_queue")):
        counters = [getattr(s, counts) for s in summaries]
        if any(counters):
            limit = FAILURE_ROWS if counts == "failures" else None
            _print(console, _counter_table(title, short, counters, limit=limit))
        else:  # as `collect report` says it: an empty table reads as a display fault
            console.print(Text(f"{title}: none"))
    if any(s.priced for s in summaries):  # costs were given: a cost of 0.00 is a figure too
        console.print(Text(_message_cost_line([s.message_cost() for s in summaries])))
    short = short if len(names) > 1 else ["value"]  # the tables below hold figures, not contact counts
    channels = sorted(set().union(*(set(s.sent_by_channel) | set(s.failed_by_channel) for s in summaries)))
    if channels:
        _print(console, _channels_table(short, [s.channel_kpis(channels) for s in summaries], channels,
                                        priced=any(s.priced for s in summaries)))
    else:
        console.print(Text(f"{CHANNELS_TITLE}: none"))
    if any(s.variants for s in summaries):
        _print(console, _variants_table(short, [s.variant_kpis(kpis) for s in summaries]))
    if kpis and summaries[0].kpis:
        _print(console, _kpi_table("Projected KPIs over the horizon", [""], short,
                                   [([key], [s.kpis.get(key) for s in summaries], key) for key in summaries[0].kpis]))
        buckets = [s.aging_buckets() for s in summaries]
        _print(console, _kpi_table("Projected aging at the end of the horizon",
                                   [""], short, [([b], [a[b] for a in buckets], "aging") for b in buckets[0]]))
        for warning in _currency_warnings(short, [s.currencies for s in summaries]):
            console.print(Text(f"warning: {warning}"))


VARIANT_KPIS = {"units": "units", "messages": "messages sent", "messages_per_unit": "messages per unit",
                "collected": "collected", "collected_per_unit": "collected per unit", "recovery_rate_pct": "recovery rate"}


def _variants_table(short, sides) -> Table:
    """Each experiment's variants side by side (`Summary.variant_kpis`); a variant only one policy has is
    n/a in the other."""
    cells = sorted(set().union(*sides))
    keys = [k for k in VARIANT_KPIS if any(k in row for side in sides for row in side.values())]
    rows = [([name, variant, VARIANT_KPIS[k]], [side.get((name, variant), {}).get(k) for side in sides], k)
            for name, variant in cells for k in keys]
    table = _kpi_table("Experiments by variant", ["experiment", "variant", "KPI"], short, rows)
    table.caption = ("units: the customers (or invoices, with unit: invoice) in the variant; the variants differ in "
                     "size, so compare the figures per unit and the rates")
    table.caption_justify = "left"
    return table


def _currency_warnings(labels, sides) -> list[str]:
    """Each side's own mix of currencies; and two sides each in one currency, but not the same one (the
    policies' `currency:` differ), whose `new - old` subtracts amounts in different currencies."""
    two = len(sides) == 2
    found = [f"{label.split(':')[0]}: {mixed}" if two else mixed
             for label, currencies in zip(labels, sides) if (mixed := mixed_currencies(currencies))]
    if two and all(len(c) == 1 for c in sides) and sides[0] != sides[1]:
        found.append(f"the old policy's invoices are in {next(iter(sides[0]))} and the new one's in "
                     f"{next(iter(sides[1]))}: new - old subtracts amounts in different currencies")
    return found


CHANNELS_TITLE = "Contacts per channel"
CHANNEL_KPIS = {"failed": "failed", "failure_rate_pct": "failure rate", "cost": "cost",
                "cost_per_contact": "cost per contact"}


def _channels_table(short, kpis, channels, priced: bool) -> Table:
    """Failures and costs per channel, then all channels together (`Summary.channel_kpis`)."""
    keys = ("failed", "failure_rate_pct") + (("cost", "cost_per_contact") if priced else ())
    rows = [([channel, CHANNEL_KPIS[key]], [per[channel][key] for per, _ in kpis], key)
            for channel in channels for key in keys]
    rows += [(["all", CHANNEL_KPIS[key]], [total[key] for _, total in kpis], key) for key in keys]
    table = _kpi_table(CHANNELS_TITLE, ["channel", "KPI"], short, rows)
    # the simulation hands nothing to a provider, so there is no delivery report to count: no number
    _row(table, "all", "delivery rate", *["not modelled"] * len(short), *([""] if len(short) == 2 else []))
    table.caption = ("failed: the step found no usable channel (no or an invalid address, an opt-out, no consent, "
                     "no window), counted on its last channel, or (--render) its message could not be rendered or "
                     "--channels' adapter refuses it unsent, counted on that channel; what the provider refuses, "
                     "bounces and delivery are not modelled")
    table.caption_justify = "left"
    return table


def _kpi_table(title: str, heads: list[str], short: list[str], rows) -> Table:
    """One row per KPI (`rows`: label cells, one value per policy, the KPI's key for its format), one
    column per policy and, comparing two, their difference."""
    table = Table(title=title, title_justify="left")
    for head in heads:
        if head == "KPI":
            _text(table, head, fold=False)  # "cost per contact"
        else:
            _key(table, head)
    for n in short:  # figures: "1,234.50", "+2.5 pp", "not modelled" break only between words
        _text(table, n, fold=False, justify="right")
    if len(short) == 2:
        _key(table, DIFFERENCE, justify="right")  # "+2.5 pp", "-1,234.50": short, on one line
    for labels, values, key in rows:
        row = [*labels, *(_kpi(v, key) for v in values)]
        if len(values) == 2:
            row.append(_kpi_difference(values[0], values[1], key))
        _row(table, *row)
    return table


def _money(value) -> str:
    """An amount: two decimals and thousands separators (1,234,567.80), as simulate's summary shows them."""
    return f"{Decimal(value):,.2f}"


def _message_cost_line(costs: list[tuple]) -> str:
    """`Message cost: X`, or `old X  new Y  new - old Z`; n/a where messages went and none had a price,
    and the channels without one named, since the figure leaves them out."""
    def shown(value, sign=False):
        return "n/a" if value is None else _cost(value, sign=sign)
    values = [cost for cost, _ in costs]
    if len(values) == 2:
        both = None if None in values else values[1] - values[0]
        line = f"Message cost: old {shown(values[0])}  new {shown(values[1])}  {DIFFERENCE} {shown(both, sign=True)}"
    else:
        line = f"Message cost: {shown(values[0])}"
    unpriced = sorted(set().union(*(channels for _, channels in costs)))
    return line + (f"  ({', '.join(unpriced)}: no price, left out)" if unpriced else "")


def _cost(value, sign: bool = False) -> str:
    """A message cost with its full precision (a 0.045 per message is not rounded to 0.04), at least
    two decimal places, thousands separators (1,234.045)."""
    value = Decimal(value).normalize()
    if value.as_tuple().exponent > -2:
        value = value.quantize(Decimal("0.01"))
    return f"{value:+,f}" if sign else f"{value:,f}"


def _unit_cost(value) -> str:
    """A cost per contact, with the 4 decimals it is computed to (0.0450)."""
    return f"{Decimal(value):,f}"


COUNTS = ("failed", "promises_made", "promises_due", "promises_kept", "promises_broken", "units", "messages")


def _kpi_difference(first, second, key: str) -> str:
    """second - first (new - old), n/a when either has no value (a ratio without a denominator)."""
    if first is None or second is None:
        return "n/a"
    difference = second - first
    if key.endswith("_pct"):
        return f"{difference:+.1f} pp"
    if key == "dso_days":
        return f"{difference:+.1f}"
    if key in COUNTS:
        return f"{difference:+d}"
    if key == "cost":
        return _cost(difference, sign=True)
    if key == "cost_per_contact":
        return f"{Decimal(difference):+,f}"  # 4 decimals, as the costs per contact
    return f"{difference:+,.2f}"


def _kpi(value, key: str) -> str:
    if value is None:
        return "n/a"
    if key.endswith("_pct"):  # already a percentage rounded to 0.1, as `collect report` shows it
        return f"{value}%"
    if key == "dso_days":
        return f"{value:.1f}"
    if key in COUNTS:
        return str(value)
    if key == "cost":
        return _cost(value)
    if key == "cost_per_contact":
        return _unit_cost(value)  # 4 decimals, as `collect report`
    return f"{value:,.2f}"


def tick_line(summary) -> str:
    """One line per tick for `collect serve`: what was decided, and what the providers took."""
    decided = ", ".join(f"{n} {status}" for status, n in sorted(summary.statuses.items())) or "nothing due"
    line = f"{summary.customers} customers decided: {decided}"
    delivered = sum(summary.by_channel.values())
    failed = sum(n for outcome, n in summary.delivery.items() if outcome != "sent")
    if delivered or failed:
        line += f"; delivered {delivered}" + (f", not delivered {failed}" if failed else "")
    return line


def show_tick(summary, dry_run: bool) -> None:
    from .engine.delivery import NOT_PROVIDERS  # not at the top: the engine's store is not needed to import views

    console = _console()
    title = "Tick (dry run: nothing written or sent)" if dry_run else "Tick"
    table = Table(title=title, title_justify="left")
    _key(table)
    _key(table, "count", justify="right")
    _row(table, "customers decided", str(summary.customers))
    for status, count in sorted(summary.statuses.items()):
        _row(table, status, str(count))
    for channel, count in sorted(summary.by_channel.items()):
        _row(table, f"delivered by {channel}", str(count))
    for outcome, count in sorted(summary.delivery.items()):
        if outcome != "sent":  # "provider retry", "provider failed"; not "template not rendered"
            _row(table, outcome if outcome in NOT_PROVIDERS.values() else f"provider {outcome}", str(count))
    _print(console, table)
    if dry_run:  # one line per decision, never broken: a line for grep
        for d in summary.decisions:
            console.print(Text(f"{d.at.isoformat(timespec='minutes')}  {d.customer_id}  {';'.join(d.invoice_ids)}  "
                               f"{d.step}  {d.channel or '-'}  {d.status}  {d.reason}"), soft_wrap=True)


def _spaced(moment: str) -> str:
    """An ISO 8601 date and time with a space for the T (2026-11-24 10:30-05:00): in a narrow column the
    time goes under the date instead of being cut."""
    return f"{moment[:10]} {moment[11:]}" if moment[10:11] == "T" else moment


def show_explain(header: dict, lines) -> None:
    console = _console()
    header = {k: _money(v) if k == "balance" else v for k, v in header.items()}
    console.print(Text("  ").join(Text.assemble(f"{k} ", (str(v), "bold")) for k, v in header.items()))
    table = Table(title="Steps", title_justify="left")
    _key(table, "stage / event")
    _key(table, "step")
    _text(table, "state", fold=False)  # "not applicable": may take two lines
    _text(table, "when", fold=False)
    _text(table, "why")
    for line in lines:
        _row(table, line.owner, line.step, line.state, _spaced(line.when), line.why)
    _print(console, table)


def show_tasks(rows) -> None:
    table = Table(title=f"Agent tasks ({len(rows)} open)", title_justify="left")
    for column in ("priority", "queue", "customer", "invoices", "step"):
        _key(table, column)
    _text(table, "reason")
    _text(table, "restrictions")
    _text(table, "created", fold=False)  # the time may go under the date
    for r in rows:
        invoices = "\n".join(r["invoice_ids"].split(";"))  # one id a line: each whole, however many
        created = r["created_at"].isoformat(sep=" ", timespec="minutes")
        _row(table, _priority(r["priority"]), r["queue"], r["customer_id"], invoices, r["step"] or "",
             r["reason"] or "", "; ".join(r["restrictions"]), created)
    _print(_console(), table)


def _priority(value) -> str:
    """A task's priority as the agent's message writes it: 22500000, not the stored 22500000.0."""
    try:
        return f"{float(value):.15g}"
    except (TypeError, ValueError):
        return str(value or "")


def _na(value) -> str:
    return "n/a" if value is None else str(value)


def _pct(value) -> str:
    return "n/a" if value is None else f"{value}%"


def mixed_currencies(currencies) -> str | None:
    """The warning for money KPIs over invoices in several currencies, which are added as they are (no
    exchange rates): a DSO of PEN and USD balances is a number of neither. None for one currency."""
    if len(currencies) < 2:
        return None
    return (f"the invoices are in {len(currencies)} currencies ({', '.join(sorted(currencies))}) and their amounts "
            "are added as they are, without exchange rates: the money KPIs and the aging mix them; for figures in "
            "one currency, keep each currency's invoices apart (a portfolio, or a store, of its own)")


def report_sections(data: dict) -> list[tuple[str, list[str], list[list[str]]]]:
    """The report as (title, columns, rows) of text, rendered alike by the table and HTML views: amounts
    with two decimals and thousands separators; the cost columns only when some contact has a cost (no
    cost in the store is not a cost of 0)."""
    period, cei, recovery, promises = data["period"], data["cei"], data["recovery"], data["promises"]
    opening, invoiced = _money(cei["opening_receivables"]), _money(cei["invoiced"])
    kpis = [
        ["receivables", _money(data["receivables"]), f"open balances as of {data['date']}"],
        ["DSO (days)", _na(data["dso_days"]), "receivables / invoiced in the last 90 days x 90"],
        ["CEI", _pct(cei["cei_pct"]),
         f"(opening {opening} + invoiced {invoiced} - closing {_money(cei['closing_receivables'])})"
         f" / ({opening} + {invoiced} - closing current {_money(cei['closing_current'])})"],
        ["recovery rate", _pct(recovery["recovery_rate_pct"]),
         f"collected {_money(recovery['collected'])} / past due at the start "
         f"{_money(recovery['past_due_at_start'])}"],
        ["promises kept", _pct(promises["kept_rate_pct"]),
         f"{promises['kept']} kept, {promises['broken']} broken of {promises['due']} due; {promises['made']} made"],
    ]
    priced = any(c["cost"] is not None for c in data["contacts"].values())
    contacts = [[channel, *(str(c[k]) for k in ("sent", "failed", "sending", "delivered")),
                 _pct(c["delivery_rate_pct"]), _pct(c["failure_rate_pct"])]
                + (["n/a" if c["cost"] is None else _cost(c["cost"]),
                    "n/a" if c["cost_per_contact"] is None else _unit_cost(c["cost_per_contact"])]
                   if priced else [])
                for channel, c in data["contacts"].items()]
    # the warning first: it says how to read every money figure below it
    warning = [("Warning", [""], [[mixed]])] if (mixed := mixed_currencies(data["currencies"])) else []
    return warning + [
        (f"KPIs, period {period['first_day']} .. {period['last_day']} ({period['days']} days)",
         ["KPI", "value", "from"], kpis),
        ("Aging (open balance)", list(data["aging"]), [[_money(v) for v in data["aging"].values()]]),
        ("Contacts per channel", ["channel", "sent", "failed", "sending", "delivered", "delivery rate",
                                  "failure rate"] + (["cost", "per contact"] if priced else []), contacts),
        ("Deferrals by reason", ["", "count"], [[k, str(v)] for k, v in sorted(data["deferrals"].items())]),
        ("Agent tasks by queue", ["", "count"], [[k, str(v)] for k, v in sorted(data["tasks_by_queue"].items())]),
    ]


def _report_title(data: dict) -> str:
    return (f"Report as of {data['date']}: receivables {_money(data['receivables'])}, "
            "DSO " + ("n/a" if data["dso_days"] is None else f"{data['dso_days']} days"))


def show_report(data: dict) -> None:
    console = _console()
    console.print(Text(_report_title(data)))
    for title, columns, rows in report_sections(data):
        if not rows:  # a table of nothing is a header to puzzle over
            console.print(Text(f"{title}: none"))
            continue
        if title == "Warning":  # a sentence, wrapped as text (a table would keep it on one line)
            console.print(Text(f"warning: {rows[0][0]}"))
            continue
        table = Table(title=title, title_justify="left", min_width=len(title))
        for column in columns:
            justify = "left" if column in ("", "KPI", "channel", "from") else "right"
            if column == "from":
                _text(table, column, fold=False, justify=justify)  # a formula: breaks between its terms
            else:
                _key(table, column, justify=justify)
        for row in rows:
            _row(table, *row)
        _print(console, table)


REPORT_HTML = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{ title }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 0 0 1.5em; }
caption { text-align: left; font-weight: bold; padding: 0.3em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child, td.text { text-align: left; }
</style>
</head>
<body>
<h1>{{ title }}</h1>
{% for caption, columns, rows in sections %}{% if rows %}
<table>
<caption>{{ caption }}</caption>
<tr>{% for column in columns %}<th>{{ column }}</th>{% endfor %}</tr>
{% for row in rows %}<tr>{% for cell in row %}
<td{% if columns[loop.index0] == "from" %} class="text"{% endif %}>{{ cell }}</td>{% endfor %}</tr>
{% endfor %}</table>{% else %}
<p>{{ caption }}: none</p>{% endif %}
{% endfor %}
</body>
</html>
"""


def report_html(data: dict) -> str:
    """The table view as one self-contained HTML page (autoescaped: names from the store are text)."""
    from jinja2 import Environment

    template = Environment(autoescape=True).from_string(REPORT_HTML)
    return template.render(title=_report_title(data), sections=report_sections(data))


def report_csv(data: dict) -> str:
    """`section,key,value` rows: every number of the JSON form (None as n/a)."""
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["section", "key", "value"])
    for section in ("aging", "deferrals", "tasks_by_queue"):
        writer.writerows([section, k, v] for k, v in data[section].items())
    for channel, counts in data["contacts"].items():
        writer.writerows(["contacts", f"{channel}:{k}", _na(v)] for k, v in counts.items())
    writer.writerows([["kpi", "date", data["date"]], ["kpi", "receivables", data["receivables"]],
                      ["kpi", "dso_days", _na(data["dso_days"])],
                      ["kpi", "currencies", ";".join(data["currencies"])]])  # several: the sums mix them
    for section in ("period", "cei", "recovery", "promises"):
        writer.writerows([section, k, _na(v)] for k, v in data[section].items())
    return out.getvalue()

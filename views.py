"""Renderings for the command line: rich tables (a plan, summaries, the report), the report as CSV and HTML.
Presentation only."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from .dsl.timeparse import DAYS, format_duration, format_time


def _console() -> Console:
    return Console(highlight=False)


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


def _condition(step) -> str:
    return " and ".join(f"({c})" if " or " in c else c for c in (step["for"], step["if"]) if c) or ""


def steps_table(plan) -> Table:
    table = Table(title="Steps", title_justify="left")
    for column in ("stage / event", "when", "step", "at", "condition", "action"):
        table.add_column(column)
    for stage in plan["stages"]:
        for i, step in enumerate(stage["steps"]):
            table.add_row(stage["name"] if i == 0 else "", stage["when"] if i == 0 else "", step["id"],
                          _trigger(step["trigger"]), _condition(step), _action(step))
        if not stage["steps"]:
            table.add_row(stage["name"], stage["when"], "-", "", "", "(no steps)")
    for event, steps in sorted(plan["events"].items()):
        for i, step in enumerate(steps):
            table.add_row(f"on {event}" if i == 0 else "", "", step["id"], _trigger(step["trigger"]),
                          _condition(step), _action(step))
    return table


def windows_table(plan) -> Table:
    windows = plan["windows"]
    table = Table(title=f"Contact windows (customer's local time; holidays {windows['holidays']})",
                  title_justify="left")
    table.add_column("channel")
    for day in DAYS:
        table.add_column(day)
    for channel, days in sorted(windows["channels"].items()):
        table.add_row(channel, *(_ranges(days.get(day, ())) for day in DAYS))
    return table


def caps_table(plan) -> Table:
    table = Table(title=f"Caps (on_cap: {plan['on_cap']})", title_justify="left")
    for column in ("channel", "max", "per", "cooldown after conversation"):
        table.add_column(column)
    for cap in plan["caps"]:
        cooldown = cap["cooldown_minutes"]
        table.add_row(cap["channel"], str(cap["max"]), format_duration(cap["per_minutes"]),
                      format_duration(cooldown) if cooldown else "")
    return table


def segments_table(plan) -> Table:
    table = Table(title="Segments", title_justify="left")
    table.add_column("segment")
    table.add_column("expression")
    for segment in plan["segments"]:
        table.add_row(segment["name"], segment["expr"])
    for name, exp in sorted(plan["experiments"].items()):
        variants = ", ".join(f"{v} {p}%" for v, p in exp["variants"].items())
        table.add_row(f"experiment {name}", f"per {exp['unit']}: {variants}")
    return table


def show_plan(plan) -> None:
    console = _console()
    compliance = plan["compliance"]
    console.print(f"[bold]{plan['policy']}[/bold]  {plan['description']}")
    console.print(f"plan {plan.plan_hash}  time zone {plan['timezone']}  currency {plan['currency']}  "
                  f"group_by {plan['group_by']}  catch_up {plan['catch_up']}  "
                  f"compliance {compliance if isinstance(compliance, str) else ', '.join(compliance) or 'none'}")
    for table in (steps_table(plan), windows_table(plan), caps_table(plan), segments_table(plan)):
        console.print(table)


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


def _counter_table(title: str, names: list[str], counters: list, total: bool = True) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("")
    for name in names:
        table.add_column(name, justify="right")
    if len(names) == 2:
        table.add_column("difference", justify="right")
    keys = sorted(set().union(*counters))
    for key in keys:
        values = [c.get(key, 0) for c in counters]
        row = [str(key), *map(str, values)]
        if len(values) == 2:
            row.append(f"{values[1] - values[0]:+d}")
        table.add_row(*row)
    if total and keys:
        sums = [sum(c.values()) for c in counters]
        row = ["total", *map(str, sums)] + ([f"{sums[1] - sums[0]:+d}"] if len(sums) == 2 else [])
        table.add_row(*row, style="bold")
    return table


def show_simulation(names, results, summaries, kpis: bool = True) -> None:
    console = _console()
    for name, result in zip(names, results):
        console.print(f"[bold]{name}[/bold]  plan {result.plan_hash[:12]}  "
                      f"{result.start:%Y-%m-%d} .. {result.end:%Y-%m-%d}")
    short = [f"policy {i + 1}" if len(names) > 1 else "contacts" for i in range(len(names))]
    console.print(_counter_table("Sent per channel", short, [s.sent_by_channel for s in summaries]))
    console.print(_counter_table("Sent per step", short, [s.sent_by_step for s in summaries]))
    console.print(_counter_table("Sent per week", short, [s.sent_by_week for s in summaries]))
    console.print(_counter_table("Outcomes", short, [s.status for s in summaries]))
    console.print(_counter_table("Deferrals by reason", short, [s.deferrals for s in summaries]))
    console.print(_counter_table("Skipped by reason", short, [s.skipped for s in summaries]))
    console.print(_counter_table("Agent tasks by queue", short, [s.tasks_by_queue for s in summaries]))
    if any(s.cost for s in summaries):
        costs = [s.cost for s in summaries]
        line = "Message cost: " + "  ".join(f"{n} {_cost(c)}" for n, c in zip(short, costs))
        if len(costs) == 2:
            line += f"  difference {_cost(costs[1] - costs[0], sign=True)}"
        console.print(line)
    short = short if len(names) > 1 else ["value"]  # the tables below hold figures, not contact counts
    channels = sorted(set().union(*(set(s.sent_by_channel) | set(s.failed_by_channel) for s in summaries)))
    if channels:
        console.print(_channels_table(short, [s.channel_kpis(channels) for s in summaries], channels,
                                      priced=any(s.priced for s in summaries)))
    if kpis and summaries[0].kpis:
        console.print(_kpi_table("Projected KPIs over the horizon", [""], short,
                                 [([key], [s.kpis.get(key) for s in summaries], key) for key in summaries[0].kpis]))
        buckets = [s.aging_buckets() for s in summaries]
        console.print(_kpi_table("Projected aging at the end of the horizon",
                                 [""], short, [([b], [a[b] for a in buckets], "aging") for b in buckets[0]]))


CHANNEL_KPIS = {"failed": "failed (no usable channel)", "failure_rate_pct": "failure rate", "cost": "cost",
                "cost_per_contact": "cost per contact"}


def _channels_table(short, kpis, channels, priced: bool) -> Table:
    """Failures and costs per channel, then all channels together (`Summary.channel_kpis`)."""
    keys = ("failed", "failure_rate_pct") + (("cost", "cost_per_contact") if priced else ())
    rows = [([channel, CHANNEL_KPIS[key]], [per[channel][key] for per, _ in kpis], key)
            for channel in channels for key in keys]
    rows += [(["all", CHANNEL_KPIS[key]], [total[key] for _, total in kpis], key) for key in keys]
    table = _kpi_table("Contacts per channel", ["channel", "KPI"], short, rows)
    # the simulation hands nothing to a provider, so there is no delivery report to count: no number
    table.add_row("all", "delivery rate", *["not modelled"] * len(short), *([""] if len(short) == 2 else []))
    table.caption = ("failed: the step found no usable channel (no or an invalid address, an opt-out, no consent, "
                     "no window), counted on its last channel; provider refusals, bounces and delivery are not "
                     "modelled")
    table.caption_justify = "left"
    return table


def _kpi_table(title: str, heads: list[str], short: list[str], rows) -> Table:
    """One row per KPI (`rows`: label cells, one value per policy, the KPI's key for its format), one
    column per policy and, comparing two, their difference."""
    table = Table(title=title, title_justify="left")
    for head in heads:
        table.add_column(head)
    for n in short:
        table.add_column(n, justify="right")
    if len(short) == 2:
        table.add_column("difference", justify="right")
    for labels, values, key in rows:
        row = [*labels, *(_kpi(v, key) for v in values)]
        if len(values) == 2:
            row.append(_kpi_difference(values[0], values[1], key))
        table.add_row(*row)
    return table


def _cost(value, sign: bool = False) -> str:
    """A message cost with its full precision (a 0.045 per message is not rounded to 0.04), at least
    two decimal places."""
    from decimal import Decimal

    value = Decimal(value)
    if value.as_tuple().exponent > -2:
        value = value.quantize(Decimal("0.01"))
    return f"{value:+f}" if sign else f"{value:f}"


COUNTS = ("failed", "promises_made", "promises_due", "promises_kept", "promises_broken")


def _kpi_difference(first, second, key: str) -> str:
    """Policy 2 - policy 1, n/a when either has no value (a ratio without a denominator)."""
    if first is None or second is None:
        return "n/a"
    difference = second - first
    if key == "recovery_rate":
        return f"{difference * 100:+.1f} pp"
    if key.endswith("_pct"):
        return f"{difference:+.1f} pp"
    if key == "dso_days":
        return f"{difference:+.1f}"
    if key in COUNTS:
        return f"{difference:+d}"
    if key in ("cost", "cost_per_contact"):
        return _cost(difference, sign=True)
    return f"{difference:+,.2f}"


def _kpi(value, key: str) -> str:
    if value is None:
        return "n/a"
    if key == "recovery_rate":
        return f"{value * 100:.1f}%"
    if key.endswith("_pct"):  # already a percentage rounded to 0.1, as `collect report` shows it
        return f"{value}%"
    if key == "dso_days":
        return f"{value:.1f}"
    if key in COUNTS:
        return str(value)
    if key == "cost":
        return _cost(value)
    if key == "cost_per_contact":
        return f"{value:f}"  # 4 decimals, as `collect report`
    return f"{value:,.2f}"


def show_tick(summary, dry_run: bool) -> None:
    console = _console()
    title = "Tick (dry run: nothing written or sent)" if dry_run else "Tick"
    table = Table(title=title, title_justify="left")
    table.add_column("")
    table.add_column("count", justify="right")
    table.add_row("customers decided", str(summary.customers))
    for status, count in sorted(summary.statuses.items()):
        table.add_row(status, str(count))
    for channel, count in sorted(summary.by_channel.items()):
        table.add_row(f"delivered by {channel}", str(count))
    for outcome, count in sorted(summary.delivery.items()):
        if outcome != "sent":
            table.add_row(f"provider {outcome}", str(count))
    console.print(table)
    if dry_run:
        for d in summary.decisions:
            console.print(f"{d.at.isoformat(timespec='minutes')}  {d.customer_id}  {';'.join(d.invoice_ids)}  "
                          f"{d.step}  {d.channel or '-'}  {d.status}  {d.reason}")


def show_explain(header: dict, lines) -> None:
    console = _console()
    console.print("  ".join(f"{k} [bold]{v}[/bold]" for k, v in header.items()))
    table = Table(title="Steps", title_justify="left")
    for column in ("stage / event", "step", "state", "when", "why"):
        table.add_column(column)
    for line in lines:
        table.add_row(line.owner, line.step, line.state, line.when, line.why)
    console.print(table)


def show_tasks(rows) -> None:
    table = Table(title=f"Agent tasks ({len(rows)} open)", title_justify="left")
    for column in ("priority", "queue", "customer", "invoices", "step", "reason", "created"):
        table.add_column(column)
    for r in rows:
        table.add_row(str(r["priority"] or ""), r["queue"], r["customer_id"], r["invoice_ids"], r["step"] or "",
                      r["reason"] or "", r["created_at"].isoformat(timespec="minutes"))
    _console().print(table)


def _na(value) -> str:
    return "n/a" if value is None else str(value)


def _pct(value) -> str:
    return "n/a" if value is None else f"{value}%"


def report_sections(data: dict) -> list[tuple[str, list[str], list[list[str]]]]:
    """The report as (title, columns, rows) of text, rendered alike by the table and HTML views."""
    period, cei, recovery, promises = data["period"], data["cei"], data["recovery"], data["promises"]
    opening, invoiced = cei["opening_receivables"], cei["invoiced"]
    kpis = [
        ["receivables", data["receivables"], f"open balances as of {data['date']}"],
        ["DSO (days)", _na(data["dso_days"]), "receivables / invoiced in the last 90 days x 90"],
        ["CEI", _pct(cei["cei_pct"]),
         f"(opening {opening} + invoiced {invoiced} - closing {cei['closing_receivables']})"
         f" / ({opening} + {invoiced} - closing current {cei['closing_current']})"],
        ["recovery rate", _pct(recovery["recovery_rate_pct"]),
         f"collected {recovery['collected']} / past due at the start {recovery['past_due_at_start']}"],
        ["promises kept", _pct(promises["kept_rate_pct"]),
         f"{promises['kept']} kept, {promises['broken']} broken of {promises['due']} due; {promises['made']} made"],
    ]
    contacts = [[channel, *(str(c[k]) for k in ("sent", "failed", "sending", "delivered")),
                 _pct(c["delivery_rate_pct"]), _pct(c["failure_rate_pct"]), c["cost"], _na(c["cost_per_contact"])]
                for channel, c in data["contacts"].items()]
    return [
        (f"KPIs, period {period['first_day']} .. {period['last_day']} ({period['days']} days)",
         ["KPI", "value", "from"], kpis),
        ("Aging (open balance)", list(data["aging"]), [list(data["aging"].values())]),
        ("Contacts per channel", ["channel", "sent", "failed", "sending", "delivered", "delivery rate",
                                  "failure rate", "cost", "per contact"], contacts),
        ("Deferrals by reason", ["", "count"], [[k, str(v)] for k, v in sorted(data["deferrals"].items())]),
        ("Agent tasks by queue", ["", "count"], [[k, str(v)] for k, v in sorted(data["tasks_by_queue"].items())]),
    ]


def _report_title(data: dict) -> str:
    return f"Report as of {data['date']}: receivables {data['receivables']}, DSO {_na(data['dso_days'])} days"


def show_report(data: dict) -> None:
    from rich.text import Text

    console = _console()
    console.print(Text(_report_title(data)))
    for title, columns, rows in report_sections(data):
        table = Table(title=title, title_justify="left", min_width=len(title))
        for i, column in enumerate(columns):
            table.add_column(column, justify="left" if column in ("", "KPI", "channel", "from") else "right",
                             no_wrap=i == 0)
        for row in rows:
            table.add_row(*map(Text, row))  # Text: a queue named "[bold]" is shown, not read as markup
        console.print(table)


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
{% for caption, columns, rows in sections %}
<table>
<caption>{{ caption }}</caption>
<tr>{% for column in columns %}<th>{{ column }}</th>{% endfor %}</tr>
{% for row in rows %}<tr>{% for cell in row %}
<td{% if columns[loop.index0] == "from" %} class="text"{% endif %}>{{ cell }}</td>{% endfor %}</tr>
{% endfor %}</table>
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
    writer.writerows([["kpi", "receivables", data["receivables"]], ["kpi", "dso_days", _na(data["dso_days"])]])
    for section in ("period", "cei", "recovery", "promises"):
        writer.writerows([section, k, _na(v)] for k, v in data[section].items())
    return out.getvalue()

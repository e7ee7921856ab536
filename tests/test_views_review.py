"""Review regressions: the tables show names, expressions and file names as written (rich would read "[reminder]"
or "[bold]" in a str cell as console markup and drop it); `collect plan` keeps queue, channel and template names
whole at 80 columns; a step's `if_:` / `for_:` (the model's Python names) are unknown keys, as the schema says."""

from __future__ import annotations

import io
import re
import textwrap
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from collect import views
from collect.cli import app
from collect.engine.compiler import compile_policy

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


@pytest.fixture
def screen(monkeypatch):
    """What the views print on an 80-column console without a terminal (as to a pipe or a file)."""
    out = io.StringIO()
    monkeypatch.setattr(views, "_console", lambda: Console(file=out, width=80, highlight=False, color_system=None))
    return out


@pytest.fixture
def starter(tmp_path, monkeypatch):
    """A folder with `collect init`'s starter policy (policy.yaml), as the working directory."""
    monkeypatch.chdir(tmp_path)
    assert runner.invoke(app, ["init"]).exit_code == 0
    return tmp_path


def _steps(out: str) -> str:
    return out.split("Contact windows")[0]


def test_plan_shows_the_template_of_each_send_step(starter, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    result = runner.invoke(app, ["plan", "policy.yaml"])
    assert result.exit_code == 0, result.output
    # the starter policy's send steps use the templates `reminder` and `overdue` (docs/cli.md, collect plan)
    assert "email  [reminder]" in result.stdout and "sms > email  [overdue]" in result.stdout, result.stdout


POLICY = """\
policy: p
description: "[draft] reminders only"
timezone: UTC
fields:
  customer.tier: str
windows:
  default: { mon-fri: "08:00-19:00" }
templates:
  t: { email: { subject: s, body: b } }
segments:
  vip: customer.tier == "[bold]gold"
stages:
  s:
    when: invoice.days_past_due >= 1
    steps:
      - id: a
        at: due+1d
        if: customer.tier != "[red]x"
        send: email
        template: t
"""


def test_plan_shows_text_with_brackets_as_written(screen, tmp_path):
    (tmp_path / "policy.yaml").write_text(POLICY, encoding="utf-8")
    result = compile_policy(tmp_path / "policy.yaml")
    assert result.plan is not None, [d.render() for d in result.diagnostics.sorted()]
    views.show_plan(result.plan)
    out = screen.getvalue()
    assert "[draft] reminders only" in out  # the description, above the tables
    assert '"[red]x"' in _steps(out) and "[t]" in _steps(out)  # the steps table: a condition, a template
    assert '"[bold]gold"' in out.split("Segments")[1]  # the segments table


def test_compare_headings_show_file_names_with_brackets(screen):
    # `simulate --compare` heads its columns with the files' names: a folder `[v1]` is a name, not markup
    short = views.compare_labels("runs/[v1]/policy.yaml", "runs/[v2]/policy.yaml")
    views._print(views._console(), views._counter_table("Sent per channel", short,
                                                        [{"email": 3}, {"email": 5, "[sms]": 1}]))
    views._print(views._console(), views._kpi_table("KPIs", [""], short, [(["sent"], [3, 5], "failed")]))
    out = screen.getvalue()
    assert out.count("old: [v1]/policy.yaml") == 2 and out.count("new: [v2]/policy.yaml") == 2, out
    assert "[sms]" in out, out


def test_tick_and_tasks_show_markup_like_names_as_written(screen):
    import datetime as dt
    from types import SimpleNamespace

    summary = SimpleNamespace(customers=1, statuses={"[bold]sent": 1}, by_channel={"[x]": 1}, delivery={},
                              decisions=[])
    views.show_tick(summary, dry_run=False)
    views.show_tasks([{"priority": None, "queue": "[q]", "customer_id": "[c-1]", "invoice_ids": "[i]", "step": "[s]",
                       "reason": "the reason [bold]as written[/bold]", "restrictions": ["[red]x"],
                       "created_at": dt.datetime(2026, 1, 2, 3, 4, tzinfo=dt.timezone.utc)}])
    out = screen.getvalue()
    for value in ("[bold]sent", "delivered by [x]", "[q]", "[c-1]", "[i]", "[s]", "[bold]as", "written[/bold]", "[red]x"):
        assert value in out, out


def test_plan_keeps_queue_names_whole_at_80_columns(starter, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    result = runner.invoke(app, ["plan", "policy.yaml"])
    assert result.exit_code == 0, result.output
    steps = _steps(result.stdout)
    # the starter escalates to the queue `collections` (call-15, and overdue-5's on_exhausted)
    assert len(re.findall(r"\bcollections\b", steps)) == 2, steps
    # and its names fit 80 columns whole: the table is not printed wider for them
    assert max(map(len, steps.splitlines())) <= 80, steps


def test_plan_keeps_every_name_of_an_action_whole_and_folds_its_expression(screen, tmp_path):
    policy = textwrap.dedent("""\
        policy: p
        timezone: UTC
        windows:
          default: { mon-fri: "08:00-19:00" }
        templates:
          recordatorio_primer_aviso: { email: { subject: s, body: b }, sms: b }
        stages:
          s:
            when: invoice.days_past_due >= 1
            steps:
              - { id: a, at: due+1d, send: [sms, email], template: recordatorio_primer_aviso,
                  on_exhausted: { queue: cuentas-clave-corporativas } }
              - id: b
                at: due+2d
                escalate: { queue: cobranza-legal, priority: invoice.balance*customer.broken_promises_12m*1000 }
        """)
    (tmp_path / "policy.yaml").write_text(policy, encoding="utf-8")
    result = compile_policy(tmp_path / "policy.yaml")
    assert result.plan is not None, [d.render() for d in result.diagnostics.sorted()]
    views.show_plan(result.plan)
    steps = _steps(screen.getvalue())
    for name in ("[recordatorio_primer_aviso]", "cuentas-clave-corporativas", "cobranza-legal"):
        assert name in steps, steps
    assert "…" not in steps


def test_the_example_plans_keep_their_names_whole_at_80_columns(screen):
    for example in ("pe-b2b", "us-consumer"):
        views.show_plan(compile_policy(ROOT / "examples" / example / "policy.yaml").plan)
    steps = screen.getvalue()
    for name in ("collections", "cuentas-clave", "cobranza-legal", "derivacion-legal", "[promesa_incumplida]",
                 "[carta_notarial]", "agency-placement", "[validation_notice]"):
        assert re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", steps), name


STEP_POLICY = """\
policy: p
timezone: UTC
windows:
  default: { mon-fri: "08:00-19:00" }
templates:
  t: { email: { subject: s, body: b } }
stages:
  s:
    when: invoice.days_past_due >= 1
    steps:
      - { id: a, at: due+1d, KEY: invoice.amount > 10, send: email, template: t }
"""


@pytest.mark.parametrize("written, meant", [("if_", "if"), ("for_", "for")])
def test_a_steps_python_field_name_is_an_unknown_key(tmp_path, written, meant):
    (tmp_path / "wrong.yaml").write_text(STEP_POLICY.replace("KEY", written), encoding="utf-8")
    result = compile_policy(tmp_path / "wrong.yaml")
    [diag] = result.diagnostics.sorted()
    assert (diag.code, diag.span.line, diag.span.col) == ("unknown-key", 11, 30)
    assert diag.message == f"unknown key '{written}' in stages/s/steps/0"
    assert diag.hint == f"did you mean '{meant}'?"
    assert result.plan is None
    # the key as the file writes it still loads
    (tmp_path / "right.yaml").write_text(STEP_POLICY.replace("KEY", meant), encoding="utf-8")
    result = compile_policy(tmp_path / "right.yaml")
    assert result.plan is not None, [d.render() for d in result.diagnostics.sorted()]
    assert result.plan["stages"][0]["steps"][0][meant] == "invoice.amount > 10"

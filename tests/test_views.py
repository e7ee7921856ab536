"""The rich tables of the command line keep every value whole at 80 columns (a pipe, a file, a small
terminal): ids, keys, queue names, dates and times, amounts are never cut with '…'; free text wraps.
A table wider than the console only when its values alone do not fit (nothing is cut then either)."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest
from rich.console import Console
from rich.table import Table
from typer.testing import CliRunner

from collect import views
from collect.cli import app
from collect.engine.compiler import compile_policy
from collect.engine.explain import StepLine

ROOT = Path(__file__).resolve().parent.parent
UTC = dt.timezone.utc
runner = CliRunner()


@pytest.fixture
def screen(monkeypatch):
    """What the views print on an 80-column console without a terminal (as to a pipe or a file)."""
    out = io.StringIO()
    monkeypatch.setattr(views, "_console", lambda: Console(file=out, width=80, highlight=False, color_system=None))
    return out


TASKS = [
    {"priority": Decimal("78000000.00"), "queue": "cuentas-clave-corporativas", "customer_id": "NIT900123456-7",
     "invoice_ids": "FE-000123;FE-000124;FE-000125", "step": "od-15-escalate",
     "reason": "every channel failed: no valid phone, the email bounced twice and the customer opted out of "
               "whatsapp last week", "restrictions": ["opted out of whatsapp"],
     "created_at": dt.datetime(2026, 11, 24, 10, 30, tzinfo=UTC)},
    {"priority": None, "queue": "legal", "customer_id": "CC-1020304050", "invoice_ids": "FE-9", "step": "late",
     "reason": None, "restrictions": ["do not contact", "legal status sued"],
     "created_at": dt.datetime(2026, 11, 25, 8, 5, tzinfo=UTC)},
]


def test_tasks_table_keeps_ids_queues_and_times_whole_at_80_columns(screen):
    views.show_tasks(TASKS)
    out = screen.getvalue()
    assert "…" not in out
    for value in ("NIT900123456-7", "cuentas-clave-corporativas", "FE-000123", "FE-000124", "FE-000125",
                  "od-15-escalate", "78000000 ", "CC-1020304050", "2026-11-24", "10:30+00:00"):
        assert value in out, out
    # the reason wraps rather than being cut: all its words are there
    words = set(" ".join(out.replace("│", " ").split()).split())
    assert {"bounced", "twice", "whatsapp", "week"} <= words
    assert {"do", "not", "contact;", "legal", "sued"} <= words  # what the agent must know before calling


def test_a_table_is_as_wide_as_the_console_when_its_values_fit(screen):
    table = Table(title="t")
    views._key(table, "id")
    views._text(table, "message")
    table.add_row("NIT900123456-7", "a long message " * 20)
    views._print(views._console(), table)
    lines = screen.getvalue().splitlines()
    assert max(len(line) for line in lines) <= 80 and "NIT900123456-7" in screen.getvalue()
    assert sum("a long message" in line for line in lines) > 1  # wrapped


def test_a_table_whose_values_do_not_fit_is_printed_wider_not_cut(screen):
    table = Table()
    for i in range(4):
        views._key(table, f"id {i}")
    table.add_row(*(f"customer-{i}-{'x' * 20}" for i in range(4)))
    views._print(views._console(), table)
    out = screen.getvalue()
    assert "…" not in out and all(f"customer-{i}-{'x' * 20}" in out for i in range(4))


def test_explain_shows_whole_times_at_80_columns(screen):
    lines = [StepLine("payment_partial", "prom-reminder-1", "not applicable", "2026-11-24T10:30-05:00",
                      "the invoice is in stage 'tardia' now, so this step of stage 'temprana' does not apply"),
             StepLine("tardia", "tar-45", "escalated", "2026-12-10T10:00-05:00",
                      "task in queue cobranza-legal-corporativa, priority 49163.64")]
    views.show_explain({"invoice": "FE-000123", "customer": "NIT900123456-7", "balance": "49163.64"}, lines)
    out = screen.getvalue()
    assert "…" not in out
    for value in ("payment_partial", "prom-reminder-1", "2026-11-24", "10:30-05:00", "2026-12-10", "10:00-05:00",
                  "NIT900123456-7", "49,163.64"):
        assert value in out, out


def test_plan_tables_keep_step_ids_and_window_times_whole_at_80_columns(screen):
    views.show_plan(compile_policy(ROOT / "examples/pe-b2b/policy.yaml").plan)
    out = screen.getvalue()
    assert "…" not in out
    for value in ("prom-rec", "promise-1d", "08:00-19:00", "07:00-20:00", "09:00-18:00", "mon-fri", "cap", "tem-4f"):
        assert value in out, out
    caps = out[out.index("Caps"):out.index("Segments")]
    assert "7d" in caps and "5d" in caps and "1w" not in caps  # as the policy writes them, not the plan's 1w


def test_windows_are_grouped_by_days_of_the_same_hours():
    assert views._day_groups({"mon": [(480, 1140)], "tue": [(480, 1140)], "wed": [(480, 1140)],
                              "thu": [(480, 1140)], "fri": [(480, 1140)], "sat": [(540, 780)]}) == [
        ("mon-fri", "08:00-19:00"), ("sat", "09:00-13:00"), ("sun", "closed")]


REPORT = {
    "date": "2026-03-31", "period": {"first_day": "2026-03-02", "last_day": "2026-03-31", "days": 30},
    "aging": {"current": "17250000", "1-30": "38150000.50", "31-60": "148000000.00", "61-90": "0", "90+": "0"},
    "receivables": "203400000.50", "dso_days": "33.3",
    "cei": {"opening_receivables": "1800", "invoiced": "200", "closing_receivables": "850", "closing_current": "400",
            "cei_pct": "71.9"},
    "recovery": {"past_due_at_start": "1300", "collected": "1000", "recovery_rate_pct": "76.9"},
    "promises": {"made": 4, "due": 3, "kept": 2, "broken": 1, "kept_rate_pct": "66.7"},
    "contacts": {"email": {"sent": 3, "failed": 1, "sending": 1, "delivered": 2, "delivery_rate_pct": "50.0",
                           "failure_rate_pct": "25.0", "cost": "0", "cost_per_contact": "0.0000"}},
    "deferrals": {"cap:any-4-per-1w": 2}, "tasks_by_queue": {"cuentas-clave-corporativas": 3}, "currencies": ["PEN"],
}


def test_report_table_keeps_amounts_whole_at_80_columns(screen):
    views.show_report(REPORT)
    out = screen.getvalue()
    assert "…" not in out
    for value in ("17,250,000.00", "38,150,000.50", "148,000,000.00", "203,400,000.50", "1,800.00",
                  "cap:any-4-per-1w", "cuentas-clave-corporativas"):
        assert value in out, out


def test_simulation_tables_keep_values_whole_at_80_columns(screen, tmp_path):
    from collect.engine.simrun import load_portfolio, run_simulation, summarize

    example = ROOT / "examples/pe-b2b"
    plan = compile_policy(example / "policy.yaml").plan
    book = load_portfolio(plan, example / "portfolio.csv", payments=example / "payments.csv")
    result = run_simulation(plan, book, start=dt.date(2026, 11, 15), days=20, behavior="historic")
    summary = summarize(result, costs={"email": 0.001, "sms": 0.045}, kpis=True)
    old, new = tmp_path / "production" / "policy.yaml", tmp_path / "candidate" / "policy.yaml"
    views.show_simulation([old, new], [result, result], [summary, summary])
    out = screen.getvalue()
    assert "…" not in out
    headings = [line for line in out.splitlines() if "┃" in line]
    assert any("old:" in line and "new:" in line for line in headings)  # the headings break between words
    assert any("production/policy.yaml" in line and "candidate/policy.yaml" in line for line in headings)
    assert "cap:whatsapp-2-per-1w" in out and "cuentas-clave" in out and "2026-W47" in out


def test_tasks_piped_keep_whole_ids(tmp_path):
    """`collect tasks > file`: no terminal, no $COLUMNS, so rich's 80 columns; the ids stay whole."""
    (tmp_path / "p.yaml").write_text(textwrap.dedent("""\
        policy: t
        timezone: America/Bogota
        windows: { default: { mon-fri: "08:00-18:00" } }
        stages:
          s:
            when: invoice.days_past_due >= 1
            steps:
              - { id: call, at: due+1d, escalate: { queue: cuentas-clave-corporativas, priority: invoice.balance } }
        """))
    (tmp_path / "p.csv").write_text("invoice_id,customer_id,amount,due_date\n"
                                    "FE-000123,NIT900123456-7,78000000,2026-11-10\n")
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env["COLLECT_DB"] = f"sqlite:///{tmp_path}/c.db"

    def cli(*args):
        done = subprocess.run([sys.executable, "-m", "collect", *args], cwd=tmp_path, capture_output=True, text=True,
                              env=env, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, done.stderr
        return done.stdout
    cli("import", "invoices", "p.csv")
    cli("run", "p.yaml", "--now", "2026-11-12T15:00:00Z", "-q")
    out = cli("tasks")
    assert "…" not in out
    for value in ("NIT900123456-7", "cuentas-clave-corporativas", "FE-000123", "78000000", "2026-11-12"):
        assert value in out, out
    # and as JSON, with JSON's own types: what a CRM or a script reads without parsing our text
    (task,) = json.loads(cli("tasks", "--format", "json"))
    assert task["priority"] == 78000000 and task["invoice_ids"] == ["FE-000123"]
    assert dt.datetime.fromisoformat(task["created_at"]).tzinfo is not None and "T" in task["created_at"]


@pytest.mark.parametrize("old, new, labels", [
    ("a/policy.yaml", "b/new.yaml", ["old: policy.yaml", "new: new.yaml"]),
    ("prod/policy.yaml", "review/policy.yaml", ["old: prod/policy.yaml", "new: review/policy.yaml"]),
    ("x/prod/policy.yaml", "y/prod/policy.yaml", ["old: x/prod/policy.yaml", "new: y/prod/policy.yaml"]),
    ("policy.yaml", "policy.yaml", ["old: policy.yaml", "new: policy.yaml"]),
])
def test_compare_labels_name_the_files_and_tell_same_names_apart(tmp_path, monkeypatch, old, new, labels):
    monkeypatch.chdir(tmp_path)
    assert views.compare_labels(Path(old), Path(new)) == labels


def test_simulate_compare_reads_as_the_change_from_old_to_new(tmp_path):
    """POLICY is the candidate, --compare the baseline: a change that drops sms shows sms old 1, new 0, -1."""
    head = ("timezone: America/Lima\ncurrency: PEN\nwindows: { default: { mon-sun: \"08:00-19:00\" } }\n"
            "templates: { m: { email: { subject: s, body: b }, sms: t } }\n")
    steps = ("stages: { early: { when: invoice.days_past_due >= 1, steps: [ "
             "{ id: a-1, at: due+1d, send: %s, template: m } ] } }\n")
    (tmp_path / "policy.yaml").write_text("policy: a\n" + head + steps % "sms")
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "policy.yaml").write_text("policy: a\n" + head + steps % "email")
    (tmp_path / "p.csv").write_text("invoice_id,customer_id,amount,due_date,email,phone\n"
                                    "F1,C1,1000,2026-11-15,a@acme.pe,+51911111111\n")
    result = runner.invoke(app, ["simulate", str(tmp_path / "new" / "policy.yaml"), "--compare",
                                 str(tmp_path / "policy.yaml"), "--portfolio", str(tmp_path / "p.csv"),
                                 "--start", "2026-11-15", "--days", "3"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    out = result.output
    header = next(line for line in out.splitlines() if "┃" in line)
    assert [c.strip() for c in header.strip()[1:-1].split("┃")] == [
        "", f"old: {tmp_path.name}/policy.yaml", "new: new/policy.yaml", "new - old"]
    sms = next(line for line in out.splitlines() if line.startswith("│ sms "))
    assert [c.strip() for c in sms.strip()[1:-1].split("│")] == ["sms", "1", "0", "-1"]
    assert out.index("old  ") < out.index("new  ")  # the runs are named in the same order


def test_the_plan_hash_is_printed_whole_on_one_line_in_a_narrow_terminal(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr(views, "_console", lambda: Console(file=out, width=60, highlight=False, color_system=None))
    plan = compile_policy(ROOT / "examples/us-consumer/policy.yaml").plan
    views.show_plan(plan)
    assert f"plan {plan.plan_hash}" in out.getvalue().splitlines()  # copied from the terminal in one piece

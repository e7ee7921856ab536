"""Helpers for command-line tests: a project folder with a policy and an imported portfolio."""

from __future__ import annotations

from typer.testing import CliRunner

from collect.cli import app


# A policy that reads any portfolio (one email step for every invoice) and a one-invoice portfolio for it,
# for the tests about the files and options around a simulation rather than about the policy.
EMAIL_POLICY = """\
policy: t
timezone: UTC
currency: USD
windows:
  default: { mon-sun: "08:00-20:00" }
  holidays: open
templates:
  a: { email: { subject: "a", body: "b" } }
stages:
  s:
    when: invoice.days_past_due >= -100
    steps:
      - { id: d1, at: due+1d, send: email, template: a }
"""
EMAIL_PORTFOLIO = "invoice_id,customer_id,amount,due_date,email\nA,C1,1000,2026-03-02,a@example.com\n"


def cli_project(tmp_path, monkeypatch, policy: str, portfolio: str):
    """policy.yaml and an imported portfolio in tmp_path (the working folder); returns a function that runs
    `collect` on that store (`.db` is its URL)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "policy.yaml").write_text(policy, encoding="utf-8")
    (tmp_path / "p.csv").write_text(portfolio, encoding="utf-8")
    db = f"sqlite:///{tmp_path / 'c.db'}"
    cli = CliRunner()
    assert cli.invoke(app, ["import", "invoices", "p.csv", "--db", db, "-q"]).exit_code == 0

    def collect(*args):
        return cli.invoke(app, [*args, "--db", db])

    collect.db = db
    return collect


def cli_simulate(tmp_path, policy: str, portfolio: str, *args, files: dict | None = None):
    """`collect simulate` on policy.yaml and p.csv written in tmp_path, with other files written there too
    (name -> text); `{tmp}` in an argument stands for tmp_path."""
    (tmp_path / "policy.yaml").write_text(policy, encoding="utf-8")
    (tmp_path / "p.csv").write_text(portfolio, encoding="utf-8")
    for name, text in (files or {}).items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    return CliRunner().invoke(app, ["simulate", str(tmp_path / "policy.yaml"), "--portfolio", str(tmp_path / "p.csv"),
                                    *[a.replace("{tmp}", str(tmp_path)) for a in args]])

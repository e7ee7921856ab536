"""Ticks go forward: `collect run --now` before the store's last tick is refused, writing and sending
nothing. Before, a re-import between the two re-woke its customers and the late tick sent them the
reminders meant for that earlier moment."""

from __future__ import annotations

from sqlalchemy import func, select

from clitools import cli_project
from collect.engine import store as s

POLICY = """\
policy: t
timezone: UTC
currency: USD
windows:
  default: { mon-sun: "08:00-20:00" }
  holidays: open
templates:
  a: { email: { subject: "a", body: "b" } }
stages:
  pre:
    when: invoice.days_past_due <= 0
    steps:
      - { id: remind, at: due-3d, send: email, template: a }
  late:
    when: invoice.days_past_due > 0
    steps:
      - { id: late, at: due+1d, send: email, template: a }
"""
PORTFOLIO = "invoice_id,customer_id,amount,due_date,email\nA,C1,1000,2026-03-10,a@example.com\n"


def _sent(db) -> list[str]:
    with s.connect(db).connect() as conn:
        return sorted(conn.execute(select(s.contacts.c.step).where(s.contacts.c.status == "sent")).scalars())


def _ticks(db) -> int:
    with s.connect(db).connect() as conn:
        return conn.execute(select(func.count()).select_from(s.ticks)).scalar()


def test_a_tick_before_the_last_one_is_refused_and_sends_nothing(tmp_path, monkeypatch):
    collect = cli_project(tmp_path, monkeypatch, POLICY, PORTFOLIO)
    assert collect("run", "policy.yaml", "--now", "2026-03-12T12:00:00Z", "-q").exit_code == 0
    assert _sent(collect.db) == ["late"]  # the reminder's moment was over: caught up by the later step
    assert collect("import", "invoices", "p.csv", "-q").exit_code == 0  # the daily re-import wakes C1 again
    for extra in ((), ("--dry-run",)):
        back = collect("run", "policy.yaml", "--now", "2026-03-07T12:00:00Z", "-q", *extra)
        assert back.exit_code == 2, back.output
        assert ("error: --now 2026-03-07T12:00:00+00:00 is before the store's last tick, at "
                "2026-03-12T12:00:00+00:00: a tick cannot go back in time") in back.output
    assert _sent(collect.db) == ["late"] and _ticks(collect.db) == 1
    outbox = (tmp_path / "outbox" / "email.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(outbox) == 1


def test_the_same_moment_again_and_later_moments_run(tmp_path, monkeypatch):
    collect = cli_project(tmp_path, monkeypatch, POLICY, PORTFOLIO)
    for now in ("2026-03-07T12:00:00Z", "2026-03-07T12:00:00Z", "2026-03-11T12:00:00Z"):
        assert collect("run", "policy.yaml", "--now", now, "-q").exit_code == 0
    assert _sent(collect.db) == ["late", "remind"] and _ticks(collect.db) == 3

"""`calendar.holidays_by: customer`: each customer's own country's public holidays close the windows.

2026-11-16 (Monday) is a holiday in Colombia only (Independence of Cartagena, observed), and 2026-12-09
(Wednesday) in Peru only (Battle of Ayacucho): the two calendars tell the policies apart."""

from __future__ import annotations

import datetime as dt

import pytest
from zoneinfo import ZoneInfo

from collect.engine.compiler import compile_policy
from collect.engine.explain import _instances
from coretools import customer, invoice, rows, run, runtime

POLICY = """
calendar: {{ country: PE{extra} }}
stages:
  early:
    when: invoice.days_past_due > 0
    steps:
      - {{ id: e1, at: due+1d, send: email, template: m }}
"""


def _sent_days(rt, people, start="2026-11-10", days=40):
    result = run(rt, people, start, days)
    return {(cid, at[:10]) for cid in {p.customer.id for p in people}
            for at, step, channel, ids, reason in rows(result) if ids[0].startswith(cid)}, result


def _people():
    colombian = customer("co", country="CO", timezone="America/Bogota")
    peruvian = customer("pe", country="PE", timezone="America/Lima")
    nowhere = customer("xx", country=None, timezone="America/Lima")  # no country: the policy's (PE)
    for p in (colombian, peruvian, nowhere):
        invoice(p, f"{p.customer.id}-nov", "2026-11-15")  # e1 on Monday 16 November
        invoice(p, f"{p.customer.id}-dec", "2026-12-08")  # e1 on Wednesday 9 December
    return [colombian, peruvian, nowhere]


def test_each_customer_gets_the_holidays_of_their_own_country(tmp_path):
    rt = runtime(POLICY.format(extra=", holidays_by: customer"), tmp_path)
    sent, result = _sent_days(rt, _people())
    assert sent == {("co", "2026-11-17"), ("co", "2026-12-09"),  # Cartagena closes Colombia, not Peru
                    ("pe", "2026-11-16"), ("pe", "2026-12-10"),  # Ayacucho closes Peru, not Colombia
                    ("xx", "2026-11-16"), ("xx", "2026-12-10")}
    deferred = {(ids[0], reason) for at, step, channel, ids, reason in rows(result, "deferred")}
    assert deferred == {("co-nov", "holiday"), ("pe-dec", "holiday"), ("xx-dec", "holiday")}


def test_by_default_everyone_gets_the_policy_countrys_holidays(tmp_path):
    rt = runtime(POLICY.format(extra=""), tmp_path)
    sent, _ = _sent_days(rt, _people())
    assert sent == {(cid, day) for cid in ("co", "pe", "xx") for day in ("2026-11-16", "2026-12-10")}


def test_extra_holidays_close_every_country(tmp_path):
    rt = runtime(POLICY.format(extra=", holidays_by: customer, extra_holidays: [2026-11-17]"), tmp_path)
    sent, _ = _sent_days(rt, _people()[:1])
    assert ("co", "2026-11-18") in sent  # Cartagena in Colombia, then the company's closing day


def test_a_country_the_holidays_package_has_no_calendar_for_has_only_the_extra_holidays(tmp_path):
    rt = runtime(POLICY.format(extra=", holidays_by: customer, extra_holidays: [2026-12-10]"), tmp_path)
    canary = customer("ic", country="IC", timezone="Atlantic/Canary")  # ISO-reserved: no table in the package
    invoice(canary, "ic-dec", "2026-12-08")
    invoice(canary, "ic-dec2", "2026-12-09")
    sent, _ = _sent_days(rt, [canary])
    assert sent == {("ic", "2026-12-09"), ("ic", "2026-12-11")}


def test_a_trigger_without_a_time_is_midnight_on_the_customers_holiday(tmp_path):
    """A step with no time triggers at its window's opening that day, or at midnight on a day with no
    opening: the customer's holiday decides which, in the core and in `collect explain` alike."""
    rt = runtime(POLICY.format(extra=", holidays_by: customer"), tmp_path)
    bogota = ZoneInfo("America/Bogota")
    for country, expected in (("CO", "2026-11-16 00:00"), ("PE", "2026-11-16 08:00")):
        person = customer("c", country=country, timezone="America/Bogota")
        bill = invoice(person, "c-nov", "2026-11-15")
        now = dt.datetime(2026, 11, 20, tzinfo=bogota)
        triggers = [trigger for owner, step, key, trigger, occ in _instances(rt, person, bill, bogota, now)]
        assert [t.astimezone(bogota).strftime("%Y-%m-%d %H:%M") for t in triggers] == [expected], country


def test_the_key_is_in_the_plan_only_when_it_is_set(tmp_path):
    """Policies written before the key keep their plan_hash (the store decides everyone again on a new one)."""
    base = "policy: t\ntimezone: America/Lima\ncalendar: { country: PE%s }\nstages:\n  s:\n    when: invoice.days_past_due > 0\n    steps:\n      - { id: a, at: due, escalate: { queue: q } }\n"
    plain, explicit, by_customer = (tmp_path / "a.yaml", tmp_path / "b.yaml", tmp_path / "c.yaml")
    plain.write_text(base % "", encoding="utf-8")
    explicit.write_text(base % ", holidays_by: policy", encoding="utf-8")
    by_customer.write_text(base % ", holidays_by: customer", encoding="utf-8")
    plans = [compile_policy(p).plan for p in (plain, explicit, by_customer)]
    assert "holidays_by" not in plans[0].doc["calendar"]
    assert plans[0].plan_hash == plans[1].plan_hash != plans[2].plan_hash
    assert plans[2].doc["calendar"]["holidays_by"] == "customer"


@pytest.mark.parametrize("value", ["customers", "country", "true"])
def test_an_unknown_value_is_a_compile_error(tmp_path, value):
    path = tmp_path / "p.yaml"
    path.write_text(f"policy: t\ntimezone: America/Lima\ncalendar: {{ country: PE, holidays_by: {value} }}\n"
                    "stages:\n  s:\n    when: invoice.days_past_due > 0\n    steps:\n      - { id: a, at: due, escalate: { queue: q } }\n", encoding="utf-8")
    result = compile_policy(path)
    assert result.plan is None
    text = "\n".join(d.render() for d in result.diagnostics.sorted())
    assert "p.yaml:3:" in text and "'policy' or 'customer'" in text


def test_collect_run_keeps_each_customers_holidays_as_simulate_does(tmp_path, monkeypatch):
    """Hourly ticks of `collect run` against a store send on the days the simulation says."""
    from sqlalchemy import select

    from collect.engine import store as s
    from collect.engine.channels import Channels
    from collect.engine.portfolio import ColumnMap
    from collect.engine.runner import Runner
    from collect.engine.simrun import load_portfolio, run_simulation
    from collect.engine.storeio import import_file

    monkeypatch.chdir(tmp_path)
    policy = tmp_path / "policy.yaml"
    policy.write_text("policy: t\ntimezone: America/Lima\ncurrency: PEN\n"
                      "windows: { default: { mon-fri: \"08:00-19:00\" } }\n"
                      "templates: { m: { email: { subject: s, body: b } } }\n"
                      + POLICY.format(extra=", holidays_by: customer"), encoding="utf-8")
    plan = compile_policy(policy).plan
    book = tmp_path / "p.csv"
    book.write_text("invoice_id,customer_id,amount,due_date,email,timezone,country\n"
                    "F1,CO1,100,2026-11-15,a@x.example,America/Bogota,CO\n"
                    "F2,PE1,100,2026-11-15,b@x.example,America/Lima,PE\n", encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'c.db'}"
    import_file(s.connect(url), "invoices", book, fields={}, colmap=ColumnMap(), default_currency="PEN")
    runner = Runner(s.connect(url), plan, Channels({"email": {"adapter": "file", "path": str(tmp_path / "out.jsonl")}}))
    start = dt.datetime(2026, 11, 15, 5, tzinfo=dt.timezone.utc)
    for hour in range(24 * 4):
        runner.tick(start + dt.timedelta(hours=hour))
    with s.connect(url).connect() as conn:
        ran = sorted((r.customer_id, r.at.astimezone(ZoneInfo(r.tz)).date().isoformat())
                     for r in conn.execute(select(s.contacts).where(s.contacts.c.status == "sent")))
    simulated = run_simulation(plan, load_portfolio(plan, book), start=dt.date(2026, 11, 15), days=4)
    assert ran == [("CO1", "2026-11-17"), ("PE1", "2026-11-16")]
    assert ran == sorted((d.customer_id, d.at.date().isoformat()) for d in simulated.decisions if d.status == "sent")

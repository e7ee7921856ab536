"""The history that caps and compliance guards count (load_states -> state.sent) holds every contact that
reached the provider: Reg F counts calls placed, "7 attempts per 7 days" (SPEC 5; 12 CFR 1006.14(b)(2)),
answered or not. A contact the provider took and later reported `failed` (no answer) or `bounced` still
counts; one the provider refused when it was handed over (a permanent error, retries used up) never
reached the network and does not."""

from __future__ import annotations

import datetime as dt
import textwrap
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import insert, select

from collect.adapters.base import DeliveryResult
from collect.engine import store as s
from collect.engine.channels import Channels, Retry
from collect.engine.compiler import compile_policy
from collect.engine.portfolio import ColumnMap
from collect.engine.runner import Runner
from collect.engine.storeio import import_file, load_states

NY = ZoneInfo("America/New_York")
UTC = dt.timezone.utc
START = dt.datetime(2026, 11, 3, 8, 30, tzinfo=NY)

OK = DeliveryResult.sent("call-1")
REFUSED = DeliveryResult.permanent("21211", "The 'To' number is not a valid phone number.")


class Scripted:
    """A channel whose answers are given in advance, one per send (the last repeats)."""

    def __init__(self, *answers: DeliveryResult):
        self.answers, self.sent = list(answers), []

    def send(self, message):
        self.sent.append(message)
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def _runner(db_url, tmp_path, calls: int, *answers: DeliveryResult) -> tuple[Runner, object]:
    """A Reg F policy with `calls` call steps, four a day at 09:00, 12:00, 15:00 and 18:00 from due+1d,
    about one debt; the voice provider answers `answers`."""
    steps = "".join(f"      - {{ id: c{n}, at: due+{1 + n // 4}d {9 + 3 * (n % 4):02d}:00, send: voice, template: m }}\n"
                    for n in range(calls))
    policy = tmp_path / "policy.yaml"
    policy.write_text(textwrap.dedent("""\
        policy: regf
        timezone: America/New_York
        currency: USD
        calendar: { country: US }
        compliance: [us-reg-f]
        windows:
          default: { mon-sun: "08:00-21:00" }
          holidays: open
        catch_up: all
        templates:
          m:
            voice: "Please call us."
        stages:
          s:
            when: true
            steps:
        """) + steps)
    plan = compile_policy(policy).plan
    assert plan is not None
    engine = s.connect(db_url)
    inv = tmp_path / "i.csv"
    inv.write_text("invoice_id,customer_id,amount,due_date,phone,timezone,country\n"
                   "A,C1,100,2026-11-02,+12125550123,America/New_York,US\n")
    import_file(engine, "invoices", inv, fields={}, colmap=ColumnMap(), default_tz="America/New_York")
    channels = Channels(retry=Retry(attempts=1, backoff=60))
    channels.instances.update({"voice": Scripted(*answers), "agent": Scripted(OK)})
    return Runner(engine, plan, channels), engine


def _hourly(run: Runner, engine, tmp_path, hours: int, report: str | None) -> None:
    """Tick every hour; a few minutes after each call the provider reports it `report` (None: nothing)."""
    reported: set[str] = set()
    for hour in range(hours):
        now = START + dt.timedelta(hours=hour)
        run.tick(now)
        with engine.connect() as conn:
            new = [r.key for r in conn.execute(select(s.contacts.c.key).where(
                s.contacts.c.status == "sent", s.contacts.c.channel == "voice")) if r.key not in reported]
        if new and report:
            ev = tmp_path / f"e{hour}.csv"
            at = (now + dt.timedelta(minutes=5)).isoformat()
            ev.write_text("at,channel,type,contact_id,detail\n" + "".join(
                f"{at},voice,{report},{k},no answer\n" for k in new))
            import_file(engine, "events", ev, fields={}, colmap=ColumnMap(), default_tz="America/New_York")
            reported.update(new)


def _voice(engine) -> list[tuple[str, str, str | None]]:
    """(step, status, delivery report) of the calls handed to the provider (a step that failed for good
    leaves a row of its own, never handed over), and of the deferred ones."""
    with engine.connect() as conn:
        return [(r.step, r.status, r.delivery) for r in conn.execute(
            select(s.contacts).where(s.contacts.c.channel == "voice").order_by(s.contacts.c.id))
            if r.attempts or r.status == "deferred"]


@pytest.mark.parametrize("report", [None, "failed", "bounced"])
def test_calls_reported_failed_after_they_were_placed_count_toward_seven_in_seven_days(db_url, tmp_path, report):
    run, engine = _runner(db_url, tmp_path, 8, OK)
    _hourly(run, engine, tmp_path, 48, report)
    placed = run.channels("voice").sent
    assert len(placed) == 7, f"{len(placed)} calls placed about debt A within 2 days"
    assert _voice(engine) == [(f"c{n}", "failed" if report else "sent", report) for n in range(7)] + [
        ("c7", "deferred", None)]
    with engine.connect() as conn:
        reason = conn.execute(select(s.contacts.c.reason).where(s.contacts.c.step == "c7")).scalar()
    assert reason.startswith("compliance:us-reg-f:")  # the guard held it (calls-7-in-7-days)


def test_calls_the_provider_refused_when_handed_over_do_not_count(db_url, tmp_path):
    """Two calls refused at send time (an invalid number, fixed since) reached nobody: the seven calls
    placed after them all go out, nine steps in all, none deferred."""
    run, engine = _runner(db_url, tmp_path, 9, REFUSED, REFUSED, OK)
    _hourly(run, engine, tmp_path, 72, None)
    assert _voice(engine) == [("c0", "failed", None), ("c1", "failed", None)] + [
        (f"c{n}", "sent", None) for n in range(2, 9)]
    assert len(run.channels("voice").sent) == 9


def test_load_states_counts_every_contact_that_reached_the_provider(db_url):
    """Row by row: sent, being sent, and reported failed or bounced after the provider took it count; a
    refusal at send time, a withdrawn, deferred or skipped contact, a webhook and an agent task do not."""
    engine = s.connect(db_url)
    at = dt.datetime(2026, 11, 3, 14, tzinfo=UTC)
    rows = [  # (key, channel, status, delivery)
        ("sent", "sms", "sent", None), ("delivered", "sms", "sent", "delivered"), ("sending", "voice", "sending", None),
        ("no-answer", "voice", "failed", "failed"), ("bounce", "email", "failed", "bounced"),
        ("refused", "voice", "failed", None), ("withdrawn", "voice", "skipped", None),
        ("deferred", "voice", "deferred", None), ("skipped", "sms", "skipped", None),
        ("hook", "webhook", "sent", None), ("task", "agent", "escalated", None),
    ]
    with engine.begin() as conn:
        conn.execute(insert(s.customers), [{"id": "C1", "optouts": [], "attrs": {}, "do_not_contact": False}])
        conn.execute(insert(s.invoices), [{"id": "A", "customer_id": "C1", "amount": 1, "balance": 1,
                                           "due_date": dt.date(2026, 11, 2), "attrs": {}}])
        conn.execute(insert(s.contacts), [
            {"key": key, "policy": "p", "plan_hash": "h", "customer_id": "C1", "invoice_ids": "A", "channel": channel,
             "status": status, "delivery": delivery, "at": at + dt.timedelta(minutes=n), "tz": "UTC",
             "updated_at": at, "fallbacks": []} for n, (key, channel, status, delivery) in enumerate(rows)])
    with engine.connect() as conn:
        sent = load_states(conn, ["C1"])["C1"].sent
    assert [(c.at - at, c.channel) for c in sent] == [
        (dt.timedelta(minutes=0), "sms"), (dt.timedelta(minutes=1), "sms"), (dt.timedelta(minutes=2), "voice"),
        (dt.timedelta(minutes=3), "voice"), (dt.timedelta(minutes=4), "email")]

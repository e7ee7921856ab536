"""A contact delivered at a later tick than its decision (a provider retry, a crashed tick's row) goes
out only where it could have been decided then: inside its channel's window, within the law's hours
and frequency, not during the pause after a conversation. Else it waits, still `sending`, for the
moment it may; once delivered, its `at` is when it went out. Every test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import textwrap
from zoneinfo import ZoneInfo

import pytest
from coretools import Flaky
from runtools import ONE_A_DAY, REFUSED, Provider, sms_store
from sqlalchemy import select

from collect.engine import store as s
from collect.engine.channels import Channels
from collect.engine.compiler import compile_policy
from collect.engine.portfolio import ColumnMap
from collect.engine.runner import Runner
from collect.engine.storeio import import_file

NY = ZoneInfo("America/New_York")
POLICY = """\
    policy: late
    timezone: America/New_York
    currency: USD
    calendar: {{ country: US }}
    compliance: {compliance}
    windows:
      default: {{ mon-sun: "{window}" }}
      holidays: open
    templates:
      m:
        voice: "Please call us about invoice {{{{ invoice.number }}}}."
    stages:
      s:
        when: true
        steps:
          - {{ id: call-1, at: due+1d {at}, send: voice, template: m }}
    """




@pytest.fixture
def store(db_url, tmp_path):
    """(engine, provider, tick(local y, m, d, h, min)) for a policy with the given compliance, window and time."""

    def make(compliance: str, window: str, at: str):
        path = tmp_path / "policy.yaml"
        path.write_text(textwrap.dedent(POLICY.format(compliance=compliance, window=window, at=at)))
        compiled = compile_policy(path)
        assert compiled.plan is not None, [str(d) for d in compiled.diagnostics.items]
        plan = compiled.plan
        engine = s.connect(db_url)
        csv = tmp_path / "i.csv"
        csv.write_text("invoice_id,customer_id,amount,due_date,phone,timezone,country\n"
                       "A,C1,100,2026-11-02,+12125550123,America/New_York,US\n")
        import_file(engine, "invoices", csv, fields={}, colmap=ColumnMap(), default_tz="America/New_York")
        channels = Channels()
        provider = channels.instances["voice"] = Flaky()
        runner = Runner(engine, plan, channels)

        def tick(*moment):
            provider.now = dt.datetime(*moment, tzinfo=NY)
            return runner.tick(provider.now)
        return engine, provider, tick
    return make


def contact(engine):
    with engine.connect() as conn:
        return conn.execute(select(s.contacts)).one()


def test_a_retry_after_the_law_s_hours_waits_for_the_next_lawful_hour_and_is_logged_when_it_went(store):
    engine, provider, tick = store("[us-reg-f]", "00:00-23:59", "20:30")
    tick(2026, 11, 3, 20, 30)  # decided within Reg F's 08:00-21:00; the provider answers 503
    assert tick(2026, 11, 3, 21, 30).statuses["held"] == 1  # the retry's time has come, the law's hours have not
    for hour in (22, 23):
        tick(2026, 11, 3, hour, 30)
    assert provider.tries == 1 and provider.placed == []
    waiting = contact(engine)
    assert waiting.status == "sending" and "held by compliance:us-reg-f" in waiting.reason
    assert waiting.next_attempt_at.astimezone(NY) == dt.datetime(2026, 11, 4, 8, 0, tzinfo=NY)
    tick(2026, 11, 4, 7, 30)
    assert provider.placed == []
    tick(2026, 11, 4, 8, 0)
    assert provider.placed == [dt.datetime(2026, 11, 4, 8, 0, tzinfo=NY)]
    sent = contact(engine)
    assert (sent.status, sent.at.astimezone(NY)) == ("sent", dt.datetime(2026, 11, 4, 8, 0, tzinfo=NY))
    assert sent.decided_reason == "" and sent.attempts == 2


def test_a_retry_outside_the_policy_s_own_window_waits_for_it(store):
    engine, provider, tick = store("[]", "09:00-18:00", "17:30")
    tick(2026, 11, 3, 17, 30)
    summary = tick(2026, 11, 3, 18, 30)
    assert (provider.tries, summary.statuses["held"]) == (1, 1)
    assert contact(engine).next_attempt_at.astimezone(NY) == dt.datetime(2026, 11, 4, 9, 0, tzinfo=NY)
    tick(2026, 11, 4, 9, 0)
    assert provider.placed == [dt.datetime(2026, 11, 4, 9, 0, tzinfo=NY)]


def test_a_retry_after_a_conversation_waits_out_reg_f_s_seven_days(store, tmp_path):
    engine, provider, tick = store("[us-reg-f]", "08:00-20:00", "10:00")
    tick(2026, 11, 3, 10, 0)  # decided; 503
    events = tmp_path / "e.csv"  # the debtor calls in at 10:15 and talks about the debt
    events.write_text("at,channel,type,customer_id\n2026-11-03T10:15:00-05:00,voice,conversation,C1\n")
    import_file(engine, "events", events, fields={}, colmap=ColumnMap(), default_tz="America/New_York")
    tick(2026, 11, 3, 11, 0)
    assert provider.placed == [] and "held by compliance:us-reg-f" in contact(engine).reason
    for day in range(4, 10):
        tick(2026, 11, day, 12, 0)
    assert provider.placed == []
    tick(2026, 11, 10, 12, 0)  # the conversation day counts as day 1: calls may resume on the 8th day
    assert len(provider.placed) == 1


def test_a_late_message_is_built_as_of_the_moment_it_goes(store):
    """WhatsApp's 24-hour window, and a template's dates, are judged when the message goes, not when
    it was decided: a retry hours later sees the later moment."""
    engine, provider, tick = store("[]", "00:00-23:59", "10:00")
    seen = []
    first_send = provider.send

    def send(message):
        seen.append(message.metadata["now"])
        return first_send(message)
    provider.send = send
    tick(2026, 11, 3, 10, 0)
    tick(2026, 11, 3, 13, 0)
    assert seen == [dt.datetime(2026, 11, 3, 10, 0, tzinfo=NY), dt.datetime(2026, 11, 3, 13, 0, tzinfo=NY)]


CAPPED = """\
    policy: c
    timezone: America/Lima
    windows: { default: { mon-sun: "00:00-23:59" }, holidays: open }
    caps:
      - { channel: any, max: 1, per: 1d }
    templates: { m: { sms: "Hola", email: { subject: "s", body: "b" } } }
    stages:
      s:
        when: true
        steps:
          - { id: s1, at: due+1d 10:00, send: sms, template: m }
          - { id: e2, at: due+2d 10:00, send: email, template: m }
    """


def test_a_late_delivery_keeps_the_policy_s_caps_at_the_moment_it_goes(db_url, tmp_path, monkeypatch):
    """s1's SMS waits for its account to be fixed; meanwhile e2's email goes out. Sent then, s1 would be
    a second contact within a day of it: it waits until the cap frees up."""
    monkeypatch.chdir(tmp_path)
    lima = ZoneInfo("America/Lima")
    path = tmp_path / "policy.yaml"
    path.write_text(textwrap.dedent(CAPPED))
    plan = compile_policy(path).plan
    engine = s.connect(db_url)
    (tmp_path / "i.csv").write_text("invoice_id,customer_id,amount,due_date,phone,email\n"
                                    "A,C1,100,2026-11-02,+51987654321,ana@example.pe\n")
    import_file(engine, "invoices", tmp_path / "i.csv", fields={}, colmap=ColumnMap(), default_tz="America/Lima")
    channels = Channels()
    provider = channels.instances["sms"] = channels.instances["email"] = Provider(down=REFUSED)
    runner = Runner(engine, plan, channels)

    def tick(day, hour, minute=0):
        provider.now = dt.datetime(2026, 11, day, hour, minute, tzinfo=lima)
        return runner.tick(provider.now)
    tick(3, 10)  # s1 decided on SMS: the account is refused, it waits
    provider.down = None  # email works again
    channels.instances["sms"] = Provider(down=REFUSED)  # the SMS account is still refused
    tick(4, 10)  # e2 goes out by email; s1 is still waiting
    channels.instances["sms"] = provider  # the SMS account is fixed
    tick(4, 10, 30)
    assert provider.sent_at == [("email", dt.datetime(2026, 11, 4, 10, 0, tzinfo=lima))]
    with engine.connect() as conn:
        waiting = conn.execute(select(s.contacts).where(s.contacts.c.step == "s1")).one()
    assert waiting.status == "sending" and "held by cap:" in waiting.reason
    tick(5, 10)
    assert provider.sent_at[-1] == ("sms", dt.datetime(2026, 11, 5, 10, 0, tzinfo=lima))


def test_contacts_held_up_by_an_outage_are_released_within_the_caps_not_all_at_once(db_url, tmp_path, monkeypatch):
    """Two SMS decided two days apart wait for a refused account. When it is fixed, each waiting row was
    checked against a history holding the other at its decision day, more than a day ago: both went in
    one tick, two contacts where the cap (and Colombia's law after a conversation) allows one a day."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("collect.engine.runner.RECOVER_CHUNK", 1)  # taken one at a time, oldest first all the same
    lima = ZoneInfo("America/Lima")
    engine, _, _, provider, tick = sms_store(db_url, tmp_path, ONE_A_DAY, provider=Provider(REFUSED))
    tick(3, 10)  # z1 decided, waits for the account
    tick(5, 10)  # a3 decided (z1, on the 3rd, is out of the cap's day), waits too; its key sorts first
    provider.down = None
    tick(7, 9)
    assert provider.sent_at == [("sms", dt.datetime(2026, 11, 7, 9, tzinfo=lima))]
    with engine.connect() as conn:
        waiting = conn.execute(select(s.contacts).where(s.contacts.c.status == "sending")).one()
    assert waiting.step == "a3" and "held by cap:" in waiting.reason  # the older decision, z1, went first
    for hour in (10, 15, 20):
        tick(7, hour)
    assert len(provider.placed) == 1  # the cap frees a day after the one that went
    tick(8, 9)
    assert provider.sent_at[-1] == ("sms", dt.datetime(2026, 11, 8, 9, tzinfo=lima))


def test_a_tick_that_delivers_past_the_window_s_end_leaves_the_rest_for_the_window(db_url, tmp_path, monkeypatch):
    """A tick decides its contacts as of its start and then delivers them one by one; thousands of emails
    through one SMTP server take minutes. One decided at 17:59 and reached at 18:04 is past the 09:00-18:00
    window (for a law's hours, past the law): it is not sent then, but when the window opens."""
    monkeypatch.chdir(tmp_path)
    lima = ZoneInfo("America/Lima")
    engine, _, _, provider, at = sms_store(db_url, tmp_path, CAPPED.replace(
        'mon-sun: "00:00-23:59"', 'mon-sun: "09:00-18:00"').replace("due+1d 10:00", "due+1d 17:59"),
        provider=Provider(down=None))

    def tick(day, hour, minute, delivering_for=0.0):
        seconds = iter([0.0])  # the tick starts at 0; every later reading is `delivering_for` seconds on
        at.runner._clock = lambda: next(seconds, delivering_for)
        return at(day, hour, minute)
    summary = tick(3, 17, 59, delivering_for=300)
    assert provider.placed == [] and summary.statuses == {"held": 1} and summary.delivery == {}  # not also "sent"
    assert summary.provider_failures == []  # no failure: `collect run` exits 0
    with engine.connect() as conn:
        held = conn.execute(select(s.contacts)).one()
    assert held.status == "sending" and held.reason.endswith(
        "held: the tick was still delivering at 18:04 local time, when window held it")
    tick(3, 18, 30)
    with engine.connect() as conn:
        waiting = conn.execute(select(s.contacts)).one()
    assert waiting.status == "sending" and waiting.next_attempt_at.astimezone(lima) == dt.datetime(2026, 11, 4, 9, tzinfo=lima)
    tick(4, 9, 0, delivering_for=30)  # under a minute: not looked at again
    assert provider.sent_at == [("sms", dt.datetime(2026, 11, 4, 9, 0, tzinfo=lima))]


def test_a_retry_after_the_policy_renamed_its_template_goes_with_the_step_s_template_now(store, tmp_path):
    """The call waits for a retry; the policy then renames template m to m2: it failed for good with
    `template: KeyError: 'm'` (exit 3, a provider failure that never was) and fell back."""
    engine, provider, tick = store("[]", "09:00-18:00", "10:00")
    tick(2026, 11, 3, 10, 0)
    assert contact(engine).status == "sending"
    renamed = tmp_path / "renamed.yaml"
    renamed.write_text(textwrap.dedent(POLICY.format(compliance="[]", window="09:00-18:00", at="10:00"))
                       .replace("  m:\n", "  m2:\n").replace("template: m }", "template: m2 }"))
    plan = compile_policy(renamed).plan
    channels = Channels()
    channels.instances["voice"] = provider
    provider.now = dt.datetime(2026, 11, 3, 11, 0, tzinfo=NY)
    summary = Runner(engine, plan, channels).tick(provider.now)
    row = contact(engine)
    assert (row.status, row.template, summary.statuses["failed"]) == ("sent", "m2", 0)
    assert provider.placed == [provider.now]


def test_a_webhook_retried_after_a_503_goes_out_it_has_no_template_to_look_up(db_url, tmp_path):
    """A webhook step has no template: its retry was withdrawn as 'no longer has template None'."""
    path = tmp_path / "policy.yaml"
    path.write_text(textwrap.dedent("""\
        policy: wh
        timezone: America/New_York
        currency: USD
        windows:
          default: { mon-sun: "00:00-24:00" }
          holidays: open
        stages:
          s:
            when: true
            steps:
              - { id: handoff, at: due+1d 10:00, webhook: legal-handoff }
        """))
    engine = s.connect(db_url)
    csv = tmp_path / "i.csv"
    csv.write_text("invoice_id,customer_id,amount,due_date,timezone\nA,C1,100,2026-11-02,America/New_York\n")
    import_file(engine, "invoices", csv, fields={}, colmap=ColumnMap(), default_tz="America/New_York")
    channels = Channels()
    provider = channels.instances["webhook"] = Flaky()
    runner = Runner(engine, compile_policy(path).plan, channels)
    for hour in (10, 11):
        provider.now = dt.datetime(2026, 11, 3, hour, 0, tzinfo=NY)
        runner.tick(provider.now)
    assert (contact(engine).status, provider.placed) == ("sent", [dt.datetime(2026, 11, 3, 11, 0, tzinfo=NY)])


TWO_STAGES = """\
    policy: stages
    timezone: America/Lima
    windows: { default: { mon-sun: "08:00-20:00" }, holidays: open }
    templates: { m: { sms: "Hola" } }
    stages:
      pre:
        when: invoice.days_past_due <= 0
        steps:
          - { id: remind, at: due 10:00, send: sms, template: m }
      late:
        when: invoice.days_past_due > 0
        steps:
          - { id: late-5, at: due+5d 10:00, send: sms, template: m }
    """


def _rows(engine):
    with engine.connect() as conn:
        return sorted((r.step, r.status, r.reason) for r in conn.execute(select(s.contacts)))


def test_a_due_date_reminder_retried_after_the_due_date_is_withdrawn_not_sent(db_url, tmp_path):
    """language.md, Leaving a stage: a reminder of the due date must not reach the customer once the
    invoice is overdue; a retry after an outage is held to that as a deferral is."""
    engine, plan, channels, provider, tick = sms_store(db_url, tmp_path, TWO_STAGES, "A,C1,100,2026-11-02,+51987654321\n")
    tick(2, 10)  # decided on the due date; the provider is down
    provider.down = None
    tick(3, 10)  # the retry comes the next day: the invoice is past due
    assert provider.placed == []
    assert _rows(engine) == [("remind", "skipped", "withdrawn before delivery: stage ended")]
    with engine.connect() as conn:
        step = conn.execute(select(s.steps).where(s.steps.c.key == "remind|A")).one()
    assert (step.state, step.status, step.failed or {}) == ("done", "skipped", {})  # closed, no channel failed
    tick(7, 10)  # the later stage goes on as usual
    assert [m.metadata["step"] for m in provider.placed] == ["late-5"]


def test_a_retry_after_a_dispute_opened_is_withdrawn_and_the_cadence_goes_on_after_it(db_url, tmp_path):
    engine, plan, channels, provider, tick = sms_store(db_url, tmp_path, TWO_STAGES, "A,C1,100,2026-11-01,+51987654321\n")
    tick(6, 10)  # late-5 decided; the provider is down
    disputes = tmp_path / "d.csv"
    disputes.write_text("invoice_id,opened_at\nA,2026-11-06T10:30:00-05:00\n")
    import_file(engine, "disputes", disputes, fields={}, colmap=ColumnMap(), default_tz="America/Lima")
    provider.down = None
    tick(6, 11)
    assert provider.placed == []
    assert _rows(engine) == [("late-5", "skipped", "withdrawn before delivery: paused: disputed")]
    disputes.write_text("invoice_id,opened_at,resolved_at\nA,2026-11-06T10:30:00-05:00,2026-11-07T09:00:00-05:00\n")
    import_file(engine, "disputes", disputes, fields={}, colmap=ColumnMap(), default_tz="America/Lima")
    tick(7, 10)  # the dispute is over: the withdrawn step is not sent again, on this channel or another
    assert provider.placed == []
    assert _rows(engine) == [("late-5", "skipped", "withdrawn before delivery: paused: disputed")]

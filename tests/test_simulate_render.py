"""`collect simulate --render` builds every message as `collect run` does before delivering it: a message
that cannot be rendered on real data (a locale from the ERP that does not exist here) fails on its
channel and the step falls back in the same tick, in the simulation as in production (SPEC 7: simulate
and run agree)."""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from collect.cli import app
from collect.engine import store as s
from collect.engine.channels import Channels
from collect.engine.compiler import compile_policy
from collect.engine.portfolio import ColumnMap
from collect.engine.runner import Runner
from collect.engine.simrun import load_portfolio, run_simulation
from collect.engine.storeio import import_file

POLICY = """
policy: render
timezone: America/Lima
currency: PEN
fields:
  customer.locale: str
windows:
  default: { mon-fri: "08:00-19:00" }
templates:
  aviso:
    sms: "{{ customer.name }}: saldo {{ invoice.balance | money('PEN', customer.locale) }}"
    email: { subject: "Aviso", body: "Factura {{ invoice.number }}" }
stages:
  temprana:
    when: invoice.days_past_due >= 1
    steps:
      - { id: t1, at: due+1d 10:00, send: [sms, email], template: aviso }
      - { id: t2, at: due+3d 10:00, send: sms, template: aviso, on_exhausted: escalate }
"""

PORTFOLIO = """invoice_id,customer_id,amount,due_date,customer_name,email,phone,locale
F1,C1,1000,2026-11-16,Uno,c1@example.pe,+51987654321,peruano
F2,C2,1000,2026-11-16,Dos,c2@example.pe,+51987654322,es_PE
"""

START = dt.date(2026, 11, 16)


# the fallback's window opens later, and another step makes the customer decided meanwhile: the step
# reopened by the failure waits, with a reason of its own
WAITING = POLICY.replace(
    '  default: { mon-fri: "08:00-19:00" }\n',
    '  default: { mon-fri: "08:00-19:00" }\n  email: { mon-fri: "14:00-19:00" }\n').replace(
    "      - { id: t2,", "      - { id: t0, at: due+1d 12:00, send: sms, template: aviso }\n      - { id: t2,")


def files(tmp_path: Path, policy: str = POLICY):
    (tmp_path / "policy.yaml").write_text(textwrap.dedent(policy), encoding="utf-8")
    (tmp_path / "p.csv").write_text(PORTFOLIO, encoding="utf-8")
    return compile_policy(tmp_path / "policy.yaml").plan, tmp_path / "p.csv"


def runner(url: str, tmp_path: Path, plan, portfolio: Path) -> Runner:
    """The portfolio imported into the store at `url`, and a Runner whose channels write outbox files."""
    import_file(s.connect(url), "invoices", portfolio, fields=dict(plan["fields"]), colmap=ColumnMap(),
                default_tz="America/Lima", default_currency="PEN")
    channels = Channels({n: {"adapter": "file", "path": str(tmp_path / "outbox" / f"{n}.jsonl")}
                         for n in ("email", "sms", "agent")})
    return Runner(s.connect(url), plan, channels)


def outcomes(decisions, statuses=("sent", "failed", "escalated")):
    return [(d.customer_id, d.step, d.channel, d.status, d.at.strftime("%Y-%m-%d %H:%M"), d.reason)
            for d in decisions if d.status in statuses]


EVERY = ("sent", "failed", "escalated", "deferred", "skipped")


def test_a_message_that_cannot_be_rendered_fails_on_its_channel_and_the_step_falls_back(tmp_path):
    plan, portfolio = files(tmp_path)
    rendered = run_simulation(plan, load_portfolio(plan, portfolio), start=START, days=7, render=True)
    said = "template aviso.sms: body, line 1: the template failed: UnknownLocaleError: unknown locale 'peruano'"
    assert outcomes(rendered.decisions) == [
        ("C1", "t1", "sms", "failed", "2026-11-17 10:00", said),
        ("C1", "t1", "email", "sent", "2026-11-17 10:00", ""),  # the fallback, in the same tick
        ("C1", "t2", "sms", "failed", "2026-11-19 10:00", said),
        ("C1", "t2", "sms", "failed", "2026-11-19 10:00", f"sms: {said}"),  # no channel left
        ("C1", "t2", "agent", "escalated", "2026-11-19 10:00", "channels exhausted"),
        ("C2", "t1", "sms", "sent", "2026-11-17 10:00", ""),
        ("C2", "t2", "sms", "sent", "2026-11-19 10:00", ""),
    ]
    # without --render the dry run does not look at the texts: everyone's SMS "would be sent"
    plain = run_simulation(plan, load_portfolio(plan, portfolio), start=START, days=7)
    assert [(c, step, ch, status) for c, step, ch, status, _, _ in outcomes(plain.decisions)] == [
        ("C1", "t1", "sms", "sent"), ("C1", "t2", "sms", "sent"), ("C2", "t1", "sms", "sent"),
        ("C2", "t2", "sms", "sent")]


def hourly_week(run: Runner, url: str) -> list[tuple]:
    """A tick every hour for the week from START's Lima midnight, and the contact rows it recorded, sorted,
    as `outcomes` gives them."""
    begin = dt.datetime.combine(START, dt.time(), dt.timezone(dt.timedelta(hours=-5)))
    for hour in range(24 * 7):
        run.tick(begin + dt.timedelta(hours=hour))
    with s.connect(url).connect() as conn:
        return sorted((r.customer_id, r.step, r.channel, r.status,
                       r.at.astimezone(begin.tzinfo).strftime("%Y-%m-%d %H:%M"), r.reason)
                      for r in conn.execute(select(s.contacts)) if r.status in EVERY)


@pytest.mark.parametrize("policy", [POLICY, WAITING], ids=["fallback-at-once", "fallback-waits"])
def test_run_every_hour_equals_simulate_with_render(db_url, tmp_path, policy):
    """Every contact row, with its status and reason, deferrals and skips included."""
    plan, portfolio = files(tmp_path, policy)
    run = runner(db_url, tmp_path, plan, portfolio)
    ran = hourly_week(run, db_url)
    simulated = run_simulation(plan, load_portfolio(plan, portfolio), start=START, days=7, render=True)
    assert ran == sorted(outcomes(simulated.decisions, EVERY))
    if policy is WAITING:  # the case: C1's t1 fails on sms at 10:00 and waits for the email window at 14:00
        assert sorted((r for r in ran if r[:3] == ("C1", "t1", "email")), key=lambda r: r[4]) == [
            ("C1", "t1", "email", "deferred", "2026-11-17 10:00", "window"),
            ("C1", "t1", "email", "sent", "2026-11-17 14:00", "window")]


def test_the_command_reports_the_failures_by_reason(tmp_path):
    plan, portfolio = files(tmp_path)
    out = tmp_path / "contacts.csv"
    result = CliRunner().invoke(app, ["simulate", str(tmp_path / "policy.yaml"), "--portfolio", str(portfolio),
                                      "--start", "2026-11-16", "--days", "7", "--render", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "Failed by reason" in result.output and "unknown locale 'peruano'" in result.output
    lines = out.read_text(encoding="utf-8").splitlines()
    assert sum(",failed," in line for line in lines) == 3
    plain = CliRunner().invoke(app, ["simulate", str(tmp_path / "policy.yaml"), "--portfolio", str(portfolio),
                                     "--start", "2026-11-16", "--days", "7"])
    assert plain.exit_code == 0 and "Failed by reason: none" in plain.output


def test_run_dry_run_shows_the_failed_message_and_its_fallback_as_the_tick_records_them(tmp_path):
    """`collect run --dry-run` builds the messages too: it shows what the tick then records."""
    plan, portfolio = files(tmp_path)
    url = f"sqlite:///{tmp_path / 'c.db'}"
    run = runner(url, tmp_path, plan, portfolio)
    now = dt.datetime(2026, 11, 17, 15, tzinfo=dt.timezone.utc)  # 10:00 in Lima
    shown = sorted((d.customer_id, d.step, d.channel, d.status, d.reason)
                   for d in run.tick(now, dry_run=True).decisions)
    run.tick(now)
    with s.connect(url).connect() as conn:
        ticked = sorted((r.customer_id, r.step, r.channel, r.status, r.reason) for r in conn.execute(select(s.contacts)))
    said = "template aviso.sms: body, line 1: the template failed: UnknownLocaleError: unknown locale 'peruano'"
    assert shown == ticked == [("C1", "t1", "email", "sent", ""), ("C1", "t1", "sms", "failed", said),
                               ("C2", "t1", "sms", "sent", "")]


def test_failed_by_reason_shows_the_most_frequent_reasons_and_adds_up_the_rest():
    """A reason may quote the data (each customer's bad locale): the table keeps 15 rows."""
    from collections import Counter

    from rich.console import Console

    from collect.views import FAILURE_ROWS, _counter_table

    counts = Counter({f"unknown locale 'x{n:02d}'": n + 1 for n in range(20)})
    console = Console(width=200, record=True)
    console.print(_counter_table("Failed by reason", ["contacts"], [counts], limit=FAILURE_ROWS))
    text = console.export_text()
    assert "'x19'" in text and "'x05'" in text and "'x04'" not in text  # the 15 most counted
    assert "5 other reasons" in text and " 15 " in text.split("5 other reasons")[1].split("\n")[0]  # 1+2+3+4+5
    assert "210" in text.split("total")[1]  # the total is of every reason


def test_comparing_two_policies_the_reasons_that_changed_are_shown_first():
    from collections import Counter

    from rich.console import Console

    from collect.views import FAILURE_ROWS, _counter_table

    old = Counter({f"r{n:02d}": 10 for n in range(16)})
    new = Counter({**old, "NEW: unknown locale": 9})
    console = Console(width=200, record=True)
    console.print(_counter_table("Failed by reason", ["old", "new"], [old, new], limit=FAILURE_ROWS))
    text = console.export_text()
    assert "NEW: unknown locale" in text and "2 other reasons" in text
    # a reason that did not change but counts most is not hidden behind fifteen that changed by one
    old = Counter({"BIG": 1000, **{f"r{n:02d}": 5 for n in range(16)}})
    new = Counter({"BIG": 1000, **{f"r{n:02d}": 6 for n in range(16)}})
    console = Console(width=200, record=True)
    console.print(_counter_table("Failed by reason", ["old", "new"], [old, new], limit=FAILURE_ROWS))
    assert "BIG" in console.export_text()
    sixteen = Counter({f"r{n:02d}": 10 for n in range(16)})
    console = Console(width=200, record=True)
    console.print(_counter_table("Failed by reason", ["contacts"], [sixteen], limit=FAILURE_ROWS))
    assert "other reasons" not in console.export_text()  # one left over is shown, not folded


def test_a_customer_decided_again_in_a_tick_is_counted_once(tmp_path):
    """The tick falls back at once when a message cannot be built, deciding the customer again: the
    summary still says one customer, in the tick as in its dry run."""
    plan, portfolio = files(tmp_path)
    url = f"sqlite:///{tmp_path / 'c.db'}"
    run = runner(url, tmp_path, plan, portfolio)
    now = dt.datetime(2026, 11, 17, 15, tzinfo=dt.timezone.utc)  # 10:00 in Lima: C1's sms fails, email goes
    assert run.tick(now, dry_run=True).customers == 2
    assert run.tick(now).customers == 2


# WhatsApp through Meta: free text goes only within 24 hours of the customer's last message, and a
# provider template's parameter may not be empty (a customer without a name). The adapter refuses both
# without calling Meta (`refuses`), so `collect run` records them as failures and falls back. SMS and the
# agents' channel are not in channels.yaml: their contacts fail too.
REFUSED = """
policy: refused
timezone: America/Lima
currency: PEN
windows:
  default: { mon-fri: "08:00-19:00" }
templates:
  libre:
    whatsapp: "Hola {{ customer.name }}, su factura {{ invoice.number }} vence"
    sms: "Su factura {{ invoice.number }} vence"
    email: { subject: "Aviso", body: "Factura {{ invoice.number }}" }
  plantilla:
    whatsapp: { template_name: recordatorio, language: es, params: ["{{ customer.name }}"] }
    email: { subject: "Aviso", body: "Factura {{ invoice.number }}" }
stages:
  temprana:
    when: invoice.days_past_due >= 1
    steps:
      - { id: t1, at: due+1d 10:00, send: [whatsapp, sms, email], template: libre }
      - { id: t2, at: due+3d 10:00, send: [whatsapp, email], template: plantilla }
      - { id: t3, at: due+5d 10:00, escalate: { queue: cobranza } }
"""

REFUSED_PORTFOLIO = """invoice_id,customer_id,amount,due_date,customer_name,email,phone
F1,C1,1000,2026-11-16,,c1@example.pe,+51987654321
"""

# no ${WA_TOKEN} in the environment: a simulation reads the adapters' names, never their secrets
CHANNELS_YAML = """
channels:
  whatsapp: { adapter: whatsapp_cloud, phone_number_id: "1234", token: "${WA_TOKEN}" }
  email: { adapter: file, path: outbox/email.jsonl }
"""

OUTSIDE = ("outside_24h_window free text is allowed only within 24 hours of the customer's last message; "
           "give the step a WhatsApp template")
UNCONFIGURED = "channel_not_configured channel '{}' is not in channels.yaml (configured: email, whatsapp)"
EMPTY = ("empty_param parameter 1 of the WhatsApp template 'recordatorio' is empty, and WhatsApp refuses empty "
         "parameters; give it a default in the policy: {{ customer.name | default(\"cliente\") }}")


def refused_files(tmp_path: Path):
    (tmp_path / "policy.yaml").write_text(REFUSED, encoding="utf-8")
    (tmp_path / "p.csv").write_text(REFUSED_PORTFOLIO, encoding="utf-8")
    (tmp_path / "channels.yaml").write_text(CHANNELS_YAML, encoding="utf-8")
    return compile_policy(tmp_path / "policy.yaml").plan, tmp_path / "p.csv"


def refusing_runner(url: str, tmp_path: Path, plan, portfolio: Path) -> Runner:
    """The portfolio imported into the store at `url`, and a Runner with Meta's adapter on whatsapp, on a
    port where nothing listens (a message it did not refuse would fail as `network`), and email to a file."""
    from collect.engine.channels import load_channels

    import_file(s.connect(url), "invoices", portfolio, fields=dict(plan["fields"]), colmap=ColumnMap(),
                default_tz="America/Lima", default_currency="PEN")
    (tmp_path / "run.yaml").write_text(f"""
channels:
  whatsapp: {{ adapter: whatsapp_cloud, phone_number_id: "1234", token: secret, base_url: "http://127.0.0.1:9" }}
  email: {{ adapter: file, path: "{tmp_path / 'outbox' / 'email.jsonl'}" }}
""", encoding="utf-8")
    return Runner(s.connect(url), plan, load_channels(tmp_path / "run.yaml"))


def test_what_the_adapter_refuses_without_calling_fails_in_the_simulation_and_the_step_falls_back(tmp_path,
                                                                                                  monkeypatch):
    from collect.engine.channels import load_refusals

    monkeypatch.delenv("WA_TOKEN", raising=False)
    plan, portfolio = refused_files(tmp_path)
    refusals = load_refusals(tmp_path / "channels.yaml")
    simulated = run_simulation(plan, load_portfolio(plan, portfolio), start=START, days=7, render=True,
                               refusals=refusals)
    assert outcomes(simulated.decisions) == [
        ("C1", "t1", "whatsapp", "failed", "2026-11-17 10:00", OUTSIDE),
        ("C1", "t1", "sms", "failed", "2026-11-17 10:00", UNCONFIGURED.format("sms")),
        ("C1", "t1", "email", "sent", "2026-11-17 10:00", ""),
        ("C1", "t2", "whatsapp", "failed", "2026-11-19 10:00", EMPTY),
        ("C1", "t2", "email", "sent", "2026-11-19 10:00", ""),
        # the hand-off fails; the task stays queued, and nothing falls back
        ("C1", "t3", "agent", "failed", "2026-11-21 10:00", UNCONFIGURED.format("agent"))]
    assert simulated.states["C1"].done["t3|F1"] == "escalated"  # as run's step memory keeps it
    # the outbox files of the default configuration refuse nothing; nor does --render without --channels
    plain = run_simulation(plan, load_portfolio(plan, portfolio), start=START, days=7, render=True)
    assert [(step, ch, status) for _, step, ch, status, _, _ in outcomes(plain.decisions)] == [
        ("t1", "whatsapp", "sent"), ("t2", "whatsapp", "sent"), ("t3", "agent", "escalated")]


def test_run_every_hour_equals_simulate_with_what_the_adapters_refuse(db_url, tmp_path):
    """`collect run` with Meta's adapter (never called: it refuses each message first) records what the
    simulation predicted, row by row."""
    from collect.engine.channels import load_refusals

    plan, portfolio = refused_files(tmp_path)
    run = refusing_runner(db_url, tmp_path, plan, portfolio)
    ran = hourly_week(run, db_url)
    simulated = run_simulation(plan, load_portfolio(plan, portfolio), start=START, days=7, render=True,
                               refusals=load_refusals(tmp_path / "channels.yaml"))
    assert ran == sorted(outcomes(simulated.decisions, EVERY))
    assert ("C1", "t2", "whatsapp", "failed", "2026-11-19 10:00", EMPTY) in ran
    assert ("C1", "t3", "agent", "failed", "2026-11-21 10:00", UNCONFIGURED.format("agent")) in ran


def test_run_dry_run_foresees_what_the_adapter_refuses(tmp_path):
    plan, portfolio = refused_files(tmp_path)
    url = f"sqlite:///{tmp_path / 'c.db'}"
    run = refusing_runner(url, tmp_path, plan, portfolio)
    now = dt.datetime(2026, 11, 17, 15, tzinfo=dt.timezone.utc)  # 10:00 in Lima
    shown = sorted((d.step, d.channel, d.status, d.reason) for d in run.tick(now, dry_run=True).decisions)
    run.tick(now)
    with s.connect(url).connect() as conn:
        ticked = sorted((r.step, r.channel, r.status, r.reason) for r in conn.execute(select(s.contacts)))
    assert shown == ticked == [("t1", "email", "sent", ""), ("t1", "sms", "failed", UNCONFIGURED.format("sms")),
                               ("t1", "whatsapp", "failed", OUTSIDE)]


def test_the_command_fails_what_the_channels_adapters_refuse(tmp_path, monkeypatch):
    monkeypatch.delenv("WA_TOKEN", raising=False)
    refused_files(tmp_path)
    args = ["simulate", str(tmp_path / "policy.yaml"), "--portfolio", str(tmp_path / "p.csv"), "--start", "2026-11-16",
            "--days", "7", "--render", "--channels", str(tmp_path / "channels.yaml")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Failed by reason" in result.output and "outside_24h_window" in result.output
    # a file of costs alone configures no adapter: nothing is refused
    (tmp_path / "costs.yaml").write_text("costs: { whatsapp: 0.05, email: 0 }\n", encoding="utf-8")
    costs = CliRunner().invoke(app, args[:-1] + [str(tmp_path / "costs.yaml")])
    assert costs.exit_code == 0 and "Failed by reason: none" in costs.output
    # an adapter this machine does not have: the simulation would miss what it refuses
    (tmp_path / "channels.yaml").write_text(CHANNELS_YAML.replace("whatsapp_cloud", "whatsap_cloud"), encoding="utf-8")
    bad = CliRunner().invoke(app, args)
    assert bad.exit_code == 1
    assert f"{tmp_path / 'channels.yaml'}:3:" in bad.output and "unknown adapter 'whatsap_cloud'" in bad.output
    assert "whatsapp_cloud" in bad.output  # the suggestion
    # a misspelt channel would otherwise fail every message of the real one as not configured
    (tmp_path / "channels.yaml").write_text("channels:\n  whatsap: { adapter: file }\n  email: file\n", encoding="utf-8")
    bad = CliRunner().invoke(app, args)
    assert bad.exit_code == 1
    assert f"{tmp_path / 'channels.yaml'}:2:3: channels.whatsap: unknown channel 'whatsap'" in bad.output
    assert "'whatsapp'" in bad.output
    assert f"{tmp_path / 'channels.yaml'}:3:10: channels.email: expected a mapping" in bad.output


def test_a_plugin_without_refuses_refuses_nothing_up_front():
    from collect.adapters.base import DeliveryResult, Message
    from collect.engine.channels import Refusals

    class Plain:  # a channel class that predates `refuses`
        def send(self, message):
            raise AssertionError("never called by a simulation")

    message = Message(key="k", channel="sms", customer_id="C1", invoice_ids=("F1",), recipient=None)
    assert Refusals({"sms": Plain}, ["sms"])(message) is None
    missing = Refusals({"sms": Plain}, ["sms"])(Message(key="k", channel="email", customer_id="C1",
                                                         invoice_ids=("F1",), recipient="a@b.pe"))
    assert (missing.status, missing.error_code) == ("permanent", "channel_not_configured")
    assert Refusals({}, [])(message) is None  # no configuration: every channel to the outbox files

    class Odd:
        @classmethod
        def refuses(cls, channel, message):  # not a refusal: `send` would return it as it is
            return DeliveryResult.transient("busy", "try later")

    class Broken:
        name = "broken"

        @classmethod
        def refuses(cls, channel, message):
            raise ValueError("oops")

    assert Refusals({"sms": Odd}, ["sms"])(message) is None
    with pytest.raises(RuntimeError, match="the broken adapter of channel sms failed to say whether it refuses a "
                                           "message: ValueError: oops"):
        Refusals({"sms": Broken}, ["sms"])(message)

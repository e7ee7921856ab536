"""channels.yaml against the channels that exist and against the policy, before anything is sent.

- A key of `channels:` that is no channel (a misspelt `emial:`) is a load error with its place and a
  "did you mean", reported with the file's other problems (docs/channels.md, "Checked when loaded").
- `collect run` / `collect serve` with a channels.yaml: a step none of whose channels the file configures
  would fail every contact for good (`channel_not_configured`): exit 1 before the tick. A channel left out
  where the step can fall back to another is the documented fallback: a warning up front, and the run
  goes on. Without --channels everything goes to the `file` adapter: nothing to check.
- An adapter's optional `check(plan)` says what it lacks for the policy (a Twilio WhatsApp template without
  a Content SID): exit 1 before the tick, with the channel's place in channels.yaml.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from collect.adapters.base import DeliveryResult
from collect.cli import app
from collect.engine import channels as channels_module
from collect.engine import store as s
from collect.engine.channels import Channels, ChannelsError, load_channels
from collect.engine.compiler import compile_policy
from clitools import cli_project

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "pe-b2b"


def write(tmp_path: Path, text: str, name: str = "channels.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def render(diagnostic) -> str:
    from collect.engine.channels import render as line

    return line(diagnostic)


def contacts(db: str) -> list:
    with s.connect(db).connect() as conn:
        return list(conn.execute(select(s.contacts)))


# -- channel names, at load ---------------------------------------------------------------------------

def test_a_misspelt_channel_is_an_error_at_its_place_with_a_suggestion(tmp_path):
    path = write(tmp_path, """\
        channels:
          email: { adapter: file }
          emial: { adapter: file, path: outbox/email.jsonl }
        """)
    with pytest.raises(ChannelsError) as caught:
        load_channels(path)
    (problem,) = caught.value.diagnostics
    assert (problem.code, problem.span.line, problem.span.col) == ("channels-unknown-key", 3, 3)
    assert problem.hint == "did you mean 'email'?"
    assert str(caught.value) == (f"{path}:3:3: channels.emial: unknown channel 'emial' (available: email, sms, "
                                 "whatsapp, voice, letter, webhook, agent) (did you mean 'email'?)")


def test_an_unknown_channel_is_reported_with_the_files_other_problems(tmp_path, monkeypatch):
    monkeypatch.delenv("NOPE_TOKEN", raising=False)
    path = write(tmp_path, """\
        channels:
          emial: { adapter: smtp, hots: smtp.example.com, from: a@example.com }
          fax: { adapter: file }
          sms: { adapter: twilio, account_sid: AC1, auth_token: "${NOPE_TOKEN}", from: "+15005550006" }
        retry: { attempts: 0 }
        """)
    with pytest.raises(ChannelsError) as caught:
        load_channels(path)
    found = [(d.code, d.span.line) for d in caught.value.diagnostics]
    assert found == [("channels-unknown-key", 2), ("channels-missing-setting", 2), ("channels-unknown-setting", 2),
                     ("channels-unknown-key", 3), ("channels-env-unset", 4), ("channels-bad-retry", 5)]
    assert "unknown channel 'fax'" in str(caught.value) and "did you mean" not in caught.value.diagnostics[3].message


def test_every_built_in_channel_and_a_plugins_channel_are_accepted(tmp_path, monkeypatch):
    from collect.dsl.model import BUILTIN_CHANNELS
    from collect.engine import compiler

    monkeypatch.setattr(compiler, "known_channels", lambda: (*BUILTIN_CHANNELS, "echo"))
    names = (*BUILTIN_CHANNELS, "echo")
    channels = Channels({n: {"adapter": "file", "path": str(tmp_path / f"{n}.jsonl")} for n in names})
    assert sorted(channels.instances) == sorted(names)
    channels.close()


def test_the_cli_stops_on_a_misspelt_channel_before_anything_is_sent(tmp_path, monkeypatch):
    """The finding: `emial:` was accepted, and every email contact failed for good at send time."""
    monkeypatch.chdir(tmp_path)
    db = f"sqlite:///{tmp_path / 'c.db'}"
    write(tmp_path, """\
        channels:
          emial:    { adapter: file, path: outbox/email.jsonl }
          sms:      { adapter: file }
          whatsapp: { adapter: file }
          letter:   { adapter: file }
          webhook:  { adapter: file }
          agent:    { adapter: file }
        """)
    cli = CliRunner()
    assert cli.invoke(app, ["import", "invoices", str(EXAMPLE / "portfolio.csv"),
                            "--policy", str(EXAMPLE / "policy.yaml"),
                            "--db", db, "--timezone", "America/Lima", "-q"]).exit_code == 0
    result = cli.invoke(app, ["run", str(EXAMPLE / "policy.yaml"), "--channels", "channels.yaml", "--db", db,
                              "--now", "2026-11-02T15:00:00+00:00"])
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: channels.yaml:2:3: channels.emial: unknown channel 'emial'")
    assert "(did you mean 'email'?)" in result.stderr and "channel_not_configured" not in result.stderr
    assert contacts(db) == [] and not (tmp_path / "outbox").exists()


# -- channels the policy sends on, at run / serve start -----------------------------------------------

POLICY = """\
policy: t
timezone: America/Lima
currency: PEN
windows:
  default: { mon-sun: "08:00-20:00" }
templates:
  m:
    email: { subject: "Factura {{ invoice.number }}", body: "Hola {{ customer.name }}" }
    sms: "Hola {{ customer.name }}"
    whatsapp: { template_name: recordatorio_pago, language: es, params: ["{{ customer.name }}"] }
stages:
  due:
    when: invoice.days_past_due >= 0
    steps:
      - { id: d0, at: due, send: [whatsapp, sms], template: m, on_exhausted: escalate }
      - { id: d1, at: due+1d, send: email, template: m }
"""
PORTFOLIO = ("invoice_id,customer_id,amount,due_date,customer_name,email,phone,whatsapp\n"
             "F1,C1,100,2026-11-16,Ana,ana@example.com,+51987654321,+51987654321\n")
MONDAY = "2026-11-16T15:00:00+00:00"


@pytest.fixture
def project(tmp_path, monkeypatch):
    """policy.yaml and an imported portfolio in tmp_path; returns a function that runs `collect`."""
    return cli_project(tmp_path, monkeypatch, POLICY, PORTFOLIO)


def plan():
    result = compile_policy(Path("policy.yaml"))
    assert result.plan is not None, result.diagnostics.items
    return result.plan


def test_a_step_with_no_configured_channel_is_an_error_naming_it(project, tmp_path):
    path = write(tmp_path, """\
        channels:
          whatsapp: { adapter: file }
          sms: { adapter: file }
          agent: { adapter: file }
        """)
    channels = load_channels(path)
    errors, warnings = channels.check_plan(plan())
    (error,) = errors
    assert (error.code, error.span.line, error.span.col) == ("step-unconfigured", 1, 1)
    assert render(error) == (f"{path}:1:1: channels: step d1 sends on email, which channels.yaml does not configure: "
                             "every contact of this step would fail for good (add `email: { adapter: ... }` under "
                             "channels:; `{ adapter: file }` writes the messages to outbox/email.jsonl)")
    assert warnings == []
    channels.close()


def test_a_left_out_channel_with_a_fallback_and_agent_tasks_are_warnings(project, tmp_path):
    path = write(tmp_path, "channels:\n  sms: { adapter: file }\n  email: { adapter: file }\n")
    channels = load_channels(path)
    errors, warnings = channels.check_plan(plan())
    assert errors == []
    assert [render(w) for w in warnings] == [
        f"{path}:1:1: warning: channels: whatsapp is not configured: each send on it fails (channel_not_configured) "
        "and step d0 goes on to its next channel",
        f"{path}:1:1: warning: channels: agent is not configured: the agent tasks of step d0 stay in `collect tasks`, "
        "but each hand-off fails (channel_not_configured)"]
    assert channels.unconfigured(["whatsapp", "sms", "agent"]) == ["whatsapp", "agent"]
    channels.close()


def test_without_channels_yaml_nothing_is_missing(project):
    assert Channels().check_plan(plan()) == ([], [])


def test_run_stops_before_the_tick_when_a_step_can_never_be_sent(project, tmp_path):
    write(tmp_path, "channels:\n  whatsapp: { adapter: file }\n")  # d0 falls back to nothing, d1 has no channel
    result = project("run", "policy.yaml", "--channels", "channels.yaml", "--now", MONDAY)
    assert result.exit_code == 1, result.output
    lines = result.stderr.splitlines()
    assert lines[0] == ("error: channels.yaml:1:1: channels: step d1 sends on email, which channels.yaml does not "
                        "configure: every contact of this step would fail for good (add `email: { adapter: ... }` "
                        "under channels:; `{ adapter: file }` writes the messages to outbox/email.jsonl)")
    assert lines[1:] == [  # all at once: the documented fallbacks still work, and are said up front
        # sms is d0's last channel: it has no next one to go on to (whatsapp, before it, is configured)
        "channels.yaml:1:1: warning: channels: sms is not configured: each send on it fails (channel_not_configured); "
        "step d0 has no configured channel after it: when its earlier channels cannot be used, the step fails and "
        "escalates",
        "channels.yaml:1:1: warning: channels: agent is not configured: the agent tasks of step d0 stay in "
        "`collect tasks`, but each hand-off fails (channel_not_configured)"]
    assert contacts(project.db) == [] and not (tmp_path / "outbox").exists()


def test_run_with_a_documented_fallback_goes_on_and_warns_up_front(project, tmp_path):
    write(tmp_path, "channels:\n  sms: { adapter: file }\n  email: { adapter: file }\n  agent: { adapter: file }\n")
    result = project("run", "policy.yaml", "--channels", "channels.yaml", "--now", MONDAY)
    # whatsapp failed (channel_not_configured), then sms went out: the configuration chose so, and the run
    # said it up front; no provider failed, so no exit 3 at every cron tick
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("channels.yaml:1:1: warning: channels: whatsapp is not configured")
    assert "provider failure" not in result.stderr and "channel not configured │     1" in result.stdout
    rows = {r.channel: r for r in contacts(project.db)}
    assert (rows["whatsapp"].status, rows["whatsapp"].error_code) == ("failed", "channel_not_configured")
    assert rows["sms"].status == "sent"


def test_quiet_run_prints_no_warning(project, tmp_path):
    write(tmp_path, "channels:\n  sms: { adapter: file }\n  email: { adapter: file }\n  agent: { adapter: file }\n")
    result = project("run", "policy.yaml", "--channels", "channels.yaml", "--now", MONDAY, "-q", "--dry-run")
    assert result.exit_code == 0 and "warning" not in result.stderr, result.output


def test_every_channel_configured_runs_without_a_word(project, tmp_path):
    write(tmp_path, "channels:\n" + "".join(f"  {c}: {{ adapter: file }}\n"
                                            for c in ("whatsapp", "sms", "email", "agent")))
    result = project("run", "policy.yaml", "--channels", "channels.yaml", "--now", MONDAY)
    assert result.exit_code == 0 and result.stderr == "", result.output


def test_serve_stops_before_scheduling_anything(project, tmp_path, monkeypatch):
    from collect.engine import serve

    monkeypatch.setattr(serve, "serve", lambda *a, **k: pytest.fail("serve scheduled ticks"))
    write(tmp_path, "channels:\n  whatsapp: { adapter: file }\n  sms: { adapter: file }\n")
    result = project("serve", "policy.yaml", "--channels", "channels.yaml", "--every", "1h")
    assert result.exit_code == 1 and "step d1 sends on email" in result.stderr, result.output


# -- an adapter's check(plan) hook --------------------------------------------------------------------

class Picky:
    """An adapter that needs something per template of the policy."""

    name = "picky"
    supports_html = supports_templates = False
    free_text = True
    secret_settings = ("key",)

    def __init__(self, channel, **settings):
        self.channel, self.settings = channel, settings

    def send(self, message):
        return DeliveryResult.sent(message.key)

    def check(self, plan):
        if self.settings.get("explode"):
            raise RuntimeError(f"boom {self.settings['key']}")
        known = set(self.settings.get("templates", ()))
        return [f"templates: nothing for '{t}' (key {self.settings['key']})" for t in sorted(plan["templates"])
                if t not in known]


@pytest.fixture
def picky(monkeypatch):
    real = channels_module.discover

    def discover():
        classes, broken = real()
        return {**classes, "picky": Picky}, broken

    monkeypatch.setattr(channels_module, "discover", discover)


def test_an_adapters_check_stops_the_run_with_the_channels_place(project, tmp_path, picky):
    write(tmp_path, """\
        channels:
          email: { adapter: file }
          whatsapp: { adapter: file }
          sms:
            adapter: picky
            key: s3cr3t-key
        """)
    result = project("run", "policy.yaml", "--channels", "channels.yaml", "--now", MONDAY)
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines()[0] == ("error: channels.yaml:4:3: channels.sms: templates: nothing for 'm' "
                                             "(key ***)")
    assert contacts(project.db) == []


def test_an_adapter_with_what_the_policy_needs_passes_its_check(project, tmp_path, picky):
    write(tmp_path, "channels:\n  email: { adapter: file }\n  whatsapp: { adapter: file }\n  agent: { adapter: file }\n"
                    "  sms: { adapter: picky, key: k, templates: [m] }\n")
    result = project("run", "policy.yaml", "--channels", "channels.yaml", "--now", MONDAY, "--dry-run")
    assert result.exit_code == 0 and result.stderr == "", result.output


def test_a_check_that_crashes_is_a_warning_not_a_stop(project, tmp_path, picky):
    write(tmp_path, "channels:\n  email: { adapter: file }\n  whatsapp: { adapter: file }\n  agent: { adapter: file }\n"
                    "  sms: { adapter: picky, key: s3cr3t-key, explode: true }\n")
    result = project("run", "policy.yaml", "--channels", "channels.yaml", "--now", MONDAY, "--dry-run")
    assert result.exit_code == 0, result.output
    assert result.stderr == ("channels.yaml:5:3: warning: channels.sms: the picky adapter could not check the policy: "
                             "RuntimeError: boom ***\n")


# -- Twilio on WhatsApp: a Content SID for each WhatsApp template the policy sends ----------------------

TWILIO = """\
channels:
  whatsapp: {{ adapter: twilio, account_sid: AC11111111111111111111111111111111, auth_token: tok-123456,
              from: "+14155238886", base_url: "http://127.0.0.1:9"{extra} }}
  sms: {{ adapter: twilio, account_sid: AC11111111111111111111111111111111, auth_token: tok-123456,
         from: "+14155238886", base_url: "http://127.0.0.1:9" }}
  email: {{ adapter: file }}
  agent: {{ adapter: file }}
pay_link: "https://pay.example.pe/c/{{customer_id}}"
"""


def test_twilio_whatsapp_without_the_policys_content_sid_stops_the_run(project, tmp_path):
    (tmp_path / "channels.yaml").write_text(TWILIO.format(extra=""), encoding="utf-8")
    result = project("run", "policy.yaml", "--channels", "channels.yaml", "--now", MONDAY)
    assert result.exit_code == 1, result.output
    assert result.stderr == ("error: channels.yaml:2:3: channels.whatsapp: content_sids: no Content SID for the "
                             "WhatsApp template 'recordatorio_pago' (sent by step d0): Twilio cannot send it; add "
                             "recordatorio_pago: HX... to content_sids\n")
    assert "tok-123456" not in result.output and contacts(project.db) == []


def test_twilio_with_the_content_sid_or_on_sms_passes(project, tmp_path):
    extra = ", content_sids: { recordatorio_pago: HX0123456789abcdef0123456789abcdef }"
    (tmp_path / "channels.yaml").write_text(TWILIO.format(extra=extra), encoding="utf-8")
    result = project("run", "policy.yaml", "--channels", "channels.yaml", "--now", MONDAY, "--dry-run")
    assert result.exit_code == 0 and result.stderr == "", result.output
    channels = load_channels(tmp_path / "channels.yaml")
    assert channels("sms").check(plan()) == []  # SMS sends the text body: no Content SID needed
    channels.close()


def test_the_plan_a_check_gets_is_the_compiled_one(project):
    """What a check walks: stages/steps and events, each step's action, channels, template and id, and
    plan["templates"][name][channel] with its kind and template_name (docs for plugin authors)."""
    p = plan()
    (step, *_) = p["stages"][0]["steps"]
    assert (step["id"], step["action"], tuple(step["channels"]), step["template"]) == ("d0", "send",
                                                                                       ("whatsapp", "sms"), "m")
    assert dict(p["templates"]["m"]["whatsapp"])["template_name"] == "recordatorio_pago"
    assert json.loads(p.to_json())["events"] == {}


def test_a_timeout_of_0_or_less_a_negative_backoff_and_a_port_out_of_range_are_errors_when_loaded(tmp_path):
    """They loaded, and then every send failed (a non-blocking socket, a timeout out of range) and every
    contact was given up and escalated."""
    path = tmp_path / "channels.yaml"
    path.write_text(textwrap.dedent("""\
        channels:
          email: { adapter: smtp, host: localhost, port: 70000, timeout: 0, from: a@b.c }
          webhook: { adapter: webhook, url: "http://localhost:1/x", secret: s, timeout: -1 }
        retry: { attempts: 3, backoff: -30 }
        """), encoding="utf-8")
    with pytest.raises(ChannelsError) as error:
        load_channels(path)
    found = [line.split(": ", 1)[1] for line in str(error.value).splitlines()]
    assert [f.split(":")[0] for f in found] == ["channels.email.port", "channels.email.timeout",
                                                "channels.webhook.timeout", "retry.backoff"]
    # written as a duration, a negative one says so too (it said "not a duration")
    path.write_text("channels: { email: { adapter: file } }\nretry: { backoff: -1s }\n", encoding="utf-8")
    with pytest.raises(ChannelsError, match="retry.backoff: a wait cannot be negative"):
        load_channels(path)


def test_a_login_or_header_that_cannot_be_sent_as_ascii_is_an_error_when_loaded(tmp_path):
    """smtplib sends the login as ASCII, httpx the headers: a password with ñ used up every contact's
    tries (and its error told where the ñ was in the password); a header with ñ did the same."""
    path = tmp_path / "channels.yaml"
    path.write_text(textwrap.dedent("""\
        channels:
          email: { adapter: smtp, host: localhost, from: a@b.c, username: u, password: "contraseña-1" }
          webhook: { adapter: webhook, url: "http://localhost:1/x", secret: s, headers: { X-Tenant: "Compañía" } }
        """), encoding="utf-8")
    with pytest.raises(ChannelsError) as error:
        load_channels(path)
    text = str(error.value)
    assert "only ASCII characters" in text and "X-Tenant" in text and "contraseña" not in text
    assert [line.split(": ", 2)[1] for line in text.splitlines()] == ["channels.email", "channels.webhook.headers"]


def test_a_plugin_subclassing_adapter_without_settings_is_told_it_declares_none(tmp_path, monkeypatch):
    """An Adapter subclass inherits the base's Settings, which takes no setting: the hint said
    `(raw settings: )`, naming nothing."""
    from collect.adapters.base import Adapter

    class Raw(Adapter):
        name = "raw"

    real = channels_module.discover
    monkeypatch.setattr(channels_module, "discover", lambda: ({**real()[0], "raw": Raw}, real()[1]))
    path = write(tmp_path, "channels:\n  sms: { adapter: raw, token: t }\n")
    with pytest.raises(ChannelsError) as caught:
        load_channels(path)
    assert str(caught.value) == (f"{path}:2:24: channels.sms.token: unknown setting for the raw adapter (the raw "
                                 "adapter's Settings declares none)")

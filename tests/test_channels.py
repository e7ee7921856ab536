"""channels.yaml: the registry, settings checked per adapter with their place in the file, ${ENV}
references, retry and costs, and secrets kept out of every string that leaves the process."""

from __future__ import annotations

import textwrap
from decimal import Decimal
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from providers import TWILIO_SID, TWILIO_TOKEN, ProviderServer

from collect.adapters.base import Message
from collect.adapters.file import FileChannel
from collect.adapters.registry import BUILTIN_ADAPTERS, UnknownAdapter, load_adapter, registry
from collect.adapters.smtp import SmtpChannel
from collect.engine import channels as channels_module
from collect.engine.channels import Channels, ChannelsError, Retry, load_channels, pay_link_problem
from collect.engine.compiler import compile_policy

ROOT = Path(__file__).resolve().parent.parent
SPEC_EXAMPLE = """\
channels:
  email:    { adapter: smtp, host: smtp.example.com, port: 587, starttls: true,
              from: "Cobranzas <cobranzas@example.com>", username: "${SMTP_USER}", password: "${SMTP_PASSWORD}" }
  sms:      { adapter: twilio, account_sid: "${TWILIO_ACCOUNT_SID}", auth_token: "${TWILIO_AUTH_TOKEN}",
              from: "+15005550006", base_url: "https://api.twilio.com" }
  whatsapp: { adapter: whatsapp_cloud, phone_number_id: "${WA_PHONE_ID}", token: "${WA_TOKEN}",
              base_url: "https://graph.facebook.com/v21.0" }
  voice:    { adapter: twilio_voice, account_sid: "${TWILIO_ACCOUNT_SID}", auth_token: "${TWILIO_AUTH_TOKEN}",
              from: "+15005550006" }
  letter:   { adapter: file, path: outbox/letters.jsonl }
  webhook:  { adapter: webhook, url: "https://erp.example.com/hooks/collect", secret: "${WEBHOOK_SECRET}" }
  agent:    { adapter: webhook, url: "https://crm.example.com/hooks/tasks", secret: "${CRM_SECRET}" }
retry: { attempts: 3, backoff: 30s }
costs: { email: 0.001, sms: 0.045, whatsapp: 0.03, voice: 0.20, letter: 1.50 }
"""
ENV = {"SMTP_USER": "billing-mailer", "SMTP_PASSWORD": "pw-7d1c0ffee", "TWILIO_ACCOUNT_SID": TWILIO_SID,
       "TWILIO_AUTH_TOKEN": TWILIO_TOKEN, "WA_PHONE_ID": "106540352242922", "WA_TOKEN": "EAAwatoken",
       "WEBHOOK_SECRET": "whsec-erp-4242", "CRM_SECRET": "whsec-crm-4343"}


@pytest.fixture
def env(monkeypatch):
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    return ENV


def write(tmp_path, text: str):
    path = tmp_path / "channels.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems(tmp_path, text: str) -> list[tuple[str, int, str]]:
    with pytest.raises(ChannelsError) as caught:
        load_channels(write(tmp_path, text))
    return [(d.code, d.span.line if d.span else 0, d.message) for d in caught.value.diagnostics]


def message(channel="email") -> Message:
    return Message(key="k1", channel=channel, customer_id="C001", invoice_ids=("F1",), recipient="ana@example.com",
                   body="hola")


# -- registry ---------------------------------------------------------------------------------------

def test_builtins_are_registered_through_the_entry_point_group():
    declared = {ep.name: ep.value for ep in entry_points(group="collect.channels")}
    assert set(BUILTIN_ADAPTERS) <= set(declared)
    assert all(declared[name].startswith("collect.adapters.") for name in BUILTIN_ADAPTERS)
    assert registry()["smtp"] is SmtpChannel and load_adapter("file") is FileChannel


def test_unknown_adapter_names_the_available_ones():
    with pytest.raises(UnknownAdapter) as caught:
        load_adapter("sendgrid")
    assert "available: " in str(caught.value) and "smtp" in caught.value.available


# -- loading ----------------------------------------------------------------------------------------

def test_the_spec_example_loads_with_env_references(tmp_path, env):
    channels = load_channels(write(tmp_path, SPEC_EXAMPLE))
    assert {c: type(channels(c)).__name__ for c in ("email", "sms", "whatsapp", "voice", "letter", "agent")} == {
        "email": "SmtpChannel", "sms": "TwilioChannel", "whatsapp": "WhatsAppCloudChannel",
        "voice": "TwilioVoiceChannel", "letter": "FileChannel", "agent": "WebhookChannel"}
    assert channels("email").settings.password.get_secret_value() == "pw-7d1c0ffee"
    assert channels("email").settings.username == "billing-mailer"
    assert channels("sms").settings.account_sid == TWILIO_SID
    assert channels.retry == Retry(attempts=3, backoff=30.0)
    assert channels.costs == {"email": Decimal("0.001"), "sms": Decimal("0.045"), "whatsapp": Decimal("0.03"),
                              "voice": Decimal("0.20"), "letter": Decimal("1.50")}
    channels.close()


def test_the_starter_channels_yaml_loads():
    channels = load_channels(ROOT / "engine" / "starter" / "channels.yaml")
    assert isinstance(channels("letter"), FileChannel) and str(channels("letter").path) == "outbox/letters.jsonl"


def test_unset_variable_is_named_with_its_place_and_no_value_leaks(tmp_path, env, monkeypatch):
    monkeypatch.delenv("WA_TOKEN")
    monkeypatch.setenv("SMTP_PASSWORD", "")
    found = problems(tmp_path, SPEC_EXAMPLE)
    assert ("channels-env-unset", 3, "channels.email.password: environment variable SMTP_PASSWORD is empty") in found
    assert ("channels-env-unset", 6, "channels.whatsapp.token: environment variable WA_TOKEN is not set") in found
    assert len(found) == 2
    with pytest.raises(ChannelsError) as caught:
        load_channels(write(tmp_path, SPEC_EXAMPLE))
    assert not any(value in str(caught.value) for value in ENV.values())


def test_every_problem_is_reported_with_file_line_and_column(tmp_path):
    found = problems(tmp_path, """\
        channels:
          email: { adapter: smtp, hots: mail.example.com, from: billing@example.com }
          sms:   { adapter: twilo, account_sid: AC1 }
          voice: { from: "+1" }
          fax:   just a string
        retry: { attempts: 0, backof: 10s }
        costs: { sms: -1, email: cheap, emial: 0.001 }
        colour: blue
        """)
    codes = [(code, line) for code, line, _ in found]
    assert codes == [("channels-missing-setting", 2), ("channels-unknown-setting", 2), ("channels-unknown-adapter", 3),
                     ("channels-no-adapter", 4), ("channels-unknown-key", 5),  # `fax` is no channel
                     ("channels-not-mapping", 5), ("channels-bad-retry", 6), ("channels-bad-retry", 6),
                     ("channels-bad-cost", 7), ("channels-bad-cost", 7), ("channels-bad-cost", 7),  # emial
                     ("channels-unknown-key", 8)]
    assert "costs.emial: unknown channel 'emial'" in found[-2][2]
    # neither `collect report` nor `collect simulate` prices an agent task: a cost for it would be ignored
    [(code, line, message)] = problems(tmp_path, "channels:\n  sms: { adapter: file }\ncosts: { sms: 0.04, agent: 2 }\n")
    assert (code, line) == ("channels-bad-cost", 3) and message.startswith("costs.agent: an agent task is no message")
    with pytest.raises(ChannelsError) as caught:
        load_channels(write(tmp_path, "channels:\n  sms: { adapter: twilo }\n"))
    text = str(caught.value)
    assert text.startswith(f"{tmp_path / 'channels.yaml'}:2:19: channels.sms.adapter: unknown adapter 'twilo'")
    assert "available: file, smtp, twilio, twilio_voice, webhook, whatsapp_cloud" in text
    assert "did you mean 'twilio'?" in text


def test_unknown_setting_suggests_and_lists_the_adapter_settings(tmp_path):
    [(code, line, text)] = problems(tmp_path, """\
        channels:
          sms: { adapter: twilio, account_sid: AC1, auth_token: t, from: "+1", status_callbak: "https://x" }
        """)
    assert (code, line) == ("channels-unknown-setting", 2) and text.endswith("status_callbak: unknown setting for "
                                                                            "the twilio adapter")
    [(code, _, text)] = problems(tmp_path, "channels:\n  sms: { adapter: twilio, account_sid: AC1, auth_token: t }\n")
    assert code == "channels-bad-setting" and "give `from` or `messaging_service_sid`" in text


def test_bad_values_are_reported_without_echoing_them(tmp_path, monkeypatch):
    monkeypatch.setenv("SMTP_PORT", "not-a-port-secret")
    found = problems(tmp_path, """\
        channels:
          email: { adapter: smtp, host: h, port: "${SMTP_PORT}", from: a@example.com, timeout: soon }
        """)
    assert {code for code, _, _ in found} == {"channels-bad-setting"}
    assert all("not-a-port-secret" not in text for _, _, text in found)
    assert any("timeout" in text and "duration" in text for _, _, text in found)


def test_a_url_typo_is_a_setting_error_not_a_network_failure_later(tmp_path):
    [(code, line, text)] = problems(tmp_path, "channels:\n  webhook: { adapter: webhook, url: erp.example.com/hook,"
                                              " secret: whsec-1 }\n")
    assert (code, line) == ("channels-bad-setting", 2) and text == ("channels.webhook.url: expected an http:// or "
                                                                    "https:// URL")


def test_empty_or_shapeless_files(tmp_path):
    assert problems(tmp_path, "")[0][0] == "channels-not-mapping"
    assert problems(tmp_path, "channels: [email]\n")[0][0] == "channels-not-mapping"
    assert problems(tmp_path, "channels: {email: {adapter: file}\n")[0][0] == "yaml-syntax"
    with pytest.raises(ChannelsError, match="cannot read"):
        load_channels(tmp_path / "missing.yaml")


def test_retry_and_costs(tmp_path):
    channels = load_channels(write(tmp_path, "channels: { email: { adapter: file } }\nretry: { attempts: 5, backoff: 2m }\n"))
    assert channels.retry == Retry(5, 120.0) and channels.costs == {}
    assert load_channels(write(tmp_path, "channels: { email: { adapter: file } }\n")).retry == Retry(3, 30.0)


def test_a_file_naming_no_channel_is_an_error_not_every_channel_to_the_outbox(tmp_path):
    """`channels: {}` configured nothing, which is what no file means: every contact went to outbox/ and
    was recorded as delivered, where a file naming some channels leaves the others unsent."""
    with pytest.raises(ChannelsError) as caught:
        load_channels(write(tmp_path, "channels: {}\n"))
    assert str(caught.value).endswith(":1:11: expected a `channels:` mapping of channel -> {adapter: ...}; "
                                      "`channels: {}` names none")


def test_a_misspelt_top_level_key_is_named_with_a_suggestion_beside_the_missing_channels(tmp_path):
    with pytest.raises(ChannelsError) as caught:
        load_channels(write(tmp_path, "chanels:\n  email: { adapter: file }\nretries: { attempts: 2 }\n"))
    assert [line.split(": ", 1)[1] for line in str(caught.value).splitlines()] == [
        "unknown key 'chanels' (did you mean 'channels'?)",
        "expected a `channels:` mapping of channel -> {adapter: ...}",
        "unknown key 'retries' (did you mean 'retry'?)"]
    assert Retry(3, 30.0).delay(1) == 30.0 and Retry(3, 30.0).delay(3) == 120.0
    assert Retry(3, 30.0).delay(1, retry_after=90.0) == 90.0


# -- which adapter --------------------------------------------------------------------------------

def test_without_configuration_every_channel_goes_to_the_file_adapter(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    channels = load_channels(None)
    assert channels("sms").send(message("sms")).status == "sent"
    assert (tmp_path / "outbox" / "sms.jsonl").exists() and channels("sms") is channels("sms")


def test_a_channel_the_configuration_does_not_map_fails_permanently(tmp_path):
    channels = Channels({"email": {"adapter": "file", "path": str(tmp_path / "e.jsonl")}})
    result = channels("sms").send(message("sms"))
    assert (result.status, result.error_code) == ("permanent", "channel_not_configured")
    assert "configured: email" in result.error and channels.unconfigured(["email", "sms"]) == ["sms"]
    assert Channels().unconfigured(["sms"]) == []


def test_file_lines_carry_the_new_message_fields(tmp_path):
    import json

    adapter = FileChannel("whatsapp", path=str(tmp_path / "w.jsonl"))
    adapter.send(Message(key="k", channel="whatsapp", customer_id="C1", invoice_ids=("F1",), recipient="+51",
                         params=("Ana",), template_name="recordatorio_pago", template_language="es", language="es"))
    line = json.loads((tmp_path / "w.jsonl").read_text())
    assert (line["template_name"], line["template_language"], line["params"]) == ("recordatorio_pago", "es", ["Ana"])


# -- secrets ----------------------------------------------------------------------------------------

def test_redact_masks_env_values_and_secret_named_settings(tmp_path, env):
    channels = load_channels(write(tmp_path, SPEC_EXAMPLE.replace(
        "letter:   { adapter: file, path: outbox/letters.jsonl }",
        'letter:   { adapter: webhook, url: "https://print.example.com/x", secret: literal-secret-9,'
        ' headers: { X-Api-Key: "key-in-file-31" } }')))
    leaked = " | ".join([*ENV.values(), "literal-secret-9", "key-in-file-31"])
    masked = channels.redact(f"POST failed: {leaked}")
    assert masked == "POST failed: " + " | ".join(["***"] * (len(ENV) + 2))
    assert channels.redact("port 587, host smtp.example.com") == "port 587, host smtp.example.com"
    secrets = ("pw-7d1c0ffee", TWILIO_TOKEN, "EAAwatoken", "whsec-erp-4242", "whsec-crm-4343", "literal-secret-9",
               "key-in-file-31")
    for text in (repr(channels), *(repr(channels(c)) for c in channels.config),
                 *(repr(channels(c).settings) for c in channels.config)):
        assert not any(secret in text for secret in secrets), text
    channels.close()


def test_short_env_values_are_not_masked_everywhere(tmp_path, monkeypatch):
    monkeypatch.setenv("SMTP_PORT", "25")
    channels = load_channels(write(tmp_path, 'channels:\n  email: { adapter: smtp, host: h, port: "${SMTP_PORT}",'
                                             ' starttls: false, from: a@example.com }\n'))
    assert channels("email").settings.port == 25 and channels.redact("1250.00") == "1250.00"


def test_a_very_short_secret_is_masked_where_it_stands_alone_not_inside_words(tmp_path):
    channels = load_channels(write(tmp_path, 'channels:\n  webhook: { adapter: webhook, url: "https://erp.example.com/h",'
                                             ' secret: s }\n'))
    assert channels.redact("expected an http:// or https:// URL") == "expected an http:// or https:// URL"
    assert channels.redact("signed with s, key=s") == "signed with ***, key=***"
    channels.close()


def test_a_provider_error_carries_no_secret(tmp_path, monkeypatch):
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", TWILIO_SID)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "a-wrong-token-5150")
    with ProviderServer() as server:
        channels = load_channels(write(tmp_path, f"""\
            channels:
              sms: {{ adapter: twilio, account_sid: "${{TWILIO_ACCOUNT_SID}}", auth_token: "${{TWILIO_AUTH_TOKEN}}",
                     from: "+15005550006", base_url: "{server.url}" }}
            """))
        result = channels("sms").send(message("sms"))
        channels.close()
    assert result.status == "permanent" and "a-wrong-token-5150" not in repr(result)
    assert TWILIO_SID not in channels.redact(repr(result))


def test_an_adapter_that_cannot_start_is_reported_redacted(tmp_path, monkeypatch):
    class Picky:
        name = "picky"

        def __init__(self, channel, **settings):
            raise RuntimeError(f"cannot log in with {settings['api_key']}")

    real = channels_module.discover
    monkeypatch.setattr(channels_module, "discover", lambda: ({**real()[0], "picky": Picky}, {"gone": "no module"}))
    monkeypatch.setenv("PICKY_KEY", "picky-key-8080")
    with pytest.raises(ChannelsError) as caught:
        load_channels(write(tmp_path, 'channels:\n  sms: { adapter: picky, api_key: "${PICKY_KEY}" }\n'))
    assert caught.value.diagnostics[0].code == "channels-adapter-init"
    assert "cannot log in with ***" in str(caught.value) and "picky-key-8080" not in str(caught.value)
    [(code, _, text)] = problems(tmp_path, "channels:\n  sms: { adapter: gone }\n")
    assert code == "channels-broken-adapter" and "no module" in text


def test_retry_delay_is_at_most_a_day_whatever_the_provider_asks():
    """A wait added to a date must not overflow it: an endless Retry-After from a plugin, or many
    doublings of the backoff, wait a day."""
    assert Retry(3, 30.0).delay(1, retry_after=float("inf")) == 86400.0
    assert Retry(3, 30.0).delay(1, retry_after=1e300) == 86400.0
    assert Retry(3, 30.0).delay(10**6) == 86400.0
    assert Retry(3, 30.0).delay(2, retry_after=float("nan")) == 60.0


def test_a_duration_from_env_is_not_echoed_in_the_validation_error(tmp_path, monkeypatch):
    """`timeout: "${WA_TOKEN}"` printed the token: seconds() quoted the value it could not read."""
    monkeypatch.setenv("WA_TOKEN", "EAAsupersecrettoken123")
    found = problems(tmp_path, 'channels:\n  whatsapp: { adapter: whatsapp_cloud, phone_number_id: "1", '
                               'token: "${WA_TOKEN}", timeout: "${WA_TOKEN}" }\nretry: { backoff: soon-ish }\n')
    assert [code for code, _, _ in found] == ["channels-bad-setting", "channels-bad-retry"]
    assert "channels.whatsapp.timeout: not a duration" in found[0][2] and "soon-ish" not in found[1][2]
    assert not any("EAAsupersecrettoken123" in text for _, _, text in found)


def test_a_plugin_validator_that_quotes_a_value_is_redacted(tmp_path, monkeypatch):
    from pydantic import field_validator

    from collect.adapters.base import Adapter, Settings

    class QuotingSettings(Settings):
        region: str

        @field_validator("region")
        @classmethod
        def known(cls, value):
            raise ValueError(f"unknown region {value!r}")

    class Quoting(Adapter):
        name, Settings = "quoting", QuotingSettings

    real = channels_module.discover
    monkeypatch.setattr(channels_module, "discover", lambda: ({**real()[0], "quoting": Quoting}, {}))
    monkeypatch.setenv("REGION", "region-from-env-77")
    [(code, _, text)] = problems(tmp_path, 'channels:\n  sms: { adapter: quoting, region: "${REGION}" }\n')
    assert code == "channels-bad-setting" and text == "channels.sms.region: unknown region '***'"


# -- pay_link: the payment page templates link ------------------------------------------------------

FILE_ONLY = "channels:\n  email: { adapter: file, path: out/email.jsonl }\n"
# every channel the pe-b2b example sends on: a run with FILE_ONLY stops before the tick, as steps such as
# its letter step would fail for good
PE_B2B_FILES = FILE_ONLY + "".join(f"  {c}: {{ adapter: file, path: out/{c}.jsonl }}\n"
                                   for c in ("sms", "whatsapp", "letter", "webhook", "agent"))


def test_pay_link_is_read_with_its_customer_placeholder(tmp_path):
    path = tmp_path / "channels.yaml"
    path.write_text(FILE_ONLY + 'pay_link: "https://pay.acme.pe/c/{customer_id}?src=collect"\n')
    assert load_channels(path).pay_link == "https://pay.acme.pe/c/{customer_id}?src=collect"
    assert load_channels(None).pay_link is None


@pytest.mark.parametrize("value", ['"ftp://pay.acme.pe/{customer_id}"', '"https://pay.acme.pe/{invoice}"',
                                   '"https://pay.acme.pe/{customer_id"', "42"])
def test_a_bad_pay_link_is_an_error_at_its_place(tmp_path, value):
    path = tmp_path / "channels.yaml"
    path.write_text(FILE_ONLY + f"pay_link: {value}\n")
    with pytest.raises(ChannelsError) as caught:
        load_channels(path)
    (problem,) = caught.value.diagnostics
    assert problem.code == "channels-bad-pay-link" and problem.span.line == 3


def test_run_with_a_real_provider_refuses_to_send_the_example_pay_link(tmp_path, monkeypatch):
    """Customers must never get https://pay.example.com: once a real provider is configured and the
    templates use {{ pay_link }}, channels.yaml must say where the payment page is."""
    from typer.testing import CliRunner

    from collect.cli import app

    monkeypatch.chdir(tmp_path)
    example = ROOT / "examples" / "pe-b2b"
    runner = CliRunner()
    assert runner.invoke(app, ["import", "invoices", str(example / "portfolio.csv"), "--policy",
                               str(example / "policy.yaml"), "--timezone", "America/Lima"]).exit_code == 0
    real = tmp_path / "real.yaml"
    real.write_text("channels:\n  email: { adapter: smtp, host: localhost, from: a@b.co }\n")
    result = runner.invoke(app, ["run", str(example / "policy.yaml"), "--channels", str(real), "-q"])
    assert result.exit_code == 1 and "has no pay_link" in result.stderr
    files = tmp_path / "files.yaml"
    files.write_text(PE_B2B_FILES + 'pay_link: "https://pay.acme.pe/c/{customer_id}"\n')
    result = runner.invoke(app, ["run", str(example / "policy.yaml"), "--channels", str(files), "-q",
                                 "--now", "2026-11-16T14:00:00Z"])
    assert result.exit_code in (0, 3), result.output  # 3: the channels files.yaml leaves out fail
    sent = (tmp_path / "out" / "email.jsonl").read_text()
    assert "https://pay.acme.pe/c/C0" in sent and "pay.example.com" not in sent


def test_letters_on_the_file_adapter_need_a_pay_link_and_other_outbox_channels_do_not(tmp_path):
    """The letters' file goes to a print-and-mail service: us-consumer's validation notice was mailed
    with https://pay.example.com/c/U100. The other channels' outbox files only show what would be sent."""
    plan = compile_policy(ROOT / "examples" / "us-consumer" / "policy.yaml").plan
    with_letters = load_channels(write(tmp_path, "channels:\n  email: { adapter: file }\n  letter: { adapter: file }\n"))
    assert pay_link_problem(with_letters, plan) == (
        "the policy's letter templates use {{ pay_link }}, and channels.yaml has no pay_link: add "
        "pay_link: https://<your payment page>/{customer_id}")
    assert pay_link_problem(load_channels(write(tmp_path, "channels:\n  email: { adapter: file }\n")), plan) is None


# -- secrets with odd characters ---------------------------------------------------------------------

def test_an_env_value_with_a_line_break_is_refused_without_showing_it(tmp_path, monkeypatch):
    """A token read from a .env file with Windows line endings ends in \\r: an HTTP library would refuse
    the header and print it escaped, past the exact-match redaction."""
    monkeypatch.setenv("CRM_TOKEN", "crm-token-4242\r")
    path = write(tmp_path, """\
        channels:
          agent: { adapter: webhook, url: "https://crm.example.com/hooks", headers: { Authorization: "Bearer ${CRM_TOKEN}" } }
        """)
    with pytest.raises(ChannelsError) as caught:
        load_channels(path)
    (problem,) = caught.value.diagnostics
    assert problem.code == "channels-env-control" and "CRM_TOKEN" in problem.message
    assert "crm-token-4242" not in str(caught.value)


def test_redaction_also_masks_a_secret_as_python_escapes_it():
    from collect.adapters.base import redact

    secret = "tok-ü-4242\r"
    shown = f"LocalProtocolError: Illegal header value {('Bearer ' + secret).encode()!r}; {secret!r}"
    assert "tok" not in redact(shown, {secret}) and "4242" not in redact(shown, {secret})



def test_the_customer_id_is_one_encoded_segment_of_the_pay_link(tmp_path, monkeypatch):
    """An id from the ERP such as `C1/../../account?next=...#` must not turn the link into another page of
    the payment site: it goes into the link percent-encoded, as one path segment."""
    from typer.testing import CliRunner

    from collect.cli import app

    monkeypatch.chdir(tmp_path)
    example = ROOT / "examples" / "pe-b2b"
    (tmp_path / "p.csv").write_text("invoice_id,customer_id,amount,due_date,email,timezone\n"
                                    "F1,C1/../../account?next=https://evil.example#,100,2026-11-09,a@example.com,"
                                    "America/Lima\n")
    runner = CliRunner()
    assert runner.invoke(app, ["import", "invoices", "p.csv", "--policy", str(example / "policy.yaml")]).exit_code == 0
    (tmp_path / "ch.yaml").write_text(PE_B2B_FILES + 'pay_link: "https://pay.acme.pe/c/{customer_id}"\n')
    result = runner.invoke(app, ["run", str(example / "policy.yaml"), "--channels", "ch.yaml", "-q",
                                 "--now", "2026-11-10T15:00:00Z"])  # tem-1, by email
    assert result.exit_code in (0, 3), result.output
    sent = (tmp_path / "out" / "email.jsonl").read_text()
    assert "https://pay.acme.pe/c/C1%2F..%2F..%2Faccount%3Fnext%3Dhttps%3A%2F%2Fevil.example%23" in sent
    assert "c/C1/../" not in sent

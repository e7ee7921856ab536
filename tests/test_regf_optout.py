"""us-reg-f's electronic opt-out (SPEC 5; 12 CFR 1006.6(e): every email and text message says how to opt
out), checked at compile time: each email, SMS or WhatsApp text body that a send step uses must offer a
way to opt out, a stop keyword ("Reply STOP", "Responda BAJA") or an unsubscribe / opt-out link or
wording; else a warning at the body, naming the template and channel and what to add. A us-reg-f policy
whose SMS and email said nothing compiled silently (the profile listed the rule as not covered)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from collect.engine.compiler import compile_policy
from collect.engine.compliance import load_profile

ROOT = Path(__file__).parent.parent
CODE = "compliance-no-opt-out"


BOTH = "      - { id: a, at: due+1d 10:00, send: [sms, email], template: m }\n"
SMS = "      - { id: a, at: due+1d, send: sms, template: m }\n"


def policy(tmp_path, templates: str, steps: str = BOTH, compliance: str = "[us-reg-f]", extra: str = ""):
    path = tmp_path / "policy.yaml"
    path.write_text(textwrap.dedent("""\
        policy: p
        timezone: America/New_York
        currency: USD
        calendar: { country: US }
        compliance: %s
        windows:
          default: { mon-sun: "09:00-20:00" }
        %stemplates:
        """) % (compliance, extra) + templates + "stages:\n  s:\n    when: true\n    steps:\n" + steps,
        encoding="utf-8")
    return compile_policy(path)


def opt_outs(result) -> list[tuple[int, int, str]]:
    return [(d.span.line, d.span.col, d.message) for d in result.diagnostics.sorted() if d.code == CODE]


SILENT = """\
  m:
    email: { subject: "Payment due", body: "Please pay {{ total_balance | money }} now." }
    sms: "Please pay {{ total_balance | money }} now."
"""


@pytest.mark.parametrize("compliance", ["[us-reg-f]", "[co-ley-2300, us-reg-f]", "auto"])
def test_sms_and_email_without_an_opt_out_warn_at_their_bodies(tmp_path, compliance):
    result = policy(tmp_path, SILENT, compliance=compliance)
    assert result.plan is not None  # a warning: the plan still compiles
    found = opt_outs(result)
    assert [(line, col) for line, col, _ in found] == [(10, 44), (11, 10)]  # the email body, the SMS text
    email, sms = (message for _, _, message in found)
    assert email.startswith("template 'm' (email body) says nowhere how to opt out: us-reg-f wants every email, "
                            "text or other electronic message to say how to stop them (12 CFR 1006.6(e)); add ")
    assert '"To stop receiving these emails, reply UNSUBSCRIBE."' in email and "unsubscribe link" in email
    assert sms.startswith("template 'm' (sms) says nowhere how to opt out") and '"Reply STOP to opt out."' in sms
    hints = {d.hint for d in result.diagnostics.items if d.code == CODE}
    assert hints == {"us-reg-f: rule electronic-opt-out (docs/compliance.md)"}
    assert all(d.severity == "warning" for d in result.diagnostics.items if d.code == CODE)


def test_other_profiles_do_not_ask_for_an_opt_out(tmp_path):
    assert opt_outs(policy(tmp_path, SILENT, compliance="[cl-sernac]")) == []
    path = tmp_path / "none.yaml"
    path.write_text((tmp_path / "policy.yaml").read_text().replace("compliance: [cl-sernac]\n", ""))
    assert opt_outs(compile_policy(path)) == []


@pytest.mark.parametrize("text", [
    "Pay now. Reply STOP to opt out.",
    "Pay now. Text stop to end these messages.",
    "Pay now. To stop receiving these messages, reply QUIT.",
    "Pay now. Opt-out: reply Q.",
    "Pay now. Opt out at https://example.com/o",
    "Pay now. Unsubscribe: {{ customer.unsubscribe_url }}",
    "Pay now: {{ pay_link }}. Manage messages: https://example.com/unsubscribe?c={{ customer.id }}",
    "Pague ahora. Responda BAJA para no recibir más mensajes.",
    "Pague ahora. Para darse de baja, responda NO.",
    "{% if customer.language == 'es' %}Responda BAJA{% else %}Reply STOP{% endif %} to opt out.",
])
def test_a_stop_keyword_or_an_unsubscribe_link_is_an_opt_out(tmp_path, text):
    templates = f'  m:\n    email: {{ subject: "Pay", body: "{text}" }}\n    sms: "{text}"\n'
    result = policy(tmp_path, templates, extra="fields: { customer.unsubscribe_url: str }\n")
    assert result.plan is not None, [d.render() for d in result.diagnostics.items]
    assert opt_outs(result) == []


def test_the_check_reads_words_not_meaning(tmp_path):
    """Kept simple on purpose: a body that uses a keyword for something else passes."""
    sms = '  m:\n    sms: "Pay now and we will stop calling."\n'
    assert opt_outs(policy(tmp_path, sms, SMS)) == []


@pytest.mark.parametrize("text", ["Payment stopped? Call us.", "Nonstop service. Pay now.", "Out of options? Pay now.",
                                  "Pague su deuda, bajamos la cuota."])
def test_words_that_only_contain_a_keyword_are_no_opt_out(tmp_path, text):
    found = opt_outs(policy(tmp_path, f'  m:\n    sms: "{text}"\n', SMS))
    assert len(found) == 1


def test_only_electronic_messages_that_a_step_sends_are_checked(tmp_path):
    """Letters and calls need no opt-out notice; a body no step sends on its channel is not checked; a
    fallback channel is (the step may send on it). A WhatsApp text is an electronic message too; a
    WhatsApp template approved by Meta has its text elsewhere and is not checked."""
    templates = """\
  m:
    email: { subject: "Pay", body: "Pay now." }
    sms: "Pay now."
    letter: "Pay now."
    voice: "Pay now."
  chat:
    whatsapp: "Pay now."
  meta:
    whatsapp: { template_name: reminder, language: en, params: ["{{ customer.name }}"] }
"""
    steps = """\
      - { id: a, at: due+1d 10:00, send: [voice, sms], template: m }
      - { id: b, at: due+2d 10:00, send: letter, template: m }
      - { id: c, at: due+3d 10:00, send: whatsapp, template: chat }
      - { id: d, at: due+4d 10:00, send: whatsapp, template: meta }
      - { id: e, at: due+5d 10:00, send: [sms, voice], template: m }
"""
    found = opt_outs(policy(tmp_path, templates, steps))
    assert [message.split(" says")[0] for _, _, message in found] == ["template 'm' (sms)",
                                                                       "template 'chat' (whatsapp)"]


def test_an_email_html_part_needs_one_too(tmp_path):
    templates = """\
  m:
    email:
      subject: "Pay"
      body: "Pay now. Reply UNSUBSCRIBE to stop these emails."
      html: "<p>Pay now.</p>"
    sms: "Pay now. Reply STOP to opt out."
"""
    found = opt_outs(policy(tmp_path, templates))
    assert [(line, message.split(" says")[0]) for line, _, message in found] == [(13, "template 'm' (email html)")]


def test_a_body_is_warned_once_however_many_steps_use_it(tmp_path):
    steps = "".join(f"      - {{ id: s{d}, at: due+{d}d 10:00, send: [sms, email], template: m }}\n" for d in (1, 3, 5))
    assert len(opt_outs(policy(tmp_path, SILENT, steps))) == 2


def test_event_steps_are_checked_and_steps_that_never_fire_are_not(tmp_path):
    templates = SILENT + '  n:\n    sms: "Pay now."\n'
    steps = ("      - { id: a, at: due+1d 10:00, if: 1 > 2, send: [sms, email], template: m }\n"
             "events:\n  promise_broken:\n    - { id: b, at: event+1d, send: sms, template: n }\n")
    found = opt_outs(policy(tmp_path, templates, steps))
    assert [message.split(" says")[0] for _, _, message in found] == ["template 'n' (sms)"]


def test_the_text_dsl_and_a_templates_dir_are_placed_too(tmp_path):
    (tmp_path / "tpl").mkdir()
    (tmp_path / "tpl" / "r.email.j2").write_text("Subject: Pay\n\nPlease pay now.\n", encoding="utf-8")
    (tmp_path / "tpl" / "r.sms.j2").write_text("Pay now, reply STOP to opt out.\n", encoding="utf-8")
    path = tmp_path / "p.collect"
    path.write_text(textwrap.dedent('''\
        policy p
        timezone America/New_York
        currency USD
        compliance us-reg-f
        window default mon-sun 09:00-20:00
        template m email {
          subject "Payment due"
          body """Hi,
        please pay.
        """
        }
        template m sms "Please pay {{ total_balance | money }} now."
        templates_dir "tpl/"
        stage s when true {
          a at due+1d 10:00 send sms, email with m
          b at due+2d 10:00 send email, sms with r
        }
        '''), encoding="utf-8")
    found = [d for d in compile_policy(path).diagnostics.sorted() if d.code == CODE]
    assert [(d.span.file, d.span.line, d.span.col) for d in found] == [
        (str(path), 8, 8), (str(path), 12, 16), (str(tmp_path / "tpl" / "r.email.j2"), 1, 1)]  # at its own file
    assert found[2].message.startswith("template 'r' (email body) says nowhere")


@pytest.mark.parametrize("example", ["us-consumer/policy.yaml", "us-consumer/policy.collect"])
def test_the_us_example_offers_an_opt_out_in_every_message(example):
    result = compile_policy(ROOT / "examples" / example)
    assert result.plan is not None and opt_outs(result) == []


def test_the_profile_no_longer_lists_the_opt_out_as_not_covered():
    doc = load_profile("us-reg-f")
    assert not any("1006.6(e)" in item and "template content" in item for item in doc["not_covered"])
    assert any(source["id"] == "reg-f-1006-6-e" for source in doc["sources"])


def test_an_opt_out_only_in_a_jinja_comment_is_none(tmp_path):
    """`{# reply STOP line to add #}` never reaches the customer: the SMS still says nowhere how to stop."""
    result = policy(tmp_path, '  m:\n    sms: "Please pay now. {# TODO: add the Reply STOP line #}"\n', steps=SMS)
    assert len(opt_outs(result)) == 1
    assert opt_outs(policy(tmp_path, '  m:\n    sms: "Please pay now. {# note #} Reply STOP to opt out."\n',
                           steps=SMS)) == []

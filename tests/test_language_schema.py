"""`collect schema`: a JSON Schema of the policy file as people write it (checked with jsonschema)."""

import json
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from collect.cli import app
from collect.dsl.diagnostics import Diagnostics
from collect.dsl.yamlload import load_yaml
from collect.engine.compiler import compile_policy

ROOT = Path(__file__).resolve().parent.parent
WRITTEN = sorted(ROOT.glob("examples/*/policy.yaml")) + [ROOT / "engine/starter/policy.yaml"]

# every key, and every form a key may take (SPEC section 2)
EVERY_KEY = """
policy: every-key
description: Every key in every form
timezone: America/Lima
currency: PEN
calendar: { country: CL, subdivision: RM, extra_holidays: [2026-12-24, 2026-12-31], weekend: [sat, sun] }
fields: { customer.risk_score: float, invoice.po_number: str }
compliance: [co-ley-2300, cl-sernac]
compliance_settings:
  co-ley-2300: { week: rolling }
  cl-sernac: { spacing: 2d, week: calendar }
windows:
  default: { mon-fri: "08:00-19:00", sat: "09:00-13:00", sun: closed }
  email: { "mon,wed,fri": ["07:00-12:00", "14:00-21:00"], "tue,thu": "08:00-12:00, 14:00-18:00" }
  voice: { mon-fri: "09:00-18:00" }
  holidays: open
caps:
  - { channel: any, max: 7, per: 7d }
  - { max: 1, per: 24h }
  - { channel: voice, max: 3, per: 1w, cooldown_after_conversation: 7d }
on_cap: skip
segments:
  risky: customer.risk_score >= 0.7
  always: true
  big: invoice.amount >= 20000 and not risky
group_by: invoice
catch_up: all
max_lateness: 2d
templates:
  t:
    email: { subject: "Factura {{ invoice.number }}", body: "Hola {{ customer.name }}", html: "<p>x</p>" }
    sms: "Hola {{ customer.name }}: {{ total_balance | money }} {{ pay_link }}"
    voice: { body: "Hola" }
    whatsapp: { template_name: recordatorio, language: es, params: ["{{ customer.name }}"] }
templates_dir: null
stages:
  early:
    when: invoice.days_past_due between 1 and 30
    steps:
      - { id: a, at: due+1d, send: email, template: t }
      - { id: b, at: due+2d 10:30, for: big, if: not risky, send: [whatsapp, sms], template: t, on_exhausted: escalate }
      - { id: c, at: due+3d, send: sms, template: t, on_exhausted: { queue: agents, priority: 5 } }
      - { id: d, at: due+4d, send: sms, template: t, on_exhausted: { escalate: { queue: agents } } }
      - { id: e, at: due+5d, escalate: { queue: key-accounts, priority: "invoice.balance * 2" } }
      - { id: f, at: due+6d, webhook: legal }
      - { id: g, at: due+7d, stop: true }
  late:
    when: true
    steps: []
events:
  promise_made: [ { id: pm, at: promise-1d 09:00, send: sms, template: t } ]
  promise_broken: [ { id: pb, at: event+1d, send: [sms, email], template: t } ]
pause_when: [disputed]
stop_when: [paid, written_off]
experiments:
  tone: { unit: customer, variants: { soft: 45, firm: 45, holdout: 10 } }
"""

INVALID = [
    ("unknown key", "colour: blue"),
    ("bad duration", "max_lateness: 7x"),
    ("send is not a channel", "stages: { s: { when: true, steps: [ { id: a, at: due, send: 5, template: t } ] } }"),
    ("bad trigger", "stages: { s: { when: true, steps: [ { id: a, at: tomorrow, stop: true } ] } }"),
    ("bad on_exhausted", "stages: { s: { when: true, steps: [ { id: a, at: due, send: sms, template: t, "
                         "on_exhausted: later } ] } }"),
    ("bad hours", 'windows: { default: { mon-fri: "8 to 7" } }'),
    ("bad day", 'windows: { default: { mon-fry: "08:00-19:00" } }'),
    ("setting not a scalar", "compliance_settings: { us-reg-f: { week: [a, b] } }"),
    ("empty expression", 'segments: { a: "" }'),
    ("cap over no time", "caps: [ { max: 3, per: 0d } ]"),
    ("zero cooldown", "caps: [ { max: 3, per: 7d, cooldown_after_conversation: 0h } ]"),
]


@pytest.fixture(scope="module")
def validator():
    result = CliRunner().invoke(app, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _data(text: str, name: str = "p.yaml"):
    diags = Diagnostics()
    located = load_yaml(text, name, diags)
    assert located is not None and not diags.errors, diags.items
    return located.data  # YAML 1.2, as an editor reads it: dates and times stay text


@pytest.mark.parametrize("path", WRITTEN, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_schema_accepts_the_examples_and_the_starter(validator, path):
    errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(_data(path.read_text(encoding="utf-8")))]
    assert errors == []


def test_schema_describes_the_file_not_the_normalised_model(validator, tmp_path):
    """Scalar-or-list channels, hours as text or lists, `on_exhausted: escalate`, `when: true` ..."""
    path = tmp_path / "every.yaml"
    path.write_text(EVERY_KEY, encoding="utf-8")
    result = compile_policy(path)
    assert result.plan is not None, [d.render() for d in result.diagnostics.items]
    assert [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(_data(EVERY_KEY))] == []
    assert validator.is_valid({**_data(EVERY_KEY), "compliance": "auto"})
    assert validator.is_valid({**_data(EVERY_KEY), "compliance_settings": {"x": {"n": 3, "f": 0.5, "b": True}}})


@pytest.mark.parametrize("what, extra", INVALID, ids=[w for w, _ in INVALID])
def test_schema_rejects_what_validate_rejects(validator, tmp_path, what, extra):
    text = "policy: x\ntimezone: UTC\nstages: {}\n" if not extra.startswith("stages") else "policy: x\ntimezone: UTC\n"
    data = _data(text + extra + "\n")
    assert not validator.is_valid(data)
    path = tmp_path / "p.yaml"
    path.write_text(text + extra + "\n", encoding="utf-8")
    assert compile_policy(path).diagnostics.errors

"""Compiler passes, static checks, the plan, and the commands built on them."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from collect.cli import app
from collect.engine.compiler import compile_policy
from collect.engine.plan import Plan

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*/policy.*"))
runner = CliRunner()

HEAD = """
policy: t
timezone: America/Lima
windows:
  default: { mon-fri: "08:00-19:00" }
templates:
  m:
    email: { subject: s, body: b }
    sms: "x"
"""


def compile_text(tmp_path, body: str):
    path = tmp_path / "p.yaml"
    path.write_text(HEAD + body, encoding="utf-8")
    return compile_policy(path)


def codes(result):
    return sorted(d.code for d in result.diagnostics.items)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_examples_compile(path):
    result = compile_policy(path)
    assert result.plan is not None, [d.render() for d in result.diagnostics.items]
    assert {d.code for d in result.diagnostics.items} <= {"compliance-not-enforced"}


def test_plan_is_canonical_immutable_and_hash_checked():
    plan = compile_policy(ROOT / "examples/pe-b2b/policy.yaml").plan
    text = plan.to_json(indent=None)
    assert text == json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert plan["schema_version"] == 1
    with pytest.raises(TypeError):
        plan.doc["policy"] = "x"
    assert Plan.from_json(plan.to_json()).plan_hash == plan.plan_hash
    tampered = json.loads(plan.to_json())
    tampered["currency"] = "USD"
    with pytest.raises(ValueError, match="does not match"):
        Plan.from_json(json.dumps(tampered))


def test_spelling_does_not_change_the_hash(tmp_path):
    a = compile_text(tmp_path, "stages:\n  s:\n    when: invoice.days_past_due>=1\n    steps:\n"
                               "      - { id: a, at: due+7d, send: email, template: m }\n"
                               "caps: [ { channel: any, max: 2, per: 7d } ]\n")
    b = compile_text(tmp_path, "stages:\n  s:\n    when: 'invoice.days_past_due >= 1'\n    steps:\n"
                               "      - { id: a, at: due + 7d, send: [email], template: m }\n"
                               "caps: [ { channel: any, max: 2, per: 1w } ]\n")
    assert a.plan.plan_hash == b.plan.plan_hash


@pytest.mark.parametrize("body, expected", [
    # a step whose day lies outside its stage / inside an earlier stage
    ("stages:\n  s:\n    when: invoice.days_past_due > 5\n    steps:\n      - { id: a, at: due+1d, send: email, template: m }\n",
     ["step-outside-stage"]),
    ("stages:\n  a:\n    when: invoice.days_past_due >= 0\n    steps: []\n  b:\n    when: invoice.days_past_due > 3\n"
     "    steps:\n      - { id: x, at: due+4d, send: email, template: m }\n", ["step-shadowed"]),
    # two steps with the same trigger and channel
    ("stages:\n  s:\n    when: invoice.days_past_due > 0\n    steps:\n      - { id: a, at: due+1d, send: email, template: m }\n"
     "      - { id: b, at: due+1d, send: [sms, email], template: m }\n", ["double-send"]),
    # a cadence that exceeds a cap by itself
    ("caps: [ { channel: sms, max: 1, per: 7d } ]\nstages:\n  s:\n    when: invoice.days_past_due > 0\n    steps:\n"
     "      - { id: a, at: due+1d, send: sms, template: m }\n      - { id: b, at: due+3d, send: sms, template: m }\n",
     ["cadence-exceeds-cap"]),
    # a segment that is always false
    ("segments: { never: 1 > 2 }\nstages:\n  s:\n    when: invoice.days_past_due > 0\n    steps: []\n", ["never-true"]),
    # two steps at one trigger send two messages: they add up against a cap on any channel
    ("caps: [ { channel: any, max: 1, per: 1d } ]\nstages:\n  s:\n    when: invoice.days_past_due > 0\n    steps:\n"
     "      - { id: a, at: due+1d 10:00, send: sms, template: m }\n"
     "      - { id: b, at: due+1d 10:00, send: email, template: m }\n", ["cadence-exceeds-cap"]),
    # alternatives of an experiment on the same day do not add up against a cap
    ("experiments: { e: { variants: { x: 50, y: 50 } } }\ncaps: [ { channel: sms, max: 1, per: 1d } ]\nstages:\n  s:\n"
     "    when: invoice.days_past_due > 0\n    steps:\n"
     "      - { id: a, at: due+1d, if: variant(\"e\") == \"x\", send: sms, template: m }\n"
     "      - { id: b, at: due+1d, if: variant(\"e\") == \"y\", send: sms, template: m }\n", []),
])
def test_static_checks(tmp_path, body, expected):
    assert codes(compile_text(tmp_path, body)) == expected


@pytest.mark.parametrize("unreachable", [
    "      - { id: c, at: due+40d, send: sms, template: m }\n",  # outside the stage's `when`
    "      - { id: c, at: due+3d, if: never, send: sms, template: m }\n",  # an always-false segment
    "      - { id: c, at: due+3d, for: invoice.amount > 10 and invoice.amount < 5, send: sms, template: m }\n",
])
def test_cadence_exceeds_cap_ignores_steps_that_can_never_fire(tmp_path, unreachable):
    result = compile_text(tmp_path, "caps: [ { channel: sms, max: 2, per: 7d } ]\n"
                                    "segments: { never: invoice.amount > 10 and invoice.amount < 5 }\nstages:\n  s:\n"
                                    "    when: invoice.days_past_due between 1 and 30\n    steps:\n"
                                    "      - { id: a, at: due+1d, send: sms, template: m }\n"
                                    "      - { id: b, at: due+2d, send: sms, template: m }\n" + unreachable)
    assert "cadence-exceeds-cap" not in codes(result)
    assert set(codes(result)) <= {"never-true", "step-outside-stage"}


@pytest.mark.parametrize("condition, never", [
    ("invoice.amount > 10 and invoice.amount < 5", True),
    ("invoice.amount >= 10 and invoice.amount <= 10", False),
    ("invoice.amount > 10 and invoice.amount <= 10", True),
    ("invoice.days_past_due between 9 and 3", True),
    ('customer.country == "PE" and customer.country in ["CO", "MX"]', True),
    ('customer.country == "PE" and customer.country != "PE"', True),
    ("customer.email is null and customer.email == \"x\"", True),
    ("invoice.amount > 10 and (invoice.amount < 5 or customer.open_invoices > 1)", False),
    ("(invoice.amount > 10 and invoice.amount < 5) or invoice.amount > 100", False),
    ("invoice.due_date > 2026-02-01 and invoice.due_date < 2026-01-01", True),
    ("invoice.amount > 10 and not (invoice.amount > 5)", False),  # `not` is not reasoned about: no false alarm
])
def test_contradictory_ranges_on_one_field_are_never_true(tmp_path, condition, never):
    result = compile_text(tmp_path, f"segments: {{ s: '{condition}' }}\nstages: {{}}\n")
    assert ("never-true" in codes(result)) is never, [d.render() for d in result.diagnostics.items]


def test_window_that_never_opens(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(HEAD.replace('default: { mon-fri: "08:00-19:00" }', "email: { mon: closed }")
                    + "stages:\n  s:\n    when: invoice.days_past_due > 0\n    steps:\n"
                      "      - { id: a, at: due+1d, send: [sms, email], template: m }\n")
    result = compile_policy(path)
    assert [(d.code, d.span.line) for d in result.diagnostics.items] == [("window-never-opens", 14)] * 2


@pytest.mark.parametrize("days, second, day", [
    ('mon-fri: "07:00-20:00", wed: "09:00-10:00"', "wed:", "wed"),
    # two spellings of the same days became one key: the second one's hours were silently lost
    ('mon-wed: "07:00-20:00", "mon,tue,wed": "09:00-10:00"', '"mon,tue,wed"', "mon"),
])
def test_a_day_given_twice_in_a_window_is_reported_at_the_second_key(tmp_path, days, second, day):
    text = HEAD.replace('default: { mon-fri: "08:00-19:00" }', f"email: {{ {days} }}") + "stages: {}\n"
    (tmp_path / "p.yaml").write_text(text)
    (error,) = compile_policy(tmp_path / "p.yaml").diagnostics.items
    line = next(n for n, t in enumerate(text.splitlines(), 1) if "email: {" in t)
    assert (error.code, error.span.line, error.span.col) == ("bad-value", line, text.splitlines()[line - 1].index(second) + 1)
    assert error.message == f"'{day}' appears twice in this window"


def test_a_day_given_twice_hides_no_other_error_of_its_window(tmp_path):
    days = 'mon-fri: "08:00-19:00", sat: "25:00-26:00", xyz: "09:00-10:00", wed: "09:00-10:00"'
    text = HEAD.replace('default: { mon-fri: "08:00-19:00" }', f"email: {{ {days} }}") + "stages: {}\n"
    (tmp_path / "p.yaml").write_text(text)
    messages = [d.message for d in compile_policy(tmp_path / "p.yaml").diagnostics.sorted()]
    assert messages == ["'25:00' is not a valid time of day (00:00 to 23:59)",
                        "'xyz' is not a day; use mon, tue, wed, thu, fri, sat, sun", "'wed' appears twice in this window"]


def test_cadence_warning_names_steps_count_and_limit(tmp_path):
    result = compile_text(tmp_path, "caps: [ { channel: sms, max: 1, per: 7d } ]\nstages:\n  s:\n"
                                    "    when: invoice.days_past_due > 0\n    steps:\n"
                                    "      - { id: a, at: due+1d, send: sms, template: m }\n"
                                    "      - { id: b, at: due+3d, send: sms, template: m }\n")
    (warning,) = result.diagnostics.items
    assert "steps a, b send 2 messages on sms within 1w" in warning.message and "allows 1" in warning.message


@pytest.mark.parametrize("cap, first, second, warned", [
    ("1, per: 2h", "due+1d 09:00", "due+1d 15:00", False),  # six hours apart: the cap of 2 hours holds neither
    ("1, per: 1d", "due+1d 18:00", "due+2d 09:00", True),  # 15 hours apart: within a day, the second waits
    ("1, per: 1d", "due+1d 09:00", "due+2d 09:00", False),  # a day apart exactly: each goes
    ("1, per: 1d", "due+1d", "due+2d 07:00", False),  # 07:00 waits for 08:00: a whole day after the first
    ("1, per: 3h", "due+1d 07:00", "due+1d 10:00", True),  # 07:00 goes at the 08:00 opening, 2 hours before
    ("1, per: 15h", "due+1d 18:00", "due+1d 21:00", True),  # 21:00 is after closing: the next 08:00, 14h later
    ("1, per: 12h", "due+1d 18:00", "due+1d 21:00", False),
])
def test_the_cadence_check_counts_the_trigger_times_not_whole_days(tmp_path, cap, first, second, warned):
    """A cap of hours was rounded up to a day and times were left out: a false warning for two SMS six
    hours apart under `1 per 2h`, none for two 15 hours apart under `1 per 1d`."""
    result = compile_text(tmp_path, f"caps: [ {{ channel: sms, max: {cap} }} ]\nstages:\n  s:\n"
                                    "    when: invoice.days_past_due > 0\n    steps:\n"
                                    f"      - {{ id: a, at: {first}, send: sms, template: m }}\n"
                                    f"      - {{ id: b, at: {second}, send: sms, template: m }}\n")
    assert ("cadence-exceeds-cap" in codes(result)) is warned


def test_missing_template_body_and_anchor_errors(tmp_path):
    result = compile_text(tmp_path, "stages:\n  s:\n    when: invoice.days_past_due > 0\n    steps:\n"
                                    "      - { id: a, at: due+1d, send: [whatsapp], template: m }\n"
                                    "      - { id: b, at: event+1d, send: email, template: m }\n"
                                    "events:\n  promise_broken: [ { id: c, at: promise+1d, send: email, template: m } ]\n"
                                    "  payment_partial: [ { id: d, at: promise+1d, send: email, template: m } ]\n")
    assert codes(result) == ["bad-anchor", "bad-anchor", "missing-template-body"]


def test_a_step_whose_for_and_if_contradict_is_never_true(tmp_path):
    result = compile_text(tmp_path, "stages:\n  s:\n    when: invoice.days_past_due >= 0\n    steps:\n"
                                    "      - { id: a, at: due, for: invoice.amount > 10, if: invoice.amount < 5,"
                                    " send: sms, template: m }\n"
                                    "      - { id: b, at: due+1d, for: invoice.amount > 10, if: invoice.amount < 50,"
                                    " send: sms, template: m }\n")
    assert [(d.code, d.span.line) for d in result.diagnostics.items] == [("never-true", 14)]


def test_a_folded_duration_over_ten_years_is_an_error_not_a_crash(tmp_path):
    for when, col in (("invoice.issue_date + 1d * 4000 > invoice.due_date", 32),
                      ("invoice.due_date < 2026-01-01 + 1d * 100000000", 43)):
        result = compile_text(tmp_path, f"stages:\n  s:\n    when: {when}\n    steps: []\n")
        assert [(d.code, d.span.line, d.span.col) for d in result.diagnostics.items] == [("bad-value", 12, col)]


@pytest.mark.parametrize("cap", ["{ channel: any, max: 3, per: 0d }", "{ max: 1, per: 00w }", "{ max: 1, per: 0m }",
                                 "{ max: 1, per: 1d, cooldown_after_conversation: 0h }"])
def test_a_cap_over_no_time_is_an_error_at_its_value_not_a_cap_that_never_holds(tmp_path, cap):
    result = compile_text(tmp_path, f"caps:\n  - {cap}\nstages: {{}}\n")
    assert result.plan is None
    col = len("  - ") + cap.index(": 0") + 3
    assert [(d.code, d.span.line, d.span.col) for d in result.diagnostics.items] == [("bad-value", 11, col)]
    assert "must be more than 0" in result.diagnostics.items[0].message


def test_a_cap_over_no_time_is_an_error_in_a_collect_file_too(tmp_path):
    path = tmp_path / "p.collect"
    path.write_text("policy t\ntimezone America/Lima\nwindow default mon-fri 08:00-19:00\n"
                    "cap sms 1 per 0d\ncap any 2 per 1d cooldown after conversation 0m\n"
                    "stage s when true { a at due: stop }\n", encoding="utf-8")
    found = [(d.code, d.span.line, d.span.col) for d in compile_policy(path).diagnostics.items]
    assert found == [("bad-value", 4, 15), ("bad-value", 5, 46)]


@pytest.mark.parametrize("catch_up, warned", [("none", True), ("latest", False), ("all", False)])
def test_max_lateness_zero_is_allowed_and_warned_about_only_with_catch_up_none(tmp_path, catch_up, warned):
    """0 means no lateness at all: with catch_up: none a step is missed unless a run starts at its very trigger."""
    result = compile_text(tmp_path, f"max_lateness: 0d\ncatch_up: {catch_up}\nstages: {{}}\n")
    assert result.plan is not None and result.plan.to_dict()["max_lateness_minutes"] == 0
    assert [(d.code, d.span.line) for d in result.diagnostics.items] == ([("no-lateness", 10)] if warned else [])
    assert codes(compile_text(tmp_path, "max_lateness: 1h\ncatch_up: none\nstages: {}\n")) == []


WEEKEND = {"p.yaml": "policy: t\ntimezone: UTC\ncalendar: {{ weekend: [{weekend}] }}\n"
                     "windows: {{ default: {{ {days}: '08:00-19:00' }}, email: {{ sun: '09:00-12:00' }} }}\n"
                     "templates: {{ m: {{ sms: x, email: {{ subject: s, body: b }} }} }}\n"
                     "stages: {{ s: {{ when: 'true', steps: [{{ id: a, at: due, send: [sms, email], template: m }}] }} }}\n",
           "p.collect": "policy t\ntimezone UTC\ncalendar {{ weekend {weekend} }}\nwindow default {days} 08:00-19:00\n"
                        "window email sun 09:00-12:00\ntemplate m sms \"x\"\ntemplate m email {{\n  subject \"s\"\n"
                        "  body \"b\"\n}}\nstage s when true {{\n  a at due: send sms, email with m\n}}\n"}


@pytest.mark.parametrize("name", list(WEEKEND))
@pytest.mark.parametrize("weekend, days, warned", [
    ("fri, sat", "mon-fri", {"default": "fri"}),  # a window copied from a sat-sun policy
    ("fri, sat", "mon-sat", {"default": "fri, sat"}),
    ("fri, sat", "mon-thu,sun", {}),
    ("sun", "mon-fri", {"email": "sun"}),
    ("sat, sun", "mon-sat", {}),  # the default weekend: opening a Saturday is how its windows are written
])
def test_a_window_open_on_a_weekend_day_the_policy_names_is_a_warning(tmp_path, name, weekend, days, warned):
    """The windows alone decide which days are open (SPEC 4.2): a moved weekend closes nothing by itself."""
    result = compile_policy(tmp_path / name, text=WEEKEND[name].format(weekend=weekend, days=days))
    assert result.plan is not None
    found = {d.message.split()[1]: d.message.split(" opens on ")[1].split(", a weekend")[0]
             for d in result.diagnostics.items if d.code == "weekend-open"}
    assert found == warned


@pytest.mark.parametrize("name, declare", [("p.yaml", "fields: { customer.segmento: str }"),
                                           ("p.collect", "field customer.segmento: str")])
def test_an_undeclared_csv_column_is_told_how_to_declare_in_the_syntax_of_the_file(tmp_path, name, declare):
    text = {"p.yaml": "policy: t\ntimezone: UTC\nsegments: { corp: customer.segmento == 'corp' }\nstages: {}\n",
            "p.collect": "policy t\ntimezone UTC\nsegment corp = customer.segmento == 'corp'\n"
                         "stage s when true { a at due: stop }\n"}[name]
    (diag,) = compile_policy(tmp_path / name, text=text).diagnostics.items
    assert (diag.code, diag.span.line) == ("unknown-field", 3)
    assert "did you mean" not in diag.hint and diag.hint.endswith(declare)  # not 'customer.name'
    assert diag.render().startswith(f"{tmp_path / name}:3:")


def test_segment_call_and_bare_name_compile_to_the_same_plan(tmp_path):
    def plan(condition):
        return compile_text(tmp_path, "segments: { stop: customer.do_not_contact == true }\nstages:\n  s:\n"
                                      "    when: invoice.days_past_due >= 0\n    steps:\n"
                                      f"      - {{ id: a, at: due, if: '{condition}', send: sms, template: m }}\n").plan
    assert plan('not segment("stop")').plan_hash == plan("not stop").plan_hash
    assert plan('not segment("stop")')["stages"][0]["steps"][0]["if"] == "not stop"


def test_templates_dir_takes_plugin_channels_and_reports_each_bad_file(tmp_path, monkeypatch):
    from collect.dsl.model import BUILTIN_CHANNELS
    from collect.engine import compiler

    monkeypatch.setattr(compiler, "known_channels", lambda: (*BUILTIN_CHANNELS, "echo"))
    (tmp_path / "tpl").mkdir()
    for name, text in {"t.echo.j2": "Hola {{ customer.name }}", "t.sms.j2": "Hola", "u.fax.j2": "x",
                       "v.email.j2": "no subject", "w.sms.j2": "{{ customer.nmae }}"}.items():
        (tmp_path / "tpl" / name).write_text(text, encoding="utf-8")
    result = compile_text(tmp_path, "templates_dir: tpl\nstages:\n  s:\n    when: invoice.days_past_due >= 0\n"
                                    "    steps:\n      - { id: a, at: due, send: [echo, sms], template: t }\n"
                                    "      - { id: b, at: due+1d, send: email, template: v }\n")
    assert codes(result) == ["bad-templates-dir", "bad-templates-dir", "unknown-attribute"]  # fax, v, w.sms.j2
    messages = " ".join(d.message for d in result.diagnostics.items)
    assert "u.fax.j2: unknown channel 'fax'" in messages and "v.email.j2: an email template" in messages


def test_a_templates_dir_file_that_cannot_be_read_is_one_error_not_a_crash_or_a_hang(tmp_path):
    """The compiler read each file again, unguarded: a Latin-1 file, a folder or a dangling link named
    like a template raised a traceback, and a FIFO blocked `collect validate` for good."""
    import os

    folder = tmp_path / "t"
    folder.mkdir()
    (folder / "latin.sms.j2").write_bytes("Café {{ customer.name }}".encode("latin-1"))
    (folder / "dir.sms.j2").mkdir()
    (folder / "gone.sms.j2").symlink_to(tmp_path / "missing")
    os.mkfifo(folder / "pipe.sms.j2")
    result = compile_text(tmp_path, "templates_dir: t\nstages: {}\n")
    said = sorted(d.message.split("/")[-1] for d in result.diagnostics.items)
    assert said == ["dir.sms.j2: not a regular file", "gone.sms.j2: not a regular file",
                    "latin.sms.j2: not UTF-8 text (byte 4): save it as UTF-8", "pipe.sms.j2: not a regular file"]


def test_a_templates_dir_outside_the_policy_s_folder_is_an_error(tmp_path):
    (tmp_path / "pol").mkdir()
    (tmp_path / "tpl").mkdir()
    (tmp_path / "tpl" / "t.sms.j2").write_text("Hola")
    result = compile_text(tmp_path / "pol", "templates_dir: ../tpl\nstages:\n  s:\n    when: invoice.days_past_due >= 0\n"
                                            "    steps:\n      - { id: a, at: due, send: sms, template: t }\n")
    assert result.plan is None and "bad-templates-dir" in codes(result)
    assert "is outside the policy's folder" in " ".join(d.message for d in result.diagnostics.items)


# -- command line ---------------------------------------------------------------------------------

def test_validate_exit_codes_and_json(tmp_path):
    good, bad = ROOT / "examples/pe-b2b/policy.yaml", ROOT / "tests/golden/keys.yaml"
    assert runner.invoke(app, ["validate", str(good)]).exit_code == 0
    result = runner.invoke(app, ["validate", str(good), str(bad)])
    assert result.exit_code == 1 and "keys.yaml:" in result.output and "[unknown-key]" in result.output
    result = runner.invoke(app, ["validate", "--format", "json", str(bad)])
    items = json.loads(result.stdout)
    assert result.exit_code == 1 and {i["code"] for i in items} >= {"unknown-key", "missing-key"}
    assert all({"file", "line", "col"} <= set(i["span"]) for i in items)
    # a syntax error is known by where it starts: its end is one character on, never 0:0 before the start
    broken = tmp_path / "broken.yaml"
    broken.write_text("policy: p\nstages: [\n")
    (item,) = json.loads(runner.invoke(app, ["validate", "--format", "json", str(broken)]).stdout)
    span = item["span"]
    assert (span["end_line"], span["end_col"]) == (span["line"], span["col"] + 1)
    assert runner.invoke(app, ["validate", "--bogus"]).exit_code == 2
    one = tmp_path / "one.yaml"
    one.write_text("policy: p\ntimezone: UTC\nwindows: { default: { mon-fri: \"09:00-18:00\" } }\n"
                   "templates: { m: { sms: hi } }\n"
                   "stages: { s: { when: true, steps: [{ id: a, at: due, send: sms, template: m }] } }\n")
    assert f"{one}: ok, 1 step, plan " in runner.invoke(app, ["validate", str(one)]).stderr


def test_compile_writes_the_plan_and_plan_shows_tables(tmp_path):
    out = tmp_path / "plan.json"
    assert runner.invoke(app, ["compile", str(ROOT / "examples/us-consumer/policy.collect"), "-o", str(out)]).exit_code == 0
    assert json.loads(out.read_text())["plan_hash"] == compile_policy(ROOT / "examples/us-consumer/policy.yaml").plan.plan_hash
    shown = runner.invoke(app, ["plan", str(ROOT / "examples/us-consumer/policy.yaml")])
    assert shown.exit_code == 0 and "e-21" in shown.output and "Contact windows" in shown.output


def test_schema_is_json_schema():
    schema = json.loads(runner.invoke(app, ["schema"]).stdout)
    assert schema["title"] == "Policy" and "stages" in schema["required"]


def test_init_writes_a_project_that_validates(tmp_path):
    assert runner.invoke(app, ["init", str(tmp_path / "p")]).exit_code == 0
    assert compile_policy(tmp_path / "p/policy.yaml").plan is not None
    again = runner.invoke(app, ["init", str(tmp_path / "p")])
    assert again.exit_code == 1 and "would overwrite" in again.output


def test_the_starter_is_warning_free_with_the_compliance_line_it_suggests(tmp_path):
    """Uncommenting `# compliance: [us-reg-f]` is the first thing a US user does: the starter's messages
    must already say how to opt out (12 CFR 1006.6(e)) and its cadence keep Reg F's limits."""
    assert runner.invoke(app, ["init", str(tmp_path / "p")]).exit_code == 0
    policy = tmp_path / "p/policy.yaml"
    text = policy.read_text()
    assert "# compliance: [us-reg-f]" in text
    policy.write_text(text.replace("# compliance: [us-reg-f]", "compliance: [us-reg-f]  "))
    result = compile_policy(policy)
    assert result.plan is not None and [d.code for d in result.diagnostics.items] == []


def test_python_dash_m_collect_works():
    proc = subprocess.run([sys.executable, "-m", "collect", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "validate" in proc.stdout


def test_every_compliance_settings_mistake_is_reported_at_its_place(tmp_path):
    result = compile_text(tmp_path, """\
compliance: [cl-sernac, us-reg-f, cl-sernac]
compliance_settings:
  cl-sernac: { spacing: 3d, week: monthly, wek: rolling }
  co-ley-2300: { week: rolling }
stages:
  s:
    when: true
    steps:
      - { id: a, at: due+1d, send: email, template: m }
""")
    found = [(d.span.line, d.span.col, d.message) for d in result.diagnostics.items if d.severity == "error"]
    assert found == [
        (10, 35, "compliance profile 'cl-sernac' is listed twice"),
        (12, 25, "cl-sernac.spacing: '3d' is not allowed"),
        (12, 35, "cl-sernac.week: 'monthly' is not allowed"),
        (12, 44, "unknown setting 'wek' of cl-sernac"),
        (13, 3, "compliance_settings: profile 'co-ley-2300' is not selected")]
    assert result.plan is None


@pytest.mark.parametrize("zone", ["America", "Europe/", "America/Lima "])
def test_a_time_zone_that_is_a_folder_or_malformed_is_an_error_at_its_place(tmp_path, zone):
    path = tmp_path / "p.yaml"
    path.write_text(HEAD.replace("America/Lima", f'"{zone}"') + "stages: {}\n", encoding="utf-8")
    result = compile_policy(path)  # a folder of the zone database made ZoneInfo raise IsADirectoryError
    [error] = [d for d in result.diagnostics.errors if "IANA time zone" in d.message]
    assert (error.span.line, zone in error.message) == (3, True)


@pytest.mark.parametrize("channel", ["webhook", "agent"])
def test_a_cap_on_a_channel_caps_never_count_is_an_error(tmp_path, channel):
    result = compile_text(tmp_path, f"caps:\n  - {{ channel: {channel}, max: 1, per: 30d }}\nstages: {{}}\n")
    assert [(d.code, d.span.line, d.span.col) for d in result.diagnostics.items] == [("cap-not-contact", 11, 16)]


def test_a_misspelt_channel_of_a_template_is_an_error_at_its_key(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(HEAD.replace('    sms: "x"\n', '    sms: "x"\n    emial: "y"\n') + "stages: {}\n", encoding="utf-8")
    result = compile_policy(path)
    assert [(d.code, d.span.line, d.span.col, d.hint) for d in result.diagnostics.items] == [
        ("unknown-channel", 10, 5, "did you mean 'email'?")]


def test_a_custom_field_that_redeclares_a_built_in_one_is_an_error(tmp_path):
    """The expressions kept the built-in type and the CSV reader took the declared one: `amount: int`
    validated, then rejected 100.50 in every portfolio."""
    result = compile_text(tmp_path, "fields: { invoice.amount: int, invoice.region: str }\nstages: {}\n")
    assert [(d.code, d.span.line) for d in result.diagnostics.items] == [("bad-value", 10)]
    assert "'invoice.amount' is a built-in field (decimal)" in result.diagnostics.items[0].message


def test_a_mistake_in_a_templates_dir_file_is_reported_at_its_own_file_line_and_column(tmp_path):
    """FILE:LINE:COL of the template's file (SPEC 6), not the policy's `templates_dir:` line with the file
    in the message. The body starts after `Subject:` and a blank line: counted from the file's top."""
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "aviso.email.j2").write_text("Subject:  Hola {{ customer.nmbre }}\n\nEstimado cliente,\n\n"
                                                   "Su saldo vence pronto.\nAtentamente {{ customer.nmae }}\n",
                                                   encoding="utf-8")
    result = compile_text(tmp_path, "templates_dir: t\nstages: {}\n")
    file = str(tmp_path / "t" / "aviso.email.j2")
    assert [(d.span.file, d.span.line, d.span.col, d.code) for d in result.diagnostics.sorted()] == [
        (file, 1, 27, "unknown-attribute"), (file, 6, 24, "unknown-attribute")]  # at the '.' of customer.nmbre
    assert result.diagnostics.sorted()[1].message.startswith("template 'aviso' (email): customer has no field 'nmae'")


def test_a_compliance_finding_about_a_templates_dir_file_is_reported_at_that_file(tmp_path):
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "x.sms.j2").write_text("Pay now {{ pay_link }}\n", encoding="utf-8")
    (tmp_path / "p.yaml").write_text(
        "policy: us\ntimezone: America/Chicago\ncompliance: [us-reg-f]\ntemplates_dir: t\n"
        "windows:\n  default: { mon-fri: \"08:00-20:00\" }\n"
        "stages:\n  s:\n    when: invoice.days_past_due > 0\n    steps:\n"
        "      - { id: b, at: due+2d 09:00, send: sms, template: x }\n", encoding="utf-8")
    (finding,) = compile_policy(tmp_path / "p.yaml").diagnostics.items
    assert finding.code == "compliance-no-opt-out"
    assert (finding.span.file, finding.span.line, finding.span.col) == (str(tmp_path / "t" / "x.sms.j2"), 1, 1)

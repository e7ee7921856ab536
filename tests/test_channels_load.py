"""channels.yaml mistakes that used to surface late, or not at all:

- a `file` adapter `path` that can never take a line (a folder) was accepted, and every message on the
  channel then failed as a transient "adapter error" until its retries ran out and the step fell back to
  another channel, because of a config typo. It is an error at load now, with its place; and an outbox
  that cannot be opened, locked or written at send time is the channel's failure (account-level: the
  channel stops for the tick, its messages wait without using an attempt, one line says why), not each
  message's. The adapter still makes the file's folder when it is missing (outbox/ on a fresh machine).
- `collect simulate --channels` reported only the first problem of `costs:`, without its place, and let a
  negative cost through; it now checks `costs:` as `collect run` does, every problem at its place, and
  still reads nothing else of the file.
- the warning for a channel the policy sends on that channels.yaml leaves out said every step using it
  "goes on to its next channel", also where it is the step's last channel: those steps are named apart.
"""

from __future__ import annotations

import os
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from collect.adapters.base import Message
from collect.adapters.file import FileChannel
from collect.cli import app
from collect.engine import store as s
from collect.engine import channels as channels_module
from collect.engine.channels import ChannelsError, load_channels, render
from collect.engine.compiler import compile_policy
from clitools import cli_project

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "pe-b2b"


def write(tmp_path: Path, text: str, name: str = "channels.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def message(key: str = "k1", channel: str = "email") -> Message:
    return Message(key=key, channel=channel, customer_id="C1", invoice_ids=("F1",), recipient="ana@example.com",
                   subject="Factura F1", body="Hola")


# -- the file adapter's path, at load ---------------------------------------------------------------

def test_a_path_that_is_a_folder_is_a_setting_error_at_its_place(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "outbox").mkdir()
    path = write(tmp_path, """\
        channels:
          email: { adapter: file, path: outbox/email.jsonl }
          agent: { adapter: file, path: outbox }
          sms:   { adapter: file, path: outbox/ }
        """)
    with pytest.raises(ChannelsError) as caught:
        load_channels(path)
    found = [(d.code, d.span.line, d.span.col) for d in caught.value.diagnostics]
    assert found == [("channels-bad-setting", 3, 33), ("channels-bad-setting", 4, 33)]
    assert str(caught.value).splitlines()[0] == (
        f"{path}:3:33: channels.agent.path: is a folder, not a file: name a file in it, such as <folder>/agent.jsonl")


def test_a_path_inside_a_file_is_a_setting_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("x")
    path = write(tmp_path, "channels:\n  letter: { adapter: file, path: notes.txt/letters.jsonl }\n")
    with pytest.raises(ChannelsError) as caught:
        load_channels(path)
    (problem,) = caught.value.diagnostics
    assert (problem.code, problem.span.line) == ("channels-bad-setting", 2)
    assert problem.message == "channels.letter.path: is inside a file, not a folder: no file can be made there"


def test_the_folder_error_is_reported_with_the_files_other_problems(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "outbox").mkdir()
    path = write(tmp_path, """\
        channels:
          agent: { adapter: file, path: outbox }
          sms: { adapter: twilo }
        """)
    with pytest.raises(ChannelsError) as caught:
        load_channels(path)
    assert [d.code for d in caught.value.diagnostics] == ["channels-bad-setting", "channels-unknown-adapter"]


def test_a_missing_folder_is_fine_and_made_at_the_first_send(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a fresh machine: no outbox/ yet
    channels = load_channels(write(tmp_path, """\
        channels:
          email: { adapter: file, path: mail/out/email.jsonl }
          sms: { adapter: file }
        """))
    assert channels("email").send(message("k1")).status == "sent"
    assert channels("sms").send(message("k2", "sms")).status == "sent"
    assert (tmp_path / "mail" / "out" / "email.jsonl").is_file() and (tmp_path / "outbox" / "sms.jsonl").is_file()
    channels.close()


# -- the file adapter's outbox, at send ---------------------------------------------------------------

def test_an_outbox_that_cannot_be_written_stops_the_channel_not_the_message(tmp_path):
    adapter = FileChannel("email", path=str(tmp_path / "box" / "email.jsonl"))
    (tmp_path / "box").write_text("")  # a file now stands where the folder would be made
    result = adapter.send(message())
    assert (result.status, result.account_level, result.error_code) == ("permanent", True, "outbox")
    assert result.error.startswith(f"{tmp_path / 'box' / 'email.jsonl'} cannot be written: ")

    later = FileChannel("letter", path=str(tmp_path / "letters.jsonl"))
    (tmp_path / "letters.jsonl").mkdir()  # the path became a folder after the load
    result = later.send(message(channel="letter"))
    assert result.account_level and result.error.endswith("cannot be written: Is a directory")


def test_a_write_that_fails_is_account_level_and_the_next_send_writes_a_whole_line(tmp_path, monkeypatch):
    path = tmp_path / "email.jsonl"
    adapter = FileChannel("email", path=str(path))
    real_write = os.write

    def full_disk(fd, data):
        real_write(fd, bytes(data[:10]))  # part of the line, then the disk is full
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("collect.adapters.file.os.write", full_disk)
    result = adapter.send(message("k1"))
    assert result.account_level and result.error == f"{path} cannot be written: No space left on device"
    monkeypatch.setattr("collect.adapters.file.os.write", real_write)
    assert adapter.send(message("k1")).status == "sent"
    import json

    assert [json.loads(line)["key"] for line in path.read_text().splitlines()] == ["k1"]


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
stages:
  due:
    when: invoice.days_past_due >= 0
    steps:
      - { id: d0, at: due, send: [email, sms], template: m }
"""
PORTFOLIO = ("invoice_id,customer_id,amount,due_date,customer_name,email,phone\n"
             "F1,C1,100,2026-11-16,Ana,ana@example.com,+51987654321\n")
MONDAY = "2026-11-16T15:00:00+00:00"


@pytest.fixture
def project(tmp_path, monkeypatch):
    """policy.yaml and an imported portfolio in tmp_path; returns a function that runs `collect`."""
    return cli_project(tmp_path, monkeypatch, POLICY, PORTFOLIO)


def rows(db: str) -> list:
    with s.connect(db).connect() as conn:
        return list(conn.execute(select(s.contacts)))


def unwritable(channel: str, monkeypatch) -> None:
    """The outbox of `channel` cannot be opened (as a folder without write permission, which root ignores)."""
    real = FileChannel._open_locked

    def refused(self):
        if self.channel == channel:
            raise PermissionError(13, "Permission denied")
        return real(self)

    monkeypatch.setattr(FileChannel, "_open_locked", refused)


def test_the_stopped_channel_line_names_the_channels_file_that_was_read(project, tmp_path, monkeypatch):
    write(tmp_path, "channels:\n  email: { adapter: file, path: out/email.jsonl }\n", "prod-channels.yaml")
    unwritable("email", monkeypatch)
    result = project("run", "policy.yaml", "--channels", "prod-channels.yaml", "--now", MONDAY, "-q")
    assert result.exit_code == 3 and "check channels.email.path in prod-channels.yaml, and the disk" in result.stderr
    assert "in channels.yaml" not in result.stderr


def test_run_stops_the_channel_and_the_step_does_not_fall_back(project, tmp_path, monkeypatch):
    write(tmp_path, "channels:\n  email: { adapter: file, path: out/email.jsonl }\n  sms: { adapter: file }\n")
    unwritable("email", monkeypatch)
    for now in (MONDAY, "2026-11-16T16:00:00+00:00", "2026-11-16T17:00:00+00:00"):  # no attempt used, ever
        result = project("run", "policy.yaml", "--channels", "channels.yaml", "--now", now, "-q")
        assert result.exit_code == 3, result.output
        failures = [line for line in result.stderr.splitlines() if line.startswith("provider failure: ")]
        assert len(failures) == 1 and "channel email stopped for this tick" in failures[0]
        assert "out/email.jsonl cannot be written: Permission denied" in failures[0]
        assert "check channels.email.path in channels.yaml" in failures[0] and "credentials" not in failures[0]
        (row,) = rows(project.db)
        assert (row.channel, row.status, row.attempts, row.error_code) == ("email", "sending", 0, "outbox")
        assert "adapter error" not in row.reason
    assert not (tmp_path / "outbox" / "sms.jsonl").exists()  # no fallback to sms
    monkeypatch.undo()  # fixed: the waiting message goes out on email
    monkeypatch.chdir(tmp_path)
    result = project("run", "policy.yaml", "--channels", "channels.yaml", "--now", "2026-11-16T18:00:00+00:00")
    assert result.exit_code == 0, result.output
    (row,) = rows(project.db)
    assert (row.channel, row.status) == ("email", "sent")
    assert (tmp_path / "out" / "email.jsonl").is_file()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc takes no new file on Linux only")
def test_run_with_an_outbox_where_no_file_can_be_made(project, tmp_path):
    write(tmp_path, "channels:\n  email: { adapter: file, path: /proc/email.jsonl }\n  sms: { adapter: file }\n")
    result = project("run", "policy.yaml", "--channels", "channels.yaml", "--now", MONDAY, "-q")
    assert result.exit_code == 3, result.output
    assert "provider failure: channel email stopped for this tick" in result.stderr
    assert "/proc/email.jsonl cannot be written: No such file or directory" in result.stderr
    (row,) = rows(project.db)
    assert (row.status, row.attempts) == ("sending", 0)


def test_run_refuses_a_folder_path_before_anything_is_sent(project, tmp_path):
    (tmp_path / "outbox").mkdir()
    write(tmp_path, "channels:\n  email: { adapter: file, path: outbox }\n  sms: { adapter: file }\n")
    result = project("run", "policy.yaml", "--channels", "channels.yaml", "--now", MONDAY)
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines()[0] == ("error: channels.yaml:2:33: channels.email.path: is a folder, not a "
                                             "file: name a file in it, such as <folder>/email.jsonl")
    assert rows(project.db) == []


# -- simulate: costs checked as run checks them ------------------------------------------------------

def load_costs(path):
    return channels_module.load_costs(path)  # looked up when called: a test, not the module, fails without it


def simulate(*args: str):
    return CliRunner().invoke(app, ["simulate", str(EXAMPLE / "policy.yaml"), "--portfolio",
                                    str(EXAMPLE / "portfolio.csv"), "--start", "2026-11-15", "-q", *args])


def test_simulate_reports_every_costs_problem_with_its_place(tmp_path):
    path = write(tmp_path, """\
        channels:
          email: { adapter: file }
        costs:
          emial: 0.001
          sms: -1
          whatsapp: cheap
          voice: .nan
          letter: 1.50
        """, "c1.yaml")
    result = simulate("--channels", str(path))
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines() == [
        f"error: {path}:4:3: costs.emial: unknown channel 'emial' (available: email, sms, whatsapp, voice, letter, "
        "webhook) (did you mean 'email'?)",
        f"{path}:5:8: costs.sms: expected a cost of 0 or more, such as 0.045",
        f"{path}:6:13: costs.whatsapp: expected a cost of 0 or more, such as 0.045",
        f"{path}:7:10: costs.voice: expected a cost of 0 or more, such as 0.045"]


def test_a_cost_too_large_or_too_fine_to_keep_is_an_error(tmp_path):
    """`email: 1e30` passed every check, then broke simulate's summary and, stored on the contacts, every
    later `collect report`."""
    path = write(tmp_path, """\
        channels:
          email: { adapter: file }
        costs:
          email: 1e30
          sms: 0.0450001
          voice: 999999.999999
        """, "c2.yaml")
    result = simulate("--channels", str(path))
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines() == [
        f"error: {path}:4:10: costs.email: 1e30 is no cost per message: at most 999,999.999999, with at most 6 "
        "decimal places",
        f"{path}:5:8: costs.sms: 0.0450001 is no cost per message: at most 999,999.999999, with at most 6 decimal "
        "places"]


def test_simulate_reports_the_same_costs_problems_as_run(tmp_path):
    path = write(tmp_path, "channels:\n  email: { adapter: file }\ncosts: { emial: 1, sms: -1, email: true }\n")
    with pytest.raises(ChannelsError) as by_run:
        load_channels(path)
    with pytest.raises(ChannelsError) as by_simulate:
        load_costs(path)
    assert str(by_simulate.value) == str(by_run.value) and len(by_run.value.diagnostics) == 3


def test_simulate_reads_only_costs(tmp_path, monkeypatch):
    """The rest of channels.yaml is `collect run`'s: an adapter not installed here or a secret not set in
    this shell does not stop a simulation."""
    monkeypatch.delenv("NOPE_TOKEN", raising=False)
    path = write(tmp_path, """\
        channels:
          sms: { adapter: some_plugin, token: "${NOPE_TOKEN}" }
          fax: { adapter: file }
        retry: { attempts: 0 }
        costs: { sms: 0.045, email: "0.001" }
        """)
    assert load_costs(path) == {"sms": Decimal("0.045"), "email": Decimal("0.001")}
    result = simulate("--channels", str(path))
    assert result.exit_code == 0, result.output


def test_simulate_without_costs_has_no_costs(tmp_path):
    assert load_costs(write(tmp_path, "channels:\n  email: { adapter: file }\n")) == {}
    assert load_costs(write(tmp_path, "")) == {}
    assert load_costs(write(tmp_path, "# costs to come\n")) == {}
    with pytest.raises(ChannelsError, match="expected a `channels:` mapping"):  # not "the policy file is empty"
        load_channels(write(tmp_path, "# channels to come\n"))


def test_a_misspelt_costs_key_is_an_error_not_a_simulation_without_costs(tmp_path):
    path = write(tmp_path, "channels:\n  email: { adapter: file }\ncost: { email: 0.001 }\n")
    result = simulate("--channels", str(path))
    assert result.exit_code == 1, result.output
    assert result.stderr == f"error: {path}:3:1: unknown key 'cost' (did you mean 'costs'?)\n"


def test_simulate_checks_costs_before_reading_the_portfolio(tmp_path):
    path = write(tmp_path, "costs: { sms: -1 }\n")
    result = CliRunner().invoke(app, ["simulate", str(EXAMPLE / "policy.yaml"), "--portfolio",
                                      str(tmp_path / "missing.csv"), "-q", "--channels", str(path)])
    assert result.exit_code == 1 and "costs.sms: expected a cost of 0 or more" in result.stderr, result.output


# -- the warning for a channel left out, at run start ----------------------------------------------------

FALLBACKS = """\
policy: t
timezone: America/Lima
currency: PEN
windows:
  default: { mon-sun: "08:00-20:00" }
templates:
  m:
    email: { subject: "Factura", body: "Hola {{ customer.name }}" }
    sms: "Hola {{ customer.name }}"
    whatsapp: "Hola {{ customer.name }}"
stages:
  due:
    when: invoice.days_past_due >= 0
    steps:
      - { id: c-3, at: due-3d, send: [sms, email], template: m }
      - { id: c-0, at: due, send: [email, sms], template: m, on_exhausted: escalate }
      - { id: e-5, at: due+5d, send: [email, sms, whatsapp], template: m }
      - { id: e-9, at: due+9d, send: [whatsapp, sms, email], template: m }
"""


def warnings_for(tmp_path, channels_yaml: str, policy: str = FALLBACKS) -> list[str]:
    (tmp_path / "policy.yaml").write_text(policy, encoding="utf-8")
    compiled = compile_policy(tmp_path / "policy.yaml")
    assert compiled.plan is not None, compiled.diagnostics.items
    channels = load_channels(write(tmp_path, channels_yaml))
    try:
        errors, warnings = channels.check_plan(compiled.plan)
    finally:
        channels.close()
    assert errors == []
    return [render(w).split(" warning: ", 1)[1] for w in warnings]


def test_only_steps_with_a_configured_channel_after_the_missing_one_go_on(tmp_path):
    found = warnings_for(tmp_path, "channels:\n  email: { adapter: file }\n  agent: { adapter: file }\n")
    # sms: c-3 and e-9 try email after it; for c-0 and e-5 it is where the fallback ends (whatsapp, after
    # it in e-5, is not configured either)
    assert found[0] == (
        "channels: sms is not configured: each send on it fails (channel_not_configured); steps c-3, e-9 go on to "
        "their next channel; steps c-0, e-5 have no configured channel after it: when their earlier channels "
        "cannot be used, they fail (step c-0 escalates)")
    assert found[1] == (
        "channels: whatsapp is not configured: each send on it fails (channel_not_configured); step e-9 goes on "
        "to its next channel; step e-5 has no configured channel after it: when its earlier channels cannot be "
        "used, the step fails")
    assert len(found) == 2


def test_a_missing_last_channel_alone_says_the_step_fails_there(tmp_path):
    found = warnings_for(tmp_path, "channels:\n  email: { adapter: file }\n  sms: { adapter: file }\n"
                                   "  agent: { adapter: file }\n")
    # whatsapp: last for e-5, first for e-9 (followed by sms and email)
    assert found == ["channels: whatsapp is not configured: each send on it fails (channel_not_configured); step "
                     "e-9 goes on to its next channel; step e-5 has no configured channel after it: when its earlier "
                     "channels cannot be used, the step fails"]
    policy = FALLBACKS.replace("      - { id: e-9, at: due+9d, send: [whatsapp, sms, email], template: m }\n", "")
    assert warnings_for(tmp_path, "channels:\n  email: { adapter: file }\n  sms: { adapter: file }\n"
                                  "  agent: { adapter: file }\n", policy) == [
        "channels: whatsapp is not configured: each send on it fails (channel_not_configured); step e-5 has no "
        "configured channel after it: when its earlier channels cannot be used, the step fails"]


def test_a_missing_first_channel_keeps_the_fallback_wording(tmp_path):
    policy = FALLBACKS.split("      - { id: c-0")[0]  # c-3 only: [sms, email]
    assert warnings_for(tmp_path, "channels:\n  email: { adapter: file }\n", policy) == [
        "channels: sms is not configured: each send on it fails (channel_not_configured) and step c-3 goes on to "
        "its next channel"]


def test_an_outbox_that_cannot_be_synced_leaves_its_contacts_to_the_next_tick(project, tmp_path, monkeypatch):
    """The store must not say sent before the lines are on disk: if fsync fails, the contacts stay
    `sending`, the run says why, and the next tick records them (the file already has their keys)."""
    from collect.adapters.file import FileChannel

    write(tmp_path, "channels:\n  email: { adapter: file }\n  sms: { adapter: file }\n")

    def broken_disk(self):
        raise OSError(5, "Input/output error")
    monkeypatch.setattr(FileChannel, "sync", broken_disk)
    result = project("run", "policy.yaml", "--channels", "channels.yaml", "--now", MONDAY, "-q")
    assert result.exit_code == 3, result.output
    assert "channel email: what it wrote could not be put on disk ([Errno 5] Input/output error)" in result.stderr
    assert [row.status for row in rows(project.db)] == ["sending"]
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    result = project("run", "policy.yaml", "--channels", "channels.yaml", "--now", "2026-11-16T16:00:00+00:00")
    assert result.exit_code == 0, result.output
    assert [row.status for row in rows(project.db)] == ["sent"]
    assert len((tmp_path / "outbox" / "email.jsonl").read_text().splitlines()) == 1  # not written twice
